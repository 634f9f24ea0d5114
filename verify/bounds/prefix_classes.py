"""Brute-force prefix classes: the one-way communication matrix of a finite task, enumerated.

Definitions (used by :mod:`rnngap.verify.bounds`, whose closed forms the tests check against this
module at tiny sizes).

* A *task instance set* is a finite list of pairs ``(w, a)``: a complete input ``w`` (a tuple of
  token ids, in the order a one-pass machine reads them) and its correct answer ``a``.
* A *cut* ``c`` splits every input into a prefix ``w[:c]`` and a continuation ``w[c:]``. The
  *row* of a prefix ``p`` is the partial function ``s -> answer(p + s)`` over the continuations
  ``s`` with ``p + s`` a valid input (a promise problem leaves the other cells empty).
* Two prefixes are *told apart* when some continuation valid for BOTH gives different answers.
  A deterministic one-pass machine that is correct on every valid input must send told-apart
  prefixes to different states (same state + same continuation = same answer).
* ``distinct_rows(c)``: the number of distinct rows (partial functions) at cut ``c``.
* ``fooling_number(c)``: the size of the largest set of prefixes that are pairwise told apart
  (a maximum clique of the told-apart graph). Any correct machine has at least this many states
  at cut ``c``, hence at least ``log2`` of it bits. For a total task (every continuation valid
  for every prefix) distinct rows are pairwise told apart and both numbers coincide.

Everything here is exhaustive and exponential: use it for tiny sizes only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

Row = dict[tuple[int, ...], int]


def rows_at_cut(instances: Iterable[tuple[Sequence[int], int]], cut: int) -> dict[tuple, Row]:
    """Map each prefix ``w[:cut]`` to its row ``{w[cut:]: answer}``."""
    table: dict[tuple, Row] = {}
    for word, answer in instances:
        w = tuple(word)
        row = table.setdefault(w[:cut], {})
        s = w[cut:]
        if s in row and row[s] != answer:
            raise ValueError(f"input {w} has two answers")
        row[s] = answer
    return table


def told_apart(r1: Row, r2: Row) -> bool:
    """True when some continuation valid for both rows gives different answers."""
    if len(r2) < len(r1):
        r1, r2 = r2, r1
    return any(s in r2 and r2[s] != a for s, a in r1.items())


def distinct_rows(table: dict[tuple, Row]) -> int:
    """Number of distinct rows (partial functions) in ``table``."""
    return len({frozenset(r.items()) for r in table.values()})


def is_total(table: dict[tuple, Row]) -> bool:
    """True when every prefix has the same set of valid continuations."""
    domains = {frozenset(r) for r in table.values()}
    return len(domains) <= 1


def fooling_number(table: dict[tuple, Row], max_nodes: int = 400) -> int:
    """Exact size of the largest pairwise-told-apart set of prefixes (maximum clique).

    Identical rows are never told apart, so they are merged first. For a total table the answer
    is the number of distinct rows. Otherwise an exact maximum clique is computed with networkx
    (exponential in the worst case; refuses more than ``max_nodes`` distinct rows).
    """
    uniq = list({frozenset(r.items()): r for r in table.values()}.values())
    if is_total(table):
        return len(uniq)
    if len(uniq) > max_nodes:
        raise ValueError(f"{len(uniq)} distinct rows: too many for an exact clique search "
                         f"(limit {max_nodes})")
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(len(uniq)))
    for i in range(len(uniq)):
        for j in range(i + 1, len(uniq)):
            if told_apart(uniq[i], uniq[j]):
                g.add_edge(i, j)
    clique, _ = nx.max_weight_clique(g, weight=None)
    return len(clique)


def worst_cut(instances: Sequence[tuple[Sequence[int], int]], measure: str = "fooling",
              cuts: Iterable[int] | None = None) -> tuple[int, int]:
    """Largest ``measure`` ("fooling" or "rows") over the given cuts: ``(value, cut)``."""
    if cuts is None:
        length = max(len(w) for w, _ in instances)
        cuts = range(length + 1)
    best = (0, 0)
    for c in cuts:
        table = rows_at_cut(instances, c)
        v = fooling_number(table) if measure == "fooling" else distinct_rows(table)
        if v > best[0]:
            best = (v, c)
    return best


def group_bound(table: dict[tuple, Row], key) -> tuple[int, bool]:
    """Upper-bound the fooling number by a grouping of prefixes that are pairwise compatible.

    Returns ``(number of groups, ok)``; ``ok`` is True when no two prefixes in the same group are
    told apart, in which case every pairwise-told-apart set takes at most one prefix per group,
    so the fooling number is at most the number of groups.
    """
    groups: dict = {}
    for p, r in table.items():
        groups.setdefault(key(p), []).append(r)
    for rows in groups.values():
        uniq = list({frozenset(r.items()): r for r in rows}.values())
        for i in range(len(uniq)):
            for j in range(i + 1, len(uniq)):
                if told_apart(uniq[i], uniq[j]):
                    return len(groups), False
    return len(groups), True


def is_fooling_set(table: dict[tuple, Row], prefixes: Sequence[tuple]) -> bool:
    """True when the given prefixes are pairwise told apart (a certificate of a lower bound)."""
    rows = [table[p] for p in prefixes]
    return all(told_apart(rows[i], rows[j])
               for i in range(len(rows)) for j in range(i + 1, len(rows)))


# --- tiny task enumerations (our own, independent of rnngap.tasks; conventions of tasks_api) ---

def _product(k: int, n: int):
    from itertools import product

    return product(range(k), repeat=n)


def index_instances(n: int, k: int, order: str = "last") -> list[tuple[tuple[int, ...], int]]:
    """Index_n over alphabet k: data x_1..x_n, query i in [1, n] (token i); answer x_i."""
    out = []
    for x in _product(k, n):
        for i in range(1, n + 1):
            w = (*x, i) if order == "last" else (i, *x)
            out.append((w, x[i - 1]))
    return out


def ar_instances(m: int, k: int, order: str = "last") -> list[tuple[tuple[int, ...], int]]:
    """AR with n = 2m: k_1 v_1 .. k_m v_m (keys distinct in [k]), query q a key; answer its value."""
    from itertools import permutations

    out = []
    for keys in permutations(range(k), m):
        for vals in _product(k, m):
            data = tuple(t for kv in zip(keys, vals) for t in kv)
            for q, v in zip(keys, vals):
                out.append(((*data, q) if order == "last" else (q, *data), v))
    return out


def cgram_answer(x: Sequence[int], y: Sequence[int]) -> int | None:
    """Token after the LAST occurrence of (c-1)-gram y in x with a following token, or None."""
    c1 = len(y)
    for s in range(len(x) - c1 - 1, -1, -1):
        if tuple(x[s:s + c1]) == tuple(y):
            return x[s + c1]
    return None


def cgram_instances(n: int, c: int, k: int, order: str = "last") -> list[tuple[tuple, int]]:
    """c-gram retrieval: data x_1..x_n, query y (c-1 tokens) occurring with a successor."""
    out = []
    for x in _product(k, n):
        seen = set()
        for s in range(n - c + 1):
            y = tuple(x[s:s + c - 1])
            if y in seen:
                continue
            seen.add(y)
            a = cgram_answer(x, y)
            out.append(((*x, *y) if order == "last" else (*y, *x), a))
    return out


def counting_instances(n: int, k: int, exact: bool = False, order: str = "last"
                       ) -> list[tuple[tuple, int]]:
    """Counting: data x_1..x_n, query q (and threshold t in [0, n] unless exact)."""
    out = []
    for x in _product(k, n):
        for q in range(k):
            cnt = sum(1 for t in x if t == q)
            queries = [((q,), cnt)] if exact else [((q, t), int(cnt > t)) for t in range(n + 1)]
            for qt, a in queries:
                out.append(((*x, *qt) if order == "last" else (*qt, *x), a))
    return out


def istree_tables(n: int, j: int) -> dict[tuple, Row]:
    """IsTree rows at the cut after j of the n-1 edges (distinct non-loop edges on 0..n-1).

    The answer does not depend on edge order, so prefixes and continuations are taken as sorted
    edge sets: every ordered prefix has the row of its set. Edge e is encoded as an int index.
    """
    from itertools import combinations

    from rnngap.tasks.istree_graphs import is_tree

    edges = list(combinations(range(n), 2))
    out: dict[tuple, Row] = {}
    for pre in combinations(range(len(edges)), j):
        rest = [e for e in range(len(edges)) if e not in pre]
        row: Row = {}
        for suf in combinations(rest, n - 1 - j):
            row[suf] = int(is_tree(n, [edges[e] for e in (*pre, *suf)]))
        out[pre] = row
    return out


# ----------------------------------------------------------------------------- the --brute check
BRUTE_LIMIT = 200_000
"""Most inputs :func:`brute_force` enumerates."""
BRUTE_ISTREE_MAX = 5
"""Largest IsTree n it enumerates."""


class TooLarge(ValueError):
    """The task at this size has too many prefixes or continuations to tabulate."""


def input_count(task: str, n: int, k: int) -> int:
    """How many inputs (IsTree: edge sets) :func:`brute_force` enumerates; ``k`` the alphabet."""
    if task == "ar":
        return math.perm(k, n // 2) * k ** (n // 2)
    if task == "istree":
        return math.comb(n * (n - 1) // 2, n - 1)
    return k**n * (k * (n + 1) if task == "counting" else max(k, n))


def brute_force(task: str, n: int, order: str, k: int, c: int) -> dict:
    """Every input of a tiny instance enumerated, against the closed form of
    ``verify.bounds.counts.count``: the largest set told apart pairwise (the fooling number) and
    the most distinct rows over every cut. ``agrees``: the fooling number equals the exact
    formula, or lies within its stated bounds. TooLarge when a table cannot be built."""
    from rnngap.verify.bounds import counts

    o = "last" if order == "query-last" else "first"
    size = input_count(task, n, k)
    ct = counts.count(task, n, order, None if task == "istree" else k, c)
    if task == "istree":
        best = max(((fooling_number(istree_tables(n, j)), j) for j in range(n)), default=(1, 0))
        rows = max(distinct_rows(istree_tables(n, j)) for j in range(n))
        inputs, cut = f"all {size} edge sets (edge order never matters)", f"after {best[1]} edges"
    else:
        inst = {"index": lambda: index_instances(n, k, o),
                "ar": lambda: ar_instances(n // 2, k, o),
                "cgram": lambda: cgram_instances(n, c, k, o),
                "counting": lambda: counting_instances(n, k, False, o),
                "counting-exact": lambda: counting_instances(n, k, True, o)}[task]()
        try:
            best, rows = worst_cut(inst), worst_cut(inst, "rows")[0]
        except ValueError as exc:
            raise TooLarge(str(exc)) from None
        inputs, cut = f"all {len(inst)} inputs", f"after {best[1]} tokens"
    value = best[0]
    ok = value == ct.prefix_classes if ct.exact else \
        ct.prefix_classes <= value <= (ct.upper or value)
    verdict = ("equals the formula" if ct.exact else "within the stated bounds") if ok else \
        "DISAGREES with the formula"
    return {"inputs": inputs, "fooling_number": value, "cut": cut, "distinct_rows": rows,
            "verdict": verdict, "agrees": ok, "formula": ct.prefix_classes}
