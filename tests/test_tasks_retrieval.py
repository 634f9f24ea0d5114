"""Tests of rnngap.tasks: Index, AR, c-gram retrieval, Counting (Defs 4.2-4.5).

The references below are deliberately naive pure-python loops, written from the definitions
and independent of the vectorized code under test.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.tasks.ar import ARTask
from rnngap.tasks.base import ENUMERATE_LIMIT, RetrievalTask
from rnngap.tasks.cgram import CGramTask
from rnngap.tasks.counting import CountingTask
from rnngap.tasks.index import IndexTask
from rnngap.tasks.registry import TASKS, make_task, task_params


# ----- naive references -------------------------------------------------------------------
def ref_valid(task: RetrievalTask, row: list[int]) -> bool:
    n = task.n
    if isinstance(task, IndexTask):
        return all(0 <= v < task.k for v in row[:n]) and 1 <= row[n] <= n
    if isinstance(task, ARTask):
        keys = [row[2 * j] for j in range(task.m)]
        return (all(0 <= v < task.k for v in row) and len(set(keys)) == len(keys)
                and row[n] in keys)
    if isinstance(task, CGramTask):
        m = task.c - 1
        found = any(row[s:s + m] == row[n:] for s in range(n - task.c + 1))
        return all(0 <= v < task.k for v in row) and found
    assert isinstance(task, CountingTask)
    ok = all(0 <= v < task.k for v in row[:n + 1])
    return ok if task.exact else ok and 0 <= row[n + 1] <= n


def ref_answer(task: RetrievalTask, row: list[int]) -> int:
    n = task.n
    if isinstance(task, IndexTask):
        return row[row[n] - 1]
    if isinstance(task, ARTask):
        for j in range(task.m):
            if row[2 * j] == row[n]:
                return row[2 * j + 1]
        raise AssertionError("query not found")
    if isinstance(task, CGramTask):
        m = task.c - 1
        for s in range(n - task.c, -1, -1):          # 0-based starts, last first
            if row[s:s + m] == row[n:]:
                return row[s + m]
        raise AssertionError("query not found")
    assert isinstance(task, CountingTask)
    count = sum(1 for v in row[:n] if v == row[n])
    return count if task.exact else int(count > row[n + 1])


TINY: list[RetrievalTask] = [
    IndexTask(1), IndexTask(3), IndexTask(4, alphabet=2), IndexTask(2, alphabet=1),
    ARTask(2), ARTask(4), ARTask(4, alphabet=2), ARTask(6, alphabet=3),
    CGramTask(2), CGramTask(3, c=2, alphabet=3), CGramTask(3, c=3, alphabet=3),
    CGramTask(5, c=3, alphabet=2), CGramTask(5, c=4, alphabet=2), CGramTask(4, c=2, alphabet=1),
    CountingTask(1), CountingTask(3, alphabet=2), CountingTask(2),
    CountingTask(3, exact=True), CountingTask(2, alphabet=3, exact=True),
]


def all_rows(task: RetrievalTask) -> np.ndarray:
    """Every row of [0, V)^L, plus rows with a token at -1 and at V (must be invalid)."""
    vals = range(task.vocab_size())
    rows = np.array(list(itertools.product(vals, repeat=task.seq_len())), dtype=np.int64)
    out_of_range = np.repeat(rows[:1], 2 * task.seq_len(), axis=0)
    for j in range(task.seq_len()):
        out_of_range[2 * j, j] = -1
        out_of_range[2 * j + 1, j] = task.vocab_size()
    return np.concatenate([rows, out_of_range])


# ----- exhaustive tiny cases ----------------------------------------------------------------
@pytest.mark.parametrize("task", TINY, ids=repr)
def test_enumerate_is_exactly_the_valid_set(task: RetrievalTask) -> None:
    rows = all_rows(task)
    ref = np.array([ref_valid(task, r) for r in rows.tolist()])
    assert (task.is_valid(rows) == ref).all()
    blocks = list(task.enumerate(batch=7))
    assert all(0 < b.shape[0] <= 7 and b.dtype == np.int64 for b in blocks)
    got = np.concatenate(blocks).tolist()
    assert len(got) == task.num_inputs()
    assert len({tuple(r) for r in got}) == len(got), "duplicates in enumerate"
    assert {tuple(r) for r in got} == {tuple(r) for r in rows[ref].tolist()}
    valid = rows[ref]
    assert task.solve(valid).tolist() == [ref_answer(task, r) for r in valid.tolist()]


@pytest.mark.parametrize("n,c,k", [(n, c, k) for n in range(2, 9) for c in range(2, min(n, 5) + 1)
                                   for k in (1, 2, 3) if k**n <= 7000])
def test_cgram_count_matches_enumeration(n: int, c: int, k: int) -> None:
    task = CGramTask(n, c=c, alphabet=k)
    rows = np.concatenate(list(task.enumerate(batch=4096)))
    assert rows.shape[0] == task.num_inputs()
    assert task.is_valid(rows).all()
    assert len({tuple(r) for r in rows.tolist()}) == rows.shape[0]


def ref_containing_count(m: int, k: int, length: int) -> int:
    """sum_y #{w in [k]^length containing y}, by a KMP-style automaton DP (naive)."""
    total = 0
    for y in itertools.product(range(k), repeat=m):
        def step(state: int, a: int, y: tuple[int, ...] = y) -> int:
            s = list(y[:state]) + [a]
            for j in range(min(len(s), m), -1, -1):
                if tuple(s[len(s) - j:]) == y[:j]:
                    return j
            return 0
        counts = [1] + [0] * m                     # state m is absorbing ("seen y")
        for _ in range(length):
            new = [0] * (m + 1)
            new[m] = counts[m] * k
            for state in range(m):
                for a in range(k):
                    new[step(state, a)] += counts[state]
            counts = new
        total += counts[m]
    return total


