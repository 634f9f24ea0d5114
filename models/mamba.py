"""A pure-PyTorch Mamba-1 (selective state-space model) with mamba_ssm-compatible names.

Reference: A. Gu, T. Dao, *Mamba: Linear-Time Sequence Modeling with Selective State Spaces*
(arXiv:2312.00752), Algorithm 2 (the S6 layer) and Section 3.4 (the block). For one layer with
input u_1..u_T in R^d (d_inner = expand * d, N = d_state):

    [x_t ; z_t]   = W_in u_t                                  (in_proj, no bias)
    x_t          <- silu(causal depthwise conv_k(x)_t + b)     (conv1d, kernel d_conv)
    [r_t; B_t; C_t] = W_x x_t                                  (x_proj: dt_rank + 2N outputs)
    Delta_t       = softplus(W_dt r_t + b_dt)   in R^{d_inner}  (dt_proj)
    A             = -exp(A_log)                 in R^{d_inner x N}
    h_t           = exp(Delta_t A) * h_{t-1} + (Delta_t x_t) B_t^T   (elementwise; h in R^{d_inner x N})
    y_t           = h_t C_t + D * x_t
    out_t         = W_out (y_t * silu(z_t))                     (out_proj, no bias)

The state carried between tokens is (h_t, the last d_conv - 1 conv inputs): a FIXED size
d_inner * (N + d_conv - 1) numbers per layer, independent of T. That is what makes Mamba an RNN
in the paper's sense (BRIEF.md, "RNN with M-bit memory").

Parameter names per mixer follow mamba_ssm (``in_proj, conv1d, x_proj, dt_proj, A_log, D,
out_proj``) and per block (``norm, mixer``), per stack (``layers, norm_f``), so state dicts move
between this module and mamba_ssm's ``Mamba``/``Block`` unchanged. Initialisation follows the
paper's description (S4D-real A, dt log-uniform in [dt_min, dt_max], D = 1).

Three CPU scans are provided (``benchmarks/scan.py`` measures them in forward + backward):
``fused`` (the default on CPU for a full-sequence pass: one autograd node for the scan AND its
read-out y_t = <h_t, C_t>, with a hand-written backward recurrence, see :class:`ScanReadout`),
``loop`` (precompute the per-step decay and input, then one fused multiply-add per time step
over ``unbind`` slices; used when the final state is wanted, e.g. prefill) and ``chunked``
(exact within-chunk closed form with a stable segment-sum, sequential across chunks). With CUDA and
mamba_ssm installed, ``scan="cuda"`` (or ``"auto"`` on a CUDA tensor) calls mamba_ssm's fused
selective-scan kernel, imported lazily (mamba_ssm 2.x imports its CUDA extension at import).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnngap.resources import require

SCANS = ("auto", "fused", "loop", "chunked", "cuda")


@dataclass
class MambaConfig:
    """A stack of Mamba-1 blocks (pre-norm residual, RMSNorm, final ``norm_f``).

    ``dt_rank = 0`` means mamba_ssm's "auto": ceil(d_model / 16).
    """

    d_model: int
    n_layers: int
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 0
    norm_eps: float = 1e-5
    scan: str = "auto"
    chunk: int = 16

    def __post_init__(self) -> None:
        if min(self.d_model, self.n_layers, self.d_state, self.d_conv, self.expand) < 1:
            raise ValueError(f"Mamba sizes must be positive: {self}")
        if self.scan not in SCANS:
            raise ValueError(f"unknown scan {self.scan!r}; known: {', '.join(SCANS)}")
        if self.dt_rank == 0:
            self.dt_rank = math.ceil(self.d_model / 16)

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> MambaConfig:
        return cls(**d)


# ----------------------------------------------------------------------------- scans
def scan_loop(dA: Tensor, dBx: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """h_t = dA_t * h_{t-1} + dBx_t for t = 1..T, one fused op per step.

    Args: dA, dBx of shape (B, T, D, N); h0 (B, D, N) or None (zeros).
    Returns: all states (B, T, D, N) and the last state (B, D, N).
    """
    h = torch.zeros_like(dBx[:, 0]) if h0 is None else h0
    out = []
    for a, b in zip(dA.unbind(1), dBx.unbind(1)):
        h = torch.addcmul(b, a, h)
        out.append(h)
    return torch.stack(out, 1), h


class ScanReadout(torch.autograd.Function):
    """y_t = <h_t, C_t> with h_t = dA_t * h_{t-1} + dBx_t, h_0 = 0, as ONE autograd node.

    Shapes: dA, dBx (B, T, D, N); C (B, T, N); y (B, T, D). Backward (reverse-mode of the
    linear recurrence): with G_t = dL/dy_t (x) C_t the direct gradient on h_t,

        g_T = G_T,   g_t = G_t + dA_{t+1} * g_{t+1}      (g_t = dL/dh_t)
        dL/dBx_t = g_t,   dL/dA_t = g_t * h_{t-1},   dL/dC_t = sum_d dL/dy_t[d] h_t[d, :].

    The same float operations as ``scan_loop`` in the forward pass; the backward runs T fused
    multiply-adds instead of autograd's per-step graph (fewer, larger memory passes on CPU).
    """

    @staticmethod
    def forward(ctx, dA: Tensor, dBx: Tensor, C: Tensor) -> Tensor:
        hs = torch.empty_like(dBx)
        h = torch.zeros_like(dBx[:, 0])
        for t in range(dBx.shape[1]):
            h = torch.addcmul(dBx[:, t], dA[:, t], h, out=hs[:, t])
        ctx.save_for_backward(dA, hs, C)
        return (hs @ C.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def backward(ctx, gy: Tensor):
        dA, hs, C = ctx.saved_tensors
        T = hs.shape[1]
        gh = gy.unsqueeze(-1) * C.unsqueeze(2)                      # G_t, then g_t in place
        for t in range(T - 2, -1, -1):
            gh[:, t].addcmul_(dA[:, t + 1], gh[:, t + 1])
        g_dA = torch.zeros_like(dA)
        if T > 1:
            torch.mul(gh[:, 1:], hs[:, :-1], out=g_dA[:, 1:])
        g_C = (gy.unsqueeze(-2) @ hs).squeeze(-2)                   # (B, T, N)
        return g_dA, gh, g_C


def scan_chunked(logA: Tensor, dBx: Tensor, chunk: int = 16,
                 h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The same recurrence with dA = exp(logA), in closed form inside chunks of length c.

    Within a chunk starting after state h_prev, with S_t = sum_{j<=t} logA_j (chunk-local),
    h_t = sum_{s<=t} exp(S_t - S_s) dBx_s + exp(S_t) h_prev. Every exponent S_t - S_s (s <= t)
    is <= 0 because logA <= 0, so no overflow (the "stable segment sum" of Mamba-2, Dao & Gu
    2024). Cost O(T c) per channel instead of T sequential steps; memory (B, T, c, D, N).
    """
    Bsz, T, D, N = dBx.shape
    pad = (-T) % chunk
    if pad:
        logA = F.pad(logA, (0, 0, 0, 0, 0, pad))
        dBx = F.pad(dBx, (0, 0, 0, 0, 0, pad))
    nc = (T + pad) // chunk
    la = logA.reshape(Bsz, nc, chunk, D, N)
    u = dBx.reshape(Bsz, nc, chunk, D, N)
    S = la.cumsum(2)                                          # (B, nc, c, D, N)
    diff = S.unsqueeze(3) - S.unsqueeze(2)                    # [t, s] = S_t - S_s
    mask = torch.ones(chunk, chunk, dtype=torch.bool, device=dBx.device).tril()
    mask = mask.view(1, 1, chunk, chunk, 1, 1)
    w = torch.exp(diff.masked_fill(~mask, float("-inf")))     # (B, nc, c, c, D, N)
    local = (w * u.unsqueeze(2)).sum(3)                       # zero-initial-state states
    decay = torch.exp(S)                                      # from chunk start to t
    h = torch.zeros_like(dBx[:, 0]) if h0 is None else h0
    outs = []
    for k in range(nc):
        hk = local[:, k] + decay[:, k] * h.unsqueeze(1)
        outs.append(hk)
        h = hk[:, -1]
    hs = torch.cat(outs, 1)[:, :T]
    return hs, hs[:, -1]


