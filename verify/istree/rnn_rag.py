"""Verification of the RNN + retrieval IsTree machine, and the no-retrieval contrast (C5, C4).

For every checked graph the machine (:mod:`rnngap.constructions.istree.rnn_rag`) runs with a fresh
retrieval environment, and the check passes iff its whole transcript is accepted token for
token by the validating parser :func:`rnngap.tasks.istree.parse` (prompt, every query, every
retrieved token, ``[EOS]``) and its verdict equals networkx's ``is_tree`` (an oracle independent
of our union-find label).

An *input* of IsTree_n is a prompt: n - 1 distinct non-loop edges in some order, each edge
written ``u v`` with u > v as the official format writes it (the orientation is fixed by the
format, so it is not enumerated).  There are ``C(C(n,2), n-1) * (n-1)!`` inputs.

Plan (``orders="auto"``): for small n every set of n - 1 distinct non-loop edges is checked;
in every prompt order when ``C(C(n,2), n-1) * (n-1)! <= ORDER_LIMIT`` (n <= 5), otherwise in
two orders (sorted and reversed); beyond ``EDGESET_LIMIT`` edge sets nothing is enumerated
(``orders="all"`` or ``"one"`` then raise ValueError: they ask for an enumeration).
In every case ``samples`` graphs from each official family ("binary", "random"; correct
samplers) and the adversarial families are checked too.  ``verified`` and ``exhaustive`` are
True only when EVERY input was checked (every edge set in every prompt order) -- a streaming
machine's answer may depend on the order -- and ``verified`` also needs no failure; otherwise
``passed`` says whether everything checked passed, and the ``enumerated`` sentence says exactly
what was covered (e.g. "every edge set ..., in 2 of 120 prompt orders each").

Verdict keys: task, method, n, verified, passed, exhaustive, enumerated, inputs_checked,
failures (count), failure_examples (up to 10), peak_state_bits (largest bits in use in any
run), declared_state_bits (the machine's memory M), max_cot_tokens and retrievals (largest per
transcript), seconds, planned_enumeration (inputs the enumeration part planned).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator

import numpy as np

from rnngap.constructions.istree.rnn_rag import IsTreeRAG, run_istree
from rnngap.tasks import istree as T
from rnngap.verify.verdict import ISTREE_KEYS, IsTreeVerdict

VERDICT_KEYS = ISTREE_KEYS
"""The keys every IsTree method's verdict carries (``verify.verdict.IsTreeVerdict``)."""
ORDER_LIMIT = 100_000
ALL_LIMIT = 2_000_000
EDGESET_LIMIT = 60_000


def check_one(n: int, edges: np.ndarray) -> tuple[str | None, dict[str, int]]:
    """Run the machine on one graph; return (failure reason or None, its statistics)."""
    tr = run_istree(n, edges)
    stats = {"peak": tr.peak_bits, "cot": tr.cot_len, "ret": tr.retrievals,
             "declared": tr.declared_bits}
    truth = T.networkx_is_tree(n, edges)
    try:
        T.parse(n, tr.tokens, "retrieval", check_label=False)
    except ValueError as err:
        return f"transcript rejected by the parser: {err}", stats
    if tr.verdict != truth:
        return f"verdict {tr.verdict}, truth {truth}", stats
    return None, stats


def edge_orders(edges: np.ndarray, mode: str) -> Iterator[np.ndarray]:
    if mode == "all":
        for perm in itertools.permutations(range(len(edges))):
            yield edges[list(perm)]
    else:
        yield edges
        if mode == "two":
            yield edges[::-1]


def enumeration_plan(n: int, orders: str) -> tuple[str | None, int, str]:
    """(order mode or None, planned inputs, words) for the enumeration part."""
    if orders not in ("auto", "all", "one"):
        raise ValueError("orders must be auto, all or one")
    pairs = n * (n - 1) // 2
    log10_sets = (math.lgamma(pairs + 1) - math.lgamma(n) - math.lgamma(pairs - n + 2)) \
        / math.log(10)
    if log10_sets > 8 or T.count_edge_sets(n) > EDGESET_LIMIT:
        if orders != "auto":
            raise ValueError(f"--orders {orders} asks for an enumeration, but n={n} has "
                             f"C({pairs}, {n - 1}) ~ 10^{log10_sets:.0f} edge sets (limit "
                             f"{EDGESET_LIMIT}, n <= 7); use --orders auto (samples only)")
        return None, 0, (f"no enumeration (C({pairs}, {n - 1}) ~ 10^{log10_sets:.0f} edge sets "
                         f"is too many): NOT every input was checked")
    sets = T.count_edge_sets(n)
    per = math.factorial(n - 1)
    head = (f"every one of the {sets} edge sets of n-1={n - 1} distinct non-loop edges "
            f"(each edge written u > v, the official orientation)")
    if orders == "all" and sets * per > ALL_LIMIT:
        raise ValueError(f"all orders means {sets * per} inputs at n={n} (limit {ALL_LIMIT}); "
                         f"use --orders auto or one")
    if orders == "all" or (orders == "auto" and sets * per <= ORDER_LIMIT):
        return "all", sets * per, (f"{head}, in all {per} of {per} prompt orders each: "
                                   f"every input ({sets * per})")
    if orders == "one":
        return "one", sets, (f"{head}, in 1 of {per} prompt orders each (sorted): NOT every "
                             f"input ({sets} of {sets * per})")
    return "two", 2 * sets, (f"{head}, in 2 of {per} prompt orders each (sorted and reversed): "
                             f"NOT every input ({2 * sets} of {sets * per})")


