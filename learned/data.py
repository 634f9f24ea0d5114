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

Held out means held out: the input space is split by a fixed hash of each input (the task row;
IsTree: the edge SET, so no reordering of a test graph is ever trained on). An input is a *test*
input when ``row_hash(input) % TEST_BUCKETS == 0`` (1/16 of the space). The TRAIN stream only
yields non-test inputs; the VALID and TEST streams only yield test inputs (rejection sampling
from the same uniform sampler, so each stream is the task's distribution conditioned on its
part). The split depends on nothing but the input, so it is the same for every run, seed and
architecture, and no test input can appear in any training stream.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rnngap.tasks.registry import RETRIEVAL_NAMES

ISTREE_FORMATS = ("plain", "cot", "retrieval")
RETRIEVAL_TASKS = RETRIEVAL_NAMES
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
    #: length mixture (retrieval tasks): each TRAIN batch has one length drawn uniformly from
    #: min_n, 2 min_n, 4 min_n, ... < n and n, over the alphabet of length n (so the vocabulary
    #: is n's); VALID and TEST stay at n. None: every batch at n.
    min_n: int | None = None

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
            if self.min_n is not None:
                if not isinstance(self.min_n, int) or not 1 <= self.min_n <= self.n:
                    raise ValueError(f"--mix-min-n must be an integer in [1, n={self.n}], got "
                                     f"{self.min_n!r}")
                for m in self.mix_lengths():  # every length of the mixture must be a task
                    try:
                        self.task_obj(m)
                    except ValueError as exc:
                        raise ValueError(f"--mix-min-n {self.min_n}: length {m} of the mixture "
                                         f"is not a valid task ({exc})") from None
        if self.task == "istree" and self.min_n is not None:
            raise ValueError("--mix-min-n applies to the retrieval tasks only")

    def mix_lengths(self) -> list[int]:
        """The lengths of the TRAIN mixture (just [n] without ``min_n``)."""
        if self.min_n is None:
            return [self.n]
        out, m = [], self.min_n
        while m < self.n:
            out.append(m)
            m *= 2
        return [*out, self.n]

    def task_obj(self, n: int | None = None):
        """The ``tasks/`` object of a retrieval task (ValueError for istree); with ``n`` (a
        length of the mixture) the task at that length over the alphabet of length ``self.n``."""
        if self.task == "istree":
            raise ValueError("istree has no RetrievalTask object")
        from rnngap.tasks.registry import make_task
        full = make_task(self.task, n=self.n, **self.params)
        if n is None or n == self.n:
            return full
        return make_task(self.task, **{**self.params, "n": n, "alphabet": full.alphabet})

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
#: early-stopping probes (learned/train.py): fresh TRAINING-partition inputs at length n (never
#: the held-out part, so stopping is not a model selection on the test inputs)
PROBE = 3
#: 1 / TEST_BUCKETS of every input space is held out for VALID and TEST (see module docstring)
TEST_BUCKETS = 16
#: rejection rounds before a stream gives up (its part of the input space is empty or tiny)
MAX_ROUNDS = 256


def batch_seed(seed: int, index: int, stream: int = TRAIN, attempt: int = 0) -> int:
    """A 63-bit sampler seed for batch ``index`` of stream ``stream`` of a run seeded ``seed``
    (numpy SeedSequence mixing, so nearby seeds/indices give unrelated streams); ``attempt``
    numbers the rejection-sampling rounds of one batch."""
    key = [seed, stream, index] if attempt == 0 else [seed, stream, index, attempt]
    mixed = np.random.SeedSequence(key).generate_state(1, np.uint64)[0]
    return int(mixed >> np.uint64(1))


def row_hash(rows: np.ndarray) -> np.ndarray:
    """A fixed 64-bit hash of each row of a (B, L) integer array: FNV-1a over the tokens (and
    the length), then the splitmix64 finaliser (Steele, Lea, Flood 2014) to spread the bits."""
    rows = np.asarray(rows, dtype=np.int64)
    with np.errstate(over="ignore"):
        h = np.full(rows.shape[0], 0xCBF29CE484222325, dtype=np.uint64)
        prime = np.uint64(0x100000001B3)
        for j in range(rows.shape[1]):
            h = (h ^ rows[:, j].astype(np.uint64)) * prime
        h = (h ^ np.uint64(rows.shape[1])) * prime
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def is_test_input(rows: np.ndarray) -> np.ndarray:
    """(B,) bool: which inputs (rows of the task, without the answer) are held out."""
    return row_hash(rows) % np.uint64(TEST_BUCKETS) == 0


