"""Training loop: AdamW, linear warmup + cosine decay, gradient clipping, checkpoints, resume, DDP.

Objective: next-token cross-entropy averaged over supervised target positions only,

    L = sum_{b,t} mask[b,t] * CE(logits[b,t], tokens[b,t+1]) / sum mask,

(retrieved tokens are never in the mask; see ``learned/data.py``).
Learning rate at step s (1-based) with peak lr, W warmup steps, S total steps, floor r:
    lr(s) = lr * s / W                                        for s <= W
    lr(s) = lr * (r + (1 - r) * (1 + cos(pi * (s - W) / (S - W))) / 2)   otherwise.
The schedule is a pure function of the step, so resuming needs no scheduler state.

Early stopping (off unless ``probe_every`` > 0; the schedule keeps its total ``steps``, so a
stopped run is the uninterrupted run's trajectory cut at the stop): every ``probe_every`` steps
the model scores ``probe_samples`` fresh inputs from the TRAINING part of the input space at the
full length n (stream ``PROBE`` of learned/data.py; the held-out part is never looked at), by the
teacher-forced all-correct metric (for the one-token answers of the retrieval tasks this is the
accuracy by generation). The run stops as ``solved`` after ``solved_probes`` consecutive probes
with every sample correct, and as ``plateau`` when ``patience`` > 0 steps have passed since the
best probe accuracy last rose by at least ``min_delta`` (absolute). Both rules are the same for
every architecture; the stop and its reason go into metrics.jsonl, the checkpoint and the summary.

Determinism: batch i is a pure function of (seed, i) (``learned/data.py``); weights are
initialised from ``torch.manual_seed(seed)``; a checkpoint stores weights, AdamW moments and the
torch RNG; so on CPU a resumed run performs bit-identically the same float operations as an
uninterrupted one (``tests/test_train.py`` checks the final weights are equal).

Data parallel: under ``torchrun`` (WORLD_SIZE > 1) each process r of w trains on batches
i * w + r with ``batch_size`` samples each (the global batch is w * batch_size), gradients are
averaged by DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0 writes all files.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Self

import torch
import torch.nn.functional as F

from rnngap.learned import checkpoint as ck
from rnngap.learned.data import PROBE, TRAIN, VALID, DataSpec, make_batch, to_training
from rnngap.models.lm import LM, LMConfig, memory_estimate
from rnngap.resources import require


@dataclass
class TrainConfig:
    """Optimisation hyper-parameters (JSON-serializable)."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-4
    warmup: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    eval_every: int = 200
    eval_batches: int = 2
    ckpt_every: int = 200
    #: early stopping (module docstring); 0 = off. Omitted from config.json while off, so the
    #: configs (and checkpoint digests) of runs made before it existed are unchanged.
    probe_every: int = 0
    probe_samples: int = 256
    solved_probes: int = 2
    patience: int = 0
    min_delta: float = 0.02

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "eval_every", "eval_batches",
                     "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "grad_clip"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        for name in ("probe_every", "patience"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        for name in ("probe_samples", "solved_probes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not (0 <= self.min_delta <= 1):
            raise ValueError(f"min_delta must be in [0, 1], got {self.min_delta}")
        if self.patience and not self.probe_every:
            raise ValueError("patience needs probes: set probe_every > 0 (--early-stop)")

    def to_dict(self) -> dict:
        """JSON form for config.json: every field, the early-stopping ones only when on."""
        d = asdict(self)
        if not self.probe_every:
            for k in _EARLY_STOP_KEYS:
                d.pop(k)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown train config keys: {sorted(unknown)}")
        return cls(**d)


_EARLY_STOP_KEYS = ("probe_every", "probe_samples", "solved_probes", "patience", "min_delta")


