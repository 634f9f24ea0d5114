"""Training throughput of the learned models at the retrieval-scaling sizes, one CPU thread.

1. samples/s of a full training step (forward, backward, AdamW) for the Transformer, Mamba and
   hybrid of experiments/retrieval_scaling (learned embedding) at sequence lengths 17, 65, 129
   (AR / Index at n = 16, 64, 128);
2. the Mamba stack alone (forward + backward, no embedding), rnngap's ``fused`` scan against its
   ``loop`` scan (the baseline, measured in the same run) and, when installed, the ``mambapy``
   package (a published pure-PyTorch Mamba with a parallel scan; ``pip install --no-deps
   mambapy``), same d_model / d_state / layers / expand / conv;
3. threads: 200 steps of the tiny hybrid with torch's default thread count against 1 thread.

    python benchmarks/train_throughput.py [--json out.json]

Prints ratios against the baseline of the same run; never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def _time(fn, reps: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    import importlib.util
    import pathlib

    from rnngap.models.lm import LM, LMConfig
    from rnngap.models.mamba import MambaConfig, MambaStack

    spec = importlib.util.spec_from_file_location(
        "rs_run", pathlib.Path(__file__).resolve().parents[1] / "experiments" /
        "retrieval_scaling" / "run.py")
    rs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rs)
    out: dict = {"threads": 1, "batch": a.batch, "torch": torch.__version__,
                 "cores": os.cpu_count(), "train_step": [], "mamba_stack": [], "threads_test": {}}
    torch.set_num_threads(1)
    print(f"1. training step, batch {a.batch}, 1 thread (samples/s)")
    for T in (17, 65, 129):
        for arch, kw in rs.ARCH_KW.items():
            torch.manual_seed(0)
            lm = LM(LMConfig(arch=arch, vocab_size=T, max_len=T + 1, embedding="learned", **kw))
            opt = torch.optim.AdamW(lm.parameters(), lr=1e-3, foreach=False)
            x = torch.randint(0, T, (a.batch, T))

            def step(lm=lm, x=x, opt=opt) -> None:
                loss = lm(x)[:, -1].logsumexp(-1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            s = _time(step, a.reps)
            row = {"arch": arch, "seq_len": T, "trainable": lm.trainable_parameters(),
                   "s_per_step": s, "samples_per_s": a.batch / s}
            out["train_step"].append(row)
            print(f"   T={T:4d} {arch:12s} {row['trainable']:7,d} params  "
                  f"{row['samples_per_s']:8.0f} samples/s")
    print("2. Mamba stack fwd+bwd (d_model 32, d_state 8, 2 layers), vs rnngap loop scan")
    try:
        from mambapy.mamba import Mamba as PyMamba
        from mambapy.mamba import MambaConfig as PyCfg
    except ImportError:
        PyMamba = None
        print("   mambapy not installed: pip install --no-deps mambapy (skipped)")
    kw = rs.ARCH_KW["mamba"]
    for T in (17, 65, 129):
        x = torch.randn(a.batch, T, kw["d_model"], requires_grad=True)
        times = {}
        for scan in ("loop", "fused"):
            torch.manual_seed(0)
            m = MambaStack(MambaConfig(kw["d_model"], kw["n_layers"], d_state=kw["d_state"],
                                       scan=scan))
            times[f"rnngap-{scan}"] = _time(lambda m=m, x=x: m(x).square().mean().backward(), a.reps)
        if PyMamba is not None:
            for pscan in (True, False):
                torch.manual_seed(0)
                m = PyMamba(PyCfg(d_model=kw["d_model"], n_layers=kw["n_layers"],
                                  d_state=kw["d_state"], pscan=pscan))
                name = "mambapy-pscan" if pscan else "mambapy-sequential"
                times[name] = _time(lambda m=m, x=x: m(x).square().mean().backward(), a.reps)
        base = times["rnngap-loop"]
        for k, v in times.items():
            out["mamba_stack"].append({"impl": k, "seq_len": T, "s_per_fwd_bwd": v,
                                       "speed_vs_rnngap_loop": base / v})
            print(f"   T={T:4d} {k:20s} {v * 1e3:8.1f} ms  x{base / v:5.2f} vs rnngap-loop")
    print("3. threads: 200 steps of the tiny hybrid (AR n = 16), default threads vs 1")
    from rnngap.learned.configs import named_config
    for threads in (os.cpu_count() or 1, 1):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        lm = LM(named_config("hybrid", "tiny", 17))
        opt = torch.optim.AdamW(lm.parameters(), lr=1e-3, foreach=False)
        x = torch.randint(0, 17, (64, 17))
        t0 = time.perf_counter()
        for _ in range(200):
            loss = lm(x)[:, -1].logsumexp(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        out["threads_test"][str(threads)] = time.perf_counter() - t0
        print(f"   {threads} thread(s): {out['threads_test'][str(threads)]:.1f} s")
    print("4. the same, two processes side by side (as the experiment runs them)")
    import subprocess
    import sys
    snippet = ("import time,torch,sys;torch.set_num_threads(int(sys.argv[1]));"
               "from rnngap.models.lm import LM;from rnngap.learned.configs import named_config;"
               "torch.manual_seed(0);lm=LM(named_config('hybrid','tiny',17));"
               "opt=torch.optim.AdamW(lm.parameters(),lr=1e-3,foreach=False);"
               "x=torch.randint(0,17,(64,17));t=time.perf_counter()\n"
               "for _ in range(200):\n l=lm(x)[:,-1].logsumexp(-1).mean();opt.zero_grad();"
               "l.backward();opt.step()\nprint(time.perf_counter()-t)")
    for threads in (os.cpu_count() or 1, 1):
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", snippet, str(threads)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(2)]
        each = [float(p.communicate()[0]) for p in procs]
        wall = time.perf_counter() - t0
        out["threads_test"][f"2 procs x {threads}"] = {"each_s": each, "wall_s": wall}
        print(f"   2 processes x {threads} thread(s): {max(each):.1f} s each (wall {wall:.1f} s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
