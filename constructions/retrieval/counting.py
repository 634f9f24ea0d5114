"""A constant-size Transformer for Counting_n, threshold form (Theorem 4.6, first half; C2).

Task convention (``tasks.counting``): the row ``x_1..x_n q t`` -> 1 if ``#{j <= n: x_j = q} > t``
else 0 (t in [0, n]). Exact-count variant: the row ``x_1..x_n q`` -> the count; the anchor is
then the last position itself (its token is q), and the unembedding is
``logit_t = 2 F u_t - u_t^2 = F^2 - (F - u_t)^2`` with ``u_t = 1/(t+1)``: the count whose u_t is
nearest to F wins (adjacent logits differ by about 1/((c+1)(c+2))^2, hence ~2 log2 n bits).

Two layers, one head, width 9, for every n (the exact-count variant: ONE layer, the counting
head alone, since its query reads q from its own position). Residual channels::

    TOK = 0, TOK2 = 1, TH = 2     token t embeds as (t, t^2, theta_t),
                                  theta_t = (1/(t+1) + 1/(t+2)) / 2 (a fixed function of t)
    POS = 3, POS2 = 4             positional table (j, j^2)
    ANCHOR = 5, EXCL = 6          positional indicators [j = n+1] (the q token), [j = n+2] (t)
    PREV = 7                      x_{j-1} (layer 1)
    F = 8                         the attention weight of the anchor (layer 2)

Layer 1 is the pointer head of ``constructions.retrieval.cgram`` (r = 1): PREV(n+2) = q exactly.
Layer 2 at the last position scores position j by ``beta (2 q TOK(j) - TOK2(j) - EXCL(j)) =
beta (q^2 - (x_j - q)^2 - EXCL(j))``: the positions j <= n with x_j = q and the anchor n+1 (its
token is q) score ``beta q^2``, every other position at least ``beta = 1024`` less. So exactly
``cnt + 1`` exponentials equal 1 and the rest are exactly 0; the value is ANCHOR(j), hence

    F = r(1 / (cnt + 1))       (one correctly rounded float64 division, then p-bit rounding).

The readout is ``logit_1 = TH - F``, ``logit_0 = 0``, ``logit_t = -2`` (t >= 2): the answer is 1
iff ``r(theta_t) > F``, and theta_t lies strictly between 1/(t+2) (count t+1) and 1/(t+1)
(count t), a gap of 1/(2(t+1)(t+2)) on each side, i.e. a relative gap 1/(2(t+2)).

n enters only through the positional formula (j, j^2 and the two indicators at n+1, n+2).
Precision: the integers (positions up to (n+2)^2, layer-2 scores up to (V-1)^2 + 1) must be
exact, and the readout needs 2^-p below the relative gap::

    p(n) = max(ceil(log2((n+2)^2)), ceil(log2((V-1)^2 + 1)), ceil(log2(n+2)) + 3)
"""

from __future__ import annotations

import math

import torch

from rnngap.constructions.base import Construction, check_weights, zero_state_dict
from rnngap.constructions.retrieval.cgram import BETA, bits_for
from rnngap.models.transformer import TransformerConfig
from rnngap.tasks.counting import CountingTask

TOK, TOK2, TH, POS, POS2, ANCHOR, EXCL, PREV, F = range(9)
CHANNELS = {"TOK": TOK, "TOK2": TOK2, "TH": TH, "POS": POS, "POS2": POS2, "ANCHOR": ANCHOR,
            "EXCL": EXCL, "PREV": PREV, "F": F}
#: index of the counting head: layer 2 after the pointer (threshold form), the only layer (exact)
COUNT_LAYER = {False: 1, True: 0}
PRECISION_FORMULA = "max(ceil(log2((n+2)^2)), ceil(log2((V-1)^2 + 1)), ceil(log2(n+2)) + 3)"
EXACT_FORMULA = "max(ceil(log2(max((n+1)^2, (V-1)^2))), ceil(log2(6 (n+2)^2)) + 1)"


def integer_bounds(n: int, vocab: int, k: int) -> dict[str, int]:
    """Largest magnitude of each family of integers in the forward pass."""
    return {"positions (n+2)^2": (n + 2) ** 2, "layer-2 scores (V-1)^2 + 1": (vocab - 1) ** 2 + 1,
            "layer-2 query 2K": 2 * (k - 1)}


def readout_bits(n: int) -> int:
    """Bits for the readout: 2^-p * 4 (n+2) < 1 with room for double rounding."""
    return math.ceil(math.log2(n + 2)) + 3


def precision_needed(n: int, vocab: int, k: int) -> int:
    """The precision p(n) this construction claims (see the module docstring)."""
    return max(bits_for(max(integer_bounds(n, vocab, k).values())), readout_bits(n))


def theta(t: torch.Tensor) -> torch.Tensor:
    """theta_t = (1/(t+1) + 1/(t+2)) / 2 = (2t + 3) / (2 (t+1) (t+2)), in float64."""
    return (2 * t + 3) / (2 * (t + 1) * (t + 2))


