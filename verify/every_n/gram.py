"""AR and c-gram retrieval for every n of a range: the gram Transformers and the gram hybrids.

The constructions (``constructions.retrieval.cgram.build_gram``, ``constructions.retrieval.ar``,
``constructions.retrieval.hybrid.build_gram``) are INTEGER EXACT: every activation is an integer (scores an
integer times beta = 2^10). At n they have m = c - 1 pointer heads (AR: m = 1), sequence length
L(n) (c-gram n + c - 1, AR n + 1), alphabet k(n) (n + 1 or the given one), vocabulary V = k,
largest data token K = k - 1, match weight W(n) (c-gram W = L, AR W = 1) and tie-break T
(c-gram 1, AR 0); the hybrid's conv has width K_c = delay + m + 1 (delay = m, AR 0). The
claimed precision p(n) and the scalars are computed by the construction's OWN functions at
every n (``gram_precision``, resp. ``hybrid.bits_for(max(hybrid.gram_bounds(...)))``, the
builders' constants); W = L varies with n, so the block key records the RELATION ``W - L = 0``
(c-gram) rather than W itself, and the builder's scalars are reduced the same way.

The proof of a block [a, b] (every n of the block at once; nothing is enumerated over n):

Generic lemmas (proved once per prover and listed in every block; they hold for all n):

* ``construction-formulas`` (weights): the layer weights of two reference builds are affine in
  W (a third build is predicted exactly), the architecture is the one the proof models, and
  the n-sized tables are the formulas E[t] = (t, t^2), P[j] = (j, j^2, EXCL(j)) (Transformer),
  U[t] = (2t on Y, bias -t^2). The builder at any other n is tied to these formulas by
  ``builder_scalars`` (every fixed-size weight equals the affine formula at W(n), every table
  row equals its formula) at the cross-checked n, as in ``verify.every_n.index``.
* ``symbolic-forward`` (sympy, a symbolic position): the weights applied to the symbolic
  residual stream give, as polynomial identities in the positions i, j, the tokens and W:
  Transformer layer 1 head r: q_i = beta (i - r, 1, 0..), k_j = (2j, -j^2, 0..), v = (t, t^2,
  0..), score beta (2 (i-r) j - j^2), W_O writes (x, x^2) into (PREV_r, PREV2_r); zero MLPs;
  layer 2 (and the hybrid's one attention layer): score beta (W sum_r (2 Q_r P_r - P2_r) +
  T POS - W EXCL), value TOK (hybrid: VAL) into Y; logits 2uY - u^2. This is the per-n
  ``layer1-enumerated`` / ``layer2-form`` / ``structure`` / ``attention-weights`` for every j.
* ``rnn-table`` (hybrid; sympy): the LinearRNN layer evaluated symbolically on an arbitrary
  token sequence: positions t < K_c enumerated (the conv window reaches the zero history),
  t >= K_c one symbolic t per parity class; the recurrent state by induction (base t = K_c,
  step h_t = a h_{t-1} + c checked as an identity per parity); the residual entering attention
  must be the copy table (TOK, TOK2, S_r = x_{t-r+1}, G_r / G2_r = x_{t-delay-r} and its
  square, VAL = x_{t-delay}, 0 before position 1) and POS = t, PEN = [t < K_c] (c-gram) or
  PEN = [t odd] (AR). This is the per-n copy lemma plus ``rnn-constant-channels`` for every t.
* ``bound-*`` (z3 over all integers, sizes as variables): the tight magnitude of the three
  families where a term-by-term bound is too weak: layer-1 scores |2(i-r)j - j^2| <= L^2 (and
  |i - r| <= L), matcher scores |W S + T j - W E| <= W m K^2 + max(W, T L), logits
  |2uY - u^2| <= (V-1)^2.
* ``pointer-gap``, ``match-gap``, ``decode-gap`` (z3, all integers: ``verify.certificates``),
  ``exponent-gap`` (beta >= 746), ``task-mapping`` (z3, n a variable >= n_min: the allowed
  positions are exactly the value positions of the task, no pointer or conv tap reaches
  before position 1 there, and the matched gram is the query gram).
* ``sizes-monotone``: L(n), K(n), V(n) - 1, W(n) are affine in n with slope >= 0 (sympy).
* ``copy-lemma-reference`` (hybrid): today's copy-lemma side conditions on the reference build
  (its RNN weights are those of every n: ``construction-formulas`` / ``builder_scalars``).

Block lemmas (exact integers at n = b, the worst end: every bound below is a polynomial with
nonnegative coefficients in the sizes, or a max of such, hence nondecreasing in n):

* ``precision-emulable``: 2 <= p <= 52.
* ``integer-exactness``: every rounded quantity of the forward pass (each output of each
  reduction and elementwise sum, from the symbolic pass) is 2^s times an integer of magnitude
  <= 2^p (s its coefficients' common 2-adic valuation; bound: term-by-term with the sizes at b,
  or the family bound): every p-bit rounding is the identity. The construction's own
  ``integer_bounds`` / ``gram_bounds`` at b are reported beside it (and must be <= 2^p too).
* ``float64-sums-exact``: every reduction's sum of |terms| <= 2^(53+s), so float64
  accumulation is exact in any order. ``float64-aggregate``: the per-n verifier's cruder side
  condition (one aggregate < 2^52), kept so that a proved block implies today's verdict; it is
  what limits c-gram with the default alphabet (``n_limit``), not p(n) <= 52.
* ``softmax-underflow`` (``certificates.underflow_lemma`` at p): non-maximal weights are 0.
* ``match-hypotheses``: the block's scalars meet the match lemma's hypotheses (W >= L, T = 1;
  AR: W = 1, T = 0) at every n of the block.

Hard attention from these: the scores are exact multiples of beta, the target's is the strict
row maximum by >= beta (pointer-gap / match-gap with task-mapping); s - max is exact in float64
(two exact multiples of beta below 2^(p+11)), so d = 0 at the target and, p-bit rounding
being monotone and -beta representable, r(d) <= -beta elsewhere: e = 1 resp. 0
(underflow), Z = 1, the weights are exactly 1 and 0 and the attention output is the target's
value exactly (the other products are 0 * finite).

Bounds are evaluated at the block's largest n b; sub-blocks [a, m] (``first_failing``'s
bisection) evaluate them at m, so the smallest n whose bounds break is found exactly.

Not covered by the lemmas (as in the per-n verifier, argued in words): that the task's answer
is the last (c-gram) / unique (AR: distinct keys) matching allowed position -- the task's
definition, once ``task-mapping`` has identified allowed positions with value positions.
"""

from __future__ import annotations

import time
from fractions import Fraction

from rnngap.constructions.retrieval import cgram as gram
from rnngap.constructions.retrieval import hybrid as hyb
from rnngap.verify import certificates as cert
from rnngap.verify.every_n import MAX_P, Block, RangeError, lemma

# ----------------------------------------------------------------------------------------------
# symbolic helpers
# ----------------------------------------------------------------------------------------------


def _sp():
    import sympy
    return sympy


class _Sizes:
    """The size symbols L, K, V1 = V - 1, W (all >= 0, nondecreasing in n)."""

    def __init__(self) -> None:
        sp = _sp()
        self.L, self.K, self.V1, self.W = sp.symbols("SL SK SV1 SW", nonnegative=True)
        self.all = (self.L, self.K, self.V1, self.W)


class _Red:
    """One rounded quantity: an elementwise sum or a reduction (terms) and its result."""

    __slots__ = ("family", "name", "result", "terms")

    def __init__(self, name: str, terms: list, result, family: str | None = None) -> None:
        self.name, self.terms, self.result, self.family = name, terms, result, family


def _v2(x: int) -> int:
    x = abs(int(x))
    return 10 ** 6 if x == 0 else (x & -x).bit_length() - 1