class EarlyStop:
    """The stopping rules of the module docstring, fed one probe accuracy at a time."""

    def __init__(self, tc: TrainConfig) -> None:
        self.tc = tc
        self.best = -1.0        # the highest probe accuracy so far
        self.base = -1.0        # the plateau baseline: the last accuracy that counted as a rise
        self.best_step = 0      # the step of that rise
        self.perfect = 0        # perfect probes in a row

    def update(self, step: int, acc: float) -> str | None:
        """Record the probe at ``step``; the reason to stop now (``solved``/``plateau``) or None.
        A rise is min_delta above the baseline, or a first perfect probe (nothing is left to
        rise to, so a perfect probe never counts as a plateau)."""
        self.perfect = self.perfect + 1 if acc >= 1.0 else 0
        if self.base < 0 or acc >= self.base + self.tc.min_delta or (acc >= 1.0 > self.base):
            self.base, self.best_step = acc, step
        self.best = max(self.best, acc)
        if self.perfect >= self.tc.solved_probes:
            return "solved"
        if self.tc.patience and self.perfect == 0 and step - self.best_step >= self.tc.patience:
            return "plateau"
        return None

    def state(self) -> dict:
        return {"best": self.best, "base": self.base, "best_step": self.best_step,
                "perfect": self.perfect}

    def load(self, st: dict) -> None:
        self.best, self.base = float(st["best"]), float(st["base"])
        self.best_step, self.perfect = int(st["best_step"]), int(st["perfect"])


@torch.no_grad()
def probe_accuracy(lm: LM, spec: DataSpec, tc: TrainConfig, device: torch.device,
                   index: int) -> float:
    """Teacher-forced all-correct accuracy on probe batch ``index`` (``tc.probe_samples``
    fresh training-partition inputs at length n; stream PROBE), scored in chunks of the
    training batch size (the memory checked before training covers a training batch)."""
    lm.eval()
    x, y, m = to_training(make_batch(spec, tc.probe_samples, tc.seed, index, PROBE))
    ok = 0
    for i in range(0, x.shape[0], tc.batch_size):
        _, _, allok = masked_loss(lm(x[i:i + tc.batch_size].to(device)),
                                  y[i:i + tc.batch_size].to(device),
                                  m[i:i + tc.batch_size].to(device))
        ok += int(allok.sum())
    lm.train()
    return ok / x.shape[0]


def lr_at(step: int, tc: TrainConfig) -> float:
    """The learning rate used for optimizer step ``step`` (1-based); see the module docstring."""
    if tc.warmup and step <= tc.warmup:
        return tc.lr * step / tc.warmup
    span = max(1, tc.steps - tc.warmup)
    frac = min(1.0, (step - tc.warmup) / span)
    return tc.lr * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean CE over masked positions, #correct masked argmaxes, per-sample all-correct)."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                         reduction="none").view_as(targets)
    m = mask.to(ce.dtype)
    loss = (ce * m).sum() / m.sum().clamp(min=1)
    hit = (logits.argmax(-1) == targets)
    return loss, (hit & mask).sum(), (hit | ~mask).all(-1)


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:k]``; ValueError (one line)
    for anything else, and for CUDA when this torch has no usable CUDA device ``k``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: expected auto, cpu, cuda or cuda:K")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available (this torch build or "
                             "machine has no usable GPU); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA "
                             "device(s) visible")
    return dev


def check_scan(model_cfg: LMConfig, dev: torch.device) -> None:
    """``scan="cuda"`` needs a CUDA device and mamba_ssm (ValueError with what to install)."""
    if model_cfg.arch == "transformer" or model_cfg.scan != "cuda":
        return
    from rnngap.models.mamba import require_cuda_scan
    require_cuda_scan(dev)


def _dist() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


@torch.no_grad()
def teacher_forced_eval(lm: LM, spec: DataSpec, tc: TrainConfig, device: torch.device,
                        batches: int, stream: int = VALID) -> dict[str, float]:
    """Teacher-forced metrics on held-out batches: loss, token accuracy on supervised targets,
    and the official val.py metric (a sample counts when EVERY supervised token is argmax-correct
    given the true prefix -- retrieved tokens included in the prefix, never predicted)."""
    lm.eval()
    tot_loss = tot_tok = hits = ok = samples = 0.0
    for i in range(batches):
        x, y, m = (t.to(device) for t in to_training(make_batch(spec, tc.batch_size, tc.seed,
                                                                   i, stream)))
        loss, h, allok = masked_loss(lm(x), y, m)
        tot_loss += float(loss) * float(m.sum())
        tot_tok += float(m.sum())
        hits += float(h)
        ok += float(allok.sum())
        samples += x.shape[0]
    lm.train()
    return {"loss": tot_loss / max(tot_tok, 1), "token_acc": hits / max(tot_tok, 1),
            "sample_acc_teacher_forced": ok / samples}


