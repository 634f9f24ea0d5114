"""The gap report: construction vs bound vs trained models, for one task, in one picture.

Three views of one task at lengths n = n_min, 2 n_min, ..., n_max:

* **construction**: the hand-set Transformer verified for every input at each n (accuracy 1 where
  ``verify`` proved it; the point is omitted where it did not), or for IsTree the RNN with
  in-context retrieval run on sampled graphs (its measured accuracy, labelled "sampled") and
  the IsTree Transformer with O(n) CoT (every input at n <= 5, 8 samples per family up to
  n = 256, not run beyond);
* **bound**: the Fano accuracy ceiling (``verify.ceilings``) for a machine with S bits of state,
  S taken from each trained recurrent model (counted by ``verify.archs`` from its config, as
  ``rnngap bound --config`` does) or, with no runs, a few reference sizes;
* **learned**: each trained run (``rnngap train --out RUN``) evaluated by generation at every n
  of the grid its vocabulary allows (the number embedding is a fixed function, so a larger n only
  grows the vocabulary).

Effective bits per state bit (per recurrent model): the information a perfect answer needs at the
largest n where the model still reaches 99% accuracy (log2 of the prefix classes,
``verify.bounds``), divided by its state bits. 1.0 would be a state used with perfect efficiency.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

REFERENCE_BITS = (64, 512, 4096)
RETRIEVAL = ("index", "ar", "cgram", "counting")


def grid(n_min: int, n_max: int, task: str) -> list[int]:
    ns, n = [], n_min
    while n <= n_max:
        if not (task == "ar" and n % 2):
            ns.append(n)
        n *= 2
    return ns


def construction_points(task: str, ns: list[int], seed: int = 0) -> dict:
    """Accuracy of the construction at each n (1.0 where verified for every input)."""
    if task == "istree":
        from rnngap.tasks.istree import sample_graphs
        return _istree_points(ns, seed, sample_graphs)
    import importlib

    from rnngap.tasks.registry import make_task

    mod = importlib.import_module(f"rnngap.verify.{task}")
    fn = getattr(mod, f"verify_{task}")
    pts = []
    for n in ns:
        v = fn(make_task(task, n=n), samples=8, seed=seed)
        pts.append({"n": n, "accuracy": 1.0 if v["verified"] else None,
                    "verified": v["verified"], "precision_bits": v["precision_bits"]})
    return {"label": "Transformer construction (verified, every input)", "points": pts}


TRANSFORMER_ISTREE_MAX_N = 256
"""Largest n at which the report runs the IsTree Transformer construction (about 2 s a graph
at n = 256; beyond that the point is left out and the report says so)."""


def transformer_istree_points(ns: list[int], seed: int) -> dict:
    """The IsTree Transformer construction (official cot format) at each n: verified on every
    input for n <= 5, else its accuracy on 8 sampled graphs per family (n <= 256 only)."""
    from rnngap.verify.transformer_istree import verify_transformer_istree

    pts = []
    for n in ns:
        if n > TRANSFORMER_ISTREE_MAX_N:
            pts.append({"n": n, "accuracy": None, "verified": False,
                        "note": f"not run (n > {TRANSFORMER_ISTREE_MAX_N})"})
            continue
        v = verify_transformer_istree(n, samples=0 if n < 4 else 8, seed=seed)
        wrong = v["input_failures"]
        pts.append({"n": n, "accuracy": 1 - wrong / v["inputs_checked"] if v["passed"] or wrong
                    else None, "verified": v["verified"], "inputs": v["inputs_checked"],
                    "precision_bits": v["precision_bits"]})
    return {"label": "Transformer construction, O(n) CoT (every input at n <= 5, sampled "
            "beyond)", "points": pts}


def _istree_points(ns, seed, sample_graphs) -> dict:
    from rnngap.constructions.rnn_rag import run_istree
    from rnngap.tasks.istree import is_tree

    pts = []
    for n in ns:
        graphs, _ = sample_graphs(n, 32, "random", seed)
        ok = sum(run_istree(n, g).verdict == is_tree(n, g) for g in graphs)
        pts.append({"n": n, "accuracy": ok / len(graphs), "verified": False,
                    "samples": len(graphs)})
    return {"label": "RNN + retrieval (sampled graphs)", "points": pts}


def ceiling_curve(task: str, ns: list[int], state_bits: float) -> list[float | None]:
    from rnngap.verify.ceilings import ceiling

    name = "counting" if task == "counting" else task
    return [ceiling(name, n, state_bits) for n in ns]


def info_bits(task: str, n: int) -> float | None:
    """log2 of the number of prefix classes at n (bits a perfect one-pass machine needs)."""
    from rnngap.verify.bounds import summarize

    s = summarize(task, n)
    return s.get("log2_prefix_classes") if s.get("log2_prefix_classes") is not None else \
        (math.log2(int(s["prefix_classes"])) if str(s.get("prefix_classes", "")).isdigit()
         else None)


def run_points(run: str, task: str, ns: list[int], samples: int, seed: int) -> dict:
    """Evaluate one trained run at every grid n it can take (generation accuracy)."""
    from rnngap.learned.evaluate import evaluate, load_run

    lm, data, _, _ = load_run(run)
    if data.task != task:
        raise ValueError(f"run {run} is for task {data.task!r}, not {task!r}")
    arch = lm.cfg.arch
    state_bits = _run_state_bits(run) if arch == "mamba" else None
    pts = []
    for n in ns:
        try:
            lm_n, data_n, _, _ = load_run(run, n=n)
            r = evaluate(lm_n, data_n, samples, min(samples, 64), seed)
        except (ValueError, RuntimeError) as e:
            pts.append({"n": n, "accuracy": None, "error": str(e)})
            continue
        pts.append({"n": n, "accuracy": r["accuracy_generation"],
                    "accuracy_teacher_forced": r.get("accuracy_teacher_forced")})
    return {"label": f"{arch} ({Path(run).name}, trained at n={data.n}, {data.fmt})",
            "arch": arch, "trained_n": data.n, "state_bits": state_bits, "points": pts}


def _run_state_bits(run: str) -> int | None:
    """State bits of a recurrent run, counted by ``verify.archs`` from its config (the same
    components as ``rnngap bound --config``, all float32 as rnngap runs keep them)."""
    from rnngap.verify.archs import state_from_config

    try:
        cfg = json.loads((Path(run) / "config.json").read_text())
        # rnngap trains and evaluates in float32: every state component is a float32
        return state_from_config(cfg, dtype="fp32").state_bits
    except (ValueError, KeyError, TypeError):
        return None


def effective_bits(task: str, model: dict) -> dict | None:
    """Information retrieved at the largest n still solved (>= 99%) per state bit."""
    if not model.get("state_bits"):
        return None
    solved = [p["n"] for p in model["points"] if (p.get("accuracy") or 0) >= 0.99]
    if not solved:
        return {"largest_n_solved": None, "info_bits": None, "effective_bits_per_state_bit": None}
    n = max(solved)
    info = info_bits(task, n)
    return {"largest_n_solved": n, "info_bits": info,
            "effective_bits_per_state_bit": None if info is None else info / model["state_bits"]}


def build_report(task: str, runs: list[str], out: str | Path, n_min: int, n_max: int,
                 samples: int = 256, seed: int = 0) -> dict:
    """Compute the three views, write report.png, report.md and report.json into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ns = grid(n_min, n_max, task)
    if not ns:
        raise ValueError(f"no valid n in [{n_min}, {n_max}] for {task}")
    cons = construction_points(task, ns, seed)
    extra = [transformer_istree_points(ns, seed)] if task == "istree" else []
    models = [run_points(r, task, ns, samples, seed) for r in runs]
    bits = sorted({m["state_bits"] for m in models if m.get("state_bits")}) or list(REFERENCE_BITS)
    ceilings = {str(b): ceiling_curve(task, ns, b) for b in bits}
    for m in models:
        m["effective"] = effective_bits(task, m)
    report = {"task": task, "ns": ns, "construction": cons, "constructions": [cons, *extra],
              "models": models,
              "ceilings": ceilings, "ceiling_note": "Fano accuracy ceiling for uniformly random "
              "data (verify.ceilings) for a machine with S state bits",
              "reference_bits": not any(m.get("state_bits") for m in models)}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    _plot(report, out / "report.png")
    (out / "report.md").write_text(_markdown(report))
    return report


