"""IsTree graphs: labels, the official samplers (done correctly by default), enumerators, adversaries.

A graph instance is ``(n, edges)``: vertices ``0..n-1`` and an ``(m, 2)`` int64 array of edges
in *prompt order*, each row ``(u, v)`` with ``u > v`` (the official rnn-icrag convention).
IsTree_n (Wen, Dang, Lyu, ICLR 2025, Thm 4.7) asks whether the graph is a tree, i.e. has
exactly ``n - 1`` edges, is connected and is acyclic (any two of the three imply the third).

The official graph families of dangxingyu/rnn-icrag (``rnn/data.py``) are reproduced as facts,
not code.  Their defects (BRIEF.md) are available only with ``official_quirks=True``:

* ``"binary"``: two star centres ``perm[0], perm[1]``; every other vertex joins one of them with
  probability 1/2; one extra edge ``perm[i] - perm[i+1]`` with ``i`` uniform in ``[2, n-2]``.
  Always ``n - 1`` distinct non-loop edges; a tree exactly when the extra edge joins the two
  stars.  The official generator has no defect here, so both modes sample alike; only the
  label function differs (identical on these graphs).
* ``"random"``: with probability 1/2 a uniform-attachment tree (``perm[i]`` joins ``perm[j]``, ``j``
  uniform in ``[0, i)``).  Otherwise, *correctly*: one vertex ``z`` (uniform) stays isolated, a
  uniform-attachment tree spans the other ``n - 1`` vertices (``n - 2`` edges) and one extra
  edge joins two attached vertices that are not yet adjacent (uniform among such pairs), so the
  graph has ``n - 1`` edges, a cycle and an isolated vertex.  With ``official_quirks=True`` the
  official non-tree half is reproduced: index ``r`` uniform in ``[1, n)``; every index ``i != r``
  joins ``perm[i]`` to ``perm[f]`` with ``f`` uniform in ``[0, n)`` (self-loops silently dropped,
  duplicates collapsed, ``perm[r]`` may get attached by others), then an extra edge ``{a, b}``
  with ``a != b``, not present, and ``a, b != r`` compared as *vertex ids* (the official mix-up of
  an index with a vertex); labels come from :func:`official_label`.

Prompt order is a uniform random permutation of the edge set in both modes (as officially).
Every sampler takes a seed (``numpy.random.default_rng``); same seed, same bytes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

FAMILIES: tuple[str, ...] = ("binary", "random")
MIN_SAMPLE_N = 4
"""Both families need n >= 4 (an extra edge between two non-centre / attached vertices)."""


def canonical_edges(n: int, edges: object) -> np.ndarray:
    """Return ``edges`` as an ``(m, 2)`` int64 array with ``u > v`` in every row (order kept).

    Raises ``ValueError`` for a bad shape, a vertex outside ``0..n-1``, a self-loop or a
    duplicate edge (in either orientation).
    """
    arr = np.asarray(edges, dtype=np.int64)
    if arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"edges must have shape (m, 2), got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"vertex ids must lie in 0..{n - 1}")
    if np.any(arr[:, 0] == arr[:, 1]):
        i = int(np.flatnonzero(arr[:, 0] == arr[:, 1])[0])
        raise ValueError(f"edge {i} is a self-loop {arr[i, 0]}-{arr[i, 1]}")
    out = np.stack([arr.max(axis=1), arr.min(axis=1)], axis=1) if len(arr) else arr
    keys = out[:, 0] * n + out[:, 1]
    if len(np.unique(keys)) != len(keys):
        raise ValueError("duplicate edge")
    return out


def _find(parent: list[int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def is_tree(n: int, edges: object) -> bool:
    """The correct IsTree label: exactly ``n - 1`` edges, connected and acyclic (union-find).

    ``edges`` may contain anything of shape (m, 2) over ``0..n-1``; a self-loop or a repeated
    edge closes a cycle and so makes the answer False.
    """
    arr = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if len(arr) != n - 1:
        return False
    parent = list(range(n))
    for u, v in arr.tolist():
        ru, rv = _find(parent, u), _find(parent, v)
        if ru == rv:
            return False
        parent[ru] = rv
    return True


def networkx_is_tree(n: int, edges: object) -> bool:
    """networkx's ``is_tree`` of the simple graph on 0..n-1 with ``edges``: the oracle, independent
    of :func:`is_tree`'s union-find, that the verifiers check every decoder's verdict against."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(np.asarray(edges).tolist())
    return nx.is_tree(g)


