"""State sizes of architecture presets and configs, checked against hand counts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rnngap.commands.bound import bound
from rnngap.verify.bounds import archs


def test_mamba_130m_by_hand():
    st = archs.preset_state("mamba-130m")
    d_inner = 2 * 768
    assert st.state_scalars == 24 * (d_inner * 16 + d_inner * 3)
    assert st.state_bits == 24 * (d_inner * 16 * 32 + d_inner * 3 * 16)
    assert archs.preset_state("mamba-130m", "bf16").state_bits == 16 * st.state_scalars


def test_mamba2_and_rwkv_and_griffin_by_hand():
    m2 = archs.preset_state("mamba2-130m")
    assert m2.state_scalars == 24 * (1536 * 128 + (1536 + 2 * 128) * 3)
    rw = archs.preset_state("rwkv7-world-0.1b")
    assert rw.state_scalars == 12 * (768 * 64 + 2 * 768)
    rg = archs.preset_state("recurrentgemma-2b")
    kv = next(c for c in rg.components if "KV" in c.name)
    assert kv.scalars == 8 * 2048 * 2 * 1 * 256  # 8 of 26 layers are local attention
    assert rg.state_scalars == 18 * (2560 + 2560 * 3) + kv.scalars
    fm = archs.preset_state("falcon-mamba-7b")
    assert fm.components[0].scalars == 64 * 8192 * 16


def test_at_least_ten_published_checkpoints_with_sources():
    published = [k for k, (f, _, s) in archs.PRESETS.items()
                 if f != "hybrid-global" and not k.startswith("rnn-icrag") and s]
    assert len(published) >= 10
    for name in archs.PRESETS:
        st = archs.preset_state(name)
        assert st.source and (st.state_bits > 0 or st.global_attention)


def test_config_shapes():
    cfg = {"arch": "mamba", "d_model": 64, "n_layers": 16, "d_state": 16, "expand": 2,
           "d_conv": 4}
    a = archs.state_from_config(cfg)
    b = archs.state_from_config({"model": cfg, "train": {"lr": 1e-3}})
    c = archs.preset_state("rnn-icrag-0.5m")
    assert a.state_bits == b.state_bits == c.state_bits == 16 * (128 * 16 * 32 + 128 * 3 * 16)
    hf = {"hidden_size": 768, "num_hidden_layers": 24, "state_size": 16, "conv_kernel": 4,
          "intermediate_size": 1536}
    assert archs.state_from_config(hf).state_bits == archs.preset_state("mamba-130m").state_bits
    ssm = {"d_model": 768, "n_layer": 24, "ssm_cfg": {"layer": "Mamba2"}}
    assert archs.state_from_config(ssm).state_bits == archs.preset_state("mamba2-130m").state_bits
    with pytest.raises(ValueError):
        archs.state_from_config({"foo": 1})
    with pytest.raises(ValueError):
        archs.state_of("mamba", {"d_model": 8})


def test_global_attention_has_no_failure_length():
    r = CliRunner().invoke(bound, ["--arch", "jamba-v0.1", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["failure_length"] is None


def test_cli_arch_json_and_kv(tmp_path):
    r = CliRunner().invoke(bound, ["--arch", "mamba-130m", "--json"])
    rows = json.loads(r.output)
    st = archs.preset_state("mamba-130m")
    assert all(x["state_bits"] == st.state_bits and x["arch"] == "mamba-130m" for x in rows)
    idx = next(x for x in rows if x["task"] == "index" and x["order"] == "query-last")
    assert idx["transformer_kv_bits_at_failure_length"] == \
        archs.kv_cache_bits(768, 24, idx["failure_length"])
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"model": {"arch": "mamba", "d_model": 64, "n_layers": 16,
                                       "d_state": 16, "expand": 2, "d_conv": 4}}))
    r = CliRunner().invoke(bound, ["--config", str(p), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)[0]["state_bits"] == \
        archs.preset_state("rnn-icrag-0.5m").state_bits
    r = CliRunner().invoke(bound, ["--arch", "gla"])  # missing --heads etc.
    assert r.exit_code == 2
    r = CliRunner().invoke(bound, ["--arch", "mamba", "--d-model", "64", "--n-layers", "2"])
    assert r.exit_code == 0 and "S = " in r.output


def test_griffin_window_counts_and_is_validated():
    base = ["--arch", "griffin", "--d-model", "64", "--n-layers", "3", "--json"]
    s16 = json.loads(CliRunner().invoke(bound, base + ["--window", "16"]).output)[0]
    s32 = json.loads(CliRunner().invoke(bound, base + ["--window", "32"]).output)[0]
    assert s32["state_bits"] - s16["state_bits"] == 16 * 2 * 1 * 256 * 16  # KV tokens x bf16
    for bad in (["--window", "-5"], ["--window", "0"], ["--attention-every", "0"]):
        r = CliRunner().invoke(bound, base + bad)
        assert r.exit_code == 2 and "Traceback" not in r.output
    r = CliRunner().invoke(bound, ["--arch", "griffin", "--d-model", "64", "--n-layers", "2",
                                   "--window", "16"])
    assert r.exit_code == 2 and "no local-attention layer" in r.output
    r = CliRunner().invoke(bound, ["--arch", "griffin", "--d-model", "64", "--n-layers", "2",
                                   "--window", "16", "--attention-every", "2", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)[0]["state_bits"] > 0
    r = CliRunner().invoke(bound, ["--arch", "mamba", "--d-model", "64", "--n-layers", "2",
                                   "--window", "16"])
    assert r.exit_code == 2
    st = archs.state_of("griffin", {"d_model": 64, "n_layers": 6})
    assert any(c.name.startswith("local KV") for c in st.components)  # default: 1 in 3 layers


@pytest.mark.parametrize("arch", ["hybrid", "transformer"])
def test_rnngap_run_config_with_global_attention(tmp_path, arch):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"model": {"arch": arch, "d_model": 16, "n_layers": 1,
                                       "d_state": 4, "n_heads": 2, "model": "lm"}}))
    r = CliRunner().invoke(bound, ["--config", str(p), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["failure_length"] is None and "grows with n" in d["argument"]
    r = CliRunner().invoke(bound, ["--config", str(p)])
    assert r.exit_code == 0 and "no failure length" in r.output
