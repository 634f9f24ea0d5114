"""The gap report: construction vs bound vs trained models, for one task, in one picture.

Three views of one task at lengths n = n_min, 2 n_min, ..., n_max:

* **construction**: the hand-set Transformer verified for every input at each n (accuracy 1 where
  ``verify`` proved it; the point is omitted where it did not), or for IsTree the RNN with
  in-context retrieval run on sampled graphs (its measured accuracy, labelled "sampled") and
  the IsTree Transformer with O(n) CoT (every input at n <= 5, 8 samples per family up to
  n = 256, not run beyond);
* **bound**: the Fano accuracy ceiling (``verify.bounds.ceilings``) for a machine with S bits of
state,
  S taken from each trained recurrent model (counted by ``verify.bounds.archs`` from its config, as
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

from rnngap.tasks.registry import RETRIEVAL_NAMES

REFERENCE_BITS = (64, 512, 4096)
RETRIEVAL = RETRIEVAL_NAMES


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
    from rnngap.tasks.registry import CARDS, load, make_task

    fn = load(CARDS[task].verifier)
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
    from rnngap.verify.istree.transformer import verify_transformer_istree

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
    from rnngap.constructions.istree.rnn_rag import run_istree
    from rnngap.tasks.istree import is_tree

    pts = []
    for n in ns:
        graphs, _ = sample_graphs(n, 32, "random", seed)
        ok = sum(run_istree(n, g).verdict == is_tree(n, g) for g in graphs)
        pts.append({"n": n, "accuracy": ok / len(graphs), "verified": False,
                    "samples": len(graphs)})
    return {"label": "RNN + retrieval (sampled graphs)", "points": pts}


def ceiling_curve(task: str, ns: list[int], state_bits: float) -> list[float | None]:
    from rnngap.verify.bounds.ceilings import ceiling

    name = "counting" if task == "counting" else task
    return [ceiling(name, n, state_bits) for n in ns]


def info_bits(task: str, n: int) -> float | None:
    """log2 of the number of prefix classes at n (bits a perfect one-pass machine needs)."""
    from rnngap.verify.bounds.counts import summarize

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
    state_bits = run_state_bits(run) if arch == "mamba" else None
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


def run_state_bits(run: str) -> int | None:
    """State bits of a recurrent run, counted by ``verify.bounds.archs`` from its config (the same
    components as ``rnngap bound --config``, all float32 as rnngap runs keep them)."""
    from rnngap.verify.bounds.archs import state_from_config

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
              "data (verify.bounds.ceilings) for a machine with S state bits",
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


# ----------------------------------------------------------------------------- experiment file
def _stats(vals: list[float]) -> dict:
    import statistics
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "seeds": len(vals)}


def construction_efficiency(task: str, cons: dict) -> list[dict]:
    """Per verified n: the information a perfect answer needs (Fano at accuracy 1, the same
    measure as the learned rows) over the construction's KV-cache bits, layers * heads * 2 *
    d_head * (sequence length) * p(n): exact, from the verdict that just proved it."""
    from rnngap.verify.bounds.ceilings import implied_bits
    out = []
    for p in cons["points"]:
        if not p.get("verified"):
            continue
        kv = p["layers"] * p["heads"] * 2 * p["d_head"] * (p["n"] + 1) * p["precision_bits"]
        info = implied_bits(task, p["n"], 1.0)
        out.append({"n": p["n"], "kv_cache_bits": kv, "info_bits": info,
                    "bits_per_kv_bit": None if info is None else info / kv})
    return out


def build_results_report(task: str, results: str | Path, out: str | Path, seed: int = 0) -> dict:
    """The report drawn from an experiment results file (experiments/retrieval_scaling), with
    no re-evaluation: learned accuracy by generation (median and min-max over seeds) at each
    architecture's chosen learning rate, the verified construction, the Fano ceiling for the
    learned Mamba's state bits, the state sweep against its ceiling, and effective bits per
    state bit beside the construction's exact information per KV-cache bit."""
    from rnngap.verify.bounds.ceilings import ceiling
    rows = [r for r in json.loads(Path(results).read_text()) if r.get("task") == task]
    if not rows:
        raise ValueError(f"{results} has no rows for task {task!r}")
    main = [r for r in rows if r.get("phase") == "main"]
    if not main:
        raise ValueError(f"{results} has no 'main' rows for task {task!r}")
    lr_of = {r["arch"]: r["lr"] for r in main}
    ds_of = {r["arch"]: r["d_state"] for r in main}
    # rows of the chosen configuration per architecture (a main run identical to a run of the
    # lr sweep is stored once, under the sweep's phase)
    chosen = [r for r in rows if r["lr"] == lr_of.get(r["arch"]) and
              r["d_state"] == ds_of.get(r["arch"])]
    ns = sorted({r["n"] for r in chosen})
    learned = {}
    for arch in sorted(lr_of):
        pts = []
        for n in ns:
            acc = [r["accuracy_generation"] for r in chosen if r["arch"] == arch and r["n"] == n]
            pts.append({"n": n, **_stats(acc)} if acc else {"n": n, "median": None})
        sb = next((r["state_bits"] for r in chosen if r["arch"] == arch), None)
        learned[arch] = {"lr": lr_of[arch], "d_state": ds_of[arch], "state_bits": sb,
                         "trainable": sorted({r["trainable"] for r in chosen
                                              if r["arch"] == arch}),
                         "points": pts}
    cons = construction_points(task, ns, seed) if task in RETRIEVAL else None
    if cons is not None:
        from rnngap.tasks.registry import CARDS, load, make_task
        fn = load(CARDS[task].verifier)
        for p in cons["points"]:
            if p["verified"]:
                v = fn(make_task(task, n=p["n"]), samples=2, seed=seed)
                p.update({k: v[k] for k in ("layers", "heads", "d_head")})
    bits = sorted({v["state_bits"] for v in learned.values() if v["state_bits"]})
    ceilings = {str(b): [ceiling(task, n, b) for n in ns] for b in bits}
    # the state sweep: every Mamba row at the sweep's n, grouped by d_state
    sweep_rows = [r for r in rows if r["arch"] == "mamba" and r.get("phase") == "state"]
    sweep = []
    for n_s in sorted({r["n"] for r in sweep_rows}):
        pool = [r for r in rows if r["arch"] == "mamba" and r["n"] == n_s
                and r["lr"] == lr_of.get("mamba")]
        for d in sorted({r["d_state"] for r in pool}):
            sel = [r for r in pool if r["d_state"] == d]
            sb = sel[0]["state_bits"]
            sweep.append({"n": n_s, "d_state": d, "state_bits": sb,
                          **_stats([r["accuracy_generation"] for r in sel]),
                          "ceiling": ceiling(task, n_s, sb)})
    eff = []
    for (arch, d), sel in _groups([r for r in rows if r["arch"] == "mamba"
                                   and r["lr"] == lr_of.get("mamba")]).items():
        for s in sorted({r["seed"] for r in sel}):
            rs = [r for r in sel if r["seed"] == s]
            solved = [r for r in rs if r["accuracy_generation"] >= 0.99]
            at = max(solved, key=lambda r: r["n"]) if solved else \
                max(rs, key=lambda r: r["effective_bits_per_state_bit"] or 0.0)
            eff.append({"arch": arch, "d_state": d, "seed": s, "state_bits": at["state_bits"],
                        "n": at["n"], "solved": bool(solved),
                        "accuracy": at["accuracy_generation"],
                        "implied_bits": at["implied_bits"],
                        "effective_bits_per_state_bit": at["effective_bits_per_state_bit"]})
    rep = {"task": task, "source": str(results), "ns": ns, "learned": learned,
           "construction": cons,
           "construction_efficiency": construction_efficiency(task, cons) if cons else [],
           "ceilings": ceilings, "state_sweep": sweep, "effective": eff,
           "notes": {"effective_bits_per_state_bit": "Fano-implied bits of the accuracy "
                     "(verify.bounds.ceilings.implied_bits) at the largest n solved (>= 0.99), "
                     "or at the n with the most implied bits where none is solved, over "
                     "state bits",
                     "bound": "no machine exceeds 1 bit of implied information per state bit"}}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(rep, indent=2))
    _plot_results(rep, out / "report.png")
    (out / "report.md").write_text(_markdown_results(rep))
    return rep


