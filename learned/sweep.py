"""Sweeps: a grid file expanded into runs, run by local worker processes or submitit.

Grid file (TOML, or JSON with the same structure)::

    # every key of a run; a LIST under [axes] is swept (cartesian product)
    task = "istree"
    n = 8
    size = "small"            # or [model] d_model = .., n_layers = .., d_state = .., ...
    embedding = "learned"
    steps = 1500
    batch_size = 32
    eval_samples = 256
    [axes]
    format = ["plain", "cot", "retrieval"]
    arch = ["transformer", "mamba", "hybrid"]
    lr = [1e-3, 3e-3]
    seed = [0, 1]

Run keys (:data:`RUN_KEYS`): task, n, format, family, arch, size, model, embedding, lr,
lr_from, seed, steps, batch_size, warmup, mix_min_n, task_params, eval_samples, eval_seed (the
held-out stream's seed; default the run's seed: a learning-rate sweep should use another one
than the runs it feeds), early_stop, probe_every, patience (``rnngap train --early-stop``). ``lr_from`` names
another sweep's output folder: each architecture then takes the learning rate of its best
finished run there (highest accuracy by generation, ties -> lower final training loss), so a
small learning-rate sweep feeds the main grid. Everything is validated before any run starts
(unknown keys, an empty grid, duplicate runs, a model that does not fit the task's vocabulary):
:class:`GridError`, one line.

Each run is an ordinary run directory (``rnngap eval`` / ``rnngap report --runs`` read it)
plus ``result.json``, written atomically when the run ends: status ``finished`` or ``failed``
(with the error), accuracy by generation with every retrieval executed live, and the
bookkeeping. ``results.jsonl`` in the sweep folder is rebuilt from those files (atomically)
after every run, so killing a sweep never leaves a half-written row, and a re-launch skips
finished runs and resumes interrupted ones from their checkpoints.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Any

RUN_KEYS = ("task", "n", "format", "family", "arch", "size", "model", "embedding", "lr",
            "lr_from", "seed", "steps", "batch_size", "warmup", "mix_min_n", "task_params",
            "eval_samples", "eval_seed", "early_stop", "probe_every", "patience")
MODEL_KEYS = ("d_model", "n_layers", "d_state", "n_heads", "d_mlp", "attn_position")
DEFAULTS = {"task": "istree", "format": "plain", "family": "binary", "size": "small",
            "seed": 0, "eval_samples": 256, "model": None, "embedding": None, "lr": None,
            "lr_from": None, "steps": None, "batch_size": None, "warmup": None,
            "mix_min_n": None, "task_params": {}, "eval_seed": None, "early_stop": False,
            "probe_every": None, "patience": None}
RESULT_KEYS = ("run", "task", "n", "format", "arch", "size", "embedding", "lr", "seed", "steps",
               "status", "accuracy_generation", "accuracy_teacher_forced",
               "retrievals_executed")


class GridError(ValueError):
    """A grid file that cannot be run (one line, naming the file and the key)."""


# ----------------------------------------------------------------------------- grid
def load_grid(path: str | os.PathLike) -> dict:
    """Parse a TOML or JSON grid file (GridError on anything malformed)."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise GridError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if p.suffix == ".json":
            data = json.loads(text, parse_constant=_no_constant)
        else:
            import tomllib
            data = tomllib.loads(text.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise GridError(f"{path}: not valid {'JSON' if p.suffix == '.json' else 'TOML'} "
                        f"({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise GridError(f"{path}: expected a table of run keys at the top level")
    try:
        json.dumps(data)
    except TypeError as exc:            # e.g. a TOML date or time
        raise GridError(f"{path}: values must be strings, numbers, booleans, lists or tables "
                        f"({exc})") from None
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def expand(grid: dict, where: str = "grid") -> list[dict]:
    """The runs of a grid: defaults, top-level keys, then the product of [axes] lists."""
    axes = grid.get("axes", {})
    if not isinstance(axes, dict):
        raise GridError(f"{where}: [axes] must be a table of lists")
    for key in (*grid, *axes):
        if key not in (*RUN_KEYS, "axes", "name"):
            raise GridError(f"{where}: unknown key {key!r}; known: {', '.join(RUN_KEYS)}")
    for key, vals in axes.items():
        if not isinstance(vals, list) or not vals:
            raise GridError(f"{where}: axes.{key} must be a non-empty list")
    base = {**DEFAULTS, **{k: v for k, v in grid.items() if k not in ("axes", "name")}}
    keys = list(axes)
    runs = [{**base, **dict(zip(keys, combo))}
            for combo in itertools.product(*(axes[k] for k in keys))]
    if not runs:
        raise GridError(f"{where}: the grid is empty")
    for r in runs:
        _check_types(r, where)
        r["name"] = run_name(r, keys)
    names = [r["name"] for r in runs]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise GridError(f"{where}: duplicated runs ({dup[0]}, ...): an axis repeats a value")
    return runs


def _check_types(r: dict, where: str) -> None:
    ints = ("n", "seed", "steps", "batch_size", "warmup", "mix_min_n", "eval_samples",
            "eval_seed", "probe_every", "patience")
    if not isinstance(r.get("early_stop", False), bool):
        raise GridError(f"{where}: early_stop must be true or false, got {r['early_stop']!r}")
    for k in ints:
        v = r.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise GridError(f"{where}: {k} must be a non-negative integer, got {v!r}")
    if r.get("n") is None:
        raise GridError(f"{where}: n is required")
    lr = r.get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float))
                           or not math.isfinite(lr) or lr <= 0):
        raise GridError(f"{where}: lr must be a positive number, got {lr!r}")
    if r.get("model") is not None:
        m = r["model"]
        if not isinstance(m, dict) or set(m) - set(MODEL_KEYS):
            raise GridError(f"{where}: [model] takes {', '.join(MODEL_KEYS)}")
    if not isinstance(r.get("task_params") or {}, dict):
        raise GridError(f"{where}: task_params must be a table")


