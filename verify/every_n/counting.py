"""Counting for every n of a range: the Transformer of ``constructions.retrieval.counting`` and its hybrid.

Both forms: threshold (row x_1..x_n q t -> [cnt > t]) and exact count (``exact=True``; row
x_1..x_n q -> cnt), cnt = #{j <= n: x_j = q}. Alphabet k(n) (default n + 1), vocabulary
V(n) = max(k(n), n + 1) (nondecreasing in n), beta = 2^10 (n-independent), claimed p(n) from the
construction's own precision function (``constructions.retrieval.counting.precision_needed`` /
``precision_exact``; ``constructions.retrieval.hybrid.counting_precision``). A block [a, b] has constant
p and scalars; every lemma below quantifies over EVERY n in [a, b] and is monotone in b (the
lemmas of [a, m] are implied by those of [a, b] for m <= b, as ``first_failing`` assumes).

How the lemmas take n as a variable: z3 over integers with n universally quantified
(``layer2-maxima``, ``attention-maxima``, ``domain-monotone`` hold for EVERY n >= 1, so they are
proved once per prover and reused); "corner bounds" for the integer/float64 bounds (each bound is
a polynomial with nonnegative coefficients in the nonnegative variables n, j, t, V(n)-1, k(n)-1,
checked by sympy, hence nondecreasing in each; the domain of a block is bounded by its upper
corner n = b, j = L(b), t = V(b)-1 by ``domain-monotone``; the bound is evaluated there in exact
integers); one enumeration over every count/threshold <= b that covers every n <= b at once.
Lemmas about the reference build and the all-integer certificates do not depend on the block
(proved once, reused; the record says so).

Transformer (``CountingProver``), the per-n argument of ``verify.retrieval.counting`` with n a variable:

* precision-emulable: 2 <= p <= 52.
* construction-structure: every structural side condition of the per-n verifier (depth,
  embedding, positions, layer 1, counting head, zero MLP, unembedding, layer1-enumerated) holds
  on the reference build (n = ``N_REF``). The attention/MLP weights and the architecture are
  n-independent (the builder writes constants; ``builder_scalars`` compares them with the
  reference at every cross-checked n); the embedding, positional table and unembedding are the
  builder's formulas in t, j and n, which the lemmas below use.
* domain-monotone (z3, all n <= m): k(n), V(n) = max(k(n), n+1), L(n) nondecreasing.
* layer1-exact (threshold form; corner bounds): for every n of the block, j <= n + 2 and tokens
  t < V(n): j - 1 <= j, j^2, t <= 2^p and every float64 partial sum < 2^53, so the p-bit
  layer-1 query beta(j-1, 1), key (2j, -j^2) and value t are exact (the per-n
  ``layer1-enumerated``, at every position of every n).
* pointer-gap (threshold form): ``certificates.pointer_lemma`` (all integers) with a = n + 1 at
  the last position: layer 1 copies x_(n+1) = q into PREV exactly (with the underflow lemma).
* layer2-maxima (z3, every n >= 1): with the positional indicators ANCHOR = [j = n+1],
  EXCL = [j = n+2] (threshold; no EXCL in the exact form) as formulas in j and n, the counting
  head's score 2 q x_j - x_j^2 - EXCL(j) equals q^2 exactly at j <= n with x_j = q and at the
  anchor j = n + 1 (its token is q), and is <= q^2 - 1 everywhere else (the threshold position
  too); the value ANCHOR is 1 only at a maximum. Hence Z = cnt + 1 exactly and F =
  r(fl(1/(cnt + 1))) (with integer exactness and the underflow lemma).
* match-gap (m=1): ``certificates.match_lemma`` (all integers), as in the per-n verifier.
* integer-exactness (corner bounds): the per-n integer families ((n+2)^2 resp. (n+1)^2,
  (V-1)^2 + 1 resp. (V-1)^2, 2(k-1)) and Z <= n + 1 are <= 2^p for every n of the block.
* float64-sums-exact (corner bounds): 3 (n+2)^2 + 3 V^2 < 2^52 (the per-n condition).
* softmax-underflow and exponent-gap: the per-n certificates (depend on beta and p only).
* readout (threshold form; enumeration): F_c = r(fl(1/(c+1))) and TH_t = r(theta(t)) for EVERY
  c, t in [0, b] at p bits, computed as the model computes them, with the construction's own
  ``theta`` (a function of t alone: the reference build's TH column is checked equal to it).
  F nonincreasing, TH_t < F_t (t <= b), F_(t+1) < TH_t (t < b), and r(fl(TH_t - F_c)) has the
  answer's sign at c = t, t + 1. These depend on n only through p, so the one enumeration covers
  every n <= b of the block (the per-n statement at n is the restriction to c, t <= n).
* readout-exact (exact form; enumeration): ``verify.retrieval.counting.exact_readout(b, V(b), p)``, the
  per-n certificate at n = b: for every pair (count c <= b, token t < V(b), t != c) the p-bit
  logit of t is below that of c. Each logit depends only on (c, t, p) (F_c above; unembedding
  row t is fl(2/(t+1)), -fl(1/(t+1)^2)), and c <= n <= b, t < V(n) <= V(b) for every n of the
  block, so the per-n certificate at every n is a sub-statement.

Hybrid (``CountingHybridProver``), the per-n argument of ``verify.retrieval.hybrid_counting``:

* construction-structure: the per-n copy-lemma side conditions, the attention weights and (exact
  form) the unembedding side condition on the reference build; ``builder_scalars`` compares
  every n-independent weight (rnn.*, block.*), the taps and the architecture with the reference.
* domain-monotone: as for the Transformer.
* rnn-symbolic (sympy; bounded enumeration + time invariance): the RNN layer is evaluated with
  SYMBOLIC tokens at position 1 and at a generic position j >= K (K = conv width: the conv window
  is then full and the formula does not depend on j; B = 0 so the state is 0 at every j by
  induction). The residual entering attention is (x_j, x_j^2[, TH], G, G2, A, F) =
  (x_j, x_j^2[, r(TH(x_j))], x_(j-1), x_(j-1)^2, [j = 1], 0) as a polynomial identity (x_0 := 0),
  every activation is an integer polynomial of magnitude <= 2^p and every reduction's sum of
  |terms| < 2^52 for tokens <= V(b) - 1 (all roundings identities, float64 sums exact).
* attention-maxima (z3, every n >= 1): score 2 Q G(j) - G2(j) + Q^2 A(j) with the table above:
  q^2 exactly at position 1 and at every j in [2, L] with x_(j-1) = Q, <= Q^2 - 1 elsewhere;
  value A nonzero only at position 1. Threshold: L = n + 2, Q = G(L) = x_(n+1) = q, Z = cnt + 2;
  exact: L = n + 1, Q = TOK(L) = q, Z = cnt + 1.
* integer-exactness ((V-1)^2, 2(V-1), Z <= n + 2 resp. n + 1), float64-sums-exact
  (4 (V-1)^2 < 2^52): corner bounds; softmax-underflow, match-gap (the per-n score-gap lemma),
  exponent-gap: the per-n certificates.
* readout (threshold; enumeration over c in [0, b+1], t in [0, b]; F_c = r(fl(1/(c+2))), TH_t =
  r(TH(t)) with the builder's ``counting_theta``, checked equal to the per-n verifier's own
  recomputation for every t <= b): F nonincreasing, F_(t+1) < TH_t < F_t, r(TH_t - F_t) in
  (-1, 0), r(TH_t - F_(t+1)) in (0, 1); readout-exact (exact form): as for the Transformer.

Not covered by the lemmas (as for Index): the builder is code; its n-dependent tables are
assumed to be the formulas above, checked on the reference build and, at every cross-checked n,
by the per-n verifier's structural side conditions. The per-n verifiers' end-to-end runs are
cross-checks there, not proof steps, and have no range counterpart. ``n_limit`` is the largest n
with p(n) <= 52; in the threshold forms the float64-sums lemma fails (as the per-n verifier
does) above it, from n ~ 2.74e7 (Transformer) resp. n = 2^25 (hybrid). The exact-form
enumeration (the per-n ``exact_readout``) needs memory linear in b (about 0.6 GB at 2^20)."""