def _graph_keys(n: int, edges: list[np.ndarray]) -> np.ndarray:
    """Each graph's edge SET as one canonical row (edges as sorted (min, max) pairs, sorted)."""
    out = np.full((len(edges), 2 * max(1, n)), -1, dtype=np.int64)
    m = len(edges[0]) if edges else 0
    if edges and all(len(e) == m for e in edges) and m:     # the whole batch at once
        e = np.sort(np.stack([np.asarray(x, dtype=np.int64).reshape(-1, 2) for x in edges]),
                    axis=2)
        order = np.argsort(e[:, :, 0] * n + e[:, :, 1], axis=1, kind="stable")
        e = np.take_along_axis(e, order[:, :, None], axis=1).reshape(len(edges), -1)
        out[:, :e.shape[1]] = e
        return out
    for i, e in enumerate(edges):
        e = np.sort(np.asarray(e, dtype=np.int64).reshape(-1, 2), axis=1)
        e = e[np.lexsort((e[:, 1], e[:, 0]))].reshape(-1)
        out[i, :e.size] = e
    return out


def input_space_size(spec: DataSpec) -> int | None:
    """The number of distinct inputs of a retrieval task (None for IsTree: not enumerated)."""
    return None if spec.task == "istree" else spec.task_obj().num_inputs()


def _batch_length(spec: DataSpec, seed: int, index: int, stream: int) -> int:
    """The task length of one batch: n, or for TRAIN with a mixture a uniform draw from
    ``spec.mix_lengths()`` (a pure function of (seed, index))."""
    lengths = spec.mix_lengths()
    if stream != TRAIN or len(lengths) == 1:
        return spec.n
    return lengths[batch_seed(seed, index, stream, attempt=MAX_ROUNDS + 1) % len(lengths)]


