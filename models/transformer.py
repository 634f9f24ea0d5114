"""The Transformer: one architecture for hand-set (constructed) and trained weights.

Forward pass, for tokens t_1..t_T (positions 1..T) -- the equations every consumer relies on:

    h^0_j   = E[t_j] + P[j]                      E: token embedding table, P: positional table
                                                 (P = 0 when ``pos`` is "none" or "rope")
    for each layer l = 1..L:
        x    = N1(h^{l-1})                       N = RMSNorm if ``norm == "rmsnorm"``, else identity
        for each head h:  q = x W_Q^h + b_Q^h,  k = x W_K^h + b_K^h,  v = x W_V^h + b_V^h
                          (RoPE rotates q, k by position when ``pos == "rope"``)
                          s_{ij} = attn_scale * <q_i, k_j>        for j <= i (causal)
                          a_{i.} = softmax_j(s_{i.});   o_i = sum_j a_{ij} v_j
        h'   = h^{l-1} + concat_h(o) W_O + b_O
        MLP  = relu:   relu(N2(h') W_1 + b_1) W_2 + b_2
               swiglu: (silu(N2(h') W_g) * (N2(h') W_u)) W_d
        h^l  = h' + MLP
    logits  = N_f(h^L) W_U + b_U;   prediction = argmax_t logits (lowest index on ties)

``attn_scale`` defaults to 1/sqrt(d_head); constructions set it to 1 and fold their inverse
temperature into W_Q. With an ``Arith`` (``models.arith``) every operation above is rounded as
that module specifies; without one, plain torch ops run (fast path, used for training).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnngap.models.arith import Arith
from rnngap.resources import require

NORMS = ("none", "rmsnorm")
POSITIONS = ("none", "table", "rope")
MLPS = ("relu", "swiglu")


@dataclass
class TransformerConfig:
    """Architecture hyperparameters (JSON-serializable). See the module docstring."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    d_mlp: int
    d_head: int | None = None
    max_len: int = 2048
    norm: str = "none"
    pos: str = "table"
    mlp: str = "relu"
    bias: bool = True
    rope_base: float = 10000.0
    attn_scale: float | None = None
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.d_head is None:
            if self.d_model % self.n_heads:
                raise ValueError("d_model must be divisible by n_heads when d_head is not given")
            self.d_head = self.d_model // self.n_heads
        for name, value, allowed in (("norm", self.norm, NORMS), ("pos", self.pos, POSITIONS),
                                     ("mlp", self.mlp, MLPS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_mlp", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def scale(self) -> float:
        return self.attn_scale if self.attn_scale is not None else 1.0 / math.sqrt(self.d_head)

    def to_json(self) -> str:
        return json.dumps({"model": "transformer", **asdict(self)}, indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        d = dict(d)
        kind = d.pop("model", "transformer")
        if kind != "transformer":
            raise ValueError(f"config is for a {kind!r} model, not a transformer")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown transformer config keys: {sorted(unknown)}")
        return cls(**d)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (Zhang and Sennrich 2019)."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_rotate(x: Tensor, positions: Tensor, base: float) -> Tensor:
    """Rotary position embedding (Su et al. 2021), half-split convention: (B, H, T, D)."""
    d = x.shape[-1]
    half = d // 2
    inv = base ** (-torch.arange(half, dtype=torch.float64, device=x.device) / half)
    ang = positions.to(torch.float64)[:, None] * inv[None, :]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:2 * half]
    rot = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return torch.cat([rot, x[..., 2 * half:]], dim=-1) if d % 2 else rot


class Attention(nn.Module):
    """Causal multi-head softmax attention (q_proj, k_proj, v_proj, o_proj), reusable by hybrids."""

    def __init__(self, d_model: int, n_heads: int, d_head: int, bias: bool = True,
                 rope: bool = False, rope_base: float = 10000.0, scale: float | None = None):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.rope, self.rope_base = rope, rope_base
        self.scale = scale if scale is not None else 1.0 / math.sqrt(d_head)
        inner = n_heads * d_head
        self.q_proj = nn.Linear(d_model, inner, bias=bias)
        self.k_proj = nn.Linear(d_model, inner, bias=bias)
        self.v_proj = nn.Linear(d_model, inner, bias=bias)
        self.o_proj = nn.Linear(inner, d_model, bias=bias)
        self.probe: Callable[[Tensor], None] | None = None
        """Called with the attention weights (B, H, T_q, T_k) of every p-bit ``attend``
        (verifiers use it to audit that rows are exactly one-hot); None: no call."""

    def kv_scalars(self, context_len: int) -> int:
        """Scalars its KV cache holds after ``context_len`` positions: a key and a value of
        d_head numbers per head and position."""
        return 2 * self.n_heads * self.d_head * context_len

    def _split(self, x: Tensor) -> Tensor:  # (B, T, H*D) -> (B, H, T, D)
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

    def qkv(self, x: Tensor, positions: Tensor, arith: Arith | None) -> tuple[Tensor, ...]:
        """Per-head queries, keys, values (B, H, T, D), positions 1-based (T,)."""
        lin = (lambda m, y: F.linear(y, m.weight, m.bias)) if arith is None else \
            (lambda m, y: arith.linear(y, m.weight, m.bias))
        q, k, v = (self._split(lin(m, x)) for m in (self.q_proj, self.k_proj, self.v_proj))
        if self.rope:
            q, k = rope_rotate(q, positions, self.rope_base), rope_rotate(k, positions, self.rope_base)
            if arith is not None:
                q, k = arith.r(q), arith.r(k)
        return q, k, v

    def attend(self, q: Tensor, k: Tensor, v: Tensor, q_offset: int, arith: Arith) -> Tensor:
        """Explicit causal attention under ``arith``; query i attends to keys j <= i + q_offset."""
        s = arith.matmul(q, k.transpose(-1, -2))
        if self.scale != 1.0:
            s = arith.mul(s, self.scale)
        tq, tk = q.shape[-2], k.shape[-2]
        mask = torch.arange(tk)[None, :] > (torch.arange(tq)[:, None] + q_offset)
        s = s.masked_fill(mask, float("-inf"))
        a = arith.softmax(s, dim=-1)
        if self.probe is not None:
            self.probe(a)
        return arith.matmul(a, v)

    def merge(self, o: Tensor, arith: Arith | None) -> Tensor:
        b, _, t, _ = o.shape
        o = o.transpose(1, 2).reshape(b, t, self.n_heads * self.d_head)
        if arith is None:
            return self.o_proj(o)
        return arith.linear(o, self.o_proj.weight, self.o_proj.bias)

    def forward(self, x: Tensor, arith: Arith | None = None, last_only: bool = False,
                cache: dict | None = None) -> Tensor:
        """x: (B, T, d). ``last_only``: compute the output of the final position only.

        ``cache`` (incremental decoding, fast path): dict with "k", "v" (B, H, T_past, D) that is
        extended in place; x then holds the new positions only.
        """
        past = 0 if cache is None or cache.get("k") is None else cache["k"].shape[-2]
        positions = torch.arange(past + 1, past + x.shape[1] + 1, device=x.device)
        q, k, v = self.qkv(x, positions, arith)
        if cache is not None:
            k, v = _cache_append(cache, k, v, past)
        offset = past
        if last_only:
            offset += q.shape[-2] - 1
            q = q[..., -1:, :]
        # scores, mask and softmax of every (query, key) pair: ~3 (B, H, Tq, Tk) tensors
        require(3 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.element_size(),
                f"attention over {k.shape[2]:,} positions ({q.shape[1]} heads, batch "
                f"{q.shape[0]})")
        if arith is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=(q.shape[-2] > 1 and not past),
                                               scale=self.scale) if q.shape[-2] == k.shape[-2] \
                else _attend_offset(q, k, v, offset, self.scale)
        else:
            o = self.attend(q, k, v, offset, arith)
        return self.merge(o, arith)


def _cache_append(cache: dict, k: Tensor, v: Tensor, past: int) -> tuple[Tensor, Tensor]:
    """Append new keys/values to ``cache`` and return all of them, (B, H, past + T_new, D).

    The cache keeps buffers with spare room, so a decoding step copies only the new position
    instead of the whole past (``torch.cat`` per step is quadratic in the length): sized
    ``cache["capacity"]`` when the caller knows the final length (one allocation), else grown by
    doubling.  ``cache["k"]`` / ``cache["v"]`` are always the filled part; code that replaces
    them (e.g. dropping finished rows by indexing) makes the next append rebuild the buffers
    from them.  Do not shallow-copy a cache dict or truncate ``cache["k"]`` and append again:
    two owners would write into one buffer.  When gradients flow into the keys, the plain
    ``torch.cat`` path is used (in-place writes would break autograd)."""
    if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad):
        if past:
            k, v = torch.cat([cache["k"], k], -2), torch.cat([cache["v"], v], -2)
        cache["k"], cache["v"] = k, v
        cache.pop("k_buf", None)
        cache.pop("v_buf", None)
        return k, v
    need = past + k.shape[-2]
    kb, vb = cache.get("k_buf"), cache.get("v_buf")
    fresh = (kb is None or kb.shape[-2] < need or kb.shape[:2] != k.shape[:2]
             or kb.dtype != k.dtype or kb.device != k.device
             or (past and kb.data_ptr() != cache["k"].data_ptr()))
    if fresh:
        old = 0 if kb is None else kb.shape[-2]
        # grow by doubling only when the length outgrows the buffer; a rebuild for a new
        # batch (finished rows dropped) keeps the capacity, so it cannot compound
        cap = old if need <= old else max(need, 2 * old, 64)
        cap = max(need, min(cap, cache.get("capacity") or cap))
        kb = k.new_empty(*k.shape[:2], cap, k.shape[-1])
        vb = v.new_empty(*v.shape[:2], cap, v.shape[-1])
        if past:
            kb[..., :past, :], vb[..., :past, :] = cache["k"], cache["v"]
        cache["k_buf"], cache["v_buf"] = kb, vb
    kb[..., past:need, :], vb[..., past:need, :] = k, v
    cache["k"], cache["v"] = kb[..., :need, :], vb[..., :need, :]
    return cache["k"], cache["v"]