from __future__ import annotations

import functools
import time

import torch

from rnngap.constructions.retrieval import counting as cc
from rnngap.constructions.retrieval import hybrid as hyb
from rnngap.models.arith import PBitArith
from rnngap.verify import certificates as cert
from rnngap.verify.every_n import MAX_P, Block, lemma

#: the reference build (structure, n-independent weights) is taken at this n
N_REF = 6
#: config fields that must not depend on n (everything but the vocabulary and the length)
_CFG_SKIP = {"vocab_size", "max_len"}


def _cfg_fields(cfg) -> dict:
    d = dict(vars(cfg)) if hasattr(cfg, "__dict__") else {}
    return {k: v for k, v in d.items() if k not in _CFG_SKIP}


def _same_tensors(sd: dict, ref: dict, prefixes: tuple[str, ...]) -> bool:
    keys = {k for k in sd if k.startswith(prefixes)}
    if keys != {k for k in ref if k.startswith(prefixes)}:
        return False
    return all(sd[k].shape == ref[k].shape and torch.equal(sd[k], ref[k]) for k in keys)


class CountingProver:
    """Range prover of the Counting Transformer (threshold or exact form; module docstring)."""

    task = "counting"
    model = "transformer"
    n_min = 1
    _PREFIXES: tuple[str, ...] = ("blocks.",)

    def __init__(self, alphabet: int | None = None, exact: bool = False, **_: object) -> None:
        if alphabet is not None and alphabet < 1:
            raise ValueError("alphabet must be >= 1")
        self.alphabet = alphabet
        self.exact = bool(exact)
        self.params = {"alphabet": alphabet, "exact": self.exact}
        self._ref = None
        self._cached: dict[str, dict] = {}
        self.n_limit = self._n_limit()

    # --- the construction's n-dependent quantities (its own functions) ------------------------
    def k(self, n: int) -> int:
        return n + 1 if self.alphabet is None else self.alphabet

    def vocab(self, n: int) -> int:
        return max(self.k(n), n + 1)

    def precision(self, n: int) -> int:
        k, V = self.k(n), self.vocab(n)
        return cc.precision_exact(n, V, k) if self.exact else cc.precision_needed(n, V, k)

    def key(self, n: int) -> tuple[int, dict]:
        return self.precision(n), {"beta": float(cc.BETA)}

    def valid(self, n: int) -> bool:
        return n >= 1

    def _n_limit(self) -> int:
        """Largest n with p(n) <= MAX_P (bisection on the nondecreasing p(n): a max of
        nondecreasing terms; the block scan re-evaluates p at every n)."""
        lo, hi = 1, 1 << 40
        if self.key(lo)[0] > MAX_P:
            return 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.key(mid)[0] <= MAX_P else (lo, mid)
        return lo

    def _task(self, n: int):
        from rnngap.tasks.counting import CountingTask
        return CountingTask(n=n, alphabet=self.alphabet, exact=self.exact)

    def _build(self, n: int):
        return cc.build(self._task(n))

    def _reference(self):
        if self._ref is None:
            self._ref = self._build(N_REF)
        return self._ref

    def builder_scalars(self, n: int) -> tuple[int, dict]:
        c = self._build(n)
        return c.precision_bits, self._scalars_checked(c)

    def _scalars_checked(self, c) -> dict:
        """The build's scalars, plus a flag when its n-independent weights differ from the
        reference build or its n-dependent tables fail the per-n structural conditions."""
        ref = self._reference()
        sc = dict(c.scalars)
        if not (_same_tensors(c.state_dict, ref.state_dict, self._PREFIXES)
                and _cfg_fields(c.config) == _cfg_fields(ref.config)
                and c.channels == ref.channels):
            sc["n_independent_weights"] = f"differ from n = {N_REF}"
        conds, th_ok = self._structure_conds(c)
        bad = [x["name"] for x in conds if x["result"] != "holds"] + ([] if th_ok else ["TH"])
        if bad:
            sc["structure"] = "FAILS: " + ", ".join(bad)
        return sc

    def per_n(self, n: int, samples: int, seed: int) -> dict:
        from rnngap.verify.retrieval.counting import verify_counting
        return verify_counting(self._task(n), samples=samples, seed=seed)

    # --- the block lemmas --------------------------------------------------------------------
    def _head(self, p: int) -> list[dict]:
        """The lemmas every block starts with: emulable p, the structure of the reference
        build, monotone sizes (the last two proved once per prover)."""
        out = [_emulable(p)]
        if out[0]["result"] == "proved":
            out.append(self._once("structure", self._structure))
            out.append(self._once("domain", self._domain_monotone))
        return out

    def _tail(self, a: int, b: int, p: int, beta: float) -> list[dict]:
        """The lemmas every block ends with: integers and float64 sums exact at b, softmax
        underflow, the readout over every count (and threshold) up to b."""
        return [self._integers(a, b, p), self._float64(a, b), cert.underflow_lemma(beta, p),
                cert.exact_positive("exponent-gap", {"beta": beta}, "beta - 746"),
                self._readout_exact(b, p) if self.exact else self._readout(b, p)]

    def prove(self, block: Block) -> list[dict]:
        a, b, p = block.n_lo, block.n_hi, block.precision_bits
        out = self._head(p)
        if out[0]["result"] != "proved":
            return out
        if not self.exact:
            out.append(self._layer1_exact(a, b, p))
            out.append(self._once("pointer", cert.pointer_lemma))
        out.append(self._once("maxima", self._layer2_maxima))
        out.append(self._once("match", lambda: cert.match_lemma(1, tiebreak=False)))
        return out + self._tail(a, b, p, cc.BETA)

    def _once(self, key: str, fn) -> dict:
        """A lemma whose statement does not depend on the block (all integers, or the reference
        build): proved once per prover, then reused."""
        if key not in self._cached:
            self._cached[key] = fn()
            return dict(self._cached[key])
        r = dict(self._cached[key])
        r["method"] = r["method"] + " (statement independent of the block: checked once for " \
            f"this prover in {r['seconds']} s, reused)"
        r["seconds"] = 0.0
        return r

    def _structure_conds(self, c) -> tuple[list[dict], bool]:
        """The per-n structural side conditions on a build ``c`` (and its TH column)."""
        from rnngap.verify.retrieval.counting import structure_conditions
        # the layer-1 position enumeration is the symbolic lemma layer1-exact of every block
        conds = structure_conditions(c, c.n, c.precision_bits, self.exact,
                                     enumerate_layer1=c.n <= N_REF)
        th_ok = True
        if not self.exact:
            t = torch.arange(c.config.vocab_size, dtype=torch.float64)
            th_ok = bool(torch.equal(c.state_dict["embed.weight"][:, c.channels["TH"]],
                                     cc.theta(t)))
        return conds, th_ok

    _structure_text = ("attention/MLP weights and architecture are n-independent (compared "
                       "with this build at both ends of every block and every cross-checked "
                       "n); embedding rows (t, t^2{th}), positional rows (j, j^2, [j = n+1]"
                       "{excl}) and unembedding rows are the builder's formulas in t, j, n")
    _structure_method = "verify.retrieval.counting.structure_conditions"

    def _structure(self) -> dict:
        t0 = time.perf_counter()
        conds, th_ok = self._structure_conds(self._reference())
        bad = [x["name"] for x in conds if x["result"] != "holds"]
        text = self._structure_text.format(th="" if self.exact else ", theta(t)",
                                           excl="" if self.exact else ", [j = n+2]")
        return lemma("construction-structure", "the per-n structural side conditions ("
                     + ", ".join(x["name"] for x in conds) + f") hold on the reference build at "
                     f"n = {N_REF}; " + text + (f" (FAILING: {', '.join(bad)})" if bad else ""),
                     f"per-n side conditions ({self._structure_method}) on the reference build",
                     not bad and th_ok, t0)

    def _domain_monotone(self) -> dict:
        """k(n), V(n) = max(k(n), n+1) and L(n) nondecreasing (the corner bounds use it)."""
        al, off = self.alphabet, (1 if self.exact else 2)

        def build(z3):
            n, m = z3.Ints("n m")
            k = (lambda x: x + 1) if al is None else (lambda x: z3.IntVal(al))
            V = lambda x: z3.If(k(x) >= x + 1, k(x), x + 1)
            return z3.Implies(z3.And(n >= 1, n <= m),
                              z3.And(k(n) <= k(m), V(n) <= V(m), n + off <= m + off))
        r = cert.z3_lemma("domain-monotone", "for all integers 1 <= n <= m: k(n) <= k(m), "
                          "V(n) <= V(m) and L(n) <= L(m), with k(n) = "
                          + ("n+1" if al is None else str(al)) + ", V(n) = max(k(n), n+1), "
                          f"L(n) = n+{off}: the block's domain is bounded by its upper corner",
                          build)
        spot = all(self.vocab(n) == max(self.k(n), n + 1) and
                   self.k(n) == (n + 1 if al is None else al) for n in (1, 2, 3, 1000, 10 ** 6))
        if not spot:
            r["result"] = "FAILED (the transcription differs from the construction's k, V)"
        return r

    def _corner(self, b: int) -> dict:
        """The upper corner of the block's domain: n = b, j = L(b), t = V(b)-1, k(b)-1."""
        return {"n": b, "j": b + (1 if self.exact else 2), "t": self.vocab(b) - 1,
                "vm": self.vocab(b) - 1, "km": self.k(b) - 1}

    def _layer1_exact(self, a: int, b: int, p: int) -> dict:
        beta = int(cc.BETA)
        j, t = _sym()["j"], _sym()["t"]
        return corner_bounds(
            "layer1-exact", f"for all integers n in [{a}, {b}], 1 <= j <= n+2, 0 <= t <= "
            f"V(n)-1: j-1 <= j, j^2, t <= 2^{p} and the float64 partial sums (<= beta (j+1) "
            "+ j^2 + t) < 2^53: the p-bit layer-1 query beta (j-1, 1), key (2j, -j^2) and "
            "value t are exact at every position (integers <= 2^p times powers of 2)",
            [("j", j, 2 ** p, False), ("j^2", j ** 2, 2 ** p, False), ("t", t, 2 ** p, False),
             ("beta (j+1) + j^2 + t", beta * (j + 1) + j ** 2 + t, 2 ** 53, True)],
            self._corner(b))

    def _layer2_maxima(self) -> dict:
        exact = self.exact

        def build(z3):
            n, j, x, q = z3.Ints("n j x q")
            L = n + 1 if exact else n + 2
            excl = z3.IntVal(0) if exact else z3.If(j == n + 2, 1, 0)
            anchor = z3.If(j == n + 1, 1, 0)
            hyp = z3.And(n >= 1, j >= 1, j <= L, q >= 0, x >= 0, z3.Implies(j == n + 1, x == q))
            s = 2 * q * x - x * x - excl
            match = z3.And(j <= n + 1, x == q)
            return z3.Implies(hyp, z3.And(z3.Implies(match, s == q * q),
                                          z3.Implies(z3.Not(match), s <= q * q - 1),
                                          z3.Implies(anchor == 1, match)))
        return cert.z3_lemma(
            "layer2-maxima", "for all integers n >= 1 (every block), positions 1 <= j <= "
            + ("n+1" if exact else "n+2") + ", tokens q, x_j >= 0 with x_(n+1) = q: the counting "
            "head's score 2 q x_j - x_j^2 - EXCL(j)"
            + (" (EXCL = 0: no EXCL column)" if exact else " (EXCL = [j = n+2])")
            + " is q^2 iff j <= n+1 and x_j = q, else <= q^2 - 1; the value ANCHOR = [j = n+1] "
            "is 1 only at a maximum: Z = cnt + 1, F = r(fl(1/(cnt+1)))", build)

    def _integers(self, a: int, b: int, p: int) -> dict:
        n, vm, km = _sym()["n"], _sym()["vm"], _sym()["km"]
        top = 2 ** p
        items = [("(n+1)^2", (n + 1) ** 2, top, False), ("(V-1)^2", vm ** 2, top, False)] \
            if self.exact else [("(n+2)^2", (n + 2) ** 2, top, False),
                                ("(V-1)^2 + 1", vm ** 2 + 1, top, False)]
        items += [("2(k-1)", 2 * km, top, False), ("Z <= n+1", n + 1, top, False)]
        return corner_bounds("integer-exactness", f"for all integers n in [{a}, {b}]: the "
                             f"per-n integer families are <= 2^{p} (scores in units of beta = "
                             "2^10)", items, self._corner(b))

    def _float64(self, a: int, b: int) -> dict:
        n, vm = _sym()["n"], _sym()["vm"]
        return corner_bounds("float64-sums-exact", f"for all integers n in [{a}, {b}]: "
                             "3 (n+2)^2 + 3 V(n)^2 < 2^52 (sums of |terms| of every integer "
                             "reduction; the per-n condition)",
                             [("3 (n+2)^2 + 3 V^2", 3 * (n + 2) ** 2 + 3 * (vm + 1) ** 2,
                               2 ** 52, True)], self._corner(b))

    def _readout(self, b: int, p: int) -> dict:
        t0 = time.perf_counter()
        ok, margin, detail = threshold_readout(b, p, cc.theta, z_offset=1)
        ref = self._reference()
        V = ref.config.vocab_size
        col = ref.state_dict["embed.weight"][:, ref.channels["TH"]]
        same = bool(torch.equal(col, cc.theta(torch.arange(V, dtype=torch.float64)))
                    and torch.equal(col[: min(V, b + 1)],
                                    cc.theta(torch.arange(b + 1, dtype=torch.float64))[: V]))
        return lemma("readout", f"for every n <= {b}, count c and threshold t in [0, n]: "
                     "r(theta_t) > F_c iff c > t, with F_c = r(fl(1/(c+1))) (F nonincreasing, "
                     "TH_t < F_t, F_(t+1) < TH_t, r(fl(TH_t - F_c)) with the answer's sign at "
                     "c = t, t+1); theta is a function of t alone (reference build's TH column "
                     "= construction.theta)" + ("" if ok else f"; FAILS: {detail}"),
                     f"ONE exact enumeration of every c, t in [0, {b}] at p = {p} (F and TH "
                     "depend on n only through p), as the model computes them",
                     ok and same, t0, value=margin, worst_threshold=detail.get("bad_t"))

    def _readout_exact(self, b: int, p: int) -> dict:
        from rnngap.verify.retrieval.counting import exact_readout
        V = self.vocab(b)
        r, _margin, _ = exact_readout(b, V, p)
        return {**r, "statement": r["statement"] + f"; covers every n in the block: c <= n <= "
                f"{b}, t < V(n) <= V(b) = {V}, and each logit depends on (c, t, p) only",
                "method": r["method"] + f" (the per-n certificate at n = {b}, V = {V})"}