class _Stop:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint after the current step and stops."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Self:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, h in self._old.items():
            signal.signal(sig, h)


def run_config(model: LMConfig, data: DataSpec, tc: TrainConfig) -> dict:
    return {"model": model.to_dict(), "data": data.to_dict(), "train": tc.to_dict()}


class _BatchStream(torch.utils.data.IterableDataset):
    """Training batches ``start..steps-1`` of one rank; worker w of K builds every K-th one
    (the DataLoader then returns them in step order: it reads its workers round-robin)."""

    def __init__(self, data: DataSpec, tc: TrainConfig, start: int, world: int, rank: int):
        self.data, self.tc, self.start, self.world, self.rank = data, tc, start, world, rank

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w, k = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in range(self.start + w, self.tc.steps, k):
            yield to_training(make_batch(self.data, self.tc.batch_size, self.tc.seed,
                                         step * self.world + self.rank, TRAIN))


def train_batches(data: DataSpec, tc: TrainConfig, start: int, world: int = 1, rank: int = 0,
                  workers: int = 0):
    """Iterator over the (inputs, targets, mask) of training steps ``start..tc.steps-1``.

    Batch i is a pure function of (seed, i) (learned/data.py), so building them in ``workers``
    processes ahead of the model (a torch DataLoader over :class:`_BatchStream`) yields exactly
    the batches of the in-process path, in the same order: data generation off the critical
    path on a GPU machine, same numbers everywhere."""
    if workers <= 0:
        return iter(_BatchStream(data, tc, start, world, rank))
    # its own generator: the loader's worker seeds must not advance the global torch RNG
    # (saved in checkpoints; a run must not depend on how its batches were built)
    loader = torch.utils.data.DataLoader(_BatchStream(data, tc, start, world, rank),
                                         batch_size=None, num_workers=workers, prefetch_factor=4,
                                         generator=torch.Generator().manual_seed(0))
    return iter(loader)


class Diverged(RuntimeError):
    """The loss or the gradient became NaN or infinite (the step is not applied)."""


def train(run: str | Path, model_cfg: LMConfig, data: DataSpec, tc: TrainConfig, *,
          resume: bool = False, device: str = "auto", progress: bool | int = True,
          stop_after: int | None = None, deadline: float | None = None,
          data_workers: int = 0) -> dict:
    """Train (or resume) a run in directory ``run``; returns a summary dict.

    ``stop_after``: behave as if interrupted after that many total steps (tests use it to
    simulate Ctrl-C at a known step). ``deadline``: a ``time.monotonic()`` value; past it the
    run stops as if interrupted (checkpoint saved, ``interrupted`` True; sweeps' --max-minutes).
    ``data_workers``: build the training batches in that many worker processes ahead of the
    model (:func:`train_batches`; the same batches in the same order, so results do not change).
    Raises ``ck.CheckpointError`` for unusable run dirs.
    """
    run = Path(run)
    rank, world = _dist()
    dev = pick_device(device)
    if world > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
    check_scan(model_cfg, dev)
    cfg = run_config(model_cfg, data, tc)
    if resume:
        stored = ck.run_sections(ck.read_run_config(run))
        if stored != cfg:
            diff = sorted(f"{sec}.{k}" for sec in cfg for k in set(cfg[sec]) | set(stored[sec])
                          if cfg[sec].get(k) != stored[sec].get(k))
            raise ck.CheckpointError(f"--resume with changed settings: {', '.join(diff)}")
        tensors, meta = ck.read_checkpoint(run, cfg)
    elif (run / ck.CKPT).exists():
        raise ck.CheckpointError(f"{run} already holds a run; use --resume or a new --out")
    # Everything that can reject the settings runs BEFORE anything is written into the run
    # directory: building the model (e.g. a bad attn_position), moving it to the device, and
    # the sequence length of the first batch against max_len.
    torch.manual_seed(tc.seed)
    first = make_batch(data, tc.batch_size, tc.seed, rank, TRAIN).tokens.shape[1]
    longest = first if data.task == "istree" else max(first, data.task_obj().seq_len() + 1)
    need, count = memory_estimate(model_cfg, tc.batch_size, longest, training=True)
    require(need, f"training {count:,} parameters on batches of {tc.batch_size} x {longest:,} "
            "tokens")
    lm = LM(model_cfg).to(dev)
    if model_cfg.arch != "mamba" and first - 1 > model_cfg.max_len:
        raise ValueError(f"task sequences of {first - 1} tokens exceed the model's max_len "
                         f"{model_cfg.max_len}; use a smaller --n")
    created: list[Path] = []
    if not resume:
        # A directory with config.json but no checkpoint is a run that failed or was stopped
        # before its first checkpoint: it is started over (its config and metrics replaced).
        if world > 1:  # every rank has checked before rank 0 creates the run
            import torch.distributed as dist
            dist.barrier()
        if rank == 0:
            created = _create_run_dir(run)
            try:
                from rnngap.models.export_format import run_header
                ck.atomic_write_json(run / ck.CONFIG, {**cfg, **run_header(model_cfg)})
                (run / ck.METRICS).unlink(missing_ok=True)
            except OSError as exc:
                _remove_failed_start(run, created)
                raise ValueError(f"cannot write into run directory {run}: "
                                 f"{exc.strerror or exc}") from None
    try:
        return _train_loop(run, lm, model_cfg, data, tc, cfg, dev, rank, world,
                           tensors if resume else None, meta if resume else None,
                           progress, stop_after, deadline, data_workers)
    except BaseException:
        if rank == 0 and not resume and not (run / ck.CKPT).exists():
            _remove_failed_start(run, created)
        raise


