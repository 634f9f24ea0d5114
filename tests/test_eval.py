"""Tests for evaluation: live retrieval in generation, both metrics, the eval CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rnngap.commands.evaluate import evaluate as eval_cmd
from rnngap.learned.configs import named_config
from rnngap.learned.data import TEST, DataSpec, make_batch
from rnngap.learned.evaluate import evaluate, generate, load_run
from rnngap.learned.train import TrainConfig, train
from rnngap.models.lm import LM
from rnngap.tasks import istree

pytestmark = pytest.mark.usefixtures("one_thread")


class ScriptedLM(torch.nn.Module):
    """A stand-in model that writes the gold IsTree continuation, EXCEPT that where the
    retriever should write a token it predicts ``[PAD]`` (a wrong guess). Generation reproduces
    the gold sequence only if the retrieval environment really supplies those tokens."""

    def __init__(self, spec: DataSpec, seed: int) -> None:
        super().__init__()
        self.spec, self.seed = spec, seed
        self.V = spec.vocab_size()
        self.device = torch.device("cpu")
        self.gold: dict[tuple, np.ndarray] = {}
        for i in range(4):
            b = make_batch(spec, 8, seed, i, TEST)
            for r in range(8):
                toks = b.tokens[r][b.tokens[r] != istree.PAD]
                self.gold[tuple(toks[:b.prompt_len[r]])] = toks

    def _predict(self, ctx: list[int]) -> int:
        for prompt, toks in self.gold.items():
            p = len(prompt)
            if tuple(ctx[:p]) == prompt and len(ctx) < len(toks) and \
                    np.array_equal(toks[:len(ctx)], ctx):
                return istree.PAD if toks[len(ctx) - 1] == istree.E else int(toks[len(ctx)])
        return 10  # [UNK]: off the gold path

    def _logits(self, tok: int) -> torch.Tensor:
        out = torch.full((self.V,), -1e9)
        out[tok] = 0.0
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # teacher forcing
        return torch.stack([torch.stack([self._logits(self._predict(row[:t + 1].tolist()))
                                         for t in range(x.shape[1])]) for row in x])

    def init_state(self, batch: int) -> dict:
        return {"ctx": None}

    def prefill(self, tokens: torch.Tensor, state: dict) -> torch.Tensor:
        state["ctx"] = [row.tolist() for row in tokens]
        return torch.stack([self._logits(self._predict(c)) for c in state["ctx"]])[:, None]

    def step(self, tok: torch.Tensor, state: dict) -> torch.Tensor:
        for c, t in zip(state["ctx"], tok.tolist()):
            c.append(t)
        return torch.stack([self._logits(self._predict(c)) for c in state["ctx"]])


def test_generation_executes_retrievals_live() -> None:
    spec = DataSpec("istree", 6, "retrieval")
    lm = ScriptedLM(spec, seed=0)
    res = evaluate(lm, spec, samples=16, batch_size=8, seed=0)
    assert res["retrievals_executed"] > 16
    assert res["retrieval_failures"] < res["retrievals_executed"]
    assert res["accuracy_generation"] == 1.0 and res["exact_sequence_generation"] == 1.0
    # teacher forcing feeds the gold retrieved tokens, but the scripted model's own guesses at
    # retrieved positions are never scored (not targets), so it is perfect there too
    assert res["accuracy_teacher_forced"] == 1.0


def test_without_retrieval_the_scripted_model_fails() -> None:
    spec = DataSpec("istree", 6, "retrieval")
    lm = ScriptedLM(spec, seed=0)
    b = make_batch(spec, 8, 0, 0, TEST)
    p = int(b.prompt_len[0])
    rows = np.flatnonzero(b.prompt_len == p)
    gen, nret = generate(lm, torch.from_numpy(b.tokens[rows, :p]), 400,
                         stop=(istree.TRUE, istree.FALSE))  # no environment
    assert nret == 0
    assert (gen == istree.PAD).any(axis=1).all()  # wrote its wrong guess after [ENDSEARCH]


@pytest.mark.parametrize("arch", ["mamba", "transformer", "hybrid"])
def test_incremental_generation_matches_full_recompute(arch: str) -> None:
    torch.manual_seed(1)
    lm = LM(named_config(arch, "tiny", 20)).eval()
    prompts = torch.randint(0, 20, (3, 5))
    gen, _ = generate(lm, prompts, 6)
    seq = prompts
    with torch.no_grad():
        for _ in range(6):
            nxt = lm(seq)[:, -1].argmax(-1)
            seq = torch.cat([seq, nxt[:, None]], 1)
    assert np.array_equal(gen, seq[:, 5:].numpy())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("runs") / "r"
    spec = DataSpec("istree", 5, "retrieval")
    tc = TrainConfig(steps=4, batch_size=4, warmup=1, eval_every=4, ckpt_every=4, eval_batches=1)
    train(d, named_config("hybrid", "tiny", spec.vocab_size()), spec, tc, progress=False)
    return d


def test_eval_cli_json_keys(run_dir: Path) -> None:
    res = CliRunner().invoke(eval_cmd, [str(run_dir), "--json", "--samples", "6",
                                        "--batch-size", "3"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for k in ("task", "n", "format", "arch", "accuracy_generation", "accuracy_teacher_forced",
              "retrievals_executed", "samples"):
        assert k in out
    assert out["arch"] == "hybrid" and out["samples"] == 6 and out["format"] == "retrieval"
    # larger n: the frozen number embedding extends to the bigger vocabulary
    res = CliRunner().invoke(eval_cmd, [str(run_dir), "--json", "--samples", "2", "--n", "7"])
    assert res.exit_code == 0 and json.loads(res.output)["n"] == 7
    lm, data, _, _ = load_run(run_dir, n=7)
    assert lm.cfg.vocab_size == istree.vocab_size(7) == data.vocab_size()


def test_eval_cli_errors(run_dir: Path, tmp_path: Path) -> None:
    r = CliRunner()
    assert r.invoke(eval_cmd, [str(tmp_path / "none")]).exit_code == 2
    (tmp_path / "empty").mkdir()
    res = r.invoke(eval_cmd, [str(tmp_path / "empty")])
    assert res.exit_code == 2 and "not an rnngap run" in res.output
    res = r.invoke(eval_cmd, [str(run_dir), "--format", "zzz"])
    assert res.exit_code == 2 and "unknown format" in res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((run_dir / "config.json").read_text())
    (bad / "checkpoint.safetensors").write_bytes(
        (run_dir / "checkpoint.safetensors").read_bytes()[:100])
    res = r.invoke(eval_cmd, [str(bad)])
    assert res.exit_code == 2 and "corrupted or truncated" in res.output
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["model"]["model"] = "transformer"
    (bad / "config.json").write_text(json.dumps(cfg))
    res = r.invoke(eval_cmd, [str(bad)])
    assert res.exit_code == 2 and "not a usable run config" in res.output


def test_retrieval_task_eval(tmp_path: Path) -> None:
    spec = DataSpec("index", 5)
    tc = TrainConfig(steps=3, batch_size=4, warmup=1, eval_every=3, ckpt_every=3, eval_batches=1)
    train(tmp_path / "i", named_config("mamba", "tiny", spec.vocab_size()), spec, tc,
          progress=False)
    lm, data, _, _ = load_run(tmp_path / "i")
    res = evaluate(lm, data, 10, 4, 0)
    assert res["retrievals_executed"] == 0 and 0 <= res["accuracy_generation"] <= 1


def test_eval_cli_bad_device_and_n(run_dir: Path, tmp_path: Path) -> None:
    """Review items 2 and 4: one-line usage errors (exit 2), no traceback, no huge allocation."""
    r = CliRunner()
    res = r.invoke(eval_cmd, [str(run_dir), "--device", "tpu"])
    assert res.exit_code == 2 and "--device 'tpu'" in res.output
    assert isinstance(res.exception, SystemExit)
    # the device is checked before the run directory is read
    res = r.invoke(eval_cmd, [str(tmp_path / "none"), "--device", "tpu"])
    assert res.exit_code == 2
    if not torch.cuda.is_available():
        res = r.invoke(eval_cmd, [str(run_dir), "--device", "cuda"])
        assert res.exit_code == 2 and "CUDA is not available" in res.output
    res = r.invoke(eval_cmd, [str(run_dir), "--n", "1000000000"])
    assert res.exit_code == 2 and "8192" in res.output


def test_eval_of_a_cuda_scan_run_falls_back_without_the_kernel(run_dir: Path,
                                                               tmp_path: Path) -> None:
    from rnngap.models.mamba import _cuda_scan_available

    if torch.cuda.is_available() and _cuda_scan_available():
        pytest.skip("the mamba_ssm kernel is available here")
    d = tmp_path / "gpu_run"
    d.mkdir()
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["model"]["scan"] = "cuda"
    (d / "config.json").write_text(json.dumps(cfg))
    # as a run trained with the kernel would be: its checkpoint names this config's digest
    from safetensors import safe_open
    from safetensors.torch import save_file

    from rnngap.learned.checkpoint import config_digest
    with safe_open(str(run_dir / "checkpoint.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta["config_digest"] = config_digest(cfg)
    save_file(tensors, d / "checkpoint.safetensors", metadata={"meta": json.dumps(meta)})
    res = CliRunner().invoke(eval_cmd, [str(d), "--json", "--samples", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["samples"] == 2


def test_one_decode_loop_for_constructions_and_trained_models(monkeypatch) -> None:
    """Issue 13: the hand-set IsTree models and the trained models decode through the same
    loop (models.decode.greedy_decode); retrieval is plugged into its step."""
    from rnngap.constructions.istree import hybrid as Hy
    from rnngap.constructions.istree import transformer as X
    from rnngap.models import decode

    assert X.greedy_decode is decode.greedy_decode and Hy.greedy_decode is decode.greedy_decode
    calls = []
    real = decode.greedy_decode
    monkeypatch.setattr(decode, "greedy_decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    spec = DataSpec("istree", 6, "retrieval")
    lm = ScriptedLM(spec, seed=0)
    b = make_batch(spec, 4, 0, 0, TEST)
    p = int(b.prompt_len[0])
    rows = np.flatnonzero(b.prompt_len == p)
    generate(lm, torch.from_numpy(b.tokens[rows, :p]), 5, stop=(istree.TRUE, istree.FALSE))
    assert calls == [1]
