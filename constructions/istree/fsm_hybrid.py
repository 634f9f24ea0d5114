"""A hand-set hybrid (recurrent part + ONE softmax attention layer) deciding IsTree with CoT.

Definition 5.5 of Wen, Dang, Lyu (ICLR 2025): a hybrid is recurrent layers followed by one
attention layer.  Here the recurrent part is a :class:`~rnngap.constructions.istree.rnn_rag.
BitBoundedRNN` (registers with declared, enforced widths, O(log n) bits) that, at every position
j, also outputs a feature row h_j (the "recurrent layer's output"); the one attention layer
(:class:`rnngap.models.transformer.Attention`, two heads, hand-set weights, run in
:class:`~rnngap.models.arith.PBitArith`) reads the rows h_1..h_t.  There is NO retrieval oracle:
every lookup is the attention layer's output at a query position, read back as the next token.

Algorithm (union-find, union by rank; a graph with n-1 edges is a tree iff it is acyclic).
The chain of thought is, after the prompt ``[BOS] u - v ... [EOS]``:

* init: ``x ~ x , 0`` for every vertex x (parent record "x ~ p", rank record ", r");
* per edge i: ``S - E u`` (pointer lookup of the prompt token at position 2+3i), find(u) as
  steps ``S x ~ E p`` until p = x, ``S - E v`` (position 4+3i), find(v); equal roots: a cycle,
  stop.  Else ``S r , E a`` for both roots (rank lookups), then the link record
  ``c ~ R , a_c`` (c = lower-rank root) and, on equal ranks, ``R ~ R , a+1``;
* ``[EOS]`` and ``[TRUE]`` iff no cycle and the prompt had n-1 edges.

Union by rank bounds every root path by floor(log2 n) links, so the CoT is O(n log n) tokens.

The attention layer (positions j are 1-based; beta = 2^10, W = 2^ceil(log2(L+1)), L = the
declared bound on the transcript length).  Feature channels of h_j: ONE, POS = j, POS2 = j^2,
VAL (the vertex a token denotes, else 0), KEY (x for the token p of a record ``x ~ p``, n + x
for the token r of ``x ~ p , r``, else 0), KEY2 = KEY^2, EXCL (1 unless the token is a record
value), QP (pointer target), QX (record key wanted).  Head 1 ("the token at position P"):
``s = beta (2 P j - j^2)``; head 2 ("the LAST record with key X"):
``s = beta (W (2 X K_j - K_j^2) + j - W EXCL_j)``.  Both values are VAL; o_proj writes head 1
into channel Y1 and head 2 into Y2.  The margin: each score's maximum is unique and beats every
other position by >= beta (z3 lemmas ``pointer_lemma``, ``match_lemma_direct(1, tiebreak)``),
every score is an integer multiple of beta exact at p bits, and beta = 1024 >= 746 makes every
other exp underflow to exactly 0 (``underflow_lemma``), so the output is exactly VAL of the
target.  Precision p(n) = max(ceil(log2(W ((2n)^2 + 2))) + 1, ceil(log2(L^2 + 1))) (see
:func:`precision_for`): Theta(log n) bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from rnngap.constructions.istree.rnn_rag import BitBoundedRNN
from rnngap.models.arith import Arith, PBitArith
from rnngap.models.transformer import Attention
from rnngap.tasks import istree as T

COMMA = 2
CH = ("ONE", "POS", "POS2", "VAL", "KEY", "KEY2", "EXCL", "QP", "QX", "Y1", "Y2")
C = {name: i for i, name in enumerate(CH)}
D_MODEL, D_HEAD = len(CH), 4
BETA = 1024.0
LOOKUP = -1
HALT = -2
PCS = ("PROMPT", "I_X", "I_T", "I_P", "I_C", "I_R", "EDGE",
       "Q_S", "Q_D", "Q_E", "Q_A", "F_S", "F_X", "F_T", "F_E", "F_A",
       "A_S", "A_X", "A_C", "A_E", "A_A", "B_S", "B_X", "B_C", "B_E", "B_A",
       "L_X", "L_T", "L_P", "L_C", "L_R", "M_X", "M_T", "M_P", "M_C", "M_R",
       "END_EOS", "END_V", "HALTED")
P = {name: i for i, name in enumerate(PCS)}
FIELDS = ("pc", "i", "x", "r1", "r2", "a", "b", "m", "ph", "cyc", "pos")
QUERY = {"Q_E": 1, "F_E": 2, "A_E": 2, "B_E": 2}
"""Query pcs (the ``[ENDSEARCH]`` token) -> the head that answers."""
ANSWER = {"Q_A": "Q_E", "F_A": "F_E", "A_A": "A_E", "B_A": "B_E"}
_CONST = {"I_T": T.TILDE, "I_C": COMMA, "Q_S": T.S, "Q_D": T.DASH, "F_S": T.S, "F_T": T.TILDE,
          "A_S": T.S, "A_C": COMMA, "B_S": T.S, "B_C": COMMA, "L_T": T.TILDE, "L_C": COMMA,
          "M_T": T.TILDE, "M_C": COMMA, "END_EOS": T.EOS}


def max_len(n: int) -> int:
    """L(n): declared bound on the whole transcript (prompt + CoT) length."""
    steps = math.floor(math.log2(n)) + 1 if n > 1 else 1
    return (3 * n + 2) + 5 * n + max(n - 1, 0) * (8 + 2 * 5 * steps + 10 + 10) + 2


def width_w(n: int) -> int:
    """W = 2^ceil(log2(L+1)) >= L: the recency weight of head 2 (a power of two)."""
    return 1 << math.ceil(math.log2(max_len(n) + 1))


def precision_for(n: int) -> int:
    """p(n) = max(ceil(log2(W((2n)^2 + 2))) + 1, ceil(log2(L^2 + 1))): every score / beta and
    every key entry is an integer of magnitude <= 2^p, hence exact (module docstring)."""
    w, L = width_w(n), max_len(n)
    return max(math.ceil(math.log2(w * ((2 * n) ** 2 + 2))) + 1,
               math.ceil(math.log2(L * L + 1)))


def field_widths(n: int) -> dict[str, int]:
    """Declared width in bits of every register (a function of n)."""
    w = max(1, math.ceil(math.log2(n + 1)))
    rank = max(1, math.ceil(math.log2(math.floor(math.log2(max(n, 1))) + 2)))
    return {"pc": math.ceil(math.log2(len(PCS))), "i": w, "x": w, "r1": w, "r2": w,
            "a": rank, "b": rank, "m": w, "ph": 1, "cyc": 1,
            "pos": math.ceil(math.log2(max_len(n) + 1))}


def build_attention(n: int) -> Attention:
    """The one attention layer (module docstring), hand-set float64 weights."""
    att = Attention(D_MODEL, n_heads=2, d_head=D_HEAD, bias=True, scale=1.0).double()
    w = float(width_w(n))
    with torch.no_grad():
        for m in (att.q_proj, att.k_proj, att.v_proj, att.o_proj):
            m.weight.zero_()
            m.bias.zero_()
        q, k, v, o = att.q_proj, att.k_proj, att.v_proj, att.o_proj
        q.weight[0, C["QP"]], q.bias[1] = 2 * BETA, -BETA           # head 1: beta(2Pj - j^2)
        k.weight[0, C["POS"]], k.weight[1, C["POS2"]] = 1.0, 1.0
        h = D_HEAD                                                    # head 2
        q.weight[h, C["QX"]] = 2 * BETA * w
        q.bias[h + 1], q.bias[h + 2], q.bias[h + 3] = -BETA * w, BETA, -BETA * w
        k.weight[h, C["KEY"]], k.weight[h + 1, C["KEY2"]] = 1.0, 1.0
        k.weight[h + 2, C["POS"]], k.weight[h + 3, C["EXCL"]] = 1.0, 1.0
        v.weight[0, C["VAL"]], v.weight[h, C["VAL"]] = 1.0, 1.0
        o.weight[C["Y1"], 0], o.weight[C["Y2"], h] = 1.0, 1.0
    return att


class HybridIsTree(BitBoundedRNN):
    """The recurrent part: f = ``read``, g = ``emit``, plus the feature map ``features``."""

    FIELDS = FIELDS

    def __init__(self, n: int):
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n = n
        self.widths = field_widths(n)

    def init(self) -> tuple[int, ...]:
        return (P["PROMPT"], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    def emit(self, s: tuple[int, ...]) -> int:
        """g: the token written in state s; LOOKUP: the attention layer writes it."""
        name = PCS[s[0]]
        if name in _CONST:
            return _CONST[name]
        if name in QUERY:
            return T.E  # the query token; the next token is the attention layer's answer
        reg = {"I_X": 2, "I_P": 2, "F_X": 2, "A_X": 3, "B_X": 4, "L_X": 3, "L_P": 4,
               "M_X": 4, "M_P": 4, "L_R": 5, "M_R": 6}
        if name in reg:
            val = s[reg[name]] + (1 if name == "M_R" else 0)
            return T.vertex_token(val)
        if name == "I_R":
            return T.vertex_token(0)
        if name == "END_V":
            return T.TRUE if (s[9] == 0 and s[7] == self.n - 1) else T.FALSE
        if name == "HALTED":
            return HALT
        raise RuntimeError(f"emit called at pc {name}")

    def features(self, s: tuple[int, ...], tok: int) -> list[float]:
        """h_j for the token ``tok`` read in state ``s`` (the state before reading it)."""
        name, n = PCS[s[0]], self.n
        v = T.token_vertex(tok)
        key, excl = 0, 1
        if name in ("I_P", "L_P", "M_P"):
            key, excl = (s[2] if name == "I_P" else s[3] if name == "L_P" else s[4]), 0
        elif name in ("I_R", "L_R", "M_R"):
            key, excl = n + (s[2] if name == "I_R" else s[3] if name == "L_R" else s[4]), 0
        qp = qx = 0
        if name == "Q_E":
            qp = 2 + 3 * s[1] + (2 if s[8] else 0)
        elif name == "F_E":
            qx = s[2]
        elif name in ("A_E", "B_E"):
            qx = n + (s[3] if name == "A_E" else s[4])
        j = s[-1] + 1
        return [1.0, j, j * j, float(v or 0), key, key * key, excl, qp, qx, 0.0, 0.0]

    def read(self, s: tuple[int, ...], tok: int) -> tuple[int, ...]:
        """f: next state after reading ``tok`` (prompt token, own output or attention answer)."""
        r = list(s)
        r[-1] = s[-1] + 1
        name, n, pc = PCS[s[0]], self.n, s[0]
        v = T.token_vertex(tok)
        if name == "PROMPT":
            if tok == T.DASH:
                r[7] = min(s[7] + 1, (1 << self.widths["m"]) - 1)
            elif tok == T.EOS:
                r[0], r[2] = P["I_X"], 0
            return tuple(r)
        if name == "I_R":
            r[2] = s[2] + 1
            r[0] = P["I_X"] if r[2] < n else P["EDGE"]
            if r[0] == P["EDGE"]:
                r[2] = 0
                r[0] = self._edge(r)
            return tuple(r)
        if name in ANSWER:
            return self._answer(r, ANSWER[name], v)
        if name == "M_R" or (name == "L_R" and s[5] != s[6]):
            r[1] = s[1] + 1
            r[0] = self._edge(r)
            return tuple(r)
        r[0] = pc + 1
        return tuple(r)

    def _edge(self, r: list[int]) -> int:
        """Start edge r[1] (or finish): pointer lookup of its first endpoint."""
        if r[7] != self.n - 1 or r[1] >= r[7]:
            return P["END_EOS"]
        r[8] = 0
        return P["Q_S"]

    def _answer(self, r: list[int], name: str, v: int | None) -> tuple[int, ...]:
        if v is None or v > self.n:
            raise ValueError(f"the attention answer is not a vertex token (v={v})")
        if name == "Q_E":
            r[2], r[0] = v, P["F_S"]
        elif name == "F_E":
            if v != r[2]:
                r[2], r[0] = v, P["F_S"]
            elif r[8] == 0:
                r[3], r[8], r[0] = v, 1, P["Q_S"]
            else:
                r[4] = v
                if r[3] == r[4]:
                    r[9], r[0] = 1, P["END_EOS"]
                else:
                    r[0] = P["A_S"]
        elif name == "A_E":
            r[5], r[0] = v, P["B_S"]
        else:
            r[6] = v
            if r[5] > r[6]:  # make r3 the lower-rank (child) root, r4 the new root
                r[3], r[4], r[5], r[6] = r[4], r[3], r[6], r[5]
            r[0] = P["L_X"]
        return tuple(r)


@dataclass
class HybridTrace:
    """What one run produced; every lookup is recorded with its exact reference answer."""

    tokens: list[int]
    prompt_len: int
    verdict: bool | None
    declared_bits: int
    peak_bits: int
    lookups: int = 0
    mismatches: int = 0
    mismatch_examples: list[dict] = field(default_factory=list)

    @property
    def cot_len(self) -> int:
        return len(self.tokens) - self.prompt_len

    @property
    def retrievals(self) -> int:
        return self.lookups


class ExactLookup:
    """The reference answers, read from the transcript text alone (independent of the
    features): head 1, the vertex at position P (1-based); head 2, the value of the LAST record
    with key X, where ``x ~ p`` (three vertex/``~``/vertex tokens) gives key x -> p and
    ``x ~ p , r`` gives key n + x -> r.  Updated token by token in O(1)."""

    def __init__(self, n: int):
        self.n, self.tokens, self.last = n, [], {}

    def append(self, tok: int) -> None:
        tk = self.tokens
        tk.append(tok)
        j = len(tk) - 1
        vx = T.token_vertex
        if j >= 2 and tk[j - 1] == T.TILDE and vx(tk[j - 2]) is not None \
                and vx(tk[j]) is not None:
            self.last[vx(tk[j - 2])] = vx(tk[j])
        if j >= 4 and tk[j - 1] == COMMA and tk[j - 3] == T.TILDE and all(
                vx(tk[i]) is not None for i in (j, j - 2, j - 4)):
            self.last[self.n + vx(tk[j - 4])] = vx(tk[j])

    def answer(self, head: int, arg: int) -> int | None:
        if head == 1:
            return T.token_vertex(self.tokens[arg - 1]) if 1 <= arg <= len(self.tokens) else None
        return self.last.get(arg)


def run(n: int, edges: object, arith: Arith | None = None, attention: Attention | None = None,
        check: bool = True) -> HybridTrace:
    """Run the hybrid on one graph.  ``arith`` defaults to PBitArith(precision_for(n));
    ``attention`` overrides the hand-set layer (e.g. tampered weights).  With ``check`` every
    lookup's answer is compared with :class:`ExactLookup` (mismatches are counted)."""
    machine = HybridIsTree(n)
    arith = PBitArith(precision_for(n)) if arith is None else arith
    att = build_attention(n) if attention is None else attention
    prompt = T.prompt_tokens(n, edges)
    tokens: list[int] = []
    rows: list[list[float]] = []
    ks: list[torch.Tensor] = []
    vs: list[torch.Tensor] = []
    done = 0
    exact = ExactLookup(n)
    state = machine.init()
    peak = machine.check(state)
    tr = HybridTrace(tokens, len(prompt), None, machine.declared_bits, peak)
    limit = max_len(n)

    def feed(tok: int) -> None:
        nonlocal state, peak
        rows.append(machine.features(state, tok))
        tokens.append(tok)
        exact.append(tok)
        state = machine.read(state, tok)
        peak = max(peak, machine.check(state))

    for t in prompt:
        feed(t)
    with torch.no_grad():
        while len(tokens) < limit + 1:
            out = machine.emit(state)
            if out == HALT:
                break
            name = PCS[state[0]]
            feed(out)
            if name not in QUERY:
                continue
            h = torch.tensor(rows[done:], dtype=torch.float64)[None]
            pos = torch.arange(done + 1, len(rows) + 1)
            q, k, v = att.qkv(h, pos, arith)
            ks.append(k)
            vs.append(v)
            done = len(rows)
            kk, vv = torch.cat(ks, -2), torch.cat(vs, -2)
            if len(ks) > 1:
                ks[:], vs[:] = [kk], [vv]
            o = att.attend(q[:, :, -1:], kk, vv, done - 1, arith)
            y = att.merge(o, arith)[0, 0]
            head = QUERY[name]
            val = float(y[C["Y1"] if head == 1 else C["Y2"]])
            tr.lookups += 1
            got = round(val) if math.isfinite(val) and abs(val) < 1e9 else -1
            if check:
                row = rows[-1]
                arg = int(row[C["QP"]]) if head == 1 else int(row[C["QX"]])
                ref = exact.answer(head, arg)
                if got != val or ref != got:
                    tr.mismatches += 1
                    if len(tr.mismatch_examples) < 5:
                        tr.mismatch_examples.append({"position": len(tokens), "head": head,
                                                     "arg": arg, "attention": val, "exact": ref})
            if not 0 <= got <= n or got != val:
                break  # not a vertex token: the machine cannot go on
            feed(T.vertex_token(got))
        else:
            raise RuntimeError(f"transcript exceeded the declared bound L(n)={limit}")
    tr.peak_bits = peak
    last = tokens[-1]
    tr.verdict = True if last == T.TRUE else False if last == T.FALSE else None
    return tr
