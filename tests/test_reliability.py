"""Reliability: exit codes, Ctrl-C, output directories, checkpoint integrity, memory guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from rnngap import resources
from rnngap.cli import main
from rnngap.commands._common import UserError, staged_out_dir

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("one_thread")]

TINY = ["--size", "tiny", "--steps", "2", "--batch-size", "2", "--log-every", "1",
        "--eval-every", "2", "--no-progress"]


def _cli(args) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


# ----------------------------------------------------------------------------- Ctrl-C
def _interrupt(args: list[str], after: float, tmp_path: Path) -> subprocess.CompletedProcess:
    """Start ``rnngap ARGS`` in a subprocess, send SIGINT after ``after`` seconds of work."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "rnngap.cli", *args], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    assert p.poll() is None, "finished before the interrupt: pick a longer job"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def test_ctrl_c_in_verify_exits_130_and_says_interrupted(tmp_path: Path) -> None:
    # every edge set in every order at n = 6: minutes of work, interrupted after a few seconds
    r = _interrupt(["verify", "istree", "--method", "transformer", "--n", "6", "--orders", "all",
                    "--samples", "0"], 6.0, tmp_path)
    assert r.returncode == 130, r.stderr[-2000:]
    assert "interrupted" in r.stderr and "Traceback" not in r.stderr
    assert "VERIFIED" not in r.stdout and "FAILED" not in r.stdout


def test_ctrl_c_in_claims_is_not_a_failed_claim(tmp_path: Path) -> None:
    r = _interrupt(["claims"], 8.0, tmp_path)
    assert r.returncode == 130, r.stderr[-2000:]
    assert "interrupted (Ctrl-C) after" in r.stderr and "Traceback" not in r.stderr
    assert "FAILED" not in r.stdout


# ----------------------------------------------------------------------------- out dirs
def test_construct_never_overwrites_without_flag_and_replaces_only_when_complete(
        tmp_path: Path) -> None:
    out = tmp_path / "c"
    assert _cli(["construct", "index", "--n", "8", "--out", out])[0] == 0
    first = (out / "config.json").read_text()
    code, _, err = _cli(["construct", "index", "--n", "16", "--out", out])
    assert code == 2 and "--overwrite" in err
    assert (out / "config.json").read_text() == first
    assert _cli(["construct", "index", "--n", "16", "--out", out, "--overwrite"])[0] == 0
    assert json.loads((out / "config.json").read_text())["construction"]["n"] == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]     # no staging left behind


