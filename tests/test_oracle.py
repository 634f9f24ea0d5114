"""Claim C7: RNN + associative-recall oracle (verify/bounds/oracle.py,
constructions/retrieval/ar_oracle.py)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from rnngap.cli import main
from rnngap.constructions.retrieval.ar_oracle import AROracleEnv, verify_ar_recall
from rnngap.verify.bounds import oracle as O

pytestmark = pytest.mark.timeout(300)


def test_oracle_rules_on_a_hand_example() -> None:
    d = (3, 1, 2, 3, 4, 3)            # 3 occurs at 0, 3 and (last, no successor) 5
    assert O.oracle_answer(d, 3, "first") == 1
    assert O.oracle_answer(d, 3, "last") == 4
    assert O.oracle_choices(d, 3) == {1, 4}
    assert O.oracle_answer(d, 0, "first") == O.NONE
    assert O.oracle_answer(d, 2, "first", "keys") == 3        # key positions 0, 2, 4
    assert O.oracle_answer(d, 1, "first", "keys") == O.NONE   # 1 sits at a value position
    with pytest.raises(ValueError, match="unknown occurrence rule"):
        O.oracle_answer(d, 3, "middle")


# (task, n, c) small enough to enumerate every input in well under a second
TINY = [("index", 3, 3), ("index", 4, 3), ("counting", 4, 3), ("counting-exact", 4, 3),
        ("cgram", 4, 3), ("cgram", 5, 3), ("ar", 4, 3)]


@pytest.mark.parametrize("task,n,c", TINY)
@pytest.mark.parametrize("rule", ["first", "last"])
@pytest.mark.parametrize("search", ["all", "keys"])
def test_family_never_exceeds_the_brute_force_count(task, n, c, rule, search) -> None:
    exact = O.brute_force(task, n, n + 1, rule, search, c)
    fam = O.family(task, n, n + 1, rule, search, c)
    assert (fam.size if fam else 1) <= exact.classes
    # conditioning on the oracle can only merge classes: at most the data strings' answer rows
    if exact.witness is not None:
        a, b, q = exact.witness
        assert O.signature(a, n + 1, exact.rule, search) == O.signature(b, n + 1, exact.rule,
                                                                         search)
        assert O.answer(task, a, q, c) != O.answer(task, b, q, c)


def test_ar_with_a_key_oracle_needs_no_state_and_with_any_position_it_does() -> None:
    for rule in ("first", "last"):
        assert O.brute_force("ar", 4, 5, rule, "keys").classes == 1
        assert O.brute_force("ar", 4, 5, rule, "all").classes > 1


def test_counting_with_the_oracle_is_at_most_the_plain_count() -> None:
    for n in (3, 4):
        plain = math.comb(n + n, n)       # C(n+k-1, k-1) with k = n+1
        assert 1 < O.brute_force("counting", n, n + 1, "first").classes <= plain


def test_adversarial_is_the_larger_of_first_and_last() -> None:
    ct = O.count("cgram", 5, 6, "adversarial", c=3)
    first = O.count("cgram", 5, 6, "first", c=3).prefix_classes
    last = O.count("cgram", 5, 6, "last", c=3).prefix_classes
    assert ct.prefix_classes == max(first, last) and not ct.exact


@given(st.sampled_from(["index", "counting", "counting-exact", "cgram", "ar"]),
       st.integers(12, 90), st.sampled_from(["first", "last"]), st.sampled_from(["all", "keys"]),
       st.integers(0, 2**31))
def test_family_members_share_one_signature_and_are_told_apart(task, n, rule, search, seed):
    if task == "ar":
        n += n % 2
    k = n + 1
    fam = O.family(task, n, k, rule, search, 3)
    if fam is None:
        assert task == "ar" and search == "keys"
        return
    assert len(fam.base) == n and 0 <= min(fam.base) and max(fam.base) < k
    rows = [tuple(r) for r in fam.sample(16, np.random.default_rng(seed)).tolist()]
    sig = O.signature(rows[0], k, rule, search)
    assert all(O.signature(r, k, rule, search) == sig for r in rows)
    for a, b in itertools.combinations(rows[:8], 2):
        q = O.separating_query(fam, a, b)
        if q is None:
            assert task.startswith("counting") or a == b
            continue
        ya, yb = O.answer(task, a, q, 3), O.answer(task, b, q, 3)
        assert ya is not None and yb is not None and ya != yb


@pytest.mark.parametrize("task", ["index", "ar", "cgram", "counting"])
def test_family_bits_grow_linearly(task) -> None:
    b1 = O.family(task, 200, 201, "first", "all", 3).log2_size
    b2 = O.family(task, 400, 401, "first", "all", 3).log2_size
    assert b1 > 20 and b2 > 1.8 * b1


def test_failure_length_is_where_the_family_exceeds_the_state() -> None:
    for task in ("index", "cgram", "counting", "ar"):
        n = O.failure_length(task, 100, None, "first", "all", 3)
        assert O.family(task, n, n + 1, "first", "all", 3).log2_size > 100
    assert O.failure_length("ar", 100, None, "first", "keys") is None


@pytest.mark.parametrize("rule", ["first", "last", "adversarial"])
def test_rnn_with_a_key_oracle_solves_every_ar_input(rule) -> None:
    rep = verify_ar_recall(4, None, rule, "keys")
    assert rep.verified and rep.inputs == math.perm(5, 2) * 5**2 * 2
    assert rep.oracle_calls == rep.runs and rep.peak_bits <= rep.declared_bits


def test_rnn_with_an_any_position_oracle_fails_ar() -> None:
    rep = verify_ar_recall(4, None, "first", "all")
    assert not rep.verified and rep.failures > 0
    e = rep.example_failure
    assert e["oracle_answer"] != e["expected"]


def test_environment_refuses_malformed_queries() -> None:
    env = AROracleEnv(5, 4, "first", "keys")
    env.extend([1, 2, 3, 4])
    assert env.retrieve([1, 2]).token == env.NONE and env.failures == 1
    assert env.retrieve([9]).token == env.NONE and env.failures == 2
    assert env.retrieve([3]).token == 4 and env.retrieve([2]).token == env.NONE


def _json(args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_bound_oracle_json_interface() -> None:
    out = _json(["bound", "--task", "cgram", "--c", "3", "--oracle", "ar", "--n", "5", "--brute",
                 "--json"])
    assert {"task", "n", "oracle", "prefix_classes", "bits_needed", "exact"} <= set(out)
    assert out["exact"] and out["family_lower_bound"] <= out["prefix_classes"]
    assert out["prefix_classes"] == O.brute_force("cgram", 5, 6, "first", "all", 3).classes
    rows = _json(["bound", "--oracle", "ar", "--state-bits", "256", "--json"])
    assert [r["task"] for r in rows] == ["index", "ar", "cgram", "counting"]
    assert all(isinstance(r["failure_length"], int) for r in rows)
    big = _json(["bound", "--task", "counting", "--oracle", "ar", "--n", "300", "--state-bits",
                 "64", "--json"])
    assert not big["exact"] and big["bits_needed"] > 250 and big["state_bits_too_few"]
    assert big["failure_length"] == O.failure_length("counting", 64, None, "first", "all")


def test_fool_oracle_pair_reruns() -> None:
    out = _json(["fool", "--task", "cgram", "--oracle", "ar", "--state-bits", "10", "--json"])
    assert out["verified"] and out["signature_equal"]
    assert out["data_a"] != out["data_b"] and out["answer_a"] != out["answer_b"]
    k = out["alphabet"]
    assert O.signature(out["data_a"], k, "first") == O.signature(out["data_b"], k, "first")


def test_claims_c7_has_a_computed_status() -> None:
    r = CliRunner().invoke(main, ["claims", "--claim", "C7", "--quick", "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)[0]
    assert row["status"] == "partially verified" and "ar-oracle" in row["evidence"]


def test_fixed_alphabet_ar_failure_length_is_found() -> None:
    """With k fixed the AR family shrinks again beyond some n: the search must not give up."""
    n = O.failure_length("ar", 128, 100, "first")
    assert n is not None and n <= 200
    assert O.family("ar", n, 100, "first").log2_size > 128


def test_bound_cgram_oracle_defaults_to_c3_and_says_so() -> None:
    r = CliRunner().invoke(main, ["bound", "--task", "cgram", "--oracle", "ar", "--n", "5",
                                  "--occurrence", "last", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["c"] == 3
    r = CliRunner().invoke(main, ["bound", "--task", "cgram", "--oracle", "ar", "--n", "5"])
    assert "cgram (c=3)" in r.stdout
