"""GPU checks in one script (needs CUDA and mamba-ssm: pip install 'rnngap[gpu]'), < 8 minutes.

    python experiments/gpu/check.py --out experiments/gpu/results

1. device facts (name, memory, torch / CUDA / mamba-ssm versions);
2. the mamba-ssm kernel agreement tests (tests/test_mamba.py: forward and gradients of the
   kernel path against the pure-PyTorch reference; skipped without a GPU);
3. training throughput of the official 0.5m models on IsTree n = 16 (cot) with the mamba-ssm
   kernels (scan cuda) against the pure-PyTorch scan on the same GPU, as ratios;
4. one paper-config IsTree run (experiments/istree_paper/grid.toml, n16 cot mamba 0.5m) for
   a few minutes through ``rnngap sweep --max-minutes``.

Everything lands under --out (results.json plus the logs). Without a GPU the script writes
results.json saying so and exits 0: nothing here pretends to have run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "experiments/gpu/results")
    ap.add_argument("--train-minutes", type=float, default=3.0)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per throughput row")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    import torch
    res: dict = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    if not torch.cuda.is_available():
        res["note"] = "no CUDA device: nothing was run (the checks need a GPU and mamba-ssm)"
        _write(a.out, res)
        return
    res["device"] = torch.cuda.get_device_name(0)
    res["memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    try:
        import mamba_ssm
        res["mamba_ssm"] = mamba_ssm.__version__
    except Exception as exc:  # noqa: BLE001 -- report why the kernel is unusable
        res["mamba_ssm"] = f"unavailable: {type(exc).__name__}: {exc}"
    # 2. agreement tests
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                        "tests/test_mamba.py", "-rs"], cwd=ROOT, capture_output=True, text=True, check=False)
    (a.out / "agreement.log").write_text(p.stdout + p.stderr)
    res["agreement_tests"] = {"exit_code": p.returncode, "summary": p.stdout.strip()
                              .splitlines()[-1] if p.stdout.strip() else "",
                              "seconds": round(time.perf_counter() - t0, 1)}
    # 3. throughput, kernels vs pure PyTorch
    res["throughput"] = _throughput(a.steps)
    _write(a.out, res)
    # 4. a paper-config run for a few minutes
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "rnngap.cli", "sweep",
                        "experiments/istree_paper/grid.toml", "--out", str(a.out / "paper-run"),
                        "--only", "n16-cot-mamba-0.5m", "--max-minutes", str(a.train_minutes),
                        "--workers", "1", "--no-progress", "--json"],
                       cwd=ROOT, capture_output=True, text=True, check=False)
    (a.out / "paper-run.log").write_text(p.stdout + p.stderr)
    rows = []
    f = a.out / "paper-run" / "results.jsonl"
    if f.is_file():
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
    res["paper_run"] = {"exit_code": p.returncode, "rows": rows,
                        "seconds": round(time.perf_counter() - t0, 1)}
    _write(a.out, res)


def _throughput(steps: int, device: str = "cuda") -> list[dict]:
    """Seconds per training step, kernels (scan cuda) vs the pure-PyTorch fused scan; on CPU
    (a smoke test of this function only) the fused scan vs the loop scan."""
    import torch

    from rnngap.learned.configs import named_config
    from rnngap.learned.data import DataSpec, make_batch, to_training
    from rnngap.learned.train import masked_loss
    from rnngap.models.lm import LM
    data = DataSpec("istree", 16, fmt="cot")
    x, y, m = (t.to(device) for t in to_training(make_batch(data, 64, 0, 0)))
    scans = ("cuda", "fused") if device == "cuda" else ("fused", "loop")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out = []
    for arch in ("mamba", "hybrid", "transformer"):
        for scan in (scans if arch != "transformer" else ("auto",)):
            torch.manual_seed(0)
            lm = LM(named_config(arch, "0.5m", data.vocab_size(), scan=scan)).to(device)
            opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=1e-4)

            def step(lm=lm, opt=opt):
                loss, _, _ = masked_loss(lm(x), y, m)
                opt.zero_grad()
                loss.backward()
                opt.step()
            for _ in range(3):
                step()
            sync()
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            sync()
            dt = (time.perf_counter() - t0) / steps
            out.append({"arch": arch, "scan": scan, "batch": 64, "seq_len": int(x.shape[1]),
                        "s_per_step": dt, "samples_per_s": 64 / dt})
    for r in out:
        base = next(b for b in out if b["arch"] == r["arch"])
        r["speed_vs_first"] = base["s_per_step"] / r["s_per_step"]
    return out


def _write(out: Path, res: dict) -> None:
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
