"""Forward + backward time of the CPU selective scans in ``rnngap.models.mamba``.

Runs one Mamba stack with ``scan="loop"`` (the baseline), ``scan="fused"`` (the CPU default)
and ``scan="chunked"`` (several chunk sizes) on the same weights and inputs, checks that the
outputs agree, and prints milliseconds per forward+backward and the ratio to ``loop``
(measured in the same process). Each configuration reports on stderr as it finishes.

    python benchmarks/scan.py --batch 32 --length 128 --d-model 64 --layers 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from rnngap.models.mamba import MambaConfig, MambaStack


def _set_scan(stack: MambaStack, scan: str, chunk: int) -> None:
    for layer in stack.layers:
        layer.mixer.cfg.scan = scan
        layer.mixer.cfg.chunk = chunk


def time_fwd_bwd(stack: MambaStack, x: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    """Median seconds of one forward + backward over ``repeats`` runs (after one warm-up)."""
    times = []
    out = None
    for i in range(repeats + 1):
        stack.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        out = stack(x)
        out.square().mean().backward()
        if i:
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], out.detach()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunks", default="8,16,32")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    stack = MambaStack(MambaConfig(a.d_model, a.layers, scan="loop"))
    x = torch.randn(a.batch, a.length, a.d_model)
    base, ref = time_fwd_bwd(stack, x, a.repeats)
    rows = [{"scan": "loop", "chunk": None, "ms": base * 1e3, "ratio_vs_loop": 1.0,
             "max_abs_diff": 0.0}]
    print(f"loop: {base * 1e3:.1f} ms", file=sys.stderr, flush=True)
    for scan, c in [("fused", None), *(("chunked", int(v)) for v in a.chunks.split(","))]:
        _set_scan(stack, scan, c or 16)
        t, out = time_fwd_bwd(stack, x, a.repeats)
        rows.append({"scan": scan, "chunk": c, "ms": t * 1e3, "ratio_vs_loop": t / base,
                     "max_abs_diff": float((out - ref).abs().max())})
        print(f"{scan} {c or ''}: {t * 1e3:.1f} ms", file=sys.stderr, flush=True)
    info = {"batch": a.batch, "length": a.length, "d_model": a.d_model, "layers": a.layers,
            "threads": torch.get_num_threads(), "device": "cpu", "rows": rows}
    if a.json:
        print(json.dumps(info, indent=2))
        return
    print(f"fwd+bwd, B={a.batch} T={a.length} d={a.d_model} layers={a.layers} "
          f"threads={info['threads']} (median of {a.repeats})")
    for r in rows:
        print(f"  {r['scan']:8s} chunk={r['chunk']!s:4s} {r['ms']:9.1f} ms  "
              f"x{r['ratio_vs_loop']:.2f} vs loop  max|diff|={r['max_abs_diff']:.1e}")


if __name__ == "__main__":
    main()
