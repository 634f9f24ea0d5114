"""Fooling inputs: two data strings that a concrete B-bit machine cannot tell apart, found by search.

A *machine* is a deterministic transition ``f(state, token) -> state`` on states 0..2**B - 1,
started in state 0, reading the input one token at a time (the RNN model of BRIEF.md with an
M = B bit memory). Whatever its output rule, two inputs that reach the same state after the data
and then read the same query end in the same state and get the same answer. If the task's true
answers differ, the machine is wrong on one of them.

Birthday search: draw data strings from the task's sampler (seeded), run the machine, and look
for two different data strings with equal states; with 2**B states a collision is expected after
about 1.25 * 2**(B/2) draws (the birthday bound), so B up to about 40 is feasible. A collision is
reported only after a separating query is found (valid for both, different answers) and both full
inputs are re-run from scratch with the scalar transition, token by token.

Built-in machines: ``prefix`` keeps the first floor(B / ceil(log2 k)) data tokens verbatim and
ignores the rest (it answers Index correctly for early positions); ``hash`` keeps a B-bit
multiplicative rolling hash of everything read. A user machine is ``module:function`` with the
signature ``f(state: int, token: int) -> int``; the module must be importable (the current
directory is added to ``sys.path``; otherwise set PYTHONPATH).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnngap.tasks.registry import CARDS, load

_MULT = 0x9E3779B1  # odd multiplier (Knuth's golden-ratio constant), invertible mod 2**B

TASKS = tuple(name for name, card in CARDS.items() if card.fool)
MAX_N = 10_000  # longest data string the search accepts (every collision is replayed token by token)
MAX_AR_ALPHABET = 1_000_000  # AR sampling permutes the whole alphabet for every row
BATCH_ELEMENTS = 1 << 24  # int64s per sampled batch (128 MiB)


@dataclass
class Machine:
    """A B-bit transition with an optional vectorized form and output rule."""

    name: str
    bits: int
    step: Callable[[int, int], int]
    batch: Callable[[np.ndarray], np.ndarray] | None = None
    output: Callable[[int, tuple[int, ...]], int] | None = None

    def run(self, tokens) -> list[int]:
        """States after each token, from state 0, checking the B-bit range."""
        s, trace = 0, []
        for t in tokens:
            s = int(self.step(s, int(t)))
            if not 0 <= s < 2**self.bits:
                raise ValueError(f"machine {self.name} left its {self.bits}-bit state space: {s}")
            trace.append(s)
        return trace

    def states(self, data: np.ndarray) -> np.ndarray:
        """Final states for a batch of data rows (vectorized when available)."""
        if self.batch is not None:
            return self.batch(data)
        return np.array([self.run(row)[-1] for row in data.tolist()], dtype=np.uint64)


def prefix_machine(bits: int, k: int) -> Machine:
    """Keep the first data tokens verbatim: state = (tokens stored so far) and the tokens, as
    w = ceil(log2 k)-bit digits; it stores ``keep = (bits - p) // w`` tokens, p bits counting."""
    w = max(1, (k - 1).bit_length())
    pos_bits = max(1, (bits // w).bit_length())
    keep = max(0, (bits - pos_bits) // w)
    mask = (1 << (keep * w)) - 1

    def step(s: int, t: int) -> int:
        pos, body = s >> (keep * w), s & mask
        if pos < keep:
            body |= (t & ((1 << w) - 1)) << (pos * w)
            pos += 1
        return (pos << (keep * w)) | body

    def out(s: int, query: tuple[int, ...]) -> int:
        i = query[0]
        return (s >> ((i - 1) * w)) & ((1 << w) - 1) if 1 <= i <= keep else 0

    def batch(data: np.ndarray) -> np.ndarray:
        m = min(keep, data.shape[1])
        st = np.zeros(len(data), dtype=np.uint64)
        for j in range(m):
            st |= data[:, j].astype(np.uint64) << np.uint64(j * w)
        return st | (np.uint64(m) << np.uint64(keep * w))

    return Machine(f"prefix (keeps the first {keep} tokens)", bits, step, batch, out)


def hash_machine(bits: int, k: int) -> Machine:
    """state <- (state * MULT + token + 1) mod 2**bits; output: state mod k."""
    mask = (1 << bits) - 1

    def step(s: int, t: int) -> int:
        return (s * _MULT + t + 1) & mask

    def batch(data: np.ndarray) -> np.ndarray:
        st = np.zeros(len(data), dtype=np.uint64)
        for j in range(data.shape[1]):
            st = (st * np.uint64(_MULT) + data[:, j].astype(np.uint64) + np.uint64(1)) \
                & np.uint64(mask)
        return st

    return Machine("hash (B-bit rolling hash)", bits, step, batch, lambda s, q: s % k)


def load_machine(spec: str, bits: int, k: int) -> Machine:
    """``prefix``, ``hash`` or ``module:function`` (a user transition f(state, token) -> state).

    The module is imported with the current directory on ``sys.path``; the function is called
    once as ``f(0, 0)`` to check its signature. ValueError: cannot be loaded; TypeError: not a
    transition with that signature."""
    if spec == "prefix":
        return prefix_machine(bits, k)
    if spec == "hash":
        return hash_machine(bits, k)
    if ":" not in spec:
        raise ValueError(f"machine must be prefix, hash or module:function, got {spec!r}")
    mod, attr = spec.split(":", 1)
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:  # a machine in the current directory is importable without PYTHONPATH
        sys.path.insert(0, cwd)
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except SyntaxError as exc:
        raise ValueError(f"cannot load {spec!r}: syntax error in {exc.filename} line "
                         f"{exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001  (importing runs the user's module: any failure)
        if not isinstance(exc, (ImportError, AttributeError)):
            raise ValueError(f"cannot load {spec!r}: importing it raised "  # noqa: TRY004
                             f"{type(exc).__name__}: {exc}") from None
        raise ValueError(f"cannot load {spec!r}: {exc} (the module must be importable: run "
                         "from its directory or add that directory to PYTHONPATH)") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    sig = "expected a function f(state: int, token: int) -> int"
    if not callable(fn):
        raise TypeError(f"{spec!r} is a {type(fn).__name__}, not callable; {sig}")
    try:  # one probe call, so a wrong signature is a clear error and not a traceback mid-search
        int(fn(0, 0))
    except Exception as exc:  # noqa: BLE001  (any failure of the user's code: report it)
        raise TypeError(f"calling {spec}(0, 0) failed with {type(exc).__name__}: {exc}; "
                        f"{sig}") from None
    return Machine(spec, bits, fn)

# --- tasks: samplers, queries and solvers (our own; conventions of notes/tasks_api.md) ---

@dataclass(frozen=True)
class FoolFamily:
    """What ``rnngap fool`` needs of one task (its card's ``fool`` names one of these)."""

    sample: Callable[[int, int, int, np.random.Generator], np.ndarray]
    """``(n, k, batch, rng) -> (batch, n)`` data rows."""
    queries: Callable[[tuple[int, ...]], list[tuple[int, ...]]]
    """Every valid query for a data row."""
    answer: Callable[[tuple[int, ...], tuple[int, ...]], int]
    """The correct answer of a data row and a query."""
    separate: Callable[[tuple[int, ...], tuple[int, ...]], tuple[int, ...] | None] | None = None
    """A faster :func:`separating_query` (same result); None: try every query."""
    width: Callable[[int, int], int] | None = None
    """``(n, k) ->`` int64s drawn per row (None: n), which sizes the sampled batches."""


def _uniform_rows(n: int, k: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, k, (batch, n), dtype=np.int64)


def _ar_rows(n: int, k: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct keys (a permutation of the alphabet per row), uniform values."""
    m = n // 2
    keys = np.argsort(rng.random((batch, k)), axis=1)[:, :m]
    out = np.empty((batch, n), dtype=np.int64)
    out[:, 0::2], out[:, 1::2] = keys, rng.integers(0, k, (batch, m))
    return out


def _ar_answer(data: tuple[int, ...], query: tuple[int, ...]) -> int:
    j = data[0::2].index(query[0])
    return data[2 * j + 1]


def _counting_separate(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """The first (q, t) of the generic loop, in O(n): t = the smaller count."""
    ca, cb = Counter(a), Counter(b)
    for q in sorted(ca):
        if q in cb and ca[q] != cb[q]:
            return (q, min(ca[q], cb[q]))
    return None


INDEX = FoolFamily(_uniform_rows, lambda data: [(i,) for i in range(1, len(data) + 1)],
                   lambda data, query: data[query[0] - 1])
AR = FoolFamily(_ar_rows, lambda data: [(q,) for q in data[0::2]], _ar_answer,
                width=max)  # AR draws a permutation of the alphabet per row
COUNTING = FoolFamily(
    _uniform_rows,
    lambda data: [(q, t) for q in sorted(set(data)) for t in range(len(data) + 1)],
    lambda data, query: int(sum(1 for x in data if x == query[0]) > query[1]),
    separate=_counting_separate)


def family(task: str) -> FoolFamily:
    """The task's :class:`FoolFamily` (its card's ``fool``); ValueError for other tasks."""
    card = CARDS.get(task)
    if card is None or card.fool is None:
        raise ValueError(f"fool supports tasks {', '.join(TASKS)}; got {task!r}")
    return load(card.fool)


def sample_data(task: str, n: int, k: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """(batch, n) data rows: uniform for index/counting; AR: distinct keys, uniform values."""
    return family(task).sample(n, k, batch, rng)


def queries(task: str, data: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every valid query for this data row."""
    return family(task).queries(data)


def answer(task: str, data: tuple[int, ...], query: tuple[int, ...]) -> int:
    """The correct answer (Index: x_i; AR: value after key q; Counting: [#q > t])."""
    return family(task).answer(data, query)


def separating_query(task: str, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """A query valid for both data rows on which the correct answers differ, or None."""
    fam = family(task)
    if fam.separate is not None:
        return fam.separate(a, b)
    valid_b = set(fam.queries(b))
    for q in fam.queries(a):
        if q in valid_b and fam.answer(a, q) != fam.answer(b, q):
            return q
    return None


@dataclass
class FoolingPair:
    """A verified fooling pair and the evidence."""

    task: str
    n: int
    alphabet: int
    machine: str
    bits: int
    data_a: tuple[int, ...]
    data_b: tuple[int, ...]
    query: tuple[int, ...]
    state_after_data: int
    final_state: int
    answer_a: int
    answer_b: int
    output: int | None
    samples: int


def birthday_search(task: str, machine: Machine, n: int, k: int, seed: int = 0,
                    max_samples: int = 1 << 23, progress: Callable[[int], None] | None = None
                    ) -> FoolingPair | None:
    """Draw data rows until two different ones share the machine's state and some query separates
    them; verify by re-running both full inputs with the scalar transition. None if not found."""
    fam = family(task)  # ValueError for a task without one
    width = n if fam.width is None else fam.width(n, k)
    hit = collide(machine, lambda size, rng: fam.sample(n, k, size, rng),
                  lambda a, b: separating_query(task, a, b), seed, max_samples, progress,
                  cap=max(1, BATCH_ELEMENTS // width))
    if hit is None:
        return None
    a, b, q, drawn = hit
    return _verify(task, machine, a, b, q, k, drawn)


def collide(machine: Machine, sample: Callable[[int, np.random.Generator], np.ndarray],
            separate: Callable[[tuple, tuple], tuple | None], seed: int = 0,
            max_samples: int = 1 << 23, progress: Callable[[int], None] | None = None,
            cap: int = 1 << 20, first: int = 4096) -> tuple | None:
    """The birthday search itself: ``(a, b, query, samples drawn)`` for the first two different
    sampled rows with the same final machine state that ``separate`` tells apart, or None.
    ``sample(size, rng)`` draws (size, n) rows; batches double up to ``cap`` rows."""
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    rng = np.random.default_rng(seed)
    seen: dict[int, bytes] = {}
    drawn, size = 0, min(first, cap)
    while drawn < max_samples:
        size = min(size, max_samples - drawn)
        data = sample(size, rng)
        for row, st in zip(data, machine.states(data).tolist()):
            key = row.tobytes()
            prev = seen.setdefault(st, key)
            if prev != key:
                a = tuple(np.frombuffer(prev, dtype=np.int64).tolist())
                b = tuple(row.tolist())
                q = separate(a, b)
                if q is not None:
                    return a, b, q, drawn + size
        drawn += size
        if progress:
            progress(size)
        size = min(size * 2, 1 << 20, cap)
    return None


def _verify(task: str, machine: Machine, a: tuple, b: tuple, q: tuple, k: int, samples: int
            ) -> FoolingPair:
    ta, tb = machine.run(a + q), machine.run(b + q)
    n = len(a)
    if ta[n - 1] != tb[n - 1] or ta[-1] != tb[-1]:
        raise RuntimeError("vectorized and scalar machine disagree: not a fooling pair")
    ans_a, ans_b = answer(task, a, q), answer(task, b, q)
    assert ans_a != ans_b
    out = machine.output(ta[n - 1], q) if machine.output else None
    return FoolingPair(task, n, k, machine.name, machine.bits, a, b, q, ta[n - 1], ta[-1],
                       ans_a, ans_b, out, samples)
