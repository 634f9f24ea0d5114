"""The Index construction and its exact verifier (claim C2 for Index)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.constructions.base import export, load
from rnngap.constructions.retrieval import index as idx
from rnngap.models.arith import PBitArith
from rnngap.tasks.index import IndexTask
from rnngap.verify.retrieval.index import verify_index


@pytest.mark.parametrize("n,k", [(1, None), (3, None), (4, 2), (5, 3), (6, None)])
def test_every_input_float64_and_pbit(n, k):
    task = IndexTask(n, k)
    c = idx.build(task)
    m = c.model()
    rows = np.concatenate(list(task.enumerate()))
    want = task.solve(rows)
    x = torch.from_numpy(rows)
    assert (m.predict(x).numpy() == want).all()
    assert (m.predict(x, PBitArith(c.precision_bits)).numpy() == want).all()


def test_sizes_do_not_grow_with_n():
    sizes = {n: idx.build(IndexTask(n)).sizes() for n in (16, 256, 4096)}
    keys = ("layers", "heads", "width", "d_head", "d_mlp")
    assert len({tuple(s[k] for k in keys) for s in sizes.values()}) == 1


@settings(max_examples=8)
@given(n=st.integers(1, 300), k=st.one_of(st.none(), st.integers(1, 400)))
def test_verifies_at_claimed_precision(n, k):
    v = verify_index(IndexTask(n, k), samples=8)
    assert v["verified"], v["failure"]
    assert v["min_logit_margin"] > 0 and 0 < v["min_target_attention"] <= 1
    assert all(c["result"] == "proved" for c in v["certificates"])


@pytest.mark.parametrize("n", [16, 256, 4096])
def test_verifies_at_paper_sizes(n):
    v = verify_index(IndexTask(n), samples=16)
    assert v["verified"] and v["layers"] == 1 and v["heads"] == 1 and v["width"] == 4


@pytest.mark.slow
def test_verifies_at_65536():
    assert verify_index(IndexTask(65536), samples=16)["verified"]


def test_too_little_precision_fails_loudly():
    task = IndexTask(256)
    v = verify_index(task, precision=12, samples=64)
    assert not v["verified"] and v["failure"]
    # at this precision the rounded model is really wrong on some input: a witness exists
    assert v["witness"] is not None and v["witness"]["expected"] != v["witness"]["got"]


def test_tampered_weights_fail_a_side_condition():
    task = IndexTask(32)
    c = idx.build(task)
    c.state_dict["blocks.0.attn.k_proj.weight"][0, idx.TOK] = 1e-3  # keys now read the data
    v = verify_index(task, construction=c, samples=8)
    assert not v["verified"] and "keys-ignore-data" in v["failure"]


def test_export_load_round_trip(tmp_path):
    task = IndexTask(40)
    c = idx.build(task)
    export(c, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model.safetensors", "config.json",
                                                    "vocab.json"}
    c2 = load(tmp_path)
    x, _ = task.sample(32, 1)
    x = torch.from_numpy(x)
    arith = PBitArith(c.precision_bits)
    assert torch.equal(c.model()(x), c2.model()(x))
    assert torch.equal(c.model()(x, arith), c2.model()(x, arith))
    assert verify_index(task, construction=c2, samples=8)["verified"]


def test_load_rejects_garbage(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        load(tmp_path)
    export(idx.build(IndexTask(4)), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt"):
        load(tmp_path)