def _groups(rows: list[dict]) -> dict:
    g: dict = {}
    for r in rows:
        g.setdefault((r["arch"], r["d_state"]), []).append(r)
    return dict(sorted(g.items(), key=lambda kv: kv[0][1] or 0))


COLORS = {"transformer": "tab:blue", "hybrid": "tab:green", "mamba": "tab:red"}


def _plot_results(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    xs = [math.log2(n) for n in r["ns"]]
    if r["construction"]:
        cp = [p for p in r["construction"]["points"] if p["accuracy"] is not None]
        ax.plot([math.log2(p["n"]) for p in cp], [p["accuracy"] for p in cp], "k-o", lw=2,
                label=r["construction"]["label"])
    for s, ys in r["ceilings"].items():
        ax.plot(xs, ys, "--", color="gray", label=f"bound: ceiling for any {s}-bit-state RNN")
    for arch, m in r["learned"].items():
        pts = [p for p in m["points"] if p.get("median") is not None]
        x = [math.log2(p["n"]) for p in pts]
        c = COLORS.get(arch)
        ax.plot(x, [p["median"] for p in pts], "-s", color=c,
                label=f"{arch} (learned, lr {m['lr']:g}, median of {pts[0]['seeds']} seeds)")
        ax.fill_between(x, [p["min"] for p in pts], [p["max"] for p in pts], color=c, alpha=0.15)
    ax.set_xlabel("log2 n")
    ax.set_ylabel("accuracy by generation (held out)")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(f"{r['task']}: construction vs bound vs learned")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="lower left")
    ax = axes[1]
    sweep_ns = sorted({p["n"] for p in r["state_sweep"]})
    for k, n_s in enumerate(sweep_ns):
        sw = [p for p in r["state_sweep"] if p["n"] == n_s]
        x = [math.log2(p["state_bits"]) for p in sw]
        c = ("tab:red", "tab:purple", "tab:orange", "tab:brown")[k % 4]
        ax.plot(x, [p["median"] for p in sw], "-s", color=c,
                label=f"learned Mamba at n={n_s} (median, min-max)")
        ax.fill_between(x, [p["min"] for p in sw], [p["max"] for p in sw], color=c, alpha=0.15)
        ax.plot(x, [p["ceiling"] for p in sw], "--", color=c, lw=0.8,
                label=f"Fano ceiling at n={n_s} for the same bits")
        for p, xi in zip(sw, x, strict=True):
            ax.annotate(f"N={p['d_state']}", (xi, p["median"]), fontsize=7,
                        textcoords="offset points", xytext=(3, -10))
    if sweep_ns:
        ax.set_title("state sweep (d_state) at fixed n")
        ax.legend(fontsize=6.5, loc="center right")
    else:   # say so, rather than leave an empty panel
        ax.set_title("state sweep (d_state) at fixed n")
        ax.text(0.5, 0.5, f"no state sweep in these runs for {r['task']}\n(runs with several "
                "d_state values at one n)", ha="center", va="center", transform=ax.transAxes,
                fontsize=8, color="0.4")
        ax.set_xticks([])
    ax.set_xlabel("log2 state bits")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax = axes[2]
    labels, vals, cols = [], [], []
    for e in r["effective"]:
        labels.append(f"Mamba N={e['d_state']} s{e['seed']}")
        vals.append(e["effective_bits_per_state_bit"] or 0.0)
        cols.append(COLORS["mamba"])
    for c in r["construction_efficiency"]:
        labels.append(f"construction n={c['n']} (per KV bit)")
        vals.append(c["bits_per_kv_bit"] or 0.0)
        cols.append("k")
    if vals:
        ax.barh(range(len(vals)), vals, color=cols)
        ax.set_yticks(range(len(vals)), labels, fontsize=6)
        ax.axvline(1.0, ls="--", color="gray", label="bound: 1 bit per state bit")
        ax.set_xscale("log")
        ax.legend(fontsize=7)
    ax.set_title("information per bit carried")
    ax.set_xlabel("implied bits / state (or KV-cache) bits")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def learned_cells(r: dict, i: int) -> list[str]:
    """'median [min, max]' of every learned architecture at the i-th n of a results report."""
    cells = []
    for p in (m["points"][i] for m in r["learned"].values()):
        cells.append("-" if p.get("median") is None else
                     f"{p['median']:.3f} [{p['min']:.3f}, {p['max']:.3f}]")
    return cells


