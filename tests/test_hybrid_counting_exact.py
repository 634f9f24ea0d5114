"""The exact-count Counting hybrid (linear RNN + ONE attention layer; claim C6, issue 7)."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.constructions.retrieval import counting as counting_c
from rnngap.constructions.retrieval import hybrid as hyb
from rnngap.models.arith import PBitArith
from rnngap.tasks.counting import CountingTask
from rnngap.verify.retrieval.counting import _readout_exact, exact_readout
from rnngap.verify.retrieval.hybrid import verify_hybrid
from rnngap.verify.verdict import KEYS


def _verify(task, **kw):
    return verify_hybrid("counting", task, **kw)


@pytest.mark.parametrize("n,k", [(1, None), (2, None), (3, 3), (5, 2), (6, 3)])
def test_exact_hybrid_every_input(n, k):
    task = CountingTask(n, k, exact=True)
    v = _verify(task, samples=8)
    assert v["verified"], v["failure"]
    assert any("exhaustive" in ch["inputs"] and ch["checked"] == task.num_inputs()
               and ch["failures"] == 0 for ch in v["cross_checks"])
    names = {c["name"] for c in v["certificates"]}
    assert {"readout-exact", "match-gap", "softmax-underflow", "integer-exactness"} <= names


def test_exact_hybrid_large_n_state_and_precision():
    task = CountingTask(700, exact=True)
    v = _verify(task, samples=16)
    assert v["verified"], v["failure"]
    assert v["precision_bits"] == hyb.counting_precision(700, 701, exact=True) == \
        max(hyb.bits_for(2 * 700 ** 2), counting_c.exact_readout_bits(700))
    assert v["recurrent_state_bits"] == 4 * v["precision_bits"] < v["lower_bound_bits"]
    assert "counting-exact" in v["lower_bound_formula"]
    assert 0 < v["min_logit_margin"] < 1e-6
    assert v["min_target_attention"] == pytest.approx(1 / 701, rel=2.0 ** -18)
    readout = next(c for c in v["cross_checks"] if "unembedding" in c["inputs"])
    assert readout["checked"] == 701 and readout["failures"] == 0 and "exhaustive" in \
        readout["inputs"]
    assert all(ch["failures"] == 0 for ch in v["cross_checks"])


def test_exact_hybrid_size_independent_of_n():
    sizes = [hyb.build_counting(CountingTask(n, exact=True)).sizes() for n in (8, 4096)]
    for key in ("layers", "rnn_layers", "heads", "width", "d_head"):
        assert sizes[0][key] == sizes[1][key], key
    assert hyb.build_counting(CountingTask(4096, exact=True)).state_scalars() == 4


def test_readout_shared_with_transformer():
    """Same certificate as the exact Transformer's (the shared helper), and the private alias
    keeps its behaviour."""
    for n, p in ((100, 17), (100, 10), (2000, 26)):
        task = CountingTask(n, exact=True)
        a = exact_readout(n, task.vocab_size(), p)
        b = _readout_exact(counting_c.build(task), n, task.vocab_size(), p)
        strip = lambda r: ({k: v for k, v in r[0].items() if k != "seconds"}, r[1], r[2])
        assert strip(a) == strip(b)
    hv = _verify(CountingTask(300, exact=True), samples=4)
    from rnngap.verify.retrieval.counting import verify_counting
    tv = verify_counting(CountingTask(300, exact=True), precision=hv["precision_bits"], samples=4)
    pick = lambda v: next({k: x for k, x in c.items() if k != "seconds"}
                          for c in v["certificates"] if c["name"] == "readout-exact")
    assert pick(hv) == pick(tv) and hv["min_logit_margin"] == tv["min_logit_margin"]


def _query_from_g(c) -> None:
    w, ch = c.state_dict["block.attn.q_proj.weight"], c.channels
    w[:, [ch["G"], ch["G2"]]] = w[:, [ch["TOK"], ch["TOK2"]]]
    w[:, [ch["TOK"], ch["TOK2"]]] = 0.0


@pytest.mark.parametrize("edit,reason", [
    # the query reads G (= x_{L-1}) as in the threshold form: counts the wrong token
    (lambda c: _query_from_g(c), "attention-weights"),
    # no anchor (A = -[j > 1])
    (lambda c: c.state_dict.__setitem__("rnn.0.conv_bias", torch.zeros(3, dtype=torch.float64)),
     "rnn-constant-channels"),
    # the unembedding decodes 1/(t+2): every count is read one too low
    (lambda c: c.state_dict.__setitem__("unembed.weight", torch.roll(
        c.state_dict["unembed.weight"], 1, 0)), "unembedding"),
    # one bias nudged by 2^-30: invisible to most inputs, but breaks the proved statement
    (lambda c: c.state_dict["unembed.bias"].__setitem__(7, c.state_dict["unembed.bias"][7]
                                                        + 2.0 ** -30), "unembedding"),
])
def test_exact_hybrid_rejects_tampered_weights(edit, reason):
    task = CountingTask(40, exact=True)
    c = hyb.build_counting(task)
    c.state_dict = {k: v.clone() for k, v in c.state_dict.items()}
    edit(c)
    v = verify_hybrid("counting", task, samples=16, construction=c)
    assert not v["verified"] and reason in v["failure"], v["failure"]


def test_exact_hybrid_wrong_weights_have_witness():
    task = CountingTask(12, exact=True)
    c = hyb.build_counting(task)
    c.state_dict["unembed.weight"] = torch.roll(c.state_dict["unembed.weight"], 1, 0)
    v = verify_hybrid("counting", task, samples=16, construction=c)
    w = v["witness"]
    assert not v["verified"] and w is not None and w["got"] != w["expected"]
    row = np.array([[int(x) for x in w["input"].split()]])       # n = 12: not elided
    assert row.shape[1] == task.seq_len() and int(task.solve(row)[0]) == w["expected"]
    with torch.no_grad():
        assert int(c.model().predict(torch.from_numpy(row), PBitArith(c.precision_bits))[0]) \
            == w["got"]


def test_exact_hybrid_fails_below_precision():
    task = CountingTask(1000, exact=True)
    v = _verify(task, precision=20, samples=8)   # integers exact, readout not
    assert not v["verified"]
    assert "readout not resolved at p=20" in v["failure"]


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_exact_hybrid_answers_the_count(data):
    """Property: on random rows, the hybrid's p-bit prediction is the task's exact count."""
    n = data.draw(st.integers(1, 60), "n")
    k = data.draw(st.integers(1, n + 2), "k")
    q = data.draw(st.integers(0, k - 1), "q")
    x = data.draw(st.lists(st.one_of(st.just(q), st.integers(0, k - 1)), min_size=n,
                           max_size=n), "x")
    task = CountingTask(n, k, exact=True)
    c = hyb.build_counting(task)
    row = np.array([x + [q]], dtype=np.int64)
    with torch.no_grad():
        got = c.model().predict(torch.from_numpy(row), PBitArith(c.precision_bits))
    assert int(got[0]) == int(task.solve(row)[0]) == sum(v == q for v in x)


def test_cli_exact_hybrid_json_keys_and_text():
    from rnngap.cli import main

    runner = CliRunner()

    def run_json(*args):
        res = runner.invoke(main, ["verify", "counting", "--n", "8", "--json", "--samples", "4",
                                   *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    exact_h = run_json("--model", "hybrid", "--exact")
    thr_h = run_json("--model", "hybrid")
    exact_t = run_json("--exact")
    assert exact_h["verified"] and exact_h["model"] == "hybrid"
    assert set(KEYS) | set(thr_h) | set(exact_t) <= set(exact_h)
    assert exact_h["recurrent_state_bits"] == exact_h["recurrent_state_scalars"] * \
        exact_h["precision_bits"]
    res = runner.invoke(main, ["verify", "counting", "--model", "hybrid", "--exact", "--n", "8",
                               "--samples", "4"])
    assert res.exit_code == 0 and "recurrent state: 4 scalars" in res.output
    assert "VERIFIED for every input" in res.output
    res = runner.invoke(main, ["verify", "counting", "--model", "hybrid", "--exact", "--n",
                               "1000", "--precision", "20", "--samples", "4"])
    assert res.exit_code == 1 and "readout not resolved" in res.output


@pytest.mark.slow
def test_exact_hybrid_n4096_and_witness_below_least_precision():
    """The issue's size (about 10 s): verifies at the claimed p = 28; at p = 24 the proof fails
    AND a concrete input is decoded wrong (the bound is nearly tight: least verifying p = 25)."""
    task = CountingTask(4096, exact=True)
    v = _verify(task, samples=16)
    assert v["verified"] and v["precision_bits"] == 28, v["failure"]
    w = _verify(task, precision=24, samples=4)
    assert not w["verified"] and w["witness"] is not None
    assert w["witness"]["got"] != w["witness"]["expected"]