class _Poly:
    """A polynomial in the sizes with nonnegative integer coefficients, evaluated fast."""

    def __init__(self, expr, sizes: _Sizes) -> None:
        sp = _sp()
        e = sp.expand(expr)
        if e == 0:
            self.terms: list[tuple[int, tuple[int, ...]]] = []
            return
        poly = sp.Poly(e, *sizes.all)
        self.terms = []
        for exps, coef in poly.terms():
            if not (coef.is_integer and coef >= 0):
                raise ValueError(f"bound {e} has a coefficient {coef} that is not a "
                                 "nonnegative integer")
            self.terms.append((int(coef), tuple(int(x) for x in exps)))

    def __call__(self, vals: tuple[int, ...]) -> int:
        total = 0
        for coef, exps in self.terms:
            v = coef
            for x, e in zip(vals, exps, strict=True):
                if e:
                    v *= x ** e
            total += v
        return total


def _absbound(expr, maxima: dict, sizes: _Sizes):
    """Sum over monomials of |coef| * prod max(var)^e: an upper bound of |expr| (and of the
    sum of |monomials|) when every variable v has |v| <= maxima[v]."""
    sp = _sp()
    e = sp.expand(expr)
    if e == 0:
        return sp.Integer(0)
    free = sorted(e.free_symbols, key=str)
    if not free:
        return abs(e)
    poly = sp.Poly(e, *free)
    out = sp.Integer(0)
    for exps, coef in poly.terms():
        term = abs(coef)
        for v, k in zip(free, exps, strict=True):
            if k:
                term *= maxima[v] ** k
        out += term
    return out


def _int_coeffs(expr) -> tuple[bool, int]:
    """(all coefficients integers, their least 2-adic valuation)."""
    sp = _sp()
    e = sp.expand(expr)
    if e == 0:
        return True, 10 ** 6
    free = sorted(e.free_symbols, key=str)
    coeffs = sp.Poly(e, *free).coeffs() if free else [e]
    if not all(c.is_integer for c in coeffs):
        return False, 0
    return True, min(_v2(int(c)) for c in coeffs)


def _rat(x: float):
    sp = _sp()
    f = Fraction(float(x))
    return sp.Rational(f.numerator, f.denominator)


def _lin(W, b, x: list) -> tuple[list, list[list]]:
    """out_r = sum_c W[r][c] x_c + b_r (one reduction per r); (outputs, terms per output)."""
    sp = _sp()
    outs, terms = [], []
    for r in range(len(W)):
        ts = [W[r][c] * x[c] for c in range(len(x)) if W[r][c] != 0 and x[c] != 0]
        if b is not None and b[r] != 0:
            ts.append(b[r])
        outs.append(sp.expand(sum(ts, sp.Integer(0))))
        terms.append(ts)
    return outs, terms


def _same(a, b) -> bool:
    return _sp().expand(a - b) == 0


# ----------------------------------------------------------------------------------------------
# the provers
# ----------------------------------------------------------------------------------------------


def _mismatched(sd: dict, want: dict) -> str:
    """The names of the tensors of ``want`` that ``sd`` lacks or holds with other values."""
    import torch

    return ", ".join(k for k, v in want.items() if k not in sd or sd[k].shape != v.shape
                     or not torch.equal(sd[k].double(), v))


