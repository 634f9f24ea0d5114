"""A constant-size Transformer that decides IsTree_n with an O(n)-token CoT (Thm 4.7; C4).

Wen, Dang, Lyu (ICLR 2025), Theorem 4.7: a Transformer with O(log n)-bit precision and a chain
of thought of O(n) tokens solves IsTree.  This module hand-sets the weights of one
:class:`~rnngap.models.transformer.Transformer` (6 layers, 4 heads of width 8, width
``len(CH)``, ReLU MLPs, no norms) that writes, token by token, the OFFICIAL ``cot`` format of
:mod:`rnngap.tasks.istree`: after ``[BOS] u - v ... [EOS]`` (n - 1 edges, ``u > v``) the DFS
Euler tour from vertex 0 (neighbours in prompt-edge order, the parent skipped, the parent
rewritten after a child returns, stopping at the first back edge), then ``[EOS]`` and
``[TRUE]``/``[FALSE]``.  No retriever, no recurrence: every step is one forward pass.

Positions are 1-based; edge k (k = 1..m, m = n - 1) sits at 3k-1 (a_k), 3k (``-``), 3k+1
(b_k); the prompt ends at 3n-1; the tour starts at 3n; L = 5n - 1 positions are ever fed.

The step rule (at a tour position i holding vertex v, previous token w), all by attention:

* ``e_in`` = index of the edge {w, v} (the one just walked; 0 at the first tour token);
* the earliest tour position F holding v gives the parent p = token(F-1) and the parent edge
  e_p = e_in(F) (0 at the root); first visit iff F = i;
* ``succ_v(e)`` = the next edge after e (e = 0: the first) in v's incidence list, found as the
  edge k with (a_k = v and PA_k = e) or (b_k = v and PB_k = e), where PA_k / PB_k (the edge
  before k containing a_k / b_k, 0 if none) were computed over the prompt;
* candidate = succ_v(e_last) (e_last = 0 on a first visit, else e_in), or succ_v(e_p) when
  that is the parent edge; a candidate whose other end y was already written is a back edge
  (write ``[EOS]``); no candidate: write p, or ``[EOS]`` at the root;
* at the tour's ``[EOS]``: ``[TRUE]`` iff it stands at position 5n - 1 (a complete tour of
  2n - 1 vertices; with n - 1 edges that happens iff the graph is a tree).

Every head is an exact-match or pointer head whose scores are distinct integers at every
position (``verify.istree.transformer`` proves each family with z3); with beta = 1024 every
non-maximal exponential underflows to 0, so every attention row is exactly one-hot, and every
MLP is a fixed piecewise-linear map of integers (big-M selections, tents), so the whole
forward pass computes integers, exact at p(n) = O(log n) bits (:func:`precision_for`).

Head score (units of beta) of the generic match head at key position j for query fields x_r::

    W * (sum_r (4 x_r y_r(j) - 2 y_r(j)^2) - 2 (sum_r x_r^2) NOTBOS(j) + c(j)) + T * TB(j)
      = W * (-2 sum_r (x_r - y_r(j))^2 + c(j)) + T * TB(j)        (j > 1)

with c(j) = 0 at keys, -2 at non-keys and, for heads with a sink, -1 at [BOS] (position 1),
whose key features are all 0: no match, then the sink wins and the head reads zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnngap.constructions.base import Construction, zero_state_dict
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
from rnngap.models.transformer import Transformer, TransformerConfig
from rnngap.tasks import istree as T

N_LAYERS, N_HEADS, D_HEAD = 6, 4, 8
TOKEN_CH = ("VX", "VX2", "ISV", "ISEOS", "ISZERO")
POS_CH = ("POS", "POS2", "ISBOS", "NOTBOS", "ISCOT", "ISVPOS", "KE", "KE2", "ISKB", "KB",
          "KB2", "PEND", "FULL")
COMPUTED_CH = ("P1V", "P1V2", "P2V", "P2V2", "P3V", "P3V2",            # layer 1 attention
               "AIN", "AIN2", "BIN", "BIN2", "ISCOTV", "ISCOTEOS",      # layer 1 MLP
               "EIN", "EIN2", "PAa", "PAa2", "PAb", "PAb2", "PBa", "PBa2", "PBb", "PBb2",
               "PA", "PA2", "PB", "PB2",                                # layer 2 MLP
               "FPOS", "PAR", "EPAR", "EPAR2",                          # layer 3 attention
               "ELAST", "ELAST2",                                       # layer 3 MLP
               "F1", "K1", "O1", "O1SQ", "F2", "O2", "O2SQ",            # layer 4 attention
               "SKIP", "CF", "CO", "CO2", "VIS",                        # layers 4-6
               "Y", "MV", "MEOS", "MTRUE", "MFALSE")                    # layer 6 MLP
CH = TOKEN_CH + POS_CH + COMPUTED_CH
C = {name: i for i, name in enumerate(CH)}
D_MODEL = len(CH)
D_MLP = 12
PRECISION_FORMULA = "ceil(log2(40 (L+1) (n+1)^2 + 4 (L+1)^2)), L = 5n - 1"


def max_len(n: int) -> int:
    """L(n) = 5n - 1: positions ever fed (prompt 3n - 1, tour <= 2n - 1, ``[EOS]``)."""
    return 5 * n - 1


def integer_bound(n: int) -> int:
    """A simple closed form that dominates every family of integers of the forward pass
    (units of beta for scores) listed in ``verify.istree.transformer.bounds`` -- a test checks
    it over a range of n: 40 (L+1)(n+1)^2 + 4 (L+1)^2."""
    L = max_len(n) + 1
    return 40 * L * (n + 1) ** 2 + 4 * L * L


def precision_for(n: int) -> int:
    """p(n): the least p with integer_bound(n) <= 2^p; Theta(log n)."""
    return max(2, (integer_bound(n) - 1).bit_length())


def heads(n: int) -> dict[int, list[Head]]:
    """The match heads of layers 2, 3, 4 and 6 (layer 1: pointers; layer 5: no attention)."""
    L = float(max_len(n) + 1)  # W = L(n) + 1 > every tie-break value (positions <= L(n))
    vx = ("VX", "VX2")
    return {
        2: [Head((("AIN", "AIN2", "P2V", "P2V2"), ("BIN", "BIN2", "VX", "VX2")), "ISVPOS", True,
                 1, 0, None, (("KE", "EIN"), ("KE2", "EIN2"))),
            Head((("P2V", "P2V2", "P3V", "P3V2"),), "ISKB", True, L, 1, "KB",
                 (("KB", "PAa"), ("KB2", "PAa2"))),
            Head((("P2V", "P2V2", "P1V", "P1V2"),), "ISKB", True, L, 1, "KB",
                 (("KB", "PAb"), ("KB2", "PAb2"))),
],
        3: [Head(((*vx, *vx),), "ISCOTV", False, L, -1, "POS",
                 (("POS", "FPOS"), ("P1V", "PAR"), ("EIN", "EPAR"), ("EIN2", "EPAR2"))),
            Head(((*vx, "P3V", "P3V2"),), "ISKB", True, L, 1, "KB",
                 (("KB", "PBa"), ("KB2", "PBa2"))),
            Head(((*vx, "P1V", "P1V2"),), "ISKB", True, L, 1, "KB",
                 (("KB", "PBb"), ("KB2", "PBb2")))],
        4: [Head(((*vx, "P2V", "P2V2"), ("ELAST", "ELAST2", "PA", "PA2")), "ISVPOS", True, 1,
                 0, None, (("ISVPOS", "F1"), ("KE", "K1"), ("VX", "O1"), ("VX2", "O1SQ"))),
            Head(((*vx, *vx), ("ELAST", "ELAST2", "PB", "PB2")), "ISVPOS", True, 1, 0, None,
                 (("ISVPOS", "F1"), ("KE", "K1"), ("P2V", "O1"), ("P2V2", "O1SQ"))),
            Head(((*vx, "P2V", "P2V2"), ("EPAR", "EPAR2", "PA", "PA2")), "ISVPOS", True, 1, 0,
                 None, (("ISVPOS", "F2"), ("VX", "O2"), ("VX2", "O2SQ"))),
            Head(((*vx, *vx), ("EPAR", "EPAR2", "PB", "PB2")), "ISVPOS", True, 1, 0, None,
                 (("ISVPOS", "F2"), ("P2V", "O2"), ("P2V2", "O2SQ")))],
        6: [Head((("CO", "CO2", "VX", "VX2"),), "ISCOTV", True, L, 1, "POS",
                 (("ISCOTV", "VIS"),))],
    }


def _mlp(sd: dict, layer: int) -> MLPWriter:
    return MLPWriter(sd, f"blocks.{layer - 1}.mlp.", C)


def _mlps(sd: dict, n: int) -> None:
    m, big, big2 = n - 1, float(n), float(n * n)
    f = _mlp(sd, 1)             # max / min of (w, v), squares; tour-vertex and tour-EOS flags
    f.unit({"VX": 1}, 0, {"AIN": 1})                        # AIN = VX + relu(P1V - VX)
    f.unit({"P1V": 1, "VX": -1}, 0, {"AIN": 1, "BIN": -1})  # BIN = P1V - relu(P1V - VX)
    f.unit({"P1V": 1}, 0, {"BIN": 1})
    f.unit({"VX2": 1}, 0, {"AIN2": 1})
    f.unit({"P1V2": 1, "VX2": -1}, 0, {"AIN2": 1, "BIN2": -1})
    f.unit({"P1V2": 1}, 0, {"BIN2": 1})
    f.unit({"ISCOT": 1, "ISV": 1}, -1, {"ISCOTV": 1})
    f.unit({"ISCOT": 1, "ISEOS": 1}, -1, {"ISCOTEOS": 1})
    for layer, pairs in ((2, (("PA", "PAa", "PAb"), ("PA2", "PAa2", "PAb2"))),
                         (3, (("PB", "PBa", "PBb"), ("PB2", "PBa2", "PBb2")))):
        f = _mlp(sd, layer)     # PA = max(PAa, PAb) (layer 2), PB (layer 3), their squares
        for dst, a, b in pairs:
            f.unit({b: 1}, 0, {dst: 1})
            f.unit({a: 1, b: -1}, 0, {dst: 1})
    f = _mlp(sd, 3)             # e_last = e_in unless first visit (POS = FPOS), then 0
    for dst, src, mm in (("ELAST", "EIN", float(m)), ("ELAST2", "EIN2", float(m * m))):
        f.unit({src: 1}, 0, {dst: 1})
        f.unit({src: 1, "POS": -mm, "FPOS": mm}, 0, {dst: -1})
    f = _mlp(sd, 4)             # SKIP = [F1 = 1 and K1 = EPAR]: tent at d = K1 - EPAR + s(1-F1)
    s = float(m + 2)
    d = {"K1": 1.0, "EPAR": -1.0, "F1": -s}
    for bias, c in ((s + 1, 1.0), (s, -2.0), (s - 1, 1.0)):
        f.unit(d, bias, {"SKIP": c})
    f = _mlp(sd, 5)             # candidate = SKIP ? succ(e_p) : succ(e_last)
    f.unit({"F1": 1, "SKIP": -1}, 0, {"CF": 1})
    f.unit({"F2": 1, "SKIP": 1}, -1, {"CF": 1})
    f.unit({"O1": 1, "SKIP": -big}, 0, {"CO": 1})
    f.unit({"O2": 1, "SKIP": big}, -big, {"CO": 1})
    f.unit({"O1SQ": 1, "SKIP": -big2}, 0, {"CO2": 1})
    f.unit({"O2SQ": 1, "SKIP": big2}, -big2, {"CO2": 1})
    f = _mlp(sd, 6)             # the decision: which token to write
    f.unit({"ISCOTV": 1, "CF": 1, "VIS": -1}, -1, {"MV": 1})
    f.unit({"ISCOTV": 1, "CF": -1, "ISZERO": -1}, 0, {"MV": 1})
    f.unit({"PEND": 1}, 0, {"MV": 1})
    f.unit({"ISCOTV": 1, "CF": 1, "VIS": 1}, -2, {"MEOS": 1})
    f.unit({"ISCOTV": 1, "CF": -1, "ISZERO": 1}, -1, {"MEOS": 1})
    f.unit({"ISCOTEOS": 1, "FULL": 1}, -1, {"MTRUE": 1})
    f.unit({"ISCOTEOS": 1, "FULL": -1}, 0, {"MFALSE": 1})
    f.unit({"CO": 1, "CF": big, "PEND": -big}, -big, {"Y": 1})
    f.unit({"PAR": 1, "CF": -big, "PEND": -big}, 0, {"Y": 1})


def logit_gap(n: int) -> float:
    """G = 3 n^2 + 2: the unembedding's mode weight (every wrong logit is >= 1 lower)."""
    return float(3 * n * n + 2)