@pytest.mark.parametrize("n,c,k", [(30, 2, 5), (40, 3, 3), (25, 4, 2), (20, 3, 4), (3, 3, 7)])
def test_cgram_count_large_n_against_dp(n: int, c: int, k: int) -> None:
    assert CGramTask(n, c=c, alphabet=k).num_inputs() == k * ref_containing_count(c - 1, k, n - 1)


def test_cgram_count_c2_closed_form() -> None:
    for n, k in [(50, 7), (200, 201), (13, 2)]:
        # y is one token: occurs in x_1..x_{n-1} unless all avoid it
        assert CGramTask(n, c=2, alphabet=k).num_inputs() == k * k * (k**(n - 1) - (k - 1)**(n - 1))


def test_num_inputs_closed_forms() -> None:
    assert IndexTask(10).num_inputs() == 11**10 * 10
    assert ARTask(6, alphabet=5).num_inputs() == 5 * 4 * 3 * 5**3 * 3
    assert CountingTask(4, alphabet=3).num_inputs() == 3**5 * 5
    assert CountingTask(4, alphabet=3, exact=True).num_inputs() == 3**5


# ----- samplers -----------------------------------------------------------------------------
def task_strategy() -> st.SearchStrategy[RetrievalTask]:
    n = st.integers(1, 12)
    return st.one_of(
        st.builds(lambda n, k: IndexTask(n, alphabet=k), n, st.integers(1, 15)),
        st.builds(lambda m, extra: ARTask(2 * m, alphabet=m + extra), st.integers(1, 6),
                  st.integers(0, 8)),
        st.builds(lambda n, c, k: CGramTask(n + c, c=c, alphabet=k), st.integers(0, 10),
                  st.integers(2, 4), st.integers(1, 4)),
        st.builds(lambda n, k, e: CountingTask(n, alphabet=k, exact=e), n, st.integers(1, 6),
                  st.booleans()),
    )


@settings(max_examples=80, deadline=None)
@given(task=task_strategy(), seed=st.integers(0, 2**32), batch=st.integers(1, 40))
def test_sample_valid_deterministic_and_correct(task: RetrievalTask, seed: int,
                                                batch: int) -> None:
    x, y = task.sample(batch, seed)
    assert x.shape == (batch, task.seq_len()) and y.shape == (batch,)
    assert x.dtype == np.int64 and y.dtype == np.int64
    assert task.is_valid(x).all()
    assert ((x >= 0) & (x < task.vocab_size())).all()
    assert y.tolist() == [ref_answer(task, r) for r in x.tolist()]
    assert (task.solve(x) == y).all()
    x2, y2 = task.sample(batch, seed)
    assert x.tobytes() == x2.tobytes() and y.tobytes() == y2.tobytes()