def test_staged_out_dir_keeps_the_old_result_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "result.txt").write_text("old")
    with pytest.raises(UserError), staged_out_dir(out, overwrite=False):
        pass
    with pytest.raises(RuntimeError, match="half way"), \
            staged_out_dir(out, overwrite=True) as stage:
        (stage / "result.txt").write_text("new, incomplete")
        raise RuntimeError("half way")
    assert (out / "result.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    with staged_out_dir(out, overwrite=True) as stage:
        (stage / "result.txt").write_text("new")
    assert (out / "result.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_train_overwrite_trains_aside_then_replaces(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _cli(["train", "--task", "ar", "--n", "8", "--arch", "transformer", *TINY,
                 "--out", out])[0] == 0
    code, _, err = _cli(["train", "--task", "ar", "--n", "8", "--arch", "mamba", *TINY,
                         "--out", out])
    assert code == 2 and "--overwrite" in err
    assert json.loads((out / "config.json").read_text())["model"]["arch"] == "transformer"
    code, stdout, _ = _cli(["train", "--task", "ar", "--n", "8", "--arch", "mamba", *TINY,
                            "--out", out, "--overwrite", "--json"])
    assert code == 0 and json.loads(stdout)["run"] == str(out)
    assert json.loads((out / "config.json").read_text())["model"]["arch"] == "mamba"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # the replaced run is whole: it evaluates
    assert _cli(["eval", out, "--samples", "4", "--no-progress"])[0] == 0


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_digest_catches_damaged_bytes_and_nan(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from rnngap.learned import checkpoint as ck
    run = tmp_path / "run"
    assert _cli(["train", "--task", "index", "--n", "6", "--arch", "mamba", *TINY,
                 "--out", run])[0] == 0
    cfg = ck.read_run_config(run)
    tensors, meta = ck.read_checkpoint(run, cfg)
    assert meta["tensor_sha256"] == ck.tensor_digest(tensors)
    # one flipped bit in a weight, header intact
    raw = bytearray((run / ck.CKPT).read_bytes())
    raw[-20] ^= 0x01
    (run / ck.CKPT).write_bytes(bytes(raw))
    with pytest.raises(ck.CheckpointError, match="digest"):
        ck.read_checkpoint(run)
    # a consistent file whose weights are NaN
    t = {k: v.clone() for k, v in tensors.items()}
    key = next(k for k in t if k.startswith("model.") and t[k].is_floating_point())
    t[key][...] = float("inf")
    save_file(t, run / ck.CKPT, metadata={"meta": json.dumps(
        {**meta, "tensor_sha256": ck.tensor_digest(t)})})
    with pytest.raises(ck.CheckpointError, match="NaN or infinite"):
        ck.read_checkpoint(run)
    assert torch.isfinite(load_file(run / ck.CKPT)["rng.torch"].float()).all()
    # an older checkpoint without a digest still loads
    save_file(tensors, run / ck.CKPT, metadata={"meta": json.dumps(
        {k: v for k, v in meta.items() if k != "tensor_sha256"})})
    assert ck.read_checkpoint(run, cfg)[1]["step"] == meta["step"]


def test_divergence_stops_training_with_one_line_and_no_nan_in_metrics(
        tmp_path: Path, monkeypatch) -> None:
    import rnngap.learned.train as tr
    real = tr.masked_loss

    def poisoned(logits, targets, mask):
        loss, hits, ok = real(logits, targets, mask)
        return loss * float("nan"), hits, ok
    monkeypatch.setattr(tr, "masked_loss", poisoned)
    code, _, err = _cli(["train", "--task", "ar", "--n", "8", "--arch", "transformer", *TINY,
                         "--out", tmp_path / "d"])
    assert code == 1 and "diverged at step 1" in err
    metrics = tmp_path / "d" / "metrics.jsonl"
    assert not metrics.exists() or "NaN" not in metrics.read_text()


# ----------------------------------------------------------------------------- memory
@pytest.mark.parametrize("text,expected", [("512M", 512 * 2 ** 20), ("4G", 4 * 2 ** 30),
                                           ("1.5GiB", int(1.5 * 2 ** 30)), ("2GB", 2 * 10 ** 9),
                                           ("123", 123), ("1e9", 10 ** 9)])
def test_parse_size(text: str, expected: int) -> None:
    assert resources.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "4 X", "G"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        resources.parse_size(text)


@given(st.integers(1, 2 ** 50), st.integers(1, 2 ** 50))
def test_require_refuses_exactly_above_the_limit(limit: int, need: int) -> None:
    resources.set_limit(limit)
    try:
        if need > limit:
            with pytest.raises(resources.ResourceError, match="--max-memory"):
                resources.require(need, "x")
        else:
            resources.require(need, "x")
    finally:
        resources.set_limit(None)


@given(st.sampled_from(["transformer", "mamba", "hybrid"]), st.integers(1, 64),
       st.integers(2, 512))
def test_memory_estimate_grows_with_batch_and_length(arch: str, batch: int, length: int) -> None:
    from rnngap.learned.configs import named_config
    from rnngap.models.lm import memory_estimate
    cfg = named_config(arch, "tiny", 40)
    base, params = memory_estimate(cfg, batch, length, training=True)
    assert params > 0 and base > 4 * params
    assert memory_estimate(cfg, batch + 1, length, True)[0] > base
    assert memory_estimate(cfg, batch, length + 1, True)[0] > base
    assert memory_estimate(cfg, batch, length, False)[0] < base


def test_memory_guard_is_checked_at_the_allocation_too() -> None:
    """Library users (no CLI) get the same refusal from the attention and the scan."""
    import torch

    from rnngap.learned.configs import named_config
    from rnngap.models.lm import LM
    for arch in ("transformer", "mamba"):
        lm = LM(named_config(arch, "tiny", 40))
        resources.set_limit(1024)
        try:
            with pytest.raises(resources.ResourceError, match="needs about"):
                lm(torch.zeros(2, 64, dtype=torch.long))
        finally:
            resources.set_limit(None)