def _check_chunk(args: tuple[int, str, list[np.ndarray], str]) -> dict:
    """Worker: check every order (per ``mode``) of the given edge sets."""
    n, mode, sets, where = args
    out = {"checked": 0, "peak": 0, "cot": 0, "ret": 0, "failures": []}
    for edges in sets:
        for e in edge_orders(edges, mode):
            why, st = check_one(n, e)
            out["checked"] += 1
            for k in ("peak", "cot", "ret"):
                out[k] = max(out[k], st[k])
            if why:
                out["failures"].append({"where": where, "edges": e.tolist(),
                                        "reason": why})
    return out


def extra_graphs(n: int, samples: int, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    if n >= 4:  # both families and the adversarial graphs need n >= 4
        for fam in T.FAMILIES:
            if samples:
                for e in T.sample_graphs(n, samples, fam, seed=seed)[0]:
                    yield f"{fam} sample", e
        for name, e in T.adversarial_graphs(n).items():
            yield f"adversarial {name}", e


def verify_rnn_rag(n: int, orders: str = "auto", samples: int = 100, seed: int = 0,
                   progress: Callable[[int], None] | None = None, jobs: int = 1) -> IsTreeVerdict:
    """Check the IsTree RNN + retrieval machine; return the verdict dict (module docstring).

    ``progress(k)`` is called with the number of inputs just checked; ``jobs > 1`` spreads the
    enumeration over worker processes (same result, same order of failure reports).
    """
    t0 = time.perf_counter()
    mode, total, words = enumeration_plan(n, orders)
    chunks: list[tuple[int, str, list[np.ndarray], str]] = []
    if mode is not None:
        sets = list(T.enumerate_edge_sets(n))
        step = max(1, min(64, len(sets) // (4 * max(1, jobs)) or 1))
        chunks = [(n, mode, sets[i:i + step], "enumeration")
                  for i in range(0, len(sets), step)]
    extra = [(w, e) for w, e in extra_graphs(n, samples, seed)]
    chunks += [(n, "one", [e], w) for w, e in extra]
    agg = {"checked": 0, "peak": 0, "cot": 0, "ret": 0, "failures": []}

    def merge(part: dict) -> None:
        agg["checked"] += part["checked"]
        for k in ("peak", "cot", "ret"):
            agg[k] = max(agg[k], part[k])
        agg["failures"] += part["failures"]
        if progress:
            progress(part["checked"])

    if jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs) as pool:
            for part in pool.imap(_check_chunk, chunks):
                merge(part)
    else:
        for c in chunks:
            merge(_check_chunk(c))
    sampled = sum(1 for w, _ in extra if w.endswith("sample"))
    words += (f"; plus {sampled} official-family samples (seed {seed}) and "
              f"{len(extra) - sampled} adversarial graphs")
    fails = agg["failures"]
    return IsTreeVerdict(
        task="istree", method="rnn-rag", n=n,
        verified=mode == "all" and not fails,
        passed=not fails,
        exhaustive=mode == "all",
        enumerated=words,
        inputs_checked=agg["checked"],
        failures=len(fails),
        failure_examples=fails[:10],
        peak_state_bits=agg["peak"],
        declared_state_bits=IsTreeRAG(n).declared_bits,
        max_cot_tokens=agg["cot"],
        retrievals=agg["ret"],
        seconds=round(time.perf_counter() - t0, 3),
        planned_enumeration=total,
    )


METHODS: dict[str, Callable[..., dict]] = {"rnn-rag": verify_rnn_rag}
"""method -> callable(n, orders=, samples=, seed=, progress=, jobs=) returning the verdict dict.
Another method (hybrid, transformer) plugs in by adding an entry here."""


def fool_no_retrieval(n: int = 4) -> dict:
    """Two graphs that the machine with its retrieval oracle switched off cannot tell apart.

    Without retrieval, every token after the prompt is a function of the state reached at the
    end of the prompt (the machine's own outputs and the constant failure token are all it
    reads).  So two graphs with equal post-prompt states get the same transcript and verdict;
    if one is a tree and the other is not, one verdict is wrong.  This searches all edge sets
    for such a pair (pigeonhole: the machine's state after the prompt has at most
    2**declared_bits values, while one-pass IsTree needs Omega(n log n) bits, C4), runs both
    with and without retrieval, and reports the transcripts' verdicts.
    """
    by_state: dict[tuple, dict[bool, np.ndarray]] = {}
    pair = None
    for e in T.enumerate_edge_sets(n):
        tr = run_istree(n, e, retrieval=False)
        slot = by_state.setdefault(tr.prompt_state, {})
        slot.setdefault(T.is_tree(n, e), e)
        if len(slot) == 2:
            pair = slot
            break
    if pair is None:
        raise RuntimeError("no confusable pair found (the machine stores the whole graph)")
    tree, other = pair[True], pair[False]
    off_t, off_o = run_istree(n, tree, retrieval=False), run_istree(n, other, retrieval=False)
    on_t, on_o = run_istree(n, tree), run_istree(n, other)
    return {
        "n": n, "tree": tree.tolist(), "non_tree": other.tolist(),
        "same_state_after_prompt": off_t.prompt_state == off_o.prompt_state,
        "same_cot_without_retrieval": off_t.tokens[off_t.prompt_len:] ==
        off_o.tokens[off_o.prompt_len:],
        "verdicts_without_retrieval": [off_t.verdict, off_o.verdict],
        "verdicts_with_retrieval": [on_t.verdict, on_o.verdict],
        "truth": [True, False],
        "declared_state_bits": off_t.declared_bits,
        "prompt_states_seen_before_the_pair": len(by_state),
    }
