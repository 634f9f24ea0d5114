"""The hybrid: a stack of Mamba-1 layers plus ONE softmax-attention layer (Def 5.5, claim C6).

The attention layer is a full pre-norm LLaMA-style decoder layer (``Block`` from
``models/transformer.py``: RMSNorm, RoPE attention, RMSNorm, SwiGLU MLP, residuals, no biases),
exactly what the official rnn-icrag hybrid places after its Mamba stack. With ``attn_position``
= p in [0, n_layers]:

    p == n_layers (default, "on top", as in the official code):
        h = norm_f(Mamba_n(...Mamba_1(x)))  ->  h = AttnBlock(h)          (no norm after it)
    p <  n_layers:
        h = Mamba_1..Mamba_p(x) -> AttnBlock -> Mamba_{p+1}..Mamba_n -> norm_f

Trainable parameters: n_layers * (Mamba block) + (LLaMA decoder layer) + d_model (norm_f); for the
official 0.5m hybrid (d=64, 12 layers, N=16, 4 heads, MLP 256) that is 458,176.

State between tokens: the Mamba layers' fixed-size states plus the attention layer's KV cache
(which grows with the context: the one place the hybrid stores the whole input).
"""

from __future__ import annotations

from torch import Tensor, nn

from rnngap.models.mamba import MambaBlock, MambaConfig
from rnngap.models.transformer import Block, TransformerConfig


class HybridBackbone(nn.Module):
    """Mamba blocks with one attention ``Block`` inserted at ``attn_position``."""

    def __init__(self, mamba: MambaConfig, attn: TransformerConfig,
                 attn_position: int | None = None) -> None:
        super().__init__()
        p = mamba.n_layers if attn_position is None else attn_position
        if not 0 <= p <= mamba.n_layers:
            raise ValueError(f"attn_position must be in [0, {mamba.n_layers}], got {p}")
        if attn.d_model != mamba.d_model:
            raise ValueError("attention and Mamba widths differ")
        self.attn_position = p
        self.cfg = mamba
        self.layers = nn.ModuleList(MambaBlock(mamba) for _ in range(mamba.n_layers))
        self.norm_f = nn.RMSNorm(mamba.d_model, eps=mamba.norm_eps)
        self.attention = Block(attn)

    def _order(self) -> list[tuple[str, int]]:
        p, n = self.attn_position, self.cfg.n_layers
        seq = [("m", i) for i in range(p)] + [("a", 0)] + [("m", i) for i in range(p, n)]
        return seq + [("f", 0)] if p < n else seq[:-1] + [("f", 0), ("a", 0)]

    def forward(self, h: Tensor, state: dict | None = None) -> Tensor:
        """h (B, T, d) -> (B, T, d); with ``state`` (from :meth:`init_state`) it is filled in."""
        for kind, i in self._order():
            if kind == "m":
                h = self.layers[i](h, None if state is None else state["mamba"][i])
            elif kind == "a":
                h = self.attention(h, cache=None if state is None else state["kv"])
            else:
                h = self.norm_f(h)
        return h

    def init_state(self, batch: int, device=None) -> dict:
        return {"mamba": [layer.mixer.init_state(batch, device) for layer in self.layers],
                "kv": {"k": None, "v": None}}

    def step(self, h: Tensor, state: dict) -> Tensor:
        """One token h (B, d) -> (B, d), using Mamba recurrent states and the KV cache."""
        for kind, i in self._order():
            if kind == "m":
                h = self.layers[i].step(h, state["mamba"][i])
            elif kind == "a":
                h = self.attention(h.unsqueeze(1), cache=state["kv"]).squeeze(1)
            else:
                h = self.norm_f(h)
        return h
