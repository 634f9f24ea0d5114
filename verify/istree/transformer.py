"""Verification of the IsTree Transformer with O(n) CoT (:mod:`rnngap.constructions.istree.
transformer`; Theorem 4.7, claim C4).

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
   * ``position-tiebreak-gap`` (z3): the first-occurrence head's scores W e - j (e an even
     integer, 1 <= j <= L < W) are distinct for distinct positions, and the current position
     (a match) beats every non-match, so the earliest match wins;
   * ``bos-row-zero``: position 1 is always ``[BOS]`` and sees only itself, so its residual
     row is input-independent: it is computed and every key / value channel a sink reads is
     checked to be exactly 0;
   * ``integer-exactness``: every family of integers of the forward pass (scores in units of
     beta, partial sums, MLP pre-activations, logits) is bounded by the formulas below and
     <= 2^p; at p <= 52 every float64 partial sum is exact too;
   * ``softmax-underflow``: beta >= 746, so every non-maximal weight is exactly 0.

2. Runs (batched greedy decoding in :class:`~rnngap.models.arith.PBitArith` with KV caches):
   every input for small n (every edge set in every prompt order, n <= 5; the plan and its
   wording are those of :mod:`rnngap.verify.istree.rnn_rag`) and samples from both official families
   plus the adversarial graphs.  An input passes iff the written tokens equal the official
   ``cot`` format token for token -- :func:`rnngap.tasks.istree.euler_tour`, ``[EOS]``, and the
   label of networkx's ``is_tree`` -- and the run's audit saw every attention row of every used
   head exactly one-hot and every residual entry an integer.

``verified`` is True only when every input at that n was run and nothing failed, and all
certificates hold; otherwise ``passed`` says whether everything checked passed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from rnngap.constructions.istree import transformer as X
from rnngap.constructions.istree.exact_heads import Audit
from rnngap.models.arith import PBitArith
from rnngap.models.transformer import Transformer
from rnngap.tasks import istree as T
from rnngap.verify.istree import exact as E
from rnngap.verify.verdict import IsTreeVerdict

MEMORY_DOUBLES = 64_000_000
"""Batch size: rows so that the KV cache and a prefill chunk's scores stay about this many
float64 numbers (~0.5 GB): per row 6 layers x 4 heads x 2 d_head x L + 4 x 4 x 64 x L."""


def batch_size(n: int) -> int:
    L = X.max_len(n)
    return max(1, MEMORY_DOUBLES // (X.N_LAYERS * X.N_HEADS * 2 * X.D_HEAD * L
                                     + 4 * X.N_HEADS * 64 * L))


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
    """The certificates of part 1 for ``model`` -- the network that is run (default: a fresh
    ``build(n).model()``), compared with an independently built reference -- at precision p."""
    ref = X.build(n)
    m = X.build(n).model() if model is None else model
    out = E.weight_certificates(ref.state_dict, m.state_dict())
    out += E.lemmas()
    with torch.no_grad():
        h = m.embed_tokens(torch.tensor([[T.BOS]]), PBitArith(p))
        rows = [h[0, 0]]
        for block in m.blocks:
            h = block(h, PBitArith(p))
            rows.append(h[0, 0])
    read = E.sink_channels([h for hs in X.heads(n).values() for h in hs])
    out.append(E.bos_certificate(rows, X.C, read))
    return out + E.exactness_certificates(bounds(n), p)


def reference(n: int, edges: np.ndarray) -> list[int]:
    """The official ``cot`` continuation: tour, ``[EOS]``, the label of networkx's is_tree."""
    return T.euler_tour(n, edges) + [T.EOS, E.nx_label(n, edges)]


def run_batch(n: int, model: Transformer, edges: list[np.ndarray], p: int
              ) -> tuple[list[list[int]], Audit]:
    """Decode a batch of graphs at p bits (one thread: these are many small tensor ops)."""
    prompts = torch.tensor([T.prompt_tokens(n, e) for e in edges])
    audit = Audit()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = X.generate(model, prompts, PBitArith(p), X.cot_length_bound(n), audit, chunk=64)
    finally:
        torch.set_num_threads(threads)
    return out, audit


def default_net(n: int):
    """The construction's network (what ``--jobs`` workers rebuild and fingerprint)."""
    return X.build(n).model()


def kv_bits(net: Transformer, positions: int, p: int) -> int:
    """Bits of the KV cache after ``positions`` positions: layers x heads x 2 d_head numbers
    of p bits per position (what the decoder holds; it grows with the input), as the model
    reports it."""
    return net.kv_scalars(positions) * p


def verify_transformer_istree(n: int, samples: int = 10, seed: int = 0, orders: str = "auto",
                              precision: int | None = None, model: Transformer | None = None,
                              progress: Callable[[int], None] | None = None,
                              jobs: int = 1) -> IsTreeVerdict:
    """Check the Transformer IsTree construction at size n; returns the verdict dict with the
    keys of :func:`rnngap.verify.istree.rnn_rag.verify_rnn_rag` (``peak_state_bits`` 0: no
    recurrent state; ``kv_bits``: the KV cache at the end of the longest transcript;
    ``retrievals`` 0: no retriever) plus
    precision_bits, precision_formula, certificates, kv_bits, audit, sizes."""
    t0 = time.perf_counter()
    if n < 2:
        raise ValueError("n must be >= 2")
    p = X.precision_for(n) if precision is None else int(precision)
    cons = X.build(n)
    net = cons.model() if model is None else model
    certs = certificates(n, p, net)
    plan, end = E.check_decoder(sys.modules[__name__], n, p, net, model is None, orders,
                                samples, seed, progress, jobs)
    return E.verdict("transformer", n, plan, certs, p, X.PRECISION_FORMULA, {
        "peak_state_bits": 0, "declared_state_bits": 0,
        "retrievals": 0, "recurrent_state_bits": 0, "kv_bits": kv_bits(net, end, p),
        "sizes": cons.sizes()}, t0)


def verify_for_cli(n: int, orders: str = "auto", samples: int = 10, seed: int = 0,
                   progress: Callable[[int], None] | None = None, jobs: int = 1) -> IsTreeVerdict:
    """``rnngap verify istree --method transformer`` (``jobs`` > 1: batches in that many
    processes)."""
    return verify_transformer_istree(n, samples=samples, seed=seed, orders=orders,
                                     progress=progress, jobs=jobs)
