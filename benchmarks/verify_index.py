"""Benchmark: time and peak memory of `verify index` (not a test; prints ratios).

Baseline measured in the same run: the same verification with full attention rows (every
query against every position enumerated) instead of the banded rows plus the tail lemma.

    python benchmarks/verify_index.py            # n = 4096 and 65536
    python benchmarks/verify_index.py 256 4096   # other sizes
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
from rnngap.tasks.index import IndexTask
from rnngap.verify.retrieval.index import verify_index
n, full = int(sys.argv[1]), sys.argv[2] == "1"
t0 = time.perf_counter()
v = verify_index(IndexTask(n), full_rows=full, samples=16)
dt = time.perf_counter() - t0
print(json.dumps({"n": n, "full_rows": full, "verified": v["verified"], "seconds": dt,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(n: int, full: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), "1" if full else "0"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(sizes: list[int]) -> None:
    print(f"{'n':>7} {'mode':>10} {'verified':>8} {'seconds':>8} {'peak MB':>8}  ratio")
    for n in sizes:
        band = measure(n, False)
        base = measure(n, True) if n <= 4096 else None
        for r in ([base] if base else []) + [band]:
            ratio = f"{base['seconds'] / r['seconds']:.1f}x faster than full rows" if base and \
                r is band else ("baseline" if r is base else "(full rows too big to run)")
            mode = "full rows" if r["full_rows"] else "band+tail"
            print(f"{r['n']:>7} {mode:>10} {r['verified']!s:>8} {r['seconds']:>8.2f} "
                  f"{r['peak_rss_mb']:>8.0f}  {ratio}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [4096, 65536])