class _GramProver:
    """Shared machinery of the four gram provers (see the module docstring)."""

    def _w_key(self, n: int) -> dict:
        """The match weight W as a block scalar: c-gram's W = L changes with every n, so its
        key is W - L (0); AR's W is 1."""
        if self.task == "cgram":
            return {"W - L": float(self.W(n) - self.L(n))}
        return {"W": float(self.W(n))}

    task = "?"
    model = "?"

    def __init__(self, alphabet: int | None = None, c: int | None = None, **_: object) -> None:
        if alphabet is not None and alphabet < 1:
            raise ValueError("alphabet must be >= 1")
        self.alphabet = alphabet
        self.c = self._c(c)
        self.m = 1 if self.task == "ar" else self.c - 1
        self.params = {"alphabet": alphabet} if self.task == "ar" else \
            {"alphabet": alphabet, "c": self.c}
        self._generic: list[dict] | None = None
        self._reds: list | None = None
        self._ref: dict | None = None
        self._underflow: dict[int, dict] = {}
        self.n_limit = self._n_limit()

    # --- task-specific quantities ---------------------------------------------------------------
    def _c(self, c: int | None) -> int:
        return 2

    def k(self, n: int) -> int:
        return n + 1 if self.alphabet is None else self.alphabet

    def vocab(self, n: int) -> int:
        return self.k(n)          # V = k for AR and c-gram (tasks.ar / tasks.cgram)

    def L(self, n: int) -> int:
        raise NotImplementedError

    def W(self, n: int) -> int:
        raise NotImplementedError

    T = 0

    def sizes(self, n: int) -> tuple[int, int, int, int]:
        """(L, K, V - 1, W) at n: the size symbols' values."""
        return self.L(n), self.k(n) - 1, self.vocab(n) - 1, self.W(n)

    def _scalar_key(self, n: int) -> dict:
        raise NotImplementedError

    def _precision(self, n: int) -> int:
        raise NotImplementedError

    def key(self, n: int) -> tuple[int, dict]:
        return self._precision(n), self._scalar_key(n)

    def _n_limit(self) -> int:
        """Largest valid n with p(n) <= MAX_P, a buildable vocabulary (registry
        CONSTRUCTION_MAX_VOCAB) and the per-n verifier's float64 side condition (aggregate
        < 2^52; it binds first for c-gram with the default alphabet) -- bisection on these
        nondecreasing quantities; the block scan re-evaluates p at every n and the block
        lemmas re-check the rest."""
        from rnngap.tasks.registry import CONSTRUCTION_MAX_VOCAB

        def ok(n: int) -> bool:
            return self.vocab(n) <= CONSTRUCTION_MAX_VOCAB and self._precision(n) <= MAX_P \
                and self._fits(n) and self._f64_aggregate(n) < 2 ** 52
        lo, hi = self.n_min, 1 << 40
        if not ok(lo):
            return lo - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        while not self.valid(lo):
            lo -= 1
        return lo

    def _fits(self, n: int) -> bool:
        return True

    # --- shared proof parts ------------------------------------------------------------------
    def prove(self, block: Block) -> list[dict]:
        t0 = time.perf_counter()
        p = block.precision_bits
        out = [lemma("precision-emulable", f"2 <= p = {p} <= {MAX_P}: the p-bit machine with "
                     "float64 accumulation is defined", "exact integer comparison",
                     2 <= p <= MAX_P, t0)]
        if out[0]["result"] != "proved":
            return out
        out += self._generic_lemmas()
        out.append(self._match_hypotheses(block))
        out += self._block_lemmas(block)
        return out

    def _match_hypotheses(self, block: Block) -> dict:
        """The block's scalars satisfy the match lemma's hypotheses at every n of the block."""
        t0 = time.perf_counter()
        sc = block.scalars
        if self.T:
            ok = sc.get("T") == 1.0 and sc.get("W - L", -1.0) >= 0
            text = (f"T = {sc.get('T')} = 1 and W - L = {sc.get('W - L')} >= 0, i.e. W(n) >= "
                    "L(n) for every n of the block (the tie-break form)")
        else:
            ok = sc.get("T") == 0.0 and sc.get("W") == 1.0
            text = f"T = {sc.get('T')} = 0 and W = {sc.get('W')} = 1 (the unique-match form)"
        ok &= sc.get("beta") == gram.BETA
        return lemma("match-hypotheses", text + f", beta = {sc.get('beta')}: the match, "
                     "pointer and underflow lemmas apply with the block's scalars",
                     "exact comparison", ok, t0)

    def _generic_lemmas(self) -> list[dict]:
        if self._generic is None:
            g: list[dict] = []
            g.append(self._formulas_lemma())
            sym, reds = self._symbolic_lemmas()
            g += sym
            self._reds = reds
            g += self._bound_lemmas()
            if self.model == "transformer":
                g.append(cert.pointer_lemma())
            g.append(cert.match_lemma(self.m, tiebreak=bool(self.T)))
            g.append({**cert.score_gap_lemma(), "name": "decode-gap", "statement":
                      "for all integers u != Y: 2uY - u^2 <= Y^2 - 1 (the exact logits of the "
                      "retrieved Y have margin >= 1)"})
            g.append(cert.exact_positive("exponent-gap", {"beta": gram.BETA}, "beta - 746"))
            g.append(self._task_mapping())
            g.append(self._sizes_monotone())
            self._generic = g
        return [dict(x, cached=True) for x in self._generic]

    def _sizes_monotone(self) -> dict:
        t0 = time.perf_counter()
        sp = _sp()
        n = sp.Symbol("n", integer=True, positive=True)
        forms = self._size_formulas(n)
        forms = {k_: sp.sympify(f) for k_, f in forms.items()}
        ok = all(sp.Poly(f, n).degree() <= 1 and sp.diff(f, n).is_number
                 and sp.diff(f, n) >= 0 for f in forms.values())
        for probe in (self.n_min, self.n_min + 7):      # the formulas are the prover's sizes
            vals = self.sizes(probe)
            ok &= all(int(forms[k_].subs(n, probe)) == v for k_, v in
                      zip(("L", "K", "V1", "W"), vals, strict=True))
        return lemma("sizes-monotone", "the sizes are affine in n with slope >= 0: " + ", ".join(
            f"{k}(n) = {f}" for k, f in forms.items()) + " (so every bound below, a polynomial "
            "with nonnegative coefficients in them, is nondecreasing in n and is evaluated at "
            "the block's largest n)", "sympy (derivative in n is a nonnegative constant)",
            ok, t0)

    def _size_formulas(self, n) -> dict:
        k = n + 1 if self.alphabet is None else self.alphabet
        return {"L": self._L_formula(n), "K": k - 1, "V1": k - 1, "W": self._W_formula(n)}

    def _bound_lemmas(self) -> list[dict]:
        out = []
        m, T = self.m, self.T
        if self.model == "transformer":
            lmin = self.L(self.n_min)

            def f1(z3):
                Lv, i, j = z3.Ints("L i j")
                hyp = z3.And(Lv >= lmin, j >= 1, j <= i, i <= Lv)
                cl = []
                for r in range(1, m + 1):
                    a = i - r
                    s = 2 * a * j - j * j
                    cl += [a <= Lv, -a <= Lv, s <= Lv * Lv, -s <= Lv * Lv]
                return z3.Implies(hyp, z3.And(*cl))
            out.append(cert.z3_lemma(
                "bound-layer1", f"for all integers L >= {lmin} (= L(n_min)), 1 <= j <= i <= L, "
                f"r in 1..{m}: |i - r| <= L and |2(i-r)j - j^2| <= L^2 (layer-1 queries and "
                "scores, units of beta)", f1))

        def f2(z3):
            Q, P = z3.IntVector("Q", m), z3.IntVector("P", m)
            K, Wv, Lv, j, e = z3.Ints("K W L j e")
            val = Wv * sum(2 * Q[r] * P[r] - P[r] * P[r] for r in range(m)) + T * j - Wv * e
            bound = Wv * m * K * K + z3.If(Wv >= T * Lv, Wv, T * Lv)
            hyp = z3.And(K >= 0, Wv >= 1, Lv >= 1, j >= 1, j <= Lv, z3.Or(e == 0, e == 1),
                         *[z3.And(Q[r] >= 0, Q[r] <= K, P[r] >= 0, P[r] <= K)
                           for r in range(m)])
            return z3.Implies(hyp, z3.And(val <= bound, -val <= bound))
        out.append(cert.z3_lemma(
            "bound-matcher", f"for all integers K >= 0, W >= 1, L >= 1, 0 <= Q_r, P_r <= K "
            f"(r = 1..{m}), 1 <= j <= L, E in {{0,1}}: |W sum_r (2 Q_r P_r - P_r^2) + {T} j - "
            f"W E| <= W {m} K^2 + max(W, {T} L) (matcher scores, units of beta)", f2))

        def f3(z3):
            u, y, V = z3.Ints("u Y V")
            hyp = z3.And(u >= 0, u <= V - 1, y >= 0, y <= V - 1)
            s = 2 * u * y - u * u
            return z3.Implies(hyp, z3.And(s <= (V - 1) * (V - 1), -s <= (V - 1) * (V - 1)))
        out.append(cert.z3_lemma("bound-logits", "for all integers 0 <= u, Y <= V-1: "
                                 "|2uY - u^2| <= (V-1)^2", f3))
        return out

    def _family(self, name: str, vals: tuple[int, int, int, int]) -> int:
        """The bound of a family (units of its identity's scale) at the sizes ``vals``."""
        Lv, K, V1, W = vals
        if name == "layer1":
            return Lv * Lv
        if name == "matcher":
            return W * self.m * K * K + max(W, self.T * Lv)
        if name == "logits":
            return V1 * V1
        raise KeyError(name)

    def _compiled(self):
        """Per rounded quantity: (name, valuation s, sum-of-|terms| bound, result bound or a
        family name with its unit), built once from the symbolic pass."""
        if getattr(self, "_comp", None) is None:
            sz, maxima = self._sz, self._maxima
            comp, seen = [], set()
            bad = []
            for r in self._reds:
                ok_all, s = True, 10 ** 6
                for term in r.terms:
                    ok, v = _int_coeffs(term)
                    ok_all &= ok
                    s = min(s, v)
                if not ok_all:
                    bad.append(r.name)
                    continue
                if s == 10 ** 6:
                    continue                       # no nonzero term: exactly 0
                tsum = _sp().Integer(0)
                for term in r.terms:
                    tsum += _absbound(term, maxima, sz)
                if r.family is None:
                    res = ("poly", _Poly(_absbound(r.result, maxima, sz), sz))
                else:
                    res = ("family", r.family[0], r.family[1])
                k = (str(tsum), s, str(res[1]) if res[0] == "family" else
                     str(_absbound(r.result, maxima, sz)),
                     res[2] if res[0] == "family" else None)
                if k in seen:
                    continue
                seen.add(k)
                comp.append((r.name, s, _Poly(tsum, sz), res))
            self._comp, self._comp_bad = comp, bad
        return self._comp, self._comp_bad

    def _block_lemmas(self, block: Block) -> list[dict]:
        a, b, p = block.n_lo, block.n_hi, block.precision_bits
        comp, bad = self._compiled()
        vals = self.sizes(b)
        t0 = time.perf_counter()
        worst_res, worst_sum = (None, -1.0), (None, -1.0)
        ok_res, ok_sum = not bad, not bad
        for name, s, tsum, res in comp:
            total = tsum(vals)
            if total > 2 ** (53 + s):
                ok_sum = False
            fr = total / 2 ** (53 + s)
            if fr > worst_sum[1]:
                worst_sum = (name, fr)
            if res[0] == "poly":
                rb = res[1](vals)
            else:
                rb = self._family(res[1], vals) * 2 ** res[2]
            if rb > 2 ** (p + s):
                ok_res = False
            fr = rb / 2 ** (p + s)
            if fr > worst_res[1]:
                worst_res = (name, fr)
        own = self._own_bounds(b)
        own_ok = all(v <= 2 ** p for v in own.values())
        Lb, Kb, V1b, Wb = vals
        Vb = V1b + 1
        out = [lemma(
            "integer-exactness", f"for every n in [{a}, {b}] and every input: each of the "
            f"{len(comp)} distinct rounded quantities of the forward pass is 2^s times an "
            f"integer of magnitude <= 2^{p} (worst: {worst_res[0]}, at {worst_res[1]:.4g} of "
            f"the limit), bounds evaluated at n = {b} (L = {Lb}, K = {Kb}, V = {Vb}, W = {Wb}); "
            f"the construction's own bounds (sums and products of the sizes, nondecreasing in "
            f"n) at n = {b}: "
            + ", ".join(f"{k_} = {v}" for k_, v in own.items()) + f" <= 2^{p}"
            + (f"; NON-INTEGER coefficients in {bad}" if bad else ""),
            "exact integers (term-by-term bounds with the sizes at b, z3 family bounds; "
            "nondecreasing in n by sizes-monotone)", ok_res and own_ok, t0,
            worst=worst_res[0])]
        t0 = time.perf_counter()
        f64 = self._f64_aggregate(b)
        out.append(lemma(
            "float64-sums-exact", f"for every n in [{a}, {b}]: each reduction's sum of |terms| "
            f"is <= 2^(53+s) (worst: {worst_sum[0]}, at {worst_sum[1]:.4g} of the limit), so "
            "float64 accumulation is exact in any order", "exact integers at the block's "
            "largest n (nondecreasing in n)", ok_sum and not bad, t0))
        t0 = time.perf_counter()
        out.append(lemma(
            "float64-aggregate", f"the per-n verifier's side condition float64-sums-exact at "
            f"n = {b}: {self._f64_text} = {f64} < 2^52 (a polynomial with nonnegative "
            "coefficients in the sizes: it holds for every n of the block; kept so that the "
            "range verdict implies today's per-n one -- it is stronger than the per-reduction "
            "bound above)", "exact integers at the block's largest n", f64 < 2 ** 52, t0,
            value=f64))
        if p not in self._underflow:
            self._underflow[p] = cert.underflow_lemma(gram.BETA, p)
        out.append(dict(self._underflow[p]))
        return out

    # --- per-n reference --------------------------------------------------------------------
    def builder_scalars(self, n: int) -> tuple[int, dict]:
        built = self._build(n)
        sc = self._reduce_scalars(n, dict(built.scalars))
        why = self._weights_match(n, built)
        if why:
            sc["weights"] = f"differ from the formulas: {why}"
        return built.precision_bits, sc

    def _reduce_scalars(self, n: int, sc: dict) -> dict:
        if self.task == "cgram":
            sc["W - L"] = sc.pop("W") - float(self.L(n))
        return sc


