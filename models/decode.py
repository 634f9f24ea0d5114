"""The one greedy decode loop of rnngap (hand-set constructions and trained models alike).

``greedy_decode(prefill, step, select, batch, max_new, stop)``: ``prefill()`` returns the first
written token of every row, ``step(tokens)`` feeds one token per LIVE row and returns each live
row's next token, ``select(keep)`` is told which live rows go on (a caller may drop finished rows
from its caches there, or keep computing the full batch). A row stops after writing a token in
``stop`` or after ``max_new`` tokens. Retrieval is pluggable the same way: a caller's ``step``
may replace a model's token by an environment's answer (``learned.evaluate.generate`` does, after
``[ENDSEARCH]``), or mark a transcript that can no longer be well formed with a stop token.

Callers: ``constructions.istree.transformer.generate`` and ``constructions.istree.hybrid
.generate`` (p-bit arithmetic; finished rows are dropped from the caches, which matters for
exact runs) and ``learned.evaluate.generate`` (float models; the batch keeps its size so every
row's numerics are those of a fixed batch, and retrieval answers are forced tokens). The RNN +
retrieval machines of ``constructions.istree.rnn_rag`` are not decoded from logits: their
``drive`` loop exchanges RETRIEVE/HALT signals with the environment and is documented there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def greedy_decode(prefill: Callable[[], Tensor], step: Callable[[Tensor], Tensor],
                  select: Callable[[Tensor], None], batch: int, max_new: int,
                  stop: Sequence[int]) -> list[list[int]]:
    """Greedy decoding of ``batch`` rows (see the module docstring); returns the written tokens
    per row."""
    nxt = prefill()
    alive = torch.arange(batch)
    out: list[list[int]] = [[] for _ in range(batch)]
    stops = torch.tensor(list(stop), dtype=torch.long)
    for s in range(max_new):
        for r, t in zip(alive.tolist(), nxt.tolist(), strict=True):
            out[r].append(t)
        keep = ~torch.isin(nxt, stops)
        if s == max_new - 1 or not bool(keep.any()):
            break
        if not bool(keep.all()):
            alive, nxt = alive[keep], nxt[keep]
            select(keep)
        nxt = step(nxt)
    return out
