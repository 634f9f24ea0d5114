"""Counting_n (Wen, Dang, Lyu, ICLR 2025, Definition 4.5), threshold and exact forms.

Formal definition (as rnngap implements it).  Parameters: ``n >= 1`` data tokens, an alphabet
size ``k >= 1`` (default ``k = n + 1``: the lower bound needs the vocabulary to grow with n) and
the form.  Let ``cnt(x, q) = #{j in [1, n] : x_j = q}``.

* Threshold form (``exact=False``, Definition 4.5): the row ``x_1..x_n q t`` with ``x_j, q`` in
  ``[0, k)`` and ``t`` in ``[0, n]`` (a number token); the answer is ``1`` if
  ``cnt(x, q) > t`` (strictly more than t occurrences) else ``0``.  ``L = n + 2``; the input
  space has ``k**n * k * (n + 1)`` elements.
* Exact form (``exact=True``, an extra): the row ``x_1..x_n q``; the answer is the number token
  ``cnt(x, q)`` in ``[0, n]``.  ``L = n + 1``; ``k**n * k`` inputs.

Every row with tokens in those ranges is valid (q need not occur).  ``V = max(k, n + 1)``.

Sampler (NOT uniform over inputs; chosen so that both answers and boundary thresholds are
common).  Data ``x`` uniform on ``[0, k)^n``.  The query ``q``: with probability 1/2 the token
``x_j`` at a uniform position ``j in [1, n]`` (so q occurs), otherwise uniform on ``[0, k)``.
The threshold ``t`` (threshold form): with probability 1/2 uniform on ``[0, n]``; otherwise
``t = clip(cnt(x, q) - 1 + b, 0, n)`` with ``b`` a fair bit, i.e. the boundary cases
"count = t + 1" (answer 1) and "count = t" (answer 0).  Each choice uses its own independent
draw, in this order: x, position j, coin for q, uniform q, coin for t, uniform t, bit b.
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
class CountingTask(RetrievalTask):
    """Counting_n (Definition 4.5): ``x_1..x_n q t -> [#{j: x_j = q} > t]`` (or the count).

    Attributes:
        n: number of data tokens (>= 1).
        alphabet: alphabet size k (>= 1) of data and query; ``None`` means ``n + 1``.
        exact: if True, the row has no threshold and the answer is the count itself.
    """

    name: ClassVar[str] = "counting"
    convention: ClassVar[str] = (
        "row x_1..x_n q t (threshold form; t in [0,n]) -> 1 if #{j: x_j = q} > t else 0; "
        "exact form row x_1..x_n q -> #{j: x_j = q}")
    alphabet: int | None = None
    exact: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        k = self.n + 1 if self.alphabet is None else check_int("alphabet", self.alphabet, 1)
        if not isinstance(self.exact, bool | np.bool_):
            raise ValueError(f"counting: exact must be a bool, got {self.exact!r}")  # noqa: TRY004
        object.__setattr__(self, "alphabet", k)
        object.__setattr__(self, "exact", bool(self.exact))

    @property
    def k(self) -> int:
        """The alphabet size."""
        assert self.alphabet is not None
        return self.alphabet

    def vocab_size(self) -> int:
        """V = max(k, n + 1): tokens < k, thresholds and counts <= n."""
        return max(self.k, self.n + 1)

    def query_len(self) -> int:
        """1 (exact form: q) or 2 (threshold form: q, t)."""
        return 1 if self.exact else 2

    def is_valid(self, inputs: np.ndarray) -> np.ndarray:
        """Data and q in [0, k); t in [0, n] (threshold form)."""
        arr = self.as_inputs(inputs)
        ok = tokens_in_range(arr[:, : self.n + 1], 0, self.k)
        if not self.exact:
            ok &= (arr[:, -1] >= 0) & (arr[:, -1] <= self.n)
        return ok

    def _solve(self, inputs: np.ndarray) -> np.ndarray:
        counts = (inputs[:, : self.n] == inputs[:, self.n : self.n + 1]).sum(axis=1)
        if self.exact:
            return counts.astype(np.int64)
        return (counts > inputs[:, -1]).astype(np.int64)

    def sample(self, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The documented mixture (see the module docstring)."""
        batch, seed = check_batch_seed(batch, seed)
        rng = np.random.default_rng(seed)
        rows = np.arange(batch)
        data = rng.integers(0, self.k, size=(batch, self.n), dtype=np.int64)
        j = rng.integers(0, self.n, size=batch)
        from_data = rng.random(batch) < 0.5
        uniform_q = rng.integers(0, self.k, size=batch, dtype=np.int64)
        q = np.where(from_data, data[rows, j], uniform_q)
        cols = [data, q[:, None]]
        if not self.exact:
            counts = (data == q[:, None]).sum(axis=1)
            boundary = rng.random(batch) < 0.5
            uniform_t = rng.integers(0, self.n + 1, size=batch, dtype=np.int64)
            bit = rng.integers(0, 2, size=batch, dtype=np.int64)
            t = np.where(boundary, np.clip(counts - 1 + bit, 0, self.n), uniform_t)
            cols.append(t[:, None])
        inputs = np.concatenate(cols, axis=1).astype(np.int64)
        return inputs, self._solve(inputs)

    def num_inputs(self) -> int:
        """``k**n * k`` (exact form) times ``n + 1`` thresholds (threshold form)."""
        base = self.k ** (self.n + 1)
        return base if self.exact else base * (self.n + 1)

    def _enumerate(self, batch: int) -> Iterator[np.ndarray]:
        radices = [self.k] * (self.n + 1) + ([] if self.exact else [self.n + 1])
        for idx in index_batches(self.num_inputs(), batch):
            yield mixed_radix_digits(idx, radices)

    def _with_count(self, q: int, count: int, filler: int, t: int | None) -> np.ndarray:
        """A row whose first ``count`` data tokens are ``q`` and the rest ``filler``."""
        data = np.full(self.n, filler, dtype=np.int64)
        data[:count] = q
        tail = [q] if t is None else [q, t]
        return np.concatenate([data, np.asarray(tail, dtype=np.int64)])

    def _adversarial(self) -> dict[str, np.ndarray]:
        n, k = self.n, self.k
        top = k - 1
        other = 0 if top != 0 else None
        fam: dict[str, list[np.ndarray]] = {}

        def add(family: str, row: np.ndarray) -> None:
            fam.setdefault(family, []).append(row)

        if self.exact:
            for q in sorted({0, top}):
                add("all_equal_query", self._with_count(q, n, q, None))
            if other is not None:
                for cnt in range(n + 1):
                    add("count_each_value_max_token", self._with_count(top, cnt, other, None))
                add("query_absent", self._with_count(top, 0, other, None))
                alt = np.where(np.arange(n) % 2 == 0, top, other)
                add("alternating", np.concatenate([alt, [top]]))
                add("alternating", np.concatenate([alt, [other]]))
        else:
            add("all_equal_t_n_minus_1", self._with_count(top, n, top, n - 1))
            add("all_equal_t_n", self._with_count(top, n, top, n))
            if other is not None:
                for t in range(n):
                    # count exactly t + 1 (answer 1) and exactly t (answer 0), q = V-1 style max
                    add("count_t_plus_1", self._with_count(top, t + 1, other, t))
                    add("count_exactly_t", self._with_count(top, t, other, t))
                add("query_absent_t0", self._with_count(top, 0, other, 0))
                alt = np.where(np.arange(n) % 2 == 0, top, other)
                half = (n + 1) // 2
                for t in sorted({max(half - 1, 0), half}):
                    add("alternating", np.concatenate([alt, [top, t]]))
            # q and t are the same number token (only meaningful when that number is < k)
            for v in range(min(k, n + 1)):
                add("query_equals_threshold", self._with_count(v, v, (v + 1) % k, v))
                if v + 1 <= n:
                    add("query_equals_threshold", self._with_count(v, v + 1, (v + 1) % k, v))
        return {name: np.stack(rows) for name, rows in fam.items()}

    def render(self, row: np.ndarray) -> str:
        """E.g. ``x = 1 2 1 | q = 1, t = 1 -> 1``."""
        r = np.asarray(row).reshape(-1)
        ans = self._row_answer(r)
        data = " ".join(str(int(v)) for v in r[: self.n])
        query = f"q = {int(r[self.n])}" + ("" if self.exact else f", t = {int(r[-1])}")
        return f"x = {data} | {query} -> {'invalid' if ans is None else ans}"
