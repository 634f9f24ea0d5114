"""IsTree by a hybrid of Definition 5.5: LINEAR RNN layers, then ONE attention layer (C6).

Wen, Dang, Lyu (ICLR 2025), Theorem 5.6: a constant-size hybrid linear RNN solves IsTree with
O(n log n) CoT steps.  This module hand-sets a hybrid of ``models.hybrid_lrnn`` (run by
``models.lm.LM``):
two :class:`~rnngap.models.linear_rnn.LinearRNN` layers (a = 1, no selection, integer weights)
then one Transformer layer (9 softmax heads of width 8 and a ReLU MLP) and the unembedding.
The linear layers provide, at every position, the features of the last ``K = 9`` tokens (the
causal conv, as Mamba's), the position j, j^2, (j-1), (j-1)^2 and the number of ``[EOS]`` read
(diagonal recurrences).  Everything else -- every lookup, every decision -- is the one
attention layer and its MLP; the CoT carries the algorithm's registers.

Algorithm: union-find with union by rank over the prompt's edges (a graph with n - 1 edges is
a tree iff it is acyclic); find follows parent records, so every root path has <= log2 n links
and the CoT has O(n log n) tokens.  The chain of thought after ``[BOS] u - v ... [EOS]``, per
edge k = 1..n-1 (``S`` = ``[STARTSEARCH]``, ``E`` = ``[ENDSEARCH]``, ``U`` = ``[UNK]``)::

    S k u v ~ u p(u) .. r r [ - v p(v) .. s s ]       read edge k; walk u and v to their roots
    [EOS] [FALSE]                                     if r = s (a cycle), else
    , r a b f c E R U r'                              a = rank(r), b = rank(s); f = '\\n' if
                                                      a >= b else ' '; link c -> R (c E R is
                                                      the parent record of c), rank(R) = r'

and ``[EOS] [TRUE]`` after the last edge.  A walk writes parent(x) after x (the last record
``x E p``, or x itself when x has none) until a token repeats (the root).

Each next token is one rule of the MLP, chosen by which special tokens sit at which window
offsets (linear features), by the attention's found-flags and by EQ = [token(i) = token(i-1)];
every rule is a big-M gated copy relu(value - M * (#gates - sum of gate indicators)), a tent
[d = 0] or a step [d >= 0] of an integer d.  The heads (``exact_heads``): BLK (the last
``S k u v``: k, v), PTR1 / PTR2 (the prompt tokens at 3k - 1 and 3k + 1), PAR (the last parent
record of x), RK1 / RK2 (the last rank record ``R U r`` of r, resp. of s), LB (the root before the
last ``[``), LAST (the type of the last special token: inside a walk?), EQ (a self-match that
is 1 iff the current and the previous token are the same vertex).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnngap.constructions.base import Construction
from rnngap.constructions.istree.exact_heads import (
    BETA,
    Audit,
    Head,
    MLPWriter,
    audited,
    set_head,
    set_pointer,
)
from rnngap.models.arith import Arith
from rnngap.models.decode import greedy_decode
from rnngap.models.hybrid_lrnn import HybridLRNNConfig, blank_state_dict
from rnngap.models.lm import LM
from rnngap.tasks import istree as T

COMMA, LB, RB, SP, NL, UNK = 2, 0, 1, 8, 9, 10
K_CONV, N_HEADS, D_HEAD, D_MLP = 9, 9, 8, 52
TYPES = {"S": T.S, "TILDE": T.TILDE, "DASH": T.DASH, "LB": LB, "RB": RB, "COMMA": COMMA,
         "SP": SP, "NL": NL, "E": T.E, "UNK": UNK, "EOS": T.EOS}
WINDOW = (("NUM", (1, 2, 3, 4, 5, 6, 8)), ("NUM2", (1, 2, 4)), ("IS_S", (1, 2, 3)),
          ("IS_COMMA", (1, 2, 3)), ("IS_SP", (1, 2, 4)), ("IS_NL", (1, 2, 4)), ("IS_E", (1,)),
          ("IS_UNK", (1,)), ("IS_RB", (1,)), ("ISV", (1,)))
"""(feature, offsets r): the conv writes feature(token j - r) into channel W_<feature>_<r>."""
TOKEN_CH = ("NUM", "NUM2", "ISV", "ISSPEC", "ISBOS", "NOTBOS",
            *(f"IS_{t}" if t != "EOS" else "ISEOS" for t in TYPES))
RNN_CH = ("POS", "POS2", "POSM1", "POSM1SQ", "CNTEOS",
          *(f"W_{f}_{r}" for f, rs in WINDOW for r in rs))
ATT_CH = ("BK", "BV", "PTR1", "PTR2", "PARF", "PARV", "RK1", "RK2", "LBV", "LT", "LD", "EQ")
OUT_CH = ("Y", "M_V", *(f"M_{t}" for t in TYPES), "M_TRUE", "M_FALSE")
CH = TOKEN_CH + RNN_CH + ATT_CH + OUT_CH
C = {name: i for i, name in enumerate(CH)}
D_MODEL = len(CH)
OUT_TOKENS = {**{f"M_{t}": tok for t, tok in TYPES.items()}, "M_TRUE": T.TRUE,
              "M_FALSE": T.FALSE}


def max_cot(n: int) -> int:
    """Declared bound on the tokens written after the prompt: per edge 18 + two walks of at
    most floor(log2 n) + 2 tokens each, then ``[EOS]`` and the label."""
    walk = math.floor(math.log2(max(n, 2))) + 2
    return (n - 1) * (18 + 2 * walk) + 2


def max_len(n: int) -> int:
    """L(n): positions ever fed (prompt 3n - 1 plus the CoT without its last token)."""
    return 3 * n - 1 + max_cot(n) - 1


def integer_bound(n: int) -> int:
    """A closed form that dominates every family of integers of the forward pass (scores in
    units of beta) listed in ``verify.istree.hybrid.bounds`` (a test checks it over a
    range of n): 16 W (n+1)^2 + 8 W, W = L + 1 (match heads), 3 W^2 (pointers, EQ's
    position field, the recurrent j^2)."""
    W = max_len(n) + 1
    return max(16 * W * (n + 1) ** 2 + 8 * W, 3 * W * W)


def precision_for(n: int) -> int:
    """p(n) = bits of integer_bound(n): Theta(log n)."""
    return max(2, (integer_bound(n) - 1).bit_length())


PRECISION_FORMULA = ("ceil(log2(max(16 W (n+1)^2 + 8 W, 3 W^2))), W = L(n) + 1, "
                     "L(n) = 3n - 2 + (n-1)(18 + 2(floor(log2 n) + 2)) + 2")


def heads(n: int) -> list[Head | tuple]:
    """The 9 heads in order (a tuple marks a pointer head: query, bias, values)."""
    W = float(max_len(n) + 1)
    num = ("NUM", "NUM2")
    return [
        Head((), "W_IS_S_3", True, W, 1, "POS", (("W_NUM_2", "BK"), ("NUM", "BV"))),
        ({"NUM": 3.0}, -1.0, (("NUM", "PTR1"),)),
        ({"W_NUM_1": 3.0}, 1.0, (("NUM", "PTR2"),)),
        Head(((*num, "W_NUM_2", "W_NUM2_2"),), "W_IS_E_1", True, W, 1, "POS",
             (("W_IS_E_1", "PARF"), ("NUM", "PARV"))),
        Head(((*num, "W_NUM_2", "W_NUM2_2"),), "W_IS_UNK_1", True, W, 1, "POS",
             (("NUM", "RK1"),)),
        Head((("W_NUM_4", "W_NUM2_4", "W_NUM_2", "W_NUM2_2"),), "W_IS_UNK_1", True, W, 1,
             "POS", (("NUM", "RK2"),)),
        Head((), "IS_LB", True, W, 1, "POS", (("W_NUM_1", "LBV"),)),
        Head((), "ISSPEC", False, W, 1, "POS", (("IS_TILDE", "LT"), ("IS_DASH", "LD"))),
        Head(((*num, "W_NUM_1", "W_NUM2_1"), ("POSM1", "POSM1SQ", "POSM1", "POSM1SQ")),
             "NOTBOS", True, 1, 0, None, (("NOTBOS", "EQ"),)),
    ]


def _mlp(f: MLPWriter, n: int) -> None:
    """The rules (module docstring); M = 2n + 4 exceeds every |value| and |difference|."""
    M, m = float(2 * n + 4), float(n - 1)

    def copy(value: dict[str, float], gates: tuple[str, ...]) -> None:
        f.unit({**value, **{g: M for g in gates}}, -M * len(gates), {"Y": 1})

    f.unit({"ISEOS": 1, "CNTEOS": -1}, 1, {"M_S": 1})                   # prompt [EOS] -> S
    f.unit({"ISEOS": 1, "CNTEOS": 1, "W_ISV_1": 1}, -3, {"M_TRUE": 1})  # CoT [EOS] -> label
    f.unit({"ISEOS": 1, "CNTEOS": 1, "W_IS_RB_1": 1}, -3, {"M_FALSE": 1})
    f.unit({"BK": 1, "IS_S": M}, 1 - M, {"Y": 1})                       # S -> k + 1
    for gate, value in (("W_IS_S_1", "PTR1"), ("W_IS_S_2", "PTR2"), ("IS_TILDE", "W_NUM_2"),
                        ("IS_DASH", "BV"), ("IS_COMMA", "LBV"), ("W_IS_COMMA_1", "RK1"),
                        ("W_IS_COMMA_2", "RK2")):
        copy({value: 1}, (gate,))                # k -> u, u -> v, ~ -> u, - -> v, , -> r, ..
    f.unit({g: 1 for g in ("IS_S", "W_IS_S_1", "W_IS_S_2", "IS_TILDE", "IS_DASH", "IS_COMMA",
                           "W_IS_COMMA_1", "W_IS_COMMA_2", "IS_SP", "IS_NL", "IS_E",
                           "IS_UNK")}, 0, {"M_V": 1})
    f.unit({"W_IS_S_3": 1}, 0, {"M_TILDE": 1})                          # v -> ~
    walk = {"ISV": M, "LT": M, "LD": M}                                 # inside a walk:
    f.unit({"PARV": 1, **walk, "PARF": M, "EQ": -M}, -3 * M, {"Y": 1})  # parent(x) ...
    f.unit({"NUM": 1, **walk, "PARF": -M, "EQ": -M}, -2 * M, {"Y": 1})  # ... or x itself
    f.unit({"ISV": 1, "LT": 1, "LD": 1, "EQ": -1}, -1, {"M_V": 1})
    f.unit({"ISV": 1, "LT": 1, "EQ": 1}, -2, {"M_LB": 1})               # root of u -> [
    f.unit({"ISV": 1, "LD": 1, "EQ": 1}, -2, {"M_RB": 1})               # root of v -> ]
    f.unit({"IS_LB": 1}, 0, {"M_DASH": 1})                              # [ -> -
    f.tent({"LBV": 1, "W_NUM_1": -1, "IS_RB": -M}, M, {"M_EOS": 1, "M_COMMA": -1})
    f.unit({"IS_RB": 1}, 0, {"M_COMMA": 1})                             # ] -> [EOS] or ,
    d = {"W_NUM_1": 1, "NUM": -1, "W_IS_COMMA_3": M}                    # b -> [a >= b] flag
    f.unit(d, 1 - M, {"M_NL": 1, "M_SP": -1})
    f.unit(d, -M, {"M_NL": -1, "M_SP": 1})
    f.unit({"W_IS_COMMA_3": 1}, 0, {"M_SP": 1})
    copy({"W_NUM_6": 1}, ("IS_NL",))                                    # flag -> c
    copy({"W_NUM_3": 1}, ("IS_SP",))
    f.unit({"W_IS_SP_1": 1, "W_IS_NL_1": 1}, 0, {"M_E": 1})             # c -> E
    copy({"W_NUM_5": 1}, ("IS_E", "W_IS_NL_2"))                         # E -> R
    copy({"W_NUM_8": 1}, ("IS_E", "W_IS_SP_2"))
    f.unit({"W_IS_E_1": 1}, 0, {"M_UNK": 1})                            # R -> U
    copy({"W_NUM_6": 1}, ("IS_UNK", "W_IS_NL_4"))                       # U -> r'
    f.tent({"W_NUM_6": 1, "W_NUM_5": -1, "IS_UNK": -M, "W_IS_NL_4": -M}, 2 * M, {"Y": 1})
    copy({"W_NUM_5": 1}, ("IS_UNK", "W_IS_SP_4"))
    f.tent({"BK": 1, "W_IS_UNK_1": -M}, M - m, {"M_EOS": 1, "M_S": -1})  # r' -> [EOS] or S
    f.unit({"W_IS_UNK_1": 1}, 0, {"M_S": 1})


def logit_gap(n: int) -> float:
    """G = 2 (n+1)^2: the unembedding's mode weight (every wrong logit >= 1 lower)."""
    return float(2 * (n + 1) ** 2)


