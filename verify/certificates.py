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
    ab = lambda e: z3.If(e >= 0, e, -e)
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


# ----- generic helpers for the exact ("hard attention") constructions -----------------------
# (appended for constructions.retrieval.ar / cgram / counting; the functions above are unchanged)

def pointer_lemma() -> dict:
    """The positional pointer of a causal row: for integers a <= i - 1 (the target position,
    possibly < 1) and 1 <= j <= i, the key score 2aj - j^2 is maximal at j0 = max(a, 1) and every
    other j scores at least 1 lower."""
    def build(z3):
        a, i, j = z3.Ints("a i j")
        j0 = z3.If(a >= 1, a, 1)
        hyp = z3.And(a <= i - 1, j >= 1, j <= i, j != j0)
        return z3.Implies(hyp, 2 * a * j - j * j <= 2 * a * j0 - j0 * j0 - 1)
    return z3_lemma("pointer-gap", "for all integers a <= i-1, 1 <= j <= i, j != max(a,1): "
                    "2aj - j^2 <= 2a*j0 - j0^2 - 1 with j0 = max(a,1)", build)


def match_lemma(m: int, tiebreak: bool, timeout_ms: int = 60000) -> dict:
    """``match_lemma_direct`` for m <= 6; for larger m (where z3's nonlinear search stalls) the
    same statement through the decomposition S = W (A - D) + T j - W E with A = sum Q_r^2 and
    D = sum (P_r - Q_r)^2: sympy checks the polynomial identity for this m, z3 proves that D is
    a nonnegative integer that is >= 1 on a mismatch (one square at a time) and the scalar
    lemma over (A, D, j, j', E', W, L)."""
    if m <= 6:
        return match_lemma_direct(m, tiebreak, timeout_ms)
    import sympy

    t0 = time.perf_counter()
    q, pp = sympy.symbols(f"q0:{m}"), sympy.symbols(f"p0:{m}")
    ident = sympy.expand(sum(2 * q[r] * pp[r] - pp[r] ** 2 for r in range(m))
                         - (sum(x ** 2 for x in q) - sum((pp[r] - q[r]) ** 2 for r in range(m))))
    def one_square(z3):
        P, Q = z3.Ints("P Q")
        return z3.And(z3.Implies(P != Q, (P - Q) * (P - Q) >= 1), (P - Q) * (P - Q) >= 0)
    square = z3_lemma("square", "integers P != Q: (P - Q)^2 >= 1; all: >= 0", one_square)

    def scalar(z3):
        A, D, j, j2, e2, W, L = z3.Ints("A D j j2 e2 W L")
        T = 1 if tiebreak else 0
        differs = z3.Or(D >= 1, e2 == 1, *([j2 < j] if tiebreak else []))
        dom = z3.And(D >= 0, j >= 1, j <= L, j2 >= 1, j2 <= L, j != j2, z3.Or(e2 == 0, e2 == 1),
                     L >= 1, W >= L if tiebreak else W == 1)
        return z3.Implies(z3.And(dom, differs), W * A + T * j >= W * (A - D) + T * j2 - W * e2 + 1)
    sc = z3_lemma("scalar", "", scalar, timeout_ms)
    ok = ident == 0 and square["result"] == "proved" and sc["result"] == "proved"
    form = "W*sum_r(2 Q_r P_r - P_r^2) + j - W*E, W >= L" if tiebreak else "sum_r(2 Q_r P_r - P_r^2) - E"
    return {"name": f"match-gap (m={m})", "statement": f"score {form}: a match beats every "
            "other allowed-to-lose position by >= 1, for all integers (via S = W(A - D) + Tj - WE)",
            "method": "sympy identity + z3 (square lemma, scalar lemma): negations unsat",
            "result": "proved" if ok else "not proved",
            "seconds": round(time.perf_counter() - t0, 3)}


