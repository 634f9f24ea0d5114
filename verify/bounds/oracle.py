"""Claim C7: an RNN whose only help is an associative-recall (AR) oracle still fails retrieval.

The oracle (paper, Section 5 and Appendix E.8; the authors' OpenReview reply names it as the
O(n)-memory augmentation that does NOT close the gap). Its corpus is the data part
``x_1..x_n`` of the input row. Asked a token ``q`` it returns the token that FOLLOWS an
occurrence of ``q``: an occurrence is a position ``j <= n - 1`` with ``x_j = q`` (``search
all``) or such a ``j`` that is odd, a key position of the key-value layout (``search keys``:
an oracle for AR itself, Def 4.3); the answer is ``x_{j+1}`` for

* ``first``: the smallest such ``j``; ``last``: the largest;
* ``adversarial``: any of them, chosen by an adversary (a machine must be right whatever it
  picks, so every bound for ``first`` and for ``last`` holds for it);

and the failure token NONE when ``q`` has no occurrence.

The argument (why state is still needed). Write ``sig(D)`` for the oracle's answers to every
possible query on data ``D``. Whatever the machine does after the data (read the query, ask
the oracle any number of times, adaptively, write chain-of-thought) depends on the data only
through its state after the data, ``s(D)``, and the oracle's answers, which are functions of
``sig(D)`` alone (the corpus is the data part; with a corpus that also covered the query and
chain-of-thought, an answer could depend on the last data token followed by the first query
token, which every family below keeps fixed). Oracle calls made while reading the data are
part of how ``s(D)`` was computed. Hence: two data strings with the SAME signature that some valid
query tells apart (different correct answers) must reach different states. So a correct
machine needs at least

    P_oracle(n) = max over signatures sig of the fooling number of {D : sig(D) = sig}

states: the prefix classes that remain after conditioning on everything the oracle can
reveal (:mod:`rnngap.verify.bounds.prefix_classes` for the fooling number). :func:`brute_force`
computes it exactly at tiny n; :func:`family` builds, for any n, an explicit set of data
strings with one common signature that are pairwise told apart, a proven lower bound that
grows linearly in n (bits), so O(log n) bits with any number of oracle calls fail:

* the *cover* ``P``: every token the family uses, each followed by a fixed token
  (``t_1 t_2 .. t_T t_1``; keys search: ``t_1 t_1 t_2 t_2 .. t_T t_T``), placed FIRST for
  ``first`` (every token's first occurrence is in P) and LAST for ``last``: the oracle's
  answer to every query is the same for the whole family;
* the *free part* ``F`` after (first) / before (last) the cover carries the information: any
  string over the cover's tokens (Index: |T|^m members; Counting: its count vectors,
  C(m+T-1, T-1)); c-gram (c >= 3): blocks ``K_i v_i`` with distinct (c-1)-gram keys over a key
  alphabet A that never occur elsewhere, values free (|V|^m); AR (search all): keys that occur
  earlier as VALUES of the cover's pairs, so the oracle's answer for them is the cover's next
  key, values free. AR with ``search keys`` needs no state: one call answers the query (the
  positive side, :class:`ARRecall`).

Regular-expression retrieval (C5) escapes the argument because its query can name the whole
(c-1)-gram or a key position; the AR oracle sees one token and one successor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnngap.tasks.registry import CARDS, load

RULES = ("first", "last", "adversarial")
SEARCHES = ("all", "keys")
NONE = -1  # the oracle's "no occurrence" answer (the failure token in the environment)
#: brute force enumerates every data string: at most this many of them
BRUTE_MAX_DATA = 120_000


# ----------------------------------------------------------------------------- the oracle
def check_rule(rule: str, search: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown occurrence rule {rule!r}; known: {', '.join(RULES)}")
    if search not in SEARCHES:
        raise ValueError(f"unknown oracle search {search!r}; known: {', '.join(SEARCHES)}")


def occurrences(data: Sequence[int], q: int, search: str = "all") -> list[int]:
    """0-based positions j < n - 1 with data[j] == q (keys: even 0-based j, odd 1-based)."""
    step = 2 if search == "keys" else 1
    return [j for j in range(0, len(data) - 1, step) if data[j] == q]


def oracle_answer(data: Sequence[int], q: int, rule: str, search: str = "all") -> int:
    """The token after the first / last occurrence of ``q`` (NONE if none). ``adversarial``
    has no single answer: use :func:`oracle_choices`."""
    check_rule(rule, search)
    if rule == "adversarial":
        raise ValueError("the adversarial oracle may return any of oracle_choices()")
    occ = occurrences(data, q, search)
    if not occ:
        return NONE
    return int(data[(occ[0] if rule == "first" else occ[-1]) + 1])


def oracle_choices(data: Sequence[int], q: int, search: str = "all") -> set[int]:
    """Every answer an adversarial oracle may give for ``q`` ({NONE} if no occurrence)."""
    occ = occurrences(data, q, search)
    return {int(data[j + 1]) for j in occ} or {NONE}


def signature(data: Sequence[int], k: int, rule: str, search: str = "all") -> tuple[int, ...]:
    """The oracle's answer to every token query 0..k-1 (a deterministic rule)."""
    return tuple(oracle_answer(data, q, rule, search) for q in range(k))


