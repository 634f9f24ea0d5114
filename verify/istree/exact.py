"""What the two hand-set IsTree decoders share in verification (the Transformer with O(n) CoT,
``verify.istree.transformer``, and the linear-RNN hybrid, ``verify.istree.hybrid``).

Both are built from ``constructions.istree.exact_heads``: every activation is an integer, every head
is a pointer, an exact-match head with a [BOS] sink or a position tie-break head, so the same
certificates apply:

* ``weights-hand-set`` / ``weights-integer``: the model is the construction, every entry an
  integer (so by induction every activation is one, once every attention row is one-hot);
* ``pointer-gap`` (z3): 2Pj - j^2 peaks at j = max(P, 1) by >= 1 when P <= i - 1, and
  ``pointer-gap-beyond`` (z3): at j = i by >= 1 when P >= i (the hybrid's prompt pointers are
  computed at every position, where P may lie ahead);
* ``sink-match-gap`` (z3): W(-2D + c) + T tb with 0 <= T tb <= W - 1 ranks a match above the
  sink and the sink above every non-match by >= 1;
* ``position-tiebreak-gap`` (z3): W e + t j (t = +-1, e even, 1 <= j <= L < W) is distinct for
  distinct positions and a key (e = 0) beats every non-key (e <= -2);
* ``bos-row-zero``: the row of position 1 ([BOS], seen only by itself, so input-independent) is
  computed and every channel a sink reads is checked to be 0;
* ``integer-exactness`` at p and 53 bits for the model's bound families;
* ``softmax-underflow``: beta = 1024 >= 746.

:func:`run_plan` runs the inputs (every input for small n, samples and adversarial graphs beyond;
the plan and its words are those of ``verify.istree.rnn_rag``) in batches through a decoder and
compares each transcript with a reference token for token.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from rnngap.constructions.istree.exact_heads import BETA, Audit, Head
from rnngap.tasks import istree as T
from rnngap.verify import certificates as cert
from rnngap.verify.istree.rnn_rag import edge_orders, enumeration_plan, extra_graphs
from rnngap.verify.verdict import IsTreeVerdict


def lemmas() -> list[dict]:
    """The z3 gap lemmas every exact-head model relies on (module docstring)."""
    def sink(z3):
        w, t, tb, tb2, tb3, d, d0 = z3.Ints("W T tb tb2 tb3 D D0")
        ok = z3.And(w >= 1, d >= 1, d0 >= 0, *(z3.And(t * x >= 0, t * x <= w - 1)
                                                for x in (tb, tb2, tb3)))
        match, bos = t * tb, -w + t * tb2
        miss_key, miss_other = w * (-2 * d) + t * tb3, w * (-2 * d0 - 2) + t * tb3
        return z3.Implies(ok, z3.And(match >= bos + 1, bos >= miss_key + 1,
                                     bos >= miss_other + 1, match >= miss_key + 1))

    def tiebreak(z3):
        w, e, e2, j, j2, L, t = z3.Ints("W e e2 j j2 L t")
        ok = z3.And(w >= L + 1, j >= 1, j2 >= 1, j <= L, j2 <= L, j != j2, z3.Or(t == 1,
                    t == -1), e % 2 == 0, e2 % 2 == 0)
        return z3.Implies(ok, z3.And(w * e + t * j != w * e2 + t * j2,
                                     z3.Implies(z3.And(e <= -2, e2 == 0),
                                                w * e + t * j < t * j2)))

    def beyond(z3):
        p, i, j = z3.Ints("P i j")
        return z3.Implies(z3.And(p >= i, j >= 1, j <= i - 1),
                          2 * p * j - j * j <= 2 * p * i - i * i - 1)

    return [cert.pointer_lemma(),
            cert.z3_lemma("pointer-gap-beyond", "for integers P >= i and 1 <= j <= i - 1: "
                          "2Pj - j^2 <= 2Pi - i^2 - 1 (the pointer row peaks at j = i)", beyond),
            cert.z3_lemma("sink-match-gap", "for integers W >= 1, D >= 1, D0 >= 0 and "
                          "tie-breaks 0 <= T tb, T tb', T tb'' <= W - 1: a match (T tb) beats "
                          "the sink (-W + T tb') and the sink beats every non-match key "
                          "(W(-2D) + T tb'') and non-key (W(-2D0-2) + T tb'') by >= 1", sink),
            cert.z3_lemma("position-tiebreak-gap", "for integers W >= L + 1, t = +-1, even "
                          "e, e', distinct 1 <= j, j' <= L: W e + t j != W e' + t j', and a "
                          "key (e' = 0) beats every non-key (e <= -2)", tiebreak)]


def weight_certificates(ref: dict[str, torch.Tensor], sd: dict[str, torch.Tensor]
                        ) -> list[dict]:
    """``weights-hand-set`` and ``weights-integer`` for the state dict ``sd``."""
    same = ref.keys() == sd.keys() and all(torch.equal(ref[k].double(), sd[k].double())
                                           for k in ref)
    integral = all(bool((v == v.round()).all()) for v in sd.values())
    return [{"name": "weights-hand-set", "statement": "every tensor equals the construction's",
             "method": "exact tensor comparison", "result": "proved" if same else "FAILED"},
            {"name": "weights-integer", "statement": "every weight, bias, embedding and "
             "positional entry is an integer", "method": "exact comparison with round()",
             "result": "proved" if integral else "FAILED"}]


def sink_channels(heads: Sequence[object]) -> list[str]:
    """Every channel a sink head reads at [BOS] as a key field, key mask or value source:
    the ones ``bos-row-zero`` must find exactly 0."""
    out: set[str] = set()
    for h in heads:
        if isinstance(h, Head) and h.sink:
            out |= {y for f in h.fields for y in f[2:]} | {h.mask}
            out |= {src for src, _ in h.values}
    return sorted(out)


def bos_certificate(rows: Sequence[torch.Tensor], channels: dict[str, int],
                    read: Sequence[str]) -> dict:
    """``bos-row-zero``: every channel in ``read`` is exactly 0 in every row."""
    bad = sorted(c for c in read if any(float(r[channels[c]]) != 0.0 for r in rows))
    return {"name": "bos-row-zero", "statement": "at position 1 ([BOS], input-independent) "
            "every channel a sink head reads as key or value is exactly 0",
            "method": "computed at p bits", "result": "proved" if not bad else "FAILED",
            "nonzero": bad}


def exactness_certificates(bounds: dict[str, int], p: int) -> list[dict]:
    """Integer exactness at p bits and of every float64 partial sum, and softmax underflow."""
    f64 = cert.integer_exactness(bounds, 53, scale_bits=10)
    f64["name"] = "float64-accumulation-exactness"
    return [cert.integer_exactness(bounds, p, scale_bits=10), f64,
            cert.underflow_lemma(BETA, p)]


def fingerprint(net: torch.nn.Module) -> str:
    """sha256 of every tensor of ``net`` (names and bytes, sorted): ``--jobs`` workers rebuild
    the network and must find the one the certificates checked."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to(torch.float64).contiguous().numpy().tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=2)