def match_lemma_direct(m: int, tiebreak: bool, timeout_ms: int = 60000) -> dict:
    """The match score S(j) = W sum_r (2 Q_r P_r - P_r^2) + T j - W E of an m-gram matcher.

    For all integers Q_r, P_r, P'_r >= 0, positions 1 <= j, j' <= L, j != j', E' in {0, 1},
    W >= L >= 1 (tiebreak: T = 1; otherwise T = 0, W = 1): if j matches (P = Q, E = 0) and j'
    does not (some P'_r != Q_r, or E' = 1, or -- tiebreak only -- j' < j), then
    S(j) >= S(j') + 1. The proof is over ALL such integers, hence for every n.
    """
    def build(z3):
        q = z3.IntVector("Q", m)
        pp = z3.IntVector("P", m)
        j, j2, e2, W, L = z3.Ints("j j2 e2 W L")
        T = 1 if tiebreak else 0
        s_match = W * sum(q[r] * q[r] for r in range(m)) + T * j
        s_other = W * sum(2 * q[r] * pp[r] - pp[r] * pp[r] for r in range(m)) + T * j2 - W * e2
        differs = z3.Or(*[pp[r] != q[r] for r in range(m)], e2 == 1,
                        *([j2 < j] if tiebreak else []))
        dom = z3.And(*[x >= 0 for x in q + pp], j >= 1, j <= L, j2 >= 1, j2 <= L, j != j2,
                     z3.Or(e2 == 0, e2 == 1), L >= 1,
                     W >= L if tiebreak else W == 1)
        return z3.Implies(z3.And(dom, differs), s_match >= s_other + 1)
    form = "W*sum_r(2 Q_r P_r - P_r^2) + j - W*E, W >= L" if tiebreak else \
        "2 Q P - P^2 - E"
    return z3_lemma(f"match-gap (m={m})", f"score {form}: a match (P = Q, E = 0) beats every "
                    + ("non-match, excluded or earlier position" if tiebreak else
                       "non-match or excluded position") + " by >= 1, for all integers",
                    build, timeout_ms)


def integer_exactness(bounds: dict[str, int], p: int, scale_bits: int = 0) -> dict:
    """Every named family of integers has magnitude <= its bound <= 2^p, so each is exactly
    representable with a p-bit significand (times 2^scale_bits, a power of two, which does not
    change the significand). Exact python-integer comparison; the worst family is named."""
    t0 = time.perf_counter()
    worst = max(bounds, key=lambda name: bounds[name])
    bad = [name for name, b in bounds.items() if b > 2 ** p]
    return {"name": "integer-exactness", "statement": (
        f"every integer in the forward pass is exact at p={p} bits: "
        + ", ".join(f"{name} = {b}" for name, b in bounds.items()) + f" <= 2^{p} = {2 ** p}"),
        "method": "exact integer comparison (python ints)",
        "result": "proved" if not bad else "FAILED", "worst": worst,
        "exceeds": bad, "seconds": round(time.perf_counter() - t0, 6)}


def underflow_lemma(beta: float, p: int) -> dict:
    """exp(d) for d <= -beta: a faithful float64 exp returns 0 or 2^-1074 when beta >= 746
    (e^-746 < 2^-1075), and r_p(2^-1074) = 0 for p <= 52 (computed), so r(exp(d)) = 0 exactly."""
    import torch

    from rnngap.models.arith import round_to_bits

    t0 = time.perf_counter()
    tiny = torch.tensor([2.0 ** -1074, 0.0], dtype=torch.float64)
    rounded = round_to_bits(tiny, p)
    ok = beta >= 746 and bool((rounded == 0).all()) and Fraction(2) ** -1075 > Fraction(
        int(2.718281828459045 * 10**15), 10**15) ** -746
    return {"name": "softmax-underflow", "statement": (
        f"for d <= -{beta:g}: faithful exp(d) is 0 or 2^-1074 and r_{p}(2^-1074) = 0, so every "
        "non-maximal attention weight is exactly 0 and a unique maximum gets weight exactly 1"),
        "method": "computed rounding + exact rational bound e^-746 < 2^-1075",
        "result": "proved" if ok else "FAILED", "seconds": round(time.perf_counter() - t0, 6)}
