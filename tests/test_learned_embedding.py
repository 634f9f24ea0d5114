"""The learned embedding, the held-out split, the fused scan, implied bits, IsTree early stop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from rnngap.commands.evaluate import evaluate as eval_cmd
from rnngap.commands.train import train as train_cmd
from rnngap.learned.data import (
    TEST,
    TEST_BUCKETS,
    TRAIN,
    VALID,
    DataSpec,
    is_test_input,
    make_batch,
    row_hash,
)
from rnngap.learned.evaluate import evaluate, load_run
from rnngap.learned.train import TrainConfig, train
from rnngap.models.lm import LM, LMConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_learned(data: DataSpec, arch: str = "transformer") -> LMConfig:
    kw = {"transformer": {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_mlp": 64},
          "mamba": {"d_model": 16, "n_layers": 1, "d_state": 4},
          "hybrid": {"d_model": 16, "n_layers": 2, "d_state": 4, "n_heads": 2, "d_mlp": 16,
                     "attn_position": 1}}[arch]
    t = data.task_obj()
    return LMConfig(arch=arch, vocab_size=data.vocab_size(), embedding="learned",
                    max_len=t.n + t.query_len() + 1, **kw)


@pytest.mark.timeout(120)
def test_learned_embedding_learns_ar_well_above_chance(tmp_path: Path) -> None:
    """A 2-layer width-32 Transformer with the learned embedding learns AR with 4 pairs in a
    few hundred steps; chance is about 1/4 (guessing among the values), so 0.8 cannot be met
    without retrieval. Held-out inputs only (the hash split)."""
    data = DataSpec("ar", 8)
    tc = TrainConfig(steps=400, batch_size=32, lr=3e-3, warmup=20, log_every=50,
                     eval_every=400, eval_batches=1, ckpt_every=400, seed=0)
    train(tmp_path / "r", _tiny_learned(data), data, tc, progress=False)
    lm, d, _, _ = load_run(tmp_path / "r")
    res = evaluate(lm, d, 256, 128, seed=0)
    assert res["embedding"] == "learned"
    assert res["accuracy_generation"] >= 0.8, res


@pytest.mark.timeout(60)
def test_official_embedding_is_frozen_and_learned_is_trainable() -> None:
    off = LM(LMConfig(arch="mamba", vocab_size=20, d_model=16, n_layers=1, d_state=4))
    lea = LM(LMConfig(arch="mamba", vocab_size=20, d_model=16, n_layers=1, d_state=4,
                      embedding="learned", max_len=12))
    # learned adds a V x d token table, a max_len x d position table and a d -> V head
    assert lea.trainable_parameters() - off.trainable_parameters() == 20 * 16 * 2 + 12 * 16
    assert off.total_parameters() - off.trainable_parameters() == 20 * 16
    assert lea.total_parameters() == lea.trainable_parameters()
    with pytest.raises(ValueError, match="unknown embedding"):
        LMConfig(arch="mamba", vocab_size=20, d_model=16, n_layers=1, embedding="bogus")
    x = torch.randint(0, 20, (2, 13))
    with pytest.raises(ValueError, match="position table"):
        lea(x)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("arch", ["transformer", "mamba", "hybrid"])
def test_learned_step_matches_forward(arch: str) -> None:
    """Incremental decoding adds the right position vector at every step."""
    data = DataSpec("index", 6)
    torch.manual_seed(0)
    lm = LM(_tiny_learned(data, arch)).eval()
    x = torch.randint(0, data.vocab_size(), (3, 7))
    full = lm(x)
    st_ = lm.init_state(3)
    pre = lm.prefill(x[:, :4], st_)
    steps = [lm.step(x[:, t], st_) for t in range(4, 7)]
    inc = torch.cat([pre, torch.stack(steps, 1)], 1)
    assert torch.allclose(full, inc, atol=1e-5)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("emb", ["official", "learned"])
def test_cli_both_embeddings_train_resume_eval(tmp_path: Path, emb: str) -> None:
    r = CliRunner()
    run = tmp_path / emb
    base = ["--task", "ar", "--n", "6", "--arch", "hybrid", "--size", "tiny", "--steps", "6",
            "--batch-size", "4", "--warmup", "1", "--ckpt-every", "3", "--eval-every", "3",
            "--embedding", emb, "--no-progress", "--json"]
    res = r.invoke(train_cmd, [*base, "--out", str(run)])
    assert res.exit_code == 0, res.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["embedding"] == emb
    # parenthesised: ``x == a if c else b`` would assert the constant b for official
    assert cfg["train"]["lr"] == (5e-3 if emb == "learned" else 3e-4)
    # resume with the same settings: nothing left to run, exit 0
    res = r.invoke(train_cmd, ["--resume", str(run), "--no-progress", "--json"])
    assert res.exit_code == 0, res.output
    before = (run / "config.json").read_text()
    other = "official" if emb == "learned" else "learned"
    for bad in (["--embedding", other], ["--lr", "0.5"]):
        res = r.invoke(train_cmd, ["--resume", str(run), *bad])
        assert res.exit_code == 2 and "changed" in res.output, res.output
        errs = [x for x in res.output.splitlines() if x.startswith("Error:")]
        assert len(errs) == 1 and "Traceback" not in res.output
    assert (run / "config.json").read_text() == before
    res = r.invoke(eval_cmd, [str(run), "--json", "--samples", "8", "--no-progress"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["embedding"] == emb and out["input_space"] == str(DataSpec("ar", 6)
                                                                 .task_obj().num_inputs())
    res = r.invoke(eval_cmd, [str(run), "--json", "--samples", "4", "--n", "10"])
    if emb == "learned":  # a learned table cannot grow: one-line error, exit 2
        assert res.exit_code == 2 and "learned embedding of 7 tokens" in res.output
    else:
        assert res.exit_code == 0 and json.loads(res.output)["n"] == 10


def test_unknown_embedding_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(train_cmd, ["--task", "ar", "--n", "6", "--embedding", "sine",
                                         "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "sine" in res.output
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- held out
@pytest.mark.timeout(60)
@pytest.mark.parametrize("task,n", [("index", 4), ("ar", 4), ("counting", 4), ("cgram", 5)])
def test_train_and_test_streams_are_disjoint(task: str, n: int) -> None:
    spec = DataSpec(task, n)
    train_rows = {tuple(r[:-1]) for i in range(40) for r in make_batch(spec, 64, 1, i,
                                                                         TRAIN).tokens}
    test_rows = [tuple(r[:-1]) for s in (VALID, TEST) for i in range(10)
                 for r in make_batch(spec, 64, 1, i, s).tokens]
    assert not train_rows & set(test_rows)
    assert all(is_test_input(np.array([r]))[0] for r in test_rows)
    assert not any(is_test_input(np.array(list(train_rows))))


@pytest.mark.timeout(60)
def test_istree_split_is_by_edge_set() -> None:
    """No reordering of a held-out graph is trained on: the hash is of the canonical edge set."""
    from rnngap.learned.data import _graph_keys
    spec = DataSpec("istree", 5, "plain")
    tb = make_batch(spec, 32, 0, 0, TEST)
    assert tb.edges is not None
    keys = _graph_keys(5, tb.edges)
    assert is_test_input(keys).all()
    rev = _graph_keys(5, [e[::-1, ::-1] for e in tb.edges])
    assert np.array_equal(row_hash(keys), row_hash(rev))


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=12))
def test_row_hash_is_a_function_of_the_row(row: list[int]) -> None:
    a = np.array([row, row], dtype=np.int64)
    h = row_hash(a)
    assert h[0] == h[1]
    b = np.array([row + [0]], dtype=np.int64)  # a longer row is another input
    assert row_hash(b)[0] != h[0] or len(set(row)) == 0


def test_test_bucket_fraction_is_near_one_sixteenth() -> None:
    rows = np.random.default_rng(0).integers(0, 100, (40000, 9))
    frac = is_test_input(rows).mean()
    assert abs(frac - 1 / TEST_BUCKETS) < 0.006


def test_tiny_space_without_a_test_part_is_a_clear_error() -> None:
    spec = DataSpec("index", 1, params={"alphabet": 1})   # one input in the whole space
    in_test = bool(is_test_input(spec.task_obj().sample(1, 0)[0])[0])
    with pytest.raises(ValueError, match="too small"):
        make_batch(spec, 4, 0, 0, TRAIN if in_test else TEST)


# ----------------------------------------------------------------------------- fused scan
def test_fused_scan_gradients() -> None:
    from rnngap.models.mamba import ScanReadout, scan_loop
    torch.manual_seed(0)
    B, T, D, N = 2, 5, 3, 4
    dA = torch.rand(B, T, D, N, dtype=torch.float64, requires_grad=True)
    dBx = torch.randn(B, T, D, N, dtype=torch.float64, requires_grad=True)
    C = torch.randn(B, T, N, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ScanReadout.apply, (dA, dBx, C))
    hs, _ = scan_loop(dA, dBx)
    ref = (hs @ C.unsqueeze(-1)).squeeze(-1)
    assert torch.equal(ref, ScanReadout.apply(dA, dBx, C))


def test_fused_and_loop_mamba_agree() -> None:
    from dataclasses import replace
    cfg = LMConfig(arch="mamba", vocab_size=20, d_model=16, n_layers=2, d_state=4)
    torch.manual_seed(0)
    a = LM(cfg)
    b = LM(replace(cfg, scan="loop"))
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 20, (3, 11))
    la, lb = a(x), b(x)
    assert torch.allclose(la, lb, atol=1e-6)
    la.square().mean().backward()
    lb.square().mean().backward()
    for (n1, p1), (_, p2) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-6, rtol=1e-4), n1


# ----------------------------------------------------------------------------- implied bits
@given(st.sampled_from(["index", "ar"]), st.integers(2, 40).map(lambda m: 2 * m),
       st.floats(0.0, 1.0))
def test_implied_bits_inverts_the_fano_ceiling(task: str, n: int, frac: float) -> None:
    from rnngap.verify.bounds.ceilings import _params, ceiling, implied_bits
    items, k = _params(task, n, None, 2)
    full = items * np.log2(k)
    s = frac * full
    acc = ceiling(task, n, s)
    assert implied_bits(task, n, acc) == pytest.approx(s, abs=1e-6 * full + 1e-6)
    assert implied_bits(task, n, 1.0) == pytest.approx(full)
    assert implied_bits(task, n, 1.0 / k) == 0.0


# ----------------------------------------------------------------------------- IsTree stop
class _PadLM(torch.nn.Module):
    """Always predicts [PAD]: every transcript is malformed at its first token."""

    def __init__(self, V: int) -> None:
        super().__init__()
        self.V, self.device, self.steps = V, torch.device("cpu"), 0

    def _logits(self, B: int) -> torch.Tensor:
        from rnngap.tasks import istree
        out = torch.zeros(B, self.V)
        out[:, istree.PAD] = 1.0
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(x.shape[0] * x.shape[1]).view(*x.shape, self.V)

    def init_state(self, B: int) -> dict:
        return {}

    def prefill(self, x: torch.Tensor, state: dict) -> torch.Tensor:
        return self.forward(x)

    def step(self, tok: torch.Tensor, state: dict) -> torch.Tensor:
        self.steps += 1
        return self._logits(tok.shape[0])


@pytest.mark.timeout(60)
def test_istree_eval_stops_malformed_transcripts_at_once() -> None:
    spec = DataSpec("istree", 8, "cot")
    lm = _PadLM(spec.vocab_size())
    res = evaluate(lm, spec, 16, 16, seed=0)
    assert res["accuracy_generation"] == 0.0
    assert res["malformed_stopped"] == 16
    assert lm.steps == 0  # stopped after the first generated token, not at the length cap


# ----------------------------------------------------------------------------- report
def _row(phase, n, arch, seed, acc, lr=3e-3, d_state=8, sb=45056):
    from rnngap.verify.bounds.ceilings import implied_bits
    is_m = arch == "mamba"
    imp = implied_bits("ar", n, acc)
    return {"phase": phase, "task": "ar", "n": n, "arch": arch, "seed": seed, "lr": lr,
            "d_state": d_state if arch != "transformer" else None,
            "state_bits": sb if is_m else None, "trainable": 1000, "accuracy_generation": acc,
            "implied_bits": imp, "effective_bits_per_state_bit": imp / sb if is_m else None,
            "name": f"{phase}-{n}-{arch}-{seed}-{d_state}"}


@pytest.mark.timeout(120)
def test_report_from_results_file(tmp_path: Path) -> None:
    from rnngap.commands.report import report as report_cmd
    rows = [_row("lr", 8, "transformer", 0, 0.2, lr=1e-3), _row("lr", 8, "transformer", 0, 1.0)]
    rows += [_row("main", n, "transformer", s, a) for n, accs in ((8, (1.0, 0.99, 1.0)),
             (16, (0.5, 0.9, 1.0))) for s, a in enumerate(accs)]
    rows += [_row("main", n, "mamba", s, a) for n, accs in ((8, (1.0, 0.6, 0.2)),
             (16, (0.3, 0.1, 0.2))) for s, a in enumerate(accs)]
    rows += [_row("state", 8, "mamba", s, 0.1, d_state=1, sb=16384) for s in range(3)]
    f = tmp_path / "results.json"
    f.write_text(json.dumps(rows))
    res = CliRunner().invoke(report_cmd, ["--task", "ar", "--results", str(f), "--out",
                                          str(tmp_path / "rep"), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    t = rep["learned"]["transformer"]
    assert t["lr"] == 3e-3 and [p["median"] for p in t["points"]] == [1.0, 0.9]
    assert [p["min"] for p in t["points"]] == [0.99, 0.5]
    assert [p["n"] for p in rep["construction"]["points"]] == [8, 16]
    assert all(p["verified"] for p in rep["construction"]["points"])
    assert [(p["d_state"], p["median"]) for p in rep["state_sweep"]] == [(1, 0.1), (8, 0.6)]
    eff = {(e["d_state"], e["seed"]): e for e in rep["effective"]}
    assert eff[(8, 0)]["solved"] and eff[(8, 0)]["n"] == 8      # 1.0 at n = 8
    assert not eff[(8, 1)]["solved"]
    assert 0 < eff[(8, 0)]["effective_bits_per_state_bit"] < 1
    assert (tmp_path / "rep" / "report.png").stat().st_size > 1000
    # bad input: one-line errors
    bad = tmp_path / "bad.json"
    bad.write_text("[{}]")
    res = CliRunner().invoke(report_cmd, ["--task", "ar", "--results", str(bad), "--out",
                                          str(tmp_path / "r2")])
    assert res.exit_code == 2 and "no rows for task" in res.output
    res = CliRunner().invoke(report_cmd, ["--task", "ar", "--results", str(f), "--runs",
                                          str(tmp_path), "--out", str(tmp_path / "r3")])
    assert res.exit_code == 2


@pytest.mark.timeout(180)
def test_report_runs_with_a_learned_run(tmp_path: Path) -> None:
    """--runs with a learned-embedding run: evaluated where its tables fit, '-' beyond."""
    from rnngap.commands.report import report as report_cmd
    data = DataSpec("ar", 8)
    tc = TrainConfig(steps=5, batch_size=8, lr=3e-3, warmup=1, eval_every=5, ckpt_every=5)
    train(tmp_path / "r", _tiny_learned(data, "mamba"), data, tc, progress=False)
    res = CliRunner().invoke(report_cmd, ["--task", "ar", "--runs", str(tmp_path / "r"),
                                          "--out", str(tmp_path / "rep"), "--n-min", "4",
                                          "--n-max", "16", "--samples", "8", "--json"])
    assert res.exit_code == 0, res.output
    pts = json.loads(res.output)["models"][0]["points"]
    assert [p["accuracy"] is not None for p in pts] == [True, True, False]
    assert "learned embedding" in pts[2]["error"]


# ----------------------------------------------------------------------------- mixture/defaults
def test_length_mixture_batches() -> None:
    spec = DataSpec("ar", 32, min_n=8)
    assert spec.mix_lengths() == [8, 16, 32]
    lens = {make_batch(spec, 4, 0, i, TRAIN).tokens.shape[1] for i in range(60)}
    assert lens == {10, 18, 34}  # rows of n + 1 tokens plus the answer
    assert {make_batch(spec, 4, 0, i, TEST).tokens.shape[1] for i in range(5)} == {34}
    big = int(make_batch(spec, 64, 0, 0, TRAIN).tokens.max())
    assert big < spec.vocab_size() == 33  # short batches use the alphabet of n
    with pytest.raises(ValueError, match="mixture"):
        DataSpec("ar", 32, min_n=5)
    with pytest.raises(ValueError, match="retrieval tasks only"):
        DataSpec("istree", 8, min_n=4)


def test_cli_defaults_for_retrieval_and_istree(tmp_path: Path) -> None:
    r = CliRunner()
    res = r.invoke(train_cmd, ["--task", "ar", "--n", "16", "--arch", "hybrid", "--steps", "2",
                               "--batch-size", "4", "--no-progress", "--out",
                               str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["model"]["embedding"] == "learned" and cfg["model"]["d_model"] == 32
    assert cfg["model"]["attn_position"] == 1 and cfg["data"]["min_n"] == 8
    assert cfg["model"]["max_len"] == 18
    res = r.invoke(train_cmd, ["--resume", str(tmp_path / "a"), "--steps", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    res = r.invoke(train_cmd, ["--task", "istree", "--n", "6", "--format", "cot", "--arch",
                               "mamba", "--size", "tiny", "--steps", "1", "--batch-size", "2",
                               "--no-progress", "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert cfg["model"]["embedding"] == "official" and cfg["data"]["min_n"] is None
