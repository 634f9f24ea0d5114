"""results.json (+ meta.json, diagnose.json) -> report-ar/, report-index/ (figures, via
``rnngap report --results``) and RESULTS.md. Every number below is read from those files.

    python experiments/retrieval_scaling/summarize.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} [{min(xs):.3f}, {max(xs):.3f}]" if xs else "-"


def _earlier_launches() -> list[str]:
    """What was tried before the committed launch, read from the files it left."""
    out: list[str] = []
    for f, what in (("launch1-results.json", ("launch 1: 2,500 steps, lr swept at n = 32, ties "
                     "by final loss; stopped after the n = 64 and 128 runs")),
                    ("launch2-results.json", ("launch 2: 3,000 steps, lr swept at n = 16; stopped "
                     "after the sweep")),
                    ("launch3-results.json", ("launch 3: 3,000 steps, lr swept at n = 64 over "
                     "1e-3, 3e-3, 1e-2, no early stopping, state sweep at n = 8 and 16; complete "
                     "but over the 90-minute budget")),
                    ("launch4-results.json", ("launch 4: the settings of this launch with the "
                     "hybrid Mamba -> attention -> Mamba (d_mlp 16); complete but over the "
                     "90-minute budget, and the attention models missed 0.99 on Index at n = 32 "
                     "and 64"))):
        if not (HERE / f).exists():
            continue
        rows = json.loads((HERE / f).read_text())
        if not out:
            out += ["## Earlier launches (what was tried, kept as files)", ""]
        out += [f"`{f}` ({what}, {sum(r['cpu_s'] for r in rows) / 60:.1f} CPU-minutes):", "",
                "| phase | task | n | arch | lr | seeds | accuracy median [min, max] |",
                "|---|---|---|---|---|---|---|"]
        groups: dict = {}
        for r in rows:
            groups.setdefault((r["phase"], r["task"], r["n"], r["arch"], r["lr"]), []).append(
                r["accuracy_generation"])
        for (ph, t, n, a, lr), accs in sorted(groups.items()):
            out.append(f"| {ph} | {t} | {n} | {a} | {lr:g} | {len(accs)} | {_med(accs)} |")
        out += [""]
    return out


def _early_stopping(rows: list[dict], best: dict) -> list[str]:
    """Steps done and stop reasons per (task, n, arch), and what stopping early changed: runs
    of launch 3 with the same settings ran the full schedule, and a stopped run is that run cut
    short (same weights up to the stop; tests/test_early_stop.py), so comparing the two held-out
    accuracies measures the effect of stopping exactly."""
    pe = next((r["probe_every"] for r in rows if r.get("probe_every")), None)
    pat = next((r["patience"] for r in rows if r.get("probe_every")), None)
    out = ["## Early stopping: where the runs stopped and what it changed", "",
           ("Rules (`rnngap train --early-stop`, learned/train.py): a probe of 256 fresh "
            f"TRAINING-partition inputs at length n every {pe} steps; stop as *solved* after two "
            "perfect probes in a row, as *plateau* when the best probe has not risen by 0.02 in "
            f"{pat:,} steps. The same rules for every architecture; the lr schedule keeps its "
            "3,000 steps."), "",
           "| task | n | arch | steps done per seed | stop reasons |", "|---|---|---|---|---|"]
    groups: dict = {}
    for r in rows:     # the main grid (its AR n = 64 seed-0 runs come from the lr sweep)
        if r["phase"] == "main" or (r["phase"] == "lr" and r["lr"] == best.get(r["arch"])):
            groups.setdefault((r["task"], r["n"], r["arch"]), []).append(r)
    for (t, n, a), rr in sorted(groups.items()):
        rr.sort(key=lambda r: r["seed"])
        steps = ", ".join(f"{r['steps_done']:,}" for r in rr)
        why = ", ".join(r["stop_reason"] or "full" for r in rr)
        out.append(f"| {t} | {n} | {a} | {steps} | {why} |")
    f = HERE / "launch3-results.json"
    if f.exists():
        old = {(r["task"], r["n"], r["arch"], r["seed"], r["lr"], r["d_state"]): r
               for r in json.loads(f.read_text())}
        pairs = [(r, old[k]) for r in rows
                 if (k := (r["task"], r["n"], r["arch"], r["seed"], r["lr"], r["d_state"])) in old
                 and old[k]["steps"] == r["steps"] and old[k]["batch_size"] == r["batch_size"]
                 and old[k]["n_layers"] == r["n_layers"]]       # same model (not the hybrid)
        stopped = [(r, o) for r, o in pairs if r["stop_reason"]]
        if stopped:
            diffs = [r["accuracy_generation"] - o["accuracy_generation"] for r, o in stopped]
            worst = min(stopped, key=lambda ro: ro[0]["accuracy_generation"]
                        - ro[1]["accuracy_generation"])
            out += ["", (f"Against launch 3 (the same runs with the full schedule): {len(pairs)} "
                    f"runs have the same settings in both launches, {len(stopped)} of them "
                    f"stopped early here. Held-out accuracy stopped minus full: median "
                    f"{statistics.median(diffs):+.3f}, range [{min(diffs):+.3f}, "
                    f"{max(diffs):+.3f}]; the largest loss is {worst[0]['name']} "
                    f"({worst[0]['stop_reason']} at step {worst[0]['steps_done']:,}: "
                    f"{worst[0]['accuracy_generation']:.3f} against "
                    f"{worst[1]['accuracy_generation']:.3f} after 3,000 steps). CPU time of "
                    f"these runs: {sum(r['cpu_s'] for r, _ in stopped) / 60:.1f} minutes "
                    f"against {sum(o['cpu_s'] for _, o in stopped) / 60:.1f} in launch 3.")]
        else:
            out += ["", "No run with the same settings as in launch 3 stopped early."]
    return out + [""]


def _aborted() -> list[str]:
    """The first attempt at launch 4 (patience 1,000), stopped by hand: what the plateau rule
    did to the runs that learn late."""
    f = HERE / "launch4a-aborted-results.json"
    if not f.exists():
        return []
    rows = json.loads(f.read_text())
    old = {(r["task"], r["n"], r["arch"], r["seed"], r["lr"]): r
           for r in json.loads((HERE / "launch3-results.json").read_text())} \
        if (HERE / "launch3-results.json").exists() else {}
    out = ["## Launch 4a: the plateau rule at patience 1,000 (aborted, kept as a file)", "",
           (f"`launch4a-aborted-results.json`: the same launch with patience 1,000 and the lr "
            f"sweep at n = 64, stopped by hand after {len(rows)} runs "
            f"({sum(r['cpu_s'] for r in rows) / 60:.1f} CPU-minutes) because the plateau rule "
            "cut runs that learn late: the hybrid on AR at n = 128 sits at chance for over "
            "1,000 steps before it takes off. Rows with a launch-3 twin (same task, n, arch, "
            "seed, lr; identical trajectories up to the stop):"), "",
           "| run | stop | step | accuracy here | launch 3 after 3,000 steps |",
           "|---|---|---|---|---|"]
    for r in rows:
        o = old.get((r["task"], r["n"], r["arch"], r["seed"], r["lr"]))
        if o is not None and r.get("stop_reason"):
            out.append(f"| {r['name']} | {r['stop_reason']} | {r['steps_done']:,} | "
                       f"{r['accuracy_generation']:.3f} | {o['accuracy_generation']:.3f} |")
    return out + ["", ("Launches 4 and 5 therefore use patience 2,000 (a run must stay flat for two "
                       "thirds of its schedule to be stopped as a plateau) and sweeps the "
                       "learning rate at n = 32, where Mamba still learns part of the task and "
                       "so the sweep can tell its learning rates apart."), ""]


def _pilots() -> list[str]:
    """Single runs made between launches to see what a missed target would take."""
    out: list[str] = []
    f = HERE / "pilots5.json"
    if f.exists():
        d = json.loads(f.read_text())
        out += ["## Pilots around launch 5 (`pilots5.json`)", "", d["note"][0].upper()
                + d["note"][1:] + ".", "",
                "| run | model | trainable | steps done | stop | accuracy | CPU s |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {r['name']} | {r['model']}{'' if r.get('rope', True) else ', no RoPE'} | "
                f"{r['trainable']:,} | {r['steps_done']:,} | "
                f"{r['stop_reason'] or 'full'} | {r['accuracy_generation']:.3f} | "
                f"{r['cpu_s']:.0f} |" for r in d["rows"]]
        out += [""]
    f = HERE / "pilots.json"
    if f.exists():
        d = json.loads(f.read_text())
        out += ["## Pilots after launch 3 (`pilots.json`)", "", d["note"] + ".", "",
                "| task | n | arch | seed | steps | lr | accuracy | command |",
                "|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['task']} | {r['n']} | {r['arch']} | {r['seed']} | {r['steps']:,} | "
                f"{r['lr']:g} | {r['accuracy_generation']:.3f} | `{r['command']}` |"
                for r in d["rows"]]
        out += [""]
    return out


def _per_position() -> list[str]:
    """Where the unsolved Index runs fail, by query position (per_position.py)."""
    f = HERE / "per_position.json"
    if not f.exists():
        return []
    d = json.loads(f.read_text())
    out = ["## Where Index fails: accuracy by query position (`per_position.json`)", "",
           (f"`{d['command']} --overwrite`: {d['samples']:,} held-out inputs per unsolved Index run (the "
            "attention models), split by the query position i. Positions i > n/2 occur only in "
            "the training batches of length n (one in log2(n/8) + 1 of the mixture's lengths), "
            "so failures there point at too little training of the long positions; failures "
            "spread over all i point at positions the model does not tell apart."), "",
           "| run | accuracy | positions below 0.9 | of them i > n/2 | worst position |",
           "|---|---|---|---|---|"]
    for r in d["rows"]:
        out.append(f"| {r['name']} | {r['accuracy']:.3f} | {len(r['weak_positions'])} of "
                   f"{r['n']} | {r['weak_in_upper_half']} | {r['min_position_accuracy']:.3f} |")
    return out + [""]


def main() -> None:
    from rnngap.verify.report import build_results_report, learned_cells

    rows = json.loads((HERE / "results.json").read_text())
    meta = json.loads((HERE / "meta.json").read_text())
    diag = json.loads((HERE / "diagnose.json").read_text()) if (HERE / "diagnose.json").exists() \
        else None
    reps = {t: build_results_report(t, HERE / "results.json", HERE / f"report-{t}")
            for t in ("ar", "index") if any(r["task"] == t for r in rows)}
    best = meta["best_lr"]
    L: list[str] = ["# Retrieval scaling at CPU scale (claim C8): results", ""]
    cpu = sum(r["cpu_s"] for r in rows)
    later = [x["command"].strip() for x in meta.get("later_launches", [])]
    L += ["Made by (2 workers, 1 torch thread each, on a 2-core machine):", "", "```",
          meta["command"].strip(), *later, "python experiments/retrieval_scaling/summarize.py",
          "```", "",
          (f"CPU time of all {len(rows)} runs (train + held-out eval, summed over processes): "
          f"**{cpu / 60:.1f} CPU-minutes** (budget: 90"
          f"{'; OVER BUDGET' if cpu > 90 * 60 else ''}). Wall time of the launch: "
          f"{meta['this_launch_wall_s'] / 60:.0f} minutes. Machine: {meta['machine']}, torch "
          f"{meta['torch']}. Settings: {meta['steps']} steps of {meta['batch_size']} samples, "
          f"warmup {meta['warmup']}, cosine to 0.1, AdamW (wd 0.01), grad clip 1, learned "
          f"embedding, length mixture from n = {meta['mix_min_n']} "
          f"({'8, 16, ..., n' if meta['mix_min_n'] else 'off'}), {meta['eval_samples']} held-out "
          "test inputs per run, accuracy by greedy generation"
          + (f", early stopping (probe every {meta['probe_every']} steps, patience "
             f"{meta['patience']:,}; see below)." if meta.get("probe_every") else ".")), ""]
    L += ["## Models (matched trainable parameters)", "", "| arch | config | trainable (n=8 .. 128) |",
          "|---|---|---|"]
    for arch, kw in meta["arch_kw"].items():
        tr = sorted({r["trainable"] for r in rows if r["arch"] == arch and r["phase"] != "state"})
        L.append(f"| {arch} | {kw} | {tr[0]:,} .. {tr[-1]:,} |")
    L += ["", ("The embedding tables grow with the vocabulary (n + 1 tokens) and the position "
          "table with n, identically for every architecture."), ""]
    # learning-rate sweep
    lr_rows = [r for r in rows if r["phase"] == "lr"]
    if lr_rows:
        n_lr = lr_rows[0]["n"]
        lrs = sorted({r["lr"] for r in lr_rows})
        L += [f"## Learning-rate sweep (AR, n = {n_lr}, seed 0)", "",
              "| arch | " + " | ".join(f"lr {x:g}" for x in lrs) + " | chosen |",
              "|---|" + "---|" * (len(lrs) + 1)]
        for arch in sorted({r["arch"] for r in lr_rows}):
            cells = []
            for x in lrs:
                rr = [r for r in lr_rows if r["arch"] == arch and r["lr"] == x]
                cells.append(f"{rr[0]['accuracy_generation']:.3f}" if rr else "-")
            L.append(f"| {arch} | " + " | ".join(cells) + f" | {best[arch]:g} |")
        L += ["", ("Chosen: the highest held-out accuracy; ties broken by the fewest steps to "
              "99% training accuracy, then the lower final training loss. Every comparison below "
              "uses each architecture's own choice."), ""]
    # main tables + outcome checks
    outcomes = []
    for t, rep in reps.items():
        archs = list(rep["learned"])
        L += [(f"## {t.upper()}: accuracy by generation on held-out inputs (median [min, max] "
              f"over seeds)"), "", f"![{t}](report-{t}/report.png)", "",
              "| n | input space | trained samples (max) | construction | "
              + " | ".join(archs) + " |", "|---|---|---|---|" + "---|" * len(archs)]
        for i, n in enumerate(rep["ns"]):
            sp = next((r["input_space"] for r in rows if r["task"] == t and r["n"] == n), None)
            ts = next((r["steps"] * r["batch_size"] for r in rows
                       if r["task"] == t and r["n"] == n), None)
            sp_s = f"{int(sp):.2e}" if sp and len(sp) > 6 else str(sp)
            c = rep["construction"]["points"][i]["accuracy"] if rep["construction"] else None
            cells = learned_cells(rep, i)
            L.append(f"| {n} | {sp_s} | {ts:,} | {'verified' if c == 1.0 else '-'} | "
                     + " | ".join(cells) + " |")
        L += ["", (f"Report data: `report-{t}/report.json`; table and figure: "
              f"`rnngap report --task {t} --results experiments/retrieval_scaling/results.json "
              f"--out experiments/retrieval_scaling/report-{t} --overwrite`."), ""]
        for a in ("transformer", "hybrid"):
            if a in rep["learned"]:
                pts = [p for p in rep["learned"][a]["points"] if p["n"] <= 64]
                ok = all((p.get("median") or 0) >= 0.99 for p in pts)
                bad = [f"n={p['n']}: {p['median']:.3f}" for p in pts
                       if (p.get("median") or 0) < 0.99]
                outcomes.append((f"{t}: {a} median >= 0.99 at every n <= 64",
                                 ok, "met" if ok else "MISSED (" + ", ".join(bad) + ")"))
        if "mamba" in rep["learned"]:
            med = [(p["n"], p.get("median")) for p in rep["learned"]["mamba"]["points"]]
            first = next((n for n, m in med if m is not None and m < 0.99), None)
            dec = all((med[i][1] or 0) >= (med[i + 1][1] or 0) - 0.02 for i in range(len(med) - 1))
            outcomes.append((f"{t}: Mamba at fixed size degrades as n grows", dec and first
                             is not None, "median by n: "
                             + ", ".join(f"{n}: {m:.3f}" for n, m in med if m is not None)
                             + f"; first n below 0.99: {first}"))
    # state sweep (one table per fixed n)
    for t, rep in reps.items():
        for n_s in sorted({p["n"] for p in rep["state_sweep"]}):
            sw = [p for p in rep["state_sweep"] if p["n"] == n_s]
            L += [f"## State sweep: Mamba on {t.upper()} at n = {n_s}", "",
                  "| d_state | state bits (float32) | accuracy median [min, max] | Fano ceiling |",
                  "|---|---|---|---|"]
            L += [f"| {p['d_state']} | {p['state_bits']:,} | {p['median']:.3f} "
                  f"[{p['min']:.3f}, {p['max']:.3f}] | {p['ceiling']:.3f} |" for p in sw]
            lo, hi = sw[0], sw[-1]  # smallest and largest state
            # "moved": the seed ranges of the smallest and the largest state do not overlap
            moved = lo["max"] < hi["min"] or hi["max"] < lo["min"]
            sat = max(p["median"] for p in sw) >= 0.99 and \
                max(p["max"] - p["min"] for p in sw) < 0.1
            outcomes.append((f"{t}: moving Mamba's state size moves its accuracy at n = {n_s}",
                             moved, "accuracy by d_state: " + ", ".join(
                                 f"N={p['d_state']}: {p['median']:.3f}" for p in sw)
                             + ("; CAVEAT: near saturation at this n, a small effect"
                                if sat else "")))
            L += [""]
    # effective bits
    for t, rep in reps.items():
        if not rep["effective"]:
            continue
        L += [f"## Effective bits per state bit ({t.upper()})", "",
              ("Information the accuracy implies (Fano, `verify.bounds.ceilings.implied_bits`) "
               "at the largest n the model solves (>= 0.99), or where it is largest if none is solved, "
              "divided by the state bits. Any machine: <= 1."), "",
              ("| model | seed | state bits | at n | solved | accuracy | implied bits | per state "
              "bit |"), "|---|---|---|---|---|---|---|---|"]
        L += [f"| Mamba N={e['d_state']} | {e['seed']} | {e['state_bits']:,} | {e['n']} | "
              f"{'yes' if e['solved'] else 'no'} | {e['accuracy']:.3f} | "
              f"{e['implied_bits']:.1f} | {e['effective_bits_per_state_bit']:.2e} |"
              for e in rep["effective"]]
        ce = rep["construction_efficiency"]
        if ce:
            L += ["", "The hand-set construction (verified on every input; exact): "
                  + "; ".join(f"n={c['n']}: {c['info_bits']:.0f} bits over {c['kv_cache_bits']:,} "
                              f"KV-cache bits = {c['bits_per_kv_bit']:.3f}" for c in ce) + "."]
        L += [""]
    L += ["## Outcomes asked for (computed from the rows above)", "",
          "| outcome | status | evidence |", "|---|---|---|"]
    L += [f"| {o} | {'met' if ok else 'MISSED'} | {ev} |" for o, ok, ev in outcomes]
    L += [""]
    L += _per_position()
    if any(r.get("stop_reason") is not None or r.get("probe_every") for r in rows):
        L += _early_stopping(rows, best)
    L += _aborted()
    L += _earlier_launches()
    L += _pilots()
    if diag:
        L += ["## Diagnosis: why the models did not learn (one change at a time, AR, seed 0)", "",
              "`" + diag["command"].strip() + "`", "",
              "| probe | change | n | alphabet | steps | accuracy | CPU s |", "|---|---|---|---|---|---|---|"]
        L += [f"| {r['probe']} | {r['what']} | {r['n']} | {r['alphabet']} | {r['steps']} | "
              f"{r['accuracy_generation']:.3f} | {r['cpu_s']:.0f} |" for r in diag["rows"]]
        L += ["", "See docs/learning.md for the reading of this table.", ""]
    (HERE / "RESULTS.md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
