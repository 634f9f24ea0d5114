"""A language-model wrapper shared by the three trained architectures.

Two embeddings (``LMConfig.embedding``):

* ``official`` -- as in the paper's experiments (C8; the official code builds this table):

      logits_t = backbone(E[t_1..t_t]) E^T

  E is a FROZEN deterministic sinusoidal number embedding (V x d), the same table is the output
  head (tied, frozen):

      E[i, 2k]   = sin(i / 10000^(2k / d)),     E[i, 2k+1] = cos(i / 10000^(2k / d)).

  Only the backbone is trained and every architecture sees the same number geometry; the
  trainable counts are the official ones (tests/test_lm.py).
* ``learned`` -- a trainable token table W_in (V x d, N(0, 1) init as torch's nn.Embedding),
  a trainable absolute position table P (max_len x d, small init) and an untied trainable head
  W_out (d -> V, no bias):

      logits_t = backbone(W_in[t_1..t_t] + P[1..t]) W_out^T.

  The position table matters for associative recall: telling a key slot from a value slot is
  a parity of the position, which neither RoPE's relative angles nor Mamba's positive decays
  give exactly (without it a 2-layer Transformer plateaus near 0.8 on AR: docs/learning.md).

  At CPU scale this is what lets small models learn the retrieval tasks at all: with the frozen
  table the model must produce exactly the sinusoid of the answer through a frozen head whose
  logits for nearby numbers differ little (docs/learning.md has the measured diagnosis). The
  table size is fixed at training time: a learned model cannot be evaluated on a larger
  vocabulary.
Backbones (``LMConfig.arch``):

* ``transformer``: LLaMA-style ``Transformer`` blocks (RMSNorm, RoPE, SwiGLU, no biases) from
  ``models/transformer.py`` with a final RMSNorm;
* ``mamba``: ``MambaStack`` from ``models/mamba.py`` (Mamba-1, pre-norm RMSNorm, final norm_f);
* ``hybrid``: ``HybridBackbone`` from ``models/hybrid.py`` (Mamba layers + one attention layer).

Incremental decoding: ``state = lm.init_state(B)``; ``lm.prefill(tokens, state)`` runs a prompt
(B, T) and fills ``state``; ``lm.step(tok, state)`` feeds one token (B,) and returns logits (B, V).
Transformers keep a KV cache, Mamba a fixed-size recurrent state: nothing re-reads the prefix.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from rnngap.models.hybrid import HybridBackbone
from rnngap.models.mamba import MambaConfig, MambaStack
from rnngap.models.transformer import Transformer, TransformerConfig

ARCHS = ("transformer", "mamba", "hybrid")
EMBEDDINGS = ("official", "learned")
#: largest vocabulary an LM accepts: the frozen (V, d_model) embedding table is built in float64
MAX_VOCAB = 1 << 17


@dataclass
class LMConfig:
    """Architecture of a trained model (JSON-serializable; ``model: "lm"`` tags the file).

    ``n_layers`` counts Transformer blocks (transformer) or Mamba blocks (mamba, hybrid; the
    hybrid adds one attention block at ``attn_position``, default on top).
    """

    arch: str
    vocab_size: int
    d_model: int
    n_layers: int
    d_state: int = 16
    n_heads: int = 4
    d_mlp: int = 256
    attn_position: int | None = None
    max_len: int = 8192
    scan: str = "auto"
    norm_eps: float = 1e-5
    embedding: str = "official"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; known: {', '.join(ARCHS)}")
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"unknown embedding {self.embedding!r}; known: "
                             f"{', '.join(EMBEDDINGS)}")
        for name in ("vocab_size", "d_model", "n_layers", "d_state", "n_heads", "d_mlp"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.vocab_size > MAX_VOCAB:
            raise ValueError(f"vocabulary of {self.vocab_size} tokens exceeds {MAX_VOCAB} (the "
                             "frozen embedding table); use a smaller --n or alphabet")
        if self.d_model % 2 and self.embedding == "official":
            raise ValueError("d_model must be even (sinusoidal embedding pairs)")
        if self.arch != "mamba" and self.d_model % self.n_heads:
            raise ValueError("d_model must be divisible by n_heads")

    def to_dict(self) -> dict:
        return {"model": "lm", **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> LMConfig:
        d = dict(d)
        kind = d.pop("model", None)
        if kind != "lm":
            raise ValueError(f"config is for a {kind!r} model, not an rnngap learned LM")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown LM config keys: {sorted(unknown)}")
        return cls(**d)

    def mamba_config(self) -> MambaConfig:
        return MambaConfig(self.d_model, self.n_layers, d_state=self.d_state,
                           norm_eps=self.norm_eps, scan=self.scan)

    def transformer_config(self, n_layers: int | None = None) -> TransformerConfig:
        return TransformerConfig(vocab_size=self.vocab_size, d_model=self.d_model,
                                 n_layers=self.n_layers if n_layers is None else n_layers,
                                 n_heads=self.n_heads, d_mlp=self.d_mlp, max_len=self.max_len,
                                 norm="rmsnorm", pos="rope", mlp="swiglu", bias=False,
                                 norm_eps=self.norm_eps)


def sinusoidal_embedding(vocab_size: int, d_model: int) -> Tensor:
    """E[i, 2k] = sin(i / 10000^(2k/d)), E[i, 2k+1] = cos(i / 10000^(2k/d)), float32 (V, d)."""
    i = torch.arange(vocab_size, dtype=torch.float64)[:, None]
    two_k = torch.arange(0, d_model, 2, dtype=torch.float64)[None, :]
    ang = i / torch.pow(torch.tensor(10000.0, dtype=torch.float64), two_k / d_model)
    E = torch.empty(vocab_size, d_model, dtype=torch.float64)
    E[:, 0::2], E[:, 1::2] = ang.sin(), ang.cos()
    return E.float()


class LM(nn.Module):
    """Embedding -> backbone -> head: frozen sinusoidal table with the tied frozen head
    (``official``) or a trainable table with an untied head (``learned``); see the module
    docstring."""

    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.embedding == "official":
            # Not persistent: the table is a function of (vocab_size, d_model), so checkpoints
            # hold only trained weights and load into a model with a larger vocabulary (larger n).
            self.register_buffer("embedding", sinusoidal_embedding(cfg.vocab_size, cfg.d_model),
                                 persistent=False)
            self.tok_embed = self.lm_head = None
        else:
            self.embedding = None
            self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
            self.pos_embed = nn.Embedding(cfg.max_len, cfg.d_model)
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
            # token table N(0, 1) (torch's default; a 0.11-std table learned 6x slower, see
            # docs/learning.md); position table N(0, 0.02^2 d), a small additive signal
            nn.init.normal_(self.tok_embed.weight, std=1.0)
            nn.init.normal_(self.pos_embed.weight, std=0.02 * math.sqrt(cfg.d_model))
        if cfg.arch == "transformer":
            t = Transformer(cfg.transformer_config())
            # The Transformer's own token table / unembedding are replaced by the frozen table.
            del t.embed, t.unembed
            self.backbone = t
        elif cfg.arch == "mamba":
            self.backbone = MambaStack(cfg.mamba_config())
        else:
            self.backbone = HybridBackbone(cfg.mamba_config(), cfg.transformer_config(1),
                                           cfg.attn_position)
        self._init_llama()

    def _init_llama(self) -> None:
        """Normal(0, 0.02) for attention/MLP linear weights (LLaMA's initializer_range)."""
        for name, mod in self.backbone.named_modules():
            if isinstance(mod, nn.Linear) and (".attn." in f".{name}." or ".mlp." in f".{name}."):
                nn.init.normal_(mod.weight, std=0.02)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def embed(self, tokens: Tensor, start: int = 0) -> Tensor:
        """Input vectors of ``tokens`` (B, T) at absolute positions start..start+T-1 (or (B,)
        for one step at position ``start``)."""
        if self.embedding is not None:
            return self.embedding[tokens]
        T = tokens.shape[-1] if tokens.dim() > 1 else 1
        if start + T > self.cfg.max_len:
            raise ValueError(f"sequence length {start + T} exceeds the learned position table "
                             f"({self.cfg.max_len} positions)")
        pos = self.pos_embed.weight[start:start + T]
        return self.tok_embed(tokens) + (pos if tokens.dim() > 1 else pos[0])

    def head(self, h: Tensor) -> Tensor:
        if self.embedding is not None:
            return h @ self.embedding.T
        return self.lm_head(h)

    def _check_len(self, total: int) -> None:
        if self.cfg.arch != "mamba" and total > self.cfg.max_len:
            raise ValueError(f"sequence length {total} exceeds max_len {self.cfg.max_len}")

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) int64 -> logits (B, T, V)."""
        self._check_len(tokens.shape[1])
        h = self.embed(tokens)
        if self.cfg.arch == "transformer":
            return self.head(self.backbone.backbone(h))
        return self.head(self.backbone(h))

    # ------------------------------------------------------------------ incremental decoding
    def init_state(self, batch: int) -> dict:
        dev = self.device
        if self.cfg.arch == "transformer":
            inner = self.backbone.init_cache()
        else:
            inner = self.backbone.init_state(batch, dev)
        return {"pos": 0, "inner": inner}

    def prefill(self, tokens: Tensor, state: dict) -> Tensor:
        """Run a prompt (B, T) from an empty state; returns logits (B, T, V)."""
        if state["pos"]:
            raise ValueError("prefill needs a fresh state")
        self._check_len(tokens.shape[1])
        h = self.embed(tokens)
        if self.cfg.arch == "transformer":
            out = self.backbone.backbone(h, caches=state["inner"])
        elif self.cfg.arch == "mamba":
            out = self.backbone(h, state["inner"])
        else:
            out = self.backbone(h, state["inner"])
        state["pos"] = tokens.shape[1]
        return self.head(out)

    def step(self, tok: Tensor, state: dict) -> Tensor:
        """Feed one token per row (B,) after the state's prefix; returns logits (B, V)."""
        self._check_len(state["pos"] + 1)
        h = self.embed(tok, state["pos"])
        if self.cfg.arch == "transformer":
            out = self.backbone.backbone(h.unsqueeze(1), caches=state["inner"]).squeeze(1)
        else:
            out = self.backbone.step(h, state["inner"])
        state["pos"] += 1
        return self.head(out)

    # ------------------------------------------------------------------ accounting
    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def total_parameters(self) -> int:
        """Trainable parameters plus the frozen embedding table (official: counted once, the
        head is tied; learned: already trainable)."""
        frozen = self.embedding.numel() if self.embedding is not None else 0
        return self.trainable_parameters() + frozen

    def state_scalars(self, context_len: int | None = None) -> int | None:
        """Numbers carried between tokens. Mamba: fixed. Transformer / hybrid: the KV cache,
        2 * layers * heads * d_head * context_len (grows with the context; None if not given)."""
        c = self.cfg
        if c.arch == "mamba":
            return self.backbone.state_scalars()
        if context_len is None:
            return None
        kv = 2 * c.d_model * context_len
        if c.arch == "transformer":
            return c.n_layers * kv
        return kv + c.n_layers * 2 * c.d_model * (c.d_state + 3)



