"""IsTree_n (Wen, Dang, Lyu, ICLR 2025, Thm 4.7) in the official rnn-icrag token formats.

Vocabulary (official, ids 0..15 in this order)::

    [ ] , - [PAD] [EOS] [TRUE] [FALSE] ' ' \\n [UNK] [BOS] [STARTSEARCH] [ENDSEARCH] [FAILED] ~

then vertex tokens ``0..n`` at ids ``16..16+n`` (``n + 1`` of them, as officially), so
``vocab_size(n) = n + 17``.  Prompt: ``[BOS] u - v u - v ... [EOS]`` with ``u > v`` per edge.

Formats (``S``/``E`` = ``[STARTSEARCH]``/``[ENDSEARCH]``; BRIEF.md):

* ``plain``: prompt + ``[TRUE]``/``[FALSE]``; only the label is supervised.
* ``cot``: prompt + the DFS Euler tour from 0 (neighbours in prompt-edge order; the parent is
  skipped; after a child returns the parent is written again), stopping at the first back edge
  without writing the revisited vertex, + ``[EOS]`` + label.  Every token after the first
  ``[EOS]`` is supervised.
* ``retrieval``: prompt + an explicit-stack DFS.  Each step writes ``v S v ~ E r`` (``r`` = the
  parent record of ``v`` or ``[FAILED]`` for the root); then ``S v - E x`` on the first visit
  (``x`` = v's first neighbour in prompt order) or ``S v - p E x`` after returning from child
  ``p`` (``x`` = the neighbour after ``p``, or ``[FAILED]``); if ``x`` is v's parent the query is
  repeated past it, ``S v - x E x'``.  ``x = [FAILED]``: pop.  A new ``x``:
  ``S x ~ E [FAILED] x ~ v`` (writes x's parent record) and ``x`` is pushed.  A visited ``x``:
  ``S x ~ E <its parent record>`` and the DFS stops (a cycle).  Then ``[EOS]`` + label.  The
  token right after every ``E`` is written by the retriever: ``retrieved_mask`` marks it and it
  is never a training target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rnngap.tasks.istree_graphs import (  # noqa: F401  (re-exported API)
    FAMILIES,
    adversarial_graphs,
    canonical_edges,
    count_edge_sets,
    enumerate_edge_sets,
    enumerate_ordered,
    is_tree,
    networkx_is_tree,
    official_label,
    sample_graphs,
)

SPECIALS: tuple[str, ...] = ("[", "]", ",", "-", "[PAD]", "[EOS]", "[TRUE]", "[FALSE]", " ",
                             "\n", "[UNK]", "[BOS]", "[STARTSEARCH]", "[ENDSEARCH]", "[FAILED]",
                             "~")
DASH, PAD, EOS, TRUE, FALSE, BOS, S, E, FAILED, TILDE = 3, 4, 5, 6, 7, 11, 12, 13, 14, 15
FIRST_VERTEX = len(SPECIALS)
FORMATS: tuple[str, ...] = ("plain", "cot", "retrieval")


def vocab_size(n: int) -> int:
    """``n + 17``: 16 specials and the vertex tokens ``0..n`` (official)."""
    return n + 17


def vertex_token(v: int) -> int:
    """Token id of vertex ``v`` (``16 + v``)."""
    return FIRST_VERTEX + int(v)


def token_vertex(tok: int) -> int | None:
    """The vertex a token denotes, or None for a special token."""
    return int(tok) - FIRST_VERTEX if tok >= FIRST_VERTEX else None


def token_str(tok: int) -> str:
    """The official string of a token id (vertex ids render as their number)."""
    tok = int(tok)
    if tok < 0:
        raise ValueError(f"negative token id {tok}")
    return SPECIALS[tok] if tok < FIRST_VERTEX else str(tok - FIRST_VERTEX)


def render(tokens: Sequence[int] | np.ndarray) -> str:
    """Tokens as readable text, space separated (``' '`` shows as ``' '``, newline as ``\\n``)."""
    return " ".join(repr(token_str(t)) if int(t) in (8, 9) else token_str(t)
                    for t in np.asarray(tokens).tolist())


@dataclass(frozen=True)
class Example:
    """One encoded instance.

    Attributes:
        tokens: (T,) int64 token ids.
        loss_mask: (T,) bool, True where the token is a supervised target.
        retrieved_mask: (T,) bool, True where the token is written by the retriever.
        prompt_len: number of tokens up to and including the first ``[EOS]``.
        label: the label written at the end.
    """

    tokens: np.ndarray
    loss_mask: np.ndarray
    retrieved_mask: np.ndarray
    prompt_len: int
    label: bool


def _adjacency(n: int, edges: np.ndarray) -> list[list[int]]:
    adj: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges.tolist():
        adj[u].append(v)
        adj[v].append(u)
    return adj


def prompt_tokens(n: int, edges: object) -> list[int]:
    """``[BOS] u - v ... [EOS]`` for a simple graph (validated, written with ``u > v``)."""
    arr = canonical_edges(n, edges)
    out = [BOS]
    for u, v in arr.tolist():
        out += [vertex_token(u), DASH, vertex_token(v)]
    return out + [EOS]


def euler_tour(n: int, edges: object) -> list[int]:
    """The ``cot`` chain of thought (vertex tokens only, without the closing ``[EOS]``).

    Iterative DFS from 0; a neighbour equal to the current parent is skipped; a visited
    neighbour ends the tour at once (official ``cycle_shut_down``); when a child finishes
    normally its parent is written again.
    """
    return euler_tour_canonical(n, canonical_edges(n, edges))


def euler_tour_canonical(n: int, arr: np.ndarray) -> list[int]:
    """:func:`euler_tour` of edges already in canonical form (``canonical_edges``): the
    batch path of learned/data.py calls it on the sampler's arrays without re-validating."""
    adj = _adjacency(n, arr)
    tour, visited = [0], [False] * n
    visited[0] = True
    vs, fas, its = [0], [-1], [0]           # the DFS stack: vertex, parent, next neighbour
    while vs:
        u, i = vs[-1], its[-1]
        au = adj[u]
        if i == len(au):
            vs.pop()
            fas.pop()
            its.pop()
            if vs:
                tour.append(vs[-1])
            continue
        its[-1] = i + 1
        y = au[i]
        if y == fas[-1]:
            continue
        if visited[y]:
            break
        visited[y] = True
        tour.append(y)
        vs.append(y)
        fas.append(u)
        its.append(0)
    return [FIRST_VERTEX + v for v in tour]