@pytest.mark.parametrize("task", [IndexTask(8), ARTask(8), CGramTask(8, c=3, alphabet=3),
                                  CountingTask(8, alphabet=3)], ids=repr)
def test_different_seeds_differ(task: RetrievalTask) -> None:
    assert task.sample(64, 0)[0].tobytes() != task.sample(64, 1)[0].tobytes()


@pytest.mark.parametrize("task", [IndexTask(3, alphabet=2), ARTask(4, alphabet=3)], ids=repr)
def test_uniform_samplers_hit_every_input_evenly(task: RetrievalTask) -> None:
    per_cell = 200
    x, _ = task.sample(task.num_inputs() * per_cell, seed=7)
    counts = Counter(map(tuple, x.tolist()))
    assert len(counts) == task.num_inputs()
    # sd ~ sqrt(200) ~ 14; the window is > 5 sd wide on each side (fixed seed: no flakiness)
    assert 120 < min(counts.values()) and max(counts.values()) < 290


def test_sampler_coverage() -> None:
    x, _ = IndexTask(6).sample(3000, 0)
    assert set(x[:, -1].tolist()) == set(range(1, 7))
    assert set(x[:, :6].ravel().tolist()) == set(range(7))
    ar = ARTask(6, alphabet=4)
    x, y = ar.sample(3000, 0)
    assert set(x[:, -1].tolist()) == set(range(4)) and set(y.tolist()) == set(range(4))
    pair = np.argmax(x[:, 0:6:2] == x[:, -1:], axis=1)
    assert set(pair.tolist()) == {0, 1, 2}
    cg = CGramTask(6, c=3, alphabet=2)
    x, y = cg.sample(3000, 0)
    assert {tuple(r) for r in x[:, 6:].tolist()} == set(itertools.product(range(2), repeat=2))
    match = cg._matches(x)
    assert match[:, -1].any() and match[:, 0].any()
    ct = CountingTask(5, alphabet=3)
    x, y = ct.sample(3000, 0)
    counts = (x[:, :5] == x[:, 5:6]).sum(axis=1)
    assert set(y.tolist()) == {0, 1}
    assert (counts == x[:, -1]).any() and (counts == x[:, -1] + 1).any() and (counts == 0).any()
    assert set(x[:, -1].tolist()) == set(range(6))
    x, y = CountingTask(4, alphabet=2, exact=True).sample(3000, 0)
    assert set(y.tolist()) == set(range(5))


def test_counting_sampler_mixture_proportions() -> None:
    # documented: q from the data w.p. 1/2; t on the boundary (count-1 or count) w.p. 1/2
    x, _ = CountingTask(10).sample(4000, 5)
    counts = (x[:, :10] == x[:, 10:11]).sum(axis=1)
    t = x[:, -1]
    # P(count >= 1) = 1/2 + 1/2 * (1 - (10/11)**10) ~ 0.81; uniform q alone gives ~0.61
    assert (counts >= 1).mean() > 0.72
    # P(count == t+1) >= 1/4 * P(count >= 1) ~ 0.2; a uniform t alone gives ~0.05
    assert (counts == t + 1).mean() > 0.17 and (counts == t).mean() > 0.17


def test_ar_sampler_large_alphabet_memory_chunks() -> None:
    task = ARTask(40, alphabet=5000)
    x, y = task.sample(2000, 3)
    assert task.is_valid(x).all() and (task.solve(x) == y).all()


