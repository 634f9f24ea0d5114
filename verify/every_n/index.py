"""Index for every n of a range: the Transformer of ``constructions.retrieval.index`` and its hybrid.

The construction at n (``constructions.retrieval.index``), with alphabet k(n) (default n + 1), vocabulary
V(n) = max(k(n), n + 1), claimed precision p(n) and inverse temperature beta(n), u = 2^-p:

    E[t] = t e_TOK,  P[j] = j e_POS + j^2 e_POS2,  q = (beta TOK, beta),  k_j = (2 POS, -POS2),
    v = (TOK, 0),  W_O copies v_0 into Y,  MLP zero,  logit_t = 2 t Y - t^2.

On a block [a, b] of constant (p, beta) the lemmas below hold for EVERY n in the block, every
query i in [1, n], position j in [1, n + 1] and token t < V(n); every bound is nondecreasing in
n and is evaluated at n = b in exact rationals (exp enclosed by mpmath interval arithmetic):

1. exact-inputs (z3, n a variable): t, 2j, j^2 and beta*t are integers <= 2^p, so embeddings,
   positions, keys (2j, -j^2), values (t, 0) and queries (beta i, beta) are exact p-bit numbers.
2. score-gap (z3, all integers): 2ij - j^2 <= i^2 - 1 for j != i, i.e. s_ii - s_ij >= beta.
3. score-magnitude (z3, n a variable): 0 <= 2ij + j^2 <= 3 (b+1)^2, so the computed score
   r(fl(beta 2ij - beta j^2)) is within E_s = beta (b+1)^2 (3 gamma_3 + u (1 + 3 gamma_3)) of
   the exact one (Higham's inner-product bound, any order, then one p-bit rounding).
4. peak (exact): eps = 2 E_s / beta < 1, so s_ii is the strict row maximum, d_ii = 0,
   e_ii = r(exp 0) = 1, and d_ij <= -c (|i-j|^2 - eps) with c = (1-u)(1-2^-53) beta.
5. off-target mass (exact + interval exp): sum_{j != i} e_ij <= R := (1+u)(1+2^-52) *
   2 e^{-c(1-eps)} / (1 - e^{-2c}) + (b+1) 2^-1000 (|i-j|^2 >= 1 + 2(|i-j|-1); two sides;
   faithful exp; the absolute term covers subnormal rounding).
6. value deviation (exact): Z in [(1-g)(1-u), (1+R)(1+g)(1+u)] (g = gamma_{b+1}),
   a_ii within [(1-2^-53)(1-u)/Z_hi, (1+2^-53)(1+u)/Z_lo], off-target weights summing to at
   most A = (1+2^-53)(1+u) R / Z_lo + (b+1) 2^-1000; y = r(fl(sum_j a_ij x_j)) with x_{n+1} = i
   differs from x_i by at most delta = dev + ferr + u ((K-1) + dev + ferr), dev = alpha (K-1)
   + A M, ferr = gamma_{b+2} M (a_hi + A), K = k(b), M = V(b) - 1. W_O, the residual and the
   zero MLP copy y exactly.
7. decode (z3, ``certificates.quadratic_decode_lemma``) for all x < K, t < V(b): the p-bit
   logit of x beats every other token's given |y - x| <= delta; and the margin is positive in
   exact rationals.

The hybrid (``constructions.retrieval.hybrid.build_index``): its RNN part is evaluated SYMBOLICALLY in the
position j (sympy: each layer's u, v and state are polynomials in j; a decay-1 state is a sum
``summation(B v(i), (i, 1, j))``), must give the table (j, j^2) as a polynomial identity, with
integer coefficients and magnitude <= 2^p for every j <= b + 1 (all roundings are identities,
every float64 sum exact); then lemmas 1-7 apply to its attention layer verbatim (the per-n
reduction of ``verify.retrieval.hybrid``: the residual entering the attention layer is E[t_j] + P[j]).
"""

from __future__ import annotations

import time
from fractions import Fraction

from rnngap.constructions.retrieval import index as index_construction
from rnngap.verify import certificates as cert
from rnngap.verify.every_n import MAX_P, Block, exact_exp_upper, gamma_exact, lemma

TINY = Fraction(2) ** -1074
SUBNORMAL_SLACK = Fraction(2) ** -1000


