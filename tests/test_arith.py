"""The p-bit machine: rounding is exact RNE, monotone, idempotent; ops round their results."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rnngap.models.arith import Arith, PBitArith, gamma, round_to_bits
from rnngap.verify.interval import reduction


def reference_round(x: float, p: int) -> float:
    """Round-to-nearest-even to p significant bits using exact rationals."""
    from fractions import Fraction

    if x == 0 or math.isinf(x):
        return x
    m, e = math.frexp(x)          # x = m 2^e, 0.5 <= |m| < 1
    scaled = Fraction(m) * 2 ** p
    q = round(scaled)             # Python's round on Fraction is half-to-even
    return float(Fraction(q) * Fraction(2) ** (e - p))


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@given(x=finite, p=st.integers(2, 52))
def test_round_matches_exact_reference(x, p):
    if x != 0 and abs(x) < 2.0 ** -1000:
        x = 0.0  # subnormal region follows float64's exponent grid (documented)
    got = round_to_bits(torch.tensor([x], dtype=torch.float64), p).item()
    assert got == reference_round(x, p)


@given(a=finite, b=finite, p=st.integers(2, 52))
def test_round_is_monotone_and_idempotent(a, b, p):
    lo, hi = sorted([a, b])
    r = round_to_bits(torch.tensor([lo, hi], dtype=torch.float64), p)
    assert r[0] <= r[1]
    assert torch.equal(round_to_bits(r, p), r)


def test_ties_go_to_even():
    x = torch.tensor([1 + 2 ** -10, 1 + 3 * 2 ** -10], dtype=torch.float64)
    assert round_to_bits(x, 10).tolist() == [1.0, 1 + 2 ** -8]


def test_pbit_rejects_out_of_range():
    for p in (1, 53, 0):
        with pytest.raises(ValueError):
            PBitArith(p)


def test_pbit_ops_round_and_float_ops_do_not():
    a = PBitArith(8)
    x = torch.tensor([1.0, 3.0], dtype=torch.float64)
    y = torch.tensor([2.0 ** -12, 0.0], dtype=torch.float64)
    assert a.add(x, y).tolist() == [1.0, 3.0]
    assert Arith().add(x, y).tolist() == [1 + 2 ** -12, 3.0]
    s = a.softmax(torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64))
    assert torch.equal(round_to_bits(s, 8), s)
    assert abs(s.sum().item() - 1) < 3 * 2 ** -8


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40),
       st.integers(4, 40), st.randoms(use_true_random=False))
def test_reduction_encloses_any_summation_order(terms, p, rnd):
    t = torch.tensor(terms, dtype=torch.float64)
    lo, hi = reduction(t, t, 0, p)
    for _ in range(3):
        perm = list(range(len(terms)))
        rnd.shuffle(perm)
        acc = 0.0
        for i in perm:
            acc += terms[i]
        r = round_to_bits(torch.tensor([acc], dtype=torch.float64), p).item()
        assert lo.item() <= r <= hi.item()


def test_gamma():
    assert gamma(1) > 2.0 ** -53 and math.isinf(gamma(2 ** 53))
