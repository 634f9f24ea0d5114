"""Closed forms of rnngap.verify.bounds vs brute-force prefix classes at tiny sizes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from itertools import combinations

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.commands.bound import bound
from rnngap.verify.bounds import ceilings
from rnngap.verify.bounds import counts as bounds
from rnngap.verify.bounds import prefix_classes as pc


@pytest.mark.parametrize("n,k", [(1, 2), (2, 2), (3, 2), (2, 3), (3, 3), (4, 2), (2, 5)])
@pytest.mark.parametrize("order", ["last", "first"])
def test_index_equals_brute_force(n, k, order):
    inst = pc.index_instances(n, k, order)
    brute, _ = pc.worst_cut(inst)
    rows, _ = pc.worst_cut(inst, "rows")
    c = bounds.index_count(n, k, "query-" + order)
    assert brute == c.prefix_classes == rows


@pytest.mark.parametrize("m,k", [(1, 2), (2, 2), (2, 3), (2, 4), (3, 3)])
def test_ar_query_last_equals_brute_force(m, k):
    inst = pc.ar_instances(m, k, "last")
    c = bounds.ar_count(2 * m, k, "query-last")
    assert pc.worst_cut(inst)[0] == c.prefix_classes == k**m
    assert pc.distinct_rows(pc.rows_at_cut(inst, 2 * m)) == c.distinct_rows


@pytest.mark.parametrize("m,k", [(1, 2), (2, 2), (2, 3), (3, 3), (2, 4)])
def test_ar_query_first_within_bounds(m, k):
    brute = pc.worst_cut(pc.ar_instances(m, k, "first"))[0]
    c = bounds.ar_count(2 * m, k, "query-first")
    assert not c.exact and c.prefix_classes <= brute <= c.upper


@pytest.mark.parametrize("n,k", [(2, 2), (3, 2), (3, 3), (4, 3), (2, 4), (4, 2), (5, 2)])
@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("order", ["last", "first"])
def test_counting_equals_brute_force(n, k, exact, order):
    inst = pc.counting_instances(n, k, exact, order)
    c = bounds.counting_count(n, k, exact, "query-" + order)
    assert c.exact
    assert pc.worst_cut(inst)[0] == c.prefix_classes == pc.worst_cut(inst, "rows")[0]


@pytest.mark.parametrize("n,c,k", [(4, 2, 3), (5, 2, 3), (6, 2, 4), (6, 3, 3), (6, 2, 5)])
def test_cgram_family_is_a_fooling_set(n, c, k):
    """The lower bound is an explicit family: enumerate it, check pairwise told apart."""
    from itertools import product

    a, m = bounds.cgram_family(n, c, k)
    keys = list(product(range(a), repeat=c - 1))[:m]
    fam = []
    for vals in product(range(a, k), repeat=m):
        x = [a] * (n - m * c) + [t for key, v in zip(keys, vals) for t in (*key, v)]
        fam.append(tuple(x))
    table = pc.rows_at_cut(pc.cgram_instances(n, c, k, "last"), n)
    assert len(fam) == (k - a) ** m
    assert pc.is_fooling_set(table, fam)
    assert bounds.cgram_count(n, c, k).prefix_classes >= max(len(fam), k)


@pytest.mark.parametrize("n,c,k", [(4, 2, 3), (5, 2, 3), (4, 2, 2), (6, 3, 2), (5, 3, 2)])
def test_cgram_bounds_against_brute_force(n, c, k):
    last = bounds.cgram_count(n, c, k, "query-last")
    assert last.prefix_classes <= pc.worst_cut(pc.cgram_instances(n, c, k, "last"))[0]
    first = bounds.cgram_count(n, c, k, "query-first")
    brute = pc.worst_cut(pc.cgram_instances(n, c, k, "first"))[0]
    assert first.prefix_classes <= brute <= first.upper


def _partition_key(n):
    edges = list(combinations(range(n), 2))

    def key(pre):
        parent = list(range(n))

        def find(a):
            while parent[a] != a:
                a = parent[a]
            return a

        for e in pre:
            ru, rv = find(edges[e][0]), find(edges[e][1])
            if ru == rv:
                return "cycle"
            parent[ru] = rv
        return frozenset(frozenset(b for b in range(n) if find(b) == r)
                         for r in {find(b) for b in range(n)})
    return key


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_istree_equals_brute_force(n):
    """Upper bound: prefixes with the same partition (or both cyclic) are never told apart.
    Lower bound: an explicit pairwise-told-apart set with one prefix per group."""
    key = _partition_key(n)
    best = 0
    for j in range(n - 1):
        table = pc.istree_tables(n, j)
        groups, ok = pc.group_bound(table, key)
        assert ok
        if j == n - 2:
            value = min(groups, pc.fooling_number(table)) if groups > best else groups
            assert value <= max(best, 1)
            continue
        by_group: dict = {}
        for p in table:
            by_group.setdefault(key(p), []).append(p)
        chosen: list = []
        for g in sorted(by_group, key=lambda g: g == "cycle"):
            for p in by_group[g]:
                if all(pc.told_apart(table[p], table[q]) for q in chosen):
                    chosen.append(p)
                    break
        if n > 3:
            assert len(chosen) == groups
        row = bounds.stirling2_row(n)
        if n > 3:
            assert groups == row[n - j] + (1 if j >= 3 else 0)
        best = max(best, len(chosen))
    assert bounds.istree_count(n).prefix_classes == best


def test_stirling_row_known_values():
    assert bounds.stirling2_row(5) == (0, 1, 15, 25, 10, 1)
    assert sum(bounds.stirling2_row(10)) == 115975  # Bell number B_10


@pytest.mark.parametrize("task", ["index", "ar", "cgram", "counting", "counting-exact", "istree"])
@pytest.mark.parametrize("S", [1, 3, 8, 17, 40, 64])
def test_failure_length_is_least_by_linear_scan(task, S):
    ns, exact, _ = bounds.failure_length(task, S)
    assert exact == (task != "cgram")  # c-gram counts are lower bounds: n* is an upper bound
    step, start = (2, 2) if task == "ar" else (1, 2 if task in ("cgram", "istree") else 1)
    order = "stream" if task == "istree" else "query-last"
    n = start
    while bounds.count(task, n, order).prefix_classes <= 2**S:
        n += step
    assert ns == n


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["index", "ar", "counting", "istree", "cgram"]),
       st.integers(2, 150))
def test_counts_nondecreasing(task, n):
    step = 2 if task == "ar" else 1
    n += n % step
    order = "stream" if task == "istree" else "query-last"
    assert bounds.count(task, n, order).prefix_classes <= \
        bounds.count(task, n + step, order).prefix_classes


@pytest.mark.parametrize("alphabet", [None, 2, 3, 200])
def test_exceeds_float_path_matches_exact(alphabet):
    for task in ("index", "ar", "counting", "cgram"):
        for n in [*range(2, 120, 2), 1000, 2**40]:
            if task == "ar" and alphabet is not None and alphabet < n // 2:
                continue
            if n > 1000 and (task != "counting" or alphabet not in (2, 3)):
                continue
            p = bounds.count(task, n, alphabet=alphabet).prefix_classes
            for S in (p.bit_length() - 2, p.bit_length() - 1, p.bit_length()):
                if S >= 1:
                    assert bounds.exceeds(task, n, S, alphabet=alphabet) == (p > 2**S)


def test_fano_matches_kremer_nisan_ron_for_bits():
    n, S = 100, 40
    acc = ceilings.fano_ceiling(n, 2, S)
    assert abs(ceilings.h2(1 - acc) - (1 - S / n)) < 1e-9
    assert ceilings.fano_ceiling(n, 2, n) == 1.0


@pytest.mark.parametrize("task", ["index", "ar", "cgram", "counting", "istree"])
def test_ceiling_lengths_are_least(task):
    S = 200
    out = ceilings.ceiling_lengths(task, S)
    step = 2 if task == "ar" else 1
    for level, n in out.items():
        lv = float(level)
        if n is None:  # binary answers: Fano cannot push accuracy below 1/2
            assert lv == 0.5 and task in ("counting", "istree")
            continue
        assert ceilings.ceiling(task, n, S) < lv
        prev = ceilings.ceiling(task, n - step, S)
        assert prev is None or prev >= lv - 1e-9
    assert ceilings.ceiling_lengths("ar", S) is not None


def test_cli_json_interface():
    r = CliRunner().invoke(bound, ["--state-bits", "512", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    keys = {"task", "order", "vocab_size", "failure_length", "ceilings", "argument"}
    assert all(keys <= set(row) for row in rows)
    idx = next(x for x in rows if x["task"] == "index" and x["order"] == "query-last")
    assert idx["failure_length"] == 81 and 80 * math.log2(81) <= 512 < 81 * math.log2(82)
    assert set(idx["ceilings"]) == {"0.99", "0.9", "0.5"}
    r = CliRunner().invoke(bound, ["--task", "index", "--n", "300", "--order", "last", "--json"])
    d = json.loads(r.output)
    assert d["prefix_classes"] == str(301**300) and d["bits_needed"] == (301**300 - 1).bit_length()


@pytest.mark.parametrize("args", [["--state-bits", "0"], ["--state-bits", "x"],
                                  ["--arch", "nope"], ["--arch", "mamba-130m", "--d-model", "8"],
                                  ["--task", "ar", "--n", "10", "--alphabet", "2"],
                                  ["--state-bits", "8", "--arch", "mamba-130m"], ["--n", "4"]])
def test_cli_bad_input_exit_2(args):
    r = CliRunner().invoke(bound, args)
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_cli_plot(tmp_path):
    out = tmp_path / "c.png"
    r = CliRunner().invoke(bound, ["--state-bits", "256", "--plot", str(out)])
    assert r.exit_code == 0 and out.stat().st_size > 1000


def test_cli_fast_fresh_process():
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rnngap.cli", "bound", "--state-bits", "512"],
                   check=True, capture_output=True)
    assert time.perf_counter() - t < 2.0  # under 1 s unloaded; slack for a shared machine


def test_count_mode_single_object_by_default():
    r = CliRunner().invoke(bound, ["--task", "istree", "--n", "6", "--json"])
    d = json.loads(r.output)
    assert d["order"] == "stream" and d["prefix_classes"] == 91 and d["bits_needed"] == 7


@pytest.mark.parametrize("n", [4, 5, 7])
def test_counting_embedding_is_index(n):
    from itertools import product

    m = n // 2
    for bits in product((0, 1), repeat=m):
        x = ceilings.counting_embedding(bits, n)
        assert len(x) == n and max(x) <= m
        for q in range(m):
            assert int(x.count(q) > 1) == bits[q] and x.count(q) == 1 + bits[q]


@pytest.mark.parametrize("n", [4, 6, 7])
def test_istree_embedding_is_index(n):
    from itertools import product

    from rnngap.tasks.istree import is_tree

    m = (n - 2) // 2
    for bits in product((0, 1), repeat=m):
        for i in range(m):
            edges = ceilings.istree_embedding(bits, n, i)
            assert len(edges) == n - 1 and len(set(edges)) == n - 1
            assert all(u > v for u, v in edges)
            assert is_tree(n, edges) == (bits[i] == 0)


@pytest.mark.parametrize("n,k", [(4, 3), (5, 4), (6, 4), (6, 5), (7, 4)])
def test_cgram_bigram_family_is_a_fooling_set(n, k):
    from itertools import product

    m = min(n // 2, k - 1)
    fam = []
    for vals in product(range(k), repeat=m):
        if all(v not in range(i + 1) for i, v in enumerate(vals)):
            fam.append(tuple([0] * (n - 2 * m) + [t for i, v in enumerate(vals) for t in (i, v)]))
    assert len(fam) == math.perm(k - 1, m)
    table = pc.rows_at_cut(pc.cgram_instances(n, 2, k, "last"), n)
    assert pc.is_fooling_set(table, fam)
    assert bounds.cgram_count(n, 2, k).prefix_classes >= len(fam)


# --- review fixes (careless-user audit) ---

@pytest.mark.parametrize("args", [
    ["--task", "cgram", "--n", "6", "--c", "0"], ["--task", "cgram", "--n", "6", "--c", "1"],
    ["--state-bits", "64", "--c", "1"],
    ["--task", "cgram", "--n", "4", "--c", "3", "--brute"],
    ["--state-bits", "64", "--plot", "/proc/x.png"], ["--state-bits", "64", "--plot", ""],
    ["--task", "counting", "--state-bits", "64", "--alphabet", "1"]])
def test_cli_review_usage_errors_exit_2(args):
    r = CliRunner().invoke(bound, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output


def test_cli_c_and_brute_messages():
    r = CliRunner().invoke(bound, ["--task", "cgram", "--n", "6", "--c", "0"])
    assert "c must be >= 2" in r.output
    r = CliRunner().invoke(bound, ["--task", "cgram", "--n", "4", "--c", "3", "--brute"])
    assert "too large to brute-force" in r.output and "limit 400" in r.output


def test_cli_plot_under_a_regular_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = CliRunner().invoke(bound, ["--state-bits", "64", "--plot", str(f / "x.png")])
    assert r.exit_code == 2 and "--plot" in r.output


def test_lower_bound_rows_report_failure_length_as_upper_bound():
    r = CliRunner().invoke(bound, ["--state-bits", "512", "--json"])
    rows = json.loads(r.output)
    for row in rows:
        if row["failure_length"] is None:
            continue
        if not row["exact_count"]:
            assert row["failure_length_exact"] is False and row["failure_note"] != "exact"
    cg = next(x for x in rows if x["task"] == "cgram" and x["order"] == "query-last")
    assert cg["failure_length_exact"] is False
    r = CliRunner().invoke(bound, ["--state-bits", "512", "--task", "cgram"])
    assert "<=" in r.output


def test_count_mode_float_estimate_says_about():
    r = CliRunner().invoke(bound, ["--task", "index", "--n", "1000000000"])
    assert r.exit_code == 0 and "exactly" not in r.output and "about 2^" in r.output
    d = json.loads(CliRunner().invoke(bound, ["--task", "index", "--n", "1000000000",
                                              "--json"]).output)
    assert d["float_estimate"] is True


def test_count_mode_uses_state_bits():
    r = CliRunner().invoke(bound, ["--task", "index", "--n", "5", "--state-bits", "8"])
    assert r.exit_code == 0 and "S = 8 bits: too few" in r.output
    r = CliRunner().invoke(bound, ["--task", "index", "--n", "5", "--state-bits", "13"])
    assert "S = 13 bits: enough" in r.output
    d = json.loads(CliRunner().invoke(bound, ["--task", "index", "--n", "5", "--state-bits",
                                              "8", "--json"]).output)
    assert d["state_bits_too_few"] is True and "too few" in d["state_bits_verdict"]


def test_alphabet_invalid_rows_are_skipped_and_istree_vocab():
    r = CliRunner().invoke(bound, ["--state-bits", "64", "--alphabet", "1", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    skipped = {(x["task"], x["order"]) for x in rows if "skipped" in x}
    assert ("counting", "query-last") in skipped and ("index", "query-last") not in skipped
    r = CliRunner().invoke(bound, ["--state-bits", "64", "--alphabet", "2", "--json"])
    ist = next(x for x in json.loads(r.output) if x["task"] == "istree")
    assert ist["vocab_size"] != 2 and "vertices" in ist["vocab_size"]
    r = CliRunner().invoke(bound, ["--state-bits", "64", "--alphabet", "1"])
    assert r.exit_code == 0 and "skipped counting" in r.output


def test_size_flags_have_help():
    out = CliRunner().invoke(bound, ["--help"]).output
    for flag in ("--d-model", "--n-layers", "--d-state", "--expand", "--heads", "--d-conv",
                 "--head-dim", "--attention-every"):
        line = next(x for x in out.splitlines() if x.strip().startswith(flag))
        assert len(line.split()) > 2, line  # flag, metavar, help text


@pytest.mark.timeout(60)
def test_brute_force_check_lives_in_verify_and_the_command_reports_it() -> None:
    out = pc.brute_force("index", 3, "query-last", 2, 2)
    assert out["agrees"] and out["fooling_number"] == out["formula"] == \
        bounds.count("index", 3, "query-last", 2).prefix_classes
    assert out["verdict"] == "equals the formula"
    r = CliRunner().invoke(bound, ["--task", "index", "--n", "3", "--alphabet", "2", "--brute",
                                   "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert got["brute_force"] == {k: v for k, v in out.items() if k not in ("agrees", "formula")}
    r = CliRunner().invoke(bound, ["--task", "index", "--n", "40", "--brute"])
    assert r.exit_code == 2 and "--brute enumerates every input" in r.output
    assert pc.input_count("index", 40, 41) > pc.BRUTE_LIMIT


@given(st.integers(0, 50), st.integers(1, 4), st.integers(0, 300), st.integers(1, 80))
def test_bisect_least_is_the_least_grid_point_past_the_threshold(lo, step, t, span):
    from rnngap.verify.search import bisect_least

    hi = lo + step * span
    calls = []

    def pred(x: int) -> bool:
        calls.append(x)
        return x >= t

    if not pred(hi):
        return
    want = next(x for x in range(lo + step, hi + 1, step) if x >= t)
    assert bisect_least(pred, lo, hi, step) == want
    assert len(calls) <= 2 + span.bit_length()
