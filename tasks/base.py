"""Common interface of the four retrieval tasks of Wen, Dang, Lyu (ICLR 2025), Section 4.

Every task uses a pure *number vocabulary*: token id == the number it denotes, ids ``0..V-1``,
no special tokens.  One instance is one ``int64`` row: the ``n`` data tokens followed by the
query token(s); the answer is a single token id.  Positions are 1-based in docstrings
(``x_1..x_n``) and 0-based in code.

A subclass is a frozen dataclass that validates its parameters in ``__post_init__`` (a bad
parameter raises ``ValueError`` with a one-line message) and implements the task-specific
pieces: ``_solve`` (ground truth on rows already known to be valid), ``is_valid``, ``sample``,
``num_inputs``, ``_enumerate`` and ``_adversarial``.  The base class adds the shared checks:
``solve`` refuses invalid rows, ``enumerate`` refuses spaces larger than ``ENUMERATE_LIMIT``,
``adversarial`` checks that every hand-made family consists of valid rows.
"""

from __future__ import annotations

import abc
import operator
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

ENUMERATE_LIMIT = 10**7
"""``enumerate`` raises ``ValueError`` when ``num_inputs()`` exceeds this."""


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """Return ``value`` as a python int, or raise ``ValueError`` (bools and floats refused)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")  # noqa: TRY004
    try:
        out = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return int(out)


def check_batch_seed(batch: Any, seed: Any) -> tuple[int, int]:
    """Validate the ``batch`` (>= 1) and ``seed`` (>= 0) arguments of a sampler."""
    return check_int("batch", batch, 1), check_int("seed", seed, 0)


def mixed_radix_digits(index: np.ndarray, radices: list[int]) -> np.ndarray:
    """Decode integers into mixed-radix digits, most significant digit first.

    Args:
        index: (B,) int64 numbers in ``[0, prod(radices))``.
        radices: the base of each digit position (column ``j`` takes values ``0..radices[j]-1``).

    Returns:
        (B, len(radices)) int64 digits; enumerating ``index`` in increasing order enumerates the
        digit tuples in lexicographic order.
    """
    rest = np.asarray(index, dtype=np.int64).copy()
    out = np.empty((rest.shape[0], len(radices)), dtype=np.int64)
    for j in range(len(radices) - 1, -1, -1):
        out[:, j] = rest % radices[j]
        rest //= radices[j]
    return out


def index_batches(total: int, batch: int) -> Iterator[np.ndarray]:
    """Yield ``np.arange(total)`` in consecutive chunks of at most ``batch`` numbers."""
    for start in range(0, total, batch):
        yield np.arange(start, min(total, start + batch), dtype=np.int64)


def rechunk(blocks: Iterator[np.ndarray], batch: int) -> Iterator[np.ndarray]:
    """Regroup a stream of (b_i, L) blocks into (batch, L) blocks (the last may be shorter)."""
    pending: list[np.ndarray] = []
    size = 0
    for block in blocks:
        if block.shape[0] == 0:
            continue
        pending.append(block)
        size += block.shape[0]
        while size >= batch:
            whole = np.concatenate(pending, axis=0)
            yield whole[:batch]
            rest = whole[batch:]
            pending = [rest] if rest.shape[0] else []
            size = rest.shape[0]
    if size:
        yield np.concatenate(pending, axis=0)


@dataclass(frozen=True)
class RetrievalTask(abc.ABC):
    """A retrieval task over the number vocabulary: data tokens, then query tokens -> one token.

    Attributes:
        n: the number of data tokens (>= 1; subclasses may demand more).
    """

    name: ClassVar[str]
    convention: ClassVar[str]
    n: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", check_int("n", self.n, 1))

    # ----- sizes ------------------------------------------------------------------------
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """V: every token id of every valid row lies in ``[0, V)``."""

    @abc.abstractmethod
    def query_len(self) -> int:
        """The number of query tokens at the end of a row."""

    def seq_len(self) -> int:
        """L: the length of one input row (``n`` data tokens + the query tokens)."""
        return self.n + self.query_len()

    # ----- ground truth -----------------------------------------------------------------
    def as_inputs(self, inputs: Any) -> np.ndarray:
        """Return ``inputs`` as a (B, L) int64 array, or raise ``ValueError`` on a bad shape."""
        arr = np.asarray(inputs)
        if arr.ndim != 2 or arr.shape[1] != self.seq_len():
            raise ValueError(
                f"{self.name}: inputs must have shape (B, {self.seq_len()}), got {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{self.name}: inputs must be integers, got dtype {arr.dtype}")
        return arr.astype(np.int64, copy=False)

    @abc.abstractmethod
    def is_valid(self, inputs: np.ndarray) -> np.ndarray:
        """(B,) bool: which rows satisfy the task's input conventions."""

    @abc.abstractmethod
    def _solve(self, inputs: np.ndarray) -> np.ndarray:
        """Ground truth for a (B, L) int64 array whose rows are all valid."""

    def solve(self, inputs: np.ndarray) -> np.ndarray:
        """Vectorized ground truth: (B, L) valid rows -> (B,) int64 answers.

        Raises:
            ValueError: on a bad shape or if any row is invalid (the first one is named).
        """
        arr = self.as_inputs(inputs)
        ok = self.is_valid(arr)
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"{self.name}: row {bad} is not a valid input: {arr[bad].tolist()}")
        return self._solve(arr).astype(np.int64, copy=False)

    # ----- sampling and enumeration -----------------------------------------------------
    @abc.abstractmethod
    def sample(self, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``batch`` valid rows (B, L) int64 and their answers (B,) int64; seeded."""

    @abc.abstractmethod
    def num_inputs(self) -> int:
        """The number of valid inputs (an exact python int; may be huge)."""

    @abc.abstractmethod
    def _enumerate(self, batch: int) -> Iterator[np.ndarray]:
        """Yield every valid input exactly once, in blocks of at most ``batch`` rows."""

    def enumerate(self, batch: int = 65536) -> Iterator[np.ndarray]:
        """Every valid input exactly once, as (<= batch, L) int64 blocks.

        Raises:
            ValueError: if ``num_inputs() > ENUMERATE_LIMIT`` (checked before anything is
                yielded) or ``batch < 1``.
        """
        batch = check_int("batch", batch, 1)
        total = self.num_inputs()
        if total > ENUMERATE_LIMIT:
            raise ValueError(f"{self.name}: {total} inputs is too many to enumerate "
                             f"(limit {ENUMERATE_LIMIT})")
        return self._enumerate(batch)

    # ----- hand-picked inputs -----------------------------------------------------------
    @abc.abstractmethod
    def _adversarial(self) -> dict[str, np.ndarray]:
        """Named families of hard inputs (rows may be invalid only through a bug)."""

    def adversarial(self) -> dict[str, np.ndarray]:
        """Named families of hand-picked hard inputs, each a non-empty (B, L) int64 array.

        Families that cannot be built for the current parameters (for example "alternating"
        with a one-letter alphabet) are left out.  Every row is checked with ``is_valid``.

        Raises:
            RuntimeError: if a family contains an invalid row (a bug in this module).
        """
        out: dict[str, np.ndarray] = {}
        for family, rows in self._adversarial().items():
            arr = self.as_inputs(np.asarray(rows, dtype=np.int64).reshape(-1, self.seq_len()))
            if arr.shape[0] == 0:
                continue
            if not self.is_valid(arr).all():
                raise RuntimeError(f"{self.name}: adversarial family {family!r} has invalid rows")
            out[family] = arr
        return out

    # ----- presentation -----------------------------------------------------------------
    @abc.abstractmethod
    def render(self, row: np.ndarray) -> str:
        """A one-line human-readable rendering of one row (with its answer if valid)."""

    def params(self) -> dict[str, Any]:
        """The constructor parameters (resolved defaults included)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> dict[str, Any]:
        """JSON-able summary: name, n, params, V, L, query length and the convention."""
        return {
            "name": self.name,
            "n": self.n,
            "params": self.params(),
            "V": self.vocab_size(),
            "L": self.seq_len(),
            "query_len": self.query_len(),
            "convention": self.convention,
        }

    def _row_answer(self, row: np.ndarray) -> int | None:
        """The answer of one row, or None if the row is invalid (used by ``render``)."""
        arr = self.as_inputs(np.asarray(row).reshape(1, -1))
        if not self.is_valid(arr)[0]:
            return None
        return int(self._solve(arr)[0])


def tokens_in_range(arr: np.ndarray, low: int, high: int) -> np.ndarray:
    """(B,) bool: every entry of the row lies in ``[low, high)``."""
    return ((arr >= low) & (arr < high)).all(axis=1)
