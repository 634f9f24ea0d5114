"""Accuracy ceilings when errors are allowed: Fano's inequality on the state after the data.

Setting (query-last order). The data X is drawn from a stated distribution, then one query. A
machine with S bits of state reaches state Z = Z(X) after the data (any number of states
<= 2**S, so H(Z) <= S; shared randomness independent of X changes nothing below). Its answer to
query j is a function of (Z, j).

Index_n over k symbols, X uniform on [k]^n, query i uniform on [n]. Let p_i = P(answer to i is
wrong). Fano: H(X_i | Z) <= h(p_i) + p_i log2(k-1), with h the binary entropy. Summing and using
sum_i H(X_i | Z) >= H(X | Z) >= H(X) - H(Z) >= n log2 k - S, and concavity of
phi(p) = h(p) + p log2(k-1), the average error p = mean(p_i) satisfies

    phi(p) >= log2 k - S / n.                                                     (*)

So accuracy <= 1 - p*(n), where p* is the least p in [0, 1 - 1/k] satisfying (*). For k = 2
this is the Kremer-Nisan-Ron bound (one-way randomized complexity of INDEX with error eps is at
least (1 - H2(eps)) n). Accuracy 1 forces S >= n log2 k, matching the exact count.

AR (n = 2m): keys any fixed-or-random distinct keys, values uniform on [k]^m independent of the
keys, query a uniform key: the same bound with (n, k) -> (m, k), conditioning on the keys.
c-gram: X uniform on the explicit fooling family of ``rnngap.verify.bounds.counts.cgram_family`` (m
blocks, values uniform over k - a symbols), query a uniform key: the bound with (m, k - a).

Counting (both forms), m = floor(n/2), needs k >= m + 1: a uniform bit vector b in {0,1}^m is
written as the data "symbol q repeated 1 + b_q times, for q = 0..m-1, then the filler symbol m
until length n"; the query is a uniform q in [0, m) with t = 1 (threshold form; the exact form
asks the count, 1 + b_q). The answer is b_q, so this is INDEX on m bits: (m, k=2).
IsTree, m = floor((n-2)/2) (unused vertices hang off vertex h): vertices h, z, a_i, b_i; the
data edges are h-a_i for every i, then a_i-b_i if b_i = 1 else z-b_i; the final edge, the
"query", is h-b_i for a uniform i. It closes a cycle iff b_i = 1, and otherwise joins the two
components into a tree: again INDEX on m bits. (Binary answers: no 50% level.)
:func:`counting_embedding` and :func:`istree_embedding` build these inputs; the tests solve them.
"""

from __future__ import annotations

import math

from rnngap.verify.search import least_true

LEVELS: tuple[float, ...] = (0.99, 0.9, 0.5)


def h2(p: float) -> float:
    """Binary entropy in bits."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def fano_phi(p: float, k: int) -> float:
    """phi(p) = h(p) + p log2(k-1): the most entropy a k-ary guess with error p leaves."""
    return h2(p) + (p * math.log2(k - 1) if k > 2 else 0.0)


def fano_ceiling(items: int, k: int, state_bits: float) -> float:
    """Best possible average accuracy: ``items`` uniform k-ary symbols, one asked, S bits kept.

    Returns 1 - p*, p* the least p in [0, 1-1/k] with phi(p) >= log2 k - S/items (bisection to
    1e-12; phi is increasing on that interval).
    """
    if k < 2 or items <= 0:
        return 1.0
    target = math.log2(k) - state_bits / items
    if target <= 0:
        return 1.0
    lo, hi = 0.0, 1.0 - 1.0 / k
    for _ in range(60):
        mid = (lo + hi) / 2
        if fano_phi(mid, k) >= target:
            hi = mid
        else:
            lo = mid
    return 1.0 - hi


def implied_bits(task: str, n: int, accuracy: float, alphabet: int | None = None,
                 c: int = 2) -> float | None:
    """The least state (bits) that Fano's inequality allows for average ``accuracy`` on the hard
    distribution of ``task`` at length n: items * (log2 k - phi(1 - accuracy)), the inverse of
    :func:`fano_ceiling` (0 at chance or below; items * log2 k at accuracy 1). None when the task
    has no such distribution at n. This is "the information the accuracy implies" that
    ``effective bits per state bit`` divides by a model's state bits."""
    pk = _params(task, n, alphabet, c)
    if pk is None:
        return None
    items, k = pk
    if k < 2 or items <= 0:
        return 0.0
    err = 1.0 - float(accuracy)
    if err >= 1.0 - 1.0 / k:
        return 0.0
    return max(0.0, items * (math.log2(k) - fano_phi(max(err, 0.0), k)))


