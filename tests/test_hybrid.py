"""The linear RNN layer, the hybrid (Def 5.5) and its verified constructions (claim C6)."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.constructions.base import load
from rnngap.constructions.retrieval import hybrid as hyb
from rnngap.models.arith import Arith, PBitArith
from rnngap.models.hybrid_lrnn import HybridLRNNConfig, to_model_keys
from rnngap.models.linear_rnn import LinearRNN, scan
from rnngap.models.lm import LM
from rnngap.tasks.index import IndexTask
from rnngap.verify.retrieval.hybrid import verify_hybrid
from rnngap.verify.verdict import KEYS


def _random_layer(seed: int, K: int = 3, selective: bool = False) -> LinearRNN:
    torch.manual_seed(seed)
    layer = LinearRNN(5, 4, 3, conv_kernel=K, selective=selective).double()
    with torch.no_grad():
        for prm in layer.parameters():
            prm.copy_(torch.randn_like(prm) * 0.5)
    return layer


def _reference(layer: LinearRNN, x: np.ndarray) -> np.ndarray:
    """The module docstring's equations, written out independently in numpy (float64)."""
    sd = {k: v.detach().numpy() for k, v in layer.state_dict().items()}
    T = x.shape[0]
    u = x @ sd["in_proj.weight"].T + sd["in_proj.bias"]
    K = sd["conv_weight"].shape[1]
    h = np.zeros(sd["a"].shape)
    out = []
    for t in range(T):
        v = sd["conv_bias"] + sum(sd["conv_weight"][:, k] * u[t - k] for k in range(K) if t >= k)
        if "a_proj.weight" in sd:
            a = 1 / (1 + np.exp(-(sd["a_proj.weight"] @ v + sd["a_proj.bias"])))
        else:
            a = sd["a"]
        h = a * h + sd["B"] @ v
        out.append(x[t] + sd["C"] @ h + sd["D"] @ v)
    return np.stack(out)


@pytest.mark.parametrize("K,selective", [(1, False), (3, False), (4, True)])
def test_layer_matches_written_out_equations(K, selective):
    layer = _random_layer(0, K, selective)
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    with torch.no_grad():
        got = layer(x).numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], _reference(layer, x[b].numpy()), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("arith", [None, PBitArith(12)])
def test_step_equals_forward(arith):
    layer = _random_layer(1, 4, True)
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x, arith)
        st_ = layer.init_state(3)
        steps = torch.stack([layer.step(x[:, t], st_, arith) for t in range(7)], 1)
    assert st_["buf"].shape == (3, 3, 4) and layer.state_scalars() == 3 + 3 * 4
    if arith is None:
        torch.testing.assert_close(steps, full, rtol=1e-12, atol=1e-12)
    else:   # reductions may differ in float64 order by a unit before the 12-bit rounding
        assert float((steps - full).abs().max()) <= 2.0 ** -8 * float(full.abs().max())


