"""Run directories and checkpoints: safetensors + JSON, written atomically, never pickle.

A run directory holds::

    config.json              {"model": LMConfig, "data": DataSpec, "train": TrainConfig}
    metrics.jsonl            one JSON object per log / eval event
    checkpoint.safetensors   model.* weights, optim.<i>.<key> AdamW tensors, rng.torch, and the
                             JSON metadata (step, optimizer hyper-parameters, config digest) in the
                             safetensors header -- ONE file, so replacing it is atomic
    checkpoint.json          a readable copy of that metadata (informational)

Atomicity: every file is written to ``<name>.tmp`` in the same directory, fsync'ed, then
``os.replace``'d over the old one (POSIX rename is atomic), so a crash leaves either the old or
the new checkpoint, never a mix. A truncated or corrupted file fails to parse and raises
:class:`CheckpointError` (the CLI turns it into a one-line error).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

CKPT = "checkpoint.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"


class CheckpointError(ValueError):
    """A run directory or checkpoint that cannot be used (missing, truncated, mismatched)."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


#: the sections of config.json that define a run (compared on resume, digested into checkpoints);
#: the other keys (format, spec, conventions: models/export_format.py) describe, never decide
RUN_SECTIONS = ("model", "data", "train")


def run_sections(cfg: dict) -> dict:
    """The defining sections of a run config (see :data:`RUN_SECTIONS`)."""
    return {k: cfg[k] for k in RUN_SECTIONS if k in cfg}


def config_digest(cfg: dict) -> str:
    """sha256 of the canonical JSON of a run config's defining sections (detects a config
    changed under a run; the descriptive keys added in format rnngap-run-1 are not part of it,
    so checkpoints written before them still match)."""
    return hashlib.sha256(json.dumps(run_sections(cfg), sort_keys=True).encode()).hexdigest()


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and raw bytes (sorted by name): stored in
    the checkpoint header and recomputed at load, so damaged tensor bytes behind an intact
    header are caught (safetensors itself checks only the header and the sizes)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        v = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(run: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int,
                    cfg: dict, extra: dict | None = None) -> None:
    """Write model, optimizer and RNG state at ``step`` atomically into ``run``."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    osd = opt.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for i, st in osd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{i}.{key}"] = val.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(i), {})[key] = val
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": step, "param_groups": osd["param_groups"], "optim_scalars": scalars,
            "config_digest": config_digest(cfg), "tensor_sha256": tensor_digest(tensors),
            "format": "rnngap-checkpoint-1",
            **(extra or {})}
    data = save(tensors, metadata={"meta": json.dumps(meta)})
    atomic_write_bytes(run / CKPT, data)
    atomic_write_json(run / "checkpoint.json", meta)


def read_checkpoint(run: Path, cfg: dict | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of ``run``'s checkpoint; CheckpointError if missing or damaged.

    Checked at every load: the format tag, the tensor digest (written since digests exist; an
    older checkpoint without one is accepted), finite model and optimizer tensors, and, when
    ``cfg`` (the run's config.json) is given, that the checkpoint was written for it."""
    from safetensors import safe_open

    path = run / CKPT
    if not path.is_file():
        raise CheckpointError(f"{run} has no {CKPT} (the run stopped before its first "
                              f"checkpoint; `rnngap train --out {run} --overwrite ...` starts it over)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["meta"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not iterable)
    except Exception as exc:  # noqa: BLE001 -- safetensors raises several types on damage
        raise CheckpointError(f"{path} is corrupted or truncated ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if meta.get("format") != "rnngap-checkpoint-1":
        raise CheckpointError(f"{path} is not an rnngap checkpoint")
    if "tensor_sha256" in meta and meta["tensor_sha256"] != tensor_digest(tensors):
        raise CheckpointError(f"{path}: the tensor data does not match the digest in its header "
                              "(the file was damaged or edited)")
    bad = [k for k, v in tensors.items() if k.startswith(("model.", "optim."))
           and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} tensor(s) hold NaN or infinite values "
                              f"({', '.join(sorted(bad)[:3])}{', ...' if len(bad) > 3 else ''}); "
                              "the run diverged or the file was damaged")
    if cfg is not None and meta.get("config_digest") != config_digest(cfg):
        raise CheckpointError(f"{run / CONFIG} was changed after the checkpoint was written (its "
                              "digest differs); restore it or train a new run")
    return tensors, meta


def load_model_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit the model: "
                              f"{str(exc).splitlines()[0]}") from None


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                   meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, key = k.split(".", 2)
            state.setdefault(int(i), {})[key] = v
    for i, sc in meta.get("optim_scalars", {}).items():
        state.setdefault(int(i), {}).update(sc)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def read_run_config(run: Path) -> dict:
    """The parsed config.json of a run directory (CheckpointError when it is not a run)."""
    if not run.is_dir():
        raise CheckpointError(f"{run} is not a directory")
    p = run / CONFIG
    if not p.is_file():
        raise CheckpointError(f"{run} is not an rnngap run directory (no {CONFIG})")
    try:
        cfg = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p} is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict) or not {"model", "data", "train"} <= set(cfg):
        raise CheckpointError(f"{p} is not an rnngap run config (needs model, data, train)")
    return cfg


def read_metrics(run: Path) -> list[dict]:
    """The records of ``run``'s metrics.jsonl (lines cut by a kill are skipped; [] if none)."""
    p = run / METRICS
    if not p.is_file():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def truncate_metrics(run: Path, step: int) -> None:
    """Drop metric lines logged after ``step`` (a killed run may have logged past its last
    checkpoint); keeps the file consistent with the resumed run."""
    p = run / METRICS
    if not p.is_file():
        return
    keep = []
    for line in p.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
    atomic_write_bytes(p, ("\n".join(keep) + "\n" if keep else "").encode())
