"""Tests for training: determinism, resume, checkpoints, CLI errors, DDP (gloo, 2 processes)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from rnngap.commands.train import train as train_cmd
from rnngap.learned.checkpoint import CheckpointError, read_checkpoint
from rnngap.learned.configs import named_config
from rnngap.learned.data import DataSpec, make_batch
from rnngap.learned.train import TrainConfig, lr_at, train

DATA = DataSpec("istree", 6, "cot")


pytestmark = pytest.mark.usefixtures("one_thread")
TC = TrainConfig(steps=10, batch_size=4, lr=3e-3, warmup=2, log_every=2, eval_every=5,
                 eval_batches=1, ckpt_every=3)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(run / "checkpoint.safetensors")).items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arch", ["mamba", "transformer", "hybrid"])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path, arch: str) -> None:
    mc = named_config(arch, "tiny", DATA.vocab_size())
    full = train(tmp_path / "a", mc, DATA, TC, progress=False)
    part = train(tmp_path / "b", mc, DATA, TC, progress=False, stop_after=4)
    assert part["interrupted"] and part["step"] == 4
    assert read_checkpoint(tmp_path / "b")[1]["step"] == 4
    rest = train(tmp_path / "b", mc, DATA, TC, progress=False, resume=True)
    assert rest["step"] == full["step"] == 10
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert any(k.startswith("optim.") for k in wa)
    assert _same(wa, wb)  # weights, AdamW moments and RNG state, bit for bit
    steps = [json.loads(x)["step"] for x in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(x)["step"] for x in (tmp_path / "a/metrics.jsonl").read_text().splitlines()]


def test_training_reduces_loss_and_is_seeded(tmp_path: Path) -> None:
    spec = DataSpec("index", 4)
    mc = named_config("transformer", "tiny", spec.vocab_size())
    tc = TrainConfig(steps=150, batch_size=32, lr=1e-2, warmup=5, log_every=10,
                     eval_every=150, ckpt_every=150)
    train(tmp_path / "a", mc, spec, tc, progress=False)
    train(tmp_path / "b", mc, spec, tc, progress=False)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    rows = [json.loads(x) for x in (tmp_path / "a/metrics.jsonl").read_text().split("\n") if x]
    tr = [r["loss"] for r in rows if r["kind"] == "train"]
    assert tr[-1] < tr[0] - 0.3, tr


def test_lr_schedule() -> None:
    tc = TrainConfig(steps=100, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert lr_at(5, tc) == pytest.approx(0.5)
    assert lr_at(10, tc) == pytest.approx(1.0)
    assert lr_at(100, tc) == pytest.approx(0.1)
    assert lr_at(55, tc) == pytest.approx(0.55)


def test_data_stream_is_seeded_and_masks_retrieved_tokens() -> None:
    spec = DataSpec("istree", 8, "retrieval")
    a, b = make_batch(spec, 5, 3, 7), make_batch(spec, 5, 3, 7)
    assert (a.tokens == b.tokens).all()
    assert not (make_batch(spec, 5, 3, 8).tokens.shape == a.tokens.shape
                and (make_batch(spec, 5, 3, 8).tokens == a.tokens).all())
    assert a.retrieved_mask.any() and not (a.retrieved_mask & a.loss_mask).any()
    from rnngap.tasks.istree import E
    after_e = (a.tokens[:, :-1] == E) & (a.tokens[:, 1:] != 4)
    assert (a.retrieved_mask[:, 1:] == after_e).all()


def test_bad_resume_and_corrupted_checkpoint(tmp_path: Path) -> None:
    mc = named_config("mamba", "tiny", DATA.vocab_size())
    train(tmp_path / "a", mc, DATA, TC, progress=False, stop_after=3)
    with pytest.raises(CheckpointError, match="changed settings"):
        train(tmp_path / "a", mc, DATA, TrainConfig(**{**TC.__dict__, "lr": 1.0}),
              progress=False, resume=True)
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(tmp_path / "a", mc, DATA, TC, progress=False)
    ck = tmp_path / "a/checkpoint.safetensors"
    ck.write_bytes(ck.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        train(tmp_path / "a", mc, DATA, TC, progress=False, resume=True)


def test_cli_errors(tmp_path: Path) -> None:
    r = CliRunner()
    base = ["--size", "tiny", "--steps", "2", "--batch-size", "2", "--no-progress"]
    res = r.invoke(train_cmd, ["--out", str(tmp_path / "x"), "--format", "nope", *base])
    assert res.exit_code == 2 and "unknown format" in res.output
    res = r.invoke(train_cmd, ["--out", str(tmp_path / "x"), "--task", "index", "--format",
                               "cot", *base])
    assert res.exit_code == 2 and "only the 'plain' format" in res.output
    res = r.invoke(train_cmd, ["--out", str(tmp_path / "x"), "--n", "2", *base])
    assert res.exit_code == 2 and "n >= 4" in res.output
    res = r.invoke(train_cmd, ["--resume", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "not a directory" in res.output
    (tmp_path / "notrun").mkdir()
    res = r.invoke(train_cmd, ["--resume", str(tmp_path / "notrun")])
    assert res.exit_code == 2 and "not an rnngap run directory" in res.output
    ok = r.invoke(train_cmd, ["--out", str(tmp_path / "y"), "--json", *base])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["step"] == 2
    res = r.invoke(train_cmd, ["--resume", str(tmp_path / "y"), "--lr", "0.5"])
    assert res.exit_code == 2 and "changed hyperparameters" in res.output
    res = r.invoke(train_cmd, ["--resume", str(tmp_path / "y"), "--steps", "2", "--json"])
    assert res.exit_code == 0, res.output
    cfg = tmp_path / "off.json"
    cfg.write_text(json.dumps({"hidden_size": 16, "num_hidden_layers": 1, "state_size": 4}))
    res = r.invoke(train_cmd, ["--out", str(tmp_path / "z"), "--arch", "transformer",
                               "--config", str(cfg), *base])
    assert res.exit_code == 2 and "mamba config, not a transformer" in res.output


RNNGAP = [sys.executable, "-m", "rnngap.cli"]


def test_sigint_saves_checkpoint_then_resume_matches(tmp_path: Path) -> None:
    """A real Ctrl-C (SIGINT) to a training process: it checkpoints, exits 130, and resuming
    reaches the same final weights as an uninterrupted in-process run."""
    args = ["train", "--task", "index", "--n", "6", "--arch", "mamba", "--size", "tiny",
            "--steps", "150", "--batch-size", "8", "--ckpt-every", "5", "--eval-every", "150",
            "--warmup", "5", "--no-progress", "--threads", "1", "--embedding", "official"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*RNNGAP, *args, "--out", str(tmp_path / "k")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (tmp_path / "k/checkpoint.safetensors").exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    step = read_checkpoint(tmp_path / "k")[1]["step"]
    if step >= 150:
        pytest.skip("training finished before the signal arrived (machine too fast)")
    assert proc.returncode == 130, err.decode()[-500:]
    # resume and the uninterrupted reference run in-process (same single thread, same bits)
    mc = named_config("mamba", "tiny", DataSpec("index", 6).vocab_size())
    tc = TrainConfig(steps=150, batch_size=8, lr=3e-4, warmup=5, ckpt_every=5, eval_every=150)
    train(tmp_path / "k", mc, DataSpec("index", 6), tc, progress=False, resume=True)
    train(tmp_path / "ref", mc, DataSpec("index", 6), tc, progress=False)
    assert _same(_weights(tmp_path / "k"), _weights(tmp_path / "ref"))


NO_TORCHRUN = shutil.which("torchrun") is None and not Path(sys.executable).with_name(
    "torchrun").exists()


@pytest.mark.skipif(NO_TORCHRUN, reason="torchrun not installed")
def test_ddp_gloo_two_processes(tmp_path: Path) -> None:
    _ddp_run(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(NO_TORCHRUN, reason="torchrun not installed")
def test_ddp_teardown_never_fails_a_finished_run(tmp_path: Path) -> None:
    """Issue: 1 of 8 two-process runs exited 1 at teardown. Eight in a row must all exit 0."""
    for i in range(8):
        _ddp_run(tmp_path / str(i))


def _ddp_run(tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    res = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", port, "-m",
                          "rnngap.cli", "train", "--task", "index", "--task-n", "5", "--size",
                          "tiny", "--arch", "hybrid", "--steps", "6", "--batch-size", "4",
                          "--ckpt-every", "3", "--no-progress", "--json", "--device", "cpu",
                          "--out", str(tmp_path / "d")], env=env, capture_output=True,
                         timeout=180, check=False)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert json.loads(res.stdout)["world"] == 2  # exactly one JSON summary (rank 0)
    meta = read_checkpoint(tmp_path / "d")[1]
    assert meta["step"] == 6 and meta["world"] == 2
    assert json.loads((tmp_path / "d/config.json").read_text())["data"]["n"] == 5
    rows = [json.loads(x) for x in (tmp_path / "d/metrics.jsonl").read_text().split("\n") if x]
    assert rows and all(r["step"] <= 6 for r in rows)  # only rank 0 writes


BASE = ["--size", "tiny", "--steps", "2", "--batch-size", "2", "--no-progress"]


def _usage(args: list[str], *needles: str) -> None:
    res = CliRunner().invoke(train_cmd, [*args, *BASE])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit), res.exception  # no traceback
    assert len(res.output.strip().splitlines()[-1]) > 0 and "Error:" in res.output
    for nd in needles:
        assert nd in res.output, res.output


def test_cli_bad_out_device_scan_and_n_are_usage_errors(tmp_path: Path) -> None:
    """Review items 1-4: one line, exit 2, nothing written."""
    _usage(["--out", "/proc/rnngap-x"], "cannot create run directory")
    (tmp_path / "file").write_text("x")
    _usage(["--out", str(tmp_path / "file" / "sub")], "cannot create run directory")
    out = str(tmp_path / "r")
    _usage(["--out", out, "--device", "tpu"], "--device 'tpu'")
    if not torch.cuda.is_available():
        _usage(["--out", out, "--device", "cuda"], "CUDA is not available")
    from rnngap.models.mamba import _cuda_scan_available
    if not (torch.cuda.is_available() and _cuda_scan_available()):
        _usage(["--out", out, "--scan", "cuda"], "mamba-ssm", "rnngap[gpu]")
    _usage(["--out", out, "--n", "1000000000"], "--n", "8192")
    _usage(["--out", out, "--task", "index", "--task-param", "alphabet=1000000000"],
           "vocabulary")
    assert not (tmp_path / "r").exists()


def test_failed_start_writes_nothing_and_config_only_dir_starts_over(tmp_path: Path) -> None:
    """Review item 5: a start rejected by the model build leaves no config.json behind; a
    directory with config.json but no checkpoint can be started over, and --resume says how."""
    d = tmp_path / "D"
    _usage(["--out", str(d), "--arch", "hybrid", "--attn-position", "99"], "attn_position")
    assert not d.exists()
    r = CliRunner()
    ok = r.invoke(train_cmd, ["--out", str(d), "--arch", "hybrid", "--json", *BASE])
    assert ok.exit_code == 0, ok.output
    (d / "checkpoint.safetensors").unlink()  # as if it had died before its first checkpoint
    res = r.invoke(train_cmd, ["--resume", str(d)])
    assert res.exit_code == 2 and "starts it over" in res.output
    res = r.invoke(train_cmd, ["--out", str(d), "--arch", "hybrid", "--json", *BASE])
    assert res.exit_code == 2 and "--overwrite" in res.output     # never replaced silently
    ok = r.invoke(train_cmd, ["--out", str(d), "--arch", "hybrid", "--json", "--overwrite",
                              *BASE])
    assert ok.exit_code == 0, ok.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    assert (d / "checkpoint.safetensors").is_file()


def test_failure_before_first_checkpoint_is_cleaned_up(tmp_path: Path, monkeypatch) -> None:
    import rnngap.learned.train as tr

    def boom(*a, **k):
        raise RuntimeError("simulated failure in step 1")

    monkeypatch.setattr(tr, "masked_loss", boom)
    mc = named_config("mamba", "tiny", DATA.vocab_size())
    with pytest.raises(RuntimeError, match="simulated"):
        train(tmp_path / "new" / "run", mc, DATA, TC, progress=False)
    assert not (tmp_path / "new").exists()


def test_cli_rejects_bad_hyperparameters_naming_the_option(tmp_path: Path) -> None:
    """Review items 7 and 8."""
    out = str(tmp_path / "r")
    _usage(["--out", out, "--task", "index", "--official-quirks"], "istree only")
    _usage(["--out", out, "--grad-clip", "-1"], "--grad-clip")
    _usage(["--out", out, "--grad-clip", "nan"], "--grad-clip")
    _usage(["--out", out, "--weight-decay", "-5"], "--weight-decay")
    _usage(["--out", out, "--threads", "0"], "--threads")
    _usage(["--out", out, "--task", "cgram", "--task-param", "c=3", "--task-param", "c=4"],
           "--task-param", "more than once")
    _usage(["--out", out, "--lr", "-1"], "--lr", "-1.0")
    _usage(["--out", out, "--seed", "-1"], "--seed")
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="lr must be"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="grad_clip must be"):
        TrainConfig(grad_clip=0.0)
    with pytest.raises(ValueError, match="istree only"):
        DataSpec("index", 8, official_quirks=True)


def test_data_workers_give_the_same_run(tmp_path: Path) -> None:
    """--data-workers builds the same batches in worker processes: identical weights."""
    from rnngap.learned.train import train_batches
    spec = DataSpec("istree", 6, fmt="cot")
    tc = TrainConfig(steps=4, batch_size=4, warmup=1, eval_every=4, ckpt_every=4)
    a = list(train_batches(spec, tc, 1))
    b = list(train_batches(spec, tc, 1, workers=2))
    assert len(a) == len(b) == 3
    assert all(torch.equal(u, v) for x, y in zip(a, b) for u, v in zip(x, y))
    mc = named_config("mamba", "tiny", spec.vocab_size())
    train(tmp_path / "a", mc, spec, tc, progress=False)
    train(tmp_path / "b", mc, spec, tc, progress=False, data_workers=2)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
