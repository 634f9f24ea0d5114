"""A constant-size Transformer for c-gram retrieval (Theorem 4.6, first half; claim C2).

Also the shared "gram" construction behind ``constructions.retrieval.ar`` (AR is the case c = 2
with odd
positions excluded and no tie-break). Two layers, ``m = c - 1`` heads, width ``2m + 6``, for
every n. Every activation is an integer (times the power of two ``beta``), so the p-bit forward
pass is EXACT once the integers involved fit in p bits (``verify.retrieval.cgram`` proves it).

Residual channels::

    TOK = 0, TOK2 = 1     token t embeds as (t, t^2)
    POS = 2, POS2 = 3     positional table: (j, j^2)
    EXCL = 4              positional indicator: 1 where position j cannot end a match
    Y = 5                 the retrieved token (layer 2)
    PREV_r = 4 + 2r, PREV2_r = 5 + 2r   (r = 1..m) x_{j-r} and its square (layer 1, head r)

Layer 1, head r (a positional pointer, the Index trick): at position i the query is
``beta (i - r, 1)``, the key of position j is ``(2j, -j^2)``, so the score
``beta ((i-r)^2 - (i-r-j)^2)`` peaks at ``j = max(i - r, 1)`` by at least ``beta`` over every
other j <= i. With ``beta = 1024`` every other exponent is <= -1024, its exp underflows (a
faithful exp returns 0 or 2^-1074, which rounds to 0 at p <= 52 bits), so the attention row is
EXACTLY one-hot and head r writes ``(x_{j-r}, x_{j-r}^2)`` into ``PREV_r, PREV2_r``.

Layer 2, head 1, at the last position L. With ``Q_1 = TOK(L)`` and ``Q_r = PREV_{r-1}(L)`` (the
query tokens y_{c-1}, y_{c-2}, .., y_1) the score of position j is::

    s_j / beta = W * sum_r (2 Q_r PREV_r(j) - PREV2_r(j)) + T * j - W * EXCL(j)
               = W * (sum_r Q_r^2 - sum_r (PREV_r(j) - Q_r)^2) + T * j - W * EXCL(j)

A matching, allowed position scores ``W sum Q_r^2 + T j``; with ``W >= L`` and ``T = 1`` every
non-matching or excluded position scores at least 1 lower than every match, and the LAST match
beats the earlier ones by at least 1 (AR: ``W = 1, T = 0``, the match is unique). Again the
row is exactly one-hot; the value is TOK(j), written to Y. The unembedding reads
``logit_t = 2 t Y - t^2 = Y^2 - (Y - t)^2``, an exact integer with margin >= 1.

c-gram: EXCL(j) = [j < c or j > n] (j must end a c-gram of the data), W = L, T = 1.
n enters through the positional formula (j, j^2, the threshold n in EXCL) and the scalar W.
Precision: every integer below must satisfy |x| <= 2^p (then it is exact at p bits)::

    L^2 (positions), (V-1)^2 (token squares, logits), m K^2 (sum of squares, K = k-1),
    2 W K (layer-2 query), W m K^2 + max(W, T L) (layer-2 scores, in units of beta)

``p(n) = ceil(log2(max(...)))``; for c-gram with k = n+1 this is about 3 log2 n + log2(c-1).
"""

from __future__ import annotations

import numpy as np
import torch

from rnngap.constructions.base import Construction, check_weights, zero_state_dict
from rnngap.models.transformer import TransformerConfig
from rnngap.tasks.cgram import CGramTask

BETA = 1024.0
TOK, TOK2, POS, POS2, EXCL, Y = 0, 1, 2, 3, 4, 5
PRECISION_FORMULA = ("ceil(log2(max(L^2, (V-1)^2, m*K^2, 2*W*K, W*m*K^2 + max(W, T*L)))), "
                     "K = k-1, m = c-1, L = n+c-1, W = L, T = 1")


def prev(r: int) -> int:
    """Channel PREV_r (r = 1..m)."""
    return 4 + 2 * r


def prev2(r: int) -> int:
    """Channel PREV2_r (r = 1..m)."""
    return 5 + 2 * r


def channels(m: int) -> dict[str, int]:
    """Name -> index of every residual channel for ``m`` pointer heads."""
    out = {"TOK": TOK, "TOK2": TOK2, "POS": POS, "POS2": POS2, "EXCL": EXCL, "Y": Y}
    for r in range(1, m + 1):
        out[f"PREV_{r}"], out[f"PREV2_{r}"] = prev(r), prev2(r)
    return out


def integer_bounds(L: int, m: int, k: int, vocab: int, W: int, T: int) -> dict[str, int]:
    """The largest magnitude of each family of integers in the forward pass (module docstring)."""
    K = k - 1
    return {"positions L^2": L * L, "token squares (V-1)^2": (vocab - 1) ** 2,
            "sum of squares m K^2": m * K * K, "layer-2 query 2 W K": 2 * W * K,
            "layer-2 scores W m K^2 + max(W, T L)": W * m * K * K + max(W, T * L)}


def bits_for(bound: int) -> int:
    """Least p with bound <= 2^p (then every integer of magnitude <= bound is exact)."""
    return max(2, (max(1, bound) - 1).bit_length())


