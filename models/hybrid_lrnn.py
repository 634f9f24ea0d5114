"""The hand-set hybrids of Definition 5.5 (Wen, Dang, Lyu, ICLR 2025; claim C6): linear RNN
layers, then ONE softmax-attention layer -- their config and the key layout of their files.

The network is the one trainable class, ``models.lm.LM`` with ``arch = "hybrid"``, the
``table`` embedding and the layer pattern ``lrnn * R, attention`` (:meth:`HybridLRNNConfig.
lm_config`). Forward pass for tokens t_1..t_T (no positional table: position enters only
through the RNN)::

    h^0_j = E[t_j]                                   token embedding
    h^l   = LinearRNN_l(h^{l-1})   l = 1..R           ``models.linear_rnn`` (residual layers)
    h'    = h^R + Attn(h^R)                           one causal softmax-attention layer
    h''   = h' + MLP(h')                              optional ReLU MLP (``d_mlp``; zero allowed)
    logits = h'' W_U + b_U;  prediction = argmax_t logits (lowest index on ties)

``Attn`` and ``MLP`` are the Transformer's own modules (``models.transformer.Block`` with
``pos = "none"``, ``norm = "none"``), so the attention layer obeys exactly the equations of
``models.transformer`` and can be verified by the same code. With an ``Arith`` every operation is
rounded as ``models.arith`` specifies; without one, plain torch runs.

Exported files (``docs/export-format.md``) keep the names ``embed``, ``rnn.<i>``, ``block`` and
``unembed``; :func:`to_model_keys` / :func:`from_model_keys` translate them to the model's
``tok_embed``, ``backbone.layers.<i>``, ``backbone.layers.<R>``, ``lm_head``.

Memory between tokens: the RNN layers' fixed-size state (``model.backbone.state_scalars()``
scalars, that times p bits at precision p) plus the attention layer's key-value cache, which
grows with the context -- the one place the hybrid stores the input.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor

from rnngap.models.lm import LM, LMConfig
from rnngap.models.transformer import TransformerConfig


@dataclass
class HybridLRNNConfig:
    """Hyperparameters (JSON-serializable).  Every RNN layer has the shape (d_inner, d_state,
    conv_kernel) unless ``layer_shapes`` lists one [d_inner, d_state, conv_kernel] per layer
    (so a layer that needs no conv window does not carry one in its state)."""

    vocab_size: int
    d_model: int
    n_rnn_layers: int = 1
    d_inner: int = 1
    d_state: int = 1
    conv_kernel: int = 1
    selective: bool = False
    n_heads: int = 1
    d_head: int | None = None
    d_mlp: int = 1
    attn_scale: float | None = None
    bias: bool = True
    layer_shapes: list[list[int]] | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_rnn_layers", "d_inner", "d_state",
                     "conv_kernel", "n_heads", "d_mlp"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.layer_shapes is not None:
            shapes = self.layer_shapes
            ok = (isinstance(shapes, list | tuple) and len(shapes) == self.n_rnn_layers
                  and all(isinstance(t, list | tuple) and len(t) == 3
                          and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1
                                  for x in t) for t in shapes))
            if not ok:
                raise ValueError("layer_shapes must list n_rnn_layers triples [d_inner, "
                                 "d_state, conv_kernel] of positive integers")
            self.layer_shapes = [list(t) for t in shapes]
            if list(self.layer_shapes[0]) != [self.d_inner, self.d_state, self.conv_kernel]:
                raise ValueError("with layer_shapes, d_inner, d_state and conv_kernel must "
                                 "equal layer_shapes[0] (the first layer's shape)")
        if self.d_head is None:
            if self.d_model % self.n_heads:
                raise ValueError("d_model must be divisible by n_heads when d_head is not given")
            self.d_head = self.d_model // self.n_heads

    def shapes(self) -> list[tuple[int, int, int]]:
        """(d_inner, d_state, conv_kernel) of each RNN layer."""
        if self.layer_shapes is None:
            return [(self.d_inner, self.d_state, self.conv_kernel)] * self.n_rnn_layers
        return [(s[0], s[1], s[2]) for s in self.layer_shapes]

    def attention_config(self) -> TransformerConfig:
        """The one Transformer layer (no positions, no norms, ReLU MLP)."""
        return TransformerConfig(vocab_size=self.vocab_size, d_model=self.d_model, n_layers=1,
                                 n_heads=self.n_heads, d_head=self.d_head, d_mlp=self.d_mlp,
                                 norm="none", pos="none", mlp="relu", bias=self.bias,
                                 attn_scale=self.attn_scale)

    def layer_pattern(self) -> list[dict]:
        """``lrnn * n_rnn_layers, attention`` as ``models.hybrid`` layer specs."""
        a = self.attention_config()
        attn = {"kind": "attention", **{k: getattr(a, k) for k in (
            "n_heads", "d_head", "d_mlp", "norm", "pos", "mlp", "bias", "attn_scale")}}
        return [{"kind": "lrnn", "d_inner": d_inner, "d_state": d_state, "conv_kernel": kernel,
                 "selective": self.selective} for d_inner, d_state, kernel in self.shapes()
                ] + [attn]

    def lm_config(self) -> LMConfig:
        """The ``LM`` that runs this hybrid (module docstring)."""
        return LMConfig(arch="hybrid", vocab_size=self.vocab_size, d_model=self.d_model,
                        n_layers=self.n_rnn_layers, n_heads=self.n_heads, d_mlp=self.d_mlp,
                        embedding="table", layers=self.layer_pattern())

    def to_json(self) -> str:
        return json.dumps({"model": "hybrid_lrnn", **asdict(self)}, indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> HybridLRNNConfig:
        d = dict(d)
        kind = d.pop("model", "hybrid_lrnn")
        if kind != "hybrid_lrnn":
            raise ValueError(f"config is for a {kind!r} model, not hybrid_lrnn")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown hybrid_lrnn config keys: {sorted(unknown)}")
        return cls(**d)


def to_model_keys(cfg: HybridLRNNConfig, sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """A state dict in the file layout (``embed``, ``rnn.<i>``, ``block``, ``unembed``) with the
    names of the ``LM`` that runs it (module docstring)."""
    R, out = cfg.n_rnn_layers, {}
    for k, v in sd.items():
        head, _, rest = k.partition(".")
        if head == "embed":
            out["tok_embed." + rest] = v
        elif head == "unembed":
            out["lm_head." + rest] = v
        elif head == "block":
            out[f"backbone.layers.{R}.{rest}"] = v
        elif head == "rnn":
            out["backbone.layers." + rest] = v
        else:
            raise ValueError(f"not a key of a hybrid_lrnn state dict: {k!r}")
    return out


def from_model_keys(cfg: HybridLRNNConfig, sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of :func:`to_model_keys`."""
    R, out = cfg.n_rnn_layers, {}
    for k, v in sd.items():
        if k.startswith(f"backbone.layers.{R}."):
            out["block." + k[len(f"backbone.layers.{R}."):]] = v
        elif k.startswith("backbone.layers."):
            out["rnn." + k[len("backbone.layers."):]] = v
        elif k.startswith(("tok_embed.", "lm_head.")):
            head, _, rest = k.partition(".")
            out[("embed." if head == "tok_embed" else "unembed.") + rest] = v
        else:
            raise ValueError(f"not a key of a hybrid_lrnn model: {k!r}")
    return out


def blank_state_dict(cfg: HybridLRNNConfig) -> dict[str, Tensor]:
    """Every weight of the hybrid set to 0.0 (float64, file layout): the blank a construction
    fills in. Built from shapes alone (the model on the ``meta`` device)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in LM(cfg.lm_config()).state_dict().items()}
    return {k: torch.zeros(s, dtype=torch.float64)
            for k, s in from_model_keys(cfg, shapes).items()}


def build_model(cfg: HybridLRNNConfig, state_dict: dict[str, Tensor]) -> LM:
    """The float64 ``LM`` carrying exactly ``state_dict`` (file layout; strict load). It is
    built on the ``meta`` device and takes the given tensors, so no random initialisation
    runs."""
    with torch.device("meta"):
        m = LM(cfg.lm_config())
    m.load_state_dict({k: v.to(torch.float64) for k, v in to_model_keys(cfg, state_dict).items()},
                      strict=True, assign=True)
    m.eval()
    return m
