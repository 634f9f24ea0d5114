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
* ``table`` -- the hand-set constructions' form (``models.hybrid_lrnn``): a token table W_in,
  no position table, an untied head with a bias: logits_t = backbone(W_in[t_1..t_t]) W_out^T
  + b_out. Not a training option of the CLI.

Backbones (``LMConfig.arch``):

* ``transformer``: LLaMA-style ``Transformer`` blocks (RMSNorm, RoPE, SwiGLU, no biases) from
  ``models/transformer.py`` with a final RMSNorm;
* ``mamba``: ``MambaStack`` from ``models/mamba.py`` (Mamba-1, pre-norm RMSNorm, final norm_f);
* ``hybrid``: ``HybridBackbone`` from ``models/hybrid.py``, layers stacked by a pattern
  (``LMConfig.layer_pattern``): by default Mamba layers + one attention layer, or an explicit
  ``layers`` list (e.g. linear RNN layers + one attention layer: the hand-set constructions).

Every operation of a ``hybrid`` with the ``table`` embedding runs under an ``Arith``
(``forward``/``step`` take one), so the constructions run at their claimed precision through
this class.

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

from rnngap.models.arith import Arith
from rnngap.models.hybrid import HybridBackbone, check_pattern, official_pattern
from rnngap.models.mamba import MambaConfig, MambaStack
from rnngap.models.transformer import Transformer, TransformerConfig

ARCHS = ("transformer", "mamba", "hybrid")
EMBEDDINGS = ("official", "learned")
#: the training choices plus ``table`` (the constructions' embedding; module docstring)
EMBEDDING_KINDS = (*EMBEDDINGS, "table")
#: largest vocabulary an LM accepts: the frozen (V, d_model) embedding table is built in float64
MAX_VOCAB = 1 << 17


