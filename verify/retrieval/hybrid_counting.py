"""Exact verification of the Counting hybrid, threshold and exact-count forms (claim C6).

Claim: the hybrid of ``constructions.retrieval.hybrid.build_counting`` run in the p-bit arithmetic
of
``models.arith`` answers ``[#{j <= n: x_j = q} > t]`` on EVERY input ``x_1..x_n q t``
(exact-count form: answers ``#{j <= n: x_j = q}`` on EVERY input ``x_1..x_n q``).

1. Copy lemma (``verify.retrieval.hybrid_gram.copy_lemma``, checked on the weights): G(j) = x_{j-1},
   G2(j) = x_{j-1}^2 exactly for every input (0 at j = 1); A is fed by a constant tap only; the
   embedding is (t, t^2, TH(t)) with TH recomputed here ((t, t^2) in the exact form).
2. Enumeration: A(j) = [j = 1] at every position j <= L, every RNN activation an integer.
3. Attention weights recomputed from the formulas (q = beta (2Q, 1, Q^2) with (Q, Q^2) read from
   (G, G2) -- threshold -- or (TOK, TOK2) -- exact --, k = (G, -G2, A), v = A -> F, zero MLP,
   readout rows) and compared entry by entry.
4. Scores: s_j / beta = Q^2 - (G(j) - Q)^2 + Q^2 A(j) with Q = q (threshold: G(L) = x_{L-1} = q;
   exact: TOK(L) = q). z3 (score-gap lemma): a position with G(j) != Q and A(j) = 0 scores
   <= Q^2 - 1; position 1 (G = G2 = 0, A = 1) and every j >= 2 with G(j) = Q score exactly Q^2.
   Threshold: position L describes x_{L-1} = q too, so the maxima are cnt + 2 positions; exact:
   no position describes x_L, so they are cnt + 1. Integer exactness + underflow: those
   exponentials are 1, the rest exactly 0, so Z = cnt + 2 (cnt + 1) exactly and F = a_1 =
   r(fl(1 / Z)) =: F_c, c = cnt (the value is A: only position 1 contributes, times 1).
5. Readout. Threshold: enumeration, for every c and t in [0, n] as the model computes them (TH_t
   is r(TH(t)): the first residual addition rounds the embedding to p bits): F nonincreasing,
   F_{t+1} < TH_t < F_t. Then TH_t > F_c iff c > t; logit_1 = r(fl(TH_t - F_c)) has that sign
   (a correctly rounded difference of distinct floats is nonzero with that sign, and p-bit
   rounding of a normal number keeps it), logit_0 = 0, logit_{>=2} = -2 < logit_1 (|TH - F| < 1).
   Exact: F_c = r(fl(1/(c+1))) is the exact Transformer's anchor weight and the unembedding is
   its (shared side condition ``verify.retrieval.counting.exact_unembedding``), so the certificate
   ``verify.retrieval.counting.exact_readout`` applies verbatim: for every count c in [0, n] the
   p-bit
   logit of token c beats every other token's (band enumeration with sound float64 error
   bounds for any accumulation order, tails by monotonicity). As a cross-check the model's own
   unembedding (``Arith.linear``) is run on the residual carrying F_c: every count against every
   token when (n+1) V is small, a stated subset of counts otherwise.
6. Cross-checks: the actual hybrid end to end (exhaustive for tiny n, samples, adversarial:
   every count of the max token when affordable, else the extreme counts and sampled ones).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from rnngap.constructions.retrieval import hybrid as hyb
from rnngap.models.arith import PBitArith
from rnngap.verify import certificates as cert
from rnngap.verify.retrieval.counting import exact_readout, exact_unembedding
from rnngap.verify.retrieval.hybrid_gram import copy_lemma
from rnngap.verify.verdict import (
    ConstructionVerdict,
    cross_check,
    end_to_end,
    first_failure,
    side_condition,
)

END_TO_END_EXHAUSTIVE = 20000
#: token positions the per-count adversarial family may run end to end (about 3 s on 1 core)
FAMILY_BUDGET = 1 << 22
#: (count, token) logits the actual-unembedding cross-check may compute
READOUT_BUDGET = 1 << 25


def theta(t: torch.Tensor) -> torch.Tensor:
    """TH(t) = (2t + 5) / (2 (t+2) (t+3)) = (1/(t+2) + 1/(t+3)) / 2, float64."""
    return (2 * t + 5) / (2 * (t + 2) * (t + 3))


def _table(rows: np.ndarray, d: int, ch: dict[str, int], p: int) -> torch.Tensor:
    """The predicted residual entering attention: TH (threshold form only) is r(TH(t)) (the
    residual addition rounds it to p bits; integers <= 2^p are unchanged)."""
    x = torch.from_numpy(rows).double()
    out = torch.zeros(*rows.shape, d, dtype=torch.float64)
    out[..., ch["TOK"]], out[..., ch["TOK2"]] = x, x * x
    if "TH" in ch:
        out[..., ch["TH"]] = PBitArith(p).r(theta(x))
    out[:, 1:, ch["G"]], out[:, 1:, ch["G2"]] = x[:, :-1], x[:, :-1] ** 2
    out[:, 0, ch["A"]] = 1.0
    return out


def attention_ok(hc, exact: bool) -> bool:
    """Step 3 (the exact form's unembedding is the shared side condition, not checked here)."""
    ch, d, V, beta = hc.channels, hc.config.d_model, hc.config.vocab_size, hyb.BETA
    z = lambda *s: torch.zeros(*s, dtype=torch.float64)
    q, k, v, o, qb = z(3, d), z(3, d), z(3, d), z(d, 3), z(3)
    q[0, ch["TOK" if exact else "G"]], qb[1], q[2, ch["TOK2" if exact else "G2"]] = \
        2 * beta, beta, beta
    k[0, ch["G"]], k[1, ch["G2"]], k[2, ch["A"]] = 1, -1, 1
    v[0, ch["A"]], o[ch["F"], 0] = 1, 1
    a = "block.attn."
    want = {a + "q_proj.weight": q, a + "q_proj.bias": qb, a + "k_proj.weight": k,
            a + "k_proj.bias": z(3), a + "v_proj.weight": v, a + "v_proj.bias": z(3),
            a + "o_proj.weight": o, a + "o_proj.bias": z(d)}
    if not exact:
        wu, bu = z(V, d), torch.full((V,), -2.0, dtype=torch.float64)
        wu[1, ch["TH"]], wu[1, ch["F"]], bu[0], bu[1] = 1, -1, 0, 0
        want |= {"unembed.weight": wu, "unembed.bias": bu}
    sd = hc.state_dict
    return all(bool((x == 0).all()) for key, x in sd.items() if ".mlp." in key) and \
        all(torch.equal(sd[key], val) for key, val in want.items())


def _readout(n: int, p: int) -> tuple[bool, float, float]:
    """Step 5, threshold form: (ok, min |logit_1| at the boundary pairs, F_n)."""
    arith = PBitArith(p)
    c = torch.arange(0, n + 2, dtype=torch.float64)
    F = arith.div(torch.ones_like(c), arith.r(c + 2))        # Z = c + 2 is an exact integer
    TH = arith.r(theta(torch.arange(0, n + 1, dtype=torch.float64)))   # as in the residual
    ok = bool((F[1:] <= F[:-1]).all() and (F[1:n + 1] < TH[:n]).all() and (TH < F[:n + 1]).all())
    low = arith.r(TH - F[:n + 1])                   # c = t: must be < 0
    high = arith.r(TH[:n] - F[1:n + 1])             # c = t + 1: must be > 0
    ok &= bool((low < 0).all() and (high > 0).all() and (low > -1).all() and (high < 1).all())
    margin = float(torch.cat([low.abs(), high.abs()]).min())
    return ok, margin, float(F[n])


def _pick_counts(n: int, limit: int, seed: int) -> tuple[np.ndarray, str]:
    """Every count in [0, n] if at most ``limit``, else the extreme ones plus sampled ones."""
    if n + 1 <= limit:
        return np.arange(n + 1), f"all {n + 1} counts"
    edge = max(1, limit // 3)
    mid = np.random.default_rng(seed).choice(np.arange(edge, n + 1 - edge), limit - 2 * edge,
                                             replace=False)
    picked = np.unique(np.concatenate([np.arange(edge), np.arange(n + 1 - edge, n + 1), mid]))
    return picked, (f"{picked.size} of {n + 1} counts (0..{edge - 1}, {n + 1 - edge}..{n} and "
                    f"{mid.size} sampled, seed {seed})")


def _readout_actual(model, hc, n: int, p: int, seed: int) -> dict:
    """Cross-check of step 5 (exact form): the model's own p-bit unembedding on the residual
    (TOK, TOK2 = q, q^2 with q = V-1; G, G2 = the neighbour token; A = 0; F = F_c)."""
    arith, ch, V = PBitArith(p), hc.channels, hc.config.vocab_size
    counts, what = _pick_counts(n, max(1, READOUT_BUDGET // V), seed)
    c = torch.from_numpy(counts).double()
    h = torch.zeros(c.numel(), hc.config.d_model, dtype=torch.float64)
    h[:, ch["TOK"]], h[:, ch["TOK2"]] = V - 1, (V - 1) ** 2
    h[:, ch["G"]], h[:, ch["G2"]] = max(V - 2, 0), max(V - 2, 0) ** 2
    h[:, ch["F"]] = arith.div(torch.ones_like(c), arith.r(c + 1))
    got = torch.empty(c.numel(), dtype=torch.long)
    with torch.no_grad():
        for s in range(0, c.numel(), 256):
            got[s:s + 256] = arith.linear(h[s:s + 256], model.lm_head.weight,
                                          model.lm_head.bias).argmax(-1)
    bad = torch.nonzero(got != c.long()).flatten()
    out = {"inputs": f"readout through the model's p-bit unembedding: {what} x all {V} tokens"
           + (" (exhaustive)" if counts.size == n + 1 else " (sampled)"),
           "checked": int(counts.size), "failures": int(bad.numel())}
    if bad.numel():
        out["first_failure"] = {"input": f"count {int(counts[bad[0]])} (F_c residual)",
                                "expected": int(counts[bad[0]]), "got": int(got[bad[0]])}
    return out


def _exact_families(task, seed: int) -> tuple[np.ndarray, str]:
    """Adversarial rows of the exact form: the task's families for small n; otherwise q = V-1
    with c copies and the neighbouring token elsewhere, for the counts ``_pick_counts`` picks
    under ``FAMILY_BUDGET``, plus q = 0 (score Q^2 = 0) rows."""
    n, k = task.n, task.k
    if n <= 256:
        fams = task.adversarial()
        return np.concatenate(list(fams.values())), f"{', '.join(fams)} (all rows)"
    counts, what = _pick_counts(n, max(1, FAMILY_BUDGET // (n + 1)), seed)
    rows = []
    for q, fill in ((k - 1, max(k - 2, 0)), (0, min(1, k - 1))):
        for cnt in (counts if q else counts[:8]):
            x = np.full(n + 1, fill, np.int64)
            x[n - cnt:] = q
            rows.append(x)
    return np.stack(rows), f"q = V-1, neighbour filler, {what}; q = 0 for 8 counts"


def verify_counting_hybrid(task, precision: int | None = None, samples: int = 64,
                           seed: int = 0, hc=None) -> ConstructionVerdict:
    """Steps 1-6; returns the verdict dict (``verify.verdict.KEYS`` + recurrent state)."""
    from rnngap.verify.bounds.counts import count, log2_big

    t0 = time.perf_counter()
    hc = hyb.build_counting(task) if hc is None else hc
    if (hc.task, hc.n, hc.config.vocab_size) != ("counting", task.n, task.vocab_size()):
        raise ValueError(f"hybrid construction is for {hc.task} n={hc.n}, not counting "
                         f"n={task.n}")
    exact_form = bool(task.exact)
    if bool(hc.task_params.get("exact")) != exact_form or ("TH" in hc.channels) == exact_form:
        raise ValueError("hybrid construction and task disagree on the exact-count form")
    p = hc.precision_bits if precision is None else int(precision)
    arith = PBitArith(p)
    n, L, V, ch = task.n, task.seq_len(), task.vocab_size(), hc.channels
    model = hc.model()
    t = torch.arange(V, dtype=torch.float64)
    conds = copy_lemma(hc, {} if exact_form else {"TH": theta(t)})
    zeros = np.zeros((1, L), dtype=np.int64)
    rand = np.random.default_rng(seed).integers(0, V, (2, L))
    tr: list[dict] = []
    with torch.no_grad():
        h0 = model.residual(torch.from_numpy(zeros), arith, tr)
        h1 = model.residual(torch.from_numpy(rand), arith)
    ints = all(bool((x == torch.round(x)).all() and (x.abs() <= 2.0 ** p).all())
               for x in (tr[0]["u"], tr[0]["v"], tr[0]["h"]))
    d = hc.config.d_model
    readout_rows = ("unembedding logit_t = fl(2/(t+1)) F - fl(1/(t+1)^2)" if exact_form else
                    "readout logit_1 = TH - F, logit_0 = 0, logit_>=2 = -2")
    conds += [
        side_condition("rnn-constant-channels", bool(torch.equal(h0, _table(zeros, d, ch, p))),
                       f"enumerated at all {L} positions: A = [j = 1]"),
        side_condition("rnn-integers-exact", ints, f"every RNN activation is an integer <= 2^{p}"),
        side_condition("copy-lemma (sanity run)", bool(torch.equal(h1, _table(rand, d, ch, p))),
                       "2 random rows: residual = the predicted table exactly"),
        side_condition("attention-weights", attention_ok(hc, exact_form),
                       "counting head (query " + ("TOK, TOK2" if exact_form else "G, G2")
                       + "), zero MLP" + ("" if exact_form else f", {readout_rows}")),
    ]
    if exact_form:
        conds.append(exact_unembedding(hc.state_dict["unembed.weight"],
                                       hc.state_dict["unembed.bias"], ch["F"]))
    K, z_max = V - 1, n + (1 if exact_form else 2)
    bounds = {"token squares and scores (V-1)^2": K * K, "query 2(V-1)": 2 * K,
              f"Z = cnt + {z_max - n} <= n + {z_max - n}": z_max}
    exact = cert.integer_exactness(bounds, p, scale_bits=10)
    conds.append(side_condition("float64-sums-exact", 4 * K * K < 2 ** 52,
                                f"score terms sum to at most 4 (V-1)^2 = {4 * K * K} < 2^52"))
    certs = [exact, cert.underflow_lemma(hyb.BETA, p),
             {**cert.score_gap_lemma(), "name": "match-gap", "statement": "for all integers "
              "G != Q: 2QG - G^2 <= Q^2 - 1 (i = Q, j = G): a non-matching position scores "
              ">= beta below Q^2"},
             cert.exact_positive("exponent-gap", {"beta": hyb.BETA}, "beta - 746")]
    special = None
    if exact_form:
        readout, margin, f_min = exact_readout(n, V, p)
        certs.insert(3, readout)
        special = {readout["name"]: f"readout not resolved at p={p}: the logit of count "
                   f"{readout.get('worst_threshold')} is not provably the largest"}
    else:
        ok, margin, f_min = _readout(n, p)
        conds.append(side_condition("readout-enumerated", ok, f"for all c, t in [0, {n}]: "
                                    "F_(t+1) < TH_t < F_t, so r(TH_t - F_c) > 0 iff c > t "
                                    "(|.| < 1)"))
    failure = first_failure(exact, conds, certs, p, special=special)
    t_proof = time.perf_counter() - t0
    if exact_form:
        fam, fam_what = _exact_families(task, seed)
    else:
        fam = (np.concatenate([f[:16] for f in task.adversarial().values()]) if n <= 256
               else None)
    checks, witness = end_to_end(task, model, arith, samples, seed,
                                 None if exact_form else fam, "hybrid", END_TO_END_EXHAUSTIVE)
    if exact_form:
        checks.append(cross_check(task, model, arith, fam, f"hybrid: adversarial ({fam_what})",
                                  batch=max(1, min(512, (1 << 21) // L))))
        checks.append(_readout_actual(model, hc, n, p, seed))
        witness = witness or next((ch_["first_failure"] for ch_ in checks
                                   if "first_failure" in ch_), None)
    if failure is None and witness is not None:
        failure = f"end-to-end cross-check contradicts the proof (a bug): {witness}"
    elif failure is not None and witness is None:
        failure += ("; no input tried went wrong: the conditions are sufficient, not "
                    "necessary")
    scalars = model.backbone.state_scalars()
    bound_task = "counting-exact" if exact_form else "counting"
    lb = log2_big(bound_task, n, "query-last", task.k, 2)
    if lb is None:
        lb = count(bound_task, n, "query-last", task.k).log2_classes
    readout_what = (f"F_c for all {n + 1} counts and the logits of all {V} tokens (band "
                    "enumeration + monotone tails)" if exact_form else
                    f"F_c and TH_t for all {n + 1} counts and thresholds")
    return {
        "task": "counting", "n": n, "model": "hybrid", "verified": failure is None,
        "precision_bits": p, "precision_needed_formula": hc.precision_formula,
        "precision_claimed": hc.precision_bits, **hc.sizes(), "min_target_attention": f_min,
        "min_logit_margin": margin,
        "enumerated": (f"the RNN's constant-fed channel at all {L} positions and every tap "
                       f"(copy lemma); {readout_what} at p={p}; recurrent state {scalars} "
                       f"scalars = {scalars * p} bits vs lower bound {lb:.6g} bits for any "
                       "pure RNN"),
        "certificates": certs, "side_conditions": conds, "cross_checks": checks,
        "failure": failure, "witness": witness, "convention": task.convention,
        "scalars": hc.scalars, "integer_bounds": bounds,
        "recurrent_state_scalars": scalars, "recurrent_state_bits": scalars * p,
        "lower_bound_bits": lb, "lower_bound_formula": "log2 of the verify.bounds fooling-set "
        f"count ({bound_task}, query-last)", "seconds_proof": round(t_proof, 3),
        "seconds_cross_checks": round(time.perf_counter() - t0 - t_proof, 3),
        "seconds": round(time.perf_counter() - t0, 3)}