def _attend_offset(q: Tensor, k: Tensor, v: Tensor, offset: int, scale: float) -> Tensor:
    tq, tk = q.shape[-2], k.shape[-2]
    mask = torch.arange(tk, device=q.device)[None, :] <= (torch.arange(tq, device=q.device)[:, None]
                                                          + offset)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


class MLP(nn.Module):
    """ReLU MLP (fc_in, fc_out) or SwiGLU (gate_proj, up_proj, down_proj; Shazeer 2020)."""

    def __init__(self, d_model: int, d_mlp: int, kind: str, bias: bool):
        super().__init__()
        self.kind = kind
        if kind == "relu":
            self.fc_in = nn.Linear(d_model, d_mlp, bias=bias)
            self.fc_out = nn.Linear(d_mlp, d_model, bias=bias)
        else:
            self.gate_proj = nn.Linear(d_model, d_mlp, bias=bias)
            self.up_proj = nn.Linear(d_model, d_mlp, bias=bias)
            self.down_proj = nn.Linear(d_mlp, d_model, bias=bias)

    def forward(self, x: Tensor, arith: Arith | None = None) -> Tensor:
        if arith is None:
            if self.kind == "relu":
                return self.fc_out(F.relu(self.fc_in(x)))
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        if self.kind != "relu":
            raise NotImplementedError("p-bit arithmetic is defined for the ReLU MLP only")
        u = arith.linear(x, self.fc_in.weight, self.fc_in.bias)
        return arith.linear(torch.relu(u), self.fc_out.weight, self.fc_out.bias)