class _SlowPBit(PBitArith):
    """A PBitArith subclass: forces the generic torch scan instead of the numpy fast path."""


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 52), st.integers(0, 10_000))
def test_fast_scan_equals_generic_scan(p, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(2, 11, 3, generator=g, dtype=torch.float64)
    bv = torch.randn(2, 11, 3, generator=g, dtype=torch.float64) * 100
    for fast, slow in ((PBitArith(p), _SlowPBit(p)), (None, Arith())):
        assert torch.equal(scan(a, bv, fast), scan(a, bv, slow))


def test_training_path_has_gradients():
    cfg = HybridLRNNConfig(vocab_size=7, d_model=8, n_rnn_layers=2, d_inner=8, d_state=4,
                           conv_kernel=4, selective=True, n_heads=2, d_mlp=16)
    model = LM(cfg.lm_config())
    tok = torch.randint(0, 7, (4, 10))
    loss = torch.nn.functional.cross_entropy(model(tok).reshape(-1, 7), tok.reshape(-1))
    loss.backward()
    params = dict(model.named_parameters())
    for name in to_model_keys(cfg, dict.fromkeys(("rnn.0.a_proj.weight", "rnn.1.B", "rnn.1.C",
                                                  "rnn.0.conv_weight",
                                                  "block.attn.q_proj.weight"))):
        grad = params[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert model.backbone.state_scalars() == 2 * (4 + 3 * 8)
    assert HybridLRNNConfig.from_dict(json.loads(cfg.to_json())) == cfg


@pytest.mark.parametrize("n,k", [(1, None), (3, None), (4, 2), (5, 3)])
def test_index_hybrid_every_input(n, k):
    task = IndexTask(n, k)
    c = hyb.build("index", task)
    rows = np.concatenate(list(task.enumerate()))
    with torch.no_grad():
        got = c.model().predict(torch.from_numpy(rows), PBitArith(c.precision_bits)).numpy()
    assert (got == task.solve(rows)).all()


def test_index_hybrid_sizes_constant_and_state_two_counters():
    sizes = {n: hyb.build("index", IndexTask(n)).sizes() for n in (8, 256, 4096)}
    for key in ("layers", "rnn_layers", "heads", "width", "params"):
        if key != "params":
            assert len({s[key] for s in sizes.values()}) == 1, key
    assert all(hyb.build("index", IndexTask(n)).state_scalars() == 2 for n in (8, 4096))


@pytest.mark.parametrize("n", [3, 6, 200])
def test_verify_index_hybrid(n):
    task = IndexTask(n)
    v = verify_hybrid("index", task, samples=16)
    assert v["verified"], v["failure"]
    assert set(KEYS) <= set(v) and v["model"] == "hybrid"
    assert v["recurrent_state_bits"] == 2 * v["precision_bits"]
    assert v["lower_bound_bits"] == pytest.approx(n * np.log2(n + 1))
    names = {s["name"] for s in v["side_conditions"]}
    assert {"rnn-computes-positions", "attention-layer-shared", "keys-exact"} <= names
    assert all(ch["failures"] == 0 for ch in v["cross_checks"])
    assert any("hybrid" in ch["inputs"] for ch in v["cross_checks"])


def test_verify_index_hybrid_fails_below_precision():
    v = verify_hybrid("index", IndexTask(64), precision=11, samples=8)
    assert not v["verified"]
    assert "rnn-integers-exact" in v["failure"] and v["witness"] is not None


def test_verify_index_hybrid_rejects_broken_recurrence():
    task = IndexTask(12)
    c = hyb.build("index", task)
    c.state_dict["rnn.1.in_proj.bias"] = torch.tensor([0.0], dtype=torch.float64)  # sum of 2t
    v = verify_hybrid("index", task, samples=8, construction=c)
    assert not v["verified"] and "rnn-computes-positions" in v["failure"]
    c = hyb.build("index", task)
    c.state_dict["rnn.0.in_proj.weight"][0, c.channels["TOK"]] = 1.0       # reads the data
    v = verify_hybrid("index", task, samples=8, construction=c)
    assert not v["verified"] and "rnn-reads-rnn-channels" in v["failure"]


def test_cli_hybrid_index_json_and_exact_counting():
    from rnngap.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["verify", "index", "--model", "hybrid", "--n", "8", "--json",
                               "--samples", "4"])
    assert res.exit_code == 0, res.output
    v = json.loads(res.stdout)
    assert v["verified"] and v["recurrent_state_bits"] == 2 * v["precision_bits"]
    res = runner.invoke(main, ["verify", "counting", "--model", "hybrid", "--n", "8", "--exact"])
    assert res.exit_code == 0 and "VERIFIED" in res.output, res.output   # exact form built
    res = runner.invoke(main, ["verify", "all", "--model", "hybrid", "--n", "16", "--samples", "4"])
    assert res.exit_code == 0 and res.output.count("VERIFIED") == 4, res.output
    res = runner.invoke(main, ["verify", "cgram", "--model", "hybrid", "--n", "64",
                               "--precision", "17"])
    assert res.exit_code == 1 and "not exact" in res.output


# ----- AR and c-gram hybrids ------------------------------------------------------------------
def _task(name, n, **kw):
    from rnngap.tasks.registry import make_task

    return make_task(name, n=n, alphabet=kw.pop("alphabet", None), **kw)


@pytest.mark.parametrize("name,n,kw", [("ar", 2, {}), ("ar", 4, {}), ("ar", 6, {"alphabet": 4}),
                                       ("cgram", 4, {"c": 2}), ("cgram", 5, {"c": 3, "alphabet": 3}),
                                       ("cgram", 6, {"c": 2, "alphabet": 3}),
                                       ("cgram", 6, {"c": 4, "alphabet": 2})])
def test_gram_hybrid_verifies_with_every_input(name, n, kw):
    task = _task(name, n, **kw)
    v = verify_hybrid(name, task, samples=8)
    assert v["verified"], v["failure"]
    assert set(KEYS) <= set(v) and "recurrent_state_bits" in v
    assert any("exhaustive" in ch["inputs"] and ch["failures"] == 0 and ch["checked"] ==
               task.num_inputs() for ch in v["cross_checks"])


@pytest.mark.parametrize("name,kw", [("ar", {}), ("cgram", {"c": 2}), ("cgram", {"c": 3})])
def test_gram_hybrid_large_n_and_constant_size(name, kw):
    sizes = [hyb.build(name, _task(name, n, **kw)).sizes() for n in (16, 1024)]
    assert sizes[0]["width"] == sizes[1]["width"] and sizes[0]["layers"] == 1
    v = verify_hybrid(name, _task(name, 512, **kw), samples=16)
    assert v["verified"], v["failure"]
    assert v["recurrent_state_bits"] < v["lower_bound_bits"]


def test_gram_hybrid_fails_below_precision_with_witness():
    v = verify_hybrid("cgram", _task("cgram", 64, c=2), precision=17, samples=64)
    assert not v["verified"] and "not exact" in v["failure"]


@pytest.mark.parametrize("key,edit", [
    ("rnn.0.conv_weight", lambda w: w.roll(1, 1)),          # wrong lags
    ("rnn.0.a", lambda a: a.abs()),                         # parity -> counter (AR)
    ("block.attn.q_proj.bias", lambda b: b * 0),            # matcher loses its constants
])
def test_gram_hybrid_rejects_broken_weights(key, edit):
    task = _task("ar", 8)
    c = hyb.build("ar", task)
    c.state_dict[key] = edit(c.state_dict[key].clone())
    v = verify_hybrid("ar", task, samples=8, construction=c)
    assert not v["verified"]


def test_gram_state_is_constant_and_below_bound():
    task = _task("cgram", 4096, c=2)
    c = hyb.build("cgram", task)
    assert c.state_scalars() == 1 + 2 * c.config.d_inner   # counter + (K-1) d_inner, K = 3


# ----- Counting hybrid ----------------------------------------------------------------------------
@pytest.mark.parametrize("n,k", [(1, None), (2, None), (3, 3), (5, 2)])
def test_counting_hybrid_every_input(n, k):
    task = _task("counting", n, alphabet=k, exact=False)
    v = verify_hybrid("counting", task, samples=8)
    assert v["verified"], v["failure"]
    assert any("exhaustive" in ch["inputs"] and ch["checked"] == task.num_inputs()
               for ch in v["cross_checks"])


def test_counting_hybrid_large_n_and_rounded_threshold():
    task = _task("counting", 1000, exact=False)
    v = verify_hybrid("counting", task, samples=32)
    assert v["verified"], v["failure"]
    assert v["recurrent_state_bits"] < v["lower_bound_bits"]
    assert 0 < v["min_logit_margin"] < 1e-5


def test_counting_hybrid_rejects_broken_anchor_and_exact_form():
    task = _task("counting", 10, exact=False)
    c = hyb.build("counting", task)
    c.state_dict["rnn.0.conv_bias"] = torch.zeros(3, dtype=torch.float64)   # A = -[j > 1]
    v = verify_hybrid("counting", task, samples=8, construction=c)
    assert not v["verified"] and "rnn-constant-channels" in v["failure"]
    with pytest.raises(ValueError, match="exact-count form"):   # threshold weights, exact task
        verify_hybrid("counting", _task("counting", 10, exact=True), construction=c)


def test_export_load_roundtrip_verifies(tmp_path):
    task = _task("cgram", 12, c=3)
    hyb.build("cgram", task).export(str(tmp_path))
    c = load(str(tmp_path))
    assert verify_hybrid("cgram", task, samples=8, construction=c)["verified"]
    with pytest.raises(ValueError, match="not an exported"):
        load(str(tmp_path / "missing"))
