"""Training-data generation rate: rnngap's streaming generator vs the official one, same run.

rnngap side: ``rnngap.learned.data.make_batch`` (sample graphs, encode, pad) for IsTree in each
format, and the four retrieval tasks. Official side (only with ``--official DIR``, a clone of
the public rnn-icrag repository; its ``rnn/data.py`` needs numpy, torch and tqdm only): the
``IsTreeDataset`` class building the same number of samples in memory, timed in this process.
Without ``--official`` the official rate is reported as not measured (never estimated).

    python benchmarks/data_rate.py --n 16 --samples 2000 [--official ~/src/rnn-icrag] [--json]

With numba installed (``pip install 'rnngap[fast]'``) the IsTree chains of thought come from
compiled kernels (tasks/istree_fast.py; the same rows); ``RNNGAP_NO_NUMBA=1`` measures the pure
Python path in the same environment.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from rnngap.learned.data import DataSpec, make_batch

#: our format -> the official IsTreeDataset (use_cot, use_retrieval) flags
OFFICIAL_FLAGS = {"plain": (False, False), "cot": (True, False), "retrieval": (False, True)}


def rate_rnngap(spec: DataSpec, samples: int, batch: int = 64) -> float:
    """Samples per second of make_batch for ``spec`` (batches of ``batch``), after one untimed
    warm-up batch (with numba, the compiled IsTree kernels are compiled or loaded from their
    cache on first use: a one-time cost per process, reported apart by :func:`warmup_s`)."""
    make_batch(spec, 8, 0, 10 ** 6)
    t0 = time.perf_counter()
    done, i = 0, 0
    while done < samples:
        b = make_batch(spec, min(batch, samples - done), 0, i)
        done += b.tokens.shape[0]
        i += 1
    return samples / (time.perf_counter() - t0)


def warmup_s(n: int) -> float:
    """Seconds of the first compiled-kernel call in this process (compile or cache load)."""
    from rnngap.tasks import istree_fast
    if not istree_fast.AVAILABLE:
        return 0.0
    t0 = time.perf_counter()
    make_batch(DataSpec("istree", n, "cot"), 2, 0, 10 ** 7)
    return time.perf_counter() - t0


def rate_workers(spec: DataSpec, samples: int, workers: int, batch: int = 64) -> float:
    """Samples per second through the training loop's batch iterator with ``workers`` data
    worker processes (learned/train.py: train_batches, the path --data-workers uses)."""
    from rnngap.learned.train import TrainConfig, train_batches
    tc = TrainConfig(steps=max(1, samples // batch), batch_size=batch)
    t0 = time.perf_counter()
    got = sum(x.shape[0] for x, _, _ in train_batches(spec, tc, 0, workers=workers))
    return got / (time.perf_counter() - t0)


def rate_official(root: Path, n: int, fmt: str, samples: int, family: str) -> float:
    """Samples per second of the official IsTreeDataset(n, family, cot, retrieval, ...)."""
    path = root / "rnn" / "data.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (pass the root of an rnn-icrag clone)")
    spec = importlib.util.spec_from_file_location("_official_rnn_data", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    cot, ret = OFFICIAL_FLAGS[fmt]
    t0 = time.perf_counter()
    with redirect_stderr(io.StringIO()), redirect_stdout(io.StringIO()):  # its tqdm bars
        mod.IsTreeDataset(n, family, cot, ret, True, samples, 0)
    return samples / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--family", default="binary")
    ap.add_argument("--official", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=0,
                    help="also measure rnngap with this many data worker processes")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from rnngap.tasks import istree_fast
    first_call = warmup_s(a.n)
    rows = []
    for fmt in ("plain", "cot", "retrieval"):
        ours = rate_rnngap(DataSpec("istree", a.n, fmt, a.family), a.samples)
        off = None
        note = "official not measured (no --official clone given)"
        if a.official is not None:
            try:
                off = rate_official(a.official, a.n, fmt, a.samples, a.family)
                note = "measured in this run"
            except Exception as exc:  # noqa: BLE001 -- report, do not guess
                note = f"official failed: {type(exc).__name__}: {exc}"
        row = {"task": "istree", "format": fmt, "n": a.n, "rnngap_samples_per_s": ours,
               "official_samples_per_s": off,
               "speedup": None if off is None else ours / off, "note": note}
        if a.workers:
            w = rate_workers(DataSpec("istree", a.n, fmt, a.family), a.samples, a.workers)
            row.update(workers=a.workers, rnngap_workers_samples_per_s=w,
                       speedup_with_workers=None if off is None else w / off)
        rows.append(row)
    for task in ("index", "ar", "cgram", "counting"):
        rows.append({"task": task, "format": "plain", "n": a.n,
                     "rnngap_samples_per_s": rate_rnngap(DataSpec(task, a.n), a.samples * 10),
                     "official_samples_per_s": None, "speedup": None,
                     "note": "no official generator for this task"})
    if a.json:
        json.dump({"samples": a.samples, "family": a.family, "compiled_kernels":
                   istree_fast.AVAILABLE, "first_call_s": first_call, "rows": rows},
                  sys.stdout, indent=2)
        print()
        return
    print(f"data generation rate, n={a.n}, {a.samples} samples per IsTree format; compiled "
          f"IsTree kernels (numba): {'yes' if istree_fast.AVAILABLE else 'no'}"
          + (f", first call {first_call:.2f} s" if istree_fast.AVAILABLE else ""))
    for r in rows:
        off = r["official_samples_per_s"]
        extra = f"  official {off:10.0f}/s  x{r['speedup']:.1f}" if off else f"  ({r['note']})"
        if r.get("workers"):
            extra += (f"  | {r['workers']} workers {r['rnngap_workers_samples_per_s']:8.0f}/s"
                      + (f" x{r['speedup_with_workers']:.1f}" if off else ""))
        print(f"  {r['task']:8s} {r['format']:9s} rnngap {r['rnngap_samples_per_s']:10.0f}/s"
              + extra)


if __name__ == "__main__":
    main()