def _plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    xs = [math.log2(n) for n in r["ns"]]
    for cons, style in zip(r["constructions"], ("k-o", "k:^"), strict=False):
        cp = cons["points"]
        ax.plot([math.log2(p["n"]) for p in cp if p["accuracy"] is not None],
                [p["accuracy"] for p in cp if p["accuracy"] is not None], style, lw=2,
                label=cons["label"])
    for s, ys in r["ceilings"].items():
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if pts:
            ax.plot(*zip(*pts), "--", lw=1.2, label=f"bound: ceiling for any {s}-bit-state RNN")
    for m in r["models"]:
        pts = [(math.log2(p["n"]), p["accuracy"]) for p in m["points"]
               if p.get("accuracy") is not None]
        if pts:
            ax.plot(*zip(*pts), "-s", label=m["label"])
    ax.set_xlabel("log2 n")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(f"{r['task']}: construction vs bound vs learned")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _markdown(r: dict) -> str:
    cons = r["constructions"]
    cols = ["n"] + (["construction"] if len(cons) == 1 else [c["label"] for c in cons]) + \
        [f"ceiling S={s}" for s in r["ceilings"]] + [m["label"] for m in r["models"]]
    lines = [f"# {r['task']}: construction vs bound vs learned", "",
             "![report](report.png)", "", "| " + " | ".join(cols) + " |",
             "|" + "---|" * len(cols)]
    for i, n in enumerate(r["ns"]):
        row = [str(n)] + [_fmt(c["points"][i]["accuracy"]) for c in cons]
        row += [_fmt(ys[i]) for ys in r["ceilings"].values()]
        row += [_fmt(m["points"][i].get("accuracy")) for m in r["models"]]
        lines.append("| " + " | ".join(row) + " |")
    errors = [f"- {m['label']} at n={p['n']}: not evaluated ({p['error']})"
              for m in r["models"] for p in m["points"] if p.get("error")]
    if errors:
        lines += ["", "Not evaluated (shown as '-'):"] + errors
    lines += [""] + [f"Construction: {c['label']}." for c in cons] + [
        f"Ceilings: {r['ceiling_note']}"
              + (" (reference sizes: no trained recurrent model given)." if r["reference_bits"]
                 else ".")]
    for m in r["models"]:
        e = m.get("effective")
        if e:
            lines.append(f"- {m['label']}: state {m['state_bits']} bits; largest n solved (>= 99%)"
                         f" {_fmt(e['largest_n_solved'])}; effective bits per state bit "
                         f"{_fmt(e.get('effective_bits_per_state_bit'))}")
    return "\n".join(lines) + "\n"