LAYER_SHAPES = [[sum(len(rs) for _, rs in WINDOW) + 2, 2, K_CONV], [3, 1, 1]]
"""[d_inner, d_state, conv_kernel]: layer 1 (the window, j, the [EOS] count), layer 2 (j^2;
no conv window, so it carries one state scalar only)."""


def _rnn_layers(sd: dict) -> None:
    f64 = torch.float64
    for layer, (d_inner, d_state, kernel) in enumerate(LAYER_SHAPES):
        p = f"rnn.{layer}."
        sd[p + "in_proj.weight"] = torch.zeros(d_inner, D_MODEL, dtype=f64)
        sd[p + "in_proj.bias"] = torch.zeros(d_inner, dtype=f64)
        sd[p + "conv_weight"] = torch.zeros(d_inner, kernel, dtype=f64)
        sd[p + "conv_bias"] = torch.zeros(d_inner, dtype=f64)
        sd[p + "a"] = torch.ones(d_state, dtype=f64)
        sd[p + "B"] = torch.zeros(d_state, d_inner, dtype=f64)
        sd[p + "C"] = torch.zeros(D_MODEL, d_state, dtype=f64)
        sd[p + "D"] = torch.zeros(D_MODEL, d_inner, dtype=f64)
    p, c = "rnn.0.", 0
    for feat, offsets in WINDOW:                # the conv window: W_f_r = f(token j - r)
        for r in offsets:
            sd[p + "in_proj.weight"][c, C[feat]] = 1.0
            sd[p + "conv_weight"][c, r] = 1.0
            sd[p + "D"][C[f"W_{feat}_{r}"], c] = 1.0
            c += 1
    sd[p + "conv_bias"][c] = 1.0                # v = 1: h_0 counts positions
    sd[p + "B"][0, c] = 1.0
    sd[p + "C"][C["POS"], 0] = sd[p + "C"][C["POSM1"], 0] = 1.0
    sd[p + "D"][C["POSM1"], c] = -1.0
    sd[p + "in_proj.weight"][c + 1, C["ISEOS"]] = 1.0   # h_1 counts [EOS] tokens
    sd[p + "conv_weight"][c + 1, 0] = 1.0
    sd[p + "B"][1, c + 1] = 1.0
    sd[p + "C"][C["CNTEOS"], 1] = 1.0
    p = "rnn.1."                                # h = sum (2j - 1) = j^2
    sd[p + "in_proj.weight"][0, C["POS"]], sd[p + "in_proj.bias"][0] = 2.0, -1.0
    sd[p + "conv_weight"][0, 0] = sd[p + "B"][0, 0] = 1.0
    sd[p + "C"][C["POS2"], 0] = sd[p + "C"][C["POSM1SQ"], 0] = 1.0
    sd[p + "in_proj.weight"][1, C["POS"]] = sd[p + "conv_weight"][1, 0] = 1.0
    sd[p + "D"][C["POSM1SQ"], 1] = -2.0         # (j-1)^2 = j^2 - 2j + 1
    sd[p + "conv_bias"][2] = 1.0
    sd[p + "D"][C["POSM1SQ"], 2] = 1.0


