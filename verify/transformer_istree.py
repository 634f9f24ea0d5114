"""Verification of the IsTree Transformer with O(n) CoT (:mod:`rnngap.constructions.
transformer_istree`; Theorem 4.7, claim C4).

Two parts.

1. Why the p-bit forward pass is exact for EVERY input (certificates, each a complete check):

   * ``weights-hand-set``: the checked model's tensors equal the construction's;
   * ``weights-integer``: every weight, embedding and positional entry is an integer (beta =
     1024 and every scalar are integers), so by induction over the layers every activation is
     an integer once every attention row is one-hot (its output is then one value row);
   * ``pointer-gap`` (z3): layer 1's pointer scores 2(i-r)j - j^2 peak at j = max(i-r, 1) by
     >= 1;
   * ``sink-match-gap`` (z3): a head scoring W(-2D + c) + T tb (D >= 0 the squared distance of
     the query to the key fields, c = 0 at keys, -1 at the sink [BOS], -2 elsewhere, 0 <= T tb
     <= W - 1) ranks every match above the sink and the sink above every non-match by >= 1;
     with the combinatorial facts that at most one key matches in the edge-in and successor
     heads (the n - 1 edges are distinct; an edge is the successor of e in v's incidence list
     for at most one slot) and that the recency heads break ties by distinct edge indices /
     positions, the maximum is unique;
   * ``earliest-gap`` (z3): the first-occurrence head's scores W e - j (e an even integer,
     1 <= j <= L < W) are distinct for distinct positions, and the current position (a match)
     beats every non-match, so the earliest match wins;
   * ``bos-row-zero``: position 1 is always ``[BOS]`` and sees only itself, so its residual
     row is input-independent: it is computed and every key / value channel a sink reads is
     checked to be exactly 0;
   * ``integer-exactness``: every family of integers of the forward pass (scores in units of
     beta, partial sums, MLP pre-activations, logits) is bounded by the formulas below and
     <= 2^p; at p <= 52 every float64 partial sum is exact too;
   * ``softmax-underflow``: beta >= 746, so every non-maximal weight is exactly 0.

2. Runs (batched greedy decoding in :class:`~rnngap.models.arith.PBitArith` with KV caches):
   every input for small n (every edge set in every prompt order, n <= 5; the plan and its
   wording are those of :mod:`rnngap.verify.istree_rag`) and samples from both official families
   plus the adversarial graphs.  An input passes iff the written tokens equal the official
   ``cot`` format token for token -- :func:`rnngap.tasks.istree.euler_tour`, ``[EOS]``, and the
   label of networkx's ``is_tree`` -- and the run's audit saw every attention row of every used
   head exactly one-hot and every residual entry an integer.

``verified`` is True only when every input at that n was run and nothing failed, and all
certificates hold; otherwise ``passed`` says whether everything checked passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import networkx as nx
import numpy as np
import torch

from rnngap.constructions import transformer_istree as X
from rnngap.models.arith import PBitArith
from rnngap.models.transformer import Transformer
from rnngap.tasks import istree as T
from rnngap.verify import certificates as cert
from rnngap.verify.istree_rag import _extra, _orders_of, _plan

BATCH_ELEMENTS = 1_500_000
"""Batch size is chosen so that batch * L(n)^2 stays about this (memory of a prefill chunk)."""


def _lemmas() -> list[dict]:
    def sink(z3):
        w, t, tb, tb2, tb3, d, d0 = z3.Ints("W T tb tb2 tb3 D D0")
        ok = z3.And(w >= 1, d >= 1, d0 >= 0, *(z3.And(t * x >= 0, t * x <= w - 1)
                                                for x in (tb, tb2, tb3)))
        match, bos = t * tb, -w + t * tb2
        miss_key, miss_other = w * (-2 * d) + t * tb3, w * (-2 * d0 - 2) + t * tb3
        return z3.Implies(ok, z3.And(match >= bos + 1, bos >= miss_key + 1,
                                     bos >= miss_other + 1, match >= miss_key + 1))

    def earliest(z3):
        w, e, e2, j, j2, L = z3.Ints("W e e2 j j2 L")
        ok = z3.And(w >= L + 1, j >= 1, j2 >= 1, j <= L, j2 <= L, j != j2,
                    e % 2 == 0, e2 % 2 == 0)
        return z3.Implies(ok, z3.And(w * e - j != w * e2 - j2,
                                     z3.Implies(z3.And(e <= -2, e2 == 0), w * e - j < -j2)))

    return [cert.pointer_lemma(),
            cert.z3_lemma("sink-match-gap", "for integers W >= 1, D >= 1 and tie-breaks "
                          "0 <= T tb, T tb' <= W - 1: a match (T tb) beats the sink (-W + T tb') "
                          "and the sink beats every non-match key (W(-2D) + T tb'') and non-key "
                          "(W(-2D0-2) + T tb'', D0 >= 0) "
                          "by >= 1", sink),
            cert.z3_lemma("earliest-gap", "for integers W >= L + 1, even e, e', distinct "
                          "1 <= j, j' <= L: W e - j != W e' - j', and a match (e' = 0) beats "
                          "every non-match (e <= -2)", earliest)]


def bounds(n: int) -> dict[str, int]:
    """Magnitude bounds of every family of integers in the forward pass (see module)."""
    L, m, G = X.max_len(n), n - 1, int(X.logit_gap(n))
    W = L + 1
    return {"positions and squares L^2": L * L,
            "pointer scores/beta, partial sums 3 L^2": 3 * L * L,
            "match scores/beta, partial sums 16 W n^2 + 4 W": 16 * W * n * n + 4 * W,
            "MLP pre-activations m^2 (L + 1)": m * m * (L + 1),
            "logits, partial sums 3 n^2 + 3 G": 3 * n * n + 3 * G}


def certificates(n: int, p: int, model: Transformer | None = None) -> list[dict]:
    """The certificates of part 1 for the model (default: the construction) at precision p."""
    ref = X.build(n)
    sd = ref.state_dict if model is None else model.state_dict()
    same = all(torch.equal(ref.state_dict[k].double(), sd[k].double()) for k in ref.state_dict)
    out = [{"name": "weights-hand-set", "statement": "every tensor equals the construction's",
            "method": "exact tensor comparison", "result": "proved" if same else "FAILED"}]
    integral = all(bool((v == v.round()).all()) for v in sd.values())
    out.append({"name": "weights-integer", "statement": "every weight, bias, embedding and "
                "positional entry is an integer", "method": "exact comparison with round()",
                "result": "proved" if integral else "FAILED"})
    out += _lemmas()
    m = ref.model() if model is None else model
    with torch.no_grad():
        h = m.embed_tokens(torch.tensor([[T.BOS]]), PBitArith(p))
        rows = [h[0, 0]]
        for block in m.blocks:
            h = block(h, PBitArith(p))
            rows.append(h[0, 0])
    read = {"VX", "VX2", "P1V", "P1V2", "P2V", "P2V2", "P3V", "P3V2", "KE", "KE2", "KB",
            "KB2", "PA", "PA2", "PB", "PB2", "ISVPOS", "ISCOTV", "AIN", "BIN"}
    bad = sorted(c for c in read if any(float(r[X.C[c]]) != 0.0 for r in rows))
    out.append({"name": "bos-row-zero", "statement": "at position 1 ([BOS], input-independent) "
                "every channel a sink head reads as key or value is exactly 0 after every layer",
                "method": "computed at p bits", "result": "proved" if not bad else "FAILED",
                "nonzero": bad})
    ex = cert.integer_exactness(bounds(n), p, scale_bits=10)
    out.append(ex)
    f64 = cert.integer_exactness({k: v for k, v in bounds(n).items()}, 53, scale_bits=10)
    f64["name"] = "float64-accumulation-exactness"
    out.append(f64)
    out.append(cert.underflow_lemma(X.BETA, p))
    return out


def reference(n: int, edges: np.ndarray) -> list[int]:
    """The official ``cot`` continuation: tour, ``[EOS]``, the label of networkx's is_tree."""
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(np.asarray(edges).tolist())
    return T.euler_tour(n, edges) + [T.EOS, T.TRUE if nx.is_tree(g) else T.FALSE]


