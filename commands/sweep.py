"""``rnngap sweep GRID --out DIR``: expand a grid file into runs and run them (learned/sweep.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import click

from rnngap.commands._common import UserError, dump_json


@click.command()
@click.argument("grid", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Sweep folder: one run directory per run, results.jsonl, sweep.json.")
@click.option("--workers", type=int, default=2, show_default=True,
              help="Local worker processes, one torch thread each.")
@click.option("--launcher", type=click.Choice(["local", "submitit"]), default="local",
              show_default=True, help="local processes, or submitit (SLURM clusters; "
              "--cluster local runs submitit's local executor).")
@click.option("--cluster", type=click.Choice(["auto", "slurm", "local"]), default="auto",
              show_default=True, help="With --launcher submitit.")
@click.option("--partition", default=None, help="With --launcher submitit: SLURM partition.")
@click.option("--timeout-min", type=int, default=60, show_default=True,
              help="With --launcher submitit: the job time limit.")
@click.option("--max-minutes", type=float, default=None,
              help="Stop each run's training after this many minutes (checkpoint kept, row "
                   "marked time_limited): scales a paper-size grid down.")
@click.option("--samples", type=int, default=None,
              help="Train every run on this many samples (steps = samples / batch size) "
                   "instead of the grid's steps.")
@click.option("--data-workers", type=int, default=0, show_default=True,
              help="Per run: build training batches in this many worker processes (GPU runs).")
@click.option("--retry-failed", is_flag=True, help="Run failed runs again.")
@click.option("--only", multiple=True, metavar="TEXT",
              help="Only runs whose name contains TEXT (repeatable: all must match).")
@click.option("--dry-run", is_flag=True, help="Validate and list the runs; run nothing.")
@click.option("--progress/--no-progress", default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def sweep(grid, out, workers, launcher, cluster, partition, timeout_min, max_minutes, samples,
          data_workers, retry_failed, only, dry_run, progress, as_json):
    """Run every run of GRID (a TOML or JSON grid file; learned/sweep.py documents the keys).

    \b
    Finished runs are skipped on re-launch, interrupted ones resume from their checkpoints,
    a crashed run is recorded as failed with its error and the others go on. results.jsonl
    has one row per run (run, task, n, format, arch, size, embedding, lr, seed, steps,
    status, accuracy_generation, accuracy_teacher_forced, retrievals_executed, ...);
    `rnngap report --runs OUT/<run> ...` reads the run directories.
    Exit code 1 when a run failed, 2 for a grid that cannot run (nothing started).
    """
    from rnngap.learned import sweep as S

    if workers < 1:
        raise click.BadParameter("must be >= 1", param_hint="--workers")
    if max_minutes is not None and not max_minutes > 0:
        raise click.BadParameter("must be > 0", param_hint="--max-minutes")
    if samples is not None and samples < 1:
        raise click.BadParameter("must be >= 1", param_hint="--samples")
    if data_workers < 0:
        raise click.BadParameter("must be >= 0", param_hint="--data-workers")
    try:
        g = S.load_grid(grid)
        runs = S.expand(g, grid)
        if only:
            runs = [r for r in runs if all(t in r["name"] for t in only)]
            if not runs:
                raise S.GridError(f"{grid}: no run name contains all of {list(only)}")
        lrs = None
        froms = {r["lr_from"] for r in runs if r.get("lr_from")}
        if len(froms) > 1:
            raise S.GridError(f"{grid}: one lr_from per grid")
        if froms:
            src = Path(grid).parent / froms.pop()
            lrs = S.best_lrs(src, grid)
            missing = sorted({r["arch"] for r in runs} - set(lrs))
            if missing:
                raise S.GridError(f"{grid}: lr_from {src} has no finished run for {missing}")
        S.validate(runs, grid, lrs)
    except S.GridError as exc:
        raise UserError(str(exc)) from None
    outp = Path(out)
    digest = hashlib.sha256(json.dumps(g, sort_keys=True).encode()).hexdigest()
    meta_path = outp / "sweep.json"
    if outp.exists() and not outp.is_dir():
        raise UserError(f"--out {out}: a file is in the way")
    if outp.is_dir() and any(outp.iterdir()):
        if not meta_path.is_file():
            raise UserError(f"--out {out} holds files that are not a sweep; choose a new folder")
        stored = json.loads(meta_path.read_text())
        if stored.get("grid_sha256") != digest:
            raise UserError(f"--out {out} was made by another grid (its sweep.json differs); "
                            "choose a new folder")
        was = stored.get("options", {})
        now = {"samples": samples, "max_minutes": max_minutes}
        diff = [f"--{k.replace('_', '-')} {was.get(k)} -> {v}" for k, v in now.items()
                if was.get(k) != v]
        if diff:
            raise UserError(f"--out {out} was launched with other training options "
                            f"({', '.join(diff)}); give the same ones or a new folder")
    todo = S.pending(outp, runs, retry_failed)
    if launcher == "submitit":
        _check_submitit(cluster)
    if dry_run:
        listing = [{"run": r["name"], "pending": r in todo} for r in runs]
        if as_json:
            dump_json(listing)
        else:
            for x in listing:
                click.echo(f"{'todo' if x['pending'] else 'done'}  {x['run']}")
        return
    outp.mkdir(parents=True, exist_ok=True)
    if not meta_path.is_file():
        from rnngap.learned.checkpoint import atomic_write_json
        atomic_write_json(meta_path, {"grid": g, "grid_file": str(grid), "grid_sha256": digest,
                                      "learning_rates_from": lrs,
                                      "options": {"samples": samples,
                                                  "max_minutes": max_minutes}})
    args = [(r, str(outp), (lrs or {}).get(r["arch"]), max_minutes, samples, False,
             data_workers) for r in todo]
    if launcher == "local":
        _run_local(args, runs, outp, workers, progress and not as_json)
    else:
        _run_submitit(args, runs, outp, cluster, partition, timeout_min, workers,
                      progress and not as_json)
    rows = S.write_results(outp, runs)
    fin = sum(r.get("status") == "finished" for r in rows)
    failed = [r for r in rows if r.get("status") == "failed"]
    summary = {"out": str(outp), "runs": len(runs), "ran_now": len(todo), "finished": fin,
               "failed": len(failed), "results": str(outp / "results.jsonl")}
    if as_json:
        dump_json(summary)
    else:
        click.echo(f"{len(runs)} runs ({len(todo)} run now): {fin} finished, {len(failed)} "
                   f"failed; {outp / 'results.jsonl'}")
        for r in failed:
            click.echo(f"  failed: {r['run']}: {r.get('error')}")
    if failed:
        sys.exit(1)


def _run_local(args, runs, outp, workers, progress) -> None:
    """At most ``workers`` runs at a time, each in its own spawned process. A process that
    dies (killed, out of memory) is recorded as a failed run and the others go on; Ctrl-C
    starts nothing new, waits for the running ones to save their checkpoints, rebuilds
    results.jsonl and re-raises (exit 130)."""
    import multiprocessing as mp
    import time

    from tqdm import tqdm

    from rnngap.learned import sweep as S
    if not args:
        return
    ctx = mp.get_context("spawn")
    queue = list(args)
    running: dict = {}
    bar = tqdm(total=len(args), desc="sweep", unit="run", disable=not progress)

    def reap(block: bool) -> None:
        for proc, a in list(running.items()):
            if block:
                proc.join()
            if proc.is_alive():
                continue
            del running[proc]
            f = outp / a[0]["name"] / "result.json"
            if proc.exitcode == 0 and f.is_file():
                row = json.loads(f.read_text())     # run_one always writes it last
            elif block:
                continue                            # Ctrl-C: resumed on the next launch
            else:
                why = (f"killed by signal {-proc.exitcode}" if proc.exitcode < 0
                       else f"exit code {proc.exitcode}")
                row = _failed_row(outp, a[0], f"the run's process died ({why}; out of "
                                              "memory?) before writing its result")
            S.write_results(outp, runs)
            bar.update(1)
            acc = row.get("accuracy_generation")
            bar.write(f"{row['run']}: {row['status']}"
                      + (f", accuracy {acc:.3f}" if acc is not None else "")
                      + (f" ({row.get('error')})" if row["status"] == "failed" else ""),
                      file=sys.stderr)

    try:
        while queue or running:
            while queue and len(running) < workers:
                a = queue.pop(0)
                proc = ctx.Process(target=_child, args=a, daemon=False)
                # the child starts with Ctrl-C ignored (so no half-imported process dies with a
                # traceback) and takes it back in _child; on Ctrl-C we signal it ourselves
                old = signal.signal(signal.SIGINT, signal.SIG_IGN)
                try:
                    proc.start()
                finally:
                    signal.signal(signal.SIGINT, old)
                running[proc] = a
            time.sleep(0.2)
            reap(block=False)
    except KeyboardInterrupt:
        queue.clear()
        while any(p.is_alive() for p in running):      # until each has taken the signal
            for p in running:
                if p.is_alive() and p.pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGINT)
            time.sleep(1.0)
        reap(block=True)            # they saved a checkpoint and stopped
        S.write_results(outp, runs)
        raise
    finally:
        bar.close()


def _child(*args) -> None:
    """One run in its own process. Ctrl-C before training has installed its own handler (while
    torch imports, say) ends the process quietly: no traceback, the run resumes next time."""
    # torch is imported while Ctrl-C is still ignored (an interrupted torch import can abort
    # the process from C++); the parent re-sends the signal until this process exits
    import torch  # noqa: F401

    from rnngap.learned import sweep as S
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        S.run_one(*args)
    except KeyboardInterrupt:
        sys.exit(130)


def _failed_row(outp, r: dict, error: str) -> dict:
    from rnngap.learned.checkpoint import atomic_write_json
    rd = outp / r["name"]
    rd.mkdir(parents=True, exist_ok=True)
    row = {"run": r["name"], "status": "failed", "error": error,
           "accuracy_generation": None, "accuracy_teacher_forced": None,
           "retrievals_executed": None,
           **{k: r.get(k) for k in ("task", "n", "format", "arch", "size", "embedding",
                                    "lr", "seed", "model", "task_params", "batch_size",
                                    "steps")}}
    atomic_write_json(rd / "result.json", row)
    return row


def _check_submitit(cluster: str) -> None:
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError("--launcher submitit needs the submitit package: pip install "
                        "submitit") from None
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--cluster slurm: no sbatch on PATH (this is not a SLURM login node); "
                        "use --cluster local or --launcher local")


def _run_submitit(args, runs, outp, cluster, partition, timeout_min, workers,
                  progress) -> None:
    import time

    import submitit
    from tqdm import tqdm

    from rnngap.learned import sweep as S
    if not args:
        return
    ex = submitit.AutoExecutor(folder=str(outp / ".submitit"),
                               cluster=None if cluster == "auto" else cluster)
    params = {"timeout_min": timeout_min, "cpus_per_task": 1}
    if partition:
        params["slurm_partition"] = partition
    params["slurm_array_parallelism"] = workers
    ex.update_parameters(**params)
    jobs = ex.map_array(S.run_one, *zip(*args))
    bar = tqdm(total=len(jobs), desc="sweep (submitit)", unit="run", disable=not progress)
    left = dict(zip(jobs, args))
    try:
        while left:
            for job in [j for j in left if j.done()]:
                a = left.pop(job)
                try:
                    job.result()
                except Exception as exc:  # noqa: BLE001 -- the job itself died: record it
                    _failed_row(outp, a[0], f"submitit job {job.job_id}: "
                                            f"{str(exc).splitlines()[-1][:300]}")
                S.write_results(outp, runs)
                bar.update(1)
            time.sleep(0.5)
    except KeyboardInterrupt:
        for job in left:            # do not leave jobs running on the cluster
            job.cancel(check=False)
        S.write_results(outp, runs)
        raise
    finally:
        bar.close()
