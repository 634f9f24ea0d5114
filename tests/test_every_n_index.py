"""Range verification (issue 17): the framework and the Index provers, and the CLI's range mode."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.cli import main
from rnngap.constructions.retrieval import index as index_construction
from rnngap.verify.every_n import Block, RangeError, blocks, prover_for, verify_range

pytestmark = pytest.mark.timeout(120)


def _partition_ok(prover, bl, n_min, n_max):
    """Blocks tile the valid n of the range, each has one key, neighbours differ."""
    assert bl[0].n_lo == n_min and bl[-1].n_hi == n_max
    for x, y in itertools.pairwise(bl):
        assert y.n_lo == x.n_hi + 1
        assert prover.key(x.n_hi) != prover.key(y.n_lo)
    for b in bl:
        for n in range(b.n_lo, b.n_hi + 1):
            assert prover.key(n) == (b.precision_bits, b.scalars)


@pytest.mark.parametrize("model", ["transformer", "hybrid"])
def test_index_range_verified_and_cross_checked(model):
    prover = prover_for("index", model)
    v = verify_range(prover, 1, 150, cross_checks=3,
                     cross_check_max_n=12 if model == "transformer" else 6, samples=4)
    assert v["verified"], v["failure"]
    assert v["first_failing_n"] is None
    assert {"task", "n_min", "n_max", "verified", "blocks", "first_failing_n",
            "seconds"} <= set(v)
    _partition_ok(prover, [Block(b["n_lo"], b["n_hi"], b["precision_bits"], b["scalars"])
                           for b in v["blocks"]], 1, 150)
    checked = [c for b in v["blocks"] for c in b["cross_checks"]]
    assert checked and all(c["agrees"] and c["per_n_verified"] for c in checked)
    assert all(c["n"] <= 12 for c in checked)
    for b in v["blocks"]:
        assert all(x["result"] == "proved" for x in b["lemmas"])
        names = {x["name"] for x in b["lemmas"]}
        assert {"exact-inputs", "score-gap", "peak", "value-deviation", "decode"} <= names
        if model == "hybrid":
            assert "rnn-table" in names
    assert "not cross-checked" in v["meaning"]


@settings(max_examples=5, deadline=None)
@given(st.integers(1, 3000), st.integers(0, 200))
def test_any_sub_range_is_tiled_and_proved(a, width):
    prover = prover_for("index")
    b = a + width
    bl = blocks(prover, a, b)
    _partition_ok(prover, bl, a, b)
    v = verify_range(prover, a, b, cross_checks=0)
    assert v["verified"] and len(v["blocks"]) == len(bl)


def test_a_wrong_temperature_fails_at_the_named_n(monkeypatch):
    """beta too small from n = 200 on: the range verdict fails first at 200, and the per-n
    verifier there finds an explicit wrong input."""
    orig = index_construction.inverse_temperature
    monkeypatch.setattr(index_construction, "inverse_temperature",
                        lambda n, k: orig(n, k) if n < 200 else float(math.ceil(math.log(n + 1))))
    prover = prover_for("index")
    v = verify_range(prover, 190, 210, cross_checks=0)
    assert not v["verified"] and v["first_failing_n"] == 200
    bad = next(b for b in v["blocks"] if not b["verified"])
    assert bad["n_lo"] == 200 and "value-deviation" in v["failure"]
    at = bad["at_first_failing_n"]
    assert not at["per_n_verified"] and at["witness"] is not None
    # the bisection's answer is consistent: the sub-block up to 199 proves (another block)
    ok = next(b for b in v["blocks"] if b["n_hi"] == 199)
    assert ok["verified"]


def test_first_failing_n_is_the_least_breaking_sub_block(monkeypatch):
    """The precision claim lowered by 3 bits: the peak/decoding lemmas break inside a block;
    the named n is the smallest m with [n_lo, m] unprovable."""
    orig = index_construction.precision_needed
    monkeypatch.setattr(index_construction, "precision_needed", lambda n, v: orig(n, v) - 3)
    prover = prover_for("index")
    v = verify_range(prover, 2, 30, cross_checks=0)
    assert not v["verified"]
    b = next(b for b in v["blocks"] if not b["verified"])
    f = b["first_failing_n"]
    blk = lambda hi: Block(b["n_lo"], hi, b["precision_bits"], b["scalars"])
    assert not all(x["result"] == "proved" for x in prover.prove(blk(f)))
    if f > b["n_lo"]:
        assert all(x["result"] == "proved" for x in prover.prove(blk(f - 1)))


def test_prover_errors():
    with pytest.raises(RangeError, match="supported"):
        prover_for("index", "mamba")
    p = prover_for("index")
    with pytest.raises(RangeError, match="larger than"):
        verify_range(p, 10, 5)
    with pytest.raises(RangeError, match="beyond"):
        verify_range(p, 1, p.n_limit + 1)
    assert p.key(p.n_limit)[0] <= 52 < p.key(p.n_limit + 1)[0]


def test_cli_range_json_and_text():
    r = CliRunner().invoke(main, ["verify", "index", "--n-max", "120", "--cross-check-max-n",
                                  "4", "--json"])
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)
    assert v["task"] == "index" and v["n_min"] == 1 and v["n_max"] == 120 and v["verified"]
    assert all({"n_lo", "n_hi", "precision_bits", "verified", "lemmas"} <= set(b)
               for b in v["blocks"])
    r = CliRunner().invoke(main, ["verify", "index", "--n-min", "50", "--n-max", "60",
                                  "--model", "hybrid", "--cross-checks", "0"])
    assert r.exit_code == 0, r.output
    assert "VERIFIED for every n in [50, 60]" in r.stdout


@pytest.mark.parametrize("args,msg", [
    (["--n-min", "9", "--n-max", "3"], "larger than"),
    (["--n", "5", "--n-max", "9"], "not both"),
    (["--n-min", "5"], "needs --n-max"),
    ([], "--n-max"),
    (["--n-max", "100", "--precision", "20"], "--precision"),
    (["--n-max", "100", "--search-precision"], "--search-precision"),
    (["--n-max", "100000000"], "beyond"),
])
def test_cli_range_bad_input(args, msg):
    r = CliRunner().invoke(main, ["verify", "index", *args])
    assert r.exit_code == 2
    err = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("Error:") and msg in err[0], r.stderr


@pytest.mark.parametrize("model", ["transformer", "hybrid"])
def test_a_builder_off_its_formulas_is_caught_without_cross_checks(monkeypatch, model):
    """The lemmas are about the formulas; a builder that writes other weights (here the query
    bias) fails the builder check run at both ends of every block, per-n verifier or not."""
    orig = index_construction.build

    def wrong(task):
        c = orig(task)
        c.state_dict["blocks.0.attn.q_proj.bias"][1] = 0.0
        return c
    monkeypatch.setattr(index_construction, "build", wrong)
    v = verify_range(prover_for("index", model), 40, 60, cross_checks=0)
    assert not v["verified"] and "does not build the construction" in v["failure"]
    assert v["first_failing_n"] is None     # the lemmas themselves hold
    assert all(not c["matches"] for b in v["blocks"] for c in b["builder_checks"])