def _worker_net(module: str, n: int) -> torch.nn.Module:
    return importlib.import_module(module).default_net(n)


def decode_worker(module: str, n: int, p: int, expected: str, edges: list[np.ndarray]
                  ) -> tuple[list[list[int]], Audit]:
    """The picklable batch decoder behind ``--jobs``: the process builds ``module``'s network
    once (``default_net(n)``), checks that it is the certified one (``expected``: the parent's
    fingerprint) and decodes with ``module.run_batch``."""
    torch.set_num_threads(1)
    net = _worker_net(module, n)
    if fingerprint(net) != expected:
        raise RuntimeError("a --jobs worker built a network that differs from the certified "
                           "one; rerun without --jobs")
    return importlib.import_module(module).run_batch(n, net, edges, p)


def nx_label(n: int, edges: np.ndarray) -> int:
    """``[TRUE]`` iff networkx says the graph is a tree (an oracle independent of ours)."""
    return T.TRUE if T.networkx_is_tree(n, edges) else T.FALSE


def _first_diff(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def check_decoder(module, n: int, p: int, net, own_net: bool, orders: str, samples: int,
                  seed: int, progress: Callable[[int], None] | None, jobs: int
                  ) -> tuple[dict, int]:
    """:func:`run_plan` for the network decoder of verifier ``module`` (its ``run_batch``,
    ``reference``, ``batch_size``; ``--jobs`` workers rebuild ``default_net`` and must find
    ``net``'s fingerprint, so workers are used only for the module's own network,
    ``own_net``). Returns (plan, positions fed for the longest CoT)."""
    plan = run_plan(n, orders, samples, seed, module.batch_size(n),
                    lambda es: module.run_batch(n, net, es, p),
                    lambda e: module.reference(n, e), progress, jobs,
                    functools.partial(decode_worker, module.__name__, n, p, fingerprint(net))
                    if own_net and jobs > 1 else None)
    return plan, 3 * n - 1 + max(plan["max_cot"] - 1, 0)


def run_plan(n: int, orders: str, samples: int, seed: int, batch: int,
             decode: Callable[[list[np.ndarray]], tuple[list[list[int]], Audit]],
             reference: Callable[[np.ndarray], list[int]],
             progress: Callable[[int], None] | None = None, jobs: int = 1,
             worker: Callable[[list[np.ndarray]], tuple[list[list[int]], Audit]] | None = None
             ) -> dict:
    """Decode every planned input in batches; an input passes iff its transcript equals
    ``reference(edges)`` token for token.  With ``jobs > 1`` and a picklable ``worker`` (same
    contract as ``decode``, building its own network) the batches run in that many spawned
    processes; results are merged in order, so the verdict is the same.  Returns mode, total,
    words, inputs, failures (list), max_cot, audit (the summed :class:`Audit`)."""
    mode, total, words = enumeration_plan(n, orders)
    inputs: list[tuple[str, np.ndarray]] = []
    if mode is not None:
        for edges in T.enumerate_edge_sets(n):
            inputs += [("enumeration", e) for e in edge_orders(edges, mode)]
    extra = list(extra_graphs(n, samples, seed))
    inputs += extra
    fails: list[dict] = []
    cot = 0
    audit = Audit()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small tensor ops: one thread is much faster
    if jobs > 1 and worker is not None:  # smaller batches never need more memory
        batch = max(1, min(batch, -(-len(inputs) // jobs)))
    parts = [inputs[s:s + batch] for s in range(0, len(inputs), batch)]
    pool = None
    try:
        if jobs > 1 and worker is not None and len(parts) > 1:
            import multiprocessing as mp
            import signal

            pool = mp.get_context("spawn").Pool(min(jobs, len(parts)), signal.signal,
                                                (signal.SIGINT, signal.SIG_IGN))
            results = pool.imap(worker, [[e for _, e in part] for part in parts])
        else:
            results = (decode([e for _, e in part]) for part in parts)
        for part, (outs, aud) in zip(parts, results, strict=True):
            audit.add(aud)
            for (where, e), got in zip(part, outs, strict=True):
                want = reference(e)
                cot = max(cot, len(got))
                if got != want:
                    i = _first_diff(got, want)
                    fails.append({"where": where, "edges": np.asarray(e).tolist(), "reason":
                                  f"token {i} after the prompt: wrote "
                                  f"{T.render(got[i:i + 1]) or 'nothing'}, the reference has "
                                  f"{T.render(want[i:i + 1]) or 'nothing'}"})
            if progress:
                progress(len(part))
    finally:
        if pool is not None:
            pool.terminate()
        torch.set_num_threads(threads)
    if audit.not_one_hot or audit.non_integer:
        fails.append({"where": "audit", "edges": [], "reason":
                      f"{audit.not_one_hot} attention rows not exactly one-hot, "
                      f"{audit.non_integer} non-integer residual entries"})
    sampled = sum(1 for w, _ in extra if w.endswith("sample"))
    if extra:
        words += (f"; plus {sampled} official-family samples (seed {seed}) and "
                  f"{len(extra) - sampled} adversarial graphs")
    return {"mode": mode, "total": total, "words": words, "inputs": len(inputs),
            "failures": fails, "max_cot": cot, "audit": audit}


def verdict(method: str, n: int, plan: dict, certs: list[dict], p: int, formula: str,
            extra: dict, t0: float) -> IsTreeVerdict:
    """The verdict dict with the keys of ``verify.istree.rnn_rag.verify_rnn_rag`` plus
    precision_bits, precision_formula, certificates, audit and ``extra``."""
    import time

    fails = list(plan["failures"])
    bad = [c["name"] for c in certs if c["result"] != "proved"]
    if bad:
        fails.append({"where": "certificates", "edges": [], "reason": "certificate(s) failed: "
                      + ", ".join(bad)})
    a = plan["audit"]
    return {"task": "istree", "method": method, "n": n,
            "verified": plan["mode"] == "all" and not fails, "passed": not fails,
            "input_failures": sum(1 for f in fails if f["where"] not in ("audit",
                                                                          "certificates")),
            "exhaustive": plan["mode"] == "all", "enumerated": plan["words"],
            "inputs_checked": plan["inputs"], "failures": len(fails),
            "failure_examples": fails[:10], "max_cot_tokens": plan["max_cot"],
            "precision_bits": p, "precision_formula": formula, "certificates": certs,
            "audit": {"attention_rows_checked": a.rows, "not_one_hot": a.not_one_hot,
                      "non_integer_residuals": a.non_integer, "max_abs_residual": a.max_abs},
            **extra, "seconds": round(time.perf_counter() - t0, 3),
            "planned_enumeration": plan["total"]}
