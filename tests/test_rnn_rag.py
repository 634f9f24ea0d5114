"""The bit-bounded RNN + retrieval IsTree machine, its verifier, the contrast and the CLI."""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pytest
from click.testing import CliRunner

from rnngap.cli import main
from rnngap.constructions.istree import rnn_rag as RR
from rnngap.tasks import istree as T
from rnngap.tasks import retrieval_env as R
from rnngap.verify.istree import rnn_rag as V

ISSUE_KEYS = {"task", "method", "n", "verified", "enumerated", "inputs_checked", "failures",
              "peak_state_bits", "max_cot_tokens", "retrievals", "seconds"}


def test_transcripts_equal_the_official_format_exhaustively_small():
    for n in (2, 3, 4):
        for e in T.enumerate_ordered(n):
            tr = RR.run_istree(n, e)
            assert tr.tokens == T.encode(n, e, "retrieval").tokens.tolist()
            assert tr.verdict == T.is_tree(n, e)
    for e in T.enumerate_edge_sets(5):
        tr = RR.run_istree(5, e[::-1])
        T.parse(5, tr.tokens, "retrieval")


@pytest.mark.parametrize("family", ["binary", "random"])
@pytest.mark.parametrize("n", [6, 17, 64])
def test_official_families(family, n):
    edges, labels = T.sample_graphs(n, 20, family, seed=11)
    for e, lab in zip(edges, labels):
        tr = RR.run_istree(n, e)
        T.parse(n, tr.tokens, "retrieval")
        g = nx.Graph(e.tolist())
        g.add_nodes_from(range(n))
        assert tr.verdict == lab == nx.is_tree(g)
        assert tr.peak_bits <= tr.declared_bits


def test_adversarial_graphs():
    for n in (4, 9, 40):
        for name, e in T.adversarial_graphs(n).items():
            tr = RR.run_istree(n, e)
            assert tr.verdict == T.is_tree(n, e), name


def test_state_width_is_declared_and_enforced():
    for n in (1, 4, 16, 1000, 4096):
        w = math.ceil(math.log2(n + 1))
        assert RR.IsTreeRAG(n).declared_bits == 5 + 6 * w
    m = RR.IsTreeRAG(6)
    with pytest.raises(OverflowError, match="top"):
        m.check((0, 8, 0, 0, 0, 0, 0))
    with pytest.raises(OverflowError):
        m.check((0, 0, 0, 0, 0, -1, 0))


def test_peak_bits_grow_logarithmically():
    rows = RR.peak_bits_table([16, 64, 256], seed=2)
    peaks = [r["peak_bits"] for r in rows]
    assert peaks == sorted(peaks) and peaks[-1] - peaks[0] <= 6 * 4 + 2
    assert all(r["peak_bits"] <= r["declared_bits"] for r in rows)


def test_a_lying_retriever_is_caught(monkeypatch):
    orig = R.IsTreeDialect.__call__

    def lying(self, q):  # 'v ~' now answers the vertex after the FIRST '~': wrong parents
        return r" ~ (\d+) " if len(q) == 2 and q[1] == T.TILDE else orig(self, q)

    monkeypatch.setattr(R.IsTreeDialect, "__call__", lying)
    bad = sum(V.check_one(5, e)[0] is not None for e in T.enumerate_edge_sets(5))
    assert bad > 0


def test_verify_exhaustive_n4_and_keys():
    out = V.verify_rnn_rag(4, samples=5)
    assert ISSUE_KEYS <= set(out)
    assert out["verified"] and out["failures"] == 0
    assert out["inputs_checked"] == 20 * 6 + 10 + len(T.adversarial_graphs(4))
    assert out["exhaustive"] and "20 edge sets" in out["enumerated"]
    assert "all 6 of 6 prompt orders" in out["enumerated"] and "u > v" in out["enumerated"]


def test_verified_only_when_every_prompt_order_was_checked():
    # review item 1: one or two of the (n-1)! orders per edge set is not every input
    mode, total, words = V.enumeration_plan(6, "auto")
    assert mode == "two" and total == 2 * 3003 and "2 of 120 prompt orders" in words
    assert "NOT every input" in words
    out = V.verify_rnn_rag(5, orders="one", samples=0)
    assert out["passed"] and not out["verified"] and not out["exhaustive"]
    assert "1 of 24 prompt orders" in out["enumerated"]
    r = CliRunner().invoke(main, ["verify", "istree", "--n", "5", "--orders", "one",
                                  "--samples", "0", "--json"])
    assert r.exit_code == 0, r.output
    js = json.loads(r.stdout)
    assert ISSUE_KEYS <= set(js) and js["verified"] is False and js["passed"] is True
    assert js["exhaustive"] is False
    r = CliRunner().invoke(main, ["verify", "istree", "--n", "5", "--orders", "one",
                                  "--samples", "0"])
    assert r.exit_code == 0 and "VERIFIED" not in r.output and "PASSED" in r.output