def _markdown_results(r: dict) -> str:
    archs = list(r["learned"])
    lines = [f"# {r['task']}: construction vs bound vs learned (from {r['source']})", "",
             "![report](report.png)", "",
             "| n | construction | " + " | ".join(f"{a} median [min, max]" for a in archs)
             + "".join(f" | ceiling S={s}" for s in r["ceilings"]) + " |",
             "|---|---|" + "---|" * (len(archs) + len(r["ceilings"]))]
    for i, n in enumerate(r["ns"]):
        c = r["construction"]["points"][i]["accuracy"] if r["construction"] else None
        cells = learned_cells(r, i)
        ceil = [_fmt(ys[i]) for ys in r["ceilings"].values()]
        lines.append(f"| {n} | {_fmt(c)} | " + " | ".join(cells + ceil) + " |")
    if r["state_sweep"]:
        lines += ["", "State sweep (Mamba, d_state at fixed n):", "",
                  "| n | d_state | state bits | median [min, max] | Fano ceiling |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p['n']} | {p['d_state']} | {p['state_bits']} | {p['median']:.3f} "
                  f"[{p['min']:.3f}, {p['max']:.3f}] | {p['ceiling']:.3f} |"
                  for p in r["state_sweep"]]
    lines += ["", "Effective bits per state bit (learned Mamba; bound: <= 1):", "",
              ("| model | seed | state bits | at n | solved (>= 0.99) | accuracy | implied bits "
              "| effective bits / state bit |"), "|---|---|---|---|---|---|---|---|"]
    lines += [f"| Mamba d_state={e['d_state']} | {e['seed']} | {e['state_bits']} | {e['n']} | "
              f"{'yes' if e['solved'] else 'no'} | {e['accuracy']:.3f} | "
              f"{_fmt(e['implied_bits'])} | {e['effective_bits_per_state_bit']:.2e} |"
              for e in r["effective"]]
    if r["construction_efficiency"]:
        lines += ["", "Hand-set Transformer construction (verified for every input; exact):", "",
                  "| n | KV-cache bits | information bits | bits per KV bit |", "|---|---|---|---|"]
        lines += [f"| {c['n']} | {c['kv_cache_bits']} | {_fmt(c['info_bits'])} | "
                  f"{_fmt(c['bits_per_kv_bit'])} |" for c in r["construction_efficiency"]]
    lines += ["", (f"Note: {r['notes']['effective_bits_per_state_bit']}; "
              f"{r['notes']['bound']}.")]
    return "\n".join(lines) + "\n"
