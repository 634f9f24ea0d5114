"""Exports say how to run them (issue 13): format tag, spec pointer and every forward
convention in config.json, for constructions and trained runs; old folders keep loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnngap.cli import main
from rnngap.models import export_format as X

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(120)]
DOC = (Path(__file__).resolve().parents[1] / "docs" / "export-format.md").read_text()


def test_every_convention_block_is_documented() -> None:
    """Each block written into config.json has its section in the spec, and the spec names the
    settings and tensors the blocks refer to (a presence check: the statements themselves are
    checked against the models by the tests of each model and by review)."""
    for block in ("transformer", "rounding", "hybrid_lrnn", "lm"):
        assert f"`conventions.{block}`" in DOC
    for key in (*X.COMMON, "rope_base", "norm_eps", "pos_table", "attn_scale", "d_conv",
                "dt_rank", "expand", "tok_embed", "pos_embed", "lm_head", "conv_weight",
                "precision_bits", "ties to even"):
        assert key in DOC, key


@pytest.mark.parametrize("model,kind", [("transformer", "transformer"),
                                        ("hybrid", "hybrid_lrnn")])
def test_construction_export_carries_the_conventions(tmp_path: Path, model, kind) -> None:
    out = tmp_path / "c"
    r = CliRunner().invoke(main, ["construct", "index", "--n", "8", "--model", model,
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["format"] == X.CONSTRUCTION_FORMAT and cfg["spec"] == X.SPEC
    assert cfg["conventions"]["rounding"] == X.ROUNDING
    assert ("hybrid_lrnn" in cfg["conventions"]) == (kind == "hybrid_lrnn")
    # an export from before the header loads the same
    for k in ("format", "spec", "conventions"):
        cfg.pop(k)
    (out / "config.json").write_text(json.dumps(cfg))
    from rnngap.constructions.base import load
    c = load(out)
    assert c.kind == kind
    assert c.task == "index" and c.n == 8


def test_run_config_carries_effective_settings_and_old_runs_resume(tmp_path: Path) -> None:
    run = tmp_path / "r"
    base = ["train", "--task", "ar", "--n", "8", "--arch", "hybrid", "--steps", "6",
            "--batch-size", "4", "--ckpt-every", "3", "--no-progress"]
    r = CliRunner().invoke(main, [*base, "--out", str(run)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["format"] == X.RUN_FORMAT
    eff = cfg["conventions"]["effective"]
    assert eff["transformer"]["rope_base"] == 10000.0 and eff["transformer"]["n_layers"] == 1
    assert eff["mamba"]["expand"] == 2 and eff["mamba"]["d_conv"] == 4
    assert eff["mamba"]["dt_rank"] == 2                     # ceil(32 / 16)
    # a run written before the header existed: same sections, no header -> eval and resume work
    for k in ("format", "spec", "conventions"):
        cfg.pop(k)
    (run / "config.json").write_text(json.dumps(cfg))
    r = CliRunner().invoke(main, ["eval", str(run), "--samples", "8", "--json"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--steps", "6",
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
