"""The hybrid of Definition 5.5 (Wen, Dang, Lyu, ICLR 2025; claim C6): linear RNN layers, then ONE
softmax-attention layer.

Forward pass for tokens t_1..t_T (no positional table: position enters only through the RNN)::

    h^0_j = E[t_j]                                   token embedding
    h^l   = LinearRNN_l(h^{l-1})   l = 1..R           ``models.linear_rnn`` (residual layers)
    h'    = h^R + Attn(h^R)                           one causal softmax-attention layer
    h''   = h' + MLP(h')                              optional ReLU MLP (``d_mlp``; zero allowed)
    logits = h'' W_U + b_U;  prediction = argmax_t logits (lowest index on ties)

``Attn`` and ``MLP`` are the Transformer's own modules (``models.transformer.Block`` with
``pos = "none"``, ``norm = "none"``), so the attention layer obeys exactly the equations of
``models.transformer`` and can be verified by the same code. With an ``Arith`` every operation is
rounded as ``models.arith`` specifies; without one, plain torch runs (training).

Memory between tokens: the RNN layers' fixed-size state (:meth:`HybridLRNN.state_scalars`
scalars, ``state_bits(p)`` = that times p bits at precision p) plus the attention layer's
key-value cache, which grows with the context -- the one place the hybrid stores the input.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from rnngap.models.arith import Arith
from rnngap.models.linear_rnn import LinearRNN
from rnngap.models.transformer import Block, TransformerConfig


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


class HybridLRNN(nn.Module):
    """Embedding, ``n_rnn_layers`` LinearRNN layers, one attention Block, unembedding."""

    def __init__(self, cfg: HybridLRNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.rnn = nn.ModuleList(LinearRNN(cfg.d_model, d_inner, d_state, kernel, cfg.selective)
                                 for d_inner, d_state, kernel in cfg.shapes())
        self.block = Block(cfg.attention_config())
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=cfg.bias)

    def state_scalars(self) -> int:
        """Scalars the RNN part carries between tokens (independent of the input length)."""
        return sum(layer.state_scalars() for layer in self.rnn)

    def state_bits(self, p: int) -> int:
        """Recurrent state size in bits when every scalar is a p-bit number."""
        return self.state_scalars() * int(p)

    def rnn_residual(self, tokens: Tensor, arith: Arith | None = None,
                     traces: list[dict] | None = None) -> Tensor:
        """h^R (B, T, d): the residual stream entering the attention layer."""
        h = self.embed(tokens)
        for i, layer in enumerate(self.rnn):
            tr = None if traces is None else {}
            h = layer(h, arith, tr)
            if traces is not None:
                traces.append(tr)
        return h

    def head(self, h: Tensor, arith: Arith | None = None, last_only: bool = False) -> Tensor:
        """Attention layer, MLP and unembedding on h^R: logits (B, T or 1, V)."""
        h = self.block(h, arith, last_only=last_only)
        if arith is None:
            return self.unembed(h)
        return arith.linear(h, self.unembed.weight, self.unembed.bias)

    def forward(self, tokens: Tensor, arith: Arith | None = None, last_only: bool = False
                ) -> Tensor:
        """Logits (B, T, V), or (B, 1, V) for the final position when ``last_only``."""
        return self.head(self.rnn_residual(tokens, arith), arith, last_only)

    def predict(self, tokens: Tensor, arith: Arith | None = None) -> Tensor:
        """argmax of the final position's logits (lowest index on ties), shape (B,)."""
        return self.forward(tokens, arith, last_only=True)[:, -1, :].argmax(-1)


def build_model(cfg: HybridLRNNConfig, state_dict: dict[str, Tensor]) -> HybridLRNN:
    """A float64 hybrid carrying exactly ``state_dict`` (strict load)."""
    m = HybridLRNN(cfg).double()
    m.load_state_dict({k: v.to(torch.float64) for k, v in state_dict.items()}, strict=True)
    m.eval()
    return m