def _cuda_scan_available() -> bool:
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except Exception:  # noqa: BLE001 -- ImportError, or the CUDA extension failing to load
        return False
    return True


CUDA_SCAN_HINT = "scan='cuda' needs mamba-ssm and a CUDA device: pip install 'rnngap[gpu]'"


def require_cuda_scan(device: torch.device | str | None = None) -> None:
    """ValueError (one line, what to install) unless mamba_ssm's kernel can run on ``device``."""
    if device is not None and torch.device(device).type != "cuda":
        raise ValueError(f"{CUDA_SCAN_HINT} (device is {device}; use --scan auto on CPU)")
    if not torch.cuda.is_available() or not _cuda_scan_available():
        raise ValueError(CUDA_SCAN_HINT)


# ----------------------------------------------------------------------------- modules
class MambaMixer(nn.Module):
    """One Mamba-1 S6 mixer (the module docstring gives the equations)."""

    def __init__(self, cfg: MambaConfig, dt_min: float = 1e-3, dt_max: float = 0.1) -> None:
        super().__init__()
        self.cfg = cfg
        d, di, n, r = cfg.d_model, cfg.d_inner, cfg.d_state, cfg.dt_rank
        self.in_proj = nn.Linear(d, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, cfg.d_conv, groups=di, padding=cfg.d_conv - 1, bias=True)
        self.x_proj = nn.Linear(di, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, di, bias=True)
        self.out_proj = nn.Linear(di, d, bias=False)
        # S4D-real initialisation A_n = -(n + 1), stored as log; D = 1.
        A = torch.arange(1, n + 1, dtype=torch.float32).repeat(di, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(di))
        # dt_proj: weight ~ U(-r^-1/2, r^-1/2); bias = softplus^{-1}(dt), dt log-uniform.
        nn.init.uniform_(self.dt_proj.weight, -(r ** -0.5), r ** -0.5)
        dt = torch.exp(torch.rand(di) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def _ssm_inputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (..., d_inner) -> Delta (..., d_inner), B (..., N), C (..., N)."""
        r, n = self.cfg.dt_rank, self.cfg.d_state
        dbc = self.x_proj(x)
        dt, Bm, Cm = dbc.split([r, n, n], dim=-1)
        return F.softplus(self.dt_proj(dt)), Bm, Cm

    def forward(self, u: Tensor, state: dict | None = None) -> Tensor:
        """u (B, T, d_model) -> (B, T, d_model). If ``state`` is a dict it receives the final
        recurrent state (keys ``conv``, ``ssm``) so decoding can continue with :meth:`step`."""
        _Bsz, T, _ = u.shape
        x, z = self.in_proj(u).chunk(2, dim=-1)
        xc = x.transpose(1, 2)                                        # (B, di, T)
        if state is not None:
            k = self.cfg.d_conv - 1
            state["conv"] = F.pad(xc, (max(0, k - T), 0))[..., -k:].detach().clone() \
                if k > 0 else xc[..., :0]
        x = F.silu(self.conv1d(xc)[..., :T]).transpose(1, 2)         # (B, T, di)
        scan = self.cfg.scan
        if scan == "cuda":
            require_cuda_scan(u.device)
        if scan == "cuda" or (scan == "auto" and u.is_cuda and _cuda_scan_available()):
            y, h = self._cuda_scan(x, z, state is not None)
        else:
            dt, Bm, Cm = self._ssm_inputs(x)
            # decay, input and states per (token, channel, state): ~4 (B, T, di, N) tensors
            require(4 * x.shape[0] * T * x.shape[2] * self.cfg.d_state * x.element_size(),
                    f"the selective scan over {T:,} tokens (batch {x.shape[0]})")
            A = -torch.exp(self.A_log)                                # (di, N)
            logA = dt.unsqueeze(-1) * A                               # (B, T, di, N)
            dBx = (dt * x).unsqueeze(-1) * Bm.unsqueeze(2)            # (B, T, di, N)
            if scan in ("auto", "fused") and state is None:
                y = ScanReadout.apply(torch.exp(logA), dBx, Cm) + self.D * x
            else:
                if scan == "chunked":
                    hs, h = scan_chunked(logA, dBx, self.cfg.chunk)
                else:
                    hs, h = scan_loop(torch.exp(logA), dBx)
                y = (hs @ Cm.unsqueeze(-1)).squeeze(-1) + self.D * x
            y = y * F.silu(z)
        if state is not None:
            state["ssm"] = h
        return self.out_proj(y)

    def _cuda_scan(self, x: Tensor, z: Tensor, want_state: bool) -> tuple[Tensor, Tensor | None]:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        r, n = self.cfg.dt_rank, self.cfg.d_state
        dt, Bm, Cm = self.x_proj(x).split([r, n, n], dim=-1)
        delta = (dt @ self.dt_proj.weight.T).transpose(1, 2).contiguous()   # bias added in-kernel
        out = selective_scan_fn(
            x.transpose(1, 2).contiguous(), delta, -torch.exp(self.A_log.float()),
            Bm.transpose(1, 2).contiguous(), Cm.transpose(1, 2).contiguous(), self.D.float(),
            z=z.transpose(1, 2).contiguous(), delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True, return_last_state=want_state)
        if want_state:
            y, h = out
        else:
            y, h = out, None
        return y.transpose(1, 2), h

    def state_scalars(self) -> int:
        """Numbers carried between tokens: d_inner * (N + d_conv - 1) (the ssm state and the
        last d_conv - 1 conv inputs)."""
        c = self.cfg
        return c.d_inner * (c.d_state + c.d_conv - 1)

    def init_state(self, batch: int, device: torch.device | None = None,
                   dtype: torch.dtype = torch.float32) -> dict:
        """Zero recurrent state: conv (B, d_inner, d_conv - 1), ssm (B, d_inner, N)."""
        di = self.cfg.d_inner
        return {"conv": torch.zeros(batch, di, self.cfg.d_conv - 1, device=device, dtype=dtype),
                "ssm": torch.zeros(batch, di, self.cfg.d_state, device=device, dtype=dtype)}

    def step(self, u: Tensor, state: dict) -> Tensor:
        """One token: u (B, d_model) -> (B, d_model); updates ``state`` in place (O(1) work)."""
        x, z = self.in_proj(u).chunk(2, dim=-1)
        window = torch.cat([state["conv"], x.unsqueeze(-1)], dim=-1)   # (B, di, d_conv)
        state["conv"] = window[..., 1:]
        w = self.conv1d.weight.squeeze(1)                              # (di, d_conv)
        x = F.silu((window * w).sum(-1) + self.conv1d.bias)
        dt, Bm, Cm = self._ssm_inputs(x)
        A = -torch.exp(self.A_log)
        h = torch.exp(dt.unsqueeze(-1) * A) * state["ssm"] \
            + (dt * x).unsqueeze(-1) * Bm.unsqueeze(1)
        state["ssm"] = h
        y = (h @ Cm.unsqueeze(-1)).squeeze(-1) + self.D * x
        return self.out_proj(y * F.silu(z))


class MambaBlock(nn.Module):
    """Pre-norm residual block: u + mixer(norm(u)) (mamba_ssm's ``Block`` with RMSNorm)."""

    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mixer = MambaMixer(cfg)

    def forward(self, u: Tensor, state: dict | None = None) -> Tensor:
        return u + self.mixer(self.norm(u), state)

    def step(self, u: Tensor, state: dict) -> Tensor:
        return u + self.mixer.step(self.norm(u), state)


class MambaStack(nn.Module):
    """``n_layers`` Mamba blocks and a final RMSNorm ``norm_f``: R^{B x T x d} -> same shape.

    Output projections are rescaled by 1/sqrt(n_layers) at init (GPT-2 residual scaling, as
    mamba_ssm does for ``out_proj``).
    """

    def __init__(self, cfg: MambaConfig, final_norm: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(MambaBlock(cfg) for _ in range(cfg.n_layers))
        self.norm_f = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps) if final_norm else nn.Identity()
        with torch.no_grad():
            for layer in self.layers:
                layer.mixer.out_proj.weight /= math.sqrt(cfg.n_layers)

    def forward(self, h: Tensor, states: list[dict] | None = None) -> Tensor:
        for i, layer in enumerate(self.layers):
            h = layer(h, None if states is None else states[i])
        return self.norm_f(h)

    def init_state(self, batch: int, device: torch.device | None = None) -> list[dict]:
        return [layer.mixer.init_state(batch, device) for layer in self.layers]

    def step(self, h: Tensor, states: list[dict]) -> Tensor:
        for layer, st in zip(self.layers, states):
            h = layer.step(h, st)
        return self.norm_f(h)

    def state_scalars(self) -> int:
        """Numbers carried between tokens (all layers): n_layers * d_inner * (N + d_conv - 1)."""
        return sum(layer.mixer.state_scalars() for layer in self.layers)