class IndexProver:
    """Range prover of the Index Transformer construction (see the module docstring)."""

    task = "index"
    model = "transformer"
    n_min = 1

    def __init__(self, alphabet: int | None = None, **_: object) -> None:
        if alphabet is not None and alphabet < 1:
            raise ValueError("alphabet must be >= 1")
        self.alphabet = alphabet
        self.params = {"alphabet": alphabet}
        self.n_limit = self._n_limit()

    # --- the construction's n-dependent quantities (its own functions) ------------------------
    def k(self, n: int) -> int:
        return n + 1 if self.alphabet is None else self.alphabet

    def vocab(self, n: int) -> int:
        return max(self.k(n), n + 1)

    def key(self, n: int) -> tuple[int, dict]:
        return (index_construction.precision_needed(n, self.vocab(n)),
                {"beta": index_construction.inverse_temperature(n, self.k(n))})

    def valid(self, n: int) -> bool:
        return n >= 1

    def _n_limit(self) -> int:
        """Largest n with p(n) <= MAX_P (bisection on the nondecreasing p(n); the block scan
        re-evaluates p at every n and lemma 0 re-checks it)."""
        lo, hi = 1, 1 << 40
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.key(mid)[0] <= MAX_P else (lo, mid)
        return lo

    def builder_scalars(self, n: int) -> tuple[int, dict]:
        """The built construction's (p, scalars); a "weights" entry when its weights are not
        the formulas of the module docstring (``formula_mismatch``)."""
        c = index_construction.build(self._task(n))
        sc = dict(c.scalars)
        why = formula_mismatch(c, n)
        if why:
            sc["weights"] = why
        return c.precision_bits, sc

    def _task(self, n: int):
        from rnngap.tasks.index import IndexTask
        return IndexTask(n=n, alphabet=self.alphabet)

    def per_n(self, n: int, samples: int, seed: int) -> dict:
        from rnngap.verify.retrieval.index import verify_index
        return verify_index(self._task(n), samples=samples, seed=seed)

    # --- the block lemmas --------------------------------------------------------------------
    def prove(self, block: Block) -> list[dict]:
        return self.attention_lemmas(block)

    def attention_lemmas(self, block: Block) -> list[dict]:
        a, b, p = block.n_lo, block.n_hi, block.precision_bits
        beta = Fraction(block.scalars["beta"])
        out = [self._emulable(p)]
        if out[0]["result"] != "proved":
            return out
        out.append(self._exact_inputs(a, b, p, beta))
        if getattr(self, "_gap", None) is None:     # for all integers: proved once per prover
            self._gap = cert.score_gap_lemma()
        out.append(self._gap)
        out.append(self._score_magnitude(a, b))
        out += self._softmax_and_decode(b, p, beta)
        return out

    @staticmethod
    def _emulable(p: int) -> dict:
        t0 = time.perf_counter()
        return lemma("precision-emulable", f"2 <= p = {p} <= {MAX_P}: the p-bit machine with "
                     "float64 accumulation is defined", "exact integer comparison",
                     2 <= p <= MAX_P, t0)

    def _vocab_z3(self, z3, n):
        """V(n) - 1 as a z3 term (the largest token value)."""
        if self.alphabet is None:
            return n
        return z3.If(n + 1 >= self.alphabet, n, self.alphabet - 1)

    def _exact_inputs(self, a: int, b: int, p: int, beta: Fraction) -> dict:
        assert beta.denominator == 1

        def build(z3):
            n, j, t = z3.Ints("n j t")
            top = 2 ** p
            hyp = z3.And(n >= a, n <= b, j >= 1, j <= n + 1, t >= 0, t <= self._vocab_z3(z3, n))
            return z3.Implies(hyp, z3.And(t <= top, 2 * j <= top, j * j <= top,
                                          int(beta) * t <= top))
        r = cert.z3_lemma("exact-inputs", f"for all integers n in [{a}, {b}], 1 <= j <= n+1, "
                          f"0 <= t <= V(n)-1: t, 2j, j^2, beta*t <= 2^{p} (beta = {beta}): "
                          "embeddings, positions, keys, values and queries are exact", build)
        return r

    @staticmethod
    def _score_magnitude(a: int, b: int) -> dict:
        def build(z3):
            n, i, j = z3.Ints("n i j")
            hyp = z3.And(n >= a, n <= b, i >= 1, i <= n, j >= 1, j <= n + 1)
            return z3.Implies(hyp, z3.And(2 * i * j + j * j >= 0,
                                          2 * i * j + j * j <= 3 * (b + 1) * (b + 1)))
        return cert.z3_lemma("score-magnitude", f"for all integers n in [{a}, {b}], "
                             f"1 <= i <= n, 1 <= j <= n+1: 0 <= 2ij + j^2 <= 3 (b+1)^2 "
                             f"(b = {b})", build)

    def _softmax_and_decode(self, b: int, p: int, beta: Fraction) -> list[dict]:
        out = []
        t0 = time.perf_counter()
        u = Fraction(1, 2 ** p)
        u53 = Fraction(1, 2 ** 53)
        g3 = gamma_exact(3)
        B2 = (b + 1) ** 2
        e_s = beta * B2 * (3 * g3 + u * (1 + 3 * g3))
        eps = 2 * e_s / beta
        ok = eps < 1
        out.append(lemma("peak", f"eps = 2 E_s / beta = {float(eps):.3g} < 1 with E_s = beta "
                         "(b+1)^2 (3 gamma_3 + u (1 + 3 gamma_3)): s_ii is the strict row "
                         "maximum, d_ii = 0, e_ii = 1, d_ij <= -c(|i-j|^2 - eps), c = (1-u)"
                         "(1-2^-53) beta", "exact rationals", ok, t0, value=float(eps)))
        if not ok:
            return out
        t0 = time.perf_counter()
        c = (1 - u) * (1 - u53) * beta
        e1 = exact_exp_upper(-c * (1 - eps))
        e2 = exact_exp_upper(-2 * c)
        ok = e2 < 1
        R = (1 + u) * (1 + 2 * u53) * 2 * e1 / (1 - e2) + (b + 1) * SUBNORMAL_SLACK if ok \
            else Fraction(10 ** 9)
        out.append(lemma("off-target-mass", f"sum_(j != i) e_ij <= R = {float(R):.4g} for every "
                         f"n <= {b} and query i (geometric tail bound of e^-c(d^2 - eps), "
                         f"c = {float(c):.6g})", "exact rationals, mpmath interval exp", ok, t0,
                         value=float(R)))
        if not ok:
            return out
        t0 = time.perf_counter()
        g = gamma_exact(b + 1)
        z_lo, z_hi = (1 - g) * (1 - u), (1 + R) * (1 + g) * (1 + u)
        a_lo, a_hi = (1 - u53) * (1 - u) / z_hi, (1 + u53) * (1 + u) / z_lo
        A = (1 + u53) * (1 + u) * R / z_lo + (b + 1) * SUBNORMAL_SLACK
        alpha = max(a_hi - 1, 1 - a_lo)
        K, M = self.k(b), self.vocab(b) - 1
        dev = alpha * (K - 1) + A * M
        ferr = gamma_exact(b + 2) * M * (a_hi + A) + (b + 2) * TINY
        delta = dev + ferr + u * ((K - 1) + dev + ferr)
        ok = delta < Fraction(1, 2)
        out.append(lemma("value-deviation", f"|y - x_i| <= delta = {float(delta):.4g} for every "
                         f"n <= {b}, query and input (a_ii >= {float(a_lo):.12g}, off-target "
                         f"weights <= {float(A):.4g}, K = {K}, M = {M})", "exact rationals", ok,
                         t0, value=float(delta)))
        if not ok:
            return out
        # decoding, as in verify.retrieval.index (same rho, eta, L; k and V at their largest in the block)
        V = self.vocab(b)
        rho = u * (1 + u) + 2 * u53
        eta = Fraction(1, 2 ** 51) * V * (K - 1 + delta) * (1 + u) + TINY
        L = (K - 1) ** 2 + 2 * (K - 1) * delta
        dec = cert.quadratic_decode_lemma(K, V, float(_up(delta)), float(_up(rho)),
                                          float(_up(eta)))
        out.append(dec)
        t0 = time.perf_counter()
        margin = 1 - rho - 2 * delta * (1 + rho) - 2 * rho * L - 2 * eta
        out.append(lemma("decode-margin", f"1 - rho - 2 delta (1 + rho) - 2 rho L - 2 eta = "
                         f"{float(margin):.6g} > 0 (L = (K-1)^2 + 2 (K-1) delta)",
                         "exact rationals", margin > 0, t0, value=float(margin)))
        return out


