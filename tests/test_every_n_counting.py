"""Range verification (issue 17) of Counting: Transformer and hybrid, threshold and exact forms."""

from __future__ import annotations

import itertools

import pytest
import torch

from rnngap.constructions.retrieval import counting as cc
from rnngap.constructions.retrieval import hybrid as hyb
from rnngap.verify.every_n import Block, RangeError, prover_for, verify_range
from rnngap.verify.every_n import counting as ec

pytestmark = pytest.mark.timeout(60)

FORMS = [(m, e) for m in ("transformer", "hybrid") for e in (False, True)]
COMMON = {"precision-emulable", "construction-structure", "domain-monotone", "integer-exactness",
          "float64-sums-exact", "softmax-underflow", "exponent-gap"}


def _names(model: str, exact: bool) -> set[str]:
    names = set(COMMON) | {"readout-exact" if exact else "readout"}
    if model == "hybrid":
        return names | {"rnn-symbolic", "attention-maxima", "match-gap"}
    names |= {"layer2-maxima", "match-gap (m=1)"}
    return names if exact else names | {"layer1-exact", "pointer-gap"}


def _tiles(prover, v, n_min, n_max):
    rows = v["blocks"]
    assert rows[0]["n_lo"] == n_min and rows[-1]["n_hi"] == n_max
    for x, y in itertools.pairwise(rows):
        assert y["n_lo"] == x["n_hi"] + 1
        assert prover.key(x["n_hi"]) != prover.key(y["n_lo"])
    for r in rows:
        for n in range(r["n_lo"], r["n_hi"] + 1):
            assert prover.key(n) == (r["precision_bits"], r["scalars"])


@pytest.mark.parametrize("model,exact", FORMS)
def test_range_verified_with_agreeing_cross_checks(model, exact):
    prover = prover_for("counting", model, exact=exact, alphabet=None, c=3)  # c: ignored
    assert prover.params == {"alphabet": None, "exact": exact}
    v = verify_range(prover, 1, 300, cross_checks=2, cross_check_max_n=40, samples=4)
    assert v["verified"], v["failure"]
    assert v["first_failing_n"] is None
    _tiles(prover, v, 1, 300)
    checked = [c for r in v["blocks"] for c in r["cross_checks"]]
    assert len(checked) >= 10
    assert all(c["agrees"] and c["per_n_verified"] and c["builder_scalars_match"]
               for c in checked)
    assert all(c["n"] <= 40 for c in checked)
    for r in v["blocks"]:
        assert {x["name"] for x in r["lemmas"]} == _names(model, exact)
        assert all(x["result"] == "proved" and x["method"] for x in r["lemmas"])
    assert "not cross-checked" in v["meaning"]


@pytest.mark.parametrize("model,exact", FORMS)
def test_fixed_alphabet_and_limits(model, exact):
    prover = prover_for("counting", model, exact=exact, alphabet=3)
    v = verify_range(prover, 1, 120, cross_checks=2, cross_check_max_n=6, samples=2)
    assert v["verified"], v["failure"]
    assert all(c["agrees"] for r in v["blocks"] for c in r["cross_checks"])
    p = prover_for("counting", model, exact=exact)
    assert p.key(p.n_limit)[0] <= 52 < p.key(p.n_limit + 1)[0]
    with pytest.raises(RangeError, match="beyond"):
        verify_range(p, 1, p.n_limit + 1)
    for n in (1, 2, 9, 77):
        assert p.builder_scalars(n) == p.key(n)


def _theta_break(monkeypatch, model):
    """theta(t) moved above 1/(t+1) (the anchor weight at count t) for t >= 100."""
    if model == "transformer":
        orig = cc.theta
        monkeypatch.setattr(cc, "theta", lambda t: torch.where(
            t >= 100, (1 + 1 / 16) / (t + 1), orig(t)))
    else:
        orig = hyb.counting_theta
        monkeypatch.setattr(hyb, "counting_theta", lambda t: torch.where(
            t >= 100, (1 + 1 / 16) / (t + 2), orig(t)))


@pytest.mark.parametrize("model", ["transformer", "hybrid"])
def test_a_wrong_threshold_fails_at_the_named_n(monkeypatch, model):
    """The threshold formula breaks at t = 100: the range verdict fails first at n = 100 (the
    readout enumeration), the per-n verifier fails there with an explicit wrong input (count
    100 > t = 100 answered 1) and proves n = 99."""
    _theta_break(monkeypatch, model)
    prover = prover_for("counting", model)
    v = verify_range(prover, 80, 130, cross_checks=0, samples=4)
    assert not v["verified"] and v["first_failing_n"] == 100
    assert "readout" in v["failure"] and "n = 100" in v["failure"]
    bad = next(r for r in v["blocks"] if not r["verified"])
    at = bad["at_first_failing_n"]
    assert not at["per_n_verified"]
    assert at["witness"] is not None and (at["witness"]["expected"], at["witness"]["got"]) == (0, 1)
    assert prover.per_n(99, 4, 0)["verified"]
    blk = lambda hi: Block(bad["n_lo"], hi, bad["precision_bits"], bad["scalars"])
    assert all(x["result"] == "proved" for x in prover.prove(blk(99)))


