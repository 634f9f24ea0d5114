"""What a construction is, and how it is exported and loaded again.

A construction is weights FROM A PROOF for a model of ``rnngap.models``: a config, a state dict,
and the facts the proof needs (named residual channels, the precision p(n) it claims, the task it
solves). Export writes ``model.safetensors`` (every tensor, positional table included),
``config.json`` (architecture + construction facts) and ``vocab.json`` (token id -> string), so
the forward pass can be rerun from these files and the equations in ``models.transformer`` alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from rnngap.models.transformer import Transformer, TransformerConfig
from rnngap.resources import require


@dataclass
class Construction:
    """Hand-set weights for a Transformer, plus the facts its correctness proof rests on."""

    task: str
    n: int
    task_params: dict
    config: TransformerConfig
    state_dict: dict[str, Tensor]
    precision_bits: int
    precision_formula: str
    channels: dict[str, int]
    scalars: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    def model(self) -> Transformer:
        """A float64 Transformer carrying exactly these weights."""
        m = Transformer(self.config).double()
        missing, unexpected = m.load_state_dict(self.state_dict, strict=False)
        if unexpected or [k for k in missing if not k.endswith("pos_table")]:
            raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
        m.eval()
        return m

    def sizes(self) -> dict:
        """Depth, heads and width: the quantities that must not grow with n."""
        c = self.config
        return {"layers": c.n_layers, "heads": c.n_heads, "width": c.d_model,
                "d_head": c.d_head, "d_mlp": c.d_mlp,
                "params": int(sum(v.numel() for k, v in self.state_dict.items()
                                  if k != "pos_table"))}

    def meta(self) -> dict:
        return {"task": self.task, "n": self.n, "task_params": self.task_params,
                "precision_bits": self.precision_bits,
                "precision_formula": self.precision_formula, "channels": self.channels,
                "scalars": self.scalars, "notes": self.notes}


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
    """Write model.safetensors, config.json and vocab.json into ``out_dir`` (created)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().to(torch.float64) for k, v in c.state_dict.items()}
    paths = [out / "model.safetensors", out / "config.json", out / "vocab.json"]
    cfg = json.loads(c.config.to_json())
    from rnngap.models.export_format import construction_header
    payloads = [None, json.dumps({**construction_header("transformer"), "architecture": cfg,
                                  "construction": c.meta(), "dtype": "float64",
                                  "forward": "rnngap.models.transformer module docstring"},
                                 indent=2),
                json.dumps([str(t) for t in range(c.config.vocab_size)])]
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
        config = TransformerConfig.from_dict(cfg["architecture"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{d}/config.json is not a construction config ({e})") from None
    return Construction(meta["task"], meta["n"], meta["task_params"], config, tensors,
                        meta["precision_bits"], meta["precision_formula"], meta["channels"],
                        meta.get("scalars", {}), meta.get("notes", ""))
