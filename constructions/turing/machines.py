"""The built-in Turing machines, written in the text format of :mod:`rnngap.constructions.turing`.

Conventions (all machines): one-way tape, cell 0 holds the left-end marker ``>`` (never
overwritten), the input occupies cells 1..k, every other cell is blank ``_``; the head starts
on cell 0 in the start state.  Functions leave their output in cells 1.. (trailing blanks are
not part of the output).  Every machine first checks that its input is well formed and rejects
otherwise.
"""

from __future__ import annotations

BINARY_INCREMENT = """
name: increment
doc: binary increment, most significant bit first ('' counts as 0): 1011 -> 1100, 11 -> 100
input: 0 1
start: s
accept: acc
reject: rej
s >          -> scan = R
s 0,1,_      -> rej = N
scan 0,1     -> scan = R
scan _       -> carry = L
scan >       -> rej = N
carry 1      -> carry 0 L
carry 0      -> acc 1 N
carry >      -> over = R
carry _      -> rej = N
# all ones (or empty): the result is 1 followed by k zeros
over 0       -> app 1 R
over _       -> acc 1 N
over 1,>     -> rej = N
app 0        -> app = R
app _        -> acc 0 N
app 1,>      -> rej = N
"""

PALINDROME = """
name: palindrome
doc: accept exactly the palindromes over {a, b} (not a regular language: needs the tape)
input: a b
start: s
accept: acc
reject: rej
s >          -> pick = R
s a,b,_      -> rej = N
pick a       -> ca _ R
pick b       -> cb _ R
pick _       -> acc = N
pick >       -> rej = N
ca a,b       -> ca = R
ca _         -> ka = L
ca >         -> rej = N
cb a,b       -> cb = R
cb _         -> kb = L
cb >         -> rej = N
ka a         -> back _ L
ka b         -> rej = N
ka _         -> acc = N
ka >         -> rej = N
kb b         -> back _ L
kb a         -> rej = N
kb _         -> acc = N
kb >         -> rej = N
back a,b     -> back = L
back _       -> pick = R
back >       -> rej = N
"""

ANBN = """
name: anbn
doc: accept exactly a^n b^n (n >= 0), the classic non-finite-state language
input: a b
start: s
accept: acc
reject: rej
s >          -> q0 = R
s a,b,X,Y,_  -> rej = N
q0 a         -> q1 X R
q0 Y         -> q3 = R
q0 _         -> acc = N
q0 b,X,>     -> rej = N
q1 a,Y       -> q1 = R
q1 b         -> q2 Y L
q1 _,X,>     -> rej = N
q2 a,Y       -> q2 = L
q2 X         -> q0 = R
q2 b,_,>     -> rej = N
q3 Y         -> q3 = R
q3 _         -> acc = N
q3 a,b,X,>   -> rej = N
"""

