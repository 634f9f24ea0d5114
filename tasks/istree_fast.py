"""Compiled IsTree chains of thought for the training-data path (optional: ``pip install
'rnngap[fast]'``, i.e. numba).

The same two traversals as :func:`rnngap.tasks.istree.euler_tour_canonical` (``cot``) and
:func:`rnngap.tasks.istree.retrieval_cot_canonical` (``retrieval``), written as numba kernels
over a whole batch of canonical edge arrays: adjacency lists in prompt order, an explicit DFS
stack, the official rules (a neighbour equal to the parent is skipped; a visited neighbour ends
the transcript at once). They write the final token rows (prompt, chain of thought, ``[EOS]``,
label), the loss mask and the retrieved mask directly, in two passes (lengths, then tokens), so
the batch costs one call instead of a Python loop per graph. Tests compare every row with the
Python reference (tests/test_istree_fast.py); ``RNNGAP_NO_NUMBA=1`` turns the kernels off.

Why numba: at n = 64 the Python traversals cost 25 us (cot) and 70 us (retrieval) per graph,
the bulk of what kept the data rate below 20x the official generator's (issue 14); a GPU host
must not wait on them.
"""

from __future__ import annotations

import os

import numpy as np

from rnngap.tasks.istree import DASH, EOS, FAILED, FALSE, FIRST_VERTEX, PAD, TILDE, TRUE, E, S

try:  # optional dependency
    if os.environ.get("RNNGAP_NO_NUMBA") == "1":
        raise ImportError("disabled by RNNGAP_NO_NUMBA=1")
    from numba import njit
    AVAILABLE = True
except Exception:  # noqa: BLE001 -- absent, disabled, or a numba/llvmlite that fails to load
    AVAILABLE = False

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        def wrap(f):
            return f
        return wrap if not (args and callable(args[0])) else args[0]


@njit(cache=True)
def _adjacency(n, e, start, nb):
    """CSR adjacency of one graph in prompt order: the neighbours of x are
    nb[start[x]:start[x+1]], in the order ``istree._adjacency`` appends them."""
    m = e.shape[0]
    deg = np.zeros(n, np.int64)
    for k in range(m):
        deg[e[k, 0]] += 1
        deg[e[k, 1]] += 1
    start[0] = 0
    for x in range(n):
        start[x + 1] = start[x] + deg[x]
    fill = start[:n].copy()
    for k in range(m):
        u, v = e[k, 0], e[k, 1]
        nb[fill[u]] = v
        fill[u] += 1
        nb[fill[v]] = u
        fill[v] += 1


@njit(cache=True)
def _euler(n, start, nb, out, write):
    """The cot tour (vertex ids); returns its length; writes ``out`` only when ``write``."""
    visited = np.zeros(n, np.bool_)
    vs = np.empty(n, np.int64)
    fas = np.empty(n, np.int64)
    its = np.empty(n, np.int64)
    k = 0
    if write:
        out[0] = 0
    k = 1
    visited[0] = True
    top = 0
    vs[0], fas[0], its[0] = 0, -1, start[0]
    while top >= 0:
        u, i = vs[top], its[top]
        if i == start[u + 1]:
            top -= 1
            if top >= 0:
                if write:
                    out[k] = vs[top]
                k += 1
            continue
        its[top] = i + 1
        y = nb[i]
        if y == fas[top]:
            continue
        if visited[y]:
            break
        visited[y] = True
        if write:
            out[k] = y
        k += 1
        top += 1
        vs[top], fas[top], its[top] = y, u, start[y]
    return k


@njit(cache=True)
def _vt(x):
    return FIRST_VERTEX + x if x >= 0 else FAILED


@njit(cache=True)
def _next_after(start, nb, v, w):
    """The neighbour of v after the first occurrence of w in v's list, or -1 (none)."""
    for i in range(start[v], start[v + 1] - 1):
        if nb[i] == w:
            return nb[i + 1]
    return -1


@njit(cache=True)
def _ask_after(out, ret, k, t, w, nxt, write):
    """``S v - w E x``: the query for v's neighbour after w, answered x by the retriever."""
    if write:
        out[k], out[k + 1], out[k + 2], out[k + 3] = S, t, DASH, _vt(w)
        out[k + 4], out[k + 5] = E, _vt(nxt)
        ret[k + 5] = True
    return k + 6