def exact_readout_bits(n: int) -> int:
    """Bits for the exact-count readout: adjacent logits differ by ~1/(c+1)^2(c+2)^2 while
    their rounding errors are ~2^-p * 3/(c+1)^2, so 2^p must exceed ~6 (n+2)^2."""
    return math.ceil(math.log2(6 * (n + 2) ** 2)) + 1


def build(task: CountingTask) -> Construction:
    """The Counting construction for ``task`` (threshold form, or the exact-count variant:
    row ``x_1..x_n q``, anchor = the last position, ``logit_t = 2F/(t+1) - 1/(t+1)^2``)."""
    n, k, vocab = task.n, task.k, task.vocab_size()
    exact = task.exact
    L, d, D = (n + 1 if exact else n + 2), 9, 3
    f64 = torch.float64
    # the exact-count variant reads q from its own position (the last token IS q): it needs no
    # pointer layer, so it is ONE layer (a zero first layer would be an idle layer counted as depth)
    cfg = TransformerConfig(vocab_size=vocab, d_model=d, n_layers=1 if exact else 2, n_heads=1, d_head=D,
                            d_mlp=1, max_len=L, norm="none", pos="table", mlp="relu",
                            bias=True, attn_scale=1.0)
    check_weights(cfg)
    t = torch.arange(vocab, dtype=f64)
    j = torch.arange(1, L + 1, dtype=f64)
    sd: dict[str, torch.Tensor] = {}
    emb = torch.zeros(vocab, d, dtype=f64)
    emb[:, TOK], emb[:, TOK2], emb[:, TH] = t, t * t, theta(t)
    sd["embed.weight"] = emb
    pos = torch.zeros(L, d, dtype=f64)
    pos[:, POS], pos[:, POS2] = j, j * j
    pos[n, ANCHOR] = 1.0
    if not exact:
        pos[n + 1, EXCL] = 1.0
    sd["pos_table"] = pos
    sd.update({k: v for k, v in zero_state_dict(cfg).items() if k.startswith("blocks.")})
    if not exact:       # layer 1: the pointer head, PREV(n+2) = q
        a = "blocks.0.attn."
        sd[a + "q_proj.weight"][0, POS] = BETA
        sd[a + "q_proj.bias"][0], sd[a + "q_proj.bias"][1] = -BETA, BETA
        sd[a + "k_proj.weight"][0, POS] = 2.0
        sd[a + "k_proj.weight"][1, POS2] = -1.0
        sd[a + "v_proj.weight"][0, TOK] = 1.0
        sd[a + "o_proj.weight"][PREV, 0] = 1.0
    a = f"blocks.{COUNT_LAYER[exact]}.attn."
    sd[a + "q_proj.weight"][0, TOK if exact else PREV] = 2.0 * BETA
    sd[a + "q_proj.bias"][1], sd[a + "q_proj.bias"][2] = BETA, BETA
    sd[a + "k_proj.weight"][0, TOK] = 1.0
    sd[a + "k_proj.weight"][1, TOK2] = -1.0
    sd[a + "k_proj.weight"][2, EXCL] = -1.0
    sd[a + "v_proj.weight"][0, ANCHOR] = 1.0
    sd[a + "o_proj.weight"][F, 0] = 1.0
    w_u = torch.zeros(vocab, d, dtype=f64)
    if exact:
        w_u[:, F] = 2.0 / (t + 1)
        b_u = -1.0 / ((t + 1) * (t + 1))
    else:
        w_u[1, TH], w_u[1, F] = 1.0, -1.0
        b_u = torch.full((vocab,), -2.0, dtype=f64)
        b_u[0] = b_u[1] = 0.0
    sd["unembed.weight"], sd["unembed.bias"] = w_u, b_u
    return Construction(
        task="counting", n=n, task_params={"alphabet": k, "exact": exact}, config=cfg,
        state_dict=sd, precision_bits=(precision_exact(n, vocab, k) if exact else
                                       precision_needed(n, vocab, k)),
        precision_formula=EXACT_FORMULA if exact else PRECISION_FORMULA,
        channels=dict(CHANNELS), scalars={"beta": BETA},
        notes=("the single layer" if exact else "layer 2") + " attends uniformly to the "
              "occurrences of q and the q token itself; the anchor's weight 1/(cnt+1) is "
              + ("decoded as the count" if exact else "compared with theta_t"))


def precision_exact(n: int, vocab: int, k: int) -> int:
    """p(n) of the exact-count variant (no threshold token: positions up to (n+1)^2)."""
    ints = max((n + 1) ** 2, (vocab - 1) ** 2, 2 * (k - 1))
    return max(bits_for(ints), exact_readout_bits(n))


def precision_for(n: int, alphabet: int | None = None, exact: bool = False) -> int:
    """Claimed p(n) for Counting_n (threshold form, or exact) with the default alphabet."""
    k = n + 1 if alphabet is None else alphabet
    vocab = max(k, n + 1)
    return precision_exact(n, vocab, k) if exact else precision_needed(n, vocab, k)