BINARY_ADDITION = """
name: addition
doc: binary addition x+y, MSB first, x and y non-empty; output x+y in |x|+|y|+1 bits
input: 0 1 +
tape: 0 1 + A B _ >
start: s
accept: acc
reject: rej
# validate: x+y with x, y in {0,1}+
s >            -> vx1 = R
s 0,1,+,A,B,_  -> rej = N
vx1 0,1        -> vx = R
vx1 +,A,B,_,>  -> rej = N
vx 0,1         -> vx = R
vx +           -> vy1 = R
vx A,B,_,>     -> rej = N
vy1 0,1        -> vy = R
vy1 +,A,B,_,>  -> rej = N
vy 0,1         -> vy = R
vy _           -> ps = L
vy +,A,B,>     -> rej = N
# pad: for every bit of y (marked A/B while counting) insert a 0 at cell 1
ps A,B         -> ps = L
ps 0           -> pg A L
ps 1           -> pg B L
ps +           -> pf = L
ps _,>         -> rej = N
pg 0,1,+,A,B   -> pg = L
pg >           -> i0 = R
pg _           -> rej = N
i0 0           -> i0 0 R
i0 1           -> i1 0 R
i0 +           -> ip 0 R
i0 A           -> iA 0 R
i0 B           -> iB 0 R
i0 _           -> ps 0 L
i1 0           -> i0 1 R
i1 1           -> i1 1 R
i1 +           -> ip 1 R
i1 A           -> iA 1 R
i1 B           -> iB 1 R
i1 _           -> ps 1 L
ip 0           -> i0 + R
ip 1           -> i1 + R
ip +           -> ip + R
ip A           -> iA + R
ip B           -> iB + R
ip _           -> ps + L
iA 0           -> i0 A R
iA 1           -> i1 A R
iA +           -> ip A R
iA A           -> iA A R
iA B           -> iB A R
iA _           -> ps A L
iB 0           -> i0 B R
iB 1           -> i1 B R
iB +           -> ip B R
iB A           -> iA B R
iB B           -> iB B R
iB _           -> ps B L
i0,i1,ip,iA,iB > -> rej = N
# one more 0 (the final carry), then unmark y
pf 0,1,+,A,B   -> pf = L
pf >           -> f0 = R
pf _           -> rej = N
f0 0           -> f0 0 R
f0 1           -> f1 0 R
f0 +           -> fp 0 R
f0 A           -> fA 0 R
f0 B           -> fB 0 R
f0 _           -> un 0 N
f1 0           -> f0 1 R
f1 1           -> f1 1 R
f1 +           -> fp 1 R
f1 A           -> fA 1 R
f1 B           -> fB 1 R
f1 _           -> un 1 N
fp 0           -> f0 + R
fp 1           -> f1 + R
fp +           -> fp + R
fp A           -> fA + R
fp B           -> fB + R
fp _           -> un + N
fA 0           -> f0 A R
fA 1           -> f1 A R
fA +           -> fp A R
fA A           -> fA A R
fA B           -> fB A R
fA _           -> un A N
fB 0           -> f0 B R
fB 1           -> f1 B R
fB +           -> fp B R
fB A           -> fA B R
fB B           -> fB B R
fB _           -> un B N
f0,f1,fp,fA,fB > -> rej = N
un A           -> un 0 L
un B           -> un 1 L
un +           -> back = R
un 0,1,_,>     -> rej = N
# add: take y's last bit, add it at x's lowest unprocessed bit (marked A/B once done)
back 0,1,+,A,B -> back = R
back _         -> take = L
back >         -> rej = N
take 0         -> g0 _ L
take 1         -> g1 _ L
take +         -> fin _ L
take A,B,_,>   -> rej = N
g0 0,1         -> g0 = L
g0 +           -> x0 = L
g0 A,B,_,>     -> rej = N
g1 0,1         -> g1 = L
g1 +           -> x1 = L
g1 A,B,_,>     -> rej = N
x0 A,B         -> x0 = L
x0 0           -> back A R
x0 1           -> back B R
x0 +,_,>       -> rej = N
x1 A,B         -> x1 = L
x1 0           -> back B R
x1 1           -> cy A L
x1 +,_,>       -> rej = N
cy 1           -> cy 0 L
cy 0           -> back 1 R
cy +,A,B,_,>   -> rej = N
# clean up: unmark x, halt
fin A          -> fin 0 L
fin B          -> fin 1 L
fin 0,1        -> fin = L
fin >          -> acc = N
fin +,_        -> rej = N
"""

SOURCES: dict[str, str] = {"increment": BINARY_INCREMENT, "palindrome": PALINDROME,
                           "addition": BINARY_ADDITION, "anbn": ANBN}
"""name -> machine text (parsed by :func:`rnngap.constructions.turing.compiler.parse_machine`)."""


def _binary(text: str) -> int:
    return int(text, 2) if text else 0


def _increment_ok(x: str, outcome: str, tape: str) -> bool:
    return outcome == "accept" and tape == format(_binary(x) + 1, "b").zfill(len(x))


def _palindrome_ok(x: str, outcome: str, tape: str) -> bool:
    return (outcome == "accept") == (x == x[::-1])


def _anbn_ok(x: str, outcome: str, tape: str) -> bool:
    k = len(x) // 2
    return (outcome == "accept") == (x == "a" * k + "b" * k)


def _addition_ok(x: str, outcome: str, tape: str) -> bool:
    parts = x.split("+")
    valid = len(parts) == 2 and all(parts) and set(x) <= set("01+")
    if not valid:
        return outcome == "reject"
    want = format(_binary(parts[0]) + _binary(parts[1]), "b").zfill(len(x))
    return outcome == "accept" and tape == want


SPECS = {"increment": _increment_ok, "palindrome": _palindrome_ok, "anbn": _anbn_ok,
         "addition": _addition_ok}
"""name -> (input, outcome, output tape) -> bool: what each built-in machine must compute,
written directly in Python (independent of the transition tables)."""
