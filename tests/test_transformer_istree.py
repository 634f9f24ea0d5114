"""The IsTree Transformer with O(n) CoT (constructions.istree.transformer,
verify.istree.transformer)."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.cli import main
from rnngap.constructions.base import export, load
from rnngap.constructions.istree import transformer as X
from rnngap.tasks import istree as T
from rnngap.verify.istree import transformer as V
from rnngap.verify.istree.rnn_rag import VERDICT_KEYS

RAG_KEYS = VERDICT_KEYS


@pytest.mark.parametrize("n", [2, 3, 4])
def test_every_input_small_n_verified(n: int) -> None:
    out = V.verify_transformer_istree(n, samples=0)
    assert out["verified"] and out["exhaustive"] and out["failures"] == 0
    assert out["audit"]["not_one_hot"] == 0 and out["audit"]["attention_rows_checked"] > 0
    assert all(c["result"] == "proved" for c in out["certificates"])
    assert out["max_cot_tokens"] <= X.cot_length_bound(n)


def test_every_input_n5_and_samples() -> None:
    out = V.verify_transformer_istree(5, samples=3)
    assert out["verified"] and out["inputs_checked"] == 5040 + 6 + 9


@st.composite
def graphs(draw):
    n = draw(st.integers(4, 20))
    if draw(st.booleans()):
        parents = [draw(st.integers(0, v - 1)) for v in range(1, n)]
        edges = [(v, parents[v - 1]) for v in range(1, n)]
    else:
        pairs = [(u, v) for u in range(n) for v in range(u)]
        idx = draw(st.lists(st.integers(0, len(pairs) - 1), min_size=n - 1, max_size=n - 1,
                            unique=True))
        edges = [pairs[i] for i in idx]
    order = draw(st.permutations(list(range(n - 1))))
    perm = draw(st.permutations(list(range(n))))
    return n, np.array([(perm[u], perm[v]) for u, v in (edges[i] for i in order)])


@settings(max_examples=25, deadline=None)
@given(graphs())
def test_writes_the_official_cot(case) -> None:
    """On random trees and random edge sets (relabelled, any order) the model writes exactly
    the official cot continuation and the right label."""
    n, edges = case
    model = X.build(n).model()
    (got,), audit = V.run_batch(n, model, [edges], X.precision_for(n))
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges.tolist())
    assert got == T.euler_tour(n, edges) + [T.EOS, T.TRUE if nx.is_tree(g) else T.FALSE]
    assert audit.not_one_hot == 0 and audit.non_integer == 0


def test_size_is_constant_and_precision_logarithmic() -> None:
    small, big = X.build(8).sizes(), X.build(512).sizes()
    for k in ("layers", "heads", "width", "d_head", "d_mlp"):
        assert small[k] == big[k]
    ps = [X.precision_for(n) for n in (16, 256, 4096)]
    assert ps[0] < ps[1] < ps[2] <= 52
    assert ps[2] - ps[1] <= 13  # ~ 3 log2 n growth: 4 doublings of n add about 12 bits


def test_tampered_weight_fails() -> None:
    """A broken SKIP unit (parent edge no longer skipped) is caught by the runs and by the
    weights certificate."""
    n = 4
    model = X.build(n).model()
    with torch.no_grad():
        model.blocks[3].mlp.fc_in.bias.zero_()
    out = V.verify_transformer_istree(n, samples=0, model=model)
    assert not out["verified"] and not out["passed"]
    reasons = " ".join(f["reason"] for f in out["failure_examples"])
    assert "the reference has" in reasons
    assert any(c["name"] == "weights-hand-set" and c["result"] == "FAILED"
               for c in out["certificates"])


def test_soft_attention_is_caught_by_the_audit() -> None:
    n = 6
    model = X.build(n).model()
    with torch.no_grad():
        model.blocks[1].attn.q_proj.weight.mul_(2.0 ** -12)
        model.blocks[1].attn.q_proj.bias.mul_(2.0 ** -12)
    (edges,), _ = T.sample_graphs(n, 1, "random", seed=0)
    _, audit = V.run_batch(n, model, [edges], X.precision_for(n))
    assert audit.not_one_hot > 0


def test_bos_row_certificate_detects_a_nonzero_key() -> None:
    n = 5
    model = X.build(n).model()
    with torch.no_grad():
        model.pos_table[0, X.C["KB"]] = 1.0
    certs = {c["name"]: c for c in V.certificates(n, X.precision_for(n), model)}
    assert certs["bos-row-zero"]["result"] == "FAILED" and "KB" in certs["bos-row-zero"]["nonzero"]


def test_too_little_precision_is_refused_by_the_certificate() -> None:
    certs = {c["name"]: c for c in V.certificates(64, 12)}
    assert certs["integer-exactness"]["result"] == "FAILED"


def test_export_round_trip(tmp_path) -> None:
    n = 6
    cons = X.build(n)
    export(cons, tmp_path)
    again = load(tmp_path)
    (edges,), _ = T.sample_graphs(n, 1, "binary", seed=2)
    p = X.precision_for(n)
    a, _ = V.run_batch(n, cons.model(), [edges], p)
    b, _ = V.run_batch(n, again.model(), [edges], p)
    assert a == b


def test_cli_verify_json_keys_and_compare_table() -> None:
    r = CliRunner().invoke(main, ["verify", "istree", "--model", "transformer", "--n", "4",
                                  "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert RAG_KEYS <= set(out) and out["method"] == "transformer" and out["verified"]
    r = CliRunner().invoke(main, ["verify", "istree", "--method", "all", "--n", "4",
                                  "--samples", "2"])
    assert r.exit_code == 0, r.output
    for m in ("rnn-rag", "hybrid", "hybrid-fsm", "transformer"):
        assert m in r.output
    assert "kv_cache_bits" in r.output and r.output.count("VERIFIED") == 4


def test_cli_run_and_errors() -> None:
    r = CliRunner().invoke(main, ["run", "istree", "--method", "transformer", "--n", "5",
                                  "--edges", "1-0,2-1,3-1,4-0"])
    assert r.exit_code == 0, r.output
    assert "[EOS] 0 1 2 1 3 1 0 4 0 [EOS] [TRUE]" in r.output
    r = CliRunner().invoke(main, ["run", "istree", "--method", "transformer", "--n", "5000",
                                  "--seed", "1"])
    assert r.exit_code == 2 and "4096" in r.output
    r = CliRunner().invoke(main, ["verify", "istree", "--method", "transformer", "--n", "5000"])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_weight_certificate_checks_the_network_that_runs(monkeypatch) -> None:
    """Regression: the weights certificate compared the construction with itself."""
    from rnngap.constructions.base import Construction

    real = Construction.model

    def tampered(self):
        m = real(self)
        with torch.no_grad():
            m.blocks[5].mlp.fc_in.bias[0] += 0.5
        return m

    monkeypatch.setattr(Construction, "model", tampered)
    out = V.verify_transformer_istree(3, samples=0)
    certs = {c["name"]: c["result"] for c in out["certificates"]}
    assert certs["weights-hand-set"] == "FAILED" and certs["weights-integer"] == "FAILED"
    assert not out["verified"]


def test_failure_counts_inputs_apart_from_certificates() -> None:
    out = V.verify_transformer_istree(3, samples=0, precision=6)
    assert not out["passed"] and out["input_failures"] <= out["inputs_checked"]
    r = CliRunner().invoke(main, ["verify", "istree", "--method", "all", "--n", "3", "--json"])
    assert r.exit_code == 0, r.output
    v = json.loads(r.output)
    assert v["verified"] is True and v["failures"] == 0 and len(v["verdicts"]) == 4


def test_run_refuses_family_with_edges() -> None:
    r = CliRunner().invoke(main, ["run", "istree", "--method", "transformer", "--n", "4",
                                  "--edges", "1-0,2-1,3-2", "--family", "binary"])
    assert r.exit_code == 2 and "--family" in r.output


def test_counting_verdict_names_its_form() -> None:
    for extra, form in (([], "threshold"), (["--exact"], "exact")):
        r = CliRunner().invoke(main, ["verify", "counting", "--model", "hybrid", "--n", "16",
                                      "--json", *extra])
        assert r.exit_code == 0, r.output
        v = json.loads(r.output)
        assert v["form"] == form and ("threshold" in v["convention"]) == (form == "threshold")


@pytest.mark.parametrize("n", [2, 3, 5, 16, 100, 256, 1000, 4096])
def test_claimed_precision_covers_every_bound_family(n: int) -> None:
    from rnngap.constructions.istree import hybrid as Hy
    from rnngap.verify.istree import hybrid as VH

    assert max(V.bounds(n).values()) <= X.integer_bound(n) <= 2 ** X.precision_for(n)
    if n <= 1024:
        assert max(VH.bounds(n).values()) <= Hy.integer_bound(n) <= 2 ** Hy.precision_for(n)


def test_generate_refuses_prompts_that_are_not_n_minus_1_edges() -> None:
    """The construction decides graphs with n - 1 edges; other prompts used to run and print
    meaningless transcripts through the Python API."""
    import pytest
    import torch

    from rnngap.constructions.istree.transformer import build, generate
    from rnngap.tasks import istree as T
    m = build(5).model()
    short = torch.tensor([T.prompt_tokens(5, [(1, 0), (2, 1), (3, 2)])])
    with pytest.raises(ValueError, match="n - 1 edges"):
        generate(m, short, None, 40)
    good = torch.tensor([T.prompt_tokens(5, [(1, 0), (2, 1), (3, 2), (4, 3)])])
    with pytest.raises(ValueError, match="BOS"):
        generate(m, torch.full_like(good, T.DASH), None, 40)
    assert generate(m, good, None, 40)[0][-1] == T.TRUE