def retrieval_cot(n: int, edges: object) -> tuple[list[int], list[int]]:
    """The ``retrieval`` chain of thought, computed directly (reference for the parser).

    Returns:
        (tokens, retrieved): the tokens after the prompt, without the closing ``[EOS]`` and
        label, and the indices (into ``tokens``) of the tokens written by the retriever.
    """
    return retrieval_cot_canonical(n, canonical_edges(n, edges))


def retrieval_cot_canonical(n: int, arr: np.ndarray) -> tuple[list[int], list[int]]:
    """:func:`retrieval_cot` of edges already in canonical form (see
    :func:`euler_tour_canonical`). Written for speed (the training data path): -1 stands for
    "none" (``vt[-1]`` is the failure token) and tokens come from one table; the output is the
    same as the straightforward version's (checked on every edge set at n = 4, 5 and thousands
    of samples; tests compare with the official generator)."""
    adj = _adjacency(n, arr)
    vt = [FIRST_VERTEX + v for v in range(n)] + [FAILED]
    out: list[int] = []
    got: list[int] = []
    ext, mark = out.extend, got.append
    k = 0                                   # len(out), kept by hand (the tuples' sizes)
    stack, parent, prev = [0], {0: -1}, -1
    while stack:
        top = stack[-1]
        father = stack[-2] if len(stack) > 1 else -1
        t = vt[top]
        a = adj[top]
        ext((t, S, t, TILDE, E, vt[father]))     # ... then the retrieved father
        mark(k + 5)
        k += 6
        if prev == father:
            nxt = a[0] if a else -1
            ext((S, t, DASH, E, vt[nxt]))
            mark(k + 4)
            k += 5
        else:
            j = a.index(prev) + 1
            nxt = a[j] if j < len(a) else -1
            ext((S, t, DASH, vt[prev], E, vt[nxt]))
            mark(k + 5)
            k += 6
        if nxt >= 0 and nxt == father:
            j = a.index(nxt) + 1
            old, nxt = nxt, (a[j] if j < len(a) else -1)
            ext((S, t, DASH, vt[old], E, vt[nxt]))
            mark(k + 5)
            k += 6
        if nxt < 0:
            stack.pop()
            prev = top
            continue
        if nxt in parent:
            ext((S, vt[nxt], TILDE, E, vt[parent[nxt]]))
            mark(k + 4)
            break
        ext((S, vt[nxt], TILDE, E, FAILED, vt[nxt], TILDE, t))
        mark(k + 4)
        k += 8
        parent[nxt] = top
        stack.append(nxt)
        prev = top
    return out, got