def deterministic_rules(rule: str) -> tuple[str, ...]:
    """The deterministic rules whose bounds a bound for ``rule`` takes the maximum of."""
    return ("first", "last") if rule == "adversarial" else (rule,)


# ----------------------------------------------------------------------------- brute force
def data_strings(task: str, n: int, k: int) -> int:
    """How many data strings brute force enumerates."""
    strings = rule_for(task).data_strings
    return k ** n if strings is None else strings(n, k)


@dataclass
class BruteResult:
    classes: int                      # P_oracle(n): states a correct machine needs
    rule: str                         # the deterministic rule that attains it
    signature_classes: int            # how many distinct signatures occur
    data_strings: int
    witness: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None
    # (data a, data b, separating query): same signature, different answers


def brute_force(task: str, n: int, k: int, rule: str, search: str = "all",
                c: int = 3) -> BruteResult:
    """Exact P_oracle(n) by enumerating every input (tiny n only)."""
    check_rule(rule, search)
    if data_strings(task, n, k) > BRUTE_MAX_DATA:
        raise ValueError(f"brute force over {data_strings(task, n, k):,} data strings "
                         f"({task}, n={n}, alphabet {k}) is too large (limit "
                         f"{BRUTE_MAX_DATA:,}); use a smaller n or --alphabet")
    from rnngap.verify.bounds import prefix_classes as pc
    table = pc.rows_at_cut(rule_for(task).instances(n, k, c), n)
    best: BruteResult | None = None
    for r in deterministic_rules(rule):
        groups: dict[tuple, dict] = {}
        for prefix, row in table.items():
            groups.setdefault(signature(prefix, k, r, search), {})[prefix] = row
        top, witness = 0, None
        for sub in groups.values():
            f = pc.fooling_number(sub)
            if f > top:
                top = f
                if f > 1:
                    witness = _pair(task, sub)
        res = BruteResult(top, r, len(groups), len(table), witness)
        if best is None or res.classes > best.classes:
            best = res
    return best


def _pair(task: str, sub: dict) -> tuple | None:
    """Two prefixes of one signature class and a query that tells them apart."""
    from rnngap.verify.bounds import prefix_classes as pc
    items = list(sub.items())
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            (pa, ra), (pb, rb) = items[i], items[j]
            if pc.told_apart(ra, rb):
                q = next(s for s, a in ra.items() if s in rb and rb[s] != a)
                return pa, pb, q
    return None