def _first_diff(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def run_batch(n: int, model: Transformer, edges: list[np.ndarray], p: int
              ) -> tuple[list[list[int]], X.Audit]:
    """Decode a batch of graphs at p bits (one thread: these are many small tensor ops)."""
    prompts = torch.tensor([T.prompt_tokens(n, e) for e in edges])
    audit = X.Audit()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = X.generate(model, prompts, PBitArith(p), X.cot_length_bound(n), audit, chunk=64)
    finally:
        torch.set_num_threads(threads)
    return out, audit


def kv_bits(n: int, positions: int, p: int) -> int:
    """Bits of the KV cache after ``positions`` positions: layers x heads x 2 d_head numbers
    of p bits per position (what the decoder holds; it grows with the input)."""
    return positions * X.N_LAYERS * X.N_HEADS * 2 * X.D_HEAD * p


def verify_transformer_istree(n: int, samples: int = 10, seed: int = 0, orders: str = "auto",
                              precision: int | None = None, model: Transformer | None = None,
                              progress: Callable[[int], None] | None = None) -> dict:
    """Check the Transformer IsTree construction at size n; returns the verdict dict with the
    keys of :func:`rnngap.verify.istree_rag.verify_rnn_rag` (``peak_state_bits`` is the KV
    cache at the end of the longest transcript, ``retrievals`` 0: no retriever) plus
    precision_bits, precision_formula, certificates, kv_bits, audit, sizes."""
    t0 = time.perf_counter()
    if n < 2:
        raise ValueError("n must be >= 2")
    p = X.precision_for(n) if precision is None else int(precision)
    mode, total, words = _plan(n, orders)
    cons = X.build(n)
    net = cons.model() if model is None else model
    certs = certificates(n, p, model)
    jobs: list[tuple[str, np.ndarray]] = []
    if mode is not None:
        for edges in T.enumerate_edge_sets(n):
            jobs += [("enumeration", e) for e in _orders_of(edges, mode)]
    extra = list(_extra(n, samples, seed))
    jobs += extra
    batch = max(1, BATCH_ELEMENTS // (X.max_len(n) ** 2))
    fails: list[dict] = []
    cot = 0
    audit = X.Audit()
    for s in range(0, len(jobs), batch):
        part = jobs[s:s + batch]
        outs, aud = run_batch(n, net, [e for _, e in part], p)
        for k in ("not_one_hot", "non_integer", "rows"):
            setattr(audit, k, getattr(audit, k) + getattr(aud, k))
        audit.max_abs = max(audit.max_abs, aud.max_abs)
        for (where, e), got in zip(part, outs, strict=True):
            want = reference(n, e)
            cot = max(cot, len(got))
            if got != want:
                i = _first_diff(got, want)
                fails.append({"where": where, "edges": np.asarray(e).tolist(), "reason":
                              f"token {i} after the prompt: wrote "
                              f"{T.render(got[i:i + 1]) or 'nothing'}, official cot has "
                              f"{T.render(want[i:i + 1]) or 'nothing'}"})
        if progress:
            progress(len(part))
    if audit.not_one_hot or audit.non_integer:
        fails.append({"where": "audit", "edges": [], "reason":
                      f"{audit.not_one_hot} attention rows not exactly one-hot, "
                      f"{audit.non_integer} non-integer residual entries"})
    sampled = sum(1 for w, _ in extra if w.endswith("sample"))
    words += (f"; plus {sampled} official-family samples (seed {seed}) and "
              f"{len(extra) - sampled} adversarial graphs")
    bad = [c["name"] for c in certs if c["result"] != "proved"]
    if bad:
        fails.append({"where": "certificates", "edges": [], "reason": "certificate(s) failed: "
                      + ", ".join(bad)})
    end = 3 * n - 1 + max(cot - 1, 0)
    return {
        "task": "istree", "method": "transformer", "n": n,
        "verified": mode == "all" and not fails,
        "passed": not fails,
        "exhaustive": mode == "all",
        "enumerated": words,
        "inputs_checked": len(jobs),
        "failures": len(fails),
        "failure_examples": fails[:10],
        "peak_state_bits": kv_bits(n, end, p),
        "declared_state_bits": kv_bits(n, X.max_len(n), p),
        "max_cot_tokens": cot,
        "retrievals": 0,
        "kv_bits": kv_bits(n, end, p),
        "precision_bits": p,
        "precision_formula": X.PRECISION_FORMULA,
        "certificates": certs,
        "audit": {"attention_rows_checked": audit.rows, "not_one_hot": audit.not_one_hot,
                  "non_integer_residuals": audit.non_integer,
                  "max_abs_residual": audit.max_abs},
        "sizes": cons.sizes(),
        "seconds": round(time.perf_counter() - t0, 3),
        "planned_enumeration": total,
    }


def verify_for_cli(n: int, orders: str = "auto", samples: int = 10, seed: int = 0,
                   progress: Callable[[int], None] | None = None, jobs: int = 1) -> dict:
    """``rnngap verify istree --method transformer`` (``jobs`` accepted and ignored: the runs
    are batched in one process)."""
    return verify_transformer_istree(n, samples=samples, seed=seed, orders=orders,
                                     progress=progress)