def config(n: int) -> HybridLRNNConfig:
    """The architecture of the IsTree_n hybrid (only the vocabulary depends on n)."""
    if n < 2:
        raise ValueError(f"IsTree needs n >= 2, got {n}")
    d_inner, d_state, kernel = LAYER_SHAPES[0]
    return HybridLRNNConfig(vocab_size=T.vocab_size(n), d_model=D_MODEL, n_rnn_layers=2,
                            d_inner=d_inner, d_state=d_state, conv_kernel=kernel,
                            selective=False, n_heads=N_HEADS, d_head=D_HEAD, d_mlp=D_MLP,
                            attn_scale=1.0, bias=True, layer_shapes=LAYER_SHAPES)


def build(n: int) -> Construction:
    """The IsTree_n hybrid (module docstring): float64 weights with their facts (export to
    safetensors + config.json, load back: ``constructions.base``)."""
    cfg = config(n)
    f64 = torch.float64
    V = cfg.vocab_size
    sd = blank_state_dict(cfg)
    emb = sd["embed.weight"]
    for t in range(V):
        v = T.token_vertex(t)
        row = emb[t]
        row[C["NOTBOS"]] = float(t != T.BOS)
        if v is not None:
            row[C["NUM"]], row[C["NUM2"]], row[C["ISV"]] = v, v * v, 1.0
        elif t == T.BOS:
            row[C["ISBOS"]] = row[C["ISSPEC"]] = 1.0
        else:
            row[C["NUM"]], row[C["NUM2"]], row[C["ISSPEC"]] = -1.0, 1.0, 1.0
    for name, tok in TYPES.items():
        emb[tok, C["ISEOS" if name == "EOS" else f"IS_{name}"]] = 1.0
    _rnn_layers(sd)
    for h, head in enumerate(heads(n)):
        if isinstance(head, Head):
            set_head(sd, "block.attn.", h * D_HEAD, head, C)
        else:
            query, bias, values = head
            set_pointer(sd, "block.attn.", h * D_HEAD, query, bias, "POS", "POS2", values, C)
    _mlp(MLPWriter(sd, "block.mlp.", C), n)
    g, t = logit_gap(n), torch.arange(V, dtype=f64)
    w_u, b_u = sd["unembed.weight"], sd["unembed.bias"]
    b_u.fill_(-2 * g)
    verts = t >= T.FIRST_VERTEX
    vv = t[verts] - T.FIRST_VERTEX
    w_u[verts, C["Y"]], w_u[verts, C["M_V"]] = 2 * vv, g
    b_u[verts] = -vv * vv - g
    for ch, tok in OUT_TOKENS.items():
        w_u[tok, C[ch]], b_u[tok] = g, -g
    return Construction(
        task="istree", n=n, task_params={"format": "union-find cot", "method": "hybrid"},
        config=cfg, state_dict=sd, precision_bits=precision_for(n),
        precision_formula=PRECISION_FORMULA, channels=dict(C), rnn_channels=list(RNN_CH),
        scalars={"beta": BETA, "W": float(max_len(n) + 1), "G": logit_gap(n)},
        notes="2 linear RNN layers (conv window, positions, [EOS] count) + ONE attention "
              "layer (9 heads) + MLP; writes the union-find CoT of reference_cot")


