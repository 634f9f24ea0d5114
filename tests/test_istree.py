"""tasks/istree.py against networkx (oracle), an independent recursive DFS and hand examples."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.tasks import istree as T


def nx_graph(n: int, edges: np.ndarray) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(np.asarray(edges).tolist())
    return g


def recursive_tour(n: int, edges: np.ndarray) -> list[int]:
    """An independent recursive rendering of the official Euler-tour rule (small n only)."""
    adj: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges.tolist():
        adj[u].append(v)
        adj[v].append(u)
    tour, seen, going = [], set(), [True]

    def dfs(u: int, fa: int) -> None:
        seen.add(u)
        tour.append(u)
        for y in adj[u]:
            if not going[0]:
                return
            if y == fa:
                continue
            if y in seen:
                going[0] = False
                return
            dfs(y, u)
            if going[0]:
                tour.append(u)

    dfs(0, -1)
    return tour


def test_vocabulary_matches_contract():
    assert T.SPECIALS[T.PAD] == "[PAD]" and T.SPECIALS[T.EOS] == "[EOS]"
    assert T.SPECIALS[T.TRUE] == "[TRUE]" and T.SPECIALS[T.FALSE] == "[FALSE]"
    assert T.SPECIALS[T.BOS] == "[BOS]" and T.SPECIALS[T.S] == "[STARTSEARCH]"
    assert T.SPECIALS[T.E] == "[ENDSEARCH]" and T.SPECIALS[T.FAILED] == "[FAILED]"
    assert T.SPECIALS[T.TILDE] == "~" and T.SPECIALS[T.DASH] == "-" and len(T.SPECIALS) == 16
    assert T.vocab_size(7) == 24 and T.vertex_token(0) == 16 and T.token_str(16 + 7) == "7"


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_is_tree_and_official_label_exhaustive(n):
    sets = list(T.enumerate_edge_sets(n))
    assert len(sets) == T.count_edge_sets(n) == math.comb(n * (n - 1) // 2, n - 1)
    assert len({tuple(map(tuple, e.tolist())) for e in sets}) == len(sets)
    trees = 0
    for e in sets:
        g = nx_graph(n, e)
        assert T.is_tree(n, e) == nx.is_tree(g) == T.networkx_is_tree(n, e)
        assert T.official_label(n, e) == (len(nx.node_connected_component(g, 0)) == n)
        trees += T.is_tree(n, e)
    assert trees == n ** (n - 2)  # Cayley's formula


def test_official_label_differs_from_truth():
    # connected, n edges (a cycle): officially TRUE, truly not a tree
    edges = np.array([[1, 0], [2, 1], [2, 0], [3, 0]])
    assert T.official_label(4, edges) and not T.is_tree(4, edges)


@pytest.mark.parametrize("family", ["binary", "random"])
@pytest.mark.parametrize("n", [4, 5, 16, 64])
def test_samplers_are_correct(family, n):
    edges, labels = T.sample_graphs(n, 120, family, seed=3)
    for e, lab in zip(edges, labels):
        assert e.shape == (n - 1, 2) and e.dtype == np.int64
        assert np.all(e[:, 0] > e[:, 1]) and e.min() >= 0 and e.max() < n
        assert len({tuple(r) for r in e.tolist()}) == n - 1
        g = nx_graph(n, e)
        assert lab == nx.is_tree(g)
        if family == "random" and not lab:  # the non-tree half: an isolated vertex and a cycle
            assert min(d for _, d in g.degree()) == 0 and len(nx.cycle_basis(g)) == 1
    assert 0.25 < labels.mean() < 0.75


def test_sampler_seeded_and_quirks():
    a = T.sample_graphs(10, 8, "random", seed=5)
    b = T.sample_graphs(10, 8, "random", seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
    assert np.array_equal(a[1], b[1])
    edges, labels = T.sample_graphs(8, 400, "random", seed=1, official_quirks=True)
    counts = {len(e) for e in edges}
    assert any(c < 7 for c in counts), "official quirks should lose edges sometimes"
    assert all(lab == T.official_label(8, e) for e, lab in zip(edges, labels))
    assert any(lab and not T.is_tree(8, e) for e, lab in zip(edges, labels))


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError):
        T.sample_graphs(8, 2, "grid")
    with pytest.raises(ValueError):
        T.sample_graphs(3, 2, "binary")


def test_retrieval_transcript_by_hand():
    ex = T.encode(3, [(1, 0), (2, 1)], "retrieval")
    want = ("[BOS] 1 - 0 2 - 1 [EOS] "
            "0 [S] 0 ~ [E] [F] [S] 0 - [E] 1 [S] 1 ~ [E] [F] 1 ~ 0 "
            "1 [S] 1 ~ [E] 0 [S] 1 - [E] 0 [S] 1 - 0 [E] 2 [S] 2 ~ [E] [F] 2 ~ 1 "
            "2 [S] 2 ~ [E] 1 [S] 2 - [E] 1 [S] 2 - 1 [E] [F] "
            "1 [S] 1 ~ [E] 0 [S] 1 - 2 [E] [F] "
            "0 [S] 0 ~ [E] [F] [S] 0 - 1 [E] [F] [EOS] [TRUE]")
    want = (want.replace("[S]", "[STARTSEARCH]").replace("[E]", "[ENDSEARCH]")
            .replace("[F]", "[FAILED]"))
    assert T.render(ex.tokens) == want
    assert ex.prompt_len == 8 and ex.label
    after_e = np.zeros_like(ex.retrieved_mask)
    after_e[1:] = ex.tokens[:-1] == T.E
    assert np.array_equal(ex.retrieved_mask, after_e)
    assert np.array_equal(ex.loss_mask, (np.arange(len(ex.tokens)) >= 8) & ~after_e)


def test_cycle_transcripts_stop_at_back_edge():
    # triangle 0-1-2 plus isolated 3: the DFS meets 0 again (the root: its record is [FAILED])
    edges = np.array([[1, 0], [2, 1], [2, 0]])
    ex = T.encode(4, edges, "retrieval")
    assert T.render(ex.tokens[-7:]) == "[STARTSEARCH] 0 ~ [ENDSEARCH] [FAILED] [EOS] [FALSE]"
    assert T.euler_tour(4, edges) == [T.vertex_token(v) for v in (0, 1, 2)]


@pytest.mark.parametrize("n", [3, 4, 5])
def test_cot_matches_recursive_dfs_and_parse_roundtrip(n):
    for e in T.enumerate_edge_sets(n):
        for order in (e, e[::-1]):
            assert T.euler_tour(n, order) == [T.vertex_token(v) for v in recursive_tour(n, order)]
            for fmt in T.FORMATS:
                ex = T.encode(n, order, fmt)
                p = T.parse(n, ex.tokens, fmt)
                assert np.array_equal(p.edges, order) and p.label == T.is_tree(n, order)
                assert ex.tokens[ex.prompt_len - 1] == T.EOS
                assert not ex.loss_mask[: ex.prompt_len].any() and ex.loss_mask[-1]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), fmt=st.sampled_from(T.FORMATS), data=st.data())
def test_parse_rejects_any_single_token_change(seed, fmt, data):
    (edges,), _ = T.sample_graphs(6, 1, "random", seed=seed)
    ex = T.encode(6, edges, fmt)
    pos = data.draw(st.integers(0, len(ex.tokens) - 1))
    new = data.draw(st.integers(0, T.vocab_size(6) - 1).filter(lambda t: t != ex.tokens[pos]))
    bad = ex.tokens.copy()
    bad[pos] = new
    try:
        p = T.parse(6, bad, fmt)
    except ValueError as err:
        assert "token" in str(err)
    else:  # only a prompt edit yielding another valid graph whose transcript is unchanged
        assert pos < ex.prompt_len and not np.array_equal(p.edges, edges)


def test_parse_error_names_first_bad_token():
    ex = T.encode(4, [(1, 0), (2, 1), (3, 2)], "retrieval")
    bad = ex.tokens.copy()
    bad[20] = T.PAD
    with pytest.raises(ValueError, match="token 20"):
        T.parse(4, bad, "retrieval")
    with pytest.raises(ValueError, match="edges"):
        T.parse(4, T.encode(4, [(1, 0), (2, 1)], "plain").tokens, "plain")
    with pytest.raises(ValueError, match="label"):
        T.parse(4, np.r_[ex.tokens[:-1], T.FALSE], "retrieval")
    with pytest.raises(ValueError, match="duplicate"):
        T.encode(4, [(1, 0), (0, 1), (3, 2)], "plain")


def test_adversarial_families():
    for n in (4, 5, 9):
        fams = T.adversarial_graphs(n)
        assert {"path", "star_centre_0", "cycle_through_0_plus_isolated"} <= set(fams)
        for name, e in fams.items():
            g = nx_graph(n, e)
            assert T.is_tree(n, e) == nx.is_tree(g), name
        assert not T.is_tree(n, fams["cycle_plus_isolated_0"])
        assert T.is_tree(n, fams["zigzag_path"])


def test_quirk_samples_encode_and_parse_non_strictly():
    edges, labels = T.sample_graphs(9, 60, "random", seed=4, official_quirks=True)
    for e, lab in zip(edges, labels):
        for fmt in T.FORMATS:
            ex = T.encode(9, e, fmt, label=lab)
            p = T.parse(9, ex.tokens, fmt, strict=False, check_label=False)
            assert p.label == lab and np.array_equal(p.edges, e)
            if len(e) != 8:
                with pytest.raises(ValueError, match="edges"):
                    T.parse(9, ex.tokens, fmt)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 9), data=st.data())
def test_any_simple_graph_roundtrips(n, data):
    pairs = [(u, v) for u in range(n) for v in range(u)]
    chosen = data.draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs)))
    e = np.array(chosen, dtype=np.int64).reshape(-1, 2)
    truth = nx.is_tree(nx_graph(n, e))
    assert T.is_tree(n, e) == truth
    for fmt in T.FORMATS:
        ex = T.encode(n, e, fmt)
        assert ex.label == truth
        p = T.parse(n, ex.tokens, fmt, strict=False)
        assert np.array_equal(p.edges, e)


def test_fast_binary_sampler_draws_the_same_graphs_and_labels() -> None:
    """The numpy binary-family sampler consumes the RNG exactly like _binary + the shuffle, and
    its closed-form label equals is_tree."""
    import numpy as np

    from rnngap.tasks import istree_graphs as G

    def reference(n, batch, seed):
        rng = np.random.default_rng(seed)
        out, labels = [], []
        for _ in range(batch):
            raw = G._binary(n, rng)
            arr = np.array([(max(a, c), min(a, c)) for a, c in raw], dtype=np.int64)
            arr = arr[np.lexsort((arr[:, 1], arr[:, 0]))]
            arr = arr[rng.permutation(len(arr))]
            out.append(arr)
            labels.append(G.is_tree(n, arr))
        return out, labels

    for n in (4, 5, 9, 64):
        for seed in range(6):
            e1, l1 = reference(n, 15, seed)
            e2, l2 = G.sample_graphs(n, 15, "binary", seed)
            assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(e1, e2))
            assert list(l2) == l1


def test_batched_encoding_equals_encode_row_by_row() -> None:
    """make_batch's numpy paths (plain prompts at once, chains of thought from the sampler's
    canonical arrays) write exactly what istree.encode writes, masks included."""
    import numpy as np

    from rnngap.learned import data as D
    for fmt in ("plain", "cot", "retrieval"):
        for n, fam in ((6, "binary"), (9, "random"), (33, "binary")):
            b = D.make_batch(D.DataSpec("istree", n, fmt=fmt, family=fam), 10, 1, 2)
            exs = [T.encode(n, e, fmt, label=bool(lab)) for e, lab in zip(b.edges, b.labels)]
            assert b.tokens.shape[1] == max(len(x.tokens) for x in exs)
            for i, x in enumerate(exs):
                L = len(x.tokens)
                assert np.array_equal(b.tokens[i, :L], x.tokens)
                assert (b.tokens[i, L:] == T.PAD).all()
                assert np.array_equal(b.loss_mask[i, :L], x.loss_mask)
                assert np.array_equal(b.retrieved_mask[i, :L], x.retrieved_mask)
                assert not b.loss_mask[i, L:].any() and b.prompt_len[i] == x.prompt_len
