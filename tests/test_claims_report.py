"""The claims ledger stays in sync with the CLI; statuses are computed; the report renders."""

import json
import warnings

import click
import pytest

from rnngap.cli import main
from rnngap.paper_refs.ledger import Check, Claim, evaluate, judge, load_ledger


def _resolve(args):
    """Parse an rnngap argument list down to the leaf command (raises on unknown flags)."""
    ctx = main.make_context("rnngap", list(args), resilient_parsing=False)
    cmd, rest = main, list(args)
    while isinstance(cmd, click.Group):
        name, sub, rest = cmd.resolve_command(ctx, rest)
        ctx = sub.make_context(name, list(rest), parent=ctx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = ctx.protected_args + ctx.args if isinstance(sub, click.Group) else []
        cmd = sub
    return cmd


def test_ledger_covers_c1_to_c9_and_commands_parse():
    ledger = load_ledger()
    assert [c.claim for c in ledger] == [f"C{i}" for i in range(1, 10)]
    for claim in ledger:
        assert claim.checks or claim.unchecked, claim.claim  # no silent gaps
        for check in claim.checks:
            for args in (check.command, check.quick):
                assert _resolve(args) is not None


def test_judge():
    assert judge({"exit_code": 0}, 0, "") is None
    assert judge({"exit_code": 0}, 1, "") is not None
    out = json.dumps([{"task": "a", "verified": True}, {"task": "b", "verified": False}])
    assert "b" in judge({"all_true": "verified"}, 0, out)
    assert judge({"equals": {"x": 1}}, 0, json.dumps({"x": 1})) is None
    assert judge({"all_have": ["y"]}, 0, json.dumps({"x": 1})) == "missing key y"
    assert judge({"all_true": "verified"}, 0, "not json") == "output is not JSON"


def test_statuses_follow_the_runs():
    ok = Check("help", ["verify", "--help"], ["verify", "--help"], {"exit_code": 0})
    bad = Check("bad", ["verify", "index", "--n", "0"], ["verify", "index", "--n", "0"],
                {"exit_code": 0})
    assert evaluate(Claim("X", "", "", [ok], None), True, main)["status"] == "verified"
    assert evaluate(Claim("X", "", "", [ok], "part"), True, main)["status"] == "partially verified"
    assert evaluate(Claim("X", "", "", [ok, bad], None), True, main)["status"] == "FAILED"
    assert evaluate(Claim("X", "", "", [], "why"), True, main)["status"] == "not checked"


def test_claims_cli_single_claim_json():
    from click.testing import CliRunner

    r = CliRunner().invoke(main, ["claims", "--quick", "--claim", "C3", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert rows[0]["claim"] == "C3" and rows[0]["status"] == "partially verified"
    assert "unchecked:" in rows[0]["evidence"]
    assert set(rows[0]) == {"claim", "paper_ref", "status", "evidence", "command"}
    r = CliRunner().invoke(main, ["claims", "--claim", "C99"])
    assert r.exit_code == 2


def test_report_without_runs(tmp_path):
    from click.testing import CliRunner

    r = CliRunner().invoke(main, ["report", "--task", "index", "--out", str(tmp_path),
                                  "--n-max", "16", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert [p["accuracy"] for p in rep["construction"]["points"]] == [1.0, 1.0, 1.0]
    assert rep["reference_bits"] and set(rep["ceilings"]) == {"64", "512", "4096"}
    for f in ("report.png", "report.md", "report.json"):
        assert (tmp_path / f).stat().st_size > 100


def test_report_rejects_non_run(tmp_path):
    from click.testing import CliRunner

    r = CliRunner().invoke(main, ["report", "--task", "index", "--runs", str(tmp_path),
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a run directory" in r.output


@pytest.mark.slow
def test_report_with_a_trained_run(tmp_path):
    from click.testing import CliRunner

    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--task", "index", "--n", "4", "--arch", "mamba",
                                  "--size", "tiny", "--steps", "5", "--out", str(run),
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["report", "--task", "index", "--runs", str(run), "--out",
                                  str(tmp_path / "rep"), "--n-max", "8", "--samples", "16",
                                  "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["models"][0]["state_bits"] > 0 and len(rep["models"][0]["points"]) == 2


def test_istree_report_draws_both_constructions(tmp_path):
    from click.testing import CliRunner

    from rnngap.verify import report as R

    r = CliRunner().invoke(main, ["report", "--task", "istree", "--out", str(tmp_path),
                                  "--n-max", "8", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    labels = [c["label"] for c in rep["constructions"]]
    assert len(labels) == 2 and "Transformer construction" in labels[1]
    pts = rep["constructions"][1]["points"]
    assert pts[0]["verified"] and [p["accuracy"] for p in pts] == [1.0, 1.0]
    far = R.transformer_istree_points([R.TRANSFORMER_ISTREE_MAX_N * 2], 0)["points"][0]
    assert far["accuracy"] is None and "not run" in far["note"]
