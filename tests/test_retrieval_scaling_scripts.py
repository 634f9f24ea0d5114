"""The retrieval-scaling experiment's scripts (experiments/retrieval_scaling): bad settings are
one-line errors before anything runs, a stored result made with other settings is never reused,
the pilots have distinct names and the settings they claim, and the per-position analysis adds
up to the accuracy ``rnngap eval`` reports on the same held-out stream."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rnngap.learned.data import DataSpec
from rnngap.learned.evaluate import evaluate, load_run
from rnngap.learned.setup import learned_max_len
from rnngap.learned.train import TrainConfig, train
from rnngap.models.lm import LMConfig

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.timeout(120)]

HERE = Path(__file__).resolve().parents[1] / "experiments" / "retrieval_scaling"


def _load(name: str):
    sys.path.insert(0, str(HERE))
    try:
        spec = importlib.util.spec_from_file_location(f"rs_{name}", HERE / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(HERE))


RUN = _load("run")
PILOT = _load("pilot")
PERPOS = _load("per_position")
SUMMARIZE = _load("summarize")


def _settings(**kw) -> argparse.Namespace:
    return PILOT.settings(**kw)


def test_unknown_task_exits_2_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    p = subprocess.run([sys.executable, str(HERE / "run.py"), "--tasks", "ar,nope", "--runs",
                        str(tmp_path / "runs"), "--out", str(out)], check=False,
                       capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert "unknown ['nope']" in p.stderr
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_a_model_that_does_not_fit_is_refused_before_anything_runs(capsys) -> None:
    ok = RUN.make_spec("ar", 16, "transformer", 0, 5e-3, _settings(), "main")
    bad = RUN.make_spec("ar", 16, "transformer", 0, 5e-3, _settings(), "main")
    bad["model"] = {**bad["model"], "n_heads": 3}            # 32 is not divisible by 3
    RUN.validate([ok])
    with pytest.raises(SystemExit) as e:
        RUN.validate([ok, bad])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {bad['name']}:")


def test_a_result_made_with_other_settings_is_not_reused(capsys) -> None:
    spec = RUN.make_spec("index", 32, "hybrid", 1, 5e-3, _settings(), "main")
    row = {**{k: spec[k] for k in RUN.MATCH}, "mix_min_n": spec["min_n"],
           "d_model": spec["model"]["d_model"], "n_layers": spec["model"]["n_layers"]}
    RUN.check_stored(spec, row)                                  # same settings: reused
    with pytest.raises(SystemExit) as e:
        RUN.check_stored(spec, {**row, "n_layers": 2})           # launch 4's hybrid
    assert e.value.code == 2
    assert "already run with other settings (n_layers 2 != 1)" in capsys.readouterr().err


def test_experiment_hybrid_has_one_attention_layer_and_matched_size() -> None:
    from rnngap.models.lm import LM
    kw = RUN.ARCH_KW["hybrid"]
    cfg = LMConfig(arch="hybrid", vocab_size=65, embedding="learned", max_len=67, **kw)
    kinds = [x["kind"] for x in cfg.layer_pattern()]
    assert kinds.count("attention") == 1 and kinds[-1] == "attention"
    sizes = {}
    for arch in ("transformer", "hybrid"):
        m = LM(LMConfig(arch=arch, vocab_size=65, embedding="learned", max_len=67,
                        **RUN.ARCH_KW[arch]))
        sizes[arch] = sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert abs(sizes["hybrid"] - sizes["transformer"]) / sizes["transformer"] < 0.15


def test_pilots_have_distinct_names_and_the_settings_they_name() -> None:
    specs = [PILOT.pilot_spec(*p) for p in PILOT.PILOTS]
    assert len({s["name"] for s in specs}) == len(specs)
    RUN.validate(specs)
    for s in specs:
        if "-batch_size64" in s["name"]:
            assert s["batch_size"] == 64
        if "-steps5000" in s["name"]:
            assert s["steps"] == 5000
        if s["name"].endswith("-mid"):
            assert s["model"]["n_layers"] == 2 and s["model"]["d_mlp"] == 16
        if "-norope" in s["name"]:
            assert s["rope"] is False
        if "-nheads1" in s["name"]:
            assert s["model"]["n_heads"] == 1
    committed = json.loads((HERE / "pilots5.json").read_text())
    assert [r["name"] for r in committed["rows"]] == [s["name"] for s in specs]


def test_per_position_adds_up_to_the_eval_accuracy(tmp_path: Path) -> None:
    data = DataSpec("index", 8)
    mc = LMConfig(arch="transformer", vocab_size=data.vocab_size(), embedding="learned",
                  max_len=learned_max_len(data), **RUN.ARCH_KW["transformer"])
    run = tmp_path / "run"
    train(run, mc, data, TrainConfig(steps=60, batch_size=32, lr=5e-3, warmup=10, seed=3,
                                     log_every=30, eval_every=60, ckpt_every=60,
                                     eval_batches=1), progress=False)
    got = PERPOS.by_position(run, 512, 3)
    lm, d2, _, _ = load_run(run)
    ev = evaluate(lm, d2, 512, 256, 3)
    assert got["samples"] == 512
    assert got["accuracy"] == pytest.approx(ev["accuracy_generation"], abs=0)
    assert all(1 <= j <= 8 for j in got["weak_positions"])
    assert got["weak_in_upper_half"] == sum(1 for j in got["weak_positions"] if j > 4)
    # the summary renders what the file holds
    f = tmp_path / "pp.json"
    f.write_text(json.dumps({"command": "x", "samples": 512,
                             "rows": [{"name": "r", **got, "arch": "transformer", "seed": 3}]}))
    SUMMARIZE.HERE, old = tmp_path, SUMMARIZE.HERE
    try:
        (tmp_path / "per_position.json").write_text(f.read_text())
        lines = SUMMARIZE._per_position()
    finally:
        SUMMARIZE.HERE = old
    assert any(ln.startswith(f"| r | {got['accuracy']:.3f} | {len(got['weak_positions'])} of 8 |")
               for ln in lines)


@pytest.mark.parametrize("script", ["pilot.py", "per_position.py"])
def test_an_existing_results_file_is_not_replaced_without_overwrite(tmp_path: Path,
                                                                    script: str) -> None:
    out = tmp_path / "out.json"
    out.write_text("kept\n")
    p = subprocess.run([sys.executable, str(HERE / script), "--runs", str(tmp_path / "runs"),
                        "--out", str(out)], check=False, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert "--overwrite" in p.stderr and out.read_text() == "kept\n"


def test_per_position_without_runs_is_one_line_exit_2(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, str(HERE / "per_position.py"), "--runs",
                        str(tmp_path / "none"), "--out", str(tmp_path / "o.json")],
                       check=False, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert "run directories missing" in p.stderr and not (tmp_path / "o.json").exists()
