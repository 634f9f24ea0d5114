"""Search for the least n where a monotone predicate turns true (failure lengths, ceilings)."""

from __future__ import annotations

from collections.abc import Callable


def least_true(pred: Callable[[int], bool], start: int, step: int, cap: int) -> int | None:
    """Least n on the grid start + step*i, n <= cap, with pred(n) (pred monotone), else None."""
    if pred(start):
        return start
    lo, hi = start, start + step
    while not pred(hi):
        if hi >= cap:
            return None
        lo, hi = hi, min(cap, start + 2 * (hi - start))
    return bisect_least(pred, lo, hi, step)


def bisect_least(pred: Callable[[int], bool], lo: int, hi: int, step: int = 1) -> int:
    """Least n on the grid lo + step*i, lo < n <= hi, with pred(n), by bisection; the caller
    knows pred(hi) (and takes pred(lo) to be false); pred monotone."""
    while hi - lo > step:
        mid = lo + ((hi - lo) // (2 * step)) * step
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi
