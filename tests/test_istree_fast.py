"""The compiled IsTree chains of thought (tasks/istree_fast.py, optional numba) write exactly
the rows of the Python reference: tokens, loss mask and retrieved mask, for trees and non-trees
(a DFS that meets a visited vertex stops at once), both families, every format."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnngap.learned.data import DataSpec, _istree_plain_batch, make_batch
from rnngap.tasks import istree, istree_fast

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not istree_fast.AVAILABLE,
                                 reason="numba not installed (pip install 'rnngap[fast]')")]


def _reference(n: int, edges: list, labels: np.ndarray, fmt: str):
    exs = [istree.encode(n, e, fmt, label=bool(lab)) for e, lab in zip(edges, labels)]
    T = max(len(x.tokens) for x in exs)
    tok = np.full((len(exs), T), istree.PAD, np.int64)
    loss = np.zeros((len(exs), T), bool)
    ret = np.zeros((len(exs), T), bool)
    for i, x in enumerate(exs):
        k = len(x.tokens)
        tok[i, :k], loss[i, :k], ret[i, :k] = x.tokens, x.loss_mask, x.retrieved_mask
    return tok, loss, ret


def _check(n: int, edges: list, fmt: str) -> None:
    labels = np.array([istree.is_tree(n, e) for e in edges])
    head = _istree_plain_batch(DataSpec("istree", n, "plain"), edges, labels).tokens[:, :-1]
    got = istree_fast.cot_batch(n, np.stack(edges), head, labels, fmt)
    want = _reference(n, edges, labels, fmt)
    for g, w in zip(got, want):
        assert g.shape == w.shape and np.array_equal(g, w)


@pytest.mark.parametrize("fmt", ["cot", "retrieval"])
def test_every_edge_set_at_n5_in_two_orders(fmt: str) -> None:
    n = 5
    pairs = [(u, v) for u in range(n) for v in range(u)]
    sets = [np.array(s, np.int64) for s in itertools.combinations(pairs, n - 1)]
    _check(n, sets, fmt)
    _check(n, [s[::-1].copy() for s in sets], fmt)


@pytest.mark.parametrize("fmt", ["cot", "retrieval"])
@pytest.mark.parametrize("family", ["binary", "random"])
def test_sampled_graphs_match_the_reference(fmt: str, family: str) -> None:
    for n in (4, 9, 33, 64):
        edges, _ = istree.sample_graphs(n, 48, family, seed=n)
        _check(n, [np.asarray(e, np.int64) for e in edges], fmt)


@pytest.mark.parametrize("fmt", ["cot", "retrieval"])
def test_training_batches_use_it_and_are_unchanged(monkeypatch, fmt: str) -> None:
    spec = DataSpec("istree", 16, fmt)
    calls = []
    real = istree_fast.cot_batch
    monkeypatch.setattr(istree_fast, "cot_batch", lambda *a: calls.append(a[-1]) or real(*a))
    fast = make_batch(spec, 32, 0, 3)
    assert calls == [fmt]                      # the compiled path was taken
    monkeypatch.setattr(istree_fast, "AVAILABLE", False)
    slow = make_batch(spec, 32, 0, 3)
    assert calls == [fmt]                      # ... and not here
    for k in ("tokens", "loss_mask", "retrieved_mask", "prompt_len", "labels"):
        assert np.array_equal(getattr(fast, k), getattr(slow, k)), k


def test_bad_arrays_are_refused() -> None:
    head = np.zeros((1, 5), np.int64)
    with pytest.raises(ValueError, match="vertex ids"):
        istree_fast.cot_batch(4, np.array([[[5, 0], [1, 0], [2, 0]]]), head, np.ones(1), "cot")
    with pytest.raises(ValueError, match="expected edges"):
        istree_fast.cot_batch(4, np.zeros((1, 3)), head, np.ones(1), "cot")
    with pytest.raises(ValueError, match="fmt"):
        istree_fast.cot_batch(4, np.zeros((1, 3, 2), np.int64), head, np.ones(1), "plain")
