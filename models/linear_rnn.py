"""A linear recurrent layer of the Mamba / S4 family, runnable under any ``Arith``.

For inputs x_1..x_T (rows of width ``d_model``), with state h_0 = 0 and an all-zero conv history:

    u_t = W_in x_t + b_in                                   in_proj, width d_inner
    v_t = sum_{k=0}^{K-1} w_k (.) u_{t-k} + b_conv          depthwise causal conv (u_s = 0, s < 1)
    a_t = a                       (``selective=False``: a fixed diagonal decay, shape d_state)
        = sigmoid(W_a v_t + b_a)  (``selective=True``: input-dependent, Mamba's selection)
    h_t = a_t (.) h_{t-1} + B v_t                           diagonal linear recurrence, d_state
    y_t = C h_t + D v_t                                     read-out (C: d_model x d_state)
    out_t = x_t + y_t                                       residual connection

(.) is the element-wise product. The state carried from token t to t+1 is h_t (d_state scalars)
plus the conv buffer u_{t-K+2..t} ((K-1) d_inner scalars): :meth:`LinearRNN.state_scalars`.

Arithmetic. With an ``Arith`` every operation above is rounded as ``models.arith`` specifies:
``in_proj`` and the read-out are one reduction each (``Arith.linear``), the conv sum (its K
products and the bias) is one reduction, ``B v_t`` is one reduction, and each step of the scan
rounds the product ``a_t (.) h_{t-1}`` and then the sum. Without one, the same equations run in
plain torch (the training path; a sequential scan, adequate for the short training sequences).

Why this is "the same class as Mamba" (Gu and Dao 2023, "Mamba", Alg. 2; Gu et al. 2022, S4D):
Mamba's mixer is in_proj -> depthwise causal conv1d of width 4 -> a diagonal recurrence
h_t = exp(Delta_t A) (.) h_{t-1} + Delta_t B_t v_t with read-out y_t = C_t h_t + D v_t. Our
layer keeps exactly that dataflow: the same conv (as a fixed-size buffer), a diagonal linear
recurrence, a linear read-out with the D skip. Differences, stated openly: (1) we omit Mamba's
SiLU after the conv and its output gate (they make the map non-linear; a *linear* RNN, as in
Definition 5.5 of Wen, Dang, Lyu 2025, has neither); (2) the decay ``a`` is a free real number
per channel instead of exp(Delta A) in (0, 1): a = 1 is the limit A -> 0 of Mamba's
zero-order-hold discretisation (then B_bar = Delta B), and S4D / LRU (Orvieto et al. 2023)
parametrise diagonal decays with |a| <= 1 directly; a = -1 (a parity channel) is a complex
S4D/LRU eigenvalue e^{i pi} and is the "negative eigenvalue" extension of Mamba studied by
Grazzi et al. (ICLR 2025, "Unlocking state-tracking in linear RNNs through negative
eigenvalues"); (3) with ``selective=True`` only the decay is input-dependent (B, C fixed).
The hand-set constructions use a in {1, -1}, integer weights and ``selective=False``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnngap.models.arith import Arith, PBitArith


def _round_np(x: np.ndarray, p: int) -> np.ndarray:
    """numpy twin of ``models.arith.round_to_bits`` (same bit manipulation, float64 -> p bits)."""
    s = 53 - p
    b = x.view(np.int64)
    b = (b + (((b >> s) & 1) + ((1 << (s - 1)) - 1))) & ~np.int64((1 << s) - 1)
    return b.view(np.float64)


def scan(a: Tensor, bv: Tensor, arith: Arith | None) -> Tensor:
    """h_t = a_t (.) h_{t-1} + bv_t, h_0 = 0, for t = 1..T; a, bv: (B, T, N) -> (B, T, N).

    Under ``arith`` each step is ``arith.add(arith.mul(a_t, h), bv_t)``. For the two built-in
    arithmetics (plain float64, ``PBitArith``) on CPU the same two rounded operations run in
    numpy, which is much faster per step than torch for small tensors (identical results: the
    product and the sum are single correctly-rounded float64 operations, then ``round_to_bits``'s
    bit manipulation); any other ``Arith`` runs the generic torch loop.
    """
    T = bv.shape[1]
    needs_grad = torch.is_grad_enabled() and (a.requires_grad or bv.requires_grad)
    fast = (a.dtype == torch.float64 and a.device.type == "cpu" and not needs_grad
            and (arith is None or type(arith) in (Arith, PBitArith)))
    if fast:
        p = None if arith is None else arith.precision_bits
        an, bn = a.detach().numpy(), bv.detach().numpy()
        out = np.empty(bn.shape, dtype=np.float64)
        h = np.zeros(bn.shape[0:1] + bn.shape[2:], dtype=np.float64)
        for t in range(T):
            h = an[:, t] * h
            if p is not None:
                h = _round_np(h, p)
            h = h + bn[:, t]
            if p is not None:
                h = _round_np(h, p)
            out[:, t] = h
        return torch.from_numpy(out)
    h = torch.zeros_like(bv[:, 0]) if T else bv
    hs = []
    for t in range(T):
        h = a[:, t] * h + bv[:, t] if arith is None else arith.add(arith.mul(a[:, t], h), bv[:, t])
        hs.append(h)
    return torch.stack(hs, 1) if hs else bv


class LinearRNN(nn.Module):
    """One residual linear recurrent layer (see the module docstring for the equations)."""

    def __init__(self, d_model: int, d_inner: int, d_state: int, conv_kernel: int = 1,
                 selective: bool = False) -> None:
        super().__init__()
        if min(d_model, d_inner, d_state, conv_kernel) < 1:
            raise ValueError("d_model, d_inner, d_state and conv_kernel must be >= 1")
        self.d_model, self.d_inner, self.d_state = d_model, d_inner, d_state
        self.conv_kernel, self.selective = conv_kernel, selective
        self.in_proj = nn.Linear(d_model, d_inner, bias=True)
        # conv_weight[:, k] multiplies u_{t-k}; default init: identity (w_0 = 1)
        self.conv_weight = nn.Parameter(F.one_hot(torch.zeros(d_inner, dtype=torch.long),
                                                  conv_kernel).float())
        self.conv_bias = nn.Parameter(torch.zeros(d_inner))
        self.a = nn.Parameter(torch.linspace(0.5, 0.99, d_state))
        self.a_proj = nn.Linear(d_inner, d_state) if selective else None
        self.B = nn.Parameter(torch.randn(d_state, d_inner) / d_inner ** 0.5)
        self.C = nn.Parameter(torch.randn(d_model, d_state) / d_state ** 0.5)
        self.D = nn.Parameter(torch.zeros(d_model, d_inner))

    def state_scalars(self) -> int:
        """Scalars carried between tokens: h (d_state) plus the conv buffer ((K-1) d_inner)."""
        return self.d_state + (self.conv_kernel - 1) * self.d_inner

    def _conv(self, u: Tensor, arith: Arith | None) -> Tensor:
        """v_t = sum_k w_k u_{t-k} + b for every t, one reduction per (t, channel)."""
        K = self.conv_kernel
        up = F.pad(u, (0, 0, K - 1, 0))                        # zero history before t = 1
        T = u.shape[1]
        shifted = torch.stack([up[:, K - 1 - k:K - 1 - k + T] for k in range(K)], -1)
        terms = shifted * self.conv_weight.to(u.dtype)        # (B, T, d_inner, K)
        bias = self.conv_bias.to(u.dtype).expand(*terms.shape[:-1])[..., None]
        total = torch.cat([terms, bias], -1).sum(-1)
        return total if arith is None else arith.r(total)

    def _decay(self, v: Tensor, arith: Arith | None) -> Tensor:
        """a_t for every t: (B, T, d_state) (constant a broadcast when not selective)."""
        if self.a_proj is None:
            return self.a.to(v.dtype).expand(*v.shape[:-1], self.d_state)
        if arith is None:
            return torch.sigmoid(self.a_proj(v))
        z = arith.linear(v, self.a_proj.weight, self.a_proj.bias)
        return arith.r(torch.sigmoid(z))                      # sigmoid rounded once, like exp

    def mix(self, x: Tensor, arith: Arith | None = None, trace: dict | None = None,
            state: dict | None = None) -> Tensor:
        """y_1..y_T (B, T, d_model) for x (B, T, d_model); ``trace`` receives u, v, h;
        ``state`` (from :meth:`init_state`, fresh) receives the state after x_T, so that
        :meth:`step` continues from there."""
        lin = (lambda m, z: F.linear(z, m.weight, m.bias)) if arith is None else \
            (lambda m, z: arith.linear(z, m.weight, m.bias))
        u = lin(self.in_proj, x)
        v = self._conv(u, arith)
        a = self._decay(v, arith)
        bv = v @ self.B.to(v.dtype).T
        if arith is not None:
            bv = arith.r(bv)
        H = scan(a, bv, arith)
        if trace is not None:
            trace.update(u=u, v=v, h=H)
        if state is not None:
            if u.shape[1] == 0:
                raise ValueError("an empty sequence cannot fill a state")
            past = torch.cat([state["buf"].to(u.dtype), u], 1)
            state["h"], state["buf"] = H[:, -1], past[:, past.shape[1] - (self.conv_kernel - 1):]
        W = torch.cat([self.C, self.D], 1).to(x.dtype)
        hv = torch.cat([H, v], -1)
        return hv @ W.T if arith is None else arith.linear(hv, W, None)

    def forward(self, x: Tensor, arith: Arith | None = None, trace: dict | None = None,
                state: dict | None = None) -> Tensor:
        """out_t = x_t + y_t (the residual layer)."""
        y = self.mix(x, arith, trace, state)
        return x + y if arith is None else arith.add(x, y)

    # ----- the recurrent view: one token at a time with a fixed-size state -------------------
    def init_state(self, batch: int, dtype=torch.float64) -> dict[str, Tensor]:
        """h_0 = 0 and an all-zero conv buffer (the last K-1 values of u, oldest first)."""
        return {"h": torch.zeros(batch, self.d_state, dtype=dtype),
                "buf": torch.zeros(batch, self.conv_kernel - 1, self.d_inner, dtype=dtype)}

    def step(self, x_t: Tensor, state: dict[str, Tensor], arith: Arith | None = None) -> Tensor:
        """Consume one token row x_t (B, d_model), update ``state`` in place, return out_t.

        Equal to :meth:`forward` at that position (up to float64 accumulation order inside a
        reduction, which is irrelevant when every term is an integer, as in the constructions).
        """
        y = self.mix_step(x_t, state, arith)
        return x_t + y if arith is None else arith.add(x_t, y)

    def mix_step(self, x_t: Tensor, state: dict[str, Tensor], arith: Arith | None) -> Tensor:
        """y_t for one token row, updating ``state`` (h and the conv buffer) in place."""
        lin = (lambda m, z: F.linear(z, m.weight, m.bias)) if arith is None else \
            (lambda m, z: arith.linear(z, m.weight, m.bias))
        u = lin(self.in_proj, x_t)
        window = torch.cat([state["buf"], u[:, None]], 1)             # oldest .. newest
        w = self.conv_weight.to(u.dtype).flip(-1).T                     # row k: u_{t-K+1+k}
        terms = torch.cat([(window * w).transpose(1, 2),
                           self.conv_bias.to(u.dtype).expand_as(u)[..., None]], -1)
        v = terms.sum(-1) if arith is None else arith.r(terms.sum(-1))
        a = self._decay(v[:, None], arith)[:, 0]
        bv = v @ self.B.to(v.dtype).T
        if arith is None:
            h = a * state["h"] + bv
        else:
            h = arith.add(arith.mul(a, state["h"]), arith.r(bv))
        state["h"], state["buf"] = h, window[:, 1:]
        W = torch.cat([self.C, self.D], 1).to(x_t.dtype)
        hv = torch.cat([h, v], -1)
        return hv @ W.T if arith is None else arith.linear(hv, W, None)
