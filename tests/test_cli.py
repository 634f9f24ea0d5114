"""The command line: lazy imports, exit codes, JSON keys, bad input."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rnngap.cli import main

KEYS = {"task", "n", "verified", "precision_bits", "layers", "heads", "width", "params",
        "min_target_attention", "min_logit_margin", "enumerated", "certificates", "seconds"}


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_help_imports_nothing_heavy():
    code = ("import sys; from click.testing import CliRunner; from rnngap.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'z3', 'sympy', 'matplotlib') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_verify_index_json():
    r = run("verify", "index", "--n", "64", "--json")
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)
    assert KEYS <= set(v) and v["verified"] and v["task"] == "index"


def test_small_n_json_is_valid_and_samples_zero_works():
    r = run("verify", "index", "--n", "8", "--json", "--samples", "0")
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)
    assert v["verified"] and "every position" in v["enumerated"]
    assert all(c["name"] != "tail" for c in v["certificates"])  # no vacuous tail lemma


def test_precision_that_fits_the_tokens_is_checked_not_refused():
    r = run("verify", "counting", "--n", "63", "--precision", "6")
    assert r.exit_code == 1  # tokens 0..63 fit in 6 bits; the proof fails, it is not a usage error


def test_verify_index_too_little_precision_exits_1():
    r = run("verify", "index", "--n", "256", "--precision", "12")
    assert r.exit_code == 1
    assert "NOT VERIFIED" in r.output and "witness" in r.output


@pytest.mark.parametrize("args", [
    ["verify", "index", "--n", "0"], ["verify", "index", "--n", "-4"],
    ["verify", "index", "--n", "2.5"], ["verify", "nosuchtask", "--n", "4"],
    ["verify", "index", "--n", "100", "--precision", "60"],
    ["verify", "index", "--n", "65536", "--precision", "12"],
    ["verify", "index", "--n", "8", "--c", "3"],
    ["construct", "index", "--n", "0", "--out", "x"],
    ["construct", "index", "--n", "8", "--out", ""],
    ["verify", "index", "--n", "16", "--alphabet", "100000000"],
    ["verify", "cgram", "--n", "1000000"],
    ["verify", "all", "--n", "5"],
    ["verify", "ar", "--n", "5"],
    ["verify", "index", "--n", "8", "--samples", "1000000000"],
])
def test_bad_input_is_a_usage_error(args):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output


def test_construct_writes_files_and_rejects_unwritable(tmp_path):
    r = run("construct", "index", "--n", "32", "--out", str(tmp_path / "m"), "--json")
    assert r.exit_code == 0, r.output
    assert sorted(json.loads(r.stdout)["files"]) == ["config.json", "model.safetensors",
                                                     "vocab.json"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("construct", "index", "--n", "32", "--out", str(blocker / "sub"))
    assert r.exit_code == 2 and "cannot write" in r.output


def test_plot_and_search_precision(tmp_path):
    png = tmp_path / "p.png"
    r = run("verify", "index", "--n", "64", "--search-precision", "--plot", str(png), "--json")
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)
    s = v["precision_search"]
    assert s["least_verifying"] <= v["precision_bits"]
    assert s["checked_below"]["verified"] is False
    assert png.stat().st_size > 1000


def test_verify_istree_hybrid_method_is_registered():
    r = run("verify", "istree", "--method", "hybrid-fsm", "--n", "3", "--json")
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)
    assert v["verified"] and v["failures"] == 0 and v["lookup_mismatches"] == 0


def test_run_istree_hybrid_method():
    r = run("run", "istree", "--method", "hybrid-fsm", "--n", "5", "--edges", "0-1,0-2,1-2,3-4",
            "--quiet", "--json")
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)
    assert v["verdict"] is False and v["truth"] is False and v["lookup_mismatches"] == 0
    assert run("run", "istree", "--method", "hybrid-fsm", "--n", "5", "--scaling").exit_code == 2