class Block(nn.Module):
    """One residual layer: attention then MLP, pre-norm when the config has a norm."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.d_head, cfg.bias, cfg.pos == "rope",
                              cfg.rope_base, cfg.scale)
        self.mlp = MLP(cfg.d_model, cfg.d_mlp, cfg.mlp, cfg.bias)
        norm = (lambda: RMSNorm(cfg.d_model, cfg.norm_eps)) if cfg.norm == "rmsnorm" else nn.Identity
        self.norm1, self.norm2 = norm(), norm()

    def forward(self, h: Tensor, arith: Arith | None = None, last_only: bool = False,
                cache: dict | None = None) -> Tensor:
        a = self.attn(self.norm1(h), arith, last_only=last_only, cache=cache)
        if last_only:
            h = h[:, -1:, :]
        h = h + a if arith is None else arith.add(h, a)
        m = self.mlp(self.norm2(h), arith)
        return h + m if arith is None else arith.add(h, m)


class Transformer(nn.Module):
    """Token embedding + positions, ``n_layers`` Blocks, final norm, unembedding."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.pos == "table":
            self.register_buffer("pos_table", torch.zeros(cfg.max_len, cfg.d_model))
        else:
            self.pos_table = None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.d_model, cfg.norm_eps) if cfg.norm == "rmsnorm" else nn.Identity()
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=cfg.bias)

    def embed_tokens(self, tokens: Tensor, arith: Arith | None = None, start: int = 0) -> Tensor:
        """h^0 for tokens at positions start+1 .. start+T."""
        if tokens.shape[1] + start > self.cfg.max_len:
            raise ValueError(f"sequence of length {tokens.shape[1] + start} exceeds max_len "
                             f"{self.cfg.max_len}")
        h = self.embed(tokens)
        if self.pos_table is not None:
            p = self.pos_table[start:start + tokens.shape[1]].to(h.dtype)
            h = h + p if arith is None else arith.add(h, p)
        return h

    def backbone(self, h: Tensor, arith: Arith | None = None, last_only: bool = False,
                 caches: list | None = None) -> Tensor:
        """The layers and the final norm on embedded inputs h (B, T, d)."""
        if arith is not None and self.cfg.norm != "none":
            raise NotImplementedError("p-bit arithmetic is defined for norm='none' models only")
        for i, block in enumerate(self.blocks):
            is_last = last_only and i == len(self.blocks) - 1
            h = block(h, arith, last_only=is_last, cache=None if caches is None else caches[i])
        return self.final_norm(h)

    def logits(self, h: Tensor, arith: Arith | None = None) -> Tensor:
        if arith is None:
            return self.unembed(h)
        return arith.linear(h, self.unembed.weight, self.unembed.bias)

    def forward(self, tokens: Tensor, arith: Arith | None = None, last_only: bool = False) -> Tensor:
        """Logits (B, T, V), or (B, 1, V) for the final position when ``last_only``."""
        return self.logits(self.backbone(self.embed_tokens(tokens, arith), arith, last_only), arith)

    def init_cache(self, capacity: int | None = None) -> list[dict]:
        """Empty KV caches, one per layer, for ``step`` (incremental decoding); ``capacity``:
        the final length when known (the buffers are then allocated once, at that size)."""
        return [{"k": None, "v": None, "capacity": capacity} for _ in self.blocks]

    def step(self, tokens: Tensor, caches: list[dict], arith: Arith | None = None) -> Tensor:
        """Feed new tokens (B, T_new) after the cached prefix; returns logits (B, T_new, V).
        With ``arith`` the step runs in that arithmetic (the same equations, rounded)."""
        start = 0 if caches[0]["k"] is None else caches[0]["k"].shape[-2]
        h = self.embed_tokens(tokens, arith, start)
        return self.logits(self.backbone(h, arith, caches=caches), arith)

    def predict(self, tokens: Tensor, arith: Arith | None = None) -> Tensor:
        """argmax of the final position's logits (lowest index on ties), shape (B,)."""
        return self.forward(tokens, arith, last_only=True)[:, -1, :].argmax(-1)

    def state_scalars(self) -> int:
        """Scalars carried between tokens besides the KV cache: none."""
        return 0

    def kv_scalars(self, context_len: int) -> int:
        """Scalars of the KV caches after ``context_len`` positions: 2 * heads * d_head per
        position and layer."""
        return sum(b.attn.kv_scalars(context_len) for b in self.blocks)
