"""Index_n: return the token at a queried position (Wen, Dang, Lyu, ICLR 2025, Definition 4.2).

Formal definition (as rnngap implements it).  Parameters: ``n >= 1`` data tokens and an
alphabet size ``k >= 1`` (default ``k = n + 1``: the data are numbers ``0..n``, each a single
token, as in the paper).  An input is the row::

    x_1 x_2 ... x_n  i          with x_j in [0, k) and the query i in [1, n]

(``i`` is the number token ``i``), and the answer is ``x_i``.  Every such row is valid, so the
input space has ``k**n * n`` elements.  Vocabulary ``V = max(k, n + 1)`` (data and position
tokens share the number vocabulary), row length ``L = n + 1``.

Sampler: ``x`` uniform on ``[0, k)^n`` and ``i`` uniform on ``[1, n]``, independently, i.e. the
uniform distribution on the input space.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class IndexTask(RetrievalTask):
    """Index_n (Definition 4.2): ``x_1..x_n, i -> x_i``.

    Attributes:
        n: number of data tokens (>= 1).
        alphabet: data alphabet size k (>= 1); ``None`` means ``n + 1``.
    """

    name: ClassVar[str] = "index"
    convention: ClassVar[str] = (
        "row x_1..x_n i with x_j in [0,k) and query i in [1,n]; the answer is x_i")
    alphabet: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        k = self.n + 1 if self.alphabet is None else check_int("alphabet", self.alphabet, 1)
        object.__setattr__(self, "alphabet", k)

    @property
    def k(self) -> int:
        """The data alphabet size."""
        assert self.alphabet is not None
        return self.alphabet

    def vocab_size(self) -> int:
        """V = max(k, n + 1): data tokens < k, position tokens <= n."""
        return max(self.k, self.n + 1)

    def query_len(self) -> int:
        """One query token (the position i)."""
        return 1

    def is_valid(self, inputs: np.ndarray) -> np.ndarray:
        """Data tokens in [0, k) and query in [1, n]."""
        arr = self.as_inputs(inputs)
        q = arr[:, -1]
        return tokens_in_range(arr[:, : self.n], 0, self.k) & (q >= 1) & (q <= self.n)

    def _solve(self, inputs: np.ndarray) -> np.ndarray:
        rows = np.arange(inputs.shape[0])
        return inputs[rows, inputs[:, -1] - 1]

    def sample(self, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform over all ``k**n * n`` inputs (see the module docstring)."""
        batch, seed = check_batch_seed(batch, seed)
        rng = np.random.default_rng(seed)
        data = rng.integers(0, self.k, size=(batch, self.n), dtype=np.int64)
        query = rng.integers(1, self.n + 1, size=(batch, 1), dtype=np.int64)
        inputs = np.concatenate([data, query], axis=1)
        return inputs, self._solve(inputs)

    def num_inputs(self) -> int:
        """``k**n * n``."""
        return self.k**self.n * self.n

    def _enumerate(self, batch: int) -> Iterator[np.ndarray]:
        # Lexicographic over (x_1, ..., x_n, i - 1) as mixed-radix digits.
        radices = [self.k] * self.n + [self.n]
        for idx in index_batches(self.num_inputs(), batch):
            digits = mixed_radix_digits(idx, radices)
            digits[:, -1] += 1
            yield digits

    def _adversarial(self) -> dict[str, np.ndarray]:
        n, k = self.n, self.k
        top = k - 1
        pos = np.arange(1, n + 1, dtype=np.int64)
        every_query = pos[:, None]

        def with_queries(data: np.ndarray) -> np.ndarray:
            """One row per query i in [1, n], all sharing the data row ``data``."""
            return np.concatenate([np.tile(data, (n, 1)), every_query], axis=1)

        fam: dict[str, np.ndarray] = {
            "all_zero": with_queries(np.zeros(n, dtype=np.int64)),
            "all_max": with_queries(np.full(n, top, dtype=np.int64)),
            # data equal to position numbers: the value token looks like a query token
            "data_is_position": with_queries(pos % k),
            "data_is_reversed_position": with_queries((n - pos + 1) % k),
            "max_descending": with_queries(top - (pos - 1) % k),
        }
        if k >= 2:
            fam["alternating_0_max"] = with_queries(np.where(pos % 2 == 1, 0, top))
            spike = np.zeros((n, n), dtype=np.int64)
            spike[np.arange(n), np.arange(n)] = top
            # one non-zero token at position i, queried at i, at i-1 and at i+1
            fam["spike_at_query"] = np.concatenate([spike, every_query], axis=1)
            fam["spike_before_query"] = np.concatenate([spike[:-1], every_query[1:]], axis=1)
            fam["spike_after_query"] = np.concatenate([spike[1:], every_query[:-1]], axis=1)
        data = np.stack([pos % k, (pos * 7 + 3) % k, np.full(n, top)], axis=0)
        fam["query_first"] = np.concatenate([data, np.ones((3, 1), np.int64)], axis=1)
        fam["query_last"] = np.concatenate([data, np.full((3, 1), n, np.int64)], axis=1)
        # every data token equal to the queried number (when that number is a data token)
        qs = pos[pos < k]
        fam["data_equals_query"] = np.concatenate(
            [np.repeat(qs[:, None], n, axis=1), qs[:, None]], axis=1)
        return fam

    def render(self, row: np.ndarray) -> str:
        """E.g. ``x = 3 0 2 | i = 2 -> 0``."""
        r = np.asarray(row).reshape(-1)
        ans = self._row_answer(r)
        tail = "invalid" if ans is None else str(ans)
        data = " ".join(str(int(v)) for v in r[: self.n])
        return f"x = {data} | i = {int(r[-1])} -> {tail}"