def memory_estimate(cfg: LMConfig, batch: int, length: int, training: bool) -> tuple[int, int]:
    """(bytes, parameters): a rough upper estimate of the memory one step of ``LM(cfg)`` needs
    on ``batch`` sequences of ``length`` tokens, computed from shapes alone (the model is built
    on the ``meta`` device, nothing is allocated), for the up-front refusal of
    rnngap.resources. Counted (float32): the parameters (training: + gradients and two AdamW
    moments), per attention layer ~3 (B, H, L, L) score tensors, per Mamba layer ~5
    (B, L, d_inner, N) scan tensors plus ~12 (B, L, width) activations per layer, and the
    logits (training: 3 copies for the loss). Not a peak measurement: a guard against
    requests that cannot possibly fit."""
    with torch.device("meta"):
        params = sum(v.numel() for v in LM(cfg).state_dict().values())
    f = 4
    mult = 3 if training else 1
    n_attn = cfg.n_layers if cfg.arch == "transformer" else (1 if cfg.arch == "hybrid" else 0)
    n_mamba = 0 if cfg.arch == "transformer" else cfg.n_layers
    d_inner = 2 * cfg.d_model
    act = n_attn * (3 * batch * cfg.n_heads * length * length * f * mult)
    act += n_mamba * (5 * batch * length * d_inner * cfg.d_state * f * (2 if training else 1))
    act += (n_attn + n_mamba) * 12 * batch * length * max(cfg.d_model, d_inner) * f
    act += batch * length * cfg.vocab_size * f * mult
    return params * f * (4 if training else 1) + act, params
