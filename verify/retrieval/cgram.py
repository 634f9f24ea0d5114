"""Exact verification of the c-gram construction (claim C2), and the shared gram verifier (AR).

Claim: the Transformer of ``constructions.retrieval.cgram`` run in the p-bit arithmetic of
``models.arith`` answers x_{s*+c-1} (s* the LAST start of the query (c-1)-gram that has a
following token) on EVERY valid input of length n.

Argument (each step is computed or checked below and recorded in the verdict):

1. Structure (checked on the weights): E[t] = (t, t^2) on TOK/TOK2 only; the positional table is
   (j, j^2, EXCL(j)) on POS/POS2/EXCL only, with EXCL recomputed here from the task definition;
   layer-1 queries and keys read positions only (data-independent), its values read TOK/TOK2
   only and W_O writes head r into PREV_r/PREV2_r; layer-2 keys read PREV/PREV2/POS/EXCL, queries
   read TOK/PREV only, values TOK only, W_O writes Y only; unused heads and the MLPs are zero;
   the unembedding row of token t is (2t on Y, bias -t^2).
2. Enumeration (data-independent part): the p-bit layer-1 query of every position and head, the
   key of every position and the value of every token are computed with sound enclosures
   (``verify.interval.linear_interval``) and must equal the formulas exactly.
3. Integer exactness: every activation is an integer (scores: an integer times beta = 2^10);
   its magnitude is bounded by the formulas of ``constructions.retrieval.cgram.integer_bounds`` and
   each
   bound is <= 2^p, so every p-bit rounding is the identity and every float64 reduction is
   exact in any order (all partial sums stay below 2^53 times the scale; checked).
4. Attention is exactly hard: z3 proves the pointer lemma (layer 1) and the match lemma
   (layer 2), so every non-target score is at least beta = 1024 below the row maximum; the
   underflow lemma makes those weights exactly 0 and the target weight exactly 1. Hence
   PREV_r(j) = x_{j-r} (j > r) and Y = x_{j*} with j* the last position that ends a matching
   c-gram of the data (EXCL removes j < c and the query positions j > n).
5. Decoding: z3 proves 2tY - t^2 <= Y^2 - 1 for all integers t != Y; logits are exact, so the
   argmax is Y with margin >= 1.
6. Cross-checks: end-to-end p-bit runs (every input for tiny n; samples and adversarial
   families otherwise) within a work budget; they are reported, the proof does not use them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from rnngap.constructions.retrieval import cgram as gram
from rnngap.models.arith import PBitArith
from rnngap.verify import certificates as cert
from rnngap.verify.interval import linear_interval
from rnngap.verify.verdict import ConstructionVerdict, cross_check, first_failure, side_condition

END_TO_END_EXHAUSTIVE = 20000
WORK_BUDGET = 2e7     # layer-1 attention entries (rows x keys x heads) spent on end-to-end runs


def reads_only(weight: torch.Tensor, allowed: list[int]) -> bool:
    """True iff ``weight`` (out, d_model) has no nonzero entry outside the ``allowed`` columns."""
    mask = torch.ones(weight.shape[1], dtype=torch.bool)
    mask[allowed] = False
    return bool((weight[:, mask] == 0).all())


def block_chunked(block, h: torch.Tensor, arith, chunk: int) -> torch.Tensor:
    """``block(h, arith)`` over every position, computing attention rows in chunks with the
    model's own ``qkv``/``attend``/``merge``/``mlp`` (the full L x L score matrix never exists).
    Equal to the unchunked pass up to float64 accumulation order (irrelevant when exact)."""
    attn = block.attn
    T = h.shape[1]
    q, k, v = attn.qkv(h, torch.arange(1, T + 1), arith)
    outs = [attn.attend(q[..., s:min(T, s + chunk), :], k[..., :min(T, s + chunk), :],
                        v[..., :min(T, s + chunk), :], s, arith) for s in range(0, T, chunk)]
    h = arith.add(h, attn.merge(torch.cat(outs, -2), arith))
    return arith.add(h, block.mlp(h, arith))


class ChunkedPredictor:
    """Wraps a Transformer: ``predict`` = argmax of the last logits, every layer but the last
    over all positions (row-chunked), the last layer at the final position only."""

    def __init__(self, model, chunk: int = 256):
        self.model, self.chunk = model, chunk

    def predict(self, tokens: torch.Tensor, arith=None) -> torch.Tensor:
        m = self.model
        h = m.embed_tokens(tokens, arith)
        for block in m.blocks[:-1]:
            h = block_chunked(block, h, arith, self.chunk)
        h = m.blocks[-1](h, arith, last_only=True)
        return m.logits(m.final_norm(h), arith)[:, -1, :].argmax(-1)


def small_space(task) -> bool:
    """num_inputs() <= END_TO_END_EXHAUSTIVE, without computing num_inputs for huge spaces
    (V^L bounds it; counting c-gram inputs exactly can be slow for large c)."""
    return task.vocab_size() ** task.seq_len() <= 10**9 and \
        task.num_inputs() <= END_TO_END_EXHAUSTIVE


def run_checks(task, model, arith, heads: int, samples: int, seed: int,
               families: dict[str, np.ndarray]) -> list[dict]:
    """End-to-end p-bit runs within ``WORK_BUDGET``; what was skipped is reported."""
    L = task.seq_len()
    per_row = L * (L + 1) / 2 * heads
    budget = int(WORK_BUDGET // per_row)
    pred = ChunkedPredictor(model)
    checks: list[dict] = []
    if small_space(task):
        every = np.concatenate(list(task.enumerate()))
        return [cross_check(task, pred, arith, every, "every input (exhaustive)", batch=512)]
    if budget < 1:
        return [{"inputs": f"none: one end-to-end p-bit run costs {per_row:.3g} layer-1 "
                 f"attention entries, over the work budget {WORK_BUDGET:.3g} (the proof does "
                 "not use cross-checks)", "checked": 0, "failures": 0}]
    take = min(samples, max(budget // 2, 1))
    rows, _ = task.sample(max(take, 1), seed)
    checks.append(cross_check(task, pred, arith, rows[:take], f"{take} of {samples} requested "
                              f"samples (seed {seed}; work budget)", batch=8))
    left = max(budget - take, 1)
    for name, fam in families.items():
        use = fam[: max(1, min(len(fam), left // max(1, len(families))))]
        checks.append(cross_check(task, pred, arith, use, f"adversarial: {name} "
                                  f"({len(use)} of {len(fam)} rows)", batch=8))
    return checks


def layer2_form(c, m: int, W: int, T: int) -> bool:
    """The layer-2 head-1 maps are exactly those of the match lemma (rebuilt here):
    q = beta (2W Q_1..Q_m, W, T, W) with Q_1 = TOK, Q_r = PREV_{r-1}; k = (PREV_1..PREV_m,
    -sum_r PREV2_r, POS, -EXCL); heads 2..m of layer 2 are zero."""
    sd, ch, d = c.state_dict, c.channels, c.config.d_model
    a2 = "blocks.1.attn."
    f64 = torch.float64
    D = c.config.d_head
    wq, bq = torch.zeros(m * D, d, dtype=f64), torch.zeros(m * D, dtype=f64)
    wk = torch.zeros(m * D, d, dtype=f64)
    for r in range(1, m + 1):
        wq[r - 1, ch["TOK"] if r == 1 else ch[f"PREV_{r - 1}"]] = 2 * gram.BETA * W
        wk[r - 1, ch[f"PREV_{r}"]] = 1.0
        wk[m, ch[f"PREV2_{r}"]] = -1.0
    bq[m], bq[m + 1], bq[m + 2] = gram.BETA * W, gram.BETA * T, gram.BETA * W
    wk[m + 1, ch["POS"]], wk[m + 2, ch["EXCL"]] = 1.0, -1.0
    return bool(torch.equal(sd[a2 + "q_proj.weight"], wq) and torch.equal(sd[a2 + "q_proj.bias"], bq)
                and torch.equal(sd[a2 + "k_proj.weight"], wk)
                and int(sd[a2 + "v_proj.weight"].count_nonzero()) == 1
                and sd[a2 + "v_proj.weight"][0, ch["TOK"]] == 1)


def structure(c, m: int, excl: np.ndarray, p: int) -> list[dict]:
    """Step 1 and the enumeration of step 2 (see the module docstring)."""
    sd, ch = c.state_dict, c.channels
    D, vocab, L = c.config.d_head, c.config.vocab_size, c.config.max_len
    t = torch.arange(vocab, dtype=torch.float64)
    jj = torch.arange(1, L + 1, dtype=torch.float64)
    E, P = sd["embed.weight"], sd["pos_table"]
    prevs = [ch[f"PREV_{r}"] for r in range(1, m + 1)]
    prev2s = [ch[f"PREV2_{r}"] for r in range(1, m + 1)]
    tok, tok2, pos, pos2, ex, y = (ch[x] for x in ("TOK", "TOK2", "POS", "POS2", "EXCL", "Y"))
    a1, a2 = "blocks.0.attn.", "blocks.1.attn."
    conds = [
        side_condition("embedding", bool(reads_only(E, [tok, tok2]) and (E[:, tok] == t).all()
                                         and (E[:, tok2] == t * t).all()),
                       "E[t] = (t, t^2) on TOK/TOK2 only"),
        side_condition("positions", bool(reads_only(P, [pos, pos2, ex]) and
                                         (P[:, pos] == jj).all() and (P[:, pos2] == jj * jj).all()
                                         and (P[:, ex] == torch.as_tensor(excl)).all()),
                       "P[j] = (j, j^2, EXCL(j)) with EXCL recomputed from the task"),
        side_condition("layer1-qk-positional", reads_only(sd[a1 + "q_proj.weight"], [pos])
                       and reads_only(sd[a1 + "k_proj.weight"], [pos, pos2]),
                       "layer-1 queries/keys read positions only"),
        side_condition("layer1-values", reads_only(sd[a1 + "v_proj.weight"], [tok, tok2])
                       and bool((sd[a1 + "v_proj.bias"] == 0).all()), "values read TOK/TOK2"),
        side_condition("layer1-output", reads_only(sd[a1 + "o_proj.weight"].T, prevs + prev2s)
                       and bool((sd[a1 + "o_proj.bias"] == 0).all()),
                       "layer 1 writes PREV/PREV2 channels only (empty before)"),
        side_condition("layer2-reads", reads_only(sd[a2 + "q_proj.weight"], [tok] + prevs)
                       and reads_only(sd[a2 + "k_proj.weight"], prevs + prev2s + [pos, ex])
                       and reads_only(sd[a2 + "v_proj.weight"], [tok])
                       and bool((sd[a2 + "k_proj.bias"] == 0).all()
                                and (sd[a2 + "v_proj.bias"] == 0).all()),
                       "layer-2 queries read TOK/PREV, keys PREV/PREV2/POS/EXCL, values TOK"),
        side_condition("layer2-output", reads_only(sd[a2 + "o_proj.weight"].T, [y])
                       and int(sd[a2 + "o_proj.weight"].count_nonzero()) == 1
                       and bool((sd[a2 + "o_proj.bias"] == 0).all()), "W_O: head 1 dim 0 -> Y"),
        side_condition("mlp-zero", all(bool((v == 0).all()) for k_, v in sd.items()
                                       if ".mlp." in k_), "MLPs output exactly 0"),
        side_condition("unembedding", reads_only(sd["unembed.weight"], [y]) and bool(
            (sd["unembed.weight"][:, y] == 2 * t).all() and (sd["unembed.bias"] == -t * t).all()),
            "logit_t = 2t Y - t^2"),
    ]
    # Step 2: enumerate every position's layer-1 query/key and every token's value at p bits.
    wq, bq = sd[a1 + "q_proj.weight"], sd[a1 + "q_proj.bias"]
    qlo, qhi = linear_interval(P, P, wq, bq, p)
    klo, khi = linear_interval(P, P, sd[a1 + "k_proj.weight"], sd[a1 + "k_proj.bias"], p)
    vlo, vhi = linear_interval(E, E, sd[a1 + "v_proj.weight"], sd[a1 + "v_proj.bias"], p)
    ok = bool((qlo == qhi).all() and (klo == khi).all() and (vlo == vhi).all())
    beta = gram.BETA
    for r in range(1, m + 1):
        h = (r - 1) * D
        ok &= bool((qlo[:, h] == beta * (jj - r)).all() and (qlo[:, h + 1] == beta).all()
                   and (klo[:, h] == 2 * jj).all() and (klo[:, h + 1] == -jj * jj).all()
                   and (vlo[:, h] == t).all() and (vlo[:, h + 1] == t * t).all())
        rest = [x for x in range(h, h + D) if x not in (h, h + 1)]
        ok &= bool((qlo[:, rest] == 0).all() and (klo[:, rest] == 0).all())
    conds.append(side_condition(
        "layer1-enumerated", ok, f"all {L} positions x {m} heads: p-bit q = beta(j - r, 1), "
        f"k = (2j, -j^2); all {vocab} tokens: v = (t, t^2), exact for any accumulation order"))
    return conds


def verify_gram(task, c, m: int, W: int, T: int, excl: np.ndarray, precision: int | None,
                samples: int, seed: int, families: Callable[[], dict[str, np.ndarray]],
                witness_families: Callable[[], dict[str, np.ndarray]], enumerated_extra: str
                ) -> ConstructionVerdict:
    """Steps 1-6 for a gram construction ``c`` (c-gram or AR); returns the verdict dict."""
    t0 = time.perf_counter()
    p = c.precision_bits if precision is None else int(precision)
    arith = PBitArith(p)
    L, k, vocab = task.seq_len(), task.k, task.vocab_size()
    conds = structure(c, m, excl, p)
    conds.append(side_condition("layer2-form", layer2_form(c, m, W, T),
                                f"layer-2 score = beta (W sum_r (2 Q_r PREV_r - PREV2_r) + T j - "
                                f"W EXCL) with W = {W}, T = {T} exactly (the match lemma's form)"))
    bounds = gram.integer_bounds(L, m, k, vocab, W, T)
    exact = cert.integer_exactness(bounds, p, scale_bits=10)
    f64_sum = 3 * W * m * (k - 1) ** 2 + W + L + 3 * L * L + 3 * (vocab - 1) ** 2
    conds.append(side_condition("float64-sums-exact", f64_sum < 2 ** 52,
                                f"sum of |terms| of any reduction <= {f64_sum} < 2^52 (units of "
                                "beta for scores): float64 accumulation is exact in any order"))
    certs = [exact, cert.underflow_lemma(gram.BETA, p), cert.pointer_lemma(),
             cert.match_lemma(m, tiebreak=bool(T))]
    dec = cert.score_gap_lemma()
    dec = {**dec, "name": "decode-gap", "statement": "for all integers t != Y: 2tY - t^2 <= "
           "Y^2 - 1 (i = Y, j = t), so the exact logits have margin >= 1"}
    certs.append(dec)
    certs.append(cert.exact_positive("exponent-gap", {"beta": gram.BETA}, "beta - 746"))
    worst = max(exact.get("exceeds") or [None], key=lambda name: bounds.get(name, 0))
    failure = first_failure(
        exact, conds, certs, p, exact_detail=f"{worst} = {bounds.get(worst)}",
        exact_hint=f"(needs p >= {gram.bits_for(bounds[worst])})" if worst in bounds else "")
    t_proof = time.perf_counter() - t0
    model = c.model()
    checks = run_checks(task, model, arith, m, samples, seed, families())
    witness = None
    if failure is not None:
        for ch in checks:
            if witness is None and "first_failure" in ch:
                witness = ch["first_failure"]
        if witness is None:
            pred = ChunkedPredictor(model)
            for name, fam in witness_families().items():
                if task.seq_len() ** 2 * m * len(fam) > 20 * WORK_BUDGET:
                    fam = fam[: max(1, int(20 * WORK_BUDGET // (task.seq_len() ** 2 * m)))]
                res = cross_check(task, pred, arith, fam, f"witness search: {name}", batch=8)
                checks.append(res)
                if res.get("first_failure"):
                    witness = {**res["first_failure"], "family": name}
                    break
        if witness is None and exact["result"] != "proved":
            failure += ("; no input tried went wrong: exactness of every integer is sufficient, "
                        "not necessary (an inexact score may still keep its argmax)")
    elif any(ch["failures"] for ch in checks):
        failure = "end-to-end cross-check contradicts the proof (a bug): " + str(
            next(ch["first_failure"] for ch in checks if ch["failures"]))
    one = torch.ones(1, dtype=torch.float64)
    target = float(arith.div(arith.exp(arith.r(one * 0)), arith.sum(one, 0)))
    margin = min((y - tt) ** 2 for y in (0, k - 1) for tt in (y - 1, y + 1) if 0 <= tt < vocab)
    return {
        "task": task.name, "n": task.n, "verified": failure is None, "precision_bits": p,
        "precision_needed_formula": c.precision_formula, "precision_claimed": c.precision_bits,
        **c.sizes(), "min_target_attention": target,
        "min_logit_margin": float(margin),
        "enumerated": (f"all {L} positions x {m} layer-1 heads (queries, keys) and all {vocab} "
                       f"token values at p={p} bits; attention rows are proved one-hot for "
                       f"every position and every data string by the lemmas; {enumerated_extra}"),
        "certificates": certs, "side_conditions": conds, "cross_checks": checks,
        "failure": failure, "witness": witness, "convention": task.convention,
        "scalars": c.scalars, "integer_bounds": bounds,
        "seconds_proof": round(t_proof, 3),
        "seconds_cross_checks": round(time.perf_counter() - t0 - t_proof, 3),
        "seconds": round(time.perf_counter() - t0, 3)}


def _families(task) -> dict[str, np.ndarray]:
    """Adversarial inputs: the task's own families for small n, cheap ones for large n."""
    if task.n <= 256:
        return {k_: v[:8] for k_, v in task.adversarial().items()}
    n, c, k = task.n, task.c, task.k
    m, top = c - 1, k - 1
    fams: dict[str, list[np.ndarray]] = {}
    ramp = np.arange(n) % k
    fams["ramp: query at the first and the last start"] = [
        np.concatenate([ramp, ramp[:m]]), np.concatenate([ramp, ramp[n - c:n - 1]])]
    x = np.full(n, top)
    x[-1] = 0
    fams["all max, last follower differs (last occurrence wins)"] = [
        np.concatenate([x, np.full(m, top)])]
    y = np.zeros(n, np.int64)
    y[n - c:n - 1] = top
    y[n - 1] = 1
    y[0:m] = top
    y[m] = 2 % k
    fams["grams differing only in the last token"] = [np.concatenate([y, np.full(m, top)])]
    return {name: np.stack(rows).astype(np.int64) for name, rows in fams.items()
            if task.is_valid(np.stack(rows)).all()}


