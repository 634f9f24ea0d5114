"""Exact verification of the Counting construction (claim C2 for Counting), both forms.

Claim: the Transformer of ``constructions.retrieval.counting`` run in the p-bit arithmetic of
``models.arith`` answers ``[#{j <= n: x_j = q} > t]`` on EVERY input ``x_1..x_n q t``.

Argument (each step is computed or checked below and recorded in the verdict):

1. Structure (checked on the weights): E[t] = (t, t^2, theta_t) on TOK/TOK2/TH; the positional
   table is (j, j^2, [j = n+1], [j = n+2]) on POS/POS2/ANCHOR/EXCL (recomputed here); layer-1
   queries/keys read positions only, values TOK only, W_O writes PREV only; layer-2 queries read
   PREV only, keys TOK/TOK2/EXCL, values ANCHOR only, W_O writes F only; nothing else writes TH
   or F; MLPs zero; unembedding rows: token 0 zero, token 1 = TH - F, tokens >= 2 bias -2.
2. Enumeration: every position's layer-1 query/key and every token's value are computed at p
   bits with sound enclosures and must equal the formulas.
3. Integer exactness (``certificates.integer_exactness``) and the z3 pointer and match lemmas
   (m = 1, no tie-break), with the underflow lemma: layer 1 copies q to the last position
   exactly; in layer 2 exactly cnt + 1 exponentials are 1 (the occurrences of q among x_1..x_n
   and the anchor n+1, whose token is q; the threshold position n+2 is excluded) and the others
   are exactly 0, so Z = cnt + 1 exactly and F = r(fl(1 / (cnt + 1))) =: F_cnt.
4. Per-count and per-threshold enumeration: F_c for every c in [0, n] and TH_t = r(theta_t) for
   every t in [0, n] are computed exactly as the model computes them. Checked: F is
   nonincreasing, TH_t < F_t for every t, and F_{t+1} < TH_t for every t < n. Lemma: then
   TH_t > F_c iff c > t (c >= t+1 gives F_c <= F_{t+1} < TH_t; c <= t gives F_c >= F_t > TH_t).
5. Readout: logit_1 = r(fl(TH_t - F_c)) has the sign of TH_t - F_c (a correctly rounded
   difference of distinct floats is nonzero with that sign; rounding keeps it), logit_0 = 0,
   logit_{>=2} = -2, so the argmax is 1 iff TH_t > F_c iff c > t. sympy checks the margins
   exactly.
Exact-count variant (row x_1..x_n q -> the count): ONE layer, the counting head alone (its
query reads q from the last token, which is q itself; no pointer layer, no pointer lemma); the
same steps otherwise with L = n+1, the anchor at the last position and no EXCL; step 4-5 is
replaced by ``_readout_exact``: for every count c,
the p-bit logit of token c provably exceeds that of every other token (band enumeration with
sound float64 error bounds, tails by monotonicity of the bounding quadratic).
6. Cross-checks: end-to-end p-bit runs (every input for tiny n; samples and adversarial
   families otherwise) within a work budget; reported, not used by the proof.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from rnngap.constructions.retrieval import counting as cc
from rnngap.constructions.retrieval.cgram import BETA, bits_for
from rnngap.models.arith import PBitArith, round_to_bits
from rnngap.tasks.counting import CountingTask
from rnngap.verify import certificates as cert
from rnngap.verify.interval import linear_interval
from rnngap.verify.retrieval.cgram import ChunkedPredictor, reads_only, run_checks
from rnngap.verify.verdict import ConstructionVerdict, cross_check, first_failure, side_condition


def structure_conditions(c, n: int, p: int, exact: bool, enumerate_layer1: bool = True
                         ) -> list[dict]:
    """Steps 1 and 2 (the exact-count variant: L = n+1, no EXCL, queries read TOK).

    ``enumerate_layer1=False`` leaves out step 2's position-by-position enclosure of the
    layer-1 queries and keys (the range prover of ``verify.every_n.counting`` proves them
    symbolically for every position and only needs the weights and tables checked here)."""
    sd, ch = c.state_dict, c.channels
    vocab, L = c.config.vocab_size, n + (1 if exact else 2)
    t = torch.arange(vocab, dtype=torch.float64)
    jj = torch.arange(1, L + 1, dtype=torch.float64)
    E, P = sd["embed.weight"], sd["pos_table"]
    g = {name: ch[name] for name in ch}
    a1, a2 = "blocks.0.attn.", f"blocks.{cc.COUNT_LAYER[exact]}.attn."
    anchor = (jj == n + 1).double()
    excl = (jj == n + 2).double()
    wu, bu = sd["unembed.weight"], sd["unembed.bias"]
    qsrc = g["TOK"] if exact else g["PREV"]
    if exact:
        unembed = exact_unembedding(wu, bu, g["F"])
    else:
        unembed = side_condition("unembedding", bool(
            (wu[0] == 0).all() and bu[0] == 0 and bu[1] == 0
            and reads_only(wu[1:2], [g["TH"], g["F"]]) and wu[1, g["TH"]] == 1
            and wu[1, g["F"]] == -1 and (wu[2:] == 0).all() and (bu[2:] == -2).all()),
            "logit_0 = 0, logit_1 = TH - F, logit_t = -2 for t >= 2")
    depth = side_condition("depth", c.config.n_layers == (1 if exact else 2),
                           "exact count: ONE layer (the counting head; q is the last token "
                           "itself)" if exact else "two layers: pointer head, counting head")
    conds = [
        depth,
        side_condition("embedding", reads_only(E, [g["TOK"], g["TOK2"], g["TH"]]) and bool(
            (E[:, g["TOK"]] == t).all() and (E[:, g["TOK2"]] == t * t).all()
            and (E[:, g["TH"]] == cc.theta(t)).all()), "E[t] = (t, t^2, theta_t)"),
        side_condition("positions", reads_only(P, [g["POS"], g["POS2"], g["ANCHOR"], g["EXCL"]])
                       and bool((P[:, g["POS"]] == jj).all() and (P[:, g["POS2"]] == jj * jj).all()
                                and (P[:, g["ANCHOR"]] == anchor).all()
                                and (P[:, g["EXCL"]] == excl).all()),
                       "P[j] = (j, j^2, [j = n+1], [j = n+2]), recomputed here"),
        side_condition("layer1", reads_only(sd[a1 + "q_proj.weight"], [g["POS"]])
                       and reads_only(sd[a1 + "k_proj.weight"], [g["POS"], g["POS2"]])
                       and reads_only(sd[a1 + "v_proj.weight"], [g["TOK"]])
                       and reads_only(sd[a1 + "o_proj.weight"].T, [g["PREV"]])
                       and bool((sd[a1 + "o_proj.bias"] == 0).all()
                                and (sd[a1 + "v_proj.bias"] == 0).all()),
                       "layer 1: positional q/k, value TOK, writes PREV only")
        if not exact else None,
        side_condition("layer2", reads_only(sd[a2 + "q_proj.weight"], [qsrc])
                       and reads_only(sd[a2 + "k_proj.weight"], [g["TOK"], g["TOK2"], g["EXCL"]])
                       and reads_only(sd[a2 + "v_proj.weight"], [g["ANCHOR"]])
                       and reads_only(sd[a2 + "o_proj.weight"].T, [g["F"]])
                       and bool((sd[a2 + "q_proj.weight"][0, qsrc] == 2 * BETA)
                                and (sd[a2 + "q_proj.bias"] == torch.tensor([0, BETA, BETA],
                                                                            dtype=torch.float64)
                                     ).all()
                                and (sd[a2 + "k_proj.weight"][:, [g["TOK"], g["TOK2"], g["EXCL"]]]
                                     == torch.diag(torch.tensor([1.0, -1.0, -1.0],
                                                                dtype=torch.float64))).all()
                                and (sd[a2 + "k_proj.bias"] == 0).all()
                                and (sd[a2 + "v_proj.weight"][0, g["ANCHOR"]] == 1)
                                and int(sd[a2 + "v_proj.weight"].count_nonzero()) == 1
                                and (sd[a2 + "v_proj.bias"] == 0).all()
                                and (sd[a2 + "o_proj.bias"] == 0).all()
                                and int(sd[a2 + "o_proj.weight"].count_nonzero()) == 1
                                and sd[a2 + "o_proj.weight"][g["F"], 0] == 1),
                       "counting head: s = beta(2 Q TOK - TOK2 - EXCL), Q = PREV (TOK if "
                       "exact), value ANCHOR"),
        side_condition("mlp-zero", all(bool((v == 0).all()) for k_, v in sd.items()
                                       if ".mlp." in k_), "MLPs output exactly 0"),
        unembed,
    ]
    conds = [x for x in conds if x is not None]
    if exact or not enumerate_layer1:
        return conds
    qlo, qhi = linear_interval(P, P, sd[a1 + "q_proj.weight"], sd[a1 + "q_proj.bias"], p)
    klo, khi = linear_interval(P, P, sd[a1 + "k_proj.weight"], sd[a1 + "k_proj.bias"], p)
    vlo, vhi = linear_interval(E, E, sd[a1 + "v_proj.weight"], sd[a1 + "v_proj.bias"], p)
    ok = bool((qlo == qhi).all() and (klo == khi).all() and (vlo == vhi).all()
              and (qlo[:, 0] == BETA * (jj - 1)).all() and (qlo[:, 1] == BETA).all()
              and (klo[:, 0] == 2 * jj).all() and (klo[:, 1] == -jj * jj).all()
              and (vlo[:, 0] == t).all() and (qlo[:, 2] == 0).all() and (klo[:, 2] == 0).all())
    conds.append(side_condition("layer1-enumerated", ok, f"all {L} positions: p-bit q = "
                                "beta(j-1, 1), k = (2j, -j^2); all tokens: v = t; exact"))
    return conds


def _readout(c, n: int, p: int) -> tuple[dict, float, float]:
    """Steps 4-5: enumerate F_c and TH_t exactly; returns (certificate, margin, F_n)."""
    t0 = time.perf_counter()
    cnt = torch.arange(0, n + 1, dtype=torch.float64)
    ones = torch.ones_like(cnt)
    F = round_to_bits(ones / round_to_bits(cnt + 1, p), p)          # r(fl(e / Z)), e = 1
    TH = round_to_bits(c.state_dict["embed.weight"][: n + 1, c.channels["TH"]].clone(), p)
    mono = bool((F[1:] <= F[:-1]).all())
    below = TH < F                          # count c = t: answer 0 needs TH_t <= F_t (strict)
    above = F[1:] < TH[:-1]                 # count t+1: answer 1 needs F_{t+1} < TH_t
    ok = mono and bool(below.all()) and bool(above.all())
    good = below.clone()
    good[:-1] &= above
    ok = ok and bool(good.all())
    bad_t = None if bool(good.all()) else int(torch.nonzero(~good).flatten()[0])
    gaps = torch.cat([F - TH, TH[:-1] - F[1:]])        # the answer-0 and answer-1 margins
    margin = float(gaps.min())
    return ({"name": "readout", "statement": (
        f"for all counts c and thresholds t in [0,{n}]: r(theta_t) > F_c iff c > t, with "
        "F_c = r(fl(1/(c+1))) (F nonincreasing; TH_t < F_t; F_{t+1} < TH_t)"),
        "method": f"exact enumeration of all {n + 1} counts and {n + 1} thresholds at p={p}; "
        "float comparisons are exact",
        "result": "proved" if ok else "FAILED", "value": margin,
        "worst_threshold": bad_t, "seconds": round(time.perf_counter() - t0, 3)},
        margin, float(F[-1]))


UNIT = 2.0 ** -53


def exact_unembedding(wu: torch.Tensor, bu: torch.Tensor, f_col: int) -> dict:
    """Side condition of the exact-count readout (shared with
    ``verify.retrieval.hybrid_counting``): the
    unembedding reads only channel ``f_col``, with weight fl(2/(t+1)) and bias -fl(1/(t+1)^2)."""
    t = torch.arange(wu.shape[0], dtype=torch.float64)
    return side_condition("unembedding", reads_only(wu, [f_col]) and bool(
        (wu[:, f_col] == 2.0 / (t + 1)).all() and (bu == -1.0 / ((t + 1) * (t + 1))).all()),
        "logit_t = fl(2/(t+1)) F - fl(1/(t+1)^2)")


def _readout_exact(c, n: int, vocab: int, p: int, band: int = 2) -> tuple[dict, float, float]:
    """``exact_readout`` (``c``, the construction, is not needed: the readout depends on n, V
    and p only)."""
    return exact_readout(n, vocab, p, band)


def exact_readout(n: int, vocab: int, p: int, band: int = 2) -> tuple[dict, float, float]:
    """Exact-count readout: for every count c in [0, n] the computed logit of token c beats
    every other token's, for every accumulation order (fused or not) of the unembedding.

    With u_t = 1/(t+1), G_t = 2 u_t F_c - u_t^2 (real). The model's float64 value y_t (stored
    weights fl(2/(t+1)), -fl(1/(t+1)^2), then one product and one sum, fused or not) is within
    4.01 UNIT (2 u_t F + u_t^2) of G_t, and our float64 evaluation g_t of G_t within 8 UNIT of
    it; S_t = 32 UNIT (2 g-terms) covers both plus the tail function's 16 UNIT slack. Band
    |t - c| <= band + 1: computed bounds r_p(g_t + S_t) < r_p(g_c - S_c) (rounding is monotone).
    Tails: U(u) = (2 + 32 UNIT) u F - (1 - 16 UNIT) u^2 bounds y_t; it increases for
    u <= F (upper tail t > c + band + 1, checked u_{c+band+1} < F) and decreases for
    u >= (1 + 16 UNIT) F / (1 - 16 UNIT) (lower tail, checked), so the band's edge bounds the
    whole tail.
    """
    t0 = time.perf_counter()
    f64 = torch.float64
    cnt = torch.arange(0, n + 1, dtype=f64)
    F = round_to_bits(torch.ones_like(cnt) / round_to_bits(cnt + 1, p), p)
    off = torch.arange(-band - 1, band + 2)
    tt = cnt[:, None].long() + off[None, :]                       # (n+1, 2 band + 3)
    inside = (tt >= 0) & (tt < vocab)
    u = 1.0 / (tt.clamp(0, vocab - 1).to(f64) + 1)
    g = 2 * u * F[:, None] - u * u
    S = 32 * UNIT * (2 * u * F[:, None] + u * u) * (1 + 2.0 ** -40)
    up = round_to_bits(torch.nextafter(g + S, torch.tensor(torch.inf, dtype=f64)), p)
    lo = round_to_bits(torch.nextafter(g - S, torch.tensor(-torch.inf, dtype=f64)), p)
    me = band + 1
    lo_c = lo[:, me]
    others = inside.clone()
    others[:, me] = False
    worst = torch.where(others, up, torch.tensor(-torch.inf, dtype=f64)).amax(1)
    band_ok = bool((worst < lo_c).all())
    u_hi = 1.0 / (cnt + band + 2) * (1 + 4 * UNIT)                 # >= real u_{c+band+1}
    upper_ok = bool((u_hi < F * (1 - 2 * UNIT)).all())
    has_low = cnt - band - 1 >= 0
    u_lo = 1.0 / (cnt - band).clamp_min(1) * (1 - 4 * UNIT)       # <= real u_{c-band-1}
    need = (1 + 16 * UNIT) * F / (1 - 16 * UNIT) * (1 + 4 * UNIT)
    lower_ok = bool(((u_lo > need) | ~has_low).all())
    ok = band_ok and upper_ok and lower_ok
    margin = float((lo_c - worst).min())
    bad = torch.nonzero(worst >= lo_c).flatten()
    return ({"name": "readout-exact", "statement": (
        f"for every count c in [0,{n}] and token t != c in [0,{vocab - 1}]: the p-bit logit "
        "r(fl(2F_c/(t+1) - 1/(t+1)^2)) of t is below that of c (any accumulation order)"),
        "method": f"enumerated band |t-c| <= {band + 1} for all {n + 1} counts with sound float64 "
        "error bounds; tails by monotonicity of the bounding quadratic (conditions checked)",
        "result": "proved" if ok else "FAILED", "value": margin,
        "worst_threshold": int(bad[0]) if bad.numel() else None,
        "seconds": round(time.perf_counter() - t0, 3)}, margin, float(F[-1]))


def _families(task: CountingTask) -> dict[str, np.ndarray]:
    if task.n <= 256:
        return {k: v[:8] for k, v in task.adversarial().items()}
    n, k = task.n, task.k
    top, rows = k - 1, []
    for cnt, t in ((n, n - 1), (n, n), (n // 2 + 1, n // 2), (n // 2, n // 2), (1, 0), (0, 0)):
        x = np.zeros(n, np.int64)
        x[n - cnt:] = top
        rows.append(np.concatenate([x, [top, t]]))
    arr = np.stack(rows)
    if task.exact:
        return {"counts n, n/2+1, n/2, 1, 0 of the max token": arr[:, :-1]}
    return {"counts at the threshold t and t+1 (max token, at the end)": arr}


def _witness_families(task: CountingTask) -> dict[str, np.ndarray]:
    """Inputs where too few bits merge adjacent scores: large q, neighbouring tokens, and the
    threshold token next to the q token (the layer-1 pointer at the last position)."""
    n, k = task.n, task.k
    rows = []
    for q in sorted({k - 1, max(k - 2, 0), 0}):
        for fill in sorted({max(q - 1, 0), min(q + 1, k - 1), q}):
            for cnt in sorted({0, 1, n // 2, n}):
                x = np.full(n, fill, np.int64)
                x[:cnt] = q
                real = int((x == q).sum())
                for t in sorted({max(real - 1, 0), real, 0, n}):
                    rows.append(np.concatenate([x, [q, t]]))
    arr = np.stack(rows)
    return {"near-collisions of scores": arr[:, :-1] if task.exact else arr}


def verdict_form(task: CountingTask) -> dict[str, str]:
    """The keys ``rnngap verify counting`` adds to every verdict (either model): which form
    was proved, and only that form's convention (the card's ``verdict_form``)."""
    exact = bool(task.exact)
    return {"form": "exact" if exact else "threshold",
            "convention": ("row x_1..x_n q -> #{j: x_j = q} (exact-count form)" if exact
                           else "row x_1..x_n q t (threshold form; t in [0,n]) -> 1 if "
                           "#{j: x_j = q} > t else 0")}


def verify_counting(task: CountingTask, precision: int | None = None, samples: int = 64,
                    seed: int = 0) -> ConstructionVerdict:
    """Run steps 1-6 of the module docstring; returns the verdict dict (``verdict.KEYS``)."""
    t0 = time.perf_counter()
    c = cc.build(task)
    p = c.precision_bits if precision is None else int(precision)
    arith = PBitArith(p)
    n, k, vocab = task.n, task.k, task.vocab_size()
    conds = structure_conditions(c, n, p, task.exact)
    bounds = cc.integer_bounds(n, vocab, k)
    if task.exact:
        bounds = {"positions (n+1)^2": (n + 1) ** 2, "layer-2 scores (V-1)^2": (vocab - 1) ** 2,
                  "layer-2 query 2K": 2 * (k - 1)}
    exact = cert.integer_exactness(bounds, p, scale_bits=10)
    conds.append(side_condition("float64-sums-exact", 3 * (n + 2) ** 2 + 3 * vocab ** 2 < 2 ** 52,
                                "sums of |terms| of every integer reduction < 2^52"))
    readout, margin, f_n = (_readout_exact(c, n, vocab, p) if task.exact else
                            _readout(c, n, p))
    pointer = [] if task.exact else [cert.pointer_lemma()]   # the exact form has no pointer
    certs = [exact, cert.underflow_lemma(BETA, p), *pointer,
             cert.match_lemma(1, tiebreak=False), readout,
             cert.exact_positive("exponent-gap", {"beta": BETA}, "beta - 746")]
    worst = max(exact.get("exceeds") or [None], key=lambda name: bounds.get(name, 0))
    readout_msg = f"readout not resolved at p={p}: " + (
        f"the logit of count {readout.get('worst_threshold')} is not provably the largest"
        if task.exact else "r(theta_t) does not separate counts t and t+1 (first bad t = "
        f"{readout.get('worst_threshold')})")
    failure = first_failure(
        exact, conds, certs, p, exact_detail=f"{worst} = {bounds.get(worst)}",
        exact_hint=f"(needs p >= {bits_for(bounds[worst])})" if worst in bounds else "",
        special={readout["name"]: readout_msg})
    t_proof = time.perf_counter() - t0
    model = c.model()
    checks = run_checks(task, model, arith, 1, samples, seed, _families(task))
    witness = None
    if failure is not None:
        witness = next((ch["first_failure"] for ch in checks if "first_failure" in ch), None)
        if witness is None:
            fam = _witness_families(task)["near-collisions of scores"]
            cap = max(1, int(4e8 // (task.seq_len() ** 2)))
            res = cross_check(task, ChunkedPredictor(model), arith, fam[:cap],
                              "witness search: near-collisions of scores", batch=8)
            checks.append(res)
            witness = res.get("first_failure")
        if witness is None:
            failure += ("; no input tried went wrong: the exactness/readout conditions are "
                        "sufficient, not necessary (an inexact score may keep its argmax)")
    elif any(ch["failures"] for ch in checks):
        failure = "end-to-end cross-check contradicts the proof (a bug): " + str(
            next(ch["first_failure"] for ch in checks if ch["failures"]))
    return {
        "task": "counting", "n": n, "verified": failure is None, "precision_bits": p,
        "precision_needed_formula": c.precision_formula, "precision_claimed": c.precision_bits,
        **c.sizes(),
        "min_target_attention": f_n,
        "min_logit_margin": margin,
        "enumerated": ((f"all {n + 2} positions (layer-1 queries/keys), " if not task.exact
                        else "") + f"all {vocab} token values, "
                       f"all {n + 1} counts (anchor weight F_c) and all {n + 1} thresholds "
                       f"(r(theta_t)) at p={p} bits; attention rows proved exactly uniform on "
                       "the occurrences of q plus the anchor, for every data string"),
        "certificates": certs, "side_conditions": conds, "cross_checks": checks,
        "failure": failure, "witness": witness, "convention": task.convention,
        "scalars": c.scalars, "integer_bounds": bounds, "seconds_proof": round(t_proof, 3),
        "seconds_cross_checks": round(time.perf_counter() - t0 - t_proof, 3),
        "seconds": round(time.perf_counter() - t0, 3)}