def formula_mismatch(c, n: int) -> str | None:
    """None when the built Transformer ``c`` at n carries exactly the formula weights (the
    per-n structural side conditions of ``verify.retrieval.index`` plus the attention maps and
    the positional table entry by entry), else what differs."""
    import torch

    from rnngap.verify.retrieval.index import structure_conditions

    f64 = torch.float64
    beta = float(c.scalars["beta"])
    conds, _ = structure_conditions(c, c.precision_bits)
    bad = [x["name"] for x in conds if x["result"] != "holds"]
    sd, cfg = c.state_dict, c.config
    j = torch.arange(1, n + 2, dtype=f64)
    want = {"pos_table": torch.stack([torch.zeros_like(j), j, j * j, torch.zeros_like(j)], 1),
            "blocks.0.attn.q_proj.weight": torch.tensor([[beta, 0, 0, 0], [0, 0, 0, 0]], dtype=f64),
            "blocks.0.attn.q_proj.bias": torch.tensor([0.0, beta], dtype=f64),
            "blocks.0.attn.k_proj.weight": torch.tensor([[0, 2, 0, 0], [0, 0, -1, 0]], dtype=f64),
            "blocks.0.attn.k_proj.bias": torch.zeros(2, dtype=f64)}
    bad += [k for k, v in want.items() if k not in sd or not torch.equal(sd[k].double(), v)]
    arch = (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.norm, cfg.pos, cfg.attn_scale)
    if arch != (1, 1, 4, "none", "table", 1.0):
        bad.append(f"architecture {arch}")
    return ("differ from the formulas: " + ", ".join(bad)) if bad else None


