"""Machine-checked lemmas (z3) and exact-rational margin checks (sympy) used by verifiers.

A z3 certificate states a universally quantified lemma over integers/reals, asserts its
negation, and records ``proved`` only when z3 answers *unsat* (no counterexample exists).
A sympy certificate re-evaluates a chain of inequalities in exact rational arithmetic from the
float64 quantities the verifier computed (each converted exactly with ``sympy.Rational``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any


def z3_lemma(name: str, statement: str, build: Callable[[Any], Any],
             timeout_ms: int = 30000) -> dict:
    """Prove ``build(z3)`` (a z3 formula, free variables universally quantified) with z3."""
    import z3

    t0 = time.perf_counter()
    solver = z3.Solver()
    solver.set(timeout=timeout_ms)
    solver.add(z3.Not(build(z3)))
    res = solver.check()
    return {"name": name, "statement": statement, "method": "z3: negation is unsat",
            "result": "proved" if res == z3.unsat else f"not proved (z3: {res})",
            "seconds": round(time.perf_counter() - t0, 3)}


def score_gap_lemma() -> dict:
    """For integers i != j: 2ij - j^2 <= i^2 - 1 (the Index score peaks at j = i by >= 1)."""
    def build(z3):
        i, j = z3.Ints("i j")
        return z3.Implies(i != j, 2 * i * j - j * j <= i * i - 1)
    return z3_lemma("score-gap", "for all integers i != j: 2ij - j^2 <= i^2 - 1", build)


def decode_gap_lemma(delta: Fraction) -> dict:
    """For integers t != x and real y with |y - x| <= delta (< 1):
    (2xy - x^2) - (2ty - t^2) >= 1 - 2 delta  (the quadratic unembedding's margin)."""
    if not 0 <= delta < 1:
        raise ValueError("decode lemma needs 0 <= delta < 1")

    def build(z3):
        x, t = z3.Ints("x t")
        y = z3.Real("y")
        d = z3.RealVal(f"{delta.numerator}/{delta.denominator}")
        hyp = z3.And(t != x, y - x <= d, x - y <= d)
        return z3.Implies(hyp, (2 * x * y - x * x) - (2 * t * y - t * t) >= 1 - 2 * d)
    return z3_lemma("decode-gap", f"for integers t != x, real y, |y-x| <= {float(delta):.6g}: "
                    "(2xy - x^2) - (2ty - t^2) >= 1 - 2*delta", build)


def quadratic_decode_lemma(k: int, vocab: int, delta: float, rho: float, eta: float,
                           timeout_ms: int = 60000) -> dict:
    """The decoding lemma of the quadratic unembedding logit_t(y) = 2ty - t^2, with rounding.

    For all integers x in [0, k-1] (the answer), t in [0, vocab-1], t != x, all reals y with
    |y - x| <= delta (the retrieved value), and all rounding errors e_x, e_t with
    |e_s| <= rho |logit_s(y)| + eta: logit_x(y) + e_x > logit_t(y) + e_t, i.e. the computed
    argmax is x with no tie. z3 either proves it (negation unsat) or returns a counterexample,
    reported under ``counterexample``.
    """
    import z3

    def q(v: float):
        f = Fraction(v)
        return z3.RealVal(f"{f.numerator}/{f.denominator}")

    t0 = time.perf_counter()
    x, t = z3.Ints("x t")
    y, ex, et = z3.Reals("y ex et")
    lx, lt = 2 * x * y - x * x, 2 * t * y - t * t
    ab = lambda e: z3.If(e >= 0, e, -e)  # noqa: E731
    hyp = z3.And(x >= 0, x <= k - 1, t >= 0, t <= vocab - 1, t != x,
                 y - x <= q(delta), x - y <= q(delta),
                 ab(ex) <= q(rho) * ab(lx) + q(eta), ab(et) <= q(rho) * ab(lt) + q(eta))
    solver = z3.Solver()
    solver.set(timeout=timeout_ms)
    solver.add(z3.Not(z3.Implies(hyp, lx + ex > lt + et)))
    res = solver.check()
    out = {"name": "decode", "statement": (
        f"for all integers x in [0,{k - 1}], t in [0,{vocab - 1}], t != x, real y with "
        f"|y-x| <= {delta:.4g} and rounding errors |e| <= {rho:.3g}|logit| + {eta:.3g}: "
        "2xy - x^2 + e_x > 2ty - t^2 + e_t"), "method": "z3: negation is unsat",
        "result": "proved" if res == z3.unsat else
        ("REFUTED" if res == z3.sat else f"not proved (z3: {res})"),
        "seconds": round(time.perf_counter() - t0, 3)}
    if res == z3.sat:
        m = solver.model()
        out["counterexample"] = {"x": m[x].as_long(), "t": m[t].as_long(),
                                 "y": float(m[y].as_fraction())}
    return out


def exact_positive(name: str, terms: dict[str, float], expression: str) -> dict:
    """Evaluate ``expression`` over ``terms`` in exact rationals (sympy) and check it is > 0."""
    import sympy

    t0 = time.perf_counter()
    syms = {k: sympy.Rational(Fraction(v)) for k, v in terms.items()}
    value = sympy.sympify(expression, locals=syms)
    ok = bool(value > 0)
    return {"name": name, "statement": f"{expression} > 0 with "
            + ", ".join(f"{k}={float(v):.6g}" for k, v in terms.items()),
            "method": "sympy exact rationals", "result": "proved" if ok else "FAILED",
            "value": float(value), "seconds": round(time.perf_counter() - t0, 3)}
