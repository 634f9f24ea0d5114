"""The retrieval-scaling experiment (claim C8 at CPU scale): Transformer, Mamba and hybrid on
associative recall (Def 4.3, key-value form) and Index (Def 4.2) as n grows, at matched
trainable-parameter counts, each architecture at its own best learning rate, 3 seeds, accuracy
by generation on held-out inputs (learned/data.py: a hash partition of the input space).

Three phases, run in order (each run is its own process, one torch thread, two at a time):

  lr     AR at n = --lr-n, one seed, lrs --lrs for every architecture; the best lr per
         architecture (highest held-out accuracy; ties -> fewest steps to 99% training
         accuracy -> lower final training loss) is used by the two other phases.
  main   tasks x ns x archs x seeds at each architecture's best lr.
  state  Mamba at task --state-task, n = --state-n, d_state in --state-ds (the state sweep):
         accuracy against state bits, drawn against the Fano ceiling for the same bits.

Every run stops early by ``rnngap train --early-stop``'s rules (learned/train.py): probes of 256
fresh TRAINING-partition inputs at length n every --probe-every steps; solved after two perfect
probes in a row, plateau after --patience steps without a 0.02 rise of the best probe. The lr
schedule keeps --steps, so a stopped run is the full run cut short; rows record steps_done and
stop_reason.

Resumable: a run whose directory holds result.json is skipped on re-launch; a run with a
checkpoint but no result is resumed from it. Every result row is also written to
``results.json`` (a list of rows, keys as in the issue: task, n, arch, d_state, state_bits,
trainable, seed, lr, accuracy_generation, effective_bits_per_state_bit, plus bookkeeping).

    python experiments/retrieval_scaling/run.py            # the committed experiment
    python experiments/retrieval_scaling/run.py --quick    # a 2-minute smoke version
    python experiments/retrieval_scaling/summarize.py      # results.json -> figures + RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from rnngap.learned.configs import OFFICIAL

HERE = Path(__file__).resolve().parent
#: matched sizes (trainable parameters within ~15% of each other, see RESULTS.md): rnngap's
#: ``small`` Transformer (2 layers) and Mamba (2 layers, d_state 8) of learned/configs.py, and a
#: hybrid of ONE Mamba layer under ONE attention layer (the shape of Definition 5.5's RNN + one
#: attention layer), its MLP widened to 80 to match the parameter counts. Launch 5 chose it over
#: the ``small`` hybrid (Mamba -> attention -> Mamba, d_mlp 16; launches 1-4): in single-seed
#: pilots (pilots.json) it solved AR at n = 64 in 35 CPU-s (the ``small`` hybrid: 75 s) and
#: Index at n = 64 (0.998, where the ``small`` hybrid reached 0.938 with the same seed), at
#: about half the cost per step (one Mamba scan instead of two). ``small`` itself is left as it
#: is: the IsTree experiment (experiments/istree_small) was run with it.
ARCH_KW = {arch: dict(OFFICIAL[(arch, "small")]) for arch in ("transformer", "mamba")}
ARCH_KW["hybrid"] = {"d_model": 32, "n_layers": 1, "d_state": 8, "n_heads": 2, "d_mlp": 80,
                     "attn_position": 1}


def run_name(spec: dict) -> str:
    ds = f"-N{spec['d_state']}" if spec["arch"] == "mamba" else ""
    return f"{spec['task']}-n{spec['n']}-{spec['arch']}{ds}-lr{spec['lr']:g}-s{spec['seed']}"


def make_spec(task: str, n: int, arch: str, seed: int, lr: float, a, phase: str,
              d_state: int | None = None) -> dict:
    kw = dict(ARCH_KW[arch])
    if d_state is not None:
        kw["d_state"] = d_state
    spec = {"phase": phase, "task": task, "n": n, "arch": arch, "seed": seed, "lr": lr,
            "model": kw, "d_state": kw.get("d_state") if arch != "transformer" else None,
            "steps": a.steps, "batch_size": a.batch_size, "warmup": a.warmup,
            "eval_samples": a.eval_samples, "min_n": min(a.mix_min_n, n) if a.mix_min_n else None,
            "probe_every": a.probe_every, "patience": a.patience if a.probe_every else 0}
    spec["name"] = run_name(spec)
    return spec


def worker(spec: dict, runs: str, slot_q) -> dict:
    """Train + evaluate one run in this (fresh, single-threaded) process; returns its row."""
    import torch
    torch.set_num_threads(1)
    from rnngap.learned import checkpoint as ck
    from rnngap.learned.data import DataSpec, input_space_size
    from rnngap.learned.evaluate import evaluate, load_run
    from rnngap.learned.setup import learned_max_len
    from rnngap.learned.train import TrainConfig, train
    from rnngap.models.lm import LMConfig
    from rnngap.verify.bounds.ceilings import implied_bits
    from rnngap.verify.report import run_state_bits

    slot = slot_q.get()
    try:
        rd = Path(runs) / spec["name"]
        data = DataSpec(spec["task"], spec["n"], min_n=spec["min_n"])
        mc = LMConfig(arch=spec["arch"], vocab_size=data.vocab_size(), embedding="learned",
                      max_len=learned_max_len(data), **spec["model"])
        tc = TrainConfig(steps=spec["steps"], batch_size=spec["batch_size"], lr=spec["lr"],
                         warmup=spec["warmup"], seed=spec["seed"], log_every=50,
                         eval_every=spec["steps"], ckpt_every=max(100, spec["steps"] // 4),
                         eval_batches=2, probe_every=spec["probe_every"],
                         patience=spec["patience"])
        c0, w0 = time.process_time(), time.perf_counter()
        resume = (rd / ck.CKPT).exists()
        summ = train(rd, mc, data, tc, resume=resume, progress=slot + 1)
        lm, d2, _, _ = load_run(rd)
        ev = evaluate(lm, d2, spec["eval_samples"], 256, spec["seed"])
        acc = ev["accuracy_generation"]
        sb = run_state_bits(str(rd)) if spec["arch"] == "mamba" else None
        imp = implied_bits(spec["task"], spec["n"], acc)
        space = input_space_size(data)
        logs = [json.loads(x) for x in (rd / ck.METRICS).read_text().splitlines()
                if '"train"' in x]
        sps = [x.get("samples_per_s") for x in logs]
        fast = next((x["step"] for x in logs if x.get("token_acc", 0) >= 0.99), None)
        stopped = summ.get("stopped_early") or ck.read_checkpoint(rd)[1].get("stopped_early")
        row = {"task": spec["task"], "n": spec["n"], "arch": spec["arch"],
               "d_state": spec["d_state"], "state_bits": sb, "trainable": summ["trainable"],
               "seed": spec["seed"], "lr": spec["lr"], "accuracy_generation": acc,
               "effective_bits_per_state_bit": (imp / sb) if sb and imp is not None else None,
               "implied_bits": imp, "phase": spec["phase"], "name": spec["name"],
               "d_model": spec["model"]["d_model"], "n_layers": spec["model"]["n_layers"],
               "steps": spec["steps"], "batch_size": spec["batch_size"],
               "steps_done": stopped["step"] if stopped else spec["steps"],
               "stop_reason": stopped["reason"] if stopped else None,
               "probe_every": spec["probe_every"], "patience": spec["patience"],
               "train_samples": (stopped["step"] if stopped else spec["steps"])
               * spec["batch_size"], "mix_min_n": spec["min_n"],
               "input_space": str(space) if space is not None else None,
               "test_samples": spec["eval_samples"],
               "accuracy_teacher_forced": ev["accuracy_teacher_forced"],
               "final_train_loss": summ.get("loss"), "steps_to_99_train": fast,
               "samples_per_s": sps[-1] if sps else None,
               "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0,
               "resumed": resume, "spec": spec}
        (rd / "result.json").write_text(json.dumps(row, indent=2) + "\n")
        return row
    finally:
        slot_q.put(slot)


#: spec fields that a stored result must match (a re-launch with other settings must not
#: silently reuse it)
MATCH = ("task", "n", "arch", "seed", "lr", "d_state", "steps", "batch_size", "probe_every",
         "patience")


def check_stored(spec: dict, row: dict) -> None:
    """SystemExit(2) with one line when a stored result was made with other settings."""
    want = {**{k: spec[k] for k in MATCH}, "mix_min_n": spec["min_n"],
            "d_model": spec["model"]["d_model"], "n_layers": spec["model"]["n_layers"]}
    diff = [f"{k} {row.get(k)!r} != {v!r}" for k, v in want.items() if row.get(k) != v]
    if diff:
        print(f"error: {spec['name']} was already run with other settings ({', '.join(diff)}); "
              "use another --runs/--out or remove it", file=sys.stderr)
        sys.exit(2)


def validate(specs: list[dict]) -> None:
    """Build every run's task and model before anything starts: SystemExit(2), one line."""
    from rnngap.learned.data import DataSpec
    from rnngap.learned.setup import learned_max_len
    from rnngap.models.lm import LMConfig
    for s in specs:
        try:
            if not (s["lr"] > 0 and s["steps"] >= 1 and s["batch_size"] >= 1 and s["seed"] >= 0):
                raise ValueError("lr must be > 0, steps and batch size >= 1, seeds >= 0")
            data = DataSpec(s["task"], s["n"], min_n=s["min_n"])
            LMConfig(arch=s["arch"], vocab_size=data.vocab_size(), embedding="learned",
                     max_len=learned_max_len(data), **s["model"])
        except (ValueError, TypeError) as exc:
            print(f"error: {s['name']}: {str(exc).splitlines()[0]}", file=sys.stderr)
            sys.exit(2)