def build(n: int) -> Construction:
    """The IsTree_n Transformer (module docstring), float64 weights."""
    if n < 2:
        raise ValueError(f"IsTree needs n >= 2, got {n}")
    f64 = torch.float64
    L, V, m = max_len(n), T.vocab_size(n), n - 1
    cfg = TransformerConfig(vocab_size=V, d_model=D_MODEL, n_layers=N_LAYERS, n_heads=N_HEADS,
                            d_head=D_HEAD, d_mlp=D_MLP, max_len=L, norm="none", pos="table",
                            mlp="relu", bias=True, attn_scale=1.0)
    sd = zero_state_dict(cfg)
    emb = torch.zeros(V, D_MODEL, dtype=f64)
    for t in range(V):
        v = T.token_vertex(t)
        if v is not None:
            emb[t, C["VX"]], emb[t, C["VX2"]], emb[t, C["ISV"]] = v, v * v, 1.0
            emb[t, C["ISZERO"]] = float(v == 0)
    emb[T.EOS, C["ISEOS"]] = 1.0
    sd["embed.weight"] = emb
    pos = torch.zeros(L, D_MODEL, dtype=f64)
    for j in range(1, L + 1):
        row = pos[j - 1]
        row[C["POS"]], row[C["POS2"]] = j, j * j
        row[C["ISBOS"]], row[C["NOTBOS"]] = float(j == 1), float(j != 1)
        row[C["ISCOT"]] = float(j >= 3 * n)
        row[C["PEND"]], row[C["FULL"]] = float(j == 3 * n - 1), float(j == 5 * n - 1)
        if j % 3 == 1 and 1 <= (j - 1) // 3 <= m:
            k = (j - 1) // 3
            row[C["ISVPOS"]], row[C["KE"]], row[C["KE2"]] = 1.0, k, k * k
        if j % 3 == 2 and 1 <= (j - 2) // 3 <= m:
            k = (j - 2) // 3
            row[C["ISKB"]], row[C["KB"]], row[C["KB2"]] = 1.0, k, k * k
    sd["pos_table"] = pos
    for r in (1, 2, 3):  # layer 1, head r-1: the token r back (VX, VX2), j = max(i - r, 1)
        set_pointer(sd, "blocks.0.attn.", (r - 1) * D_HEAD, {"POS": 1.0}, -float(r), "POS",
                    "POS2", (("VX", f"P{r}V"), ("VX2", f"P{r}V2")), C)
    for layer, hs in heads(n).items():
        for h, head in enumerate(hs):
            set_head(sd, f"blocks.{layer - 1}.attn.", h * D_HEAD, head, C)
    _mlps(sd, n)
    g, t = logit_gap(n), torch.arange(V, dtype=f64)
    w_u = torch.zeros(V, D_MODEL, dtype=f64)
    b_u = torch.full((V,), -2 * g, dtype=f64)
    verts = t >= T.FIRST_VERTEX
    vv = t[verts] - T.FIRST_VERTEX
    w_u[verts, C["Y"]], w_u[verts, C["MV"]] = 2 * vv, g
    b_u[verts] = -vv * vv - g
    for tok, ch in ((T.EOS, "MEOS"), (T.TRUE, "MTRUE"), (T.FALSE, "MFALSE")):
        w_u[tok, C[ch]], b_u[tok] = g, -g
    sd["unembed.weight"], sd["unembed.bias"] = w_u, b_u
    return Construction(
        task="istree", n=n, task_params={"format": "cot", "method": "transformer"}, config=cfg,
        state_dict=sd, precision_bits=precision_for(n), precision_formula=PRECISION_FORMULA,
        channels=dict(C), scalars={"beta": BETA, "W": float(L + 1), "G": g},
        notes="6 layers: pointers; edge-in / previous-incident-edge lookups; first occurrence "
              "(parent, parent edge); successor edge lookups; candidate select; visited "
              "lookup + decision.  Writes the official cot format.")


