"""IsTree prefix classes: set partitions (Stirling numbers of the second kind) plus one cycle class.

Model: IsTree_n streams n - 1 distinct edges on vertices 0..n-1 (each edge one symbol); the answer
is whether they form a tree. Cut after j edges; b = n - j. A *forest* prefix leaves a partition P
of the vertices into b blocks (its components); every partition into b blocks occurs (a spanning
tree per block). A prefix with a cycle is answered FALSE whatever follows (needs j >= 3).

Upper bound. Two forests with the same partition are never told apart (a continuation T gives a
tree iff T is a spanning tree of the quotient by P, wherever both are valid), and cyclic prefixes
all answer FALSE. So a pairwise-told-apart set has at most S(n, b) + [j >= 3] prefixes.

Lower bound for b >= 3 (j <= n - 3). Take ANY forest F_P per partition P and one cyclic prefix C.
A useful count: a cut of the quotient by a partition into groups X | Y crosses s(n - s) >= n - 1
vertex pairs, more than the j <= n - 3 edges of any prefix, so the graph of still-unused cross
pairs is connected and every acyclic set of its edges extends to a spanning tree of the quotient.
* F_P vs C: a spanning tree T of the P-quotient avoiding E(C) exists (count above); F_P + T is a
  tree, C + T is not.
* F_P vs F_Q, P != Q (same number of blocks, so some P-block B is split by Q). Case 1: some u, v
  in B, split by Q, with uv not an edge of F_P. Extend {uv} to a spanning tree T of the
  Q-quotient avoiding E(F_P) (and E(F_Q): T crosses Q-blocks): F_Q + T is a tree; F_P + T
  contains the path u..v in F_P plus uv, a cycle. Case 2: every split pair of B is an F_P edge.
  The pairs of B split by Q contain a complete multipartite graph inside the tree F_P|B, which
  forces exactly two parts {c} and B - {c} with F_P|B the star at c. Let x in B - {c} and y a
  vertex of a third Q-block (b >= 3; it lies outside B). T = {cy, xy} extended to a spanning tree
  of the Q-quotient: cy and xy cross both partitions (so avoid E(F_P), E(F_Q)), F_Q + T is a
  tree, and F_P + T has two edges between the P-blocks of B and y: a cycle.
Hence at cut j <= n - 3 the maximum fooling set is exactly S(n, n - j) + [j >= 3]. At j = n - 2
it is at most S(n, 2) + 1 <= S(n, 3) for n >= 5 (n = 4 checked by brute force), so the maximum
over all cuts between edges is max_{j <= n-3} S(n, n - j) + [j >= 3]: exact.
"""

from __future__ import annotations

import math
from functools import lru_cache


@lru_cache(maxsize=64)
def stirling2_row(n: int) -> tuple[int, ...]:
    """``(S(n, 0), ..., S(n, n))``: Stirling numbers of the second kind (set partitions)."""
    row = [1]
    for i in range(1, n + 1):
        new = [0] * (i + 1)
        for b in range(1, i + 1):
            new[b] = b * (row[b] if b < len(row) else 0) + row[b - 1]
        row = new
    return tuple(row)


def istree_classes(n: int) -> tuple[int, int]:
    """``(P, j)``: max over j <= n - 3 edges read of S(n, n - j) + [j >= 3], and the best j."""
    if n <= 3:
        return 1, 0
    row = stirling2_row(n)
    return max((row[n - j] + (1 if j >= 3 else 0), j) for j in range(n - 2))


def istree_lower_log2(n: int) -> tuple[float, int]:
    """A proven lower bound for large n: S(n, b) >= b^(n-b) (put 1..b in separate blocks, the
    other n - b vertices anywhere), maximized over b in [3, n-3] by ternary search (concave)."""
    lo, hi = 3, max(3, n - 3)

    def f(b: int) -> float:
        return (n - b) * math.log2(b)

    while hi - lo > 2:
        a, b = lo + (hi - lo) // 3, hi - (hi - lo) // 3
        if f(a) < f(b):
            lo = a + 1
        else:
            hi = b
    best = max(range(lo, hi + 1), key=f)
    return f(best), best
