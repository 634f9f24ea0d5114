"""Where the learned Index models fail: held-out accuracy by generation per query position i.

For every Index run of the experiment that is not solved (accuracy < 0.99), 2,048 held-out
inputs (the TEST stream of the run's seed, the same stream ``rnngap eval`` draws from) are
split by their query position i in 1..n. If the failures sat at the positions the length
mixture trains least (i > n/2 appears only in batches of length n), the model would be
missing the long positions; if they are scattered, it fails to tell some positions apart.

    python experiments/retrieval_scaling/per_position.py [--overwrite]   # after run.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def by_position(run_dir: Path, samples: int, seed: int) -> dict:
    """Accuracy by generation per query position of one Index run."""
    import torch

    from rnngap.learned.data import TEST, make_batch
    from rnngap.learned.evaluate import generate, load_run

    lm, data, _, _ = load_run(run_dir)
    n = data.n
    ok = np.zeros(n + 1)
    cnt = np.zeros(n + 1)
    for i in range(-(-samples // 256)):
        b = make_batch(data, 256, seed, i, TEST)
        gen, _ = generate(lm, torch.from_numpy(b.tokens[:, :-1]), 1)
        q = b.tokens[:, -2]                              # x_1..x_n, i, answer
        np.add.at(ok, q, np.asarray(gen)[:, 0] == b.labels)
        np.add.at(cnt, q, 1)
    acc = ok[1:] / np.maximum(cnt[1:], 1)
    weak = [int(j + 1) for j in np.flatnonzero(acc < 0.9)]
    return {"n": n, "samples": int(cnt.sum()), "accuracy": float(ok.sum() / cnt.sum()),
            "weak_positions": weak,
            "weak_in_upper_half": sum(1 for j in weak if j > n // 2),
            "min_position_accuracy": float(acc.min())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(HERE / "runs"))
    ap.add_argument("--results", default=str(HERE / "results.json"))
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--out", default=str(HERE / "per_position.json"))
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    a = ap.parse_args()
    if Path(a.out).exists() and not a.overwrite:
        print(f"error: {a.out} exists; pass --overwrite to replace it", file=sys.stderr)
        sys.exit(2)
    import torch
    torch.set_num_threads(1)
    rows = [r for r in json.loads(Path(a.results).read_text())
            if r["task"] == "index" and r["phase"] == "main" and r["accuracy_generation"] < 0.99
            and r["arch"] != "mamba"]
    missing = [r["name"] for r in rows if not (Path(a.runs) / r["name"]).is_dir()]
    if missing:
        print(f"error: run directories missing under {a.runs} (run run.py first): "
              + ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else ""), file=sys.stderr)
        sys.exit(2)
    out = []
    for r in sorted(rows, key=lambda r: (r["arch"], r["n"], r["seed"])):
        d = by_position(Path(a.runs) / r["name"], a.samples, r["seed"])
        out.append({"name": r["name"], "arch": r["arch"], "seed": r["seed"], **d})
        print(f"{r['name']}: {d['accuracy']:.3f}, {len(d['weak_positions'])} of {d['n']} "
              f"positions below 0.9 ({d['weak_in_upper_half']} of them in the upper half)")
    Path(a.out).write_text(json.dumps({"command": "python experiments/retrieval_scaling/"
                                       "per_position.py", "samples": a.samples, "rows": out},
                                      indent=1) + "\n")


if __name__ == "__main__":
    main()
