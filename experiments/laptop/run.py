"""The CPU-scale experiment: learned Mamba vs hybrid vs Transformer as the task size n grows.

For every (arch, n, seed) it trains a small model with ``rnngap.learned.train.train`` and
evaluates it by generation with ``rnngap.learned.evaluate.evaluate`` on held-out samples, then
appends one row to ``results.json`` (written after every run, so a partial sweep is usable).
``plot.py`` beside this file turns the JSON into ``accuracy_vs_n.png``.

    nice -n 10 python experiments/laptop/run.py --task ar --ns 8,16,32 --seeds 0,1,2

Everything is single-threaded (``torch.set_num_threads(1)``); CPU seconds per run are recorded.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from rnngap.learned.configs import OFFICIAL, named_config
from rnngap.learned.data import DataSpec
from rnngap.learned.evaluate import evaluate, load_run
from rnngap.learned.train import TrainConfig, train
from rnngap.models.lm import LMConfig

HERE = Path(__file__).resolve().parent

#: "small": roughly parameter-matched models (Mamba gets the most parameters); d_model 32.
#: "tiny": rnngap's named tiny sizes (learned/configs.py), d_model 16.
SMALL = {
    "mamba": {"d_model": 32, "n_layers": 3, "d_state": 8},
    "hybrid": {"d_model": 32, "n_layers": 1, "d_state": 8, "n_heads": 2, "d_mlp": 64},
    "transformer": {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_mlp": 64},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="ar")
    ap.add_argument("--size", choices=("tiny", "small"), default="tiny")
    ap.add_argument("--fmt", default="plain")
    ap.add_argument("--ns", default="8,16,32")
    ap.add_argument("--archs", default="mamba,hybrid,transformer")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--runs", default=None, help="run directories [default: a temp dir]")
    a = ap.parse_args()
    torch.set_num_threads(1)
    runs = Path(a.runs or tempfile.mkdtemp(prefix="rnngap-laptop-"))
    out = Path(a.out)
    rows: list[dict] = []
    meta = {"task": a.task, "format": a.fmt, "steps": a.steps, "batch_size": a.batch_size,
            "lr": a.lr, "eval_samples": a.samples, "size": a.size,
            "sizes": SMALL if a.size == "small" else {k: OFFICIAL[(k, "tiny")] for k in SMALL}, "threads": 1,
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "command": "python experiments/laptop/run.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items()
                if k not in ("out", "runs"))}
    for n in (int(x) for x in a.ns.split(",")):
        for arch in a.archs.split(","):
            for seed in (int(x) for x in a.seeds.split(",")):
                data = DataSpec(a.task, n, a.fmt)
                if a.size == "small":
                    mc = LMConfig(arch=arch, vocab_size=data.vocab_size(), max_len=1024,
                                  **SMALL[arch])
                else:
                    mc = named_config(arch, "tiny", data.vocab_size(), max_len=1024)
                tc = TrainConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr,
                                 warmup=min(100, a.steps // 10), seed=seed,
                                 log_every=50, eval_every=a.steps, ckpt_every=a.steps,
                                 eval_batches=4)
                rd = runs / f"{a.task}-{a.fmt}-n{n}-{arch}-s{seed}"
                c0, w0 = time.process_time(), time.perf_counter()
                summ = train(rd, mc, data, tc, progress=False)
                lm, d2, _, _ = load_run(rd)
                ev = evaluate(lm, d2, a.samples, 256, seed)
                row = {"arch": arch, "n": n, "seed": seed, "trainable": summ["trainable"],
                       "final_train_loss": summ.get("loss"),
                       "accuracy_generation": ev["accuracy_generation"],
                       "accuracy_teacher_forced": ev["accuracy_teacher_forced"],
                       "retrievals_executed": ev["retrievals_executed"],
                       "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0,
                       "run_dir": str(rd)}
                rows.append(row)
                print(json.dumps(row), flush=True)
                out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
