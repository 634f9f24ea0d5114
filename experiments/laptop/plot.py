"""Plot ``results.json`` of ``run.py``: accuracy through generation vs n, one line per
architecture (and format), mean over seeds with a min-max band; also prints the table.

    python experiments/laptop/plot.py [--results results.json] [--out accuracy_vs_n.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def summarize(rows: list[dict]) -> list[dict]:
    """One entry per (arch, n): mean, sample std, min, max of accuracy_generation over seeds."""
    groups: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        groups.setdefault((r["arch"], r["n"]), []).append(r["accuracy_generation"])
    out = []
    for (arch, n), accs in sorted(groups.items()):
        out.append({"arch": arch, "n": n, "seeds": len(accs), "mean": statistics.fmean(accs),
                    "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "min": min(accs), "max": max(accs)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(HERE / "results.json"))
    ap.add_argument("--out", default=str(HERE / "accuracy_vs_n.png"))
    a = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(a.results).read_text())
    meta, summ = res["meta"], summarize(res["rows"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for arch in sorted({s["arch"] for s in summ}):
        pts = [s for s in summ if s["arch"] == arch]
        ns = [p["n"] for p in pts]
        ax.plot(ns, [p["mean"] for p in pts], marker="o", label=f"{arch} ({meta['format']})")
        ax.fill_between(ns, [p["min"] for p in pts], [p["max"] for p in pts], alpha=0.2)
    ns_all = sorted({s["n"] for s in summ})
    if meta["task"] == "ar":  # guessing one of the n/2 values present in the row
        ax.plot(ns_all, [2 / n for n in ns_all], "k--", lw=1, label="chance (1 of n/2 values)")
    ax.set_xticks(ns_all)
    ax.set_xlabel("n (task size)")
    ax.set_ylabel("accuracy through generation")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{meta['task']}: {meta['steps']} steps x batch {meta['batch_size']}, "
                 f"mean and min-max over seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out, dpi=130)
    print(f"{'arch':12s} {'n':>4s} {'seeds':>5s} {'mean':>6s} {'std':>6s} {'min':>6s} {'max':>6s}")
    for s in summ:
        print(f"{s['arch']:12s} {s['n']:4d} {s['seeds']:5d} {s['mean']:6.3f} {s['std']:6.3f} "
              f"{s['min']:6.3f} {s['max']:6.3f}")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
