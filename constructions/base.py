"""What a construction is, and how it is exported and loaded again.

A construction is weights FROM A PROOF for a model of ``rnngap.models``: a config, a state dict,
and the facts the proof needs (named residual channels, the precision p(n) it claims, the task it
solves). One type serves both families: a Transformer (``TransformerConfig``, run by
``models.transformer.Transformer``) and a linear-RNN hybrid of Definition 5.5
(``HybridLRNNConfig``, run by ``models.lm.LM``; it also names the channels its recurrence writes,
``rnn_channels``, and the conv ``taps`` of the retrieval hybrids). Export writes
``model.safetensors`` (every tensor, positional table included), ``config.json`` (architecture +
construction facts) and, for a Transformer, ``vocab.json`` (token id -> string), so the forward
pass can be rerun from these files and the equations of ``docs/export-format.md`` alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from rnngap.models.export_format import construction_header
from rnngap.models.hybrid_lrnn import HybridLRNNConfig, build_model
from rnngap.models.lm import LM
from rnngap.models.transformer import Transformer, TransformerConfig
from rnngap.resources import require

_META = ("task", "n", "task_params", "precision_bits", "precision_formula", "channels",
         "rnn_channels", "scalars", "notes", "taps")
"""The construction facts in config.json, in file order (the last of them and
``rnn_channels`` for hybrids only)."""


@dataclass
class Construction:
    """Hand-set weights for a Transformer or a linear-RNN hybrid, plus the facts its correctness
    proof rests on."""

    task: str
    n: int
    task_params: dict
    config: TransformerConfig | HybridLRNNConfig
    state_dict: dict[str, Tensor]
    precision_bits: int
    precision_formula: str
    channels: dict[str, int]
    scalars: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    rnn_channels: list[str] = field(default_factory=list)
    taps: list[dict] = field(default_factory=list)

    @property
    def hybrid(self) -> bool:
        return isinstance(self.config, HybridLRNNConfig)

    @property
    def kind(self) -> str:
        """``transformer`` or ``hybrid_lrnn`` (the config's ``model`` tag)."""
        return "hybrid_lrnn" if self.hybrid else "transformer"

    def model(self) -> Transformer | LM:
        """A float64 network carrying exactly these weights (strict)."""
        if self.hybrid:
            return build_model(self.config, self.state_dict)
        m = Transformer(self.config).double()
        missing, unexpected = m.load_state_dict(self.state_dict, strict=False)
        if unexpected or [k for k in missing if not k.endswith("pos_table")]:
            raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
        m.eval()
        return m

    def sizes(self) -> dict:
        """Depth (attention layers; hybrids also RNN layers), heads and width: the quantities
        that must not grow with n."""
        c = self.config
        depth = {"layers": 1, "rnn_layers": c.n_rnn_layers} if self.hybrid else \
            {"layers": c.n_layers}
        return {**depth, "heads": c.n_heads, "width": c.d_model,
                "d_head": c.d_head, "d_mlp": c.d_mlp,
                "params": int(sum(v.numel() for k, v in self.state_dict.items()
                                  if k != "pos_table"))}

    def state_scalars(self) -> int:
        """Scalars the network carries between tokens besides its KV cache, as the model
        reports it (built on the ``meta`` device: shapes only). 0 for a Transformer."""
        if not self.hybrid:
            return 0
        with torch.device("meta"):
            return LM(self.config.lm_config()).backbone.state_scalars()

    def meta(self) -> dict:
        keys = _META if self.hybrid else [k for k in _META if k not in ("rnn_channels", "taps")]
        return {k: getattr(self, k) for k in keys}

    def export(self, out_dir: str | os.PathLike) -> list[Path]:
        """:func:`export`."""
        return export(self, out_dir)


def check_weights(cfg: TransformerConfig) -> int:
    """ResourceError (before anything is allocated) when the weights of ``Transformer(cfg)``
    cannot fit: a float32 blank, its float64 copy and the export copy, 20 bytes per weight.
    The count comes from the model built on the ``meta`` device (shapes only). Returns it."""
    with torch.device("meta"):
        count = sum(v.numel() for v in Transformer(cfg).state_dict().values())
    require(20 * count, f"the construction's {count:,} weights (width {cfg.d_model}, "
            f"{cfg.n_heads} heads, vocabulary {cfg.vocab_size:,})")
    return count


def zero_state_dict(cfg: TransformerConfig) -> dict[str, Tensor]:
    """Every weight of a ``Transformer(cfg)`` set to 0.0 (float64): the blank a construction
    fills in, so only the weights its proof uses are written out explicitly."""
    check_weights(cfg)
    return {k: torch.zeros_like(v, dtype=torch.float64)
            for k, v in Transformer(cfg).state_dict().items()}


def export(c: Construction, out_dir: str | os.PathLike) -> list[Path]:
    """Write model.safetensors, config.json and (Transformer) vocab.json into ``out_dir``
    (created), each file atomically."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().to(torch.float64) for k, v in c.state_dict.items()}
    paths = [out / "model.safetensors", out / "config.json", out / "vocab.json"]
    cfg = json.loads(c.config.to_json())
    payloads = [None, json.dumps({**construction_header(c.kind), "architecture": cfg,
                                  "construction": c.meta(), "dtype": "float64",
                                  "forward": f"rnngap.models.{c.kind} module docstring"},
                                 indent=2),
                json.dumps([str(t) for t in range(c.config.vocab_size)])]
    if c.hybrid:
        paths, payloads = paths[:2], payloads[:2]
    for path, text in zip(paths, payloads):
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".tmp-")
        os.close(fd)
        os.chmod(tmp, 0o644)
        if text is None:
            save_file(tensors, tmp)
        else:
            Path(tmp).write_text(text)
        os.replace(tmp, path)
    return paths


def load(in_dir: str | os.PathLike) -> Construction:
    """Load an exported construction; raises ValueError with a clear message on bad files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(in_dir)
    try:
        cfg = json.loads((d / "config.json").read_text())
        tensors = load_file(str(d / "model.safetensors"))
    except FileNotFoundError as e:
        raise ValueError(f"{d} is not an exported construction: missing {Path(e.filename).name}")
    except (json.JSONDecodeError, SafetensorError, OSError) as e:
        raise ValueError(f"{d}: corrupt construction files ({e})") from None
    try:
        meta = cfg["construction"]
        arch = cfg["architecture"]
        hybrid = isinstance(arch, dict) and arch.get("model") == "hybrid_lrnn"
        config = (HybridLRNNConfig if hybrid else TransformerConfig).from_dict(arch)
        taps = [dict(t) for t in meta.get("taps", [])]
        for tap in taps:                  # JSON object keys are strings; lags are ints
            if "kernel" in tap:
                tap["kernel"] = {int(k): v for k, v in tap["kernel"].items()}
        return Construction(meta["task"], meta["n"], meta["task_params"], config, tensors,
                            meta["precision_bits"], meta["precision_formula"],
                            meta["channels"], meta.get("scalars", {}), meta.get("notes", ""),
                            list(meta.get("rnn_channels", [])), taps)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{d}/config.json is not a construction config ({e})") from None
