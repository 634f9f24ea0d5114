"""Figure + RESULTS.md of the IsTree experiment at CPU scale, from the sweeps' results.jsonl.

    python experiments/istree_small/summarize.py

Reads runs-lr/results.jsonl (the learning-rate sweep) and runs-main/results.jsonl (the main
grid), writes figure.png (one panel per format, accuracy by generation per architecture:
median over seeds with the min-max range, every seed a dot), summary.json (the numbers below)
and RESULTS.md. The paper's qualitative claims are checked from the numbers with the stated
thresholds; nothing is written by hand.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FORMATS = ("plain", "cot", "retrieval")
ARCHS = ("transformer", "mamba", "hybrid")
NEAR = 0.95      # "near 100%"


def rows(folder: str) -> list[dict]:
    p = HERE / folder / "results.jsonl"
    if not p.is_file():
        sys.exit(f"error: {p} is missing: run the sweep first (see RESULTS.md)")
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


def cell(rs: list[dict]) -> dict | None:
    acc = [r["accuracy_generation"] for r in rs if r.get("status") == "finished"]
    if not acc:
        return None
    return {"median": statistics.median(acc), "min": min(acc), "max": max(acc),
            "seeds": len(acc), "values": acc,
            "retrievals": sum(r.get("retrievals_executed") or 0 for r in rs)}


def main() -> None:
    lr, mn = rows("runs-lr"), rows("runs-main")
    table = {f: {a: cell([r for r in mn if r["format"] == f and r["arch"] == a])
                 for a in ARCHS} for f in FORMATS}
    med = {f: {a: (table[f][a] or {}).get("median") for a in ARCHS} for f in FORMATS}

    def ok(x):
        return x is not None

    claims = []
    helps = {a: ok(med["cot"][a]) and ok(med["plain"][a]) and med["cot"][a] > med["plain"][a]
             for a in ARCHS}
    claims.append(("CoT helps every architecture (median cot > median plain)",
                   all(helps.values()),
                   ", ".join(f"{a}: plain {med['plain'][a]:.3f} -> cot {med['cot'][a]:.3f}"
                             for a in ARCHS if ok(med["cot"][a]) and ok(med["plain"][a]))))
    t, m = med["cot"]["transformer"], med["cot"]["mamba"]
    claims.append((f"with CoT the Transformer is near 100% (>= {NEAR}) while Mamba trails",
                   ok(t) and ok(m) and t >= NEAR and m < t,
                   f"transformer {t:.3f}, mamba {m:.3f}" if ok(t) and ok(m) else "missing"))
    mr = med["retrieval"]["mamba"]
    claims.append((f"the retrieval format brings Mamba near 100% (>= {NEAR})",
                   ok(mr) and mr >= NEAR, f"mamba retrieval {mr:.3f}" if ok(mr) else "missing"))
    h = med["cot"]["hybrid"]
    claims.append(("the hybrid closes the gap (cot: hybrid >= transformer - 0.05, > mamba)",
                   ok(h) and ok(t) and ok(m) and h >= t - 0.05 and h > m,
                   f"hybrid {h:.3f}, transformer {t:.3f}, mamba {m:.3f}"
                   if ok(h) and ok(t) and ok(m) else "missing"))
    cpu = sum(r.get("cpu_s") or 0 for r in lr + mn)
    failed = [r for r in lr + mn if r.get("status") != "finished"]
    lrs = json.loads((HERE / "runs-main" / "sweep.json").read_text()).get("learning_rates_from")
    summary = {"table": table, "claims": [{"claim": c, "holds": bool(h_), "evidence": e}
                                          for c, h_, e in claims],
               "cpu_minutes": round(cpu / 60, 1), "runs": len(lr) + len(mn),
               "not_finished": [r["run"] for r in failed], "learning_rates": lrs}
    (HERE / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    _figure(table)
    _markdown(summary, lr, table)
    print(json.dumps({k: summary[k] for k in ("claims", "cpu_minutes", "runs")}, indent=1))


def _figure(table: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), sharey=True)
    colors = {"transformer": "tab:blue", "mamba": "tab:orange", "hybrid": "tab:green"}
    for ax, f in zip(axes, FORMATS):
        for i, a in enumerate(ARCHS):
            c = table[f][a]
            if c is None:
                continue
            ax.bar(i, c["median"], color=colors[a], alpha=0.75, label=a)
            ax.errorbar(i, c["median"], yerr=[[c["median"] - c["min"]], [c["max"] - c["median"]]],
                        color="k", capsize=4)
            ax.scatter([i] * len(c["values"]), c["values"], color="k", s=10, zorder=3)
        ax.set_xticks(range(len(ARCHS)), ARCHS)
        ax.set_title(f"IsTree n = 8, format {f}")
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("accuracy by generation (held out)")
    fig.tight_layout()
    fig.savefig(HERE / "figure.png", dpi=120)
    plt.close(fig)


def _markdown(s: dict, lr: list[dict], table: dict) -> None:
    start = (HERE / "timing.json")
    timing = json.loads(start.read_text()) if start.is_file() else {}
    L = ["# The IsTree experiment at CPU scale (claim C8; paper Figures 2 and 4)", "",
         "Made by (2 workers, one torch thread each, on a 2-core machine):", "", "```",
         "rnngap sweep experiments/istree_small/lr.toml --out experiments/istree_small/runs-lr",
         "rnngap sweep experiments/istree_small/grid.toml --out experiments/istree_small/runs-main",
         "python experiments/istree_small/summarize.py", "```", "",
         f"{s['runs']} runs, **{s['cpu_minutes']} CPU-minutes** in all (train + held-out "
         f"evaluation, summed over runs; budget 90)"
         + (f"; wall time {timing['wall_minutes']} minutes" if timing else "") + ". "
         "Setup: IsTree n = 8, binary family, the official vocabulary and formats, rnngap's "
         "`small` models (d_model 32, 2 layers; hybrid: Mamba, one attention layer, Mamba), "
         "learned embedding (the frozen official table does not learn at this scale, "
         "docs/learning.md), 1,500 steps of 32 samples, warmup 50, cosine, AdamW. Accuracy by "
         "greedy generation on 256 held-out graphs (a hash partition of edge sets never "
         "trained on), every [STARTSEARCH] query of the retrieval format executed live.", ""]
    L += ["## Learning rate (cot format, seed 0, held-out stream 1000)", "",
          "| arch | lr 0.001 | lr 0.003 | lr 0.01 | chosen |", "|---|---|---|---|---|"]
    for a in ARCHS:
        cells = []
        for v in (1e-3, 3e-3, 1e-2):
            r = [x for x in lr if x["arch"] == a and abs(x["lr"] - v) < 1e-12]
            cells.append(f"{r[0]['accuracy_generation']:.3f}" if r and r[0].get(
                "accuracy_generation") is not None else "-")
        L.append(f"| {a} | " + " | ".join(cells) + f" | {(s['learning_rates'] or {}).get(a)} |")
    L += ["", "## Accuracy by generation (median [min, max] over 2 seeds)", "",
          "![figure](figure.png)", "", "| format | transformer | mamba | hybrid |",
          "|---|---|---|---|"]
    for f in FORMATS:
        cells = [f"{c['median']:.3f} [{c['min']:.3f}, {c['max']:.3f}]" if (c := table[f][a])
                 else "-" for a in ARCHS]
        L.append(f"| {f} | " + " | ".join(cells) + " |")
    L += ["", "## The paper's qualitative claims, checked from the numbers", "",
          "| claim | holds here | evidence |", "|---|---|---|"]
    L += [f"| {c['claim']} | {'yes' if c['holds'] else 'NO'} | {c['evidence']} |"
          for c in s["claims"]]
    if s["not_finished"]:
        L += ["", f"Runs not finished: {', '.join(s['not_finished'])}."]
    L += ["", ("Data: `runs-lr/results.jsonl`, `runs-main/results.jsonl` (one row per run), "
          "`summary.json` (this table). Seed noise: the [min, max] columns are the spread of "
          "two seeds; a rerun from a fresh clone reproduces every number on the same machine "
          "(seeded data and weights, one thread)."), ""]
    (HERE / "RESULTS.md").write_text("\n".join(L))


if __name__ == "__main__":
    main()
