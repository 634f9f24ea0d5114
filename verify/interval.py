"""Sound enclosures of p-bit computations whose float64 accumulation order is unknown.

``models.arith.PBitArith`` accumulates reductions in float64 in torch's order and rounds the
result to p bits. A verifier that recomputes a value may sum in another order, so it encloses:
for an m-term reduction with terms x_k, any float64 evaluation lies within
``gamma_m * sum |x_k|`` of the exact sum (Higham, Accuracy and Stability of Numerical Algorithms,
2nd ed., eq. (3.5) and Sec. 4.2; any order), hence within ``2 gamma_m sum|x_k|`` of ours, and
rounding to p bits is monotone, so the model's p-bit result lies in
``[r(z - e), r(z + e)]`` with ``e = 2 gamma_m sum |x_k| + m 2^-1074`` (the last term covers
underflow). Element-wise float64 ops used below (subtraction, division) are correctly rounded,
hence monotone; ``exp`` is assumed faithful (error < 1 ulp, true of glibc and SLEEF), so it is
enclosed by stepping 2 ulps outward.

Intervals are pairs of float64 tensors ``(lo, hi)`` with ``lo <= hi`` element-wise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnngap.models.arith import gamma, round_to_bits

TINY = 2.0 ** -1074


def widen(lo: Tensor, hi: Tensor, err: Tensor | float) -> tuple[Tensor, Tensor]:
    """(lo - err, hi + err), with the subtraction/addition themselves rounded outward."""
    lo2, hi2 = lo - err, hi + err
    return (torch.nextafter(lo2, torch.full_like(lo2, -torch.inf)),
            torch.nextafter(hi2, torch.full_like(hi2, torch.inf)))


def round_interval(lo: Tensor, hi: Tensor, p: int) -> tuple[Tensor, Tensor]:
    """Round both ends to p bits (rounding is monotone, so this encloses r(x), x in [lo, hi])."""
    return round_to_bits(lo, p), round_to_bits(hi, p)


def reduction(lo_terms: Tensor, hi_terms: Tensor, dim: int, p: int) -> tuple[Tensor, Tensor]:
    """Enclose the p-bit result of summing terms known to lie in [lo_terms, hi_terms].

    Exact case: when every term is known exactly (lo == hi), is an integer, and the sum of
    magnitudes is below 2^53, every partial sum is an integer below 2^53, so float64
    accumulation is exact in ANY order and the model's result is exactly r(sum).
    """
    m = lo_terms.shape[dim]
    mag = torch.maximum(lo_terms.abs(), hi_terms.abs()).sum(dim)
    exact = ((lo_terms == hi_terms) & (lo_terms == torch.round(lo_terms))).all(dim) & \
        (mag < 2.0 ** 52)
    err = 2 * gamma(m + 1) * mag * (1 + 2 * gamma(m + 1)) + m * TINY
    err = torch.where(exact, 0.0, err)
    lo, hi = lo_terms.sum(dim), hi_terms.sum(dim)
    wlo, whi = widen(lo, hi, err)
    lo, hi = torch.where(exact, lo, wlo), torch.where(exact, hi, whi)
    return round_interval(lo, hi, p)


def exp_interval(lo: Tensor, hi: Tensor, p: int) -> tuple[Tensor, Tensor]:
    """Enclose r(exp(x)) for x in [lo, hi] given a faithful float64 exp (2 ulps outward)."""
    elo, ehi = torch.exp(lo), torch.exp(hi)
    for _ in range(2):
        elo = torch.nextafter(elo, torch.zeros_like(elo))
        ehi = torch.nextafter(ehi, torch.full_like(ehi, torch.inf))
    return round_interval(elo.clamp_min(0.0), ehi, p)


def sub_interval(alo: Tensor, ahi: Tensor, blo: Tensor, bhi: Tensor, p: int
                 ) -> tuple[Tensor, Tensor]:
    """Enclose r(fl(a - b)) (float64 subtraction is correctly rounded, hence monotone)."""
    return round_interval(alo - bhi, ahi - blo, p)


def div_interval(alo: Tensor, ahi: Tensor, blo: Tensor, bhi: Tensor, p: int
                 ) -> tuple[Tensor, Tensor]:
    """Enclose r(fl(a / b)) for a >= 0 and b >= 0 (b_lo = 0 gives an infinite upper end)."""
    if bool((blo < 0).any()) or bool((alo < 0).any()):
        raise ValueError("div_interval needs a >= 0 and b >= 0")
    return round_interval(alo / bhi, ahi / blo, p)


def mul_interval(alo: Tensor, ahi: Tensor, blo: Tensor, bhi: Tensor) -> tuple[Tensor, Tensor]:
    """Exact-real enclosure of a*b for a in [alo, ahi], b in [blo, bhi] (before any rounding).

    The corner products are float64 roundings; they are widened by one relative unit 2^-53 so
    the result encloses the real product.
    """
    c = torch.stack([alo * blo, alo * bhi, ahi * blo, ahi * bhi])
    lo, hi = c.amin(0), c.amax(0)
    # a product of two integers below 2^53 in magnitude is computed exactly in float64
    ints = (alo == torch.round(alo)) & (ahi == torch.round(ahi)) & \
        (blo == torch.round(blo)) & (bhi == torch.round(bhi)) & \
        (torch.maximum(lo.abs(), hi.abs()) < 2.0 ** 53)
    wlo, whi = widen(lo, hi, torch.maximum(lo.abs(), hi.abs()) * 2.0 ** -53)
    return torch.where(ints, lo, wlo), torch.where(ints, hi, whi)


def linear_interval(hlo: Tensor, hhi: Tensor, weight: Tensor, bias: Tensor | None, p: int
                    ) -> tuple[Tensor, Tensor]:
    """Enclose the p-bit ``linear`` (x W^T + b as one reduction) for inputs in [hlo, hhi]."""
    w = weight.to(torch.float64)
    plo, phi = mul_interval(hlo[..., None, :], hhi[..., None, :], w, w)
    if bias is not None:
        b = bias.to(torch.float64).expand(*plo.shape[:-1])[..., None]
        plo, phi = torch.cat([plo, b], -1), torch.cat([phi, b], -1)
    return reduction(plo, phi, -1, p)
