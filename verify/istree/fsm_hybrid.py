"""Verification of the hybrid IsTree construction (:mod:`rnngap.constructions.istree.fsm_hybrid`).

Two parts.

1. The attention layer answers every lookup exactly at p = ``precision_for(n)`` bits (a proof
   for all lookups of the form the recurrent part makes; each step is a certificate below):

   * ``weights-hand-set``: the checked layer equals the construction's hand-set weights;
   * ``pointer-gap`` (z3): for 1 <= P <= t-1 and 1 <= j <= t, 2Pj - j^2 is maximal at j = P and
     every other position scores >= 1 lower (head 1, times beta);
   * ``match-gap (m=1)`` (z3): W(2XK - K^2) + j - W E is maximal at the LAST record with key X
     (W >= L >= j) and beats every other position by >= 1 (head 2, times beta); a record
     exists for every key because the CoT opens with ``x ~ x , 0`` for every vertex;
   * ``integer-exactness`` at p bits (scores / beta, key and query entries are integers of
     magnitude <= 2^p, beta and W powers of two) and at 53 bits (every float64 partial sum of a
     q.k reduction), so every score is the exact integer; ``r`` is monotone, so every
     non-maximal r(s - max) <= -beta;
   * ``softmax-underflow``: beta = 1024 >= 746, so every non-maximal weight is exactly 0 and the
     maximum gets exactly 1; the output VAL <= n is then exact.
2. Runs: every input for small n (every edge set in every prompt order when that is at most
   ``ORDER_LIMIT`` inputs, n <= 5; the plan and its wording are those of
   :mod:`rnngap.verify.istree.rnn_rag`) and samples from both official families plus the
   adversarial graphs.  A run passes iff every lookup equals the text-based reference
   (:class:`~rnngap.constructions.istree.fsm_hybrid.ExactLookup`), the verdict equals networkx's
   ``is_tree`` and the transcript stays within L(n) tokens with every register within its
   declared width (enforced each step).

``verified`` is True only when every input at that n was run and nothing failed, and all
certificates hold; otherwise ``passed`` says whether everything checked passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from rnngap.constructions.istree import fsm_hybrid as H
from rnngap.models.arith import PBitArith
from rnngap.models.transformer import Attention
from rnngap.tasks import istree as T
from rnngap.verify import certificates as cert
from rnngap.verify.istree.rnn_rag import edge_orders, enumeration_plan, extra_graphs
from rnngap.verify.verdict import IsTreeVerdict


def certificates(n: int, p: int, attention: Attention | None = None) -> list[dict]:
    """The certificates of part 1 at size n and precision p."""
    L, W, n2 = H.max_len(n), H.width_w(n), (2 * n) ** 2
    ref = H.build_attention(n)
    att = ref if attention is None else attention
    same = all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(),
                                                   att.state_dict().values(), strict=True))
    hand = {"name": "weights-hand-set", "statement": "the attention layer's weights equal the "
            f"construction's (beta = 1024, W = {W})", "method": "exact tensor comparison",
            "result": "proved" if same else "FAILED"}
    exact_p = cert.integer_exactness({
        "head-1 score/beta |2Pj - j^2| <= L^2": L * L,
        "head-2 score/beta |W(2XK-K^2) + j - WE| <= W((2n)^2+2)": W * (n2 + 2),
        "key entry j^2 <= L^2": L * L, "key entry K^2 <= (2n)^2": n2,
        "query entry 2P/2 <= L": L, "query entry X <= 2n": 2 * n}, p, scale_bits=10)
    exact_53 = cert.integer_exactness({
        "head-1 partial sums / beta <= 3 L^2": 3 * L * L,
        "head-2 partial sums / beta <= W(3(2n)^2 + 2)": W * (3 * n2 + 2)}, 53, scale_bits=10)
    exact_53["name"] = "float64-accumulation-exactness"
    return [hand, cert.pointer_lemma(), cert.match_lemma_direct(1, True), exact_p, exact_53,
            cert.underflow_lemma(H.BETA, p)]


def check_one(n: int, edges: np.ndarray, arith: PBitArith,
              attention: Attention | None = None) -> tuple[str | None, dict[str, int]]:
    """Run the hybrid on one graph; return (failure reason or None, its statistics)."""
    try:
        tr = H.run(n, edges, arith, attention)
    except (OverflowError, RuntimeError, ValueError) as err:
        return f"run aborted: {err}", {"peak": 0, "cot": 0, "ret": 0, "mism": 0}
    st = {"peak": tr.peak_bits, "cot": tr.cot_len, "ret": tr.lookups, "mism": tr.mismatches}
    truth = T.networkx_is_tree(n, edges)
    if tr.mismatches:
        return (f"{tr.mismatches} attention lookup(s) differ from the exact lookup, first "
                f"{tr.mismatch_examples[0]}"), st
    if tr.verdict != truth:
        return f"verdict {tr.verdict}, truth {truth}", st
    return None, st


def verify_hybrid_istree(n: int, samples: int = 10, seed: int = 0, orders: str = "auto",
                         precision: int | None = None, attention: Attention | None = None,
                         progress: Callable[[int], None] | None = None) -> IsTreeVerdict:
    """Check the hybrid IsTree construction at size n; returns the verdict dict with keys task,
    method, n, verified, passed, exhaustive, enumerated, inputs_checked, failures,
    failure_examples, peak_state_bits, declared_state_bits, max_cot_tokens, retrievals
    (largest number of attention lookups in one run), lookup_mismatches, precision_bits,
    precision_formula, certificates, seconds, planned_enumeration."""
    t0 = time.perf_counter()
    if n < 1:
        raise ValueError("n must be >= 1")
    p = H.precision_for(n) if precision is None else int(precision)
    arith = PBitArith(p)
    mode, total, words = enumeration_plan(n, orders)
    certs = certificates(n, p, attention)
    jobs: list[tuple[str, np.ndarray, str]] = []
    if mode is not None:
        for edges in T.enumerate_edge_sets(n):
            jobs += [("enumeration", e, "") for e in edge_orders(edges, mode)]
    extra = list(extra_graphs(n, samples, seed))
    jobs += [(w, e, "") for w, e in extra]
    agg = {"peak": 0, "cot": 0, "ret": 0, "mism": 0}
    fails: list[dict] = []
    for where, e, _ in jobs:
        why, st = check_one(n, e, arith, attention)
        for k, old in agg.items():
            agg[k] = max(old, st[k]) if k != "mism" else old + st[k]
        if why:
            fails.append({"where": where, "edges": np.asarray(e).tolist(), "reason": why})
        if progress:
            progress(1)
    sampled = sum(1 for w, _ in extra if w.endswith("sample"))
    words += (f"; plus {sampled} official-family samples (seed {seed}) and "
              f"{len(extra) - sampled} adversarial graphs")
    certs_ok = all(c["result"] == "proved" for c in certs)
    if not certs_ok:
        fails.append({"where": "certificates", "edges": [], "reason": "certificate(s) failed: "
                      + ", ".join(c["name"] for c in certs if c["result"] != "proved")})
    return {
        "task": "istree", "method": "hybrid-fsm", "n": n,
        "verified": mode == "all" and not fails,
        "passed": not fails,
        "exhaustive": mode == "all",
        "enumerated": words,
        "inputs_checked": len(jobs),
        "failures": len(fails),
        "failure_examples": fails[:10],
        "peak_state_bits": agg["peak"],
        "declared_state_bits": H.HybridIsTree(n).declared_bits,
        "max_cot_tokens": agg["cot"],
        "retrievals": agg["ret"],
        "lookup_mismatches": agg["mism"],
        "kv_bits": kv_bits(n, 3 * n - 1 + agg["cot"], p),
        "precision_bits": p,
        "precision_formula": "max(ceil(log2(W((2n)^2+2)))+1, ceil(log2(L^2+1))), "
                             "W = 2^ceil(log2(L+1)), L = max_len(n) = O(n log n)",
        "certificates": certs,
        "seconds": round(time.perf_counter() - t0, 3),
        "planned_enumeration": total,
    }


def kv_bits(n: int, positions: int, p: int) -> int:
    """Bits of the one attention layer's KV cache after ``positions`` positions: 2 heads x
    2 d_head numbers of p bits per position."""
    return positions * 2 * 2 * H.D_HEAD * p


def state_bits_table(ns: list[int], seed: int = 0) -> list[dict[str, int]]:
    """One 'binary'-family tree per n (n >= 4): declared and peak state bits, CoT, lookups."""
    rows = []
    for n in ns:
        (edges,), _ = T.sample_graphs(n, 1, "binary", seed=seed)
        tr = H.run(n, edges)
        rows.append({"n": n, "declared_bits": tr.declared_bits, "peak_bits": tr.peak_bits,
                     "cot_tokens": tr.cot_len, "lookups": tr.lookups,
                     "precision_bits": H.precision_for(n)})
    return rows


def verify_for_cli(n: int, orders: str = "auto", samples: int = 10, seed: int = 0,
                   progress: Callable[[int], None] | None = None, jobs: int = 1) -> IsTreeVerdict:
    """``rnngap verify istree --method hybrid-fsm``: :func:`verify_hybrid_istree` with the CLI's
    call signature (``jobs`` is accepted for the common interface and ignored: one process)."""
    return verify_hybrid_istree(n, samples=samples, seed=seed, orders=orders, progress=progress)