@njit(cache=True)
def _retrieval(n, start, nb, out, ret, write):
    """The retrieval-format chain of thought; returns its length. ``ret[k]`` marks the tokens
    written by the retriever (only when ``write``)."""
    stack = np.empty(n + 1, np.int64)
    parent = np.full(n, -2, np.int64)        # -2: not visited; the root's parent is -1
    parent[0] = -1
    sp = 0
    stack[0] = 0
    prev = -1
    k = 0
    while sp >= 0:
        top = stack[sp]
        father = stack[sp - 1] if sp > 0 else -1
        t = _vt(top)
        if write:
            out[k], out[k + 1], out[k + 2], out[k + 3] = t, S, t, TILDE
            out[k + 4], out[k + 5] = E, _vt(father)
            ret[k + 5] = True
        k += 6
        if prev == father:
            nxt = nb[start[top]] if start[top + 1] > start[top] else -1
            if write:
                out[k], out[k + 1], out[k + 2], out[k + 3], out[k + 4] = S, t, DASH, E, _vt(nxt)
                ret[k + 4] = True
            k += 5
        else:
            nxt = _next_after(start, nb, top, prev)
            k = _ask_after(out, ret, k, t, prev, nxt, write)
        if nxt >= 0 and nxt == father:
            old = nxt
            nxt = _next_after(start, nb, top, old)
            k = _ask_after(out, ret, k, t, old, nxt, write)
        if nxt < 0:
            sp -= 1
            prev = top
            continue
        if parent[nxt] != -2:
            if write:
                out[k], out[k + 1], out[k + 2], out[k + 3] = S, _vt(nxt), TILDE, E
                out[k + 4] = _vt(parent[nxt])
                ret[k + 4] = True
            k += 5
            break
        if write:
            out[k], out[k + 1], out[k + 2], out[k + 3] = S, _vt(nxt), TILDE, E
            out[k + 4], out[k + 5], out[k + 6], out[k + 7] = FAILED, _vt(nxt), TILDE, t
            ret[k + 4] = True
        k += 8
        parent[nxt] = top
        sp += 1
        stack[sp] = nxt
        prev = top
    return k


@njit(cache=True)
def _batch(n, edges, head, labels, retrieval):
    """(tokens, loss, ret) of a batch: ``head`` (B, P) prompt rows ending in [EOS], edges
    (B, m, 2) canonical, labels (B,) bool; one pass for the lengths, one to write."""
    B, P = head.shape
    m = edges.shape[1]
    start = np.empty(n + 1, np.int64)
    nb = np.empty(2 * m, np.int64)
    scratch_t = np.empty(0, np.int64)
    scratch_r = np.empty(0, np.bool_)
    lens = np.empty(B, np.int64)
    for b in range(B):
        _adjacency(n, edges[b], start, nb)
        if retrieval:
            lens[b] = _retrieval(n, start, nb, scratch_t, scratch_r, False)
        else:
            lens[b] = _euler(n, start, nb, scratch_t, False)
    T = P + lens.max() + 2
    tokens = np.full((B, T), PAD, np.int64)
    loss = np.zeros((B, T), np.bool_)
    ret = np.zeros((B, T), np.bool_)
    for b in range(B):
        tokens[b, :P] = head[b]
        _adjacency(n, edges[b], start, nb)
        row = tokens[b, P:]
        rrow = ret[b, P:]
        if retrieval:
            _retrieval(n, start, nb, row, rrow, True)
        else:
            _euler(n, start, nb, row, True)
            for i in range(lens[b]):
                row[i] += FIRST_VERTEX
        end = P + lens[b]
        tokens[b, end] = EOS
        tokens[b, end + 1] = TRUE if labels[b] else FALSE
        for i in range(P, end + 2):
            loss[b, i] = not ret[b, i]
    return tokens, loss, ret


def cot_batch(n: int, edges: np.ndarray, head: np.ndarray, labels: np.ndarray, fmt: str):
    """(tokens, loss_mask, retrieved_mask) for ``fmt`` in (cot, retrieval); see :func:`_batch`.
    ValueError for arrays the kernels cannot take safely (numba does no bounds checks): edges
    (B, m, 2) with vertex ids in [0, n), head (B, P), labels (B,)."""
    edges = np.asarray(edges)
    if fmt not in ("cot", "retrieval"):
        raise ValueError(f"fmt must be cot or retrieval, got {fmt!r}")
    if edges.ndim != 3 or edges.shape[2] != 2 or len(head) != len(edges) \
            or len(labels) != len(edges) or np.ndim(head) != 2:
        raise ValueError("expected edges (B, m, 2), head (B, P) and labels (B,)")
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise ValueError(f"vertex ids must lie in [0, {n})")
    return _batch(n, np.ascontiguousarray(edges, np.int64), np.ascontiguousarray(head, np.int64),
                  np.ascontiguousarray(labels, np.bool_), fmt == "retrieval")
