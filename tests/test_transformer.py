"""The shared Transformer: explicit-arith path == fast path, last_only, KV cache, configs."""

import json

import pytest
import torch

from rnngap.models.arith import Arith
from rnngap.models.transformer import Transformer, TransformerConfig

CONFIGS = [{}, {"norm": "rmsnorm", "pos": "rope", "mlp": "swiglu", "bias": False},
           {"pos": "none", "attn_scale": 0.5}]


@pytest.mark.parametrize("kw", CONFIGS)
def test_fast_path_matches_cache_and_last_only(kw):
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=13, d_model=16, n_layers=2, n_heads=4, d_mlp=24,
                            max_len=32, **kw)
    m = Transformer(cfg).double().eval()
    if m.pos_table is not None:
        m.pos_table.normal_()
    x = torch.randint(0, 13, (3, 17))
    with torch.no_grad():
        full = m(x)
        assert torch.allclose(m(x, last_only=True)[:, -1], full[:, -1], atol=1e-12)
        cache = m.init_cache()
        outs = [m.step(x[:, :6], cache)] + [m.step(x[:, t:t + 1], cache) for t in range(6, 17)]
        assert torch.allclose(torch.cat(outs, 1), full, atol=1e-12)
        if kw.get("norm", "none") == "none" and kw.get("mlp", "relu") == "relu":
            assert torch.allclose(m(x, Arith()), full, atol=1e-12)


def test_config_json_round_trip_and_errors():
    cfg = TransformerConfig(vocab_size=5, d_model=8, n_layers=1, n_heads=2, d_mlp=4)
    again = TransformerConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    with pytest.raises(ValueError):
        TransformerConfig.from_dict({"model": "mamba", "d_model": 8})
    with pytest.raises(ValueError):
        TransformerConfig(vocab_size=5, d_model=8, n_layers=1, n_heads=3, d_mlp=4)
    with pytest.raises(ValueError):
        TransformerConfig(vocab_size=5, d_model=8, n_layers=1, n_heads=2, d_mlp=4, norm="ln")


def test_too_long_input_is_a_clear_error():
    cfg = TransformerConfig(vocab_size=5, d_model=8, n_layers=1, n_heads=2, d_mlp=4, max_len=4)
    with pytest.raises(ValueError, match="max_len"):
        Transformer(cfg)(torch.zeros(1, 5, dtype=torch.long))


def test_kv_cache_buffers_grow_geometrically_and_survive_row_drops():
    """Regression: dropping finished rows rebuilt the buffer at twice its capacity every time,
    so many drops asked for gigabytes.  Capacity must stay within 2x the longest need."""
    from rnngap.models.transformer import _cache_append

    cache: dict = {"k": None, "v": None}
    rows, ref = 64, None
    for step in range(300):
        k = torch.randn(rows, 2, 1, 4)
        ks, vs = _cache_append(cache, k, -k, step)
        ref = k if ref is None else torch.cat([ref, k], -2)     # what torch.cat would hold
        past = step + 1
        assert torch.equal(ks, ref) and torch.equal(vs, -ref)   # the whole past, every step
        assert cache["k_buf"].shape[-2] <= max(64, 2 * past)
        if step % 5 == 4 and rows > 1:  # drop a row, as the batched decoders do
            keep = torch.ones(rows, dtype=torch.bool)
            keep[0] = False
            rows -= 1
            cache["k"], cache["v"] = cache["k"][keep], cache["v"][keep]
            ref = ref[keep]


def test_kv_cache_capacity_hint_and_grad_fallback():
    from rnngap.models.transformer import _cache_append

    cache: dict = {"k": None, "v": None, "capacity": 10}
    for step in range(10):
        _cache_append(cache, torch.ones(2, 1, 1, 3), torch.ones(2, 1, 1, 3), step)
    assert cache["k_buf"].shape[-2] == 10        # one allocation at the announced size
    g = torch.ones(1, 1, 1, 2, requires_grad=True)
    cache = {"k": None, "v": None}
    _cache_append(cache, g * 2, g * 3, 0)
    k2, _ = _cache_append(cache, g * 4, g * 5, 1)
    k2.sum().backward()                            # no in-place write into an autograd graph
    assert float(g.grad.sum()) == 2 * (2 + 4)
