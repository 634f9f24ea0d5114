"""Tests of the AR, c-gram and Counting constructions and their exact verifiers (claim C2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.constructions.base import export, load
from rnngap.constructions.retrieval import ar as ar_c
from rnngap.constructions.retrieval import cgram as cgram_c
from rnngap.constructions.retrieval import counting as counting_c
from rnngap.models.arith import PBitArith
from rnngap.tasks.ar import ARTask
from rnngap.tasks.cgram import CGramTask
from rnngap.tasks.counting import CountingTask
from rnngap.verify import certificates as cert
from rnngap.verify.retrieval.ar import verify_ar
from rnngap.verify.retrieval.cgram import ChunkedPredictor, verify_cgram, verify_gram
from rnngap.verify.retrieval.counting import verify_counting
from rnngap.verify.verdict import KEYS

BUILDERS = {"ar": ar_c.build, "cgram": cgram_c.build, "counting": counting_c.build}


def predict(c, rows: np.ndarray, p: int | None) -> np.ndarray:
    """The construction's predictions on rows, in float64 (p=None) or at p bits."""
    model = c.model()
    arith = None if p is None else PBitArith(p)
    with torch.no_grad():
        return model.predict(torch.from_numpy(rows), arith).numpy()


TINY = [ARTask(n=4, alphabet=3), ARTask(n=6, alphabet=4), CGramTask(n=6, c=2, alphabet=3),
        CGramTask(n=7, c=3, alphabet=2), CGramTask(n=6, c=4, alphabet=2),
        CountingTask(n=4, alphabet=3), CountingTask(n=5, alphabet=2), CountingTask(n=1, alphabet=1),
        CountingTask(n=5, alphabet=3, exact=True), CountingTask(n=8, alphabet=2, exact=True)]


@pytest.mark.parametrize("task", TINY, ids=lambda t: f"{t.name}-{t.params()}")
def test_exhaustive_tiny(task) -> None:
    """Every input of a tiny task: float64 and p-bit predictions equal the solver's answers."""
    c = BUILDERS[task.name](task)
    rows = np.concatenate(list(task.enumerate()))
    assert rows.shape[0] == task.num_inputs()
    want = task.solve(rows)
    assert (predict(c, rows, None) == want).all()
    assert (predict(c, rows, c.precision_bits) == want).all()


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["ar", "cgram", "counting"]), st.integers(2, 40), st.integers(1, 50),
       st.integers(2, 5), st.integers(0, 10**6))