# ----- conventions, spelled out -------------------------------------------------------------
def test_conventions_by_example() -> None:
    assert IndexTask(4).solve([[2, 1, 2, 3, 1]]).tolist() == [2]
    assert IndexTask(4).solve([[0, 1, 2, 3, 4]]).tolist() == [3]
    # AR: a value equal to q is not a match; only keys are searched
    assert ARTask(4).solve([[3, 1, 1, 4, 1]]).tolist() == [4]
    # c-gram: last occurrence with a follower; the occurrence ending at x_n does not count
    cg = CGramTask(6, c=2, alphabet=9)
    assert cg.solve([[5, 1, 5, 2, 3, 5, 5]]).tolist() == [2]
    assert not cg.is_valid(np.array([[1, 2, 3, 4, 6, 5, 5]]))[0]
    # overlapping occurrences: 0 0 0 1 with query 0 0 -> last start is s=2 -> x_4 = 1
    assert CGramTask(4, c=3, alphabet=2).solve([[0, 0, 0, 1, 0, 0]]).tolist() == [1]
    # counting: strictly more than t
    ct = CountingTask(4)
    assert ct.solve([[2, 2, 0, 2, 2, 3], [2, 2, 0, 2, 2, 2]]).tolist() == [0, 1]
    assert CountingTask(4, exact=True).solve([[2, 2, 0, 2, 2]]).tolist() == [3]


def test_is_valid_rejects() -> None:
    assert not IndexTask(3).is_valid(np.array([[0, 1, 2, 0], [0, 1, 2, 4], [0, 4, 2, 1]])).any()
    assert not ARTask(4).is_valid(np.array([[1, 0, 1, 2, 1], [1, 0, 2, 2, 3],
                                            [1, 5, 2, 2, 1]])).any()
    assert not CGramTask(3, c=2, alphabet=3).is_valid(np.array([[0, 1, 2, 2], [0, 1, 3, 0]])).any()
    assert not CountingTask(2).is_valid(np.array([[0, 1, 0, 3], [0, 1, 3, 0]])).any()


@pytest.mark.parametrize("task", TINY[::3], ids=repr)
def test_solve_rejects_bad_inputs(task: RetrievalTask) -> None:
    with pytest.raises(ValueError):
        task.solve(np.zeros((2, task.seq_len() + 1), dtype=np.int64))
    with pytest.raises(ValueError):
        task.solve(np.zeros(task.seq_len(), dtype=np.int64))
    with pytest.raises(ValueError):
        task.solve(np.full((1, task.seq_len()), -1))
    with pytest.raises(ValueError):
        task.solve(np.zeros((1, task.seq_len()), dtype=np.float64))


# ----- adversarial families -----------------------------------------------------------------
ADV = [IndexTask(1), IndexTask(7), IndexTask(9, alphabet=2), IndexTask(3, alphabet=1),
       ARTask(2), ARTask(10), ARTask(8, alphabet=4), CGramTask(2), CGramTask(12, c=3),
       CGramTask(9, c=4, alphabet=2), CGramTask(5, c=5, alphabet=3), CountingTask(1),
       CountingTask(7), CountingTask(6, alphabet=2), CountingTask(5, exact=True),
       CountingTask(4, alphabet=1)]


@pytest.mark.parametrize("task", ADV, ids=repr)
def test_adversarial_families_valid(task: RetrievalTask) -> None:
    fams = task.adversarial()
    assert fams
    for name, rows in fams.items():
        assert rows.ndim == 2 and rows.shape[1] == task.seq_len() and rows.shape[0] > 0, name
        assert rows.dtype == np.int64
        assert all(ref_valid(task, r) for r in rows.tolist()), name
        assert task.solve(rows).tolist() == [ref_answer(task, r) for r in rows.tolist()], name