def encode(n: int, edges: object, fmt: str = "plain", label: bool | None = None) -> Example:
    """Encode one graph in ``fmt`` (see the module docstring).

    Args:
        n: number of vertices.
        edges: (m, 2) edges in prompt order (any orientation; written with ``u > v``).
        fmt: ``plain``, ``cot`` or ``retrieval``.
        label: the label to write; default :func:`is_tree` (pass :func:`official_label`'s value
            to reproduce official data).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    arr = canonical_edges(n, edges)
    lab = is_tree(n, arr) if label is None else bool(label)
    prompt = prompt_tokens(n, arr)
    if fmt == "plain":
        cot, got = [], []
    elif fmt == "cot":
        cot, got = euler_tour(n, arr) + [EOS], []
    else:
        cot, got = retrieval_cot(n, arr)
        cot = cot + [EOS]
    tokens = np.array(prompt + cot + [TRUE if lab else FALSE], dtype=np.int64)
    retrieved = np.zeros(len(tokens), dtype=bool)
    retrieved[[len(prompt) + i for i in got]] = True
    loss = np.zeros(len(tokens), dtype=bool)
    loss[len(prompt):] = True
    loss &= ~retrieved
    return Example(tokens, loss, retrieved, len(prompt), lab)


@dataclass(frozen=True)
class Parsed:
    """A validated transcript: the graph, the chain of thought and the written label."""

    n: int
    edges: np.ndarray
    cot: np.ndarray
    label: bool


def _name(tok: int) -> str:
    return repr(token_str(tok)) if 0 <= tok else repr(tok)


def parse(n: int, tokens: Sequence[int] | np.ndarray, fmt: str, strict: bool = True,
          check_label: bool = True) -> Parsed:
    """Validate a transcript token for token; raise ``ValueError`` naming the first bad token.

    Checks: ``[BOS]``; edge triples ``u - v`` with ``n > u > v >= 0``, no duplicate; ``[EOS]``;
    exactly ``n - 1`` edges when ``strict``; for ``cot``/``retrieval`` the chain of thought must
    equal the reference (:func:`euler_tour` / :func:`retrieval_cot`) token for token, retrieved
    tokens included; then ``[EOS]``, a label token and nothing after it.  With ``check_label``
    the label must equal :func:`is_tree`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    toks = [int(t) for t in np.asarray(tokens, dtype=np.int64).reshape(-1).tolist()]
    hi = vocab_size(n)
    for i, t in enumerate(toks):
        if not 0 <= t < hi:
            raise ValueError(f"token {i}: id {t} outside the vocabulary 0..{hi - 1}")

    def expect(i: int, want: int | str) -> None:
        got = _name(toks[i]) if i < len(toks) else "end of input"
        raise ValueError(f"token {i}: expected {want if isinstance(want, str) else _name(want)},"
                         f" got {got}")

    if not toks or toks[0] != BOS:
        expect(0, BOS)
    i, edges, seen = 1, [], set()
    while i < len(toks) and toks[i] != EOS:
        u = token_vertex(toks[i])
        if u is None or u >= n:
            expect(i, f"a vertex 0..{n - 1} or '[EOS]'")
        if i + 1 >= len(toks) or toks[i + 1] != DASH:
            expect(i + 1, DASH)
        v = token_vertex(toks[i + 2]) if i + 2 < len(toks) else None
        if v is None or v >= u:
            expect(i + 2, f"a vertex below {u}")
        if (u, v) in seen:
            raise ValueError(f"token {i}: duplicate edge {u}-{v}")
        seen.add((u, v))
        edges.append((u, v))
        i += 3
    if i >= len(toks):
        expect(i, EOS)
    if strict and len(edges) != n - 1:
        raise ValueError(f"token {i}: the prompt has {len(edges)} edges, expected {n - 1}")
    arr = np.array(edges, dtype=np.int64).reshape(-1, 2)
    i += 1
    cot: list[int] = []
    if fmt != "plain":
        ref = (euler_tour(n, arr) if fmt == "cot" else retrieval_cot(n, arr)[0]) + [EOS]
        for k, want in enumerate(ref):
            if i + k >= len(toks) or toks[i + k] != want:
                expect(i + k, want)
        cot = ref[:-1]
        i += len(ref)
    if i >= len(toks) or toks[i] not in (TRUE, FALSE):
        expect(i, "'[TRUE]' or '[FALSE]'")
    if i + 1 != len(toks):
        raise ValueError(f"token {i + 1}: unexpected {_name(toks[i + 1])} after the label")
    label = toks[i] == TRUE
    if check_label and label != is_tree(n, arr):
        raise ValueError(f"token {i}: label {_name(toks[i])} is wrong for this graph")
    return Parsed(n, arr, np.array(cot, dtype=np.int64), label)