def model(n: int) -> LM:
    """The float64 network (an ``LM``) carrying the construction's weights."""
    return build(n).model()


def generate(net: LM, prompts: Tensor, arith: Arith | None, max_new: int,
             audit: Audit | None = None) -> list[list[int]]:
    """Greedy decoding of equal-length prompts (B, P) through the recurrent view of the linear
    layers (fixed-size state) and the attention layer's KV cache; see ``exact_heads``."""
    B = prompts.shape[0]
    state = net.init_state(B, capacity=prompts.shape[1] + max_new)

    def step(tok: Tensor) -> Tensor:
        return net.step(tok, state, arith).argmax(-1)

    def prefill() -> Tensor:
        for j in range(prompts.shape[1]):
            out = step(prompts[:, j])
        return out

    def select(keep: Tensor) -> None:
        net.backbone.select(state["inner"], keep)

    with audited(net.backbone.attention_layers(), [N_HEADS], audit), torch.no_grad():
        return greedy_decode(prefill, step, select, B, max_new, (T.TRUE, T.FALSE))


def reference_cot(n: int, edges: object) -> list[int]:
    """The chain of thought (module docstring) computed directly, with ``[EOS]`` and label."""
    arr = T.canonical_edges(n, edges)
    V = T.vertex_token
    parent: dict[int, int] = {}
    rank: dict[int, int] = {}
    out: list[int] = []

    def walk(x: int) -> int:
        out.append(V(x))
        while True:
            p = parent.get(x, x)
            out.append(V(p))
            if p == x:
                return x
            x = p

    for k, (u, v) in enumerate(arr.tolist(), start=1):
        out += [T.S, V(k), V(u), V(v), T.TILDE]
        r = walk(u)
        out += [LB, T.DASH]
        s = walk(v)
        out.append(RB)
        if r == s:
            return out + [T.EOS, T.FALSE]
        a, b = rank.get(r, 0), rank.get(s, 0)
        c, R, r2 = (s, r, a + (a == b)) if a >= b else (r, s, b)
        out += [COMMA, V(r), V(a), V(b), NL if a >= b else SP, V(c), T.E, V(R), UNK, V(r2)]
        parent[c], rank[R] = R, r2
    return out + [T.EOS, T.TRUE]


__all__ = ["BETA", "CH", "PRECISION_FORMULA", "C", "build", "config", "generate", "heads",
           "integer_bound", "logit_gap", "max_cot", "max_len", "model", "precision_for",
           "reference_cot"]