def _witness_families(task) -> dict[str, np.ndarray]:
    """Inputs where rounding at too few bits collapses adjacent scores: the query gram occurs
    at the end twice (overlapping) with different followers, with the largest tokens."""
    n, c, k = task.n, task.c, task.k
    m, top = c - 1, k - 1
    rows = []
    for lo in {0, max(0, top - 1), top // 2}:
        for shift in range(3):
            x = np.full(n, lo, np.int64)
            end = n - shift
            x[max(0, end - c - 1):end] = top
            x[end - 1] = lo
            rows.append(np.concatenate([x, np.full(m, top)]))
    arr = np.stack(rows)
    return {"repeated max-token grams near the end": arr[task.is_valid(arr)]}


def verify_cgram(task, precision: int | None = None, samples: int = 64, seed: int = 0
                 ) -> ConstructionVerdict:
    """Verify the c-gram construction for ``task`` (steps 1-6 of the module docstring)."""
    c = gram.build(task)
    L = task.seq_len()
    return verify_gram(task, c, task.c - 1, L, 1, gram.excluded_positions(task.n, task.c),
                       precision, samples, seed, lambda: _families(task),
                       lambda: _witness_families(task),
                       "the c-gram convention (last start with a follower) is the match "
                       "lemma with tie-break j and EXCL = [j < c or j > n]")
