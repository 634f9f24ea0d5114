"""Streaming, seeded training data from ``tasks/`` for the learned models.

A :class:`DataSpec` names the task and its format. Batch ``i`` of a run with seed ``s`` (and
data-parallel rank ``r`` of ``w``) is a pure function of ``(s, i * w + r)``: batches are drawn
on demand (nothing is stored), the same seed gives the same bytes, and a resumed run continues
with exactly the batches an uninterrupted run would have seen.

IsTree (``tasks/istree.py``, official vocabulary and formats): each sample is
``istree.encode(n, edges, fmt, label)``; sequences are right-padded with ``[PAD]``. Next-token
training: inputs ``tokens[:, :-1]``, targets ``tokens[:, 1:]``, loss on the target positions
where ``loss_mask`` is True. ``encode`` already excludes retrieved tokens (the token after every
``[ENDSEARCH]``, written by the retriever) from ``loss_mask``; :func:`make_batch` re-checks it.

Retrieval tasks (index, ar, cgram, counting; ``tasks/registry.py``): each sample is the task row
followed by its answer; only the answer is supervised (format ``plain`` only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ISTREE_FORMATS = ("plain", "cot", "retrieval")
RETRIEVAL_TASKS = ("index", "ar", "cgram", "counting")
TASK_NAMES = ("istree", *RETRIEVAL_TASKS)
FAMILIES = ("binary", "random")
#: largest task size the learned models accept (the default max_len of the attention models;
#: the vocabulary, and so the frozen embedding table, grows with n)
MAX_N = 8192


@dataclass(frozen=True)
class DataSpec:
    """What to train on. ``params`` are extra task parameters (e.g. ``{"c": 3}`` for cgram).

    ``official_quirks`` (IsTree only) reproduces the official code's label (reachability from
    vertex 0) and its ``random`` family defects, for comparison; off by default.
    """

    task: str
    n: int
    fmt: str = "plain"
    family: str = "binary"
    official_quirks: bool = False
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASK_NAMES:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(TASK_NAMES)}")
        if not 1 <= self.n <= MAX_N:
            raise ValueError(f"--n must be between 1 and {MAX_N} for the learned models, "
                             f"got {self.n}")
        if self.task == "istree":
            if self.fmt not in ISTREE_FORMATS:
                raise ValueError(f"unknown format {self.fmt!r} for istree; known: "
                                 f"{', '.join(ISTREE_FORMATS)}")
            if self.family not in FAMILIES:
                raise ValueError(f"unknown family {self.family!r}; known: {', '.join(FAMILIES)}")
            if self.params:
                raise ValueError("istree takes no extra task parameters")
            from rnngap.tasks.istree_graphs import MIN_SAMPLE_N
            if self.n < MIN_SAMPLE_N:
                raise ValueError(f"istree needs n >= {MIN_SAMPLE_N}, got {self.n}")
        else:
            if self.official_quirks:
                raise ValueError("--official-quirks applies to --task istree only")
            if self.family != "binary":
                raise ValueError("--family applies to --task istree only")
            if self.fmt != "plain":
                raise ValueError(f"task {self.task} has only the 'plain' format (the answer "
                                 f"follows the query), not {self.fmt!r}")
            self.task_obj()  # validates n and params (ValueError with the task's message)

    def task_obj(self):
        """The ``tasks/`` object of a retrieval task (ValueError for istree)."""
        if self.task == "istree":
            raise ValueError("istree has no RetrievalTask object")
        from rnngap.tasks.registry import make_task
        return make_task(self.task, n=self.n, **self.params)

    def vocab_size(self) -> int:
        if self.task == "istree":
            from rnngap.tasks.istree import vocab_size
            return vocab_size(self.n)
        return self.task_obj().vocab_size()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        return cls(**d)


@dataclass
class Batch:
    """A padded batch. ``tokens`` (B, T) int64 full sequences; ``loss_mask`` and
    ``retrieved_mask`` (B, T) bool over the same positions; ``prompt_len`` (B,) int64;
    ``labels`` (B,) int64 (IsTree: 1 tree / 0 not; retrieval tasks: the answer token);
    ``edges`` (IsTree only) the graphs, for generation-time evaluation."""

    tokens: np.ndarray
    loss_mask: np.ndarray
    retrieved_mask: np.ndarray
    prompt_len: np.ndarray
    labels: np.ndarray
    edges: list[np.ndarray] | None = None


#: stream ids: training batches, periodic evaluation batches, final test batches (disjoint seeds)
TRAIN, VALID, TEST = 0, 1, 2


def batch_seed(seed: int, index: int, stream: int = TRAIN) -> int:
    """A 63-bit sampler seed for batch ``index`` of stream ``stream`` of a run seeded ``seed``
    (numpy SeedSequence mixing, so nearby seeds/indices give unrelated streams)."""
    mixed = np.random.SeedSequence([seed, stream, index]).generate_state(1, np.uint64)[0]
    return int(mixed >> np.uint64(1))


def make_batch(spec: DataSpec, batch: int, seed: int, index: int, stream: int = TRAIN) -> Batch:
    """Batch ``index`` of the stream ``(spec, seed, stream)`` (a pure function of its args)."""
    s = batch_seed(seed, index, stream)
    if spec.task == "istree":
        return _istree_batch(spec, batch, s)
    task = spec.task_obj()
    rows, ans = task.sample(batch, s)
    tokens = np.concatenate([rows, ans[:, None]], 1).astype(np.int64)
    loss = np.zeros(tokens.shape, dtype=bool)
    loss[:, -1] = True
    return Batch(tokens, loss, np.zeros_like(loss), np.full(batch, rows.shape[1], np.int64),
                 ans.astype(np.int64))


def _istree_batch(spec: DataSpec, batch: int, seed: int) -> Batch:
    from rnngap.tasks import istree

    edges, labels = istree.sample_graphs(spec.n, batch, spec.family, seed=seed,
                                         official_quirks=spec.official_quirks)
    exs = [istree.encode(spec.n, e, spec.fmt, label=bool(lab)) for e, lab in zip(edges, labels)]
    T = max(len(x.tokens) for x in exs)
    tokens = np.full((batch, T), istree.PAD, dtype=np.int64)
    loss = np.zeros((batch, T), dtype=bool)
    ret = np.zeros((batch, T), dtype=bool)
    for i, x in enumerate(exs):
        m = len(x.tokens)
        tokens[i, :m], loss[i, :m], ret[i, :m] = x.tokens, x.loss_mask, x.retrieved_mask
    if (loss & ret).any():  # defence in depth: a retrieved token is never a target
        raise AssertionError("istree.encode marked a retrieved token as a target")
    return Batch(tokens, loss, ret, np.array([x.prompt_len for x in exs], dtype=np.int64),
                 labels.astype(np.int64), edges)


def to_training(b: Batch):
    """torch tensors (inputs (B, T-1), targets (B, T-1), mask (B, T-1) bool) for next-token loss."""
    import torch

    t = torch.from_numpy(b.tokens)
    return t[:, :-1].contiguous(), t[:, 1:].contiguous(), torch.from_numpy(b.loss_mask[:, 1:].copy())
