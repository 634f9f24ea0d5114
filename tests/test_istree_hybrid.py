"""IsTree by linear RNN layers + ONE attention layer (constructions/istree/hybrid.py and
verify/istree/hybrid.py, `verify istree --method hybrid`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.cli import main
from rnngap.constructions.istree import hybrid as Hy
from rnngap.models.lm import LM
from rnngap.tasks import istree as T
from rnngap.verify.istree import exact as E
from rnngap.verify.istree import hybrid as V
from rnngap.verify.istree.rnn_rag import VERDICT_KEYS

RAG_KEYS = VERDICT_KEYS


@pytest.mark.parametrize("n", [2, 3, 4])
def test_every_input_small_n_verified(n: int) -> None:
    out = V.verify_hybrid_lrnn_istree(n, samples=0)
    assert out["verified"] and out["exhaustive"] and out["failures"] == 0
    assert out["audit"]["not_one_hot"] == 0 and out["audit"]["attention_rows_checked"] > 0
    assert all(c["result"] == "proved" for c in out["certificates"])
    assert out["max_cot_tokens"] <= Hy.max_cot(n)


@pytest.mark.slow
def test_every_input_n5() -> None:
    out = V.verify_hybrid_lrnn_istree(5, samples=2)
    assert out["verified"] and out["inputs_checked"] == 5040 + 4 + 9


def test_model_is_the_definition_5_5_hybrid() -> None:
    """Two linear layers (a = 1, no selection), then exactly one attention block."""
    net = Hy.model(8)
    assert isinstance(net, LM) and net.backbone.kinds == ["lrnn", "lrnn", "attention"]
    for layer in (net.backbone.layer(0), net.backbone.layer(1)):
        assert layer.a_proj is None and torch.equal(layer.a, torch.ones_like(layer.a))
    assert Hy.build(8).config.n_rnn_layers == 2 and Hy.build(8).config.selective is False


def test_size_constant_state_constant_precision_logarithmic() -> None:
    a, b = Hy.build(8).config, Hy.build(512).config
    for k in ("d_model", "n_rnn_layers", "d_inner", "d_state", "conv_kernel", "n_heads",
              "d_head", "d_mlp", "layer_shapes"):
        assert getattr(a, k) == getattr(b, k)
    assert Hy.build(8).state_scalars() == 2 + 8 * Hy.LAYER_SHAPES[0][0] + 1  # layer 2: no window
    assert Hy.build(8).state_scalars() == Hy.build(64).state_scalars()
    ps = [Hy.precision_for(n) for n in (16, 256, 1024)]
    assert ps[0] < ps[1] < ps[2] <= 52


@st.composite
def graphs(draw):
    n = draw(st.integers(4, 12))
    if draw(st.booleans()):
        edges = [(v, draw(st.integers(0, v - 1))) for v in range(1, n)]
    else:
        pairs = [(u, v) for u in range(n) for v in range(u)]
        idx = draw(st.lists(st.integers(0, len(pairs) - 1), min_size=n - 1, max_size=n - 1,
                            unique=True))
        edges = [pairs[i] for i in idx]
    perm = draw(st.permutations(list(range(n))))
    order = draw(st.permutations(list(range(n - 1))))
    return n, np.array([(perm[edges[i][0]], perm[edges[i][1]]) for i in order])


@settings(max_examples=15, deadline=None)
@given(graphs())
def test_writes_the_union_find_cot(case) -> None:
    n, edges = case
    (got,), audit = V.run_batch(n, Hy.model(n), [edges], Hy.precision_for(n))
    assert got == V.reference(n, edges)  # the reference's label is checked against networkx
    assert audit.not_one_hot == 0 and audit.non_integer == 0


def test_reference_cot_is_o_n_log_n_and_within_the_declared_bound() -> None:
    for n in (16, 64):
        for fam in T.FAMILIES:
            for e in T.sample_graphs(n, 3, fam, seed=5)[0]:
                assert len(Hy.reference_cot(n, e)) <= Hy.max_cot(n)


def test_tampered_weights_fail() -> None:
    """A broken rank comparison (the flag unit's bias) makes the model deviate."""
    n = 4
    net = Hy.model(n)
    with torch.no_grad():
        bias = net.backbone.attention_layers()[0].mlp.fc_in.bias
        bias.add_(torch.where(bias == 1 - (2 * n + 4), 5.0, 0.0))
    out = V.verify_hybrid_lrnn_istree(n, samples=0, model=net)
    assert not out["passed"]
    assert any(c["name"] == "weights-hand-set" and c["result"] == "FAILED"
               for c in out["certificates"])
    assert any("the reference has" in f["reason"] for f in out["failure_examples"])


def test_bos_certificate_and_precision_certificate() -> None:
    n = 5
    net = Hy.model(n)
    with torch.no_grad():
        net.tok_embed.weight[T.BOS, Hy.C["NUM"]] = 1.0
    certs = {c["name"]: c for c in V.certificates(n, Hy.precision_for(n), net)}
    assert certs["bos-row-zero"]["result"] == "FAILED"
    certs = {c["name"]: c for c in V.certificates(64, 16)}
    assert certs["integer-exactness"]["result"] == "FAILED"


def test_cli_verify_and_run() -> None:
    r = CliRunner().invoke(main, ["verify", "istree", "--model", "hybrid", "--n", "3",
                                  "--json"])
    assert r.exit_code == 0, r.output
    v = json.loads(r.output)
    assert v["method"] == "hybrid" and v["verified"] and v["recurrent_state_bits"] > 0
    assert RAG_KEYS <= set(v)
    r = CliRunner().invoke(main, ["run", "istree", "--method", "hybrid", "--n", "5",
                                  "--edges", "1-0,2-1,3-2,3-1", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    v = json.loads(r.output)
    assert v["verdict"] is False and v["truth"] is False and v["reference_cot"]
    r = CliRunner().invoke(main, ["run", "istree", "--method", "hybrid", "--n", "2000",
                                  "--seed", "1"])
    assert r.exit_code == 2 and "1024" in r.output


def test_construct_export_and_reload_decode_the_same(tmp_path) -> None:
    from rnngap.constructions.base import load

    r = CliRunner().invoke(main, ["construct", "istree", "--model", "hybrid", "--n", "6",
                                  "--out", str(tmp_path / "h"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["precision_bits"] == Hy.precision_for(6)
    again = load(tmp_path / "h")
    (edges,), _ = T.sample_graphs(6, 1, "random", seed=4)
    p = Hy.precision_for(6)
    a, _ = V.run_batch(6, Hy.model(6), [edges], p)
    b, _ = V.run_batch(6, again.model(), [edges], p)
    assert a == b == [V.reference(6, edges)]
    r = CliRunner().invoke(main, ["construct", "istree", "--n", "1", "--out",
                                  str(tmp_path / "x")])
    assert r.exit_code == 2 and "2 <= n" in r.output


def test_layer_shapes_are_validated_and_round_trip() -> None:
    from rnngap.models.hybrid_lrnn import HybridLRNNConfig

    cfg = Hy.build(4).config
    again = HybridLRNNConfig.from_dict(json.loads(cfg.to_json()))
    assert again.shapes() == cfg.shapes() == [tuple(s) for s in Hy.LAYER_SHAPES]
    for bad in ([[1, 1, 1]], [[1.9, 1, 1], [1, 1, 1]], [3, 1, 1], [[1, 1, 1], [0, 1, 1]]):
        with pytest.raises(ValueError, match="layer_shapes"):
            HybridLRNNConfig(vocab_size=4, d_model=2, n_rnn_layers=2, layer_shapes=bad)
    with pytest.raises(ValueError, match="layer_shapes\\[0\\]"):
        HybridLRNNConfig(vocab_size=4, d_model=2, n_rnn_layers=2, d_inner=9,
                         layer_shapes=[[1, 1, 1], [1, 1, 1]])


@pytest.mark.parametrize("which", ["transformer", "hybrid"])
def test_jobs_give_the_same_verdict(which: str) -> None:
    """--jobs 2 spreads the batches over spawned processes; the verdict is the same."""
    from rnngap.verify.istree import transformer as VX

    fn = VX.verify_transformer_istree if which == "transformer" else V.verify_hybrid_lrnn_istree
    one = fn(4, samples=0)
    two = fn(4, samples=0, jobs=2)
    for k in ("verified", "inputs_checked", "max_cot_tokens", "kv_bits", "failures"):
        assert one[k] == two[k]
    assert two["audit"]["attention_rows_checked"] == one["audit"]["attention_rows_checked"]


def test_a_worker_with_another_network_is_refused() -> None:
    with pytest.raises(RuntimeError, match="certified"):
        E.decode_worker(V.__name__, 4, Hy.precision_for(4), "not-the-fingerprint", [])