def cot_length_bound(n: int) -> int:
    """Tokens written after the prompt: at most 2n - 1 tour vertices, ``[EOS]``, the label."""
    return 2 * n + 1


USED_HEADS = {1: 3, 2: 3, 3: 3, 4: 4, 6: 1}
"""layer -> number of heads with weights (the rest, and all of layer 5, are zero)."""


def generate(model: Transformer, prompts: Tensor, arith: Arith | None, max_new: int,
             audit: Audit | None = None, chunk: int = 256) -> list[list[int]]:
    """Greedy decoding of a batch of equal-length prompts (B, P) in ``arith``, with KV caches:
    each row stops after writing ``[TRUE]``/``[FALSE]`` or ``max_new`` tokens.  Returns the
    written tokens per row.  ``audit``: record one-hotness / integrality (see :class:`Audit`).

    The construction decides graphs with exactly n - 1 edges (the official prompts): a batch
    of any other shape, or rows that are not ``[BOS] u - v ... [EOS]``, is a ValueError (the
    transcript would mean nothing)."""
    n = model.cfg.vocab_size - T.vocab_size(0)
    if prompts.dim() != 2 or prompts.shape[1] != 3 * (n - 1) + 2:
        raise ValueError(f"the n = {n} construction reads prompts of n - 1 edges "
                         f"({3 * (n - 1) + 2} tokens); got shape {tuple(prompts.shape)}")
    if not (bool((prompts[:, 0] == T.BOS).all()) and bool((prompts[:, -1] == T.EOS).all())
            and bool((prompts[:, 2:-1:3] == T.DASH).all())):
        raise ValueError("prompts must be [BOS] u - v ... [EOS] (tasks.istree.prompt_tokens)")
    used = [USED_HEADS.get(i + 1, 0) for i in range(len(model.blocks))]
    caches = model.init_cache(capacity=prompts.shape[1] + max_new)

    def prefill() -> Tensor:
        for s in range(0, prompts.shape[1], chunk):
            logits = model.step(prompts[:, s:s + chunk], caches, arith)
        return logits[:, -1].argmax(-1)

    def select(keep: Tensor) -> None:
        for c in caches:
            c["k"], c["v"] = c["k"][keep], c["v"][keep]

    with audited(model.blocks, used, audit), torch.no_grad():
        return greedy_decode(prefill, lambda t: model.step(t[:, None], caches, arith)[:, -1]
                             .argmax(-1), select, prompts.shape[0], max_new,
                             (T.TRUE, T.FALSE))


__all__ = [
    "BETA",
    "CH",
    "PRECISION_FORMULA",
    "Audit",
    "C",
    "Head",
    "build",
    "cot_length_bound",
    "generate",
    "heads",
    "integer_bound",
    "logit_gap",
    "max_len",
    "precision_for",
]
