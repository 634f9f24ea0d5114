"""The IsTree methods as records: one place for what ``rnngap verify istree`` and
``rnngap run istree`` know about each method (issue 13: they were five parallel dicts in a command
module, and ``run`` imported them from ``verify``'s command).

A method's verifier is a "module:callable" imported only when used; it takes (n, orders=,
samples=, seed=, progress=, jobs=), returns the verdict dict whose keys ``verify istree --help``
lists, and raises ValueError for a plan it refuses before doing any work.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class IsTreeMethod:
    name: str
    verifier: str
    """"module:callable" (see the module docstring)."""
    helper: str
    """What the method uses besides its recurrent state, in a few words."""
    max_n: int
    """Largest n: beyond, one graph takes hours (and p(n) approaches the 52 bits the p-bit
    emulation supports)."""
    cost: tuple[int, float, float]
    """(n0, seconds per graph at n0, seconds per small graph), measured on one thread (batched
    where the method batches); cost ~ floor + seconds * (n / n0)^2."""
    parallel: bool = True
    """Whether ``--jobs`` worker processes are used."""

    def seconds_per_graph(self, n: int) -> float:
        n0, sec, floor = self.cost
        return floor + sec * (n / n0) ** 2

    def load(self):
        module, attr = self.verifier.split(":")
        return getattr(importlib.import_module(module), attr)


METHODS: dict[str, IsTreeMethod] = {m.name: m for m in (
    IsTreeMethod("rnn-rag", "rnngap.verify.istree.rnn_rag:verify_rnn_rag",
                 "regex retriever over the context", 1 << 16, (1024, 1.2, 0.0006)),
    IsTreeMethod("hybrid", "rnngap.verify.istree.hybrid:verify_for_cli",
                 "linear RNN + one attention layer", 1024, (256, 10.0, 0.007)),
    IsTreeMethod("hybrid-fsm", "rnngap.verify.istree.fsm_hybrid:verify_for_cli",
                 "bit-bounded RNN + one attention layer", 4096, (256, 1.9, 0.012),
                 parallel=False),
    IsTreeMethod("transformer", "rnngap.verify.istree.transformer:verify_for_cli",
                 "none (6 attention layers)", 4096, (256, 2.2, 0.001)),
)}


def seconds_per_graph(n: int, method: str = "rnn-rag") -> float:
    """Rough cost of one run at n (rnn-rag: ~1.2 s at n = 1024, ~12 s at n = 4096 for the
    binary family, ~1 h at n = 65536; at n = 256: hybrid ~10 s, hybrid-fsm ~1.9 s,
    transformer ~1 s)."""
    return METHODS[method].seconds_per_graph(n)


def default_samples(n: int, methods: list[str]) -> int:
    """Graphs per family when --samples is not given: 100 for n <= 256, else 20 (rnn-rag),
    capped for the slower methods so that the samples take about two minutes each."""
    if n < 4:
        return 0
    k = 100 if n <= 256 else 20
    for m in methods:
        if m != "rnn-rag":
            k = min(k, max(2, int(120 / (2 * seconds_per_graph(n, m)))))
    return k