@functools.cache
def _sym() -> dict:
    """The block-domain variables: n, position j, token t, V(n) - 1 (vm), k(n) - 1 (km)."""
    import sympy
    return {name: sympy.Symbol(name, integer=True, nonnegative=True)
            for name in ("n", "j", "t", "vm", "km")}


_MONO: dict[str, bool] = {}


def corner_bounds(name: str, statement: str, items: list[tuple], corner: dict[str, int]) -> dict:
    """Bounds ``expr < limit`` (strict) or ``expr <= limit`` over a block's domain.

    Each ``expr`` is a polynomial in nonnegative integer variables (n, j, t, vm = V(n)-1,
    km = k(n)-1); sympy checks that every coefficient is >= 0, so ``expr`` is nondecreasing in
    each variable. On the block's domain each variable is at most its value at the upper corner
    (n <= b; j <= L(n) <= L(b); t <= V(n)-1 <= V(b)-1 and k(n) <= k(b), V(n) = max(k(n), n+1)
    and k(n) being nondecreasing), so ``expr`` is at most its exact integer value there."""
    import sympy

    t0 = time.perf_counter()
    rows, ok = [], True
    for label, expr, limit, strict in items:
        key = str(expr)
        if key not in _MONO:
            poly = sympy.Poly(sympy.expand(expr), *[_sym()[v] for v in ("n", "j", "t", "vm", "km")])
            _MONO[key] = all(c >= 0 for c in poly.coeffs())
        val = int(sympy.sympify(expr).subs({_sym()[k]: v for k, v in corner.items()}))
        holds = _MONO[key] and (val < limit if strict else val <= limit)
        ok &= holds
        rows.append(f"{label} <= {val} {'<' if strict else '<='} {limit}"
                    + ("" if _MONO[key] else " (NOT monotone)") + ("" if holds else " FAILS"))
    return lemma(name, statement + " [at the corner " + ", ".join(
        f"{k} = {v}" for k, v in corner.items()) + ": " + "; ".join(rows) + "]",
        "exact integers at the block's upper corner; monotonicity by sympy (polynomial with "
        "nonnegative coefficients in nonnegative variables)", ok, t0)


