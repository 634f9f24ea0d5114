"""Exact verification of the AR construction (claim C2 for associative recall).

Claim: the Transformer of ``constructions.retrieval.ar`` run in the p-bit arithmetic of
``models.arith``
answers the value that follows the query key on EVERY valid input (pairwise distinct keys, the
query equal to one key) of length n.

The argument is the gram verifier's (``verify.retrieval.cgram``, steps 1-6) with one pointer head,
W = 1,
T = 0 and EXCL(j) = [j odd]: the match lemma shows that the even positions j whose preceding
token x_{j-1} equals q beat every other position by >= 1 (times beta); by the task convention the
keys are pairwise distinct and q is one of them, so exactly one even position matches (the value
right after the key q), the attention is exactly one-hot on it and Y is that value.
"""

from __future__ import annotations

import numpy as np

from rnngap.constructions.retrieval import ar as ar_construction
from rnngap.tasks.ar import ARTask
from rnngap.verify.retrieval.cgram import verify_gram
from rnngap.verify.verdict import ConstructionVerdict


def _families(task: ARTask) -> dict[str, np.ndarray]:
    """The task's families (small n) or cheap large-n ones: first/last pair queried, values
    equal to the query, values equal to other keys."""
    if task.n <= 256:
        return {k: v[:8] for k, v in task.adversarial().items()}
    m, k = task.m, task.k
    keys = np.arange(k - m, k, dtype=np.int64)[::-1].copy()
    rows = []
    for vals in (np.full(m, k - 1), np.roll(keys, 1), np.zeros(m, np.int64)):
        for j in (0, 1, m // 2, m - 1):
            row = np.empty(task.n + 1, np.int64)
            row[0:task.n:2], row[1:task.n:2], row[-1] = keys, vals, keys[j]
            rows.append(row)
    return {"largest keys; values max / other keys / 0; queries first, second, middle, last":
            np.stack(rows)}


def _witness_families(task: ARTask) -> dict[str, np.ndarray]:
    """Largest keys and values, all queries near the end (where the scores are largest)."""
    m, k = task.m, task.k
    keys = np.arange(k - m, k, dtype=np.int64)
    rows = []
    for vals in (np.full(m, k - 1), np.full(m, k - 2 if k > 1 else 0), keys[::-1].copy()):
        for j in sorted({0, m // 2, max(m - 2, 0), m - 1}):
            for order in (keys, keys[::-1]):
                row = np.empty(task.n + 1, np.int64)
                row[0:task.n:2], row[1:task.n:2], row[-1] = order, vals, order[j]
                rows.append(row)
    return {"largest keys and values, queries at the ends": np.stack(rows)}


def verify_ar(task: ARTask, precision: int | None = None, samples: int = 64,
              seed: int = 0) -> ConstructionVerdict:
    """Verify the AR construction for ``task``; returns the verdict dict (``verdict.KEYS``)."""
    c = ar_construction.build(task)
    return verify_gram(task, c, 1, 1, 0, ar_construction.odd_positions(task.n + 1), precision,
                       samples, seed, lambda: _families(task), lambda: _witness_families(task),
                       "AR convention: distinct keys make the even-position match unique")