def test_sampled_float_and_claimed_precision(name: str, n: int, alphabet: int, c: int,
                                             seed: int) -> None:
    """Random (n, alphabet, c): sampled inputs are right in float64 and at the claimed p."""
    n = n + n % 2 if name == "ar" else max(n, c)
    try:
        task = {"ar": lambda: ARTask(n=n, alphabet=max(alphabet, n // 2)),
                "cgram": lambda: CGramTask(n=n, c=c, alphabet=alphabet),
                "counting": lambda: CountingTask(n=n, alphabet=alphabet)}[name]()
    except ValueError:
        return
    con = BUILDERS[name](task)
    rows, want = task.sample(16, seed)
    assert (predict(con, rows, None) == want).all()
    assert (predict(con, rows, con.precision_bits) == want).all()


@pytest.mark.parametrize("name", ["ar", "cgram", "counting"])
def test_sizes_independent_of_n(name: str) -> None:
    """Depth, heads, width and parameter count per layer do not depend on n."""
    make = {"ar": lambda n: ARTask(n=n), "cgram": lambda n: CGramTask(n=n, c=3),
            "counting": lambda n: CountingTask(n=n)}[name]
    sizes = [BUILDERS[name](make(n)).sizes() for n in (8, 64, 1024)]
    for s in sizes:
        s.pop("params")  # the vocabulary (embedding/unembedding rows) grows with n by the task
    assert sizes[0] == sizes[1] == sizes[2]


def test_cgram_heads_follow_c() -> None:
    for c in (2, 3, 5):
        s = cgram_c.build(CGramTask(n=16, c=c)).sizes()
        assert (s["layers"], s["heads"], s["width"]) == (2, c - 1, 2 * c + 4)


@pytest.mark.parametrize("verify,task", [
    (verify_ar, ARTask(n=6, alphabet=4)), (verify_ar, ARTask(n=40)),
    (verify_cgram, CGramTask(n=7, c=3, alphabet=2)), (verify_cgram, CGramTask(n=30, c=2)),
    (verify_counting, CountingTask(n=3, alphabet=3)), (verify_counting, CountingTask(n=30)),
    (verify_counting, CountingTask(n=4, alphabet=3, exact=True)),
    (verify_counting, CountingTask(n=100, exact=True))])
def test_verifier_proves(verify, task) -> None:
    v = verify(task, samples=8, seed=1)
    assert v["verified"], v["failure"]
    assert set(KEYS) <= set(v)
    assert all(x["result"] == "proved" for x in v["certificates"])
    assert all(x["result"] == "holds" for x in v["side_conditions"])
    assert sum(ch["checked"] for ch in v["cross_checks"]) > 0
    assert v["precision_bits"] == v["precision_claimed"]
    if task.num_inputs() <= 20000:
        assert v["cross_checks"][0]["checked"] == task.num_inputs()


@pytest.mark.parametrize("verify,task", [
    (verify_ar, ARTask(n=40)), (verify_cgram, CGramTask(n=30, c=2)),
    (verify_counting, CountingTask(n=30))])
def test_one_bit_below_fails(verify, task) -> None:
    """p - 1 is refused, with the quantity that is no longer exact and a witness or a reason."""
    p = verify(task, samples=4)["precision_bits"]
    v = verify(task, precision=p - 1, samples=4)
    assert not v["verified"]
    assert "not exact" in v["failure"]
    assert v["witness"] is not None or "sufficient, not necessary" in v["failure"]


def test_cgram_witness_is_wrong_at_low_precision() -> None:
    task = CGramTask(n=64, c=2)
    v = verify_cgram(task, precision=cgram_c.precision_for(64) - 1, samples=4)
    w = v["witness"]
    assert w is not None and w["expected"] != w["got"]


def test_tampered_construction_fails() -> None:
    """A wrong exclusion indicator is caught by the side conditions (the verifier can fail)."""
    task = CGramTask(n=12, c=3, alphabet=3)
    c = cgram_c.build(task)
    c.state_dict["pos_table"][task.n, cgram_c.EXCL] = 0.0     # query position n+1 not excluded
    v = verify_gram(task, c, 2, task.seq_len(), 1, cgram_c.excluded_positions(task.n, task.c),
                    None, 4, 0, dict, dict, "")
    assert not v["verified"] and "positions" in v["failure"]
    c = cgram_c.build(task)
    c.state_dict["blocks.1.attn.q_proj.bias"][2] = 0.0        # drop the last-occurrence tie-break
    v = verify_gram(task, c, 2, task.seq_len(), 1, cgram_c.excluded_positions(task.n, task.c),
                    None, 4, 0, dict, dict, "")
    assert not v["verified"] and "layer2-form" in v["failure"]


def test_lemmas() -> None:
    assert cert.pointer_lemma()["result"] == "proved"
    for m in (1, 2, 3, 12):
        assert cert.match_lemma(m, True)["result"] == "proved"
    assert cert.match_lemma(1, False)["result"] == "proved"
    assert cert.match_lemma(9, False)["result"] == "proved"
    assert cert.underflow_lemma(1024.0, 52)["result"] == "proved"
    assert cert.underflow_lemma(500.0, 30)["result"] == "FAILED"
    assert cert.integer_exactness({"x": 17}, 4)["result"] == "FAILED"
    assert cert.integer_exactness({"x": 16}, 4)["result"] == "proved"


def test_precision_formulas() -> None:
    assert ar_c.precision_for(4096) == 25          # (n+1)^2 = 16785409 <= 2^25
    assert counting_c.precision_for(4096) == 25    # (n+2)^2
    assert cgram_c.precision_for(4096, c=2) == 37  # W m K^2 + W = 4097 * 4096^2 + 4097
    ns = [2 ** e for e in range(2, 17)]
    for fn in (ar_c.precision_for, cgram_c.precision_for, counting_c.precision_for,
               lambda n: counting_c.precision_for(n, exact=True)):
        ps = [fn(n) for n in ns]
        assert ps == sorted(ps) and ps[-1] <= 52


def test_exact_counting_readout_can_fail() -> None:
    """Below its need the exact-count readout lemma is refused (it is not vacuous)."""
    from rnngap.verify.retrieval.counting import _readout_exact

    task = CountingTask(n=200, exact=True)
    c = counting_c.build(task)
    assert _readout_exact(c, task.n, task.vocab_size(), c.precision_bits)[0]["result"] == "proved"
    assert _readout_exact(c, task.n, task.vocab_size(), 10)[0]["result"] == "FAILED"


def test_export_roundtrip(tmp_path) -> None:
    task = CGramTask(n=9, c=3, alphabet=4)
    c = cgram_c.build(task)
    export(c, tmp_path)
    back = load(tmp_path)
    rows, want = task.sample(32, 3)
    assert (predict(back, rows, back.precision_bits) == want).all()
    assert json.loads((tmp_path / "config.json").read_text())["construction"]["task"] == "cgram"


def test_chunked_predictor_matches_model() -> None:
    task = CGramTask(n=40, c=3)
    c = cgram_c.build(task)
    rows, _ = task.sample(6, 0)
    arith = PBitArith(c.precision_bits)
    with torch.no_grad():
        a = c.model().predict(torch.from_numpy(rows), arith)
        b = ChunkedPredictor(c.model(), chunk=7).predict(torch.from_numpy(rows), arith)
    assert torch.equal(a, b)


def test_cli_all_and_bad_input() -> None:
    from rnngap.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["verify", "all", "--n", "64", "--json", "--samples", "4"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [v["task"] for v in out] == ["index", "ar", "cgram", "counting"]
    assert all(v["verified"] for v in out)
    for args in (["verify", "cgram", "--n", "3", "--c", "5"], ["verify", "cgram", "--n", "8",
                                                                "--c", "1"],
                 ["verify", "counting", "--n", "4", "--c", "3"]):
        res = runner.invoke(main, args)
        assert res.exit_code == 2, (args, res.output)
    res = runner.invoke(main, ["verify", "ar", "--n", "16", "--precision", "8"])
    assert res.exit_code == 1 and "not exact" in res.output
    res = runner.invoke(main, ["verify", "counting", "--n", "6", "--exact", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["verified"]


def test_exact_counting_is_one_layer_and_says_so() -> None:
    """The exact-count form reads q from its own position: no pointer layer, and the verdict's
    depth side condition checks the layer count (issue 13: an idle zero layer counted as depth)."""
    from rnngap.constructions.retrieval import counting as cc_mod
    c = cc_mod.build(CountingTask(n=16, exact=True))
    assert c.config.n_layers == 1 and not any(k.startswith("blocks.1.") for k in c.state_dict)
    v = verify_counting(CountingTask(n=16, exact=True))
    assert v["verified"] and v["layers"] == 1
    assert any(s["name"] == "depth" and s["result"] == "holds" for s in v["side_conditions"])
    assert not any("pointer" in x["name"] for x in v["certificates"])
    assert verify_counting(CountingTask(n=16))["layers"] == 2