def _emulable(p: int) -> dict:
    t0 = time.perf_counter()
    return lemma("precision-emulable", f"2 <= p = {p} <= {MAX_P}: the p-bit machine with "
                 "float64 accumulation is defined", "exact integer comparison",
                 2 <= p <= MAX_P, t0)


#: counts/thresholds per chunk of the readout enumeration (bounds its memory)
CHUNK = 1 << 22


def threshold_readout(b: int, p: int, theta, z_offset: int) -> tuple[bool, float, dict]:
    """F_c = r(fl(1/r(c + z_offset))) for c in [0, b+1], TH_t = r(theta(t)) for t in [0, b],
    exactly as the model computes them at p bits (element-wise, in chunks of ``CHUNK``
    thresholds); checks F nonincreasing, TH_t < F_t (t <= b), F_(t+1) < TH_t (t < b),
    logit_1 = r(fl(TH_t - F_c)) in (-1, 0) at c = t and in (0, 1) at c = t + 1.
    Returns (ok, smallest |logit_1| at the boundary pairs, detail)."""
    arith = PBitArith(p)
    f64 = torch.float64
    ok, margin, detail = True, float("inf"), {}
    for s in range(0, b + 1, CHUNK):
        e = min(s + CHUNK, b + 1)                      # thresholds t in [s, e)
        c = torch.arange(s, e + 1, dtype=f64)          # counts c in [s, e], e <= b + 1
        F = arith.div(torch.ones_like(c), arith.r(c + z_offset))
        t = torch.arange(s, e, dtype=f64)
        TH = arith.r(theta(t))
        mono = F[1:] <= F[:-1]                         # pairs (c, c+1), c in [s, e)
        low = arith.r(TH - F[:-1])                     # c = t: answer 0
        high = arith.r(TH - F[1:])                     # c = t + 1: answer 1 (only t < b)
        last = t == b
        good = (TH < F[:-1]) & (low < 0) & (low > -1) & mono
        good &= last | ((F[1:] < TH) & (high > 0) & (high < 1))
        if not bool(good.all()):
            ok = False
            detail.setdefault("bad_t", s + int(torch.nonzero(~good).flatten()[0]))
        margin = min(margin, float(low.abs().min()),
                     float(high[~last].abs().min()) if bool((~last).any()) else margin)
    return ok, margin, detail


