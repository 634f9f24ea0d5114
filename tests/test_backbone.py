"""One backbone (issue 13): the trained hybrid and the hand-set constructions are one class.

``tests/data`` holds what the code before the merge wrote: ``hybrid-lrnn-outputs.json`` (the
hand-set hybrids run by the former ``HybridLRNN`` class: sha256 of their float64 logits, argmax,
state sizes, a decoded IsTree CoT) and ``legacy-hybrid-*.safetensors`` / ``legacy-hybrid.json``
(a seed-0 trained-hybrid ``LM`` in the former two-list layout: ``layers.i`` = i-th Mamba block,
``norm_f``, ``attention``; its parameter order and logits).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnngap.constructions.istree import hybrid as Hy
from rnngap.constructions.retrieval import hybrid as hyb
from rnngap.learned.configs import named_config
from rnngap.models.arith import PBitArith
from rnngap.models.hybrid import HybridBackbone, check_pattern
from rnngap.models.hybrid_lrnn import from_model_keys, to_model_keys
from rnngap.models.lm import LM, LMConfig
from rnngap.tasks import istree as T
from rnngap.tasks.registry import construction_task

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = json.loads((DATA / "hybrid-lrnn-outputs.json").read_text())
LEGACY = json.loads((DATA / "legacy-hybrid.json").read_text())

pytestmark = pytest.mark.timeout(120)


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().to(torch.float64).contiguous().numpy().tobytes()).hexdigest()


def _trainable(cons) -> LM:
    """What ``rnngap train --arch hybrid`` builds (``LM`` of an ``LMConfig``, random init,
    every weight trainable), then the construction's weights loaded into it."""
    cfg = LMConfig.from_dict(json.loads(cons.config.lm_config().to_json()))
    assert cfg.arch == "hybrid" and "lrnn" in [s["kind"] for s in cfg.layer_pattern()]
    lm = LM(cfg).double()
    assert all(p.requires_grad for p in lm.parameters())
    lm.load_state_dict(to_model_keys(cons.config, cons.state_dict), strict=True)
    return lm.eval()


@pytest.mark.parametrize("name", ["index", "ar", "cgram", "counting"])
def test_hand_set_hybrid_in_the_trainable_class_gives_the_same_outputs(name: str) -> None:
    g = GOLDEN[name]
    cons = hyb.build(name, construction_task(name, **g["kw"]))
    lm = _trainable(cons)
    assert type(lm.backbone) is type(LM(named_config("hybrid", "tiny", vocab_size=9)).backbone)
    tok = torch.tensor(g["tokens"])
    with torch.no_grad():
        lp, lf = lm(tok, PBitArith(cons.precision_bits)), lm(tok)
    assert _digest(lp) == g["logits_p"] and _digest(lf) == g["logits_f"]
    assert lp.argmax(-1).tolist() == g["argmax_p"]
    assert lm.backbone.state_scalars() == cons.state_scalars() == g["state_scalars"]


def test_istree_hybrid_same_logits_and_same_decoding() -> None:
    for n in (4, 5):
        g, cons = GOLDEN[f"istree{n}"], Hy.build(n)
        lm = _trainable(cons)
        with torch.no_grad():
            lp = lm(torch.tensor(g["tokens"]), PBitArith(cons.precision_bits))
        assert _digest(lp) == g["logits_p"] and lm.backbone.state_scalars() == g["state_scalars"]
    graphs = [[(0, 1), (1, 2), (2, 3)], [(0, 1), (1, 2), (2, 0)]]
    prompts = torch.tensor([T.prompt_tokens(4, np.array(e)) for e in graphs])
    got = Hy.generate(_trainable(Hy.build(4)), prompts, PBitArith(Hy.precision_for(4)),
                      Hy.max_cot(4))
    assert got == GOLDEN["istree_generate4"] == GOLDEN["istree_reference4"]