def gram_precision(L: int, m: int, k: int, vocab: int, W: int, T: int) -> int:
    """p(n) of the gram construction: the bits needed by its largest integer."""
    return bits_for(max(integer_bounds(L, m, k, vocab, W, T).values()))


def build_gram(task_name: str, n: int, L: int, m: int, k: int, vocab: int, W: int, T: int,
               excl: np.ndarray, task_params: dict, formula: str, notes: str) -> Construction:
    """The two-layer gram construction (module docstring); ``excl[j-1]`` is EXCL(j)."""
    f64 = torch.float64
    d, D = 2 * m + 6, m + 3
    cfg = TransformerConfig(vocab_size=vocab, d_model=d, n_layers=2, n_heads=m, d_head=D,
                            d_mlp=1, max_len=L, norm="none", pos="table", mlp="relu",
                            bias=True, attn_scale=1.0)
    check_weights(cfg)
    t = torch.arange(vocab, dtype=f64)
    j = torch.arange(1, L + 1, dtype=f64)
    sd: dict[str, torch.Tensor] = {}
    emb = torch.zeros(vocab, d, dtype=f64)
    emb[:, TOK], emb[:, TOK2] = t, t * t
    sd["embed.weight"] = emb
    pos = torch.zeros(L, d, dtype=f64)
    pos[:, POS], pos[:, POS2] = j, j * j
    pos[:, EXCL] = torch.as_tensor(np.asarray(excl, dtype=np.float64))
    sd["pos_table"] = pos
    sd.update({k: v for k, v in zero_state_dict(cfg).items() if k.startswith("blocks.")})
    a = "blocks.0.attn."
    for r in range(1, m + 1):
        h = (r - 1) * D
        sd[a + "q_proj.weight"][h, POS] = BETA
        sd[a + "q_proj.bias"][h] = -BETA * r
        sd[a + "q_proj.bias"][h + 1] = BETA
        sd[a + "k_proj.weight"][h, POS] = 2.0
        sd[a + "k_proj.weight"][h + 1, POS2] = -1.0
        sd[a + "v_proj.weight"][h, TOK] = 1.0
        sd[a + "v_proj.weight"][h + 1, TOK2] = 1.0
        sd[a + "o_proj.weight"][prev(r), h] = 1.0
        sd[a + "o_proj.weight"][prev2(r), h + 1] = 1.0
    a = "blocks.1.attn."
    for r in range(1, m + 1):
        src = TOK if r == 1 else prev(r - 1)
        sd[a + "q_proj.weight"][r - 1, src] = 2.0 * BETA * W
        sd[a + "k_proj.weight"][r - 1, prev(r)] = 1.0
        sd[a + "k_proj.weight"][m, prev2(r)] = -1.0
    sd[a + "q_proj.bias"][m] = BETA * W
    sd[a + "q_proj.bias"][m + 1] = BETA * T
    sd[a + "q_proj.bias"][m + 2] = BETA * W
    sd[a + "k_proj.weight"][m + 1, POS] = 1.0
    sd[a + "k_proj.weight"][m + 2, EXCL] = -1.0
    sd[a + "v_proj.weight"][0, TOK] = 1.0
    sd[a + "o_proj.weight"][Y, 0] = 1.0
    w_u = torch.zeros(vocab, d, dtype=f64)
    w_u[:, Y] = 2 * t
    sd["unembed.weight"] = w_u
    sd["unembed.bias"] = -(t * t)
    return Construction(
        task=task_name, n=n, task_params=task_params, config=cfg, state_dict=sd,
        precision_bits=gram_precision(L, m, k, vocab, W, T), precision_formula=formula,
        channels=channels(m), scalars={"beta": BETA, "W": float(W), "T": float(T)}, notes=notes)


def excluded_positions(n: int, c: int) -> np.ndarray:
    """EXCL(j) for j = 1..n+c-1: 1 iff j < c or j > n (j cannot end a c-gram of the data)."""
    j = np.arange(1, n + c)
    return ((j < c) | (j > n)).astype(np.float64)


def build(task: CGramTask) -> Construction:
    """The c-gram construction for ``task`` (its n, c and alphabet); weights in float64."""
    n, c, k = task.n, task.c, task.k
    L = n + c - 1
    return build_gram("cgram", n, L, c - 1, k, task.vocab_size(), L, 1,
                      excluded_positions(n, c), {"c": c, "alphabet": k}, PRECISION_FORMULA,
                      "layer 1: c-1 pointer heads copy x_{j-r}; layer 2 scores "
                      "L*sum_r(2 y PREV_r - PREV_r^2) + j - L*EXCL: the last match wins")


def precision_for(n: int, alphabet: int | None = None, c: int = 2) -> int:
    """Claimed p(n) for c-gram retrieval with the default (or given) alphabet."""
    k = n + 1 if alphabet is None else alphabet
    L = n + c - 1
    return gram_precision(L, c - 1, k, k, L, 1)


__all__ = [
    "BETA",
    "bits_for",
    "build",
    "build_gram",
    "channels",
    "excluded_positions",
    "gram_precision",
    "integer_bounds",
    "precision_for",
]