def run_phase(specs: list[dict], a, rows: dict) -> int:
    """Run the specs not in ``rows`` yet (two at a time); returns how many were run."""
    import multiprocessing as mp

    from tqdm import tqdm
    todo = []
    validate(specs)
    for s in specs:
        res = Path(a.runs) / s["name"] / "result.json"
        if s["name"] in rows:
            check_stored(s, rows[s["name"]])
            continue
        if res.exists():
            rows[s["name"]] = json.loads(res.read_text())
            check_stored(s, rows[s["name"]])
        else:
            todo.append(s)
    if not todo:
        return 0
    ctx = mp.get_context("spawn")
    with ctx.Manager() as mgr:
        q = mgr.Queue()
        for i in range(a.workers):
            q.put(i)
        bar = tqdm(total=len(todo), desc=f"phase {specs[0]['phase']}", unit="run", position=0,
                   dynamic_ncols=True)
        with ProcessPoolExecutor(a.workers, mp_context=ctx, max_tasks_per_child=1) as ex:
            futs = {ex.submit(worker, s, a.runs, q): s for s in todo}
            for f in as_completed(futs):
                row = f.result()
                rows[row["name"]] = row
                bar.update(1)
                bar.write(f"{row['name']}: acc {row['accuracy_generation']:.3f} "
                          f"({row['cpu_s']:.0f} cpu-s)")
                write_results(a, rows)
        bar.close()
    return len(todo)


