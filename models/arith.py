"""Pluggable arithmetic for the models: ordinary torch floats, or p-bit emulation.

The p-bit machine (``PBitArith``) is defined by this module, precisely:

* Numbers are float64 values whose significand has been rounded to ``p`` bits (2 <= p <= 52),
  round-to-nearest, ties-to-even; the exponent range is float64's (values below ~2.2e-308 are
  subnormal and may flush towards 0 as float64 does). ``r(x)`` is that rounding.
* Every elementary tensor operation's result is rounded once with ``r``:
  element-wise sums/differences/products, ``exp``, divisions, and every *reduction*
  (a matmul or dot product, a ``sum``) -- a reduction is accumulated in float64 (53-bit) in
  torch's order and its result rounded to p bits, as mixed-precision hardware accumulates
  half-precision products in a wider register.
* ``max`` and comparisons are exact; ReLU is exact (it only selects).
* Softmax is the usual stable form and rounds at each of its steps:
  ``d = r(s - max s)``, ``e = r(exp(d))``, ``Z = r(sum e)``, ``a = r(e / Z)``.

Verification (``rnngap.verify``) enumerates the data-independent parts of a forward pass with
exactly these functions and bounds the data-dependent reductions with the standard floating-point
summation bound |fl(sum x_k) - sum x_k| <= gamma_m * sum |x_k|, gamma_m = m u / (1 - m u),
u = 2^-53, valid for any summation order (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., Sec. 3.1 and 4.2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class Arith:
    """Ordinary floating-point arithmetic: every method is the plain torch operation."""

    name = "float"
    precision_bits: int | None = None

    def r(self, x: Tensor) -> Tensor:
        """Round to this arithmetic's precision (identity for ordinary floats)."""
        return x

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        return self.r(a + b)

    def mul(self, a: Tensor, b: Tensor | float) -> Tensor:
        return self.r(a * b)

    def matmul(self, a: Tensor, b: Tensor) -> Tensor:
        return self.r(a @ b)

    def linear(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """``x @ weight.T + bias`` as ONE reduction (bias accumulated with the products)."""
        if bias is None:
            return self.r(x @ weight.T)
        return self.r(torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight.T).reshape(
            *x.shape[:-1], weight.shape[0]))

    def exp(self, x: Tensor) -> Tensor:
        return self.r(torch.exp(x))

    def sum(self, x: Tensor, dim: int, keepdim: bool = False) -> Tensor:
        return self.r(x.sum(dim=dim, keepdim=keepdim))

    def div(self, a: Tensor, b: Tensor) -> Tensor:
        return self.r(a / b)

    def softmax(self, s: Tensor, dim: int = -1) -> Tensor:
        """Stable softmax, rounding after each step (see the module docstring)."""
        m = s.amax(dim=dim, keepdim=True)
        d = self.r(s - m)
        e = self.exp(d)
        z = self.sum(e, dim=dim, keepdim=True)
        return self.div(e, z)

    def describe(self) -> dict:
        return {"arith": self.name, "precision_bits": self.precision_bits}


FloatArith = Arith


def round_to_bits(x: Tensor, p: int) -> Tensor:
    """Round float64 ``x`` to ``p`` significand bits, round-to-nearest, ties-to-even.

    Works on the IEEE-754 bit pattern: adding ``2^(s-1) - 1 + lsb`` (s = 53 - p, lsb the last
    kept bit) to the integer view and clearing the low s bits is round-to-nearest-even of the
    magnitude; a carry out of the significand correctly bumps the exponent. Subnormals land on
    the grid 2^(-1022-(p-1)), as in a p-bit format with float64's exponent range; infinities
    and zeros pass through. (Checked against a frexp/round/ldexp reference in the tests.)
    """
    if x.dtype != torch.float64:
        raise TypeError("p-bit emulation works on float64 tensors")
    s = 53 - p
    b = x.view(torch.int64)
    t = b >> s                      # in place from here: one allocation per call
    t &= 1
    t += b
    t += (1 << (s - 1)) - 1
    t &= ~((1 << s) - 1)
    return t.view(torch.float64)


class PBitArith(Arith):
    """The p-bit machine of the module docstring, emulated in float64 (2 <= p <= 52)."""

    name = "pbit"

    def __init__(self, p: int):
        if not (2 <= int(p) <= 52):
            raise ValueError(f"p-bit emulation supports 2 <= p <= 52 (float64 has 53), got {p}")
        self.precision_bits = int(p)
        self.unit_roundoff = 2.0 ** -int(p)   # |r(x) - x| <= u |x| (round to nearest)

    def r(self, x: Tensor) -> Tensor:
        return round_to_bits(x, self.precision_bits)


def gamma(m: int, u: float = 2.0 ** -53) -> float:
    """Higham's gamma_m = m u / (1 - m u): relative error bound of an m-term float sum."""
    if m * u >= 1:
        return math.inf
    return m * u / (1 - m * u)
