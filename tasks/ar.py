"""AR_n, associative recall (Wen, Dang, Lyu, ICLR 2025, Definition 4.3), key-value form.

Formal definition (as rnngap implements it).  Parameters: an even number ``n = 2m >= 2`` of data
tokens and an alphabet size ``k >= m`` (default ``k = n + 1``).  An input is the row::

    k_1 v_1 k_2 v_2 ... k_m v_m  q

with keys ``k_j`` in ``[0, k)`` pairwise DISTINCT, values ``v_j`` in ``[0, k)`` arbitrary (a value
may equal a key or another value), and the query ``q`` equal to one of the keys.  The answer is
the token that follows ``q`` among the data: ``v_j`` for the unique ``j`` with ``k_j = q``.
Distinct keys make "the token after q" unambiguous (Definition 4.3 asks for the token following
the query; the key-value form is the convention the brief fixes).  Only keys are searched: a
value equal to ``q`` is never a match.

Sizes: ``V = k``, ``L = n + 1``; the input space has ``k!/(k-m)! * k**m * m`` elements
(ordered distinct keys, values, which key is queried).

Sampler: uniform over the input space: keys are the first ``m`` entries of a uniformly random
permutation of ``[0, k)`` (argsort of i.i.d. uniforms), values i.i.d. uniform on ``[0, k)``,
the queried pair index uniform on ``[1, m]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rnngap.tasks.base import (
    RetrievalTask,
    check_batch_seed,
    check_int,
    index_batches,
    mixed_radix_digits,
    tokens_in_range,
)


def ranks_to_arrangements(ranks: np.ndarray, k: int) -> np.ndarray:
    """Turn falling-factorial digits into ordered selections of distinct symbols.

    Row ``b`` of ``ranks`` has digits ``d_1..d_m`` with ``d_j in [0, k - j + 1)``; the result
    picks, at step ``j``, the ``d_j``-th smallest symbol of ``[0, k)`` not picked yet (a Lehmer
    code).  This is a bijection between the digit tuples and the ``k!/(k-m)!`` sequences of
    ``m`` distinct symbols.
    """
    batch, m = ranks.shape
    used = np.zeros((batch, k), dtype=bool)
    out = np.empty((batch, m), dtype=np.int64)
    rows = np.arange(batch)
    for j in range(m):
        free_rank = np.cumsum(~used, axis=1) - 1
        hit = (~used) & (free_rank == ranks[:, j : j + 1])
        chosen = np.argmax(hit, axis=1)
        out[:, j] = chosen
        used[rows, chosen] = True
    return out


@dataclass(frozen=True)
class ARTask(RetrievalTask):
    """AR_n (Definition 4.3): ``k_1 v_1 .. k_m v_m q -> v_j`` where ``k_j = q``; keys distinct.

    Attributes:
        n: number of data tokens, even and >= 2 (``m = n/2`` pairs).
        alphabet: alphabet size k (>= m so that m distinct keys exist); ``None`` means ``n + 1``.
    """

    name: ClassVar[str] = "ar"
    convention: ClassVar[str] = (
        "row k_1 v_1 .. k_m v_m q with pairwise distinct keys, q equal to one key; "
        "the answer is the value right after that key")
    alphabet: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n % 2:
            raise ValueError(f"ar: n must be even (key-value pairs), got {self.n}")
        k = self.n + 1 if self.alphabet is None else check_int("alphabet", self.alphabet, 1)
        if k < self.m:
            raise ValueError(f"ar: alphabet must be >= n/2 = {self.m} for distinct keys, got {k}")
        object.__setattr__(self, "alphabet", k)

    @property
    def k(self) -> int:
        """The alphabet size."""
        assert self.alphabet is not None
        return self.alphabet

    @property
    def m(self) -> int:
        """The number of key-value pairs."""
        return self.n // 2

    def vocab_size(self) -> int:
        """V = k."""
        return self.k

    def query_len(self) -> int:
        """One query token (a key)."""
        return 1

    def is_valid(self, inputs: np.ndarray) -> np.ndarray:
        """Tokens in [0, k), keys pairwise distinct, query equal to some key."""
        arr = self.as_inputs(inputs)
        keys = arr[:, 0 : self.n : 2]
        in_range = tokens_in_range(arr, 0, self.k)
        srt = np.sort(keys, axis=1)
        distinct = (srt[:, 1:] != srt[:, :-1]).all(axis=1)
        present = (keys == arr[:, -1:]).any(axis=1)
        return in_range & distinct & present

    def _solve(self, inputs: np.ndarray) -> np.ndarray:
        keys = inputs[:, 0 : self.n : 2]
        values = inputs[:, 1 : self.n : 2]
        j = np.argmax(keys == inputs[:, -1:], axis=1)
        return values[np.arange(inputs.shape[0]), j]

    def sample(self, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform over the input space (see the module docstring)."""
        batch, seed = check_batch_seed(batch, seed)
        rng = np.random.default_rng(seed)
        # argsort of i.i.d. uniforms is a uniform permutation; chunks bound memory to ~32 MB
        chunk = max(1, (1 << 22) // self.k)
        keys = np.concatenate(
            [np.argsort(rng.random((min(chunk, batch - s), self.k)), axis=1)[:, : self.m]
             for s in range(0, batch, chunk)], axis=0).astype(np.int64)
        values = rng.integers(0, self.k, size=(batch, self.m), dtype=np.int64)
        j = rng.integers(0, self.m, size=batch)
        return self._assemble(keys, values, j)

    def _assemble(self, keys: np.ndarray, values: np.ndarray,
                  j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``k_1 v_1 .. k_m v_m k_j`` and answers ``v_j`` (``j`` 0-based, per row)."""
        rows = np.arange(keys.shape[0])
        inputs = np.empty((keys.shape[0], self.n + 1), dtype=np.int64)
        inputs[:, 0 : self.n : 2] = keys
        inputs[:, 1 : self.n : 2] = values
        inputs[:, -1] = keys[rows, j]
        return inputs, values[rows, j].astype(np.int64)

    def num_inputs(self) -> int:
        """``k!/(k-m)! * k**m * m``."""
        return math.perm(self.k, self.m) * self.k**self.m * self.m

    def _enumerate(self, batch: int) -> Iterator[np.ndarray]:
        m, k = self.m, self.k
        radices = [k - j for j in range(m)] + [k] * m + [m]
        for idx in index_batches(self.num_inputs(), batch):
            digits = mixed_radix_digits(idx, radices)
            keys = ranks_to_arrangements(digits[:, :m], k)
            yield self._assemble(keys, digits[:, m : 2 * m], digits[:, -1])[0]

    def _adversarial(self) -> dict[str, np.ndarray]:
        m, k = self.m, self.k
        top = k - 1
        every = np.arange(m)

        def all_queries(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
            """One row per key of the single data row (keys, values), querying that key."""
            return self._assemble(np.tile(keys, (m, 1)), np.tile(values, (m, 1)), every)[0]

        asc = np.arange(m, dtype=np.int64)                 # keys 0..m-1
        largest = np.arange(k - m, k, dtype=np.int64)      # keys k-m..k-1 (adjacent numbers)
        desc = largest[::-1].copy()
        fam: dict[str, np.ndarray] = {
            "values_all_zero": all_queries(asc, np.zeros(m, np.int64)),
            "values_all_max": all_queries(largest, np.full(m, top, np.int64)),
            # value tokens are themselves keys: a retriever that matches any token fails
            "values_are_keys_shifted": all_queries(asc, np.roll(asc, 1)),
            "values_equal_own_key": all_queries(desc, desc),
            "values_equal_next_key": all_queries(asc, np.roll(asc, -1)),
            "largest_keys": all_queries(desc, asc % k),
        }
        # every value equals the query token (only the key occurrence may match)
        fam["values_equal_query"] = np.concatenate(
            [self._assemble(asc[None], np.full((1, m), q), np.array([i]))[0]
             for i, q in enumerate(asc)], axis=0)
        # first / last pair queried, over several data rows
        data_keys = np.stack([asc, desc, np.roll(asc, 1)])
        data_vals = np.stack([asc[::-1] % k, np.full(m, top), (asc * 3 + 1) % k])
        fam["query_first_pair"] = self._assemble(data_keys, data_vals, np.zeros(3, np.int64))[0]
        fam["query_last_pair"] = self._assemble(data_keys, data_vals, np.full(3, m - 1))[0]
        return fam

    def render(self, row: np.ndarray) -> str:
        """E.g. ``(4:1) (2:3) | q = 2 -> 3``."""
        r = np.asarray(row).reshape(-1)
        ans = self._row_answer(r)
        pairs = " ".join(f"({int(r[2 * j])}:{int(r[2 * j + 1])})" for j in range(self.m))
        return f"{pairs} | q = {int(r[-1])} -> {'invalid' if ans is None else ans}"
