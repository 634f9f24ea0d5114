"""A constant-size Transformer for Index_n (Theorem 4.6, first half; claim C2).

One layer, one head, width 4, for every n. Residual channels::

    TOK  = 0   the number carried by the token (embedding E[t] = t e_TOK)
    POS  = 1   the position j            (positional table P[j] = j e_POS + j^2 e_POS2)
    POS2 = 2   the position squared
    Y    = 3   the retrieved value (written by the attention layer)

At the query position (the last, j = n+1, token i):

    q = beta * (i, 1)            k_j = (2 j, -j^2)            v_j = x_j
    s_ij = <q, k_j> = beta (2 i j - j^2) = beta (i^2 - (i - j)^2)

so the score peaks at j = i and every other position is at least beta lower (|i - j| >= 1 for
integers). With beta >= ln(8 k (n+1)) + 1 the softmax puts all but a 1/(8k e) fraction of its mass
on x_i, so the attention output y lies within 1/4 of x_i. The unembedding reads
``logit_t = 2 t y - t^2 = y^2 - (y - t)^2``: the token nearest to y wins, with a margin of at least
``1 - 2|y - x_i| >= 1/2`` over every other token. The MLP is present but zero.

Depth, heads and width are independent of n; n enters only through the scalar beta, the
positional formula (j, j^2) and the size of the number vocabulary (which the task fixes).
Precision: both the scores (magnitude up to beta (n+1)^2, gap beta) and the logits (magnitude up
to 2 V^2, gap 1/2) must be resolved, so the construction claims

    p(n) = ceil(2 log2 max(n+1, V)) + 3   mantissa bits,

a sufficient value found from the error terms in ``verify.retrieval.index`` (the verifier checks
it, and
``--search-precision`` reports the least p that still verifies).
"""

from __future__ import annotations

import math

import torch

from rnngap.constructions.base import Construction, check_weights
from rnngap.models.transformer import TransformerConfig
from rnngap.tasks.index import IndexTask

TOK, POS, POS2, Y = 0, 1, 2, 3
CHANNELS = {"TOK": TOK, "POS": POS, "POS2": POS2, "Y": Y}
PRECISION_FORMULA = "ceil(2*log2(max(n+1, V))) + 3"


def precision_needed(n: int, vocab: int) -> int:
    """The precision p(n) this construction claims (see the module docstring)."""
    return math.ceil(2 * math.log2(max(n + 1, vocab))) + 3


def inverse_temperature(n: int, k: int) -> float:
    """beta = ceil(ln(8 k (n+1))) + 1: an integer, exactly representable at any p >= 7."""
    return float(math.ceil(math.log(8 * k * (n + 1))) + 1)


def build(task: IndexTask) -> Construction:
    """The Index construction for ``task`` (its n and alphabet); weights in float64."""
    n, k, vocab = task.n, task.k, task.vocab_size()
    beta = inverse_temperature(n, k)
    cfg = TransformerConfig(vocab_size=vocab, d_model=4, n_layers=1, n_heads=1, d_head=2,
                            d_mlp=1, max_len=n + 1, norm="none", pos="table", mlp="relu",
                            bias=True, attn_scale=1.0)
    check_weights(cfg)
    f64 = torch.float64
    t = torch.arange(vocab, dtype=f64)
    j = torch.arange(1, n + 2, dtype=f64)
    sd: dict[str, torch.Tensor] = {}
    sd["embed.weight"] = torch.zeros(vocab, 4, dtype=f64).index_put_(
        (torch.arange(vocab), torch.full((vocab,), TOK)), t)
    pos = torch.zeros(n + 1, 4, dtype=f64)
    pos[:, POS], pos[:, POS2] = j, j * j
    sd["pos_table"] = pos
    p = "blocks.0.attn."
    sd[p + "q_proj.weight"] = torch.tensor([[beta, 0, 0, 0], [0, 0, 0, 0]], dtype=f64)
    sd[p + "q_proj.bias"] = torch.tensor([0.0, beta], dtype=f64)
    sd[p + "k_proj.weight"] = torch.tensor([[0, 2, 0, 0], [0, 0, -1, 0]], dtype=f64)
    sd[p + "k_proj.bias"] = torch.zeros(2, dtype=f64)
    sd[p + "v_proj.weight"] = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=f64)
    sd[p + "v_proj.bias"] = torch.zeros(2, dtype=f64)
    o = torch.zeros(4, 2, dtype=f64)
    o[Y, 0] = 1.0
    sd[p + "o_proj.weight"] = o
    sd[p + "o_proj.bias"] = torch.zeros(4, dtype=f64)
    m = "blocks.0.mlp."
    sd[m + "fc_in.weight"] = torch.zeros(1, 4, dtype=f64)
    sd[m + "fc_in.bias"] = torch.zeros(1, dtype=f64)
    sd[m + "fc_out.weight"] = torch.zeros(4, 1, dtype=f64)
    sd[m + "fc_out.bias"] = torch.zeros(4, dtype=f64)
    w_u = torch.zeros(vocab, 4, dtype=f64)
    w_u[:, Y] = 2 * t
    sd["unembed.weight"] = w_u
    sd["unembed.bias"] = -(t * t)
    return Construction(
        task="index", n=n, task_params={"alphabet": k}, config=cfg, state_dict=sd,
        precision_bits=precision_needed(n, vocab), precision_formula=PRECISION_FORMULA,
        channels=dict(CHANNELS), scalars={"beta": beta},
        notes="score beta*(2ij - j^2) peaks at j = i; logits 2ty - t^2 decode the nearest token")


def precision_for(n: int, alphabet: int | None = None) -> int:
    """Claimed p(n) for Index_n with the default (or given) alphabet."""
    k = n + 1 if alphabet is None else alphabet
    return precision_needed(n, max(k, n + 1))