def best_lrs(rows: dict, specs: list[dict]) -> dict:
    best: dict = {}
    for s in specs:
        r = rows[s["name"]]
        # ties (e.g. two lrs at 1.000) -> the one that learned fastest (first logged step with
        # training accuracy >= 0.99; it predicts the harder, longer n better than the final loss
        # did in the first launch, see RESULTS.md) -> the lower final training loss
        fast = r.get("steps_to_99_train") or float("inf")
        key = (r["accuracy_generation"], -fast, -(r["final_train_loss"] or 0.0))
        if s["arch"] not in best or key > best[s["arch"]][0]:
            best[s["arch"]] = (key, s["lr"])
    return {k: v[1] for k, v in best.items()}


def write_results(a, rows: dict) -> None:
    out = sorted(rows.values(), key=lambda r: (r["phase"], r["task"], r["arch"], r["n"],
                                                r["d_state"] or 0, r["lr"], r["seed"]))
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(a.out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="ar,index")
    ap.add_argument("--ns", default="8,16,32,64,128")
    ap.add_argument("--archs", default="transformer,hybrid,mamba")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--lrs", default="2e-3,3e-3,5e-3")
    ap.add_argument("--lr-n", type=int, default=32)
    ap.add_argument("--state-task", default="ar")
    ap.add_argument("--state-n", type=int, default=16)
    ap.add_argument("--state-ds", default="1,8,32")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--mix-min-n", type=int, default=8,
                    help="train on lengths 8, 16, ..., n (one per batch); 0: every batch at n")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--eval-samples", type=int, default=512)
    ap.add_argument("--probe-every", type=int, default=100,
                    help="early stopping (rnngap train --early-stop): probe period in steps; "
                         "0 = off")
    ap.add_argument("--patience", type=int, default=2000,
                    help="early stopping: plateau patience in steps (0: stop only when solved)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--phases", default="lr,main,state")
    ap.add_argument("--quick", action="store_true",
                    help="smoke version: ns 8,16, seeds 0, 60 steps, 64 test samples")
    ap.add_argument("--runs", default=str(HERE / "runs"))
    ap.add_argument("--out", default=str(HERE / "results.json"))
    a = ap.parse_args()
    if a.workers < 1:
        ap.error("--workers must be >= 1")
    if a.quick:
        a.ns, a.seeds, a.steps, a.eval_samples, a.lrs = "8,16", "0", 60, 64, "3e-3,1e-2"
        a.state_ds, a.lr_n, a.state_n, a.warmup = "1,8", 8, 8, 10
        a.probe_every, a.patience = 20, 40
    def ints(s: str) -> list[int]:
        try:
            return [int(x) for x in s.split(",")]
        except ValueError:
            ap.error(f"expected comma-separated integers, got {s!r}")

    try:
        [float(x) for x in a.lrs.split(",")]
    except ValueError:
        ap.error(f"--lrs: expected comma-separated numbers, got {a.lrs!r}")
    for name in ("tasks", "archs"):
        known = {"tasks": ("ar", "index", "cgram", "counting"),
                 "archs": ("transformer", "hybrid", "mamba")}[name]
        bad = [x for x in getattr(a, name).split(",") if x not in known]
        if bad:
            ap.error(f"--{name}: unknown {bad}; known: {', '.join(known)}")
    Path(a.runs).mkdir(parents=True, exist_ok=True)
    rows: dict = {}
    if Path(a.out).exists():
        rows = {r["name"]: r for r in json.loads(Path(a.out).read_text())}
    archs = a.archs.split(",")
    t0, c0 = time.perf_counter(), time.process_time()
    phases = a.phases.split(",")
    lr_specs = [make_spec("ar", a.lr_n, arch, 0, float(lr), a, "lr")
                for arch in archs for lr in a.lrs.split(",")]
    # every run of every phase is checked before anything starts (lr not known yet: 1.0)
    validate(lr_specs + [make_spec(t, n, arch, seed, 1.0, a, "main") for t in a.tasks.split(",")
                         for n in ints(a.ns) for arch in archs for seed in ints(a.seeds)]
             + [make_spec(a.state_task, a.state_n, "mamba", 0, 1.0, a, "state", d)
                for d in ints(a.state_ds)])
    ran = 0
    if "lr" in phases or "main" in phases or "state" in phases:
        ran += run_phase(lr_specs, a, rows)
    best = best_lrs(rows, lr_specs)
    print("best lr per architecture:", best, file=sys.stderr)
    if "main" in phases:
        specs = [make_spec(t, n, arch, seed, best[arch], a, "main")
                 for t in a.tasks.split(",") for n in ints(a.ns) for arch in archs
                 for seed in ints(a.seeds)]
        # the biggest runs first, so the two workers finish together
        specs.sort(key=lambda s: -s["n"])
        ran += run_phase(specs, a, rows)
    if "state" in phases and "mamba" in best:
        specs = [make_spec(a.state_task, a.state_n, "mamba", seed, best["mamba"], a, "state", d)
                 for d in ints(a.state_ds) for seed in ints(a.seeds)]
        specs = [s for s in specs if s["name"] not in rows]
        if specs:
            ran += run_phase(specs, a, rows)
    write_results(a, rows)
    if not ran:
        print(f"nothing to run: all {len(rows)} runs are in {a.out} (meta.json kept)",
              file=sys.stderr)
        return
    import torch
    meta = {"command": "python experiments/retrieval_scaling/run.py " + " ".join(sys.argv[1:]),
            "best_lr": best, "arch_kw": ARCH_KW, "steps": a.steps, "batch_size": a.batch_size,
            "warmup": a.warmup, "eval_samples": a.eval_samples, "workers": a.workers,
            "probe_every": a.probe_every, "patience": a.patience,
            "mix_min_n": a.mix_min_n or None,
            "threads_per_run": 1, "embedding": "learned",
            "cpu_s_all_runs": sum(r["cpu_s"] for r in rows.values()),
            "this_launch_wall_s": time.perf_counter() - t0,
            "this_launch_driver_cpu_s": time.process_time() - c0,
            "machine": f"{platform.machine()} {os.cpu_count()} cores", "torch": torch.__version__,
            "python": platform.python_version()}
    # one record per launch that ran something: the first is the main one, later ones (e.g. an
    # extra state sweep) are appended, never replacing it
    mpath = Path(a.out).with_name("meta.json" if not a.quick else "meta-quick.json")
    if mpath.exists():
        old = json.loads(mpath.read_text())
        meta = {**old, "cpu_s_all_runs": meta["cpu_s_all_runs"],
                "later_launches": [*old.get("later_launches", []),
                                   {k: meta[k] for k in ("command", "this_launch_wall_s",
                                                         "this_launch_driver_cpu_s")}]}
    mpath.write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
