"""A constant-size Transformer for associative recall AR_n (Theorem 4.6, first half; claim C2).

Task convention (``tasks.ar``): the row ``k_1 v_1 .. k_m v_m q`` with pairwise distinct keys and
``q`` equal to one key; the answer is the value right after that key.

This is the gram construction of ``constructions.retrieval.cgram`` with one pointer head (m = 1), W
= 1,
T = 0 (no tie-break: the match is unique) and EXCL(j) = [j odd], which excludes the key positions
and the query position n+1 (n is even). Two layers, one head, width 8, for every n.

Layer 1 copies x_{j-1} into PREV(j). Layer 2 at the query position scores position j by
``beta (2 q PREV(j) - PREV(j)^2 - EXCL(j)) = beta (q^2 - (PREV(j) - q)^2 - EXCL(j))``: the even
position right after the key q scores ``beta q^2``, every other position at most ``beta`` less,
so the attention is exactly one-hot (``beta = 1024``) and the retrieved token is that value. The
unembedding ``2tY - t^2`` decodes it with integer margin >= 1.

n enters only through the positional formula (j, j^2, j mod 2). Precision (all integers exact)::

    p(n) = ceil(log2(max((n+1)^2, (k-1)^2 + 1)))      ~ 2 log2 n
"""

from __future__ import annotations

import numpy as np

from rnngap.constructions.base import Construction
from rnngap.constructions.retrieval.cgram import build_gram, gram_precision
from rnngap.tasks.ar import ARTask

PRECISION_FORMULA = "ceil(log2(max((n+1)^2, (k-1)^2 + 1)))"


def odd_positions(L: int) -> np.ndarray:
    """EXCL(j) = [j odd] for j = 1..L (keys and the query position)."""
    return (np.arange(1, L + 1) % 2 == 1).astype(np.float64)


def build(task: ARTask) -> Construction:
    """The AR construction for ``task`` (its n and alphabet); weights in float64."""
    n, k = task.n, task.k
    L = n + 1
    return build_gram("ar", n, L, 1, k, task.vocab_size(), 1, 0, odd_positions(L),
                      {"alphabet": k}, PRECISION_FORMULA,
                      "layer 1 copies x_{j-1}; layer 2 scores 2q PREV - PREV^2 - [j odd]: "
                      "the value after the key q wins")


def precision_for(n: int, alphabet: int | None = None) -> int:
    """Claimed p(n) for AR_n with the default (or given) alphabet."""
    k = n + 1 if alphabet is None else alphabet
    return gram_precision(n + 1, 1, k, k, 1, 0)