def _up(x: Fraction) -> Fraction:
    """The smallest float64 >= x (as a Fraction), so a float bound still encloses x."""
    f = float(x)
    if Fraction(f) < x:
        import math
        f = math.nextafter(f, math.inf)
    return Fraction(f)


class IndexHybridProver(IndexProver):
    """Range prover of the Index hybrid (linear RNN + one attention layer)."""

    model = "hybrid"

    def __init__(self, alphabet: int | None = None, **kw: object) -> None:
        super().__init__(alphabet, **kw)
        self._ref = None

    def _reference(self):
        """The RNN weights (the same at every n: the builder writes constants), from n = 1."""
        if self._ref is None:
            from rnngap.constructions.retrieval import hybrid as hyb
            self._ref = hyb.build_index(self._task(1))
        return self._ref

    def builder_scalars(self, n: int) -> tuple[int, dict]:
        import torch

        from rnngap.constructions.retrieval import hybrid as hyb
        task = self._task(n)
        hc = hyb.build_index(task)
        ref = self._reference().state_dict
        same_rnn = all(torch.equal(v, ref[k]) for k, v in hc.state_dict.items()
                       if k.startswith("rnn.")) and set(ref) == set(hc.state_dict)
        sc = dict(hc.scalars)
        if not same_rnn:
            sc["rnn_weights"] = "differ from n = 1"
        # the attention layer, embedding and unembedding: the formula Transformer's, verbatim
        tc = index_construction.build(task)
        why = formula_mismatch(tc, n)
        shared = all(torch.equal(hc.state_dict["block." + k[len("blocks.0."):]], v)
                     for k, v in tc.state_dict.items() if k.startswith("blocks.0.")) and all(
            torch.equal(hc.state_dict[k], tc.state_dict[k])
            for k in ("embed.weight", "unembed.weight", "unembed.bias"))
        if why or not shared:
            sc["weights"] = why or "attention layer differs from the Index construction's"
        return hc.precision_bits, sc

    def per_n(self, n: int, samples: int, seed: int) -> dict:
        from rnngap.verify.retrieval.hybrid import verify_hybrid
        return verify_hybrid("index", self._task(n), samples=samples, seed=seed)

    def prove(self, block: Block) -> list[dict]:
        return [self._rnn_table(block)] + self.attention_lemmas(block)

    def _rnn_table(self, block: Block) -> dict:
        t0 = time.perf_counter()
        hc = self._reference()
        ok, detail, worst = symbolic_rnn_table(hc, block.n_hi + 1, block.precision_bits)
        return lemma("rnn-table", "for every position j <= n + 1 <= b + 1: the RNN part writes "
                     "exactly (POS, POS2) = (j, j^2) (sympy: polynomial identity in j), every "
                     f"activation is an integer polynomial in j of magnitude <= {worst} <= 2^"
                     f"{block.precision_bits} and every reduction is exact: " + detail,
                     "sympy summation over a symbolic position j", ok, t0)