def below(items: int, k: int, state_bits: float, level: float) -> bool:
    """True when Fano proves accuracy < ``level`` (phi(1 - level) < log2 k - S/items)."""
    if k < 2 or items <= 0 or level <= 1.0 / k:
        return False
    return fano_phi(1.0 - level, k) < math.log2(k) - state_bits / items


def _params(task: str, n: int, alphabet: int | None, c: int) -> tuple[int, int] | None:
    """(items, symbols) of the hard distribution for ``task`` at length n, or None."""
    k = n + 1 if alphabet is None else alphabet
    if task == "index":
        return n, k
    if task == "ar":
        return (n // 2, k) if n % 2 == 0 and k >= n // 2 else None
    if task == "cgram":
        from rnngap.verify.bounds.counts import cgram_family

        if n < c:
            return None
        a, m = cgram_family(n, c, k)
        return (m, k - a) if m and k - a >= 2 else None
    if task in ("counting", "counting-exact"):
        return (n // 2, 2) if n >= 2 and k >= n // 2 + 1 else None
    if task == "istree":
        return ((n - 2) // 2, 2) if n >= 4 else None
    return None


def counting_embedding(bits: tuple[int, ...], n: int) -> list[int]:
    """Counting data encoding ``bits`` (m = len(bits) <= n/2): q repeated 1 + b_q times, then
    the filler symbol m up to length n. Query (q, t=1) answers b_q."""
    m = len(bits)
    if 2 * m > n:
        raise ValueError("need n >= 2m")
    data = [q for q in range(m) for _ in range(1 + bits[q])]
    return data + [m] * (n - len(data))


def istree_embedding(bits: tuple[int, ...], n: int, i: int) -> list[tuple[int, int]]:
    """IsTree edges (u > v) on n >= 2m + 2 vertices encoding ``bits``, then the query edge h-b_i.

    Vertices: h = 0, z = 1, a_j = 2 + 2j, b_j = 3 + 2j; extra vertices hang off h. The result is
    a tree iff bits[i] == 0."""
    m = len(bits)
    if n < 2 * m + 2:
        raise ValueError("need n >= 2m + 2")
    edges = [(2 + 2 * j, 0) for j in range(m)]
    edges += [(3 + 2 * j, 2 + 2 * j) if bits[j] else (3 + 2 * j, 1) for j in range(m)]
    edges += [(v, 0) for v in range(2 * m + 2, n)]
    return edges + [(3 + 2 * i, 0)]


DISTRIBUTION: dict[str, str] = {
    "index": "data uniform on [k]^n, query uniform on [1, n]",
    "ar": "keys distinct (any law), values uniform on [k]^(n/2), query a uniform key",
    "cgram": "uniform on the fooling family (fixed keys, uniform values), query a uniform key",
    "counting": "uniform bits b in {0,1}^(n/2): symbol q written 1+b_q times; query (q, t=1)",
    "counting-exact": "uniform bits b in {0,1}^(n/2): symbol q written 1+b_q times; query q",
    "istree": "uniform bits b in {0,1}^((n-2)/2) as a two-component forest; last edge h-b_i",
}


def ceiling(task: str, n: int, state_bits: float, alphabet: int | None = None, c: int = 2
            ) -> float | None:
    """Fano accuracy ceiling at length n (query-last), or None if not derived for ``task``."""
    p = _params(task, n, alphabet, c)
    return None if p is None else fano_ceiling(p[0], p[1], state_bits)


def ceiling_lengths(task: str, state_bits: float, alphabet: int | None = None, c: int = 2,
                    levels: tuple[float, ...] = LEVELS) -> dict[str, int | None] | None:
    """For each level a, the least valid n at which the ceiling is below a (None: never found).

    The condition is monotone in n for these distributions (tests check it on a grid), so a
    doubling search plus bisection is exact. Returns None when ``task`` has no ceiling here.
    """
    if task not in DISTRIBUTION:
        return None
    step = 2 if task == "ar" else 1
    start = max(step, c if task == "cgram" else 1)
    out: dict[str, int | None] = {}
    for level in levels:
        def bad(n: int, level: float = level) -> bool:
            p = _params(task, n, alphabet, c)
            return p is not None and below(p[0], p[1], state_bits, level)
        out[str(level)] = least_true(bad, start, step, cap=2 ** 40)
    return out