def test_adversarial_expected_families_and_answers() -> None:
    ix = IndexTask(7).adversarial()
    assert {"all_zero", "all_max", "alternating_0_max", "spike_at_query", "query_first",
            "query_last", "data_equals_query"} <= set(ix)
    assert (IndexTask(7).solve(ix["spike_at_query"]) == 7).all()
    assert (ix["query_first"][:, -1] == 1).all() and (ix["query_last"][:, -1] == 7).all()
    ar = ARTask(10)
    fams = ar.adversarial()
    assert {"values_equal_query", "values_are_keys_shifted", "query_first_pair",
            "query_last_pair", "largest_keys"} <= set(fams)
    assert (fams["largest_keys"][:, 0] == 10).all()
    cg = CGramTask(12, c=3)
    fams = cg.adversarial()
    assert {"all_equal", "ramp_every_start", "query_at_first_start", "query_at_last_start",
            "alternating", "occurrence_at_end_ignored", "differ_in_last_token",
            "repeated_different_followers"} <= set(fams)
    assert cg.solve(fams["occurrence_at_end_ignored"]).tolist() == [1]
    rep = fams["repeated_different_followers"]
    assert cg.solve(rep)[0] == rep[0, 11 - (11 - 2) % 3]     # the follower at the last block
    assert len(set(cg.solve(fams["differ_in_last_token"]).tolist())) > 1
    ct = CountingTask(7)
    fams = ct.adversarial()
    assert (ct.solve(fams["count_t_plus_1"]) == 1).all()
    assert (ct.solve(fams["count_exactly_t"]) == 0).all()
    assert (fams["count_t_plus_1"][:, 7] == 7).all()          # the largest token V-1 = k-1


# ----- parameters, registry, presentation ---------------------------------------------------
@pytest.mark.parametrize("name,params", [
    ("index", {"n": 0}), ("index", {"n": -3}), ("index", {"n": 2.5}), ("index", {"n": True}),
    ("index", {"n": 3, "alphabet": 0}), ("ar", {"n": 3}), ("ar", {"n": 0}),
    ("ar", {"n": 8, "alphabet": 3}), ("cgram", {"n": 5, "c": 1}), ("cgram", {"n": 2, "c": 3}),
    ("cgram", {"n": 5, "alphabet": -1}), ("counting", {"n": 0}),
    ("counting", {"n": 3, "exact": "yes"}), ("counting", {"n": 3, "alphabet": 0}),
    ("nosuch", {"n": 3}), ("index", {"n": 3, "c": 2}), ("ar", {}),
])
def test_invalid_params_raise_value_error(name: str, params: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_task(name, **params)


def test_unknown_task_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="ar, cgram, counting, index"):
        make_task("nosuch", n=3)


def test_registry_and_describe() -> None:
    assert set(TASKS) == {"index", "ar", "cgram", "counting"}
    assert task_params("cgram") == ["n", "c", "alphabet"]
    assert make_task("cgram", n=6, c=3) == CGramTask(6, 3, 7)
    for name, cls in TASKS.items():
        task = make_task(name, n=6)
        assert isinstance(task, cls)
        desc = task.describe()
        assert json.loads(json.dumps(desc)) == desc
        assert desc["V"] == task.vocab_size() and desc["L"] == task.seq_len()
        assert desc["name"] == name and desc["params"]["n"] == 6 and desc["convention"]
    assert IndexTask(5).vocab_size() == 6 and IndexTask(5, alphabet=20).vocab_size() == 20
    assert CountingTask(5, alphabet=2).vocab_size() == 6 and CountingTask(5).seq_len() == 7
    assert ARTask(6).vocab_size() == 7 and CGramTask(6, c=4).seq_len() == 9


def test_render() -> None:
    assert IndexTask(3).render(np.array([2, 0, 3, 3])) == "x = 2 0 3 | i = 3 -> 3"
    assert ARTask(4).render(np.array([4, 1, 2, 3, 2])) == "(4:1) (2:3) | q = 2 -> 3"
    assert CGramTask(4, c=2).render(np.array([1, 2, 1, 3, 1])).endswith("-> 3")
    assert CountingTask(3).render(np.array([1, 2, 1, 1, 1])) == "x = 1 2 1 | q = 1, t = 1 -> 1"
    assert IndexTask(3).render(np.array([2, 0, 3, 0])).endswith("invalid")


def test_enumerate_limits() -> None:
    big = IndexTask(12)
    assert big.num_inputs() > ENUMERATE_LIMIT
    with pytest.raises(ValueError):
        big.enumerate()
    with pytest.raises(ValueError):
        IndexTask(2).enumerate(batch=0)
    with pytest.raises(ValueError):
        IndexTask(2).sample(0, 0)
    with pytest.raises(ValueError):
        IndexTask(2).sample(3, -1)