@pytest.mark.parametrize("args,why", [
    (["--n", "3", "--samples", "5"], "n >= 4"),
    (["--n", "10", "--orders", "all"], "asks for an enumeration"),
    (["--n", "10", "--orders", "one"], "asks for an enumeration"),
    (["--n", "10", "--samples", "1000000000"], "10,000"),
])
def test_cli_verify_refuses_plans_it_would_ignore(args, why):
    # review items 3 and 5: samples that cannot be drawn, orders with no enumeration, no cap
    r = CliRunner().invoke(main, ["verify", "istree", *args])
    assert r.exit_code == 2 and why in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("args", [
    ["--contrast", "--edges", "0-1,1-2,2-3"], ["--contrast", "--seed", "1"],
    ["--contrast", "--no-retrieval"], ["--contrast", "--scaling"],
    ["--contrast", "--family", "binary"], ["--scaling", "--edges", "0-1,1-2,2-3"],
    ["--scaling", "--no-retrieval"],
])
def test_cli_run_istree_rejects_ignored_flags(args):
    # review item 3: --contrast / --scaling with flags they would silently drop
    n = "16" if "--scaling" in args and "--contrast" not in args else "4"
    r = CliRunner().invoke(main, ["run", "istree", "--n", n, *args])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_cli_contrast_small_n_is_refused():
    r = CliRunner().invoke(main, ["run", "istree", "--n", "3", "--contrast"])
    assert r.exit_code == 2 and "4 <= n <= 7" in r.output


def test_cli_large_n_prints_a_cost_note(monkeypatch):
    # review item 5: a run that takes minutes says so on stderr first (run stubbed out here)
    def boom(*a, **k):
        raise SystemExit(0)

    monkeypatch.setattr(RR, "run_istree", boom)
    r = CliRunner().invoke(main, ["run", "istree", "--n", "65536", "--seed", "0", "--quiet"])
    assert "note: n=65536 takes roughly" in r.stderr
    monkeypatch.setattr(V, "verify_rnn_rag", boom)
    r = CliRunner().invoke(main, ["verify", "istree", "--n", "4096", "--samples", "100"])
    assert "expect roughly" in r.stderr


def test_sampled_only_is_not_called_verified(monkeypatch):
    monkeypatch.setattr(V, "EDGESET_LIMIT", 1)
    out = V.verify_rnn_rag(5, samples=3)
    assert out["passed"] and not out["verified"] and "no enumeration" in out["enumerated"]


def test_no_retrieval_contrast():
    out = V.fool_no_retrieval(4)
    assert out["same_state_after_prompt"] and out["same_cot_without_retrieval"]
    assert out["verdicts_without_retrieval"][0] == out["verdicts_without_retrieval"][1]
    assert out["verdicts_with_retrieval"] == out["truth"] == [True, False]
    tr = RR.run_istree(5, T.adversarial_graphs(5)["path"], retrieval=False)
    assert tr.verdict is False  # a path is a tree: the oracle-less machine gets it wrong


def test_cli_verify_json_and_run():
    r = CliRunner().invoke(main, ["verify", "istree", "--method", "rnn-rag", "--n", "4",
                                  "--samples", "2", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert ISSUE_KEYS <= set(out) and out["verified"]
    r = CliRunner().invoke(main, ["run", "istree", "--n", "4", "--edges", "0-1,1-2,2-3",
                                  "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["verdict"] is True
    r = CliRunner().invoke(main, ["run", "istree", "--n", "4", "--edges", "0-1,1-2,2-0",
                                  "--quiet"])
    assert r.exit_code == 0 and "verdict: False" in r.output
    r = CliRunner().invoke(main, ["run", "istree", "--n", "4", "--contrast"])
    assert r.exit_code == 0 and "same state" in r.output


@pytest.mark.parametrize("edges", ["0-1,1-x,2-3", "0-1,1-2", "0-1,1-1,2-3", "0-1,1-0,2-3",
                                   "0-1,1-2,2-9", "0-1;1-2;2-3"])
def test_cli_bad_edges_exit_2(edges):
    r = CliRunner().invoke(main, ["run", "istree", "--n", "4", "--edges", edges])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_cli_bad_n_and_conflicts():
    assert CliRunner().invoke(main, ["verify", "istree", "--n", "1"]).exit_code == 2
    r = CliRunner().invoke(main, ["run", "istree", "--n", "5", "--seed", "1", "--edges", "0-1"])
    assert r.exit_code == 2
    assert CliRunner().invoke(main, ["verify", "istree", "--n", "4", "--method", "x"]).exit_code \
        == 2


def test_large_n_runs_quickly():
    (e,), (lab,) = T.sample_graphs(1024, 1, "binary", seed=0)
    tr = RR.run_istree(1024, e)
    assert tr.verdict == lab and tr.declared_bits == 5 + 6 * 11
    assert np.isfinite(tr.peak_bits)