@dataclass
class LMConfig:
    """Architecture of a trained model (JSON-serializable; ``model: "lm"`` tags the file).

    ``n_layers`` counts Transformer blocks (transformer) or Mamba blocks (mamba, hybrid; the
    hybrid adds one attention block at ``attn_position``, default on top). ``layers`` (hybrid
    only) replaces that default by an explicit pattern of layer specs (``models.hybrid``);
    it is left out of the JSON when unset, so older configs read and digest as before.
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
    layers: list[dict] | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; known: {', '.join(ARCHS)}")
        if self.embedding not in EMBEDDING_KINDS:
            raise ValueError(f"unknown embedding {self.embedding!r}; known: "
                             f"{', '.join(EMBEDDINGS)}")
        if self.layers is not None:
            if self.arch != "hybrid":
                raise ValueError("an explicit layer pattern needs arch 'hybrid'")
            self.layers = check_pattern(self.layers)
        for name in ("vocab_size", "d_model", "n_layers", "d_state", "n_heads", "d_mlp"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.vocab_size > MAX_VOCAB:
            raise ValueError(f"vocabulary of {self.vocab_size} tokens exceeds {MAX_VOCAB} (the "
                             "frozen embedding table); use a smaller --n or alphabet")
        if self.d_model % 2 and self.embedding == "official":
            raise ValueError("d_model must be even (sinusoidal embedding pairs)")
        if self.arch != "mamba" and self.layers is None and self.d_model % self.n_heads:
            raise ValueError("d_model must be divisible by n_heads")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["layers"] is None:
            del d["layers"]
        return {"model": "lm", **d}

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

    def attention_fields(self) -> dict:
        """``TransformerConfig`` fields of one LLaMA-style layer (the defaults of a hybrid's
        attention specs)."""
        return {"vocab_size": self.vocab_size, "d_model": self.d_model, "n_layers": 1,
                "n_heads": self.n_heads, "d_mlp": self.d_mlp, "max_len": self.max_len,
                "norm": "rmsnorm", "pos": "rope", "mlp": "swiglu", "bias": False,
                "norm_eps": self.norm_eps}

    def transformer_config(self, n_layers: int | None = None) -> TransformerConfig:
        return TransformerConfig(**{**self.attention_fields(),
                                    "n_layers": self.n_layers if n_layers is None else n_layers})

    def layer_pattern(self) -> list[dict]:
        """The hybrid's layers (``models.hybrid``): ``layers``, or n_layers Mamba blocks with
        one attention layer at ``attn_position``."""
        if self.layers is not None:
            return [dict(x) for x in self.layers]
        return official_pattern(self.n_layers, self.attn_position)


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
        elif cfg.embedding == "table":
            self.embedding = self.pos_embed = None
            self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=True)
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
            self.backbone = HybridBackbone(cfg.layer_pattern(), cfg.d_model, cfg.mamba_config(),
                                           cfg.attention_fields())
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
        if self.pos_embed is None:
            return self.tok_embed(tokens)
        T = tokens.shape[-1] if tokens.dim() > 1 else 1
        if start + T > self.cfg.max_len:
            raise ValueError(f"sequence length {start + T} exceeds the learned position table "
                             f"({self.cfg.max_len} positions)")
        pos = self.pos_embed.weight[start:start + T]
        return self.tok_embed(tokens) + (pos if tokens.dim() > 1 else pos[0])

    def head(self, h: Tensor, arith: Arith | None = None) -> Tensor:
        if self.embedding is not None:
            return h @ self.embedding.T
        if arith is not None:
            return arith.linear(h, self.lm_head.weight, self.lm_head.bias)
        return self.lm_head(h)

    def _check_len(self, total: int) -> None:
        if self.cfg.arch != "mamba" and self.cfg.embedding != "table" \
                and total > self.cfg.max_len:
            raise ValueError(f"sequence length {total} exceeds max_len {self.cfg.max_len}")

    def _arith_ok(self, arith: Arith | None) -> None:
        if arith is not None and (self.cfg.arch != "hybrid" or self.cfg.embedding != "table"):
            raise NotImplementedError("p-bit arithmetic is defined for hybrids with the table "
                                      "embedding only")

    def forward(self, tokens: Tensor, arith: Arith | None = None, last_only: bool = False
                ) -> Tensor:
        """tokens (B, T) int64 -> logits (B, T, V), or (B, 1, V) for the final position when
        ``last_only`` (hybrid); ``arith``: the rounding of ``models.arith``."""
        self._check_len(tokens.shape[1])
        self._arith_ok(arith)
        h = self.embed(tokens)
        if self.cfg.arch == "transformer":
            return self.head(self.backbone.backbone(h))
        if self.cfg.arch == "hybrid":
            return self.head(self.backbone(h, arith=arith, last_only=last_only), arith)
        return self.head(self.backbone(h))

    def residual(self, tokens: Tensor, arith: Arith | None = None,
                 traces: list[dict] | None = None, stop: int | None = None) -> Tensor:
        """The hybrid's residual stream (B, T, d) entering layer ``stop`` (default: the first
        attention layer, i.e. after the recurrence); ``traces``: as
        ``HybridBackbone.forward``."""
        self._arith_ok(arith)
        stop = self.backbone.first_attention() if stop is None else stop
        return self.backbone(self.embed(tokens), arith=arith, traces=traces, stop=stop)

    def predict(self, tokens: Tensor, arith: Arith | None = None) -> Tensor:
        """argmax of the final position's logits (lowest index on ties), shape (B,)."""
        return self.forward(tokens, arith, last_only=True)[:, -1, :].argmax(-1)

    # ------------------------------------------------------------------ incremental decoding
    def init_state(self, batch: int, capacity: int | None = None) -> dict:
        """An empty decoding state (``capacity``: the final length when known, so KV buffers
        are allocated once)."""
        dev = self.device
        if self.cfg.arch == "transformer":
            inner = self.backbone.init_cache()
        elif self.cfg.arch == "hybrid":
            inner = self.backbone.init_state(batch, dev, capacity)
        else:
            inner = self.backbone.init_state(batch, dev)
        return {"pos": 0, "inner": inner}

    def prefill(self, tokens: Tensor, state: dict, arith: Arith | None = None) -> Tensor:
        """Run a prompt (B, T) from an empty state; returns logits (B, T, V)."""
        if state["pos"]:
            raise ValueError("prefill needs a fresh state")
        self._check_len(tokens.shape[1])
        self._arith_ok(arith)
        h = self.embed(tokens)
        if self.cfg.arch == "transformer":
            out = self.backbone.backbone(h, caches=state["inner"])
        elif self.cfg.arch == "hybrid":
            out = self.backbone(h, state["inner"], arith)
        else:
            out = self.backbone(h, state["inner"])
        state["pos"] = tokens.shape[1]
        return self.head(out, arith)

    def step(self, tok: Tensor, state: dict, arith: Arith | None = None) -> Tensor:
        """Feed one token per row (B,) after the state's prefix; returns logits (B, V)."""
        self._check_len(state["pos"] + 1)
        self._arith_ok(arith)
        h = self.embed(tok, state["pos"])
        if self.cfg.arch == "transformer":
            out = self.backbone.backbone(h.unsqueeze(1), caches=state["inner"]).squeeze(1)
        elif self.cfg.arch == "hybrid":
            out = self.backbone.step(h, state["inner"], arith)
        else:
            out = self.backbone.step(h, state["inner"])
        state["pos"] += 1
        return self.head(out, arith)

    # ------------------------------------------------------------------ accounting
    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def total_parameters(self) -> int:
        """Trainable parameters plus the frozen embedding table (official: counted once, the
        head is tied; learned: already trainable)."""
        frozen = self.embedding.numel() if self.embedding is not None else 0
        return self.trainable_parameters() + frozen

    def kv_scalars(self, context_len: int) -> int:
        """Scalars of the KV caches after ``context_len`` positions (0 for Mamba)."""
        return 0 if self.cfg.arch == "mamba" else self.backbone.kv_scalars(context_len)

    def state_scalars(self, context_len: int | None = None) -> int | None:
        """Numbers carried between tokens, as the backbone reports them. Mamba: fixed.
        Transformer / hybrid: plus the KV cache, 2 * heads * d_head * context_len per attention
        layer (grows with the context; None if not given)."""
        if self.cfg.arch == "mamba":
            return self.backbone.state_scalars()
        if context_len is None:
            return None
        return self.kv_scalars(context_len) + self.backbone.state_scalars()



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
    kinds = [s["kind"] for s in cfg.layer_pattern()] if cfg.arch == "hybrid" else []
    n_attn = cfg.n_layers if cfg.arch == "transformer" else kinds.count("attention")
    n_mamba = cfg.n_layers if cfg.arch == "mamba" else \
        sum(k in ("mamba", "lrnn") for k in kinds)
    d_inner = 2 * cfg.d_model
    act = n_attn * (3 * batch * cfg.n_heads * length * length * f * mult)
    act += n_mamba * (5 * batch * length * d_inner * cfg.d_state * f * (2 if training else 1))
    act += (n_attn + n_mamba) * 12 * batch * length * max(cfg.d_model, d_inner) * f
    act += batch * length * cfg.vocab_size * f * mult
    return params * f * (4 if training else 1) + act, params
