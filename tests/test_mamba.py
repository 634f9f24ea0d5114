"""Tests for the pure-PyTorch Mamba-1 (rnngap.models.mamba)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.models.mamba import MambaConfig, MambaMixer, MambaStack, scan_chunked, scan_loop


def _mixer_count(d: int, n: int = 16, k: int = 4, e: int = 2) -> int:
    """Mamba-1 mixer parameters written out by hand (in, conv+bias, x, dt+bias, A_log, D, out)."""
    di, r = e * d, math.ceil(d / 16)
    return d * 2 * di + di * k + di + di * (r + 2 * n) + r * di + di + di * n + di + di * d


@pytest.mark.parametrize("d", [16, 64, 128])
def test_mixer_parameter_count(d: int) -> None:
    m = MambaMixer(MambaConfig(d, 1))
    assert sum(p.numel() for p in m.parameters()) == _mixer_count(d)


def test_state_dict_names_match_mamba_ssm() -> None:
    s = MambaStack(MambaConfig(16, 2))
    names = {k for k in s.state_dict() if k.startswith("layers.0.")}
    want = {"layers.0.norm.weight"} | {f"layers.0.mixer.{p}" for p in (
        "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight",
        "dt_proj.bias", "A_log", "D", "out_proj.weight")}
    assert names == want
    assert "norm_f.weight" in s.state_dict()
    mix = s.layers[0].mixer
    assert mix.conv1d.weight.shape == (32, 1, 4) and mix.A_log.shape == (32, 16)


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(1, 40), c=st.sampled_from([1, 3, 8, 16]),
       seed=st.integers(0, 10**6))
def test_chunked_scan_equals_loop(b: int, t: int, c: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logA = -torch.rand(b, t, 5, 3, generator=g, dtype=torch.float64) * 3
    u = torch.randn(b, t, 5, 3, generator=g, dtype=torch.float64)
    h0 = torch.randn(b, 5, 3, generator=g, dtype=torch.float64)
    hs1, last1 = scan_loop(logA.exp(), u, h0)
    hs2, last2 = scan_chunked(logA, u, c, h0)
    torch.testing.assert_close(hs1, hs2)
    torch.testing.assert_close(last1, last2)
    # and both equal the textbook recurrence
    h = h0
    for i in range(t):
        h = logA[:, i].exp() * h + u[:, i]
    torch.testing.assert_close(h, last1)


def _stack(scan: str, seed: int = 0) -> MambaStack:
    torch.manual_seed(seed)
    return MambaStack(MambaConfig(16, 2, d_state=4, scan=scan, chunk=4))


def test_scans_agree_in_forward_and_backward() -> None:
    a, b = _stack("loop"), _stack("chunked")
    x = torch.randn(2, 13, 16)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-4)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-4, rtol=1e-3, msg=n)


def test_recurrent_step_equals_parallel_forward() -> None:
    s = _stack("loop")
    x = torch.randn(3, 11, 16)
    with torch.no_grad():
        full = s(x)
        st_ = s.init_state(3)
        steps = torch.stack([s.step(x[:, i], st_) for i in range(11)], 1)
        st2 = s.init_state(3)
        head = s(x[:, :2], st2)  # prompt shorter than the conv window
        tail = torch.stack([s.step(x[:, i], st2) for i in range(2, 11)], 1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.cat([head, tail], 1), full, atol=1e-5, rtol=1e-4)


def test_causal() -> None:
    s = _stack("loop")
    x = torch.randn(1, 9, 16)
    y = x.clone()
    y[:, 6:] = torch.randn(1, 3, 16)
    with torch.no_grad():
        torch.testing.assert_close(s(x)[:, :6], s(y)[:, :6])


def test_state_is_fixed_size() -> None:
    s = MambaStack(MambaConfig(64, 16))
    assert s.state_scalars() == 16 * 128 * (16 + 3)
    st_ = s.init_state(1)
    assert sum(v.numel() for d in st_ for v in d.values()) == s.state_scalars()


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="scan"):
        MambaConfig(16, 1, scan="fft")
    with pytest.raises(ValueError):
        MambaConfig(0, 1)


def _mamba_ssm_ok() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import mamba_ssm  # noqa: F401
    except Exception:  # noqa: BLE001 -- any import failure means: skip
        return False
    return True


@pytest.mark.gpu
@pytest.mark.skipif(not _mamba_ssm_ok(), reason="needs CUDA and mamba_ssm (kernel agreement test)")
def test_mamba_ssm_kernel_agrees_with_reference() -> None:
    """Our CPU-style scan and mamba_ssm's CUDA kernel agree (fp32, atol 1e-4) on outputs and
    gradients, and our mixer loads into mamba_ssm's ``Mamba`` module unchanged."""
    from mamba_ssm.modules.mamba_simple import Mamba

    torch.manual_seed(0)
    ref = MambaMixer(MambaConfig(64, 1, scan="loop")).cuda()
    fast = MambaMixer(MambaConfig(64, 1, scan="cuda")).cuda()
    fast.load_state_dict(ref.state_dict())
    theirs = Mamba(d_model=64, d_state=16, d_conv=4, expand=2).cuda()
    theirs.load_state_dict(ref.state_dict())
    x = torch.randn(4, 200, 64, device="cuda", requires_grad=True)
    y_ref, y_fast, y_theirs = ref(x), fast(x), theirs(x)
    torch.testing.assert_close(y_fast, y_ref, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(y_theirs, y_ref, atol=1e-4, rtol=1e-3)
    g_ref = torch.autograd.grad(y_ref.square().sum(), ref.A_log)[0]
    g_fast = torch.autograd.grad(y_fast.square().sum(), fast.A_log)[0]
    torch.testing.assert_close(g_fast, g_ref, atol=1e-3, rtol=1e-3)


def test_cuda_scan_without_kernel_is_a_clear_error() -> None:
    """Review item 3: scan='cuda' where mamba_ssm / CUDA is missing raises a one-line ValueError
    naming what to install (not ModuleNotFoundError from deep inside forward)."""
    from rnngap.models.mamba import _cuda_scan_available

    if torch.cuda.is_available() and _cuda_scan_available():
        pytest.skip("the mamba_ssm kernel is available here")
    m = MambaMixer(MambaConfig(8, 1, d_state=4, scan="cuda"))
    with pytest.raises(ValueError, match=r"mamba-ssm.*rnngap\[gpu\]"):
        m(torch.randn(1, 3, 8))