def official_label(n: int, edges: object) -> bool:
    """The official rnn-icrag label (compatibility only): every vertex is reachable from 0.

    It ignores cycles and the edge count, so it is wrong on e.g. a connected graph with n edges.
    """
    adj: list[list[int]] = [[] for _ in range(n)]
    for u, v in np.asarray(edges, dtype=np.int64).reshape(-1, 2).tolist():
        adj[u].append(v)
        adj[v].append(u)
    seen = {0}
    todo = [0]
    while todo:
        for y in adj[todo.pop()]:
            if y not in seen:
                seen.add(y)
                todo.append(y)
    return len(seen) == n


def _attachment_tree(order: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Uniform attachment: ``order[i]`` joins ``order[j]`` for ``j`` uniform in ``[0, i)``."""
    return [(int(order[i]), int(order[rng.integers(0, i)])) for i in range(1, len(order))]


def _binary(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    perm = rng.permutation(n)
    side = rng.random(n - 2) < 0.5
    edges = [(int(perm[i]), int(perm[0] if side[i - 2] else perm[1])) for i in range(2, n)]
    i = int(rng.integers(2, n - 1))
    edges.append((int(perm[i]), int(perm[i + 1])))
    return edges


def _random_correct(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    if rng.random() < 0.5:
        return _attachment_tree(rng.permutation(n), rng)
    z = int(rng.integers(0, n))
    others = rng.permutation(np.array([v for v in range(n) if v != z], dtype=np.int64))
    edges = _attachment_tree(others, rng)
    present = {(max(a, b), min(a, b)) for a, b in edges}
    k = len(others)
    while True:  # a tree on k >= 3 vertices misses at least one pair: rejection terminates
        a, b = (int(others[t]) for t in rng.integers(0, k, size=2))
        if a != b and (max(a, b), min(a, b)) not in present:
            edges.append((a, b))
            return edges


def _random_official(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    if rng.random() < 0.5:
        return _attachment_tree(rng.permutation(n), rng)
    r = int(rng.integers(1, n))
    perm = rng.permutation(n)
    present: set[tuple[int, int]] = set()
    for i in range(n):
        if i != r:
            a, b = int(perm[int(rng.integers(0, n))]), int(perm[i])
            if a != b:  # the official adjacency matrix keeps the diagonal but never emits it
                present.add((max(a, b), min(a, b)))
    while True:
        a, b = (int(x) for x in rng.integers(0, n, size=2))
        if a != b and (max(a, b), min(a, b)) not in present and r not in (a, b):
            present.add((max(a, b), min(a, b)))
            return sorted(present)


def sample_graphs(n: int, batch: int, family: str = "binary", seed: int = 0,
                  official_quirks: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """Sample ``batch`` graphs of an official family (see the module docstring).

    Returns:
        (edges, labels): a list of ``(m, 2)`` int64 arrays (``u > v`` per row, rows in the
        random prompt order) and a ``(batch,)`` bool array: :func:`is_tree` by default,
        :func:`official_label` with ``official_quirks=True``.  Without quirks every sample has
        exactly ``n - 1`` distinct non-loop edges.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    if isinstance(n, bool) or int(n) != n or n < MIN_SAMPLE_N:
        raise ValueError(f"n must be an integer >= {MIN_SAMPLE_N}, got {n!r}")
    if batch < 1 or seed < 0:
        raise ValueError("batch must be >= 1 and seed >= 0")
    rng = np.random.default_rng(seed)
    if family == "binary" and not official_quirks:
        return _sample_binary(n, batch, rng)
    gen = _binary if family == "binary" else (_random_official if official_quirks
                                              else _random_correct)
    label = official_label if official_quirks else is_tree
    out: list[np.ndarray] = []
    labels = np.zeros(batch, dtype=bool)
    for b in range(batch):
        raw = gen(n, rng)
        arr = np.array([(max(a, c), min(a, c)) for a, c in raw], dtype=np.int64).reshape(-1, 2)
        arr = arr[np.lexsort((arr[:, 1], arr[:, 0]))]  # canonical order, then a random order
        arr = arr[rng.permutation(len(arr))]
        out.append(arr)
        labels[b] = label(n, arr)
    return out, labels


def _sample_binary(n: int, batch: int, rng: np.random.Generator
                   ) -> tuple[list[np.ndarray], np.ndarray]:
    """The binary family of :func:`sample_graphs` with numpy instead of Python lists: the same
    random draws in the same order as :func:`_binary` followed by the shuffle, so the same
    graphs for every seed (a test compares). Label in closed form: the leaves ``perm[2:]``
    hang off the hubs ``perm[0]``/``perm[1]`` and the extra edge joins the leaves ``perm[i]``
    and ``perm[i+1]``; it connects the two stars (a tree) iff they hang off different hubs,
    otherwise it closes a triangle and the other star stays apart (not a tree)."""
    m = n - 1
    perm = np.empty((batch, n), dtype=np.int64)
    side = np.empty((batch, n - 2), dtype=bool)
    ext = np.empty(batch, dtype=np.int64)
    shuffle = np.empty((batch, m), dtype=np.int64)
    for b in range(batch):          # the draws, in _binary's order; the rest for all at once
        perm[b] = rng.permutation(n)
        side[b] = rng.random(n - 2) < 0.5
        ext[b] = rng.integers(2, n - 1)
        shuffle[b] = rng.permutation(m)
    rows = np.arange(batch)
    a = np.concatenate([perm[:, 2:], perm[rows, ext][:, None]], axis=1)
    c = np.concatenate([np.where(side, perm[:, :1], perm[:, 1:2]),
                        perm[rows, ext + 1][:, None]], axis=1)
    hi, lo = np.maximum(a, c), np.minimum(a, c)
    order = np.argsort(hi * n + lo, axis=1)     # = lexsort by (u, v): the keys are distinct
    order = np.take_along_axis(order, shuffle, axis=1)
    arr = np.stack([np.take_along_axis(hi, order, 1), np.take_along_axis(lo, order, 1)], axis=2)
    labels = side[rows, ext - 2] != side[rows, ext - 1]
    return list(arr), labels


def all_pairs(n: int) -> list[tuple[int, int]]:
    """Every possible edge ``(u, v)`` with ``n > u > v >= 0``, lexicographically."""
    return [(u, v) for u in range(n) for v in range(u)]


def count_edge_sets(n: int) -> int:
    """Number of sets of ``n - 1`` distinct non-loop edges on ``n`` vertices: C(C(n,2), n-1)."""
    return math.comb(n * (n - 1) // 2, n - 1)


def enumerate_edge_sets(n: int) -> Iterator[np.ndarray]:
    """Every set of ``n - 1`` distinct non-loop edges on ``0..n-1``, each once, rows sorted."""
    pairs = all_pairs(n)
    for combo in itertools.combinations(pairs, n - 1):
        yield np.array(combo, dtype=np.int64).reshape(-1, 2)


def enumerate_ordered(n: int) -> Iterator[np.ndarray]:
    """Every edge set of :func:`enumerate_edge_sets` in every prompt order ((n-1)! each)."""
    for edges in enumerate_edge_sets(n):
        for perm in itertools.permutations(range(len(edges))):
            yield edges[list(perm)]


def adversarial_graphs(n: int) -> dict[str, np.ndarray]:
    """Hand-made hard instances (n >= 4), each ``n - 1`` edges with ``u > v``, prompt order fixed.

    Paths (deep DFS, increasing and reversed prompt order), stars (centre 0 and centre n-1),
    a heap-shaped binary tree, a cycle through 0 plus an isolated vertex, a cycle away from 0
    with 0 isolated, a long path ending in a triangle (back edge found deep in the DFS) with an
    isolated vertex, and a path whose prompt order lists the parent edges last.
    """
    if n < MIN_SAMPLE_N:
        raise ValueError(f"adversarial graphs need n >= {MIN_SAMPLE_N}")
    path = [(i, i - 1) for i in range(1, n)]
    fams = {
        "path": path,
        "path_reversed_order": path[::-1],
        "star_centre_0": [(i, 0) for i in range(1, n)],
        "star_centre_last": [(n - 1, i) for i in range(n - 1)],
        "heap_tree": [(i, (i - 1) // 2) for i in range(1, n)],
        "cycle_through_0_plus_isolated": [(i, i - 1) for i in range(1, n - 1)] + [(n - 2, 0)],
        "cycle_plus_isolated_0": [(i, i - 1) for i in range(2, n)] + [(n - 1, 1)],
        "deep_triangle_plus_isolated": [(i, i - 1) for i in range(1, n - 1)] + [(n - 2, n - 4)],
        "zigzag_path": [(max(a, b), min(a, b)) for a, b in
                        zip(_zigzag(n), _zigzag(n)[1:])],
    }
    out = {k: np.array(v, dtype=np.int64).reshape(-1, 2) for k, v in fams.items()}
    for name, arr in out.items():
        canonical_edges(n, arr)  # raises if a family is malformed for this n
        assert len(arr) == n - 1, name
    return out


def _zigzag(n: int) -> list[int]:
    """0, n-1, 1, n-2, ...: a Hamiltonian path whose edges jump across the vertex range."""
    lo, hi, out = 0, n - 1, []
    while lo <= hi:
        out.append(lo)
        if lo != hi:
            out.append(hi)
        lo, hi = lo + 1, hi - 1
    return out