#: keys already in every run name (run_name); any other swept key is appended
_NAMED = ("task", "n", "format", "arch", "size", "model", "lr", "lr_from", "seed",
          "task_params")


def run_name(r: dict, axes: list[str] | tuple = ()) -> str:
    """Readable and unique: task, n, format, arch, size (or the [model] settings), lr, seed,
    task parameters, then every other swept key with its value."""
    size = r["size"] if not r.get("model") else r["size"] + "-m" + "-".join(
        f"{k}{v}" for k, v in sorted(r["model"].items()))
    lr = "lrbest" if r.get("lr_from") else (f"lr{float(r['lr'])!r}" if r.get("lr")
                                            else "lrdef")
    extra = "".join(f"-{k}{v}" for k, v in sorted((r.get("task_params") or {}).items()))
    extra += "".join(f"-{k}{r[k]}" for k in axes if k not in _NAMED)
    return (f"{r['task']}-n{r['n']}-{r['format']}-{r['arch']}-{size}-{lr}-s{r['seed']}"
            f"{extra}")


def options(r: dict, lr: float | None = None) -> dict:
    """The ``rnngap train`` options of a run (what commands/train._build takes)."""
    from rnngap.learned.setup import fill_schedule_defaults
    o = {"task": r["task"], "n": r["n"], "fmt": r["format"], "family": r["family"],
         "official_quirks": False,
         "task_param": tuple(f"{k}={v}" for k, v in (r.get("task_params") or {}).items()),
         "mix_min_n": r.get("mix_min_n"), "arch": r["arch"],
         "size": r["size"], "config": None,
         "embedding": r.get("embedding"), "attn_position": None, "scan": "auto",
         "steps": r.get("steps"), "batch_size": r.get("batch_size"),
         "lr": lr if lr is not None else r.get("lr"), "warmup": r.get("warmup"),
         "weight_decay": 0.01, "grad_clip": 1.0, "seed": r["seed"], "log_every": 50,
         "eval_every": 10 ** 9, "eval_batches": 2, "ckpt_every": 200,
         "early_stop": r.get("early_stop", False), "probe_every": r.get("probe_every"),
         "patience": r.get("patience"), "early_stop_lenient": True}
    o = fill_schedule_defaults(o)
    o["eval_every"] = o["steps"]
    return o


