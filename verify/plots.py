"""Plots for verification results (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

import importlib
import math

#: mantissa bits including the implicit leading bit
FORMATS = {"bfloat16": 8, "float16": 11, "float32": 24, "float64": 53}
CONSTRUCTIONS = {"index": "rnngap.constructions.retrieval.index", "ar": "rnngap.constructions.retrieval.ar",
                 "cgram": "rnngap.constructions.retrieval.cgram",
                 "counting": "rnngap.constructions.retrieval.counting"}


def claimed_precision(name: str, n: int, verdict: dict | None = None) -> int | None:
    """The construction's claimed p(n) (its ``precision_for(n)`` function)."""
    try:
        mod = importlib.import_module(CONSTRUCTIONS[name])
    except ModuleNotFoundError:
        return None
    return mod.precision_for(n)


def precision_plot(path: str, names: list[str], n_max: int, verdicts: list[dict]) -> None:
    """Precision each construction needs (bits) vs log2 n for n = 2, 4, ..., n_max, with the
    bfloat16 / float16 / float32 mantissa widths as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [2 ** e for e in range(1, max(1, int(math.log2(max(2, n_max)))) + 1)]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in names:
        ps = [claimed_precision(name, n) for n in ns]
        if all(p is not None for p in ps):
            ax.plot([math.log2(n) for n in ns], ps, marker="o", label=f"{name}: claimed p(n)")
    for v in verdicts:
        s = v.get("precision_search", {})
        if s.get("least_verifying"):
            ax.scatter([math.log2(v["n"])], [s["least_verifying"]], marker="*", s=120, zorder=5,
                       label=f"{v['task']}: least verifying p at n={v['n']}")
    top = 26
    for fmt, bits in FORMATS.items():
        if fmt != "float64":
            ax.axhline(bits, ls="--", lw=1, color="grey")
            ax.text(math.log2(ns[-1]), bits + 0.3, f"{fmt} ({bits} bits)", fontsize=8,
                    color="grey", ha="right")
    for line in ax.get_lines():
        top = max(top, max(line.get_ydata(), default=0) + 2)
    ax.set_ylim(0, top)
    ax.set_xlabel("log2 n")
    ax.set_ylabel("mantissa bits p needed")
    ax.set_title("Mantissa bits the constructions claim, p(n); stars: least p verified")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