def symbolic_rnn_table(hc, L: int, p: int) -> tuple[bool, str, int]:
    """Evaluate the hybrid's RNN part on its RNN channels symbolically in the position j.

    Supported (else: not proved, with the reason): non-selective layers with conv width 1,
    decays in {0, 1}, integer weights, reading and writing only the RNN channels, an embedding
    that is zero there. Returns (ok, detail, largest activation bound)."""
    import sympy

    j, i = sympy.symbols("j i", integer=True, positive=True)
    sd, cfg, ch = hc.state_dict, hc.config, hc.channels
    rset = [ch[c] for c in hc.rnn_channels]
    d = cfg.d_model
    if cfg.selective:
        return False, "selective decay (not supported symbolically)", 0
    if bool((sd["embed.weight"][:, rset] != 0).any()):
        return False, "the embedding writes an RNN channel", 0
    x = {c: sympy.Integer(0) for c in range(d)}
    worst, wmax, terms = 0, 0, 2
    exprs: list = []
    for layer in range(cfg.n_rnn_layers):
        w = {k: sd[f"rnn.{layer}.{k}"].double() for k in
             ("in_proj.weight", "in_proj.bias", "conv_weight", "conv_bias", "a", "B", "C", "D")}
        if any(bool((v != v.round()).any()) for v in w.values()):
            return False, f"layer {layer} has a non-integer weight", 0
        if w["conv_weight"].shape[1] != 1:
            return False, f"layer {layer}: conv width > 1 (not supported symbolically)", 0
        other = [c for c in range(d) if c not in rset]
        if bool((w["in_proj.weight"][:, other] != 0).any()) or \
                bool((w["C"][other] != 0).any()) or bool((w["D"][other] != 0).any()):
            return False, f"layer {layer} reads or writes a channel outside the RNN's", 0
        wmax = max(wmax, max(float(v.abs().max()) for v in w.values()))
        W, bi = w["in_proj.weight"], w["in_proj.bias"]
        u = [sum(int(W[r, c]) * x[c] for c in rset) + int(bi[r]) for r in range(W.shape[0])]
        v = [int(w["conv_weight"][r, 0]) * u[r] + int(w["conv_bias"][r]) for r in range(len(u))]
        Bm = w["B"]
        bv = [sum(int(Bm[s, r]) * v[r] for r in range(len(v))) for s in range(Bm.shape[0])]
        h = []
        for s, a in enumerate(w["a"].tolist()):
            if a == 1:
                h.append(sympy.expand(sympy.summation(bv[s].subs(j, i), (i, 1, j))))
            elif a == 0:
                h.append(sympy.expand(bv[s]))
            else:
                return False, f"layer {layer}: decay {a} (only 0 and 1 supported)", 0
        C, D = w["C"], w["D"]
        for c in rset:
            y = sum(int(C[c, s]) * h[s] for s in range(len(h))) + \
                sum(int(D[c, r]) * v[r] for r in range(len(v)))
            x[c] = sympy.expand(x[c] + y)
        ys = [sum(int(C[c, s]) * h[s] for s in range(len(h)))
              + sum(int(D[c, r]) * v[r] for r in range(len(v))) for c in rset]
        exprs += u + v + bv + h + ys + [x[c] for c in rset]
        terms = max(terms, d + 1, w["conv_weight"].shape[1] + 1, len(v) + len(h), 2)
    want = {ch["POS"]: j, ch["POS2"]: j ** 2}
    table_ok = all(sympy.expand(x[c] - want.get(c, 0)) == 0 for c in rset)
    for e in exprs:
        poly = sympy.Poly(sympy.expand(e), j)
        if not all(cf.is_integer for cf in poly.all_coeffs()):
            return False, f"activation {e} has a non-integer coefficient", 0
        worst = max(worst, sum(abs(int(cf)) * L ** k for k, cf in
                               enumerate(reversed(poly.all_coeffs()))))
    exact = worst <= 2 ** p and terms * max(wmax, 1) * worst < 2 ** 52
    detail = ("table " + ", ".join(f"{n_}={x[ch[n_]]}" for n_ in hc.rnn_channels)
              + ("" if table_ok else " (NOT (j, j^2))"))
    return table_ok and exact, detail, worst
