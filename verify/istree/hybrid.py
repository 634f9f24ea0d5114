"""Verification of the linear-RNN + ONE attention layer IsTree hybrid
(:mod:`rnngap.constructions.istree.hybrid`; Definition 5.5 / Theorem 5.6, claim C6).

1. Certificates (``verify.istree.exact``): the weights are the construction's and integers
   (the linear layers' decays a = 1 included, so every recurrent state is an integer: the
   positions j, j^2 and the ``[EOS]`` count); the pointer, sink-match and position tie-break
   gap lemmas (z3); the [BOS] row: every channel a sink head reads is 0 after the linear
   layers; integer exactness of every bound family at p and 53 bits; softmax underflow.
2. Runs: every input for small n (every edge set in every prompt order, n <= 5) and samples
   of both official families plus the adversarial graphs beyond, decoded in p-bit arithmetic
   through the recurrent view of the linear layers (fixed-size state) and the attention
   layer's KV cache.  An input passes iff the transcript equals the union-find CoT computed
   directly (:func:`~rnngap.constructions.istree.hybrid.reference_cot`) token for token,
   its label equals networkx's ``is_tree`` and the audit saw every attention row exactly
   one-hot and every residual entry an integer.

``verified`` is True only when every input at that n was run and nothing failed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from rnngap.constructions.istree import hybrid as Hy
from rnngap.constructions.istree.exact_heads import Audit
from rnngap.models.arith import PBitArith
from rnngap.models.hybrid_lrnn import from_model_keys
from rnngap.models.lm import LM
from rnngap.tasks import istree as T
from rnngap.verify.istree import exact as E
from rnngap.verify.verdict import IsTreeVerdict

MEMORY_DOUBLES = 64_000_000
"""Batch size: rows so that the KV cache and one step's scores stay about this many float64
numbers (~0.5 GB): per row 9 heads x 2 d_head x L + 4 x 9 x L."""


def batch_size(n: int) -> int:
    L = Hy.max_len(n)
    return max(1, MEMORY_DOUBLES // (Hy.N_HEADS * 2 * Hy.D_HEAD * L + 4 * Hy.N_HEADS * L))


def bounds(n: int) -> dict[str, int]:
    """Magnitude bounds of the integer families (W = L + 1, M = 2n + 4, G = 2(n+1)^2)."""
    W, M, G = Hy.max_len(n) + 1, 2 * n + 4, int(Hy.logit_gap(n))
    return {"match scores/beta, partial sums 16 W (n+1)^2 + 8 W": 16 * W * (n + 1) ** 2 + 8 * W,
            "pointer / self-match position terms, recurrent j^2: 3 W^2": 3 * W * W,
            "MLP pre-activations 4 M + 2n": 4 * M + 2 * n,
            "logits, partial sums 3 n^2 + 3 G": 3 * n * n + 3 * G}


def certificates(n: int, p: int, model: LM | None = None) -> list[dict]:
    """The certificates of part 1 for the model (default: the construction) at precision p."""
    ref = Hy.build(n)
    net = ref.model() if model is None else model  # the network that is run
    out = E.weight_certificates(ref.state_dict, from_model_keys(ref.config, net.state_dict()))
    out += E.lemmas()
    with torch.no_grad():
        h = net.residual(torch.tensor([[T.BOS]]), PBitArith(p))
    out.append(E.bos_certificate([h[0, 0]], Hy.C, E.sink_channels(Hy.heads(n))))
    return out + E.exactness_certificates(bounds(n), p)


def reference(n: int, edges: np.ndarray) -> list[int]:
    """The union-find CoT computed directly, checked against networkx's label."""
    cot = Hy.reference_cot(n, edges)
    if cot[-1] != E.nx_label(n, edges):
        raise AssertionError(f"reference CoT label disagrees with networkx on {edges.tolist()}")
    return cot


def run_batch(n: int, net: LM, edges: list[np.ndarray], p: int
              ) -> tuple[list[list[int]], Audit]:
    """Decode a batch of graphs at p bits with the audit on."""
    audit = Audit()
    prompts = torch.tensor([T.prompt_tokens(n, e) for e in edges])
    return Hy.generate(net, prompts, PBitArith(p), Hy.max_cot(n), audit), audit


def default_net(n: int):
    """The construction's network (what ``--jobs`` workers rebuild and fingerprint)."""
    return Hy.model(n)


def kv_bits(net: LM, positions: int, p: int) -> int:
    """Bits of the attention layer's KV cache after ``positions`` positions (as the model
    reports it)."""
    return net.kv_scalars(positions) * p


def verify_hybrid_lrnn_istree(n: int, samples: int = 10, seed: int = 0, orders: str = "auto",
                              precision: int | None = None, model: LM | None = None,
                              progress: Callable[[int], None] | None = None,
                              jobs: int = 1) -> IsTreeVerdict:
    """Check the hybrid at size n; the verdict has the keys of
    :func:`rnngap.verify.istree.rnn_rag.verify_rnn_rag` (``peak_state_bits`` /
    ``declared_state_bits``: the linear layers' fixed state, state scalars x p) plus
    recurrent_state_bits, kv_bits, precision_bits, precision_formula, certificates, audit,
    sizes."""
    t0 = time.perf_counter()
    if n < 2:
        raise ValueError("n must be >= 2")
    p = Hy.precision_for(n) if precision is None else int(precision)
    net = Hy.model(n) if model is None else model
    certs = certificates(n, p, net)
    plan, end = E.check_decoder(sys.modules[__name__], n, p, net, model is None, orders,
                                samples, seed, progress, jobs)
    scalars = net.backbone.state_scalars()
    state = scalars * p
    cfg = Hy.config(n)
    return E.verdict("hybrid", n, plan, certs, p, Hy.PRECISION_FORMULA, {
        "peak_state_bits": state, "declared_state_bits": state, "recurrent_state_bits": state,
        "state_scalars": scalars, "retrievals": 0, "kv_bits": kv_bits(net, end, p),
        "sizes": {"rnn_layers": cfg.n_rnn_layers, "attention_layers": 1,
                  "heads": cfg.n_heads, "width": cfg.d_model, "d_head": cfg.d_head,
                  "d_mlp": cfg.d_mlp,
                  "rnn_layer_shapes": cfg.shapes()}}, t0)


def verify_for_cli(n: int, orders: str = "auto", samples: int = 10, seed: int = 0,
                   progress: Callable[[int], None] | None = None, jobs: int = 1) -> IsTreeVerdict:
    """``rnngap verify istree --method hybrid`` (``jobs`` > 1: batches in that many
    processes)."""
    return verify_hybrid_lrnn_istree(n, samples=samples, seed=seed, orders=orders,
                                     progress=progress, jobs=jobs)
