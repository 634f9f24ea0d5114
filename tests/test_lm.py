"""Tests for the LM wrapper (rnngap.models.lm), the hybrid and the official configs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnngap.learned.configs import (
    OFFICIAL_TRAINABLE,
    canonical_arch,
    named_config,
    official_json_config,
)
from rnngap.models.lm import LM, LMConfig, sinusoidal_embedding


@pytest.mark.parametrize("key", sorted(OFFICIAL_TRAINABLE))
def test_official_trainable_parameter_counts(key: tuple[str, str]) -> None:
    arch, size = key
    lm = LM(named_config(arch, size, vocab_size=16 + 17))
    assert lm.trainable_parameters() == OFFICIAL_TRAINABLE[key]


def test_embedding_is_frozen_sinusoidal_and_tied() -> None:
    lm = LM(named_config("mamba", "tiny", vocab_size=20))
    assert all(p is not lm.embedding for p in lm.parameters())
    E = sinusoidal_embedding(20, 16)
    assert E[3, 4] == pytest.approx(math.sin(3 / 10000 ** (4 / 16)), abs=1e-6)
    assert E[3, 5] == pytest.approx(math.cos(3 / 10000 ** (4 / 16)), abs=1e-6)
    tok = torch.randint(0, 20, (2, 7))
    lm(tok).sum().backward()
    assert lm.embedding.grad is None
    h = torch.randn(3, 16)
    torch.testing.assert_close(lm.head(h), h @ E.T)


@pytest.mark.parametrize("arch,pos", [("transformer", None), ("mamba", None), ("hybrid", None),
                                      ("hybrid", 0), ("hybrid", 1)])
def test_incremental_decoding_equals_forward(arch: str, pos: int | None) -> None:
    torch.manual_seed(0)
    kw = {"attn_position": pos} if arch == "hybrid" else {}
    lm = LM(named_config(arch, "tiny", vocab_size=30, **kw)).eval()
    tok = torch.randint(0, 30, (3, 12))
    with torch.no_grad():
        full = lm(tok)
        st = lm.init_state(3)
        pre = lm.prefill(tok[:, :5], st)
        rest = torch.stack([lm.step(tok[:, i], st) for i in range(5, 12)], 1)
    torch.testing.assert_close(torch.cat([pre, rest], 1), full, atol=1e-5, rtol=1e-4)


def test_hybrid_has_one_attention_layer_on_top_by_default() -> None:
    lm = LM(named_config("hybrid", "0.5m", vocab_size=33))
    names = [n for n, _ in lm.named_modules() if n.endswith("q_proj")]
    assert names == ["backbone.layers.13.attn.q_proj"]
    assert lm.backbone.kinds == ["mamba"] * 12 + ["norm", "attention"]
    with pytest.raises(ValueError):
        LM(named_config("hybrid", "tiny", vocab_size=33, attn_position=5))


def test_config_json_roundtrip_and_type_check() -> None:
    c = named_config("rnn", "0.5m", vocab_size=33)
    assert c.arch == "mamba"
    assert LMConfig.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ValueError, match="not an rnngap"):
        LMConfig.from_dict({"model": "transformer", "vocab_size": 3})
    with pytest.raises(ValueError, match="unknown arch"):
        canonical_arch("lstm")
    with pytest.raises(ValueError, match="unknown size"):
        named_config("mamba", "3m", 10)


def test_official_json_files(tmp_path) -> None:
    hyb = tmp_path / "2m_hybrid.json"
    hyb.write_text(json.dumps({"hidden_size": 128, "num_hidden_layers": 14, "state_size": 16,
                               "intermediate_size": 256, "num_attention_heads": 4,
                               "max_position_embeddings": 4096}))
    c = official_json_config(hyb, "hybrid", vocab_size=33)
    assert LM(c).trainable_parameters() == 1_796_736
    with pytest.raises(ValueError, match="hybrid config, not a mamba"):
        official_json_config(hyb, "rnn", vocab_size=33)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        official_json_config(bad, "rnn", 33)


def test_state_scalars() -> None:
    m = LM(named_config("mamba", "0.5m", 33))
    assert m.state_scalars() == 16 * 128 * 19
    t = LM(named_config("transformer", "0.5m", 33))
    assert t.state_scalars(100) == 8 * 2 * 64 * 100


def test_params_cli_json() -> None:
    from click.testing import CliRunner

    from rnngap.commands.params import params

    res = CliRunner().invoke(params, ["--arch", "rnn", "--size", "1m", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["arch"] == "mamba" and out["trainable"] == out["official_trainable"] == 1_166_208
    assert out["total"] == out["trainable"] + 33 * 128 and out["state_scalars"] == 10 * 256 * 19
    res = CliRunner().invoke(params, ["--arch", "lstm"])
    assert res.exit_code == 2


def test_params_cli_rejects_bad_context_and_n() -> None:
    """Review items 4 and 6."""
    from click.testing import CliRunner

    from rnngap.commands.params import params

    r = CliRunner()
    for args, hint in ((["--context", "-5"], "--context"), (["--context", "0"], "--context"),
                       (["--n", "1000000000"], "--n"), (["--n", "3"], "--n")):
        res = r.invoke(params, ["--arch", "transformer", *args])
        assert res.exit_code == 2 and hint in res.output, res.output
        assert isinstance(res.exception, SystemExit)
    res = r.invoke(params, ["--help"])
    assert "4 <= n <= 8192" in res.output
    with pytest.raises(ValueError, match="vocabulary of"):
        LMConfig(arch="mamba", vocab_size=10**9, d_model=16, n_layers=1)