def make_batch(spec: DataSpec, batch: int, seed: int, index: int, stream: int = TRAIN) -> Batch:
    """Batch ``index`` of the stream ``(spec, seed, stream)`` (a pure function of its args).

    TRAIN and PROBE batches hold only training inputs, VALID/TEST batches only held-out ones
    (module docstring); only TRAIN draws its length from the mixture; ValueError when the stream's part of the input space is too small to fill it.
    """
    if stream not in (TRAIN, VALID, TEST, PROBE):
        raise ValueError(f"unknown data stream {stream!r} (TRAIN, VALID, TEST or PROBE)")
    want_test = stream in (VALID, TEST)
    over = TEST_BUCKETS if want_test else 1
    kept: list = []
    have = 0
    for attempt in range(MAX_ROUNDS):
        s = batch_seed(seed, index, stream, attempt)
        # oversample the held-out part 16x, but keep one draw near 64 MB of int64 tokens
        draw = min(batch * over + 8, max(batch + 8, (1 << 23) // (spec.n + 2)))
        if spec.task == "istree":
            from rnngap.tasks import istree
            edges, labels = istree.sample_graphs(spec.n, draw, spec.family, seed=s,
                                                 official_quirks=spec.official_quirks)
            sel = np.flatnonzero(is_test_input(_graph_keys(spec.n, edges)) == want_test)
            kept.extend((edges[i], labels[i]) for i in sel[:batch - have])
        else:
            task = spec.task_obj(_batch_length(spec, seed, index, stream))
            rows, ans = task.sample(draw, s)
            sel = np.flatnonzero(is_test_input(rows) == want_test)[:batch - have]
            kept.append((rows[sel], ans[sel]))
        have += len(sel[:batch - have]) if spec.task == "istree" else len(sel)
        if have >= batch:
            break
    else:
        part = "held-out" if want_test else "training"
        raise ValueError(f"{spec.task} at n={spec.n}: the {part} part of the input space is "
                         f"too small to fill a batch of {batch} (1/{TEST_BUCKETS} of the inputs "
                         "are held out); use a larger --n")
    if spec.task == "istree":
        return _istree_batch(spec, [e for e, _ in kept], np.array([lab for _, lab in kept]))
    rows = np.concatenate([r for r, _ in kept])
    ans = np.concatenate([a for _, a in kept])
    tokens = np.concatenate([rows, ans[:, None]], 1).astype(np.int64)
    loss = np.zeros(tokens.shape, dtype=bool)
    loss[:, -1] = True
    return Batch(tokens, loss, np.zeros_like(loss), np.full(batch, rows.shape[1], np.int64),
                 ans.astype(np.int64))


def _istree_plain_batch(spec: DataSpec, edges: list, labels: np.ndarray) -> Batch | None:
    """The plain format for a whole batch at once (numpy): ``[BOS] u - v ... [EOS] label``,
    exactly what :func:`rnngap.tasks.istree.encode` writes row by row (a test compares).
    None when the graphs do not all have n - 1 edges (then the per-graph path runs)."""
    from rnngap.tasks import istree
    m = spec.n - 1
    if not edges or any(len(e) != m for e in edges):
        return None
    e = np.stack(edges)                                    # (B, m, 2): the sampler's arrays
    if e.dtype != np.int64 or not (e[:, :, 0] > e[:, :, 1]).all() or e.min() < 0 \
            or e.max() >= spec.n:
        return None                 # not canonical (u > v, in range): the validating path
    B, T = len(edges), 3 * m + 3
    tokens = np.empty((B, T), dtype=np.int64)
    tokens[:, 0] = istree.BOS
    tokens[:, 1:3 * m + 1:3] = e[:, :, 0] + istree.FIRST_VERTEX
    tokens[:, 2:3 * m + 1:3] = istree.DASH
    tokens[:, 3:3 * m + 1:3] = e[:, :, 1] + istree.FIRST_VERTEX
    tokens[:, -2] = istree.EOS
    tokens[:, -1] = np.where(labels, istree.TRUE, istree.FALSE)
    loss = np.zeros((B, T), dtype=bool)
    loss[:, -1] = True
    return Batch(tokens, loss, np.zeros_like(loss), np.full(B, T - 1, dtype=np.int64),
                 labels.astype(np.int64), edges)


def _istree_cot_batch(spec: DataSpec, edges: list, labels: np.ndarray) -> Batch | None:
    """The cot and retrieval formats for a batch: the prompts at once (numpy), the chains of
    thought per graph from the sampler's canonical arrays (no re-validation), the same tokens
    and masks as :func:`rnngap.tasks.istree.encode` (a test compares)."""
    from rnngap.tasks import istree
    m = spec.n - 1
    if not edges or any(len(e) != m for e in edges):
        return None
    head = _istree_plain_batch(spec, edges, labels).tokens[:, :-1]       # prompt, with [EOS]
    P = head.shape[1]
    from rnngap.tasks import istree_fast
    if istree_fast.AVAILABLE:   # compiled traversals (optional numba): the same rows, one call
        tokens, loss, ret = istree_fast.cot_batch(spec.n, np.stack(edges), head, labels,
                                                  spec.fmt)
        return Batch(tokens, loss, ret, np.full(len(edges), P, dtype=np.int64),
                     labels.astype(np.int64), edges)
    rows, got = [], []
    for e in edges:
        if spec.fmt == "cot":
            cot, g = istree.euler_tour_canonical(spec.n, e), []
        else:
            cot, g = istree.retrieval_cot_canonical(spec.n, e)
        rows.append(cot)
        got.append(g)
    T = P + max(len(r) for r in rows) + 2
    B = len(edges)
    tokens = np.full((B, T), istree.PAD, dtype=np.int64)
    tokens[:, :P] = head
    loss = np.zeros((B, T), dtype=bool)
    ret = np.zeros((B, T), dtype=bool)
    for i, (r, g) in enumerate(zip(rows, got)):
        end = P + len(r)
        tokens[i, P:end] = r
        tokens[i, end] = istree.EOS
        tokens[i, end + 1] = istree.TRUE if labels[i] else istree.FALSE
        loss[i, P:end + 2] = True
        if g:
            idx = P + np.asarray(g)
            ret[i, idx] = True
            loss[i, idx] = False
    return Batch(tokens, loss, ret, np.full(B, P, dtype=np.int64), labels.astype(np.int64),
                 edges)


def _istree_batch(spec: DataSpec, edges: list, labels: np.ndarray) -> Batch:
    from rnngap.tasks import istree

    fast = (_istree_plain_batch if spec.fmt == "plain" else _istree_cot_batch)(
        spec, edges, labels)
    if fast is not None:
        return fast
    batch = len(edges)
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