# ----------------------------------------------------------------------------------------------
# task mixins
# ----------------------------------------------------------------------------------------------


class _AR:
    task = "ar"
    n_min = 2
    T = 0

    def _c(self, c: int | None) -> int:
        if c not in (None, 2):
            raise RangeError(f"--c applies to cgram only (AR is the 2-gram case), got c = {c}")
        return 2

    def valid(self, n: int) -> bool:
        return n >= 2 and n % 2 == 0 and (self.alphabet is None or n // 2 <= self.alphabet)

    def _fits(self, n: int) -> bool:
        return self.alphabet is None or n // 2 <= self.alphabet

    def L(self, n: int) -> int:
        return n + 1

    def W(self, n: int) -> int:
        return 1

    def _L_formula(self, n):
        return n + 1

    def _W_formula(self, n):
        return _sp().Integer(1)

    def _task(self, n: int):
        from rnngap.tasks.ar import ARTask
        return ARTask(n=n, alphabet=self.alphabet)

    def _ref_ns(self) -> list[int]:
        return [2]

    def _excl(self, j: int, n: int) -> int:
        return j % 2

    def _task_mapping(self) -> dict:
        delay = 0

        def build(z3):
            n, j = z3.Ints("n j")
            excl = j % 2
            hyp = z3.And(n >= 2, n % 2 == 0, j >= 1, j <= n + 1)
            value_pos = z3.And(j % 2 == 0, j >= 2, j <= n)     # j = 2i, i in [1, n/2]
            return z3.Implies(hyp, z3.And(
                (excl == 0) == value_pos,
                z3.Implies(excl == 0, z3.And(j - delay - 1 >= 1, (j - delay - 1) % 2 == 1)),
                (n + 1) % 2 == 1))
        del_note = "G_1(j) = x_{j-1}" if self.model == "hybrid" else "PREV(j) = x_{j-1}"
        return cert.z3_lemma(
            "task-mapping", "for all even n >= 2 and 1 <= j <= n+1: EXCL(j) = [j odd] is 0 "
            "exactly at the value positions j = 2i (i in [1, n/2]); there the key read "
            f"({del_note}, pointer unclamped) is position j-1 >= 1, an odd (key) position; "
            "the query position n+1 is odd (excluded). With distinct keys and q one of them, "
            "exactly one allowed position matches: the value after the key q", build)


class _CGram:
    task = "cgram"
    T = 1

    def _c(self, c: int | None) -> int:
        c = 2 if c is None else int(c)
        if c < 2:
            raise RangeError(f"cgram: c must be >= 2, got c = {c}")
        return c

    @property
    def n_min(self) -> int:
        return self.c

    def valid(self, n: int) -> bool:
        return n >= self.c

    def L(self, n: int) -> int:
        return n + self.c - 1

    def W(self, n: int) -> int:
        return self.L(n)          # the builders' rule: W = L

    def _L_formula(self, n):
        return n + self.c - 1

    def _W_formula(self, n):
        return n + self.c - 1

    def _task(self, n: int):
        from rnngap.tasks.cgram import CGramTask
        return CGramTask(n=n, c=self.c, alphabet=self.alphabet)

    def _ref_ns(self) -> list[int]:
        return [self.c, self.c + 1, self.c + 2]

    def _excl(self, j: int, n: int) -> int:
        return int(j < self.c or j > n)

    def _task_mapping(self) -> dict:
        m, c = self.m, self.c
        hybrid = self.model == "hybrid"
        delay = m if hybrid else 0

        def build(z3):
            n, j = z3.Ints("n j")
            L = n + m
            if hybrid:
                excl = z3.If(j < delay + m + 1, 1, 0)          # PEN = [j < K_c]
            else:
                excl = z3.If(z3.Or(j < c, j > n), 1, 0)
            s = j - delay - m                                  # the gram's start
            hyp = z3.And(n >= c, j >= 1, j <= L)
            allowed = z3.And(s >= 1, s <= n - c + 1)
            cl = [(excl == 0) == allowed]
            for r in range(1, m + 1):
                key_pos = j - delay - r                        # P_r = x_{key_pos}
                q_pos = L + 1 - r                              # Q_r = x_{q_pos}
                cl.append(z3.Implies(excl == 0, z3.And(
                    key_pos >= 1, key_pos - s + 1 == q_pos - n)))
                cl.append(z3.And(q_pos >= n + 1, q_pos <= L))
            cl.append(z3.Implies(excl == 0, j - delay == s + c - 1))
            return z3.Implies(hyp, z3.And(*cl))
        where = ("PEN(j) = [j < 2m+1], G_r(j) = x_{j-m-r}, VAL(j) = x_{j-m}, Q_1 = x_L, "
                 "Q_r = S_r(L) = x_{L-r+1}" if hybrid else
                 "EXCL(j) = [j < c or j > n], PREV_r(j) = x_{j-r} (pointer max(j-r, 1) "
                 "unclamped), value TOK(j) = x_j, Q_1 = x_L, Q_r = PREV_{r-1}(L) = x_{L-r+1}")
        return cert.z3_lemma(
            "task-mapping", f"for all n >= c = {c} and 1 <= j <= L = n + {m} ({where}): the "
            "position is allowed iff its gram starts at s in [1, n-c+1]; there every key "
            "token read is a data position >= 1 (no clamped pointer, no zero history), the "
            "r-th key token and the r-th query token are the same offset in their grams "
            "(x_{s..s+m-1} vs y_1..y_m = x_{n+1..L}), the value read is x_{s+c-1}, and a "
            "later allowed j has a later start (the T j tie-break picks the LAST occurrence)",
            build)


# ----------------------------------------------------------------------------------------------
# model mixins
# ----------------------------------------------------------------------------------------------


class _Transformer:
    model = "transformer"

    def _precision(self, n: int) -> int:
        L = self.L(n)
        return gram.gram_precision(L, self.m, self.k(n), self.vocab(n), self.W(n), self.T)

    def _scalar_key(self, n: int) -> dict:
        return {"beta": gram.BETA, "T": float(self.T), **self._w_key(n)}

    def _own_bounds(self, n: int) -> dict:
        return gram.integer_bounds(self.L(n), self.m, self.k(n), self.vocab(n), self.W(n),
                                   self.T)

    _f64_text = "3 W m K^2 + W + L + 3 L^2 + 3 (V-1)^2"

    def _f64_aggregate(self, n: int) -> int:
        Lv, k, V, W = self.L(n), self.k(n), self.vocab(n), self.W(n)
        return 3 * W * self.m * (k - 1) ** 2 + W + Lv + 3 * Lv * Lv + 3 * (V - 1) ** 2

    def _build(self, n: int):
        if self.task == "ar":
            from rnngap.constructions.retrieval import ar as ar_construction
            return ar_construction.build(self._task(n))
        return gram.build(self._task(n))

    def per_n(self, n: int, samples: int, seed: int) -> dict:
        if self.task == "ar":
            from rnngap.verify.retrieval.ar import verify_ar
            return verify_ar(self._task(n), samples=samples, seed=seed)
        from rnngap.verify.retrieval.cgram import verify_cgram
        return verify_cgram(self._task(n), samples=samples, seed=seed)

    _TABLES = ("embed.weight", "pos_table", "unembed.weight", "unembed.bias")

    def _tables_ok(self, n: int, built) -> str:
        """'' when the n-sized tables equal their formulas."""
        import torch

        sd, ch = built.state_dict, built.channels
        V, Lv, d = self.vocab(n), self.L(n), built.config.d_model
        t = torch.arange(V, dtype=torch.float64)
        j = torch.arange(1, Lv + 1, dtype=torch.float64)
        E = torch.zeros(V, d, dtype=torch.float64)
        E[:, ch["TOK"]], E[:, ch["TOK2"]] = t, t * t
        P = torch.zeros(Lv, d, dtype=torch.float64)
        P[:, ch["POS"]], P[:, ch["POS2"]] = j, j * j
        P[:, ch["EXCL"]] = torch.tensor([float(self._excl(x, n)) for x in range(1, Lv + 1)],
                                        dtype=torch.float64)
        U = torch.zeros(V, d, dtype=torch.float64)
        U[:, ch["Y"]] = 2 * t
        want = {"embed.weight": E, "pos_table": P, "unembed.weight": U, "unembed.bias": -t * t}
        return _mismatched(sd, want)

    def _arch_ok(self, n: int, built) -> str:
        cfg = built.config
        m = self.m
        want = {"vocab_size": self.vocab(n), "d_model": 2 * m + 6, "n_layers": 2,
                "n_heads": m, "d_head": m + 3, "max_len": self.L(n), "norm": "none",
                "pos": "table", "mlp": "relu", "bias": True, "attn_scale": 1.0}
        bad = [k for k, v in want.items() if getattr(cfg, k, None) != v]
        if dict(built.channels) != gram.channels(m):
            bad.append("channels")
        return ", ".join(bad)


class _Hybrid:
    model = "hybrid"

    @property
    def delay(self) -> int:
        return 0 if self.task == "ar" else self.m     # the builder's rule

    @property
    def conv_k(self) -> int:
        return self.delay + self.m + 1

    def _precision(self, n: int) -> int:
        return hyb.bits_for(max(hyb.gram_bounds(self.L(n), self.m, self.k(n), self.vocab(n),
                                                self.W(n), self.T).values()))

    def _scalar_key(self, n: int) -> dict:
        return {"beta": hyb.BETA, "T": float(self.T), "delay": float(self.delay),
                "conv_kernel": float(self.conv_k), **self._w_key(n)}

    def _own_bounds(self, n: int) -> dict:
        return hyb.gram_bounds(self.L(n), self.m, self.k(n), self.vocab(n), self.W(n), self.T)

    _f64_text = "3 W m K^2 + W + T L + 3 (V-1)^2 + L"

    def _f64_aggregate(self, n: int) -> int:
        Lv, k, V, W = self.L(n), self.k(n), self.vocab(n), self.W(n)
        return 3 * W * self.m * (k - 1) ** 2 + W + self.T * Lv + 3 * (V - 1) ** 2 + Lv

    def _build(self, n: int):
        return hyb.build_gram(self.task, self._task(n))

    def per_n(self, n: int, samples: int, seed: int) -> dict:
        from rnngap.verify.retrieval.hybrid import verify_hybrid
        return verify_hybrid(self.task, self._task(n), samples=samples, seed=seed)

    _TABLES = ("embed.weight", "unembed.weight", "unembed.bias")

    def _tables_ok(self, n: int, built) -> str:
        import torch

        sd, ch = built.state_dict, built.channels
        V, d = self.vocab(n), built.config.d_model
        t = torch.arange(V, dtype=torch.float64)
        E = torch.zeros(V, d, dtype=torch.float64)
        E[:, ch["TOK"]], E[:, ch["TOK2"]] = t, t * t
        U = torch.zeros(V, d, dtype=torch.float64)
        U[:, ch["Y"]] = 2 * t
        want = {"embed.weight": E, "unembed.weight": U, "unembed.bias": -t * t}
        return _mismatched(sd, want)

    def _arch_ok(self, n: int, built) -> str:
        cfg = built.config
        m = self.m
        chans = hyb.gram_channels(m)
        want = {"vocab_size": self.vocab(n), "d_model": len(chans), "n_rnn_layers": 1,
                "d_state": 1, "conv_kernel": self.conv_k, "selective": False, "n_heads": 1,
                "d_head": m + 3, "attn_scale": 1.0, "bias": True, "layer_shapes": None}
        bad = [k for k, v in want.items() if getattr(cfg, k, "?") != v]
        if dict(built.channels) != chans:
            bad.append("channels")
        return ", ".join(bad)


# ----------------------------------------------------------------------------------------------
# reference weights (affine in W) and the tie to the builder
# ----------------------------------------------------------------------------------------------


class _Weights:
    def _reference(self) -> dict:
        """Fixed-size weights of reference builds as exact rationals, affine in the symbol W:
        w(W) = w0 + (W - W0) (w1 - w0) / (W1 - W0) (constant when W does not vary)."""
        if self._ref is None:
            builds = [(n, self._build(n)) for n in self._ref_ns()]
            n0, c0 = builds[0]
            fixed = {k: v.double() for k, v in c0.state_dict.items() if k not in self._TABLES}
            if len(builds) > 1:
                n1, c1 = builds[1]
                dW = self.W(n1) - self.W(n0)
                slope = {k: (c1.state_dict[k].double() - v) / dW for k, v in fixed.items()}
            else:
                n1, slope = n0, {k: v * 0 for k, v in fixed.items()}
            self._ref = {"builds": builds, "W0": self.W(n0), "w0": fixed, "slope": slope}
        return self._ref

    def _affine(self, n: int) -> dict:
        ref = self._reference()
        dW = float(self.W(n) - ref["W0"])
        return {k: v + dW * ref["slope"][k] for k, v in ref["w0"].items()}

    def _weights_match(self, n: int, built) -> str:
        import torch

        why = []
        arch = self._arch_ok(n, built)
        if arch:
            why.append(f"architecture ({arch})")
        want = self._affine(n)
        sd = built.state_dict
        if set(sd) != set(want) | set(self._TABLES):
            why.append("state-dict keys")
        else:
            bad = [k for k, v in want.items() if sd[k].shape != v.shape
                   or not torch.equal(sd[k].double(), v)]
            if bad:
                why.append("fixed-size weights " + ", ".join(bad[:4]))
        tab = self._tables_ok(n, built)
        if tab:
            why.append(f"tables {tab}")
        return "; ".join(why)

    def _formulas_lemma(self) -> dict:
        t0 = time.perf_counter()
        ref = self._reference()
        problems = []
        for n, built in ref["builds"]:
            why = self._weights_match(n, built)
            if why:
                problems.append(f"n = {n}: {why}")
        ns = [n for n, _ in ref["builds"]]
        return lemma("construction-formulas", "the builder's fixed-size weights are affine in "
                     f"W (fitted on n = {ns[:2]}, predicting every reference build exactly), "
                     "its architecture is the modelled one and its n-sized tables are the "
                     "formulas (module docstring), at the reference builds n = "
                     f"{ns}; at every cross-checked n builder_scalars re-checks all of it"
                     + (": " + "; ".join(problems) if problems else ""),
                     "entrywise float64 comparison (exact: integer weights)", not problems, t0)

    def _sym_weights(self, W):
        """name -> sympy nested lists (2-d) or lists (1-d) of the affine reference weights."""
        ref = self._reference()
        out = {}
        for k, v in ref["w0"].items():
            s = ref["slope"][k]
            if v.dim() == 1:
                out[k] = [_rat(a) + (W - ref["W0"]) * _rat(b) for a, b in
                          zip(v.tolist(), s.tolist(), strict=True)]
            else:
                out[k] = [[_rat(a) + (W - ref["W0"]) * _rat(b) for a, b in
                           zip(ra, rb, strict=True)] for ra, rb in
                          zip(v.tolist(), s.tolist(), strict=True)]
        return out


# ----------------------------------------------------------------------------------------------
# the symbolic forward passes
# ----------------------------------------------------------------------------------------------


def _qkv(w: dict, a: str, hq: list, hk: list, reds: list, tag: str) -> tuple[list, list, list]:
    """The symbolic query (from ``hq``), key and value (from ``hk``) of the head with prefix
    ``a``; each output's reduction is recorded in ``reds``."""
    q, qt = _lin(w[a + "q_proj.weight"], w[a + "q_proj.bias"], hq)
    k, kt = _lin(w[a + "k_proj.weight"], w[a + "k_proj.bias"], hk)
    v, vt = _lin(w[a + "v_proj.weight"], w[a + "v_proj.bias"], hk)
    for name, outs, terms in (("q", q, qt), ("k", k, kt), ("v", v, vt)):
        for r, (o, ts) in enumerate(zip(outs, terms, strict=True)):
            reds.append(_Red(f"{tag} {name}[{r}]", ts, o))
    return q, k, v


def _matcher(w: dict, a: str, hL: list, hj: list, m: int, D: int, T: int, Wsym, beta,
             Q: list, P: list, jpos, e, val, ych: int, u, reds: list, tag: str,
             maxima: dict) -> list[str]:
    """The matcher head (layer 2 / the hybrid's attention) at the query position L against
    key position j: identities checked, reductions recorded. Returns the failed identities."""
    sp = _sp()
    bad = []
    q, k, v = _qkv(w, a, hL, hj, reds, tag)
    H = len(q) // D
    score_terms = [sp.expand(q[d] * k[d]) for d in range(D) if q[d] != 0 and k[d] != 0]
    score = sp.expand(sum(score_terms, sp.Integer(0)))
    want = beta * (Wsym * sum(2 * Q[r] * P[r] - P[r] ** 2 for r in range(m)) + T * jpos
                   - Wsym * e)
    if not _same(score, want):
        bad.append(f"{tag} score {score} != beta (W sum(2QP - P^2) + T j - W E)")
    reds.append(_Red(f"{tag} score", score_terms, score, ("matcher", 10)))
    if not all(_same(v[d], val if d == 0 else 0) for d in range(D)):
        bad.append(f"{tag} value head 1 is not (VAL, 0, ..)")
    # other heads: whatever they output, W_O must ignore them
    o = [val if d == 0 else sp.Integer(0) for d in range(D)]
    others = list(sp.symbols(f"oo0:{(H - 1) * D}", integer=True)) if H > 1 else []
    maxima.update({x: sp.Integer(0) for x in others})   # a W_O weight on them fails above
    o += others
    reds.append(_Red(f"{tag} attention output", [val], val))
    merge, mt = _lin(w[a + "o_proj.weight"], w[a + "o_proj.bias"], o)
    for c_, (x, ts) in enumerate(zip(merge, mt, strict=True)):
        if not _same(x, val if c_ == ych else 0):
            bad.append(f"{tag} W_O channel {c_}: {x}")
        reds.append(_Red(f"{tag} W_O[{c_}]", ts, x))
    h2 = []
    for c_ in range(len(hL)):
        s = sp.expand(hL[c_] + merge[c_])
        reds.append(_Red(f"{tag} residual[{c_}]", [hL[c_], merge[c_]], s))
        h2.append(s)
    if not _same(h2[ych], val):
        bad.append(f"{tag} Y after the layer is {h2[ych]}, not VAL")
    # the zero MLP: relu(0) = 0, so the residual passes unchanged
    mlp = [k_ for k_ in w if ".mlp." in k_ and k_.startswith(a.split("attn.")[0])]
    if not mlp or any(any(x != 0 for x in (row if isinstance(row, list) else [row]))
                      for k_ in mlp for row in w[k_]):
        bad.append(f"{tag} MLP is not zero")
    # unembedding formula: logit_u = 2u Y - u^2
    lg = [sp.expand(2 * u * h2[ych]), -u ** 2]
    reds.append(_Red("logits", lg, sp.expand(lg[0] + lg[1]), ("logits", 0)))
    return bad


class _TransformerSymbolic:
    def _symbolic_lemmas(self):
        t0 = time.perf_counter()
        sp = _sp()
        sz = _Sizes()
        self._sz = sz
        m, D, T = self.m, self.m + 3, self.T
        beta = _rat(gram.BETA)
        Wsym = sp.Symbol("W", integer=True, positive=True)
        w = self._sym_weights(Wsym)
        Wf = Wsym if self.task == "cgram" else sp.Integer(self.W(self.n_min))  # W = 1 (AR)
        ch = gram.channels(m)
        d = 2 * m + 6
        i, j, iL = sp.symbols("i j iL", integer=True, positive=True)
        ti, tj, e, ei, eL, y, u, zq = sp.symbols("t_i t_j e e_i e_L y u zq", integer=True)
        xs = list(sp.symbols(f"x1:{m + 1}", integer=True))
        Q = list(sp.symbols(f"Q1:{m + 1}", integer=True))
        P = list(sp.symbols(f"P1:{m + 1}", integer=True))
        maxima = {i: sz.L, j: sz.L, iL: sz.L, ti: sz.K, tj: sz.K, e: 1, ei: 1, eL: 1,
                  y: sz.K, u: sz.V1, zq: sz.K, Wsym: sz.W}
        maxima.update({x: sz.K for x in xs + Q + P})
        self._maxima = maxima
        reds: list = []
        bad: list[str] = []

        def h0(pos, tok, ex):
            hv = [sp.Integer(0)] * d
            hv[ch["TOK"]], hv[ch["TOK2"]] = tok, tok ** 2
            hv[ch["POS"]], hv[ch["POS2"]], hv[ch["EXCL"]] = pos, pos ** 2, ex
            return hv
        # embedding + positional table: one elementwise sum per channel (disjoint supports)
        for c_ in range(d):
            E = {ch["TOK"]: ti, ch["TOK2"]: ti ** 2}.get(c_, sp.Integer(0))
            Pp = {ch["POS"]: i, ch["POS2"]: i ** 2, ch["EXCL"]: ei}.get(c_, sp.Integer(0))
            reds.append(_Red(f"h0[{c_}]", [E, Pp], E + Pp))
        hi, hj_ = h0(i, ti, ei), h0(j, tj, e)
        a1 = "blocks.0.attn."
        q, k, v = _qkv(w, a1, hi, hj_, reds, "layer-1")
        o_all = []
        for r in range(1, m + 1):
            h = (r - 1) * D
            wq = [beta * (i - r), beta] + [0] * (D - 2)
            wk = [2 * j, -j ** 2] + [0] * (D - 2)
            wv = [tj, tj ** 2] + [0] * (D - 2)
            for dd in range(D):
                if not (_same(q[h + dd], wq[dd]) and _same(k[h + dd], wk[dd])
                        and _same(v[h + dd], wv[dd])):
                    bad.append(f"layer-1 head {r} dim {dd}: q {q[h + dd]}, k {k[h + dd]}, "
                               f"v {v[h + dd]}")
            st = [sp.expand(q[h + dd] * k[h + dd]) for dd in range(D)
                  if q[h + dd] != 0 and k[h + dd] != 0]
            s = sp.expand(sum(st, sp.Integer(0)))
            if not _same(s, beta * (2 * (i - r) * j - j ** 2)):
                bad.append(f"layer-1 head {r} score {s}")
            reds.append(_Red(f"layer-1 head {r} score", st, s, ("layer1", 10)))
            # one-hot attention (pointer-gap + underflow): output = value of the target x_r
            o_r = [xs[r - 1], xs[r - 1] ** 2] + [sp.Integer(0)] * (D - 2)
            for dd in range(2):
                reds.append(_Red(f"layer-1 head {r} output[{dd}]", [o_r[dd]], o_r[dd]))
            o_all += o_r
        merge, mt = _lin(w[a1 + "o_proj.weight"], w[a1 + "o_proj.bias"], o_all)
        want_merge = [sp.Integer(0)] * d
        for r in range(1, m + 1):
            want_merge[ch[f"PREV_{r}"]] = xs[r - 1]
            want_merge[ch[f"PREV2_{r}"]] = xs[r - 1] ** 2
        for c_ in range(d):
            if not _same(merge[c_], want_merge[c_]):
                bad.append(f"layer-1 W_O channel {c_}: {merge[c_]}")
            reds.append(_Red(f"layer-1 W_O[{c_}]", mt[c_], merge[c_]))
        h1 = []
        for c_ in range(d):
            s = sp.expand(hi[c_] + merge[c_])
            reds.append(_Red(f"layer-1 residual[{c_}]", [hi[c_], merge[c_]], s))
            h1.append(s)
        mlp0 = [k_ for k_ in w if k_.startswith("blocks.0.mlp.")]
        if not mlp0 or any(x != 0 for k_ in mlp0 for row in w[k_]
                           for x in (row if isinstance(row, list) else [row])):
            bad.append("layer-1 MLP is not zero")
        # layer 2 at the query position L and a key position j
        subL = {ti: Q[0], i: iL, ei: eL}
        subj = {ti: tj, i: j, ei: e}
        for r in range(1, m + 1):
            subL[xs[r - 1]] = Q[r] if r < m else zq
            subj[xs[r - 1]] = P[r - 1]
        hL = [sp.expand(x.subs(subL, simultaneous=True)) for x in h1]
        hj2 = [sp.expand(x.subs(subj, simultaneous=True)) for x in h1]
        bad += _matcher(w, "blocks.1.attn.", hL, hj2, m, D, T, Wf, beta, Q, P, j, e, tj,
                        ch["Y"], u, reds, "layer-2", maxima)
        ok = not bad
        lem = lemma("symbolic-forward", "with the reference weights (affine in W) and "
                    "symbolic positions i, j, tokens and W: layer-1 head r has q = beta (i-r, "
                    "1, 0..), k = (2j, -j^2, 0..), v = (t, t^2, 0..), score beta (2(i-r)j - "
                    "j^2); W_O writes (x, x^2) into (PREV_r, PREV2_r), empty before; zero "
                    "MLPs; layer-2 score beta (W sum_r (2 Q_r P_r - P_r^2) + T j - W EXCL) with "
                    "Q_1 = TOK(L), Q_r = PREV_{r-1}(L), P_r = PREV_r(j); value TOK(j) into Y "
                    f"only; logits 2uY - u^2 ({len(reds)} rounded quantities recorded)"
                    + ("" if ok else ": FAILED " + "; ".join(bad[:4])),
                    "sympy polynomial identities (every position at once)", ok, t0)
        return [lem], reds


class _HybridSymbolic:
    def _symbolic_lemmas(self):
        t0 = time.perf_counter()
        sp = _sp()
        sz = _Sizes()
        self._sz = sz
        m, T, delay, Kc = self.m, self.T, self.delay, self.conv_k
        beta = _rat(hyb.BETA)
        Wsym = sp.Symbol("W", integer=True, positive=True)
        w = self._sym_weights(Wsym)
        Wf = Wsym if self.task == "cgram" else sp.Integer(self.W(self.n_min))  # W = 1 (AR)
        ch = hyb.gram_channels(m)
        d = len(ch)
        tpos = sp.Symbol("t", integer=True, positive=True)
        X = list(sp.symbols(f"X0:{Kc}", integer=True))      # X_k = x_{t-k}
        maxima: dict = {tpos: sz.L, Wsym: sz.W}
        maxima.update({x: sz.K for x in X})
        reds: list = []
        bad: list[str] = []
        pre = "rnn.0."
        Win, bin_ = w[pre + "in_proj.weight"], w[pre + "in_proj.bias"]
        conv, convb = w[pre + "conv_weight"], w[pre + "conv_bias"]
        A, B, C, Dm = w[pre + "a"], w[pre + "B"], w[pre + "C"], w[pre + "D"]
        di = len(Win)
        if len(conv[0]) != Kc or len(A) != 1:
            bad.append(f"conv width {len(conv[0])} / state size {len(A)} unexpected")
        a = A[0]
        if a not in (1, -1, 0):
            bad.append(f"decay {a} not in {{1, -1, 0}}")

        def emb(tok):
            hv = [sp.Integer(0)] * d
            hv[ch["TOK"]], hv[ch["TOK2"]] = tok, tok ** 2
            return hv

        def regime(t_val, present):
            """(v per inner channel, out residual before the state part, expected table)."""
            us = []
            for kk in range(Kc):
                if present(kk):
                    u_, ut = _lin(Win, bin_, emb(X[kk]))
                    for r_, (o_, ts) in enumerate(zip(u_, ut, strict=True)):
                        reds.append(_Red(f"rnn u[{r_}]", ts, o_))
                    us.append(u_)
                else:
                    us.append([sp.Integer(0)] * di)    # the conv's zero history
            vs = []
            for r_ in range(di):
                ts = [conv[r_][kk] * us[kk][r_] for kk in range(Kc)
                      if conv[r_][kk] != 0 and us[kk][r_] != 0]
                if convb[r_] != 0:
                    ts.append(convb[r_])
                vv = sp.expand(sum(ts, sp.Integer(0)))
                reds.append(_Red(f"rnn conv[{r_}]", ts, vv))
                vs.append(vv)
            bts = [B[0][r_] * vs[r_] for r_ in range(di) if B[0][r_] != 0 and vs[r_] != 0]
            bv = sp.expand(sum(bts, sp.Integer(0)))
            reds.append(_Red("rnn B v", bts, bv))
            return vs, bv

        def expected(t_val, odd):
            """The copy table at position t (t_val a number or the symbol; odd its parity)."""
            hv = [sp.Integer(0)] * d

            def xk(kk):
                if isinstance(t_val, int) and t_val - kk < 1:
                    return sp.Integer(0)
                return X[kk]
            hv[ch["TOK"]], hv[ch["TOK2"]] = xk(0), xk(0) ** 2
            for r in range(2, m + 1):
                hv[ch[f"S_{r}"]] = xk(r - 1)
            for r in range(1, m + 1):
                hv[ch[f"G_{r}"]], hv[ch[f"G2_{r}"]] = xk(delay + r), xk(delay + r) ** 2
            hv[ch["VAL"]] = xk(delay)
            if self.task == "ar":
                hv[ch["PEN"]] = sp.Integer(1 if odd else 0)
            else:
                hv[ch["POS"]] = t_val
                early = isinstance(t_val, int) and t_val < Kc
                hv[ch["PEN"]] = sp.Integer(1 if early else 0)
            return hv

        def readout(t_val, hstate, vs, odd, label):
            ins = [hstate] + vs
            Wr = [[C[c_][0]] + list(Dm[c_]) for c_ in range(d)]
            y, yt = _lin(Wr, None, ins)
            want = expected(t_val, odd)
            base = emb(want[ch["TOK"]])
            for c_ in range(d):
                reds.append(_Red(f"rnn readout[{c_}]", yt[c_], y[c_]))
                s = sp.expand(base[c_] + y[c_])
                reds.append(_Red(f"rnn residual[{c_}]", [base[c_], y[c_]], s))
                if not _same(s, want[c_]):
                    bad.append(f"{label}: channel {c_} is {s}, want {want[c_]}")

        # enumerated positions t = 1 .. K_c - 1 (the window reaches the zero history)
        hprev = sp.Integer(0)
        for tv in range(1, Kc):
            vs, bv = regime(tv, lambda kk, tv=tv: tv - kk >= 1)
            if bv.free_symbols:
                bad.append(f"t = {tv}: the state input {bv} depends on the data")
            ah = sp.expand(a * hprev)
            hcur = sp.expand(ah + bv)
            reds.append(_Red("rnn scan a h", [ah], ah))
            reds.append(_Red("rnn scan h", [ah, bv], hcur))
            readout(tv, hcur, vs, tv % 2 == 1, f"t = {tv}")
            hprev = hcur
        # t >= K_c: every tap inside the sequence; the state input is a constant c
        vs, cst = regime(None, lambda kk: True)
        if cst.free_symbols:
            bad.append(f"t >= {Kc}: the state input {cst} depends on the data")
        hK = sp.expand(a * hprev + cst)            # base case t = K_c
        parK = Kc % 2
        if a == 1:
            f = {0: hK + (tpos - Kc) * cst, 1: hK + (tpos - Kc) * cst}
        elif a == -1:
            f = {parK: hK, 1 - parK: sp.expand(-hK + cst)}
        else:
            f = {0: cst, 1: cst}
        f = {k_: sp.expand(v_) for k_, v_ in f.items()}
        induction = _same(f[parK].subs(tpos, Kc), hK)
        for par in (0, 1):               # step: f_par(t) = a f_{1-par}(t-1) + c for t > K_c
            induction &= _same(f[par], a * f[1 - par].subs(tpos, tpos - 1) + cst)
        if not induction:
            bad.append("state induction fails")
        for par in (0, 1):
            prev = f[1 - par].subs(tpos, tpos - 1)
            ah = sp.expand(a * prev)
            reds.append(_Red("rnn scan a h", [ah], ah))
            reds.append(_Red("rnn scan h", [ah, cst], f[par]))
            readout(tpos, f[par], vs, par == 1, f"t >= {Kc}, t {'odd' if par else 'even'}")
        self._maxima = maxima
        rnn_ok = not bad
        rnn = lemma(
            "rnn-table", "for EVERY token sequence and position t: the LinearRNN layer "
            f"(conv width {Kc}, decay {a}) writes exactly the copy table S_r = x_(t-r+1), "
            f"G_r = x_(t-{delay}-r), G2_r = G_r^2, VAL = x_(t-{delay}) (0 before position 1), "
            + ("PEN = [t odd]" if self.task == "ar" else f"POS = t, PEN = [t < {Kc}]")
            + f", the embedding's TOK/TOK2 kept: positions t < {Kc} enumerated, t >= {Kc} "
            "symbolic per parity, the state by induction (base t = K_c, step identity "
            f"h_t = a h_(t-1) + c per parity; closed form {f})"
            + ("" if rnn_ok else ": FAILED " + "; ".join(bad[:4])),
            "sympy: enumeration of t < K_c, polynomial identities and induction for t >= K_c",
            rnn_ok, t0)
        # the attention layer on the table
        t1 = time.perf_counter()
        jpos, iL = sp.symbols("j iL", integer=True, positive=True)
        e, eL, u = sp.symbols("e e_L u", integer=True)
        Q = list(sp.symbols(f"Q1:{m + 1}", integer=True))
        P = list(sp.symbols(f"P1:{m + 1}", integer=True))
        gL = list(sp.symbols(f"g1:{m + 1}", integer=True))
        sj = list(sp.symbols(f"s2:{m + 2}", integer=True))
        tj, val, vL = sp.symbols("t_j val v_L", integer=True)
        maxima.update({jpos: sz.L, iL: sz.L, e: 1, eL: 1, u: sz.V1, tj: sz.K, val: sz.K,
                       vL: sz.K})
        maxima.update({x: sz.K for x in Q + P + gL + sj})

        def table(tok, S, G, vv, pos, pen):
            hv = [sp.Integer(0)] * d
            hv[ch["TOK"]], hv[ch["TOK2"]] = tok, tok ** 2
            for r in range(2, m + 1):
                hv[ch[f"S_{r}"]] = S[r - 2]
            for r in range(1, m + 1):
                hv[ch[f"G_{r}"]], hv[ch[f"G2_{r}"]] = G[r - 1], G[r - 1] ** 2
            hv[ch["VAL"]] = vv
            if self.task != "ar":
                hv[ch["POS"]] = pos
            hv[ch["PEN"]] = pen
            return hv
        hL = table(Q[0], Q[1:], gL, vL, iL, eL)
        hj = table(tj, sj, P, val, jpos, e)
        T_pos = jpos if self.task != "ar" else sp.Integer(0)
        abad = _matcher(w, "block.attn.", hL, hj, m, m + 3, T, Wf, beta, Q, P, T_pos, e,
                        val, ch["Y"], u, reds, "attention", maxima)
        att = lemma("symbolic-forward", "on the RNN table, with the reference attention "
                    "weights (affine in W) and symbolic j, tokens, W: score beta (W sum_r "
                    "(2 Q_r G_r(j) - G2_r(j)) + T POS(j) - W PEN(j)) with Q_1 = TOK(L), Q_r = "
                    "S_r(L); value VAL(j) into Y only; zero MLP; logits 2uY - u^2"
                    + ("" if not abad else ": FAILED " + "; ".join(abad[:4])),
                    "sympy polynomial identities", not abad, t1)
        return [rnn, att], reds

    def _copy_reference(self) -> dict:
        """Today's copy-lemma side conditions on the reference build (n-independent: the RNN
        weights at every cross-checked n equal the reference's)."""
        from rnngap.verify.retrieval.hybrid_gram import copy_lemma
        t0 = time.perf_counter()
        n0, built = self._reference()["builds"][0]
        conds = copy_lemma(built)
        ok = all(c_["result"] == "holds" for c_ in conds)
        return lemma("copy-lemma-reference", "the per-n copy lemma's side conditions ("
                     + ", ".join(c_["name"] for c_ in conds) + f") hold on the reference build "
                     f"n = {n0}; its RNN weights are those of every n (builder_scalars)",
                     "verify.retrieval.hybrid_gram.copy_lemma on the reference weights", ok, t0)


# ----------------------------------------------------------------------------------------------
# the four provers
# ----------------------------------------------------------------------------------------------


class ARProver(_AR, _Transformer, _TransformerSymbolic, _Weights, _GramProver):
    """Range prover of the AR Transformer (``constructions.retrieval.ar``)."""


class CGramProver(_CGram, _Transformer, _TransformerSymbolic, _Weights, _GramProver):
    """Range prover of the c-gram Transformer (``constructions.retrieval.cgram``)."""


class _HybridGeneric:
    def _generic_lemmas(self) -> list[dict]:
        first = self._generic is None
        out = super()._generic_lemmas()
        if first:
            self._generic.append(self._copy_reference())
            out.append(dict(self._generic[-1], cached=True))
        return out


class ARHybridProver(_HybridGeneric, _AR, _Hybrid, _HybridSymbolic, _Weights, _GramProver):
    """Range prover of the AR hybrid (``constructions.retrieval.hybrid.build_gram``)."""


class CGramHybridProver(_HybridGeneric, _CGram, _Hybrid, _HybridSymbolic, _Weights,
                        _GramProver):
    """Range prover of the c-gram hybrid (``constructions.retrieval.hybrid.build_gram``)."""


__all__ = ["ARHybridProver", "ARProver", "CGramHybridProver", "CGramProver"]