# ----------------------------------------------------------------------------- the families
@dataclass
class Family:
    """Data strings of length n with ONE oracle signature that are pairwise told apart
    (counting: one member per count vector)."""

    task: str
    n: int
    k: int
    rule: str
    search: str
    c: int
    base: tuple[int, ...]                 # a member (free slots at their first choice)
    slots: tuple[int, ...]                # 0-based positions that vary
    choices: tuple[int, ...]              # tokens a free slot may hold
    size: int                             # pairwise told-apart members (the lower bound)
    how: str
    queries: dict[int, tuple[int, ...]] = field(default_factory=dict)  # c-gram: slot -> key

    @property
    def log2_size(self) -> float:
        return math.log2(self.size) if self.size > 1 else 0.0

    def member(self, values: Sequence[int]) -> tuple[int, ...]:
        out = list(self.base)
        for pos, v in zip(self.slots, values):
            out[pos] = int(v)
        return tuple(out)

    def sample(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        """(batch, n) members with uniformly random free slots."""
        out = np.tile(np.asarray(self.base, dtype=np.int64), (batch, 1))
        if self.slots:
            ch = np.asarray(self.choices, dtype=np.int64)
            out[:, list(self.slots)] = ch[rng.integers(0, len(ch), (batch, len(self.slots)))]
        return out


def _cover(tokens: Sequence[int], search: str) -> list[int]:
    """Every token followed by a fixed token: t1 t2 .. tT t1 (keys: t1 t1 t2 t2 .. tT tT)."""
    if search == "keys":
        return [t for t in tokens for _ in (0, 1)]
    return [*tokens, tokens[0]]


def _assemble(cover: list[int], free: list[int], pad_token: int, n: int, rule: str,
              search: str) -> tuple[list[int], int] | None:
    """Data of length n: cover first (first rule) or last (last rule), padding with
    ``pad_token`` where it changes nothing; returns (data, offset of the free part)."""
    pad = n - len(cover) - len(free)
    if pad < 0:
        return None
    if rule == "first":
        return cover + free + [pad_token] * pad, len(cover)
    # last rule: pad, free, cover; with keys search the cover must start at an even 0-based
    # index (a key position), else one pad token goes to the very end (a key with no value)
    front = pad
    if search == "keys" and (front + len(free)) % 2:
        front -= 1
    if front < 0:
        return None
    return [pad_token] * front + free + cover + [pad_token] * (pad - front), front


def _log2_size(task: str, m: int, T: int) -> float:
    if task == "index":
        return m * math.log2(T) if T > 1 else 0.0
    return (math.lgamma(m + T) - math.lgamma(T) - math.lgamma(m + 1)) / math.log(2)


def _uniform(task: str, n: int, k: int, rule: str, search: str) -> Family | None:
    """Index / Counting: cover over T tokens, free part any string over T."""
    width = 2 if search == "keys" else 1
    best_T, best_bits = None, -1.0
    for T in range(1, min(k, n) + 1):
        m = n - (width * T if search == "keys" else T + 1)
        if m < 1:
            break
        b = _log2_size(task, m, T)
        if b > best_bits:
            best_T, best_bits = T, b
    if best_T is None:
        return None
    T = best_T
    toks = list(range(T))
    cover = _cover(toks, search)
    m = n - len(cover)
    got = _assemble(cover, [0] * m, 0, n, rule, search)
    if got is None:        # keys search, last rule, odd length: one free position less
        m -= 1
        got = _assemble(cover, [0] * m, 0, n, rule, search) if m >= 1 else None
    if got is None:
        return None
    data, off = got
    size = T ** m if task == "index" else math.comb(m + T - 1, T - 1)
    how = (f"cover of {T} tokens ({len(cover)} positions) + {m} free positions over them"
           + (" (count vectors)" if task != "index" else ""))
    return Family(task, n, k, rule, search, 0, tuple(data), tuple(range(off, off + m)),
                  tuple(toks), size, how)


def _cgram(n: int, k: int, rule: str, search: str, c: int) -> Family | None:
    """Blocks K_i v_i: keys distinct (c-1)-grams over A that appear nowhere else."""
    width = 2 if search == "keys" else 1
    candidates = []
    a = 1
    for m in range(1, n // c + 1):
        # the least key alphabet with m (c-1)-grams not among the cover's all-A windows
        while a ** (c - 1) - max(0, width * a - c + 2) < m:
            a += 1
        # values: as many symbols as the length (cover + blocks) and the alphabet allow
        room = n - m * c
        s = min(k - a, (room // 2 - a) if search == "keys" else room - a - 1)
        # s - 1 too: with keys search and the last rule the cover's parity can rule s out
        candidates += [(m * math.log2(v), m, a, v) for v in (s, s - 1) if v >= 2]
    # the best that assembles (keys search, last rule: the cover's parity can rule one out)
    for _, m, a, s in sorted(candidates, reverse=True):
        fam = _cgram_build(n, k, rule, search, c, m, a, s)
        if fam is not None:
            return fam
    return None


def _cgram_build(n: int, k: int, rule: str, search: str, c: int, m: int, a: int, s: int
                 ) -> Family | None:
    from itertools import product
    A, V = list(range(a)), list(range(a, a + s))
    cover = _cover(V[:1] + A + V[1:], search)      # starts and ends outside A
    windows = {tuple(cover[i:i + c - 1]) for i in range(len(cover) - c + 2)}
    keys = [g for g in product(A, repeat=c - 1) if g not in windows][:m]
    free = [t for g in keys for t in (*g, V[0])]
    got = _assemble(cover, free, V[0], n, rule, search)
    if got is None or len(keys) < m:
        return None
    data, off = got
    slots = tuple(off + i * c + c - 1 for i in range(m))
    return Family("cgram", n, k, rule, search, c, tuple(data), slots, tuple(V), s ** m,
                  f"{m} blocks key({c - 1})+value, keys over {a} symbols, values over {s}, "
                  f"cover of {a + s} tokens", {sl: keys[i] for i, sl in enumerate(slots)})


def _ar(n: int, k: int, rule: str, search: str) -> Family | None:
    """AR, search all: F's keys occur first (first rule) / last (last rule) as cover VALUES."""
    if search == "keys" or n % 2:
        return None   # keys: one oracle call answers every query (a single class)
    extra = 1 if rule == "last" else 0              # last rule: one more pair closes the cover
    best, best_bits = None, 0.0
    for r in range(1, n // 4 + 1):
        # cover pairs r + s + extra, free pairs r; tokens: s + n/2 of the alphabet's k
        s = min(n // 2 - 2 * r - extra, k - n // 2)
        if s >= 2 and r * math.log2(s) > best_bits:
            best, best_bits = (r, s), r * math.log2(s)
    if best is None:
        return None
    r, s = best
    U = list(range(r + s))                         # F's keys 0..r-1, values r..r+s-1
    n_cover = len(U) + extra
    pad_pairs = n // 2 - n_cover - r
    keys = list(range(len(U), len(U) + n_cover + pad_pairs))
    if keys[-1] >= k:
        return None
    vals = U + ([U[0]] if extra else [])
    cover = [t for p, u in zip(keys, vals) for t in (p, u)]
    pads = [t for p in keys[n_cover:] for t in (p, U[0])]
    free = [t for j in range(r) for t in (j, r)]    # (key j, a value in V)
    data = cover + pads + free if rule == "first" else free + pads + cover
    off = len(cover) + len(pads) if rule == "first" else 0
    return Family("ar", n, k, rule, search, 0, tuple(data),
                  tuple(off + 2 * j + 1 for j in range(r)), tuple(range(r, r + s)), s ** r,
                  f"{r} free pairs (keys first seen as cover values), values over {s}, "
                  f"cover of {n_cover} pairs")


def family(task: str, n: int, k: int, rule: str, search: str = "all", c: int = 3
           ) -> Family | None:
    """The explicit family for one deterministic rule (None when the construction does not
    apply: AR with search keys, c-gram with c < 3, or n too small)."""
    check_rule(rule, search)
    if rule == "adversarial":
        raise ValueError("families are built per deterministic rule (first, last)")
    return rule_for(task).family(n, k, rule, search, c)


def answer(task: str, data: Sequence[int], query: tuple[int, ...], c: int = 3) -> int | None:
    """The task's correct answer (None: the query is not valid for this data)."""
    return rule_for(task).answer(data, query, c)


def separating_query(fam: Family, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """A query valid for both members with different correct answers (None if equal)."""
    if tuple(a) == tuple(b):
        return None
    return rule_for(fam.task).separate(fam, a, b)


# ----------------------------------------------------------------------------- per task
@dataclass(frozen=True)
class OracleRule:
    """What the oracle bound needs of one task (its card's ``oracle`` names one of these)."""

    instances: Callable[[int, int, int], Any]
    """``(n, k, c)`` -> the task's instances for brute force (``verify.bounds.prefix_classes``)."""
    family: Callable[[int, int, str, str, int], Family | None]
    """``(n, k, rule, search, c)`` -> the explicit family of one deterministic rule, or None."""
    answer: Callable[[Sequence[int], tuple[int, ...], int], int | None]
    """``(data, query, c)`` -> the correct answer (None: the query is not valid)."""
    separate: Callable[[Family, Sequence[int], Sequence[int]], tuple[int, ...] | None]
    """A query telling two DIFFERENT members of the family apart."""
    data_strings: Callable[[int, int], int] | None = None
    """``(n, k)`` -> how many data strings brute force enumerates (None: k^n)."""
    no_family: str = "construction needs c >= 3"
    """Why no family exists, for ``count`` (said when ``family`` gives None)."""


def _pc():
    from rnngap.verify.bounds import prefix_classes as pc
    return pc


def _ar_instances(n: int, k: int, c: int):
    if n % 2:
        raise ValueError(f"AR needs an even n, got {n}")
    return _pc().ar_instances(n // 2, k)


def _ar_answer(data: Sequence[int], query: tuple[int, ...], c: int) -> int | None:
    keys = list(data[0::2])
    return data[2 * keys.index(query[0]) + 1] if query[0] in keys else None


def _index_separate(fam: Family, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    i = next(i for i in range(fam.n) if a[i] != b[i])
    return (i + 1,)


def _ar_separate(fam: Family, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    j = next(j for j in fam.slots if a[j] != b[j])
    return (a[j - 1],)


def _cgram_separate(fam: Family, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    j = next(j for j in fam.slots if a[j] != b[j])
    return fam.queries[j]


def _counting_rule(exact: bool) -> OracleRule:
    """Counting, threshold form ``[#q > t]`` or (``exact``) the count itself."""
    task = "counting-exact" if exact else "counting"

    def answer(data: Sequence[int], query: tuple[int, ...], c: int) -> int:
        cnt = sum(1 for x in data if x == query[0])
        return cnt if exact else int(cnt > query[1])

    def separate(fam: Family, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
        ca = np.bincount(np.asarray(a), minlength=fam.k)
        cb = np.bincount(np.asarray(b), minlength=fam.k)
        diff = np.nonzero(ca != cb)[0]
        if not len(diff):
            return None
        q = int(diff[0])
        return (q,) if exact else (q, int(min(ca[q], cb[q])))

    return OracleRule(lambda n, k, c: _pc().counting_instances(n, k, exact=exact),
                      lambda n, k, rule, search, c: _uniform(task, n, k, rule, search),
                      answer, separate)


INDEX = OracleRule(lambda n, k, c: _pc().index_instances(n, k),
                   lambda n, k, rule, search, c: _uniform("index", n, k, rule, search),
                   lambda data, query, c: data[query[0] - 1], _index_separate)
AR = OracleRule(_ar_instances, lambda n, k, rule, search, c: _ar(n, k, rule, search),
                _ar_answer, _ar_separate,
                data_strings=lambda n, k: (math.perm(k, n // 2) * k ** (n // 2)
                                           if n % 2 == 0 and k >= n // 2 else 0),
                no_family="one oracle call answers the query")
CGRAM = OracleRule(lambda n, k, c: _pc().cgram_instances(n, c, k),
                   lambda n, k, rule, search, c: (_cgram(n, k, rule, search, c) if c >= 3
                                                  else None),
                   lambda data, query, c: _pc().cgram_answer(data, query), _cgram_separate)
COUNTING = _counting_rule(exact=False)
#: oracle rows that are not a card's own rule: Counting's exact-count form
EXTRA_RULES = {"counting-exact": _counting_rule(exact=True)}
#: the tasks with an oracle bound: every card with an ``oracle``, then :data:`EXTRA_RULES`
TASKS = (*(name for name, card in CARDS.items() if card.oracle), *EXTRA_RULES)


def rule_for(task: str) -> OracleRule:
    """The task's :class:`OracleRule` (its card's ``oracle``, or :data:`EXTRA_RULES`)."""
    if task in EXTRA_RULES:
        return EXTRA_RULES[task]
    card = CARDS.get(task)
    if card is None or card.oracle is None:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return load(card.oracle)


# ----------------------------------------------------------------------------- counts
@dataclass
class OracleCount:
    task: str
    n: int
    alphabet: int
    oracle: str
    rule: str
    search: str
    prefix_classes: int
    exact: bool
    method: str

    @property
    def bits_needed(self) -> float:
        return math.log2(self.prefix_classes) if self.prefix_classes > 1 else 0.0


def count(task: str, n: int, k: int | None = None, rule: str = "first", search: str = "all",
          c: int = 3, brute: bool | None = None) -> OracleCount:
    """P_oracle(n): exact by brute force when the input space is tiny (or ``brute``), else the
    explicit family's size (a proven lower bound; ``exact`` False). Adversarial: the maximum
    over first and last (a lower bound)."""
    check_rule(rule, search)
    k = n + 1 if k is None else k
    if task == "ar" and (n % 2 or k < n // 2):
        raise ValueError(f"AR needs an even n and alphabet >= n/2, got n={n}, alphabet {k}")
    small = data_strings(task, n, k) <= BRUTE_MAX_DATA
    res = None
    if brute or (brute is None and small):
        try:
            res = brute_force(task, n, k, rule, search, c)
        except ValueError:
            if brute:
                raise
            res = None          # too many rows for the exact clique search: the family below
    if res is not None:
        return OracleCount(task, n, k, "ar", rule, search, res.classes,
                           rule != "adversarial",
                           f"brute force over all {res.data_strings:,} data strings "
                           f"({res.signature_classes:,} oracle signatures; worst rule "
                           f"{res.rule})")
    best = None
    for r in deterministic_rules(rule):
        f = family(task, n, k, r, search, c)
        if f is not None and (best is None or f.size > best.size):
            best = f
    if best is None:
        return OracleCount(task, n, k, "ar", rule, search, 1, False,
                           "no family: " + rule_for(task).no_family)
    return OracleCount(task, n, k, "ar", rule, search, best.size, False,
                       f"explicit family ({best.rule} rule): {best.how} [lower bound]")


def failure_length(task: str, state_bits: int, k: int | None = None, rule: str = "first",
                   search: str = "all", c: int = 3, n_max: int = 1 << 20) -> int | None:
    """Least n (from the explicit families) with more than 2^S pairwise told-apart data
    strings of one signature: every S-bit machine with the oracle fails at that n. An upper
    bound on the true failure length (the family is a lower bound on P_oracle)."""
    if state_bits < 1:
        raise ValueError(f"state bits must be >= 1, got {state_bits}")
    step = 2 if task == "ar" else 1

    def bits(n: int) -> float:
        kk = n + 1 if k is None else k
        sizes = [f.log2_size for r in deterministic_rules(rule)
                 if (f := family(task, n, kk, r, search, c)) is not None]
        return max(sizes, default=0.0)

    if task == "ar" and k is not None:
        # AR needs k >= n/2, and with k fixed the family's value set shrinks as n grows: the
        # bits are not monotone, so every even n up to 2k is tried
        return next((n for n in range(2, min(2 * k, n_max) + 1, 2) if bits(n) > state_bits),
                    None)
    lo, hi = step * 2, step * 2
    while bits(hi) <= state_bits:
        lo, hi = hi, hi * 2
        if hi > n_max:
            return None
    while hi - lo > step:   # the family sizes grow with n (more free positions)
        mid = (lo + hi) // 2 // step * step
        if bits(mid) > state_bits:
            hi = mid
        else:
            lo = mid
    return hi


# ----------------------------------------------------------------------------- fooling pairs
@dataclass
class OracleFoolingPair:
    task: str
    n: int
    alphabet: int
    rule: str
    search: str
    machine: str
    bits: int
    data_a: tuple[int, ...]
    data_b: tuple[int, ...]
    query: tuple[int, ...]
    signature_equal: bool          # the oracle's answer to EVERY token query is the same
    oracle_calls: list[tuple[int, int]]  # (query token, answer) asked after the data, both runs
    state_after_data: int
    final_state: int
    answer_a: int
    answer_b: int
    samples: int
    family: str


def fooling_pair(task: str, machine, n: int, k: int, rule: str, search: str = "all",
                 c: int = 3, seed: int = 0, max_samples: int = 1 << 22,
                 progress=None) -> OracleFoolingPair | None:
    """Birthday search inside the explicit family (one oracle signature): two members that
    the B-bit ``machine`` (verify.bounds.fool.Machine) maps to the same state and that a query tells
    apart. Both inputs are re-run token by token and their signatures recomputed."""
    rules = [r for r in deterministic_rules(rule)
             if family(task, n, k, r, search, c) is not None]
    if not rules:
        raise ValueError(f"no oracle family for {task} at n={n} (search {search}"
                         + (", c-gram needs c >= 3" if task == "cgram" else "") + ")")
    fam = max((family(task, n, k, r, search, c) for r in rules), key=lambda f: f.size)
    from rnngap.verify.bounds.fool import collide
    hit = collide(machine, fam.sample, lambda a, b: separating_query(fam, a, b), seed,
                  max_samples, progress, cap=1 << 18, first=1024)
    if hit is None:
        return None
    a, b, q, drawn = hit
    ta, tb = machine.run(a + q), machine.run(b + q)
    if ta[n - 1] != tb[n - 1] or ta[-1] != tb[-1]:
        raise RuntimeError("vectorized and scalar machine disagree: not a fooling pair")
    ans_a, ans_b = answer(task, a, q, c), answer(task, b, q, c)
    sig_eq = signature(a, k, fam.rule, search) == signature(b, k, fam.rule, search)
    calls = [(t, oracle_answer(a, t, fam.rule, search)) for t in q if 0 <= t < k]
    if not sig_eq or ans_a == ans_b or calls != [
            (t, oracle_answer(b, t, fam.rule, search)) for t in q if 0 <= t < k]:
        raise RuntimeError("family invariant broken: a bug in verify/bounds/oracle.py")
    return OracleFoolingPair(task, n, k, fam.rule, search, machine.name, machine.bits, a, b, q,
                             sig_eq, calls, ta[n - 1], ta[-1], ans_a, ans_b, drawn, fam.how)
