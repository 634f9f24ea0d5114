"""Seconds per graph of the four IsTree methods, against the RNN + retrieval baseline.

For each n, the same sampled trees (``binary`` family, a full-length CoT) go through:

* ``rnn-rag`` (baseline): the bit-bounded RNN with regex retrieval, one graph at a time;
* ``hybrid-fsm``: the bit-bounded recurrent part + one attention layer, one graph at a time;
* ``hybrid``: the linear-RNN hybrid, batched greedy decoding at p(n) bits;
* ``transformer``: the 6-layer Transformer, batched greedy decoding at p(n) bits.

Each method's transcripts are checked against its reference (the run is void otherwise), and
the script prints seconds per graph and the ratio to ``rnn-rag`` measured in the same run.
``--threads`` sets torch's thread count (default 1: these are many small tensor ops).

    python benchmarks/istree_decoders.py --ns 16,64 --graphs 4
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(n: int, graphs: int, seed: int) -> list[dict]:
    from rnngap.constructions.istree import fsm_hybrid as F
    from rnngap.constructions.istree import hybrid as Hy
    from rnngap.constructions.istree import transformer as X
    from rnngap.constructions.istree.rnn_rag import run_istree
    from rnngap.tasks import istree as T
    from rnngap.verify.istree import hybrid as VH
    from rnngap.verify.istree import transformer as VX

    edges = list(T.sample_graphs(n, graphs, "binary", seed=seed)[0])
    truth = [T.is_tree(n, e) for e in edges]

    def rag() -> None:
        assert [run_istree(n, e).verdict for e in edges] == truth

    def fsm() -> None:
        assert [F.run(n, e).verdict for e in edges] == truth

    hy, tf = Hy.model(n), X.build(n).model()

    def hybrid() -> None:
        out, _ = VH.run_batch(n, hy, edges, Hy.precision_for(n))
        assert out == [VH.reference(n, e) for e in edges]

    def transformer() -> None:
        out, _ = VX.run_batch(n, tf, edges, X.precision_for(n))
        assert out == [VX.reference(n, e) for e in edges]

    rows = []
    base = _time(rag) / graphs
    for name, fn in (("rnn-rag", None), ("hybrid-fsm", fsm), ("hybrid", hybrid),
                     ("transformer", transformer)):
        per = base if fn is None else _time(fn) / graphs
        rows.append({"n": n, "method": name, "graphs": graphs, "seconds_per_graph": per,
                     "ratio_vs_rnn_rag": per / base})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="16,64")
    ap.add_argument("--graphs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = [r for n in (int(s) for s in a.ns.split(",")) for r in run(n, a.graphs, a.seed)]
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'n':>5} {'method':<12} {'s/graph':>10} {'x rnn-rag':>10}")
    for r in rows:
        print(f"{r['n']:>5} {r['method']:<12} {r['seconds_per_graph']:>10.3f} "
              f"{r['ratio_vs_rnn_rag']:>10.1f}")


if __name__ == "__main__":
    main()
