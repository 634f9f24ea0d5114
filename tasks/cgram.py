"""c-gram retrieval (Wen, Dang, Lyu, ICLR 2025, Definition 4.4).

Formal definition (as rnngap implements it).  Parameters: a constant ``c >= 2``, ``n >= c`` data
tokens and an alphabet size ``k >= 1`` (default ``k = n + 1``).  An input is the row::

    x_1 ... x_n  y_1 ... y_{c-1}          all tokens in [0, k)

and it is VALID iff some start ``s in [1, n-c+1]`` has ``x_s..x_{s+c-2} = y_1..y_{c-1}``, i.e. the
query (c-1)-gram is the prefix of a c-gram ``x_s..x_{s+c-1}`` of the data.  Occurrences of ``y``
that end at ``x_n`` have no following token and do not count.  Convention for repeated
occurrences: the answer is ``x_{s*+c-1}`` for the LARGEST such ``s`` (the last occurrence that
has a following token).  Occurrences may overlap.

Sizes: ``V = k``, ``L = n + c - 1``.  ``num_inputs`` counts the valid rows exactly:
``k * sum_y (k**(n-1) - A_y(n-1))``, where ``A_y(N)`` is the number of length-``N`` strings that
avoid ``y``.  By Guibas and Odlyzko (1981, "String overlaps, pattern matching, and
nontransitive games"), ``sum_N A_y(N) z^N = C_y(z) / (z^m + (1 - k z) C_y(z))`` with
``m = c - 1`` and ``C_y`` the autocorrelation polynomial of ``y``; ``C_y`` depends only on the
equality pattern of ``y``, so the sum runs over set partitions of ``m`` positions (restricted
growth strings), each standing for ``k (k-1) .. (k-r+1)`` words with ``r`` distinct letters.

Sampler (NOT uniform over valid inputs): ``x`` uniform on ``[0, k)^n``, a start ``s`` uniform on
``[1, n-c+1]``, query ``y = x_s..x_{s+c-2}``; the answer is then computed by the convention
above (it may come from a later occurrence than ``s``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rnngap.tasks.base import (
    RetrievalTask,
    check_batch_seed,
    check_int,
    index_batches,
    mixed_radix_digits,
    rechunk,
    tokens_in_range,
)


def restricted_growth_strings(m: int, max_letters: int) -> Iterator[tuple[int, ...]]:
    """Set partitions of ``m`` positions with at most ``max_letters`` blocks, as RGS tuples."""
    def grow(prefix: list[int], top: int) -> Iterator[tuple[int, ...]]:
        if len(prefix) == m:
            yield tuple(prefix)
            return
        for letter in range(min(top + 2, max_letters)):
            yield from grow(prefix + [letter], max(top, letter))
    yield from grow([], -1)


def _power_series_count(corr: list[int], m: int, k: int, length: int) -> int:
    """Number of length-``length`` words over ``k`` letters avoiding a pattern of length ``m``
    whose autocorrelation coefficients are ``corr`` (``corr[0] = 1``), by Guibas-Odlyzko.

    With ``D(z) = z^m + (1 - k z) C(z)`` (``D_0 = 1``), the series ``A = C / D`` obeys
    ``a_N = C_N - sum_{i=1..m} D_i a_{N-i}``; for ``N >= m`` it is a linear recurrence of order
    ``m``, evaluated by repeated squaring of its companion matrix.
    """
    d = [0] * (m + 1)
    for i, ci in enumerate(corr):
        d[i] += ci
        d[i + 1] -= k * ci
    d[m] += 1
    a: list[int] = []
    for big_n in range(min(length, m - 1) + 1):
        cn = corr[big_n] if big_n < len(corr) else 0
        a.append(cn - sum(d[i] * a[big_n - i] for i in range(1, big_n + 1)))
    if length < m:
        return a[length]
    # state (a_{N}, a_{N-1}, .., a_{N-m+1}) -> next; start at N = m-1
    mat = [[-d[i + 1] for i in range(m)]] + [[int(col == row) for col in range(m)]
                                             for row in range(m - 1)]
    vec = a[::-1]
    steps = length - (m - 1)
    result = _mat_pow(mat, steps)
    return sum(result[0][j] * vec[j] for j in range(m))


def _mat_pow(mat: list[list[int]], e: int) -> list[list[int]]:
    size = len(mat)
    out = [[int(i == j) for j in range(size)] for i in range(size)]
    base = mat
    while e:
        if e & 1:
            out = _mat_mul(out, base)
        base = _mat_mul(base, base)
        e >>= 1
    return out


def _mat_mul(a: list[list[int]], b: list[list[int]]) -> list[list[int]]:
    size = len(a)
    return [[sum(a[i][t] * b[t][j] for t in range(size)) for j in range(size)]
            for i in range(size)]


def count_containing(m: int, k: int, length: int) -> int:
    """``sum over y in [0,k)^m`` of the number of words in ``[0,k)^length`` containing ``y``."""
    total = 0
    for rgs in restricted_growth_strings(m, k):
        letters = max(rgs) + 1
        corr = [int(rgs[i:] == rgs[: m - i]) for i in range(m)]
        avoid = _power_series_count(corr, m, k, length)
        total += math.perm(k, letters) * (k**length - avoid)
    return total


@dataclass(frozen=True)
class CGramTask(RetrievalTask):
    """c-gram retrieval (Definition 4.4): the token after the LAST occurrence of the query.

    Attributes:
        n: number of data tokens (>= c).
        c: gram length (>= 2); the query has c-1 tokens.
        alphabet: alphabet size k (>= 1); ``None`` means ``n + 1``.
    """

    name: ClassVar[str] = "cgram"
    convention: ClassVar[str] = (
        "row x_1..x_n y_1..y_{c-1}; valid iff y = x_s..x_{s+c-2} for some s <= n-c+1; "
        "the answer is x_{s+c-1} for the largest such s")
    c: int = 2
    alphabet: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        c = check_int("c", self.c, 2)
        if self.n < c:
            raise ValueError(f"cgram: n must be >= c = {c}, got {self.n}")
        k = self.n + 1 if self.alphabet is None else check_int("alphabet", self.alphabet, 1)
        object.__setattr__(self, "c", c)
        object.__setattr__(self, "alphabet", k)

    @property
    def k(self) -> int:
        """The alphabet size."""
        assert self.alphabet is not None
        return self.alphabet

    def vocab_size(self) -> int:
        """V = k."""
        return self.k

    def query_len(self) -> int:
        """c - 1 query tokens."""
        return self.c - 1

    def _matches(self, arr: np.ndarray) -> np.ndarray:
        """(B, n-c+1) bool: ``match[b, s-1]`` iff the query occurs at start s (s <= n-c+1)."""
        m = self.c - 1
        windows = sliding_window_view(arr[:, : self.n - 1], m, axis=1)
        return (windows == arr[:, None, self.n :]).all(axis=2)

    def is_valid(self, inputs: np.ndarray) -> np.ndarray:
        """Tokens in [0, k) and the query occurs at some start s in [1, n-c+1]."""
        arr = self.as_inputs(inputs)
        return tokens_in_range(arr, 0, self.k) & self._matches(arr).any(axis=1)

    def _solve(self, inputs: np.ndarray) -> np.ndarray:
        match = self._matches(inputs)
        starts = match.shape[1]
        last = starts - 1 - np.argmax(match[:, ::-1], axis=1)        # 0-based s* - 1
        return inputs[np.arange(inputs.shape[0]), last + self.c - 1]

    def sample(self, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform data, query = the (c-1)-prefix of the c-gram at a uniform start."""
        batch, seed = check_batch_seed(batch, seed)
        rng = np.random.default_rng(seed)
        data = rng.integers(0, self.k, size=(batch, self.n), dtype=np.int64)
        start = rng.integers(0, self.n - self.c + 1, size=batch)
        cols = start[:, None] + np.arange(self.c - 1)[None, :]
        query = data[np.arange(batch)[:, None], cols]
        inputs = np.concatenate([data, query], axis=1)
        return inputs, self._solve(inputs)

    def num_inputs(self) -> int:
        """Exact count of valid rows (Guibas-Odlyzko; see the module docstring)."""
        return self.k * count_containing(self.c - 1, self.k, self.n - 1)

    def _enumerate(self, batch: int) -> Iterator[np.ndarray]:
        # For each data row x (lexicographic), each distinct query that occurs, in order of
        # first occurrence: the pair (x, y) is emitted at the first start s where y occurs.
        m = self.c - 1
        starts = self.n - self.c + 1
        step = max(1, batch // starts)

        def blocks() -> Iterator[np.ndarray]:
            for idx in index_batches(self.k**self.n, step):
                data = mixed_radix_digits(idx, [self.k] * self.n)
                grams = sliding_window_view(data[:, : self.n - 1], m, axis=1)   # (b, S, m)
                same = (grams[:, :, None, :] == grams[:, None, :, :]).all(axis=3)
                first = ~np.tril(same, k=-1).any(axis=2)                         # (b, S)
                b_idx, s_idx = np.nonzero(first)
                yield np.concatenate([data[b_idx], grams[b_idx, s_idx]], axis=1)

        return rechunk(blocks(), batch)

    def _adversarial(self) -> dict[str, np.ndarray]:
        n, c, k = self.n, self.c, self.k
        m, top = c - 1, k - 1
        pos = np.arange(n, dtype=np.int64)
        fam: dict[str, list[np.ndarray]] = {}

        def add(family: str, data: np.ndarray, query: np.ndarray) -> None:
            """Keep the candidate row only if it is valid for these parameters."""
            row = np.concatenate([data, query]).astype(np.int64)
            if self.is_valid(row[None])[0]:
                fam.setdefault(family, []).append(row)

        for v in sorted({0, top}):
            add("all_equal", np.full(n, v), np.full(m, v))
        # x_s = s mod k: query every gram start (first and last possible included)
        ramp = pos % k
        for s in range(n - c + 1):
            add("ramp_every_start", ramp, ramp[s : s + m])
        add("query_at_first_start", ramp, ramp[:m])
        add("query_at_last_start", ramp, ramp[n - c : n - 1])
        add("max_descending", top - ramp, (top - ramp)[n - c : n - 1])
        if k >= 2:
            alt = np.where(pos % 2 == 0, 0, top)
            for s in range(min(2, n - c + 1)):
                add("alternating", alt, alt[s : s + m])
            # the query also occurs ending at x_n (no follower): only an earlier one counts
            tail = np.zeros(n, np.int64)
            tail[n - m :] = top
            tail[0:m] = top
            tail[m] = 1 % k
            add("occurrence_at_end_ignored", tail, np.full(m, top))
            # grams sharing the first c-2 tokens, differing only in the last query token:
            # blocks 0..0 t_j f_j with distinct t_j; query each block's (c-1)-gram
            blocks = [np.concatenate([np.zeros(m - 1, np.int64), [top - j % k, j % k]])
                      for j in range(n // c + 1)]
            near = np.concatenate(blocks)[:n]
            for j in range(n // c + 1):
                add("differ_in_last_token", near, blocks[j][:m])
            # repeated occurrences with different followers: the LAST one must be reported
            follow = np.zeros(n, np.int64)
            follow[m::c] = np.arange(len(follow[m::c])) % (k - 1) + 1
            add("repeated_different_followers", follow, np.zeros(m, np.int64))
        return {name: np.stack(rows) for name, rows in fam.items()}

    def render(self, row: np.ndarray) -> str:
        """E.g. ``x = 1 2 1 3 | y = 1 -> 3``."""
        r = np.asarray(row).reshape(-1)
        ans = self._row_answer(r)
        data = " ".join(str(int(v)) for v in r[: self.n])
        query = " ".join(str(int(v)) for v in r[self.n :])
        return f"x = {data} | y = {query} -> {'invalid' if ans is None else ans}"
