"""``rnngap train``: train a Transformer, Mamba or hybrid on IsTree or a retrieval task."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import click
from click.core import ParameterSource

from rnngap.commands._common import (
    UserError,
    check_out_dir,
    dump_json,
    fail,
    max_memory_option,
    promote,
)
from rnngap.learned.setup import (  # noqa: F401 (re-exported: the run settings live there)
    DEFAULT_MIX_MIN_N,
    DEFAULT_SCHEDULE,
    EARLY_STOP_DEFAULTS,
    build_configs,
    default_embedding,
    default_lr,
    early_stop_settings,
    fill_schedule_defaults,
    learned_max_len,
    parse_task_params,
)
from rnngap.resources import ResourceError
from rnngap.tasks.registry import RETRIEVAL_NAMES

_build = build_configs

TASKS = ("istree", *RETRIEVAL_NAMES)
ARCHES = ("transformer", "mamba", "hybrid", "rnn", "llama")


_RUNTIME = {"resume", "out", "device", "threads", "as_json", "progress", "overwrite",
            "data_workers"}


@click.command(context_settings={"show_default": True})
@click.option("--task", type=click.Choice(TASKS), default="istree", help="What to learn.")
@click.option("--n", "--task-n", "n", type=int, default=16,
              help="Task size (IsTree: number of vertices, >= 4), at most 8192. --task-n is an "
                   "alias for torchrun.")
@click.option("--format", "fmt", default="plain",
              help="IsTree: plain | cot | retrieval. Retrieval tasks: plain.")
@click.option("--family", default="binary", help="IsTree graph family: binary | random.")
@click.option("--official-quirks", is_flag=True,
              help="IsTree: reproduce the official label / random-family defects (comparison).")
@click.option("--task-param", multiple=True, metavar="KEY=VALUE",
              help="Extra task parameter, e.g. c=3 (cgram), alphabet=8, exact=true (counting).")
@click.option("--mix-min-n", type=int, default=None,
              help="Retrieval tasks: train on a mixture of lengths MIN, 2 MIN, 4 MIN, ... and n "
                   "(one uniformly drawn length per batch, alphabet of n); evaluation stays at "
                   "n. The short batches let the retrieval circuit form early (docs/learning.md)."
                   " 0: every batch at n [default: 8 for the retrieval tasks when n > 8].")
@click.option("--arch", type=click.Choice(ARCHES), default="mamba",
              help="Backbone (rnn = mamba, llama = transformer).")
@click.option("--size", type=click.Choice(["tiny", "small", "0.5m", "1m", "2m"]), default=None,
              help="Official size 0.5m/1m/2m, small (d_model 32, ~20k parameters: the "
                   "retrieval-scaling sizes) or tiny (smoke runs) [default: 0.5m for istree, "
                   "small for the retrieval tasks].")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="An official rnn-icrag JSON config file instead of --size.")
@click.option("--embedding", type=click.Choice(["official", "learned"]), default=None,
              help="official: frozen sinusoidal number table + tied frozen head (the paper's "
                   "setup, official parameter counts); learned: trainable token and position "
                   "tables + untied head [default: learned for retrieval tasks, official for "
                   "istree].")
@click.option("--attn-position", type=int, default=None,
              help="Hybrid: index of the attention layer among the Mamba layers (default: top).")
@click.option("--scan", type=click.Choice(["auto", "loop", "chunked", "cuda"]), default="auto",
              help="Mamba selective-scan implementation (cuda: mamba-ssm kernel, needs a GPU "
                   "and pip install 'rnngap[gpu]').")
@click.option("--steps", type=int, default=None,
              help="Optimizer steps [default: 1000 for istree, 3000 for the retrieval tasks].")
@click.option("--batch-size", type=int, default=None,
              help="Samples per step (per process) [default: 64 for istree, 32 for the "
                   "retrieval tasks].")
@click.option("--lr", type=float, default=None,
              help="Peak learning rate [default: per architecture and embedding, from the "
                   "sweep in experiments/retrieval_scaling; see docs/learning.md].")
@click.option("--warmup", type=int, default=None,
              help="Linear warmup steps [default: 100 for istree, 50 for the retrieval tasks].")
@click.option("--weight-decay", type=float, default=0.01, help="AdamW weight decay (>= 0).")
@click.option("--grad-clip", type=float, default=1.0, help="Gradient-norm clip (> 0).")
@click.option("--seed", type=int, default=0, help="Seeds weights and the data stream.")
@click.option("--log-every", type=int, default=10)
@click.option("--eval-every", type=int, default=200, help="Teacher-forced eval period (steps).")
@click.option("--eval-batches", type=int, default=2)
@click.option("--ckpt-every", type=int, default=200, help="Checkpoint period (steps).")
@click.option("--early-stop", is_flag=True,
              help="Stop early: every --probe-every steps score 256 fresh inputs from the "
                   "TRAINING part of the input space at length n (never the held-out part); "
                   "stop as solved after 2 probes in a row with every sample correct, or as a "
                   "plateau when the best probe accuracy has not risen by 0.02 in --patience "
                   "steps. The lr schedule keeps --steps, so a stopped run is the full run cut "
                   "short. Off by default.")
@click.option("--probe-every", type=int, default=None,
              help="With --early-stop: steps between probes [default: 100].")
@click.option("--patience", type=int, default=None,
              help="With --early-stop: plateau patience in steps, 0 = stop only when solved "
                   "[default: 2000; 1000 stopped a hybrid that sat at chance for 1,100 steps "
                   "before it learned, docs/learning.md].")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory to create (required unless --resume).")
@click.option("--resume", type=click.Path(file_okay=False), default=None,
              help="Continue the run in this directory from its checkpoint.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing, non-empty --out directory. The new run is trained in "
                   "a temporary sibling and replaces the old one only when it completes.")
@max_memory_option
@click.option("--device", default="auto", help="auto | cpu | cuda | cuda:1 ...")
@click.option("--threads", type=int, default=1,
              help="torch CPU threads (>= 1). Default 1: the models are small, and torch's "
                   "default (every core) oversubscribes a shared machine (200 steps of the tiny "
                   "hybrid: 69 s with every core busy vs 3.6 s with one thread); run two "
                   "trainings side by side on 2 cores instead.")
@click.option("--data-workers", type=int, default=0,
              help="Build training batches in this many worker processes ahead of the model "
                   "(same batches, same order; for GPU runs, where data generation would "
                   "otherwise stall the device). 0: in the training process.")
@click.option("--progress/--no-progress", default=True, help="tqdm progress bar on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary on stdout.")
@click.pass_context
def train(ctx: click.Context, **o) -> None:
    """Train a Transformer, Mamba or hybrid on IsTree or a retrieval task.

    \b
    Writes RUN_DIR/config.json, RUN_DIR/metrics.jsonl, RUN_DIR/checkpoint.safetensors.
    Ctrl-C saves a checkpoint and exits (code 130); --resume continues bit-identically on CPU.
    Data parallel: torchrun --nproc_per_node K -m rnngap.cli train --task-n 16 ...
    (use the alias --task-n there: torchrun takes --n as an abbreviation of its own options)
    Example: rnngap train --task istree --n 16 --format cot --arch mamba --size 0.5m --out runs/a
    """
    o = fill_schedule_defaults(o)
    for name in ("n", "steps", "batch_size", "log_every", "eval_every", "eval_batches",
                 "ckpt_every"):
        if o[name] < 1:
            raise click.BadParameter(f"must be >= 1, got {o[name]}",
                                     param_hint=f"--{name.replace('_', '-')}")
    from rnngap.learned.data import MAX_N

    if o["n"] > MAX_N:
        raise click.BadParameter(f"must be <= {MAX_N} for the learned models, got {o['n']}",
                                 param_hint="--n")
    for name in ("seed", "warmup"):
        if o[name] < 0:
            raise click.BadParameter(f"must be >= 0, got {o[name]}", param_hint=f"--{name}")
    if o["data_workers"] < 0:
        raise click.BadParameter(f"must be >= 0, got {o['data_workers']}",
                                 param_hint="--data-workers")
    if o["threads"] is not None and o["threads"] < 1:
        raise click.BadParameter(f"must be >= 1, got {o['threads']}", param_hint="--threads")
    for name, ok, want in (("lr", o["lr"] is None or (o["lr"] > 0 and math.isfinite(o["lr"])),
                            "a finite number > 0"),
                           ("grad_clip", o["grad_clip"] > 0 and math.isfinite(o["grad_clip"]),
                            "a finite number > 0"),
                           ("weight_decay", o["weight_decay"] >= 0
                            and math.isfinite(o["weight_decay"]), "a finite number >= 0")):
        if not ok:
            raise click.BadParameter(f"must be {want}, got {o[name]}",
                                     param_hint=f"--{name.replace('_', '-')}")
    if o["resume"] and o["out"]:
        raise click.UsageError("give either --out (new run) or --resume (existing run), not both")
    if not o["resume"] and not o["out"]:
        raise click.UsageError("--out RUN_DIR is required (or --resume RUN_DIR)")
    import torch

    from rnngap.learned.checkpoint import CheckpointError, read_run_config, run_sections
    from rnngap.learned.train import Diverged, pick_device, run_config
    from rnngap.learned.train import train as do_train

    try:
        pick_device(o["device"])
    except ResourceError:
        raise  # one line at the top level (cli), not a usage message
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if o["threads"]:
        torch.set_num_threads(o["threads"])
    try:
        if o["resume"]:
            run = Path(o["resume"])
            stored = read_run_config(run)
            model, data, tc = _from_stored(stored)
            explicit = [k for k in o if k not in _RUNTIME
                        and ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE]
            if explicit:
                m2, d2, t2 = _build(_merge(stored, o, explicit), model.vocab_size)
                if not {"arch", "size", "config", "scan", "attn_position",
                        "embedding"} & set(explicit):
                    m2 = model  # model untouched (it may come from an official JSON file)
                if run_config(m2, d2, t2) != run_sections(stored):
                    opts = ", ".join("--" + k.replace("_", "-") for k in explicit)
                    raise click.UsageError(f"--resume with changed hyperparameters ({opts}); "
                                           "start a new run with --out instead")
        else:
            target = check_out_dir(o["out"], o["overwrite"])
            model, data, tc = _build(o)
            run = target
            if target.is_dir() and any(target.iterdir()):   # --overwrite: train aside
                if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                    raise UserError("--overwrite is not available under torchrun; remove "
                                    f"{target} or choose a new --out")
                run = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-",
                                            dir=target.absolute().parent))
        try:
            summary = do_train(run, model, data, tc, resume=bool(o["resume"]),
                               device=o["device"], progress=o["progress"] and not o["as_json"],
                               data_workers=o["data_workers"])
        except BaseException:
            if run != Path(o["out"] or o["resume"]):     # a staging directory: nothing to keep
                shutil.rmtree(run, ignore_errors=True)
            _leave_process_group()
            raise
        if run != Path(o["out"] or o["resume"]):
            if summary["interrupted"]:
                click.echo(f"interrupted: the new run is in {run} ({o['out']} is untouched); "
                           f"continue it with --resume {run}", err=True)
            else:
                promote(run, Path(o["out"]))
                summary["run"] = str(o["out"])
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    except Diverged as exc:
        fail(str(exc), 1)
    except ResourceError:
        raise  # one line at the top level (cli), not a usage message
    except ValueError as exc:
        raise click.UsageError(str(exc).splitlines()[0]) from None
    except OSError as exc:
        raise UserError(f"{exc.filename or 'run directory'}: {exc.strerror or exc}") from None
    if summary["rank"] != 0:  # data-parallel workers: rank 0 reports
        pass
    elif o["as_json"]:
        dump_json(summary)
    else:
        state = "interrupted, checkpoint saved" if summary["interrupted"] else "done"
        if summary.get("stopped_early"):
            se = summary["stopped_early"]
            state = f"stopped early ({se['reason']}, best probe accuracy {se['best_probe']:.3f})"
        loss = f"loss {summary['loss']:.4f}" if "loss" in summary else "no steps left to run"
        click.echo(f"{state}: step {summary['step']}/{summary['steps']}, {loss}, "
                   f"run {summary['run']}")
    if summary["interrupted"]:
        ctx.exit(130)


def _leave_process_group() -> None:
    """On an error under torchrun: leave the process group before exiting, so that no rank
    aborts in the interpreter's teardown with a live gloo/nccl group (train() leaves it itself
    after a finished run, behind a barrier)."""
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001, S110 -- best effort on the way out of a failed run
        pass


def _from_stored(stored: dict):
    from rnngap.learned.data import DataSpec
    from rnngap.learned.train import TrainConfig
    from rnngap.models.lm import LMConfig

    try:
        return (LMConfig.from_dict(stored["model"]), DataSpec.from_dict(stored["data"]),
                TrainConfig.from_dict(stored["train"]))
    except (TypeError, ValueError) as exc:
        from rnngap.learned.checkpoint import CheckpointError
        raise CheckpointError(f"config.json is not a usable rnngap run config: {exc}") from None


def _merge(stored: dict, o: dict, explicit: list[str]) -> dict:
    """Options as the stored run had them, overridden by the explicitly given ones."""
    m, d, t = stored["model"], stored["data"], stored["train"]
    base = {"task": d["task"], "n": d["n"], "fmt": d["fmt"], "family": d["family"],
            "official_quirks": d["official_quirks"], "mix_min_n": d.get("min_n") or 0,
            "task_param": tuple(f"{k}={v}" for k, v in d["params"].items()),
            "arch": m["arch"], "size": None, "config": None, "scan": m["scan"],
            "embedding": m.get("embedding", "official"),
            "attn_position": m["attn_position"], **{k: t[k] for k in (
                "steps", "batch_size", "lr", "warmup", "weight_decay", "grad_clip", "seed",
                "log_every", "eval_every", "eval_batches", "ckpt_every")},
            "early_stop": bool(t.get("probe_every")),
            "probe_every": t.get("probe_every") or None, "patience": t.get("patience")
            if t.get("probe_every") else None}
    merged = {**base, **{k: o[k] for k in explicit}}
    if merged["size"] is None and merged["config"] is None:
        from rnngap.learned.configs import OFFICIAL
        # the stored model: find its named size, else compare the architecture fields directly
        for (a, s), kw in OFFICIAL.items():
            if a == m["arch"] and all(m.get(k) == v for k, v in kw.items()):
                merged["size"] = s
                break
        else:
            merged["size"] = "0.5m"  # arch fields not from a named size: comparison will differ
    return merged