class CountingHybridProver(CountingProver):
    """Range prover of the Counting hybrid (threshold or exact form; module docstring)."""

    model = "hybrid"
    _PREFIXES = ("rnn.", "block.")

    def precision(self, n: int) -> int:
        return hyb.counting_precision(n, self.vocab(n), self.exact)

    def key(self, n: int) -> tuple[int, dict]:
        return self.precision(n), {"beta": float(hyb.BETA),
                                   "conv_kernel": float(self._reference().config.conv_kernel)}

    def _build(self, n: int):
        return hyb.build_counting(self._task(n))

    def _scalars_checked(self, c) -> dict:
        sc = super()._scalars_checked(c)
        ref = self._reference()
        if c.taps != ref.taps or c.rnn_channels != ref.rnn_channels:
            sc["n_independent_weights"] = f"differ from n = {N_REF}"
        return sc

    def per_n(self, n: int, samples: int, seed: int) -> dict:
        from rnngap.verify.retrieval.hybrid import verify_hybrid
        return verify_hybrid("counting", self._task(n), samples=samples, seed=seed)

    def prove(self, block: Block) -> list[dict]:
        a, b, p = block.n_lo, block.n_hi, block.precision_bits
        out = self._head(p)
        if out[0]["result"] != "proved":
            return out
        out.append(self._rnn_symbolic(b, p))
        out.append(self._once("maxima", self._attention_maxima))
        out.append(self._once("score-gap", lambda: {
            **cert.score_gap_lemma(), "name": "match-gap", "statement": "for all integers "
            "G != Q: 2QG - G^2 <= Q^2 - 1 (i = Q, j = G): a non-matching position scores "
            ">= beta below Q^2"}))
        return out + self._tail(a, b, p, hyb.BETA)

    def _structure_conds(self, hc) -> tuple[list[dict], bool]:
        """The per-n hybrid side conditions (copy lemma, attention weights) on a build."""
        from rnngap.verify.retrieval.counting import exact_unembedding
        from rnngap.verify.retrieval.hybrid_counting import attention_ok, theta
        from rnngap.verify.retrieval.hybrid_gram import copy_lemma
        from rnngap.verify.verdict import side_condition
        t = torch.arange(hc.config.vocab_size, dtype=torch.float64)
        conds = copy_lemma(hc, {} if self.exact else {"TH": theta(t)})
        conds.append(side_condition("attention-weights", attention_ok(hc, self.exact)))
        conds.append(side_condition("one-rnn-layer", hc.config.n_rnn_layers == 1))
        if self.exact:
            conds.append(exact_unembedding(hc.state_dict["unembed.weight"],
                                           hc.state_dict["unembed.bias"], hc.channels["F"]))
        return conds, True

    _structure_text = ("RNN and attention weights, taps and architecture are n-independent "
                       "(compared with this build at both ends of every block and every "
                       "cross-checked n); embedding and unembedding rows are the builder's "
                       "formulas in t{th}{excl}")
    _structure_method = ("verify.retrieval.hybrid_gram.copy_lemma, "
                         "verify.retrieval.hybrid_counting.attention_ok")

    def _rnn_symbolic(self, b: int, p: int) -> dict:
        t0 = time.perf_counter()
        ok, detail = symbolic_copy_rnn(self._reference(), self.vocab(b) - 1, p)
        return lemma("rnn-symbolic", "for every n <= b and every position j: the RNN part "
                     "writes G = x_(j-1), G2 = x_(j-1)^2, A = [j = 1] (x_0 := 0) and nothing "
                     "else, so the residual entering attention is (x_j, x_j^2"
                     + ("" if self.exact else ", r(TH(x_j))") + ", x_(j-1), x_(j-1)^2, [j = 1], "
                     f"0); every activation an integer <= 2^{p}, every reduction exact for "
                     f"tokens <= V(b)-1 = {self.vocab(b) - 1}: " + detail,
                     "sympy: symbolic tokens at j = 1..K-1 and at a generic j >= K (full conv "
                     "window, time-invariant formula; B = 0 gives state 0 by induction)", ok, t0)

    def _attention_maxima(self) -> dict:
        exact = self.exact

        def build(z3):
            n, j, y, Q = z3.Ints("n j y Q")
            L = n + 1 if exact else n + 2
            G = z3.If(j == 1, 0, y)
            A = z3.If(j == 1, 1, 0)
            hyp = z3.And(n >= 1, j >= 1, j <= L, Q >= 0, y >= 0,
                         *([] if exact else [z3.Implies(j == n + 2, y == Q)]))
            s = 2 * Q * G - G * G + Q * Q * A
            top = z3.Or(j == 1, y == Q)
            return z3.Implies(hyp, z3.And(z3.Implies(top, s == Q * Q),
                                          z3.Implies(z3.Not(top), s <= Q * Q - 1),
                                          z3.Implies(A == 1, j == 1)))
        z = "cnt + 1" if exact else "cnt + 2"
        return cert.z3_lemma(
            "attention-maxima", "for all integers n >= 1 (every block), positions 1 <= j <= "
            + ("n+1 = L, Q = TOK(L) = q" if exact else "n+2 = L, Q = G(L) = x_(n+1) = q")
            + ", tokens y = x_(j-1) >= 0: with G = [j > 1] y, G2 = G^2, A = [j = 1] the score "
            "2QG - G2 + Q^2 A is Q^2 iff j = 1 or x_(j-1) = Q, else <= Q^2 - 1; the value A is "
            f"nonzero only at position 1: Z = {z}, F = r(fl(1/({z})))", build)

    def _integers(self, a: int, b: int, p: int) -> dict:
        zmax = 1 if self.exact else 2
        n, vm = _sym()["n"], _sym()["vm"]
        top = 2 ** p
        return corner_bounds("integer-exactness", f"for all integers n in [{a}, {b}]: the "
                             "per-n integer families are <= 2^{p} (scores in units of beta = "
                             "2^10)", [("(V-1)^2", vm ** 2, top, False),
                                       ("2(V-1)", 2 * vm, top, False),
                                       (f"Z = cnt + {zmax} <= n + {zmax}", n + zmax, top, False)],
                             self._corner(b))

    def _float64(self, a: int, b: int) -> dict:
        vm = _sym()["vm"]
        return corner_bounds("float64-sums-exact", f"for all integers n in [{a}, {b}]: score "
                             "terms sum to at most 4 (V(n)-1)^2 < 2^52",
                             [("4 (V-1)^2", 4 * vm ** 2, 2 ** 52, True)], self._corner(b))

    def _readout(self, b: int, p: int) -> dict:
        from rnngap.verify.retrieval.hybrid_counting import theta
        t0 = time.perf_counter()
        ok, margin, detail = threshold_readout(b, p, hyb.counting_theta, z_offset=2)
        t = torch.arange(b + 1, dtype=torch.float64)
        same = bool(torch.equal(hyb.counting_theta(t), theta(t)))
        if not same:
            detail["builder_TH_differs_from_verifier_at"] = int(torch.nonzero(
                hyb.counting_theta(t) != theta(t)).flatten()[0])
        return lemma("readout", f"for every n <= {b}, count c and threshold t in [0, n]: "
                     "r(TH_t - F_c) > 0 iff c > t, |.| < 1, with F_c = r(fl(1/(c+2))) (F "
                     "nonincreasing, F_(t+1) < TH_t < F_t); the builder's TH(t) (a function of "
                     "t alone) equals the per-n verifier's recomputation for every t <= b"
                     + ("" if ok and same else f"; FAILS: {detail}"),
                     f"ONE exact enumeration of every c in [0, {b + 1}], t in [0, {b}] at p = "
                     f"{p} (F and TH depend on n only through p), as the model computes them",
                     ok and same, t0, value=margin, worst_threshold=detail.get("bad_t"))


