"""Benchmark: the range verdict (every n in [n_min, N] at once) against today's per-n verifier.

Not a test; prints ratios measured in the same run. For each (task, model):

* ``range``: ``verify_range(prover, n_min, N, cross_checks=0)`` -- the proof for every n;
* ``per-n``: today's verifier at a few n (samples 0), and from them the cost of verifying every
  n of the range one by one, extrapolated with the per-n cost as ``a + b n`` fitted through the
  two largest measured n (a lower estimate: the per-n cost grows at least linearly in n).

    python benchmarks/verify_range.py                         # Index, both models, N = 2^20
    python benchmarks/verify_range.py --tasks index,ar --n-max 65536 --out results.json

A task whose lemmas stop below N (c-gram's default alphabet: p(n) > 52 beyond n = 114,500) is
run up to its limit (the row's n_max says so).
"""

from __future__ import annotations

import argparse
import json
import platform
import time


def per_n_seconds(prover, n: int) -> float:
    t0 = time.perf_counter()
    v = prover.per_n(n, 0, 0)
    dt = time.perf_counter() - t0
    if not v["verified"]:
        raise SystemExit(f"per-n verifier failed at n={n}: {v.get('failure')}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="index", help="comma-separated task names")
    ap.add_argument("--models", default="transformer,hybrid")
    ap.add_argument("--n-max", type=int, default=1 << 20)
    ap.add_argument("--per-n", default="4096,65536,1048576",
                    help="n at which the per-n verifier is timed (at most --n-max)")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from rnngap.verify.every_n import prover_for, verify_range

    rows = []
    for task in args.tasks.split(","):
        for model in args.models.split(","):
            prover = prover_for(task, model)
            lo, hi = prover.n_min, min(args.n_max, prover.n_limit)
            t0 = time.perf_counter()
            v = verify_range(prover, lo, hi, cross_checks=0)
            t_range = time.perf_counter() - t0
            ns = [int(x) for x in args.per_n.split(",") if int(x) <= hi]
            ns = [n if prover.valid(n) else n - 1 for n in ns]
            per = {n: per_n_seconds(prover, n) for n in ns}
            row = {"task": task, "model": model, "n_min": lo, "n_max": hi,
                   "verified": v["verified"], "blocks": len(v["blocks"]),
                   "range_seconds": round(t_range, 2), "proof_seconds": v["proof_seconds"],
                   "block_scan_seconds": v["block_seconds"],
                   "per_n_seconds": {str(n): round(s, 3) for n, s in per.items()}}
            if len(ns) >= 2:
                (n1, s1), (n2, s2) = sorted(per.items())[-2:]
                slope = max((s2 - s1) / (n2 - n1), 0.0)
                icpt = max(s1 - slope * n1, 0.0)
                count = sum(1 for n in range(lo, hi + 1) if prover.valid(n)) if \
                    hi <= 1 << 16 else (hi - lo + 1) // (2 if task == "ar" else 1)
                mean_n = (lo + hi) / 2
                naive = count * (icpt + slope * mean_n)
                row["one_by_one_estimate_seconds"] = round(naive, 0)
                row["speedup_vs_one_by_one"] = round(naive / t_range, 0)
                row["range_over_largest_per_n"] = round(t_range / per[max(ns)], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {"machine": platform.platform(), "python": platform.python_version(),
            "torch_threads": 1, "command": "python benchmarks/verify_range.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