def test_prefill_then_steps_equal_the_full_pass_for_linear_rnn_layers() -> None:
    cons = Hy.build(5)
    lm, arith = cons.model(), PBitArith(cons.precision_bits)
    tok = torch.tensor(GOLDEN["istree5"]["tokens"])
    with torch.no_grad():
        full = lm(tok, arith)
        st = lm.init_state(2)
        pre = lm.prefill(tok[:, :11], st, arith)
        rest = torch.stack([lm.step(tok[:, i], st, arith) for i in range(11, tok.shape[1])], 1)
    assert torch.equal(torch.cat([pre, rest], 1).argmax(-1), full.argmax(-1))
    torch.testing.assert_close(torch.cat([pre, rest], 1), full, rtol=0, atol=1e-9)


def test_file_keys_round_trip() -> None:
    cons = Hy.build(4)
    assert from_model_keys(cons.config, to_model_keys(cons.config, cons.state_dict)).keys() \
        == cons.state_dict.keys()
    with pytest.raises(ValueError, match="not a key"):
        to_model_keys(cons.config, {"blocks.0.attn.q_proj.weight": torch.zeros(1)})


@pytest.mark.parametrize("tag", ["top", "p1"])
def test_old_checkpoint_layout_loads_and_the_seed_draws_the_same_weights(tag: str) -> None:
    from safetensors.torch import load_file

    leg = LEGACY[tag]
    cfg = LMConfig.from_dict(leg["config"])
    old = load_file(str(DATA / f"legacy-hybrid-{tag}.safetensors"))
    assert any(k.startswith("backbone.attention.") for k in old)
    lm = LM(cfg).eval()
    lm.load_state_dict(dict(old), strict=True)         # renamed on load
    with torch.no_grad():
        logits = lm(torch.tensor(leg["tokens"]))[0, -1]
    torch.testing.assert_close(logits, torch.tensor(leg["logits_last"]), rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)                                # init draws in the former order
    fresh = LM(cfg)
    renamed = dict(old)
    fresh.backbone._rename_legacy(renamed, "backbone.")
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(v, renamed[k], rtol=1e-6, atol=1e-7)
    # the parameter order (it indexes the optimizer state of checkpoints) is the former one
    names = leg["parameter_order"]
    probe = {k: torch.tensor([i]) for i, k in enumerate(names)}
    fresh.backbone._rename_legacy(probe, "backbone.")
    assert [names[int(probe[n])] for n, _ in fresh.named_parameters()] == names


def test_patterns_are_checked() -> None:
    with pytest.raises(ValueError, match="kind"):
        check_pattern([{"kind": "gru"}])
    with pytest.raises(ValueError, match="unknown keys"):
        check_pattern([{"kind": "lrnn", "d_inner": 1, "d_state": 1, "width": 3}])
    with pytest.raises(ValueError, match="required"):
        check_pattern([{"kind": "lrnn", "d_inner": 1}])
    with pytest.raises(ValueError, match="at most one norm"):
        check_pattern([{"kind": "norm"}, {"kind": "norm"}])
    with pytest.raises(ValueError, match="arch 'hybrid'"):
        LMConfig(arch="mamba", vocab_size=5, d_model=4, n_layers=1, layers=[{"kind": "mamba"}])


def test_every_model_reports_its_state_size() -> None:
    pat = [{"kind": "lrnn", "d_inner": 3, "d_state": 2, "conv_kernel": 4},
           {"kind": "mamba", "d_state": 5},
           {"kind": "attention", "n_heads": 3, "d_head": 2, "d_mlp": 4}, {"kind": "norm"}]
    bb = HybridBackbone(pat, 8)
    assert bb.state_scalars() == (2 + 3 * 3) + 16 * (5 + 3)
    assert bb.kv_scalars(10) == 2 * 3 * 2 * 10
    st = bb.init_state(2)
    assert sum(v[0].numel() for s in st if isinstance(s, dict) and "k" not in s
               for v in s.values()) == bb.state_scalars()