def symbolic_copy_rnn(hc, vmax: int, p: int) -> tuple[bool, str]:
    """Evaluate the hybrid's (single, non-selective) RNN layer with symbolic tokens.

    Positions j = 1..K-1 (zero conv history) and a generic j >= K (window x_(j-K+1)..x_j); the
    embedding columns the in_proj reads must be TOK = x, TOK2 = x^2 (checked on ``hc``); B = 0
    (state identically 0). Returns (ok, detail): the layer output must be G = x_(j-1),
    G2 = x_(j-1)^2, A = [j = 1] and 0 on every other channel; every activation an integer
    polynomial with magnitude <= 2^p and every reduction's sum of |terms| < 2^52 when every
    token is <= vmax."""
    import sympy

    sd, cfg, ch = hc.state_dict, hc.config, hc.channels
    d, V = cfg.d_model, cfg.vocab_size
    if cfg.n_rnn_layers != 1 or cfg.selective:
        return False, "needs exactly one non-selective RNN layer"
    w = {k: sd[f"rnn.0.{k}"].double() for k in
         ("in_proj.weight", "in_proj.bias", "conv_weight", "conv_bias", "a", "B", "C", "D")}
    if any(bool((v != v.round()).any()) for v in w.values()):
        return False, "a non-integer RNN weight"
    if bool((w["B"] != 0).any()):
        return False, "B != 0 (a state that is not identically 0 is not supported)"
    E = sd["embed.weight"]
    t = torch.arange(V, dtype=torch.float64)
    W, bi, conv, cb, D = (w[k] for k in ("in_proj.weight", "in_proj.bias", "conv_weight",
                                         "conv_bias", "D"))
    read = [int(c) for c in torch.nonzero(W.abs().sum(0)).flatten()]
    emb_sym = {ch["TOK"]: lambda x: x, ch["TOK2"]: lambda x: x ** 2}
    if not set(read) <= set(emb_sym):
        return False, "in_proj reads a channel other than TOK, TOK2"
    if not (torch.equal(E[:, ch["TOK"]], t) and torch.equal(E[:, ch["TOK2"]], t * t)):
        return False, "embedding TOK/TOK2 columns are not (t, t^2)"
    written = [c for c in range(d) if bool((D[c] != 0).any() or (w["C"][c] != 0).any())]
    if bool((E[:, written] != 0).any()):
        return False, "the embedding writes a channel the RNN writes"
    K = conv.shape[1]
    if K < 2:  # the generic case j >= K must be a position with a predecessor (G = x_(j-1))
        return False, "conv width 1 cannot copy x_(j-1) (the builder uses width 2)"
    xs = sympy.symbols(f"x0:{K}", integer=True)      # xs[K-1-k] = x_(j-k)
    worst, sums = 0, 0

    def mag(e) -> int:
        poly = sympy.Poly(sympy.expand(e), *xs)
        if not all(cf.is_integer for cf in poly.coeffs()):
            raise ValueError(f"non-integer coefficient in {e}")
        return sum(abs(int(cf)) * vmax ** sum(m) for m, cf in zip(poly.monoms(), poly.coeffs()))

    want_rows = {ch["G"]: lambda j: xs[K - 2] if j >= 2 else 0,
                 ch["G2"]: lambda j: xs[K - 2] ** 2 if j >= 2 else 0,
                 ch["A"]: lambda j: 1 if j == 1 else 0}
    cases = list(range(1, K)) + [K]                  # K stands for every j >= K
    table_ok = True
    try:
        for j in cases:
            u = {}
            for k in range(K):
                if j - k < 1:
                    u[k] = [sympy.Integer(0)] * W.shape[0]
                    continue
                x = xs[K - 1 - k]
                terms = [[int(W[r, c]) * emb_sym[c](x) for c in read] + [int(bi[r])]
                         for r in range(W.shape[0])]
                u[k] = [sympy.expand(sum(tr)) for tr in terms]
                sums = max(sums, max(sum(mag(e) for e in tr) for tr in terms))
            v = []
            for r in range(W.shape[0]):
                terms = [int(conv[r, k]) * u[k][r] for k in range(K)] + [int(cb[r])]
                v.append(sympy.expand(sum(terms)))
                sums = max(sums, sum(mag(e) for e in terms))
            worst = max([worst] + [mag(e) for k in u for e in u[k]] + [mag(e) for e in v])
            for c in range(d):
                terms = [int(D[c, r]) * v[r] for r in range(len(v))]
                y = sympy.expand(sum(terms))
                sums = max(sums, sum(mag(e) for e in terms))
                worst = max(worst, mag(y))
                want = want_rows[c](j) if c in want_rows else 0
                table_ok &= sympy.expand(y - want) == 0
    except ValueError as e:
        return False, str(e)
    exact = worst <= 2 ** p and sums < 2 ** 52
    detail = (f"K = {K}; table {'as claimed' if table_ok else 'NOT as claimed'} at j = "
              f"{', '.join(map(str, cases[:-1]))}{', ' if K > 1 else ''}and generic j >= {K}; "
              f"largest activation {worst} (<= 2^{p}: {worst <= 2 ** p}), largest sum of "
              f"|terms| {sums} (< 2^52: {sums < 2 ** 52})")
    return table_ok and exact, detail