def _create_run_dir(run: Path) -> list[Path]:
    """mkdir -p ``run``; returns the directories it created (deepest last). ValueError, one
    line, when the path cannot be a directory (under a file, in /proc, no permission)."""
    missing = [p for p in (run, *run.parents) if not p.exists()][::-1]
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create run directory {run}: {exc.strerror or exc}") from None
    return missing


def _remove_failed_start(run: Path, created: list[Path]) -> None:
    """Undo a start that never reached its first checkpoint: the run files it wrote and the
    directories it created (when empty), so the same command can simply be rerun."""
    for name in (ck.CONFIG, ck.METRICS, ck.CONFIG + ".tmp"):
        try:
            (run / name).unlink(missing_ok=True)
        except OSError:
            pass
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            break


def _train_loop(run: Path, lm: LM, model_cfg: LMConfig, data: DataSpec, tc: TrainConfig,
                cfg: dict, dev: torch.device, rank: int, world: int, tensors: dict | None,
                meta: dict | None, progress: bool, stop_after: int | None,
                deadline: float | None = None, data_workers: int = 0) -> dict:
    resume = tensors is not None
    params = [p for p in lm.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=tc.lr, betas=(tc.beta1, tc.beta2), foreach=False)
    step = 0
    early = EarlyStop(tc) if tc.probe_every else None
    stopped: dict | None = None
    if resume:
        ck.load_model_weights(lm, tensors)
        ck.load_optimizer(opt, tensors, meta)
        torch.set_rng_state(tensors["rng.torch"])
        step = int(meta["step"])
        stopped = meta.get("stopped_early")
        if rank == 0:
            ck.truncate_metrics(run, step)
        if early is not None and "early_stop_state" in meta:   # saved with the checkpoint
            early.load(meta["early_stop_state"])
        elif early is not None:   # older checkpoints: replay the logged probes
            for rec in ck.read_metrics(run):
                if rec.get("kind") == "probe" and rec["step"] <= step:
                    early.update(rec["step"], rec["sample_acc"])
    model = lm
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(lm, device_ids=[dev.index] if dev.type == "cuda" else None)
    log = open(run / ck.METRICS, "a") if rank == 0 else None  # noqa: SIM115 (closed below)
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm
        # progress may be an int: the bar's line (two runs side by side each keep their own)
        pos = None if progress is True else int(progress)
        desc = f"train {model_cfg.arch} {data.task} n={data.n}"
        bar = tqdm(total=tc.steps, initial=step, desc=desc, unit="step", dynamic_ncols=True,
                   position=pos, leave=pos is None)
    t0, seen, interrupted = time.perf_counter(), 0, False
    acc_hits = acc_tok = 0.0
    last: dict[str, float] = {}

    def emit(rec: dict) -> None:
        if log is not None:
            log.write(json.dumps(rec) + "\n")
            log.flush()

    def save() -> None:
        if rank == 0:
            extra = {"device": str(dev), "world": world}
            if stopped is not None:
                extra["stopped_early"] = stopped
            if early is not None:
                extra["early_stop_state"] = early.state()
            ck.save_checkpoint(run, lm, opt, step, cfg, extra)

    lm.train()
    batches = train_batches(data, tc, step, world, rank, data_workers)
    with _Stop() as stop:
        while step < tc.steps and stopped is None:
            x, y, m = (t.to(dev) for t in next(batches))
            for g in opt.param_groups:
                g["lr"] = lr_at(step + 1, tc)
            loss, hits, _ = masked_loss(model(x), y, m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
            if not bool(torch.isfinite(gnorm)):   # grads are all-reduced: every rank agrees
                raise Diverged(f"training diverged at step {step + 1}: loss "
                               f"{float(loss.detach()):.4g}, "
                               f"gradient norm {float(gnorm):.4g}; nothing of this step was "
                               f"applied and the last checkpoint is kept (lower --lr or raise "
                               f"--warmup)")
            opt.step()
            step += 1
            seen += x.shape[0] * world
            acc_hits += float(hits)
            acc_tok += float(m.sum())
            last = {"loss": float(loss.detach()), "grad_norm": float(gnorm)}
            if step % tc.log_every == 0 or step == tc.steps:
                el = time.perf_counter() - t0
                emit({"step": step, "kind": "train", **last, "lr": opt.param_groups[0]["lr"],
                      "token_acc": acc_hits / max(acc_tok, 1), "samples_per_s": seen / el})
                if bar is not None:
                    bar.set_postfix(loss=f"{last['loss']:.3f}",
                                    acc=f"{acc_hits / max(acc_tok, 1):.3f}",
                                    sps=f"{seen / el:.0f}")
                acc_hits = acc_tok = 0.0
            if bar is not None:
                bar.update(1)
            if rank == 0 and (step % tc.eval_every == 0 or step == tc.steps):
                ev = teacher_forced_eval(lm, data, tc, dev, tc.eval_batches)
                emit({"step": step, "kind": "eval", **ev})
            if early is not None and step % tc.probe_every == 0 and step < tc.steps:
                acc = probe_accuracy(lm, data, tc, dev, step // tc.probe_every)
                if world > 1:   # rank 0's score decides for every rank (kernels may differ)
                    import torch.distributed as dist
                    t = torch.tensor([acc], dtype=torch.float64, device=dev)
                    dist.broadcast(t, 0)
                    acc = float(t.item())
                emit({"step": step, "kind": "probe", "sample_acc": acc})
                reason = early.update(step, acc)
                if reason is not None:
                    stopped = {"step": step, "reason": reason, "best_probe": early.best,
                               "best_step": early.best_step}
                    emit({"step": step, "kind": "stopped_early", **stopped})
                    save()
                    break
            if step % tc.ckpt_every == 0 or step == tc.steps:
                save()
            want_stop = stop.requested or (stop_after is not None and step >= stop_after) \
                or (deadline is not None and time.monotonic() > deadline)
            if world > 1:  # stop on the same step on every rank (else DDP would hang)
                import torch.distributed as dist
                flag = torch.tensor([float(want_stop)], device=dev)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                want_stop = bool(flag.item())
            if want_stop:
                interrupted = step < tc.steps
                save()
                break
    if bar is not None:
        bar.close()
    if log is not None:
        log.close()
    if world > 1:
        import torch.distributed as dist
        dist.barrier()  # rank 0 has written the final checkpoint before anyone leaves
        dist.destroy_process_group()
    return {"run": str(run), "rank": rank, "step": step, "steps": tc.steps, "interrupted": interrupted,
            "stopped_early": stopped, "trainable": lm.trainable_parameters(),
            "device": str(dev), "world": world, **last}