def build(r: dict, lr: float | None = None):
    """(LMConfig, DataSpec, TrainConfig) of a run; ValueError when the settings do not fit."""
    from dataclasses import replace

    from rnngap.learned.setup import build_configs as _build
    model, data, tc = _build(options(r, lr))
    if r.get("model"):
        model = replace(model, **r["model"])      # __post_init__ re-validates
    return model, data, tc


def validate(runs: list[dict], where: str, lrs: dict | None = None) -> None:
    """Build every run's task and model before anything starts (GridError, one line)."""
    import torch

    from rnngap.learned.data import TEST, TRAIN, make_batch
    from rnngap.models.lm import LM
    if any(r.get("probe_every") is not None or r.get("patience") is not None for r in runs) \
            and not any(r.get("early_stop") for r in runs):
        raise GridError(f"{where}: probe_every and patience need early_stop = true (in at least "
                        "one run; runs with early_stop = false ignore them)")
    seen: set = set()
    for r in runs:
        try:
            model, _data, _tc = build(r, (lrs or {}).get(r["arch"]))
            if model.vocab_size < _data.vocab_size():
                raise ValueError(f"the model's vocabulary ({model.vocab_size}) is smaller "
                                 f"than the task's ({_data.vocab_size()})")
            with torch.device("meta"):
                LM(model)
            key = json.dumps(_data.to_dict(), sort_keys=True)
            if key not in seen:         # both streams can be drawn (e.g. enough held-out inputs)
                seen.add(key)
                make_batch(_data, 1, 0, 0, TRAIN)
                make_batch(_data, 1, 0, 0, TEST)
        except (ValueError, TypeError) as exc:
            raise GridError(f"{where}: run {r['name']}: {str(exc).splitlines()[0]}") from None


def best_lrs(folder: str | os.PathLike, where: str) -> dict[str, float]:
    """Per architecture: the lr of the best finished run in another sweep's folder."""
    rows = read_results(folder)
    if not rows:
        raise GridError(f"{where}: lr_from {folder}: no results.jsonl with finished runs "
                        "(run that sweep first)")
    best: dict[str, tuple] = {}
    for r in rows:
        if r.get("status") != "finished" or r.get("accuracy_generation") is None:
            continue
        key = (r["accuracy_generation"], -(r.get("final_train_loss") or 0.0))
        if r["arch"] not in best or key > best[r["arch"]][0]:
            best[r["arch"]] = (key, r["lr"])
    return {a: v[1] for a, v in best.items()}