@pytest.mark.parametrize("model,exact,patch,first", [
    ("transformer", True, "readout-4", 10),
    ("transformer", False, "cap12", 63),
    ("hybrid", True, "cap12", 59),
    ("hybrid", False, "cap12", 65),
])
def test_too_few_bits_fail_at_the_named_n(monkeypatch, model, exact, patch, first):
    """p(n) too small from some n on: the range verdict names the first n, where the per-n
    verifier fails too, and the n before it is proved both ways."""
    if patch == "readout-4":
        orig = cc.exact_readout_bits
        monkeypatch.setattr(cc, "exact_readout_bits", lambda n: orig(n) - 4)
    elif model == "transformer":
        orig = cc.precision_needed
        monkeypatch.setattr(cc, "precision_needed", lambda n, v, k: min(orig(n, v, k), 12))
    else:
        orig = hyb.counting_precision
        monkeypatch.setattr(hyb, "counting_precision",
                            lambda n, v, exact=False: min(orig(n, v, exact), 12))
    prover = prover_for("counting", model, exact=exact)
    v = verify_range(prover, 1, 150, cross_checks=0, samples=4)
    assert not v["verified"] and v["first_failing_n"] == first
    bad = next(r for r in v["blocks"] if not r["verified"])
    assert not bad["at_first_failing_n"]["per_n_verified"]
    assert prover.per_n(first - 1, 4, 0)["verified"]
    blk = lambda hi: Block(bad["n_lo"], hi, bad["precision_bits"], bad["scalars"])
    assert not all(x["result"] == "proved" for x in prover.prove(blk(first)))
    if first > bad["n_lo"]:
        assert all(x["result"] == "proved" for x in prover.prove(blk(first - 1)))


def test_builder_drift_is_caught_by_the_builder_check(monkeypatch):
    """A builder whose (supposedly n-independent) RNN weights change from n = 20 on: the lemmas
    (on the reference build) still prove, but the builder check at the block ends fails, even
    with the per-n cross-checks off."""
    orig = hyb.build_counting

    def drifted(task):
        hc = orig(task)
        if task.n >= 20:
            hc.state_dict["rnn.0.conv_bias"] = hc.state_dict["rnn.0.conv_bias"] + 1.0
        return hc
    monkeypatch.setattr(hyb, "build_counting", drifted)
    prover = prover_for("counting", "hybrid")
    assert "n_independent_weights" in prover.builder_scalars(25)[1]
    v = verify_range(prover, 20, 30, cross_checks=0)
    assert not v["verified"] and v["first_failing_n"] is None
    assert "does not build the construction" in v["failure"]
    assert "n_independent_weights" in v["failure"]


def test_readout_enumeration_is_chunk_independent(monkeypatch):
    p = cc.precision_needed(300, 301, 301)
    whole = ec.threshold_readout(300, p, cc.theta, 1)
    monkeypatch.setattr(ec, "CHUNK", 7)
    assert ec.threshold_readout(300, p, cc.theta, 1) == whole
    broken = lambda t: torch.where(t == 123, 1 / (t + 1), cc.theta(t))
    ok, _, detail = ec.threshold_readout(300, p, broken, 1)
    assert not ok and detail["bad_t"] == 123
    monkeypatch.setattr(ec, "CHUNK", 1 << 22)
    assert ec.threshold_readout(300, p, broken, 1)[2]["bad_t"] == 123


def test_symbolic_rnn_rejects_a_wrong_table():
    """The symbolic RNN lemma is not vacuous: a conv tap at the wrong lag breaks the table."""
    from rnngap.tasks.counting import CountingTask
    hc = hyb.build_counting(CountingTask(n=5))
    ok, detail = ec.symbolic_copy_rnn(hc, 5, 20)
    assert ok, detail
    hc.state_dict["rnn.0.conv_weight"] = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]],
                                                      dtype=torch.float64)
    ok, detail = ec.symbolic_copy_rnn(hc, 5, 20)
    assert not ok and "NOT as claimed" in detail
    hc = hyb.build_counting(CountingTask(n=5))
    ok, detail = ec.symbolic_copy_rnn(hc, 5000, 20)       # (V-1)^2 > 2^20
    assert not ok