# ----------------------------------------------------------------------------- running
def run_one(r: dict, out: str, lr: float | None = None, max_minutes: float | None = None,
            samples: int | None = None, progress: bool | int = False,
            data_workers: int = 0) -> dict:
    """Train (resuming if a checkpoint exists) and evaluate one run; always returns its row
    (status failed with the error if anything raised) and writes RUN/result.json."""
    import torch
    torch.set_num_threads(1)
    from rnngap.learned import checkpoint as ck
    from rnngap.learned.evaluate import evaluate, load_run
    from rnngap.learned.train import train

    rd = Path(out) / r["name"]
    c0, w0 = time.process_time(), time.perf_counter()
    prior = {}
    if (rd / "result.json").is_file():              # an interrupted launch: add its time
        prior = json.loads((rd / "result.json").read_text())
        prior = prior if prior.get("status") == "interrupted" else {}
    row: dict[str, Any] = {"run": r["name"], **{k: r.get(k) for k in (
        "task", "n", "format", "arch", "size", "embedding", "seed", "model", "task_params",
        "batch_size")}, "lr": lr or r.get("lr"), "accuracy_generation": None,
        "accuracy_teacher_forced": None, "retrievals_executed": None}
    try:
        if lr is None and r.get("lr") is None and (rd / ck.CKPT).exists():
            # a run that takes the default lr keeps the one it started with: a default changed
            # since (e.g. by a new sweep result) must not make its resume a "changed setting"
            lr = ck.read_run_config(rd)["train"]["lr"]
        model, data, tc = build(r, lr)
        if samples is not None:
            from dataclasses import replace
            tc = replace(tc, steps=max(1, samples // tc.batch_size))
        row.update(lr=tc.lr, steps=tc.steps, embedding=model.embedding,
                   batch_size=tc.batch_size)
        deadline = time.monotonic() + 60 * max_minutes if max_minutes else None
        summ = train(rd, model, data, tc, resume=(rd / ck.CKPT).exists(), progress=progress,
                     deadline=deadline, data_workers=data_workers)
        timed_out = deadline is not None and time.monotonic() > deadline
        if summ.get("interrupted") and not timed_out:      # Ctrl-C: resume on re-launch
            row.update(status="interrupted", steps_done=summ.get("step"))
        else:
            lm, d2, _, meta = load_run(rd)
            eval_seed = r["seed"] if r.get("eval_seed") is None else r["eval_seed"]
            ev = evaluate(lm, d2, r["eval_samples"], 64, eval_seed)
            row.update(status="finished", steps_done=meta["step"],
                       time_limited=timed_out and bool(summ.get("interrupted")),
                       accuracy_generation=ev["accuracy_generation"],
                       accuracy_teacher_forced=ev["accuracy_teacher_forced"],
                       retrievals_executed=ev["retrievals_executed"],
                       retrieval_failures=ev.get("retrieval_failures"),
                       final_train_loss=summ.get("loss"), trainable=summ.get("trainable"),
                       stopped_early=meta.get("stopped_early"))
    except Exception as exc:  # noqa: BLE001 -- a crashed run is recorded and the sweep goes on
        row.update(status="failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                   if str(exc) else type(exc).__name__)
    row.update(cpu_s=round(time.process_time() - c0 + prior.get("cpu_s", 0.0), 2),
               wall_s=round(time.perf_counter() - w0 + prior.get("wall_s", 0.0), 2))
    rd.mkdir(parents=True, exist_ok=True)
    ck.atomic_write_json(rd / "result.json", row)
    return row


def read_results(folder: str | os.PathLike) -> list[dict]:
    p = Path(folder) / "results.jsonl"
    if not p.is_file():
        return []
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


def write_results(folder: str | os.PathLike, runs: list[dict]) -> list[dict]:
    """Rebuild results.jsonl from the runs' result.json files (atomic replace)."""
    from rnngap.learned.checkpoint import atomic_write_bytes
    rows = []
    for r in runs:
        f = Path(folder) / r["name"] / "result.json"
        if f.is_file():
            rows.append(json.loads(f.read_text()))
    text = "".join(json.dumps(x, sort_keys=True) + "\n" for x in rows)
    atomic_write_bytes(Path(folder) / "results.jsonl", text.encode())
    return rows


def pending(folder: str | os.PathLike, runs: list[dict], retry_failed: bool = False
            ) -> list[dict]:
    """Runs without a finished result (failed ones only with ``retry_failed``)."""
    out = []
    for r in runs:
        f = Path(folder) / r["name"] / "result.json"
        if f.is_file():
            st = json.loads(f.read_text()).get("status")
            if st == "finished" or (st == "failed" and not retry_failed):
                continue
        out.append(r)
    return out
