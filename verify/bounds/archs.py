"""State size of real recurrent architectures: everything a model carries from one token to the next.

The bound of :mod:`rnngap.verify.bounds` needs S, the number of bits of state. For a recurrent
model S = sum over carried tensors of (number of scalars) x (bits per scalar). Counted per layer:

* Mamba-1 (Gu & Dao 2023): SSM state d_inner x d_state, conv buffer d_inner x (d_conv - 1),
  d_inner = expand x d_model (Hugging Face configs also give it as ``intermediate_size``).
* Mamba-2 (Dao & Gu 2024): SSM state d_inner x d_state (nheads x headdim x d_state); conv buffer
  over x, B, C: (d_inner + 2 ngroups d_state) x (d_conv - 1).
* RWKV-6 / RWKV-7: wkv state (d_model / head_size) heads x head_size^2 = d_model x head_size,
  plus two token-shift vectors (time mix and channel mix), d_model each.
* GLA, RetNet, DeltaNet, linear attention: per head a d_k x d_v matrix: d_k d_v / heads; optional
  short convolutions (DeltaNet: q, k, v) d x (d_conv - 1) each.
* xLSTM mLSTM: per head C (d_qk x d_v / heads^2), normalizer n (d_qk / heads), stabilizer m (1).
* Griffin / RecurrentGemma (De et al. 2024): RG-LRU layers carry lru_width plus a conv buffer
  lru_width x (conv1d_width - 1); local-attention layers carry a KV cache of ``window`` tokens:
  window x 2 x kv_heads x head_dim. Layer i (0-based) is local attention when
  i % attention_every == attention_every - 1 (default 3: recurrent, recurrent, attention, as in
  Griffin and RecurrentGemma). Hawk: RG-LRU layers only.
* LSTM: h and c (2 d per layer); GRU: h (d per layer).

Bits per scalar. Matrix/SSM states default to float32: the reference scan kernels (mamba_ssm
selective scan, flash-linear-attention chunk kernels, the RWKV CUDA kernels) accumulate the state
in fp32 while they read a prompt, so that is what crosses token boundaries during prefill; conv
and token-shift buffers and local KV caches default to the model dtype (bf16 for the presets).
Counting more bits only raises n*, so these defaults err on the safe side. ``dtype`` overrides.

Models with GLOBAL attention (Jamba, Zamba, rnngap's hybrid) carry a KV cache that grows with n:
their state is not bounded, and no failure length follows (they solve the tasks: C6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DTYPE_BITS: dict[str, int] = {"float32": 32, "fp32": 32, "bfloat16": 16, "bf16": 16,
                              "float16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4}

FAMILIES: dict[str, tuple[str, ...]] = {  # family -> required parameters
    "mamba": ("d_model", "n_layers"), "mamba2": ("d_model", "n_layers"),
    "rwkv6": ("d_model", "n_layers"), "rwkv7": ("d_model", "n_layers"),
    "gla": ("d_model", "n_layers", "heads"), "retnet": ("d_model", "n_layers", "heads"),
    "deltanet": ("d_model", "n_layers", "heads"),
    "linear-attention": ("d_model", "n_layers", "heads"),
    "mlstm": ("d_model", "n_layers", "heads"), "griffin": ("d_model", "n_layers"),
    "hawk": ("d_model", "n_layers"), "lstm": ("d_model", "n_layers"),
    "gru": ("d_model", "n_layers"), "hybrid-global": ("d_model", "n_layers"),
}

DEFAULTS: dict[str, dict] = {
    "mamba": {"d_state": 16, "expand": 2, "d_conv": 4},
    "mamba2": {"d_state": 128, "expand": 2, "d_conv": 4, "head_dim": 64, "ngroups": 1},
    "rwkv6": {"head_dim": 64}, "rwkv7": {"head_dim": 64},
    "gla": {"expand_k": 0.5, "expand_v": 1.0, "d_conv": 0},
    "retnet": {"expand_k": 1.0, "expand_v": 2.0, "d_conv": 0},
    "deltanet": {"expand_k": 1.0, "expand_v": 1.0, "d_conv": 4},
    "linear-attention": {"expand_k": 1.0, "expand_v": 1.0, "d_conv": 0},
    "mlstm": {"expand_k": 0.5, "expand_v": 1.0, "d_conv": 0},
    "griffin": {"d_conv": 4, "window": 2048, "kv_heads": 1, "head_dim": 256,
                "attention_every": 3},
    "hawk": {"d_conv": 4}, "lstm": {}, "gru": {}, "hybrid-global": {},
}


@dataclass(frozen=True)
class Component:
    """One carried tensor: ``scalars`` numbers of ``bits`` bits each (all layers together)."""

    name: str
    scalars: int
    bits: int


@dataclass(frozen=True)
class ArchState:
    """The state of one architecture: components, totals, and where the numbers came from."""

    arch: str
    family: str
    params: dict
    components: tuple[Component, ...]
    source: str
    global_attention: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def state_scalars(self) -> int:
        return sum(c.scalars for c in self.components)

    @property
    def state_bits(self) -> int:
        return sum(c.scalars * c.bits for c in self.components)


def kv_cache_bits(d_model: int, n_layers: int, n: int, bits: int = 16) -> int:
    """Bits of a Transformer's KV cache after n tokens: 2 (K, V) x layers x d_model x n x bits
    (full multi-head attention of the same width and depth, no grouped-query sharing)."""
    return 2 * n_layers * d_model * n * bits


def _bits(dtype: str) -> int:
    if dtype not in DTYPE_BITS:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BITS)}")
    return DTYPE_BITS[dtype]


def state_of(family: str, params: dict, name: str | None = None, source: str = "free parameters",
             dtype: str | None = None) -> ArchState:
    """Count the carried state of ``family`` with ``params`` (missing ones take DEFAULTS).

    ``dtype`` (e.g. "bf16") sets the bits of every component; otherwise matrix states use
    float32 and buffers the model dtype ``params.get("model_dtype", "bf16")``.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown architecture family {family!r}; known: {', '.join(FAMILIES)}")
    missing = [p for p in FAMILIES[family] if params.get(p) is None]
    if missing:
        raise ValueError(f"{family} needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
    p = {**DEFAULTS[family], **{k: v for k, v in params.items() if v is not None}}
    for k in (*FAMILIES[family], *DEFAULTS[family]):
        v = p.get(k)
        if isinstance(v, str) or v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{k} must be a finite number, got {v!r}")
    d, layers = int(p["d_model"]), int(p["n_layers"])
    if d < 1 or layers < 1:
        raise ValueError("d_model and n_layers must be >= 1")
    sb = _bits(dtype) if dtype else 32
    bb = _bits(dtype) if dtype else _bits(p.get("model_dtype", "bf16"))
    comps: list[Component] = []
    notes: list[str] = []
    conv = max(int(p.get("d_conv", 0)) - 1, 0)
    if family in ("mamba", "mamba2"):
        inner = int(p.get("d_inner") or p["expand"] * d)
        n_state = int(p["d_state"])
        comps.append(Component("ssm state", layers * inner * n_state, sb))
        conv_ch = inner + (2 * int(p["ngroups"]) * n_state if family == "mamba2" else 0)
        comps.append(Component("conv buffer", layers * conv_ch * conv, bb))
    elif family in ("rwkv6", "rwkv7"):
        comps.append(Component("wkv state", layers * d * int(p["head_dim"]), sb))
        comps.append(Component("token shift", layers * 2 * d, bb))
    elif family in ("gla", "retnet", "deltanet", "linear-attention", "mlstm"):
        h = int(p["heads"])
        dk, dv = int(p["expand_k"] * d), int(p["expand_v"] * d)
        if dk % h or dv % h:
            raise ValueError(f"key/value widths {dk}/{dv} not divisible by {h} heads")
        comps.append(Component("matrix state", layers * dk * dv // h, sb))
        if family == "mlstm":
            comps.append(Component("normalizer + stabilizer", layers * (dk + h), sb))
        if conv:
            comps.append(Component("short conv buffers", layers * (2 * dk + dv) * conv, bb))
    elif family in ("griffin", "hawk"):
        every = int(p.get("attention_every", 3)) if family == "griffin" else 0
        if family == "griffin" and (every < 1 or int(p["window"]) < 1):
            raise ValueError(f"griffin needs window >= 1 and attention_every >= 1, got window "
                             f"{p['window']}, attention_every {every}")
        n_att = sum(1 for i in range(layers) if every and i % every == every - 1)
        n_rec = layers - n_att
        w = int(p.get("lru_width") or d)
        comps.append(Component("RG-LRU state", n_rec * w, sb))
        comps.append(Component("conv buffer", n_rec * w * conv, bb))
        if n_att:
            kv = n_att * int(p["window"]) * 2 * int(p["kv_heads"]) * int(p["head_dim"])
            comps.append(Component(f"local KV cache ({p['window']} tokens)", kv, bb))
            notes.append(f"{n_att} local-attention layers, {n_rec} recurrent layers")
        elif family == "griffin":
            notes.append(f"no local-attention layer: {layers} layers, one attention layer every "
                         f"{every} (the last of each group)")
    elif family in ("lstm", "gru"):
        comps.append(Component("h, c" if family == "lstm" else "h",
                               layers * d * (2 if family == "lstm" else 1), sb))
    glob = family == "hybrid-global"
    if glob:
        notes.append("global attention: the KV cache grows with n, so the state is unbounded "
                     "and no failure length follows (one attention layer retrieves: C6)")
    return ArchState(name or family, family, p, tuple(comps), source, glob, tuple(notes))


def _p(family: str, source: str, **params) -> tuple[str, dict, str]:
    return family, params, source


_HF = "Hugging Face config.json of "
_MEM = " (values as published; recalled, not re-fetched in this build)"
#: name -> (family, source config values, where they come from). Unlisted values: DEFAULTS.
PRESETS: dict[str, tuple[str, dict, str]] = {
    "mamba-130m": _p("mamba", _HF + "state-spaces/mamba-130m: d_model 768, n_layer 24, "
                     "ssm_cfg {} (d_state 16, d_conv 4, expand 2)" + _MEM, d_model=768, n_layers=24),
    "mamba-370m": _p("mamba", _HF + "state-spaces/mamba-370m: d_model 1024, n_layer 48" + _MEM,
                     d_model=1024, n_layers=48),
    "mamba-790m": _p("mamba", _HF + "state-spaces/mamba-790m: d_model 1536, n_layer 48" + _MEM,
                     d_model=1536, n_layers=48),
    "mamba-1.4b": _p("mamba", _HF + "state-spaces/mamba-1.4b: d_model 2048, n_layer 48" + _MEM,
                     d_model=2048, n_layers=48),
    "mamba-2.8b": _p("mamba", _HF + "state-spaces/mamba-2.8b-hf: hidden_size 2560, n_layer 64, "
                     "state_size 16, conv_kernel 4, expand 2, intermediate_size 5120 (checked "
                     "against a stored copy)", d_model=2560, n_layers=64),
    "mamba2-130m": _p("mamba2", _HF + "state-spaces/mamba2-130m: d_model 768, n_layer 24, "
                      "ssm_cfg {layer: Mamba2} (checked against a stored copy); Mamba2 defaults "
                      "d_state 128, d_conv 4, expand 2, headdim 64, ngroups 1", d_model=768,
                      n_layers=24),
    "mamba2-370m": _p("mamba2", _HF + "state-spaces/mamba2-370m: d_model 1024, n_layer 48" + _MEM,
                      d_model=1024, n_layers=48),
    "mamba2-780m": _p("mamba2", _HF + "state-spaces/mamba2-780m: d_model 1536, n_layer 48" + _MEM,
                      d_model=1536, n_layers=48),
    "mamba2-1.3b": _p("mamba2", _HF + "state-spaces/mamba2-1.3b: d_model 2048, n_layer 48" + _MEM,
                      d_model=2048, n_layers=48),
    "mamba2-2.7b": _p("mamba2", _HF + "state-spaces/mamba2-2.7b: d_model 2560, n_layer 64" + _MEM,
                      d_model=2560, n_layers=64),
    "falcon-mamba-7b": _p("mamba", _HF + "tiiuae/falcon-mamba-7b: hidden_size 4096, "
                          "num_hidden_layers 64, state_size 16, conv_kernel 4, intermediate_size "
                          "8192 (its 'expand': 16 field is unused; checked against a stored copy)",
                          d_model=4096, n_layers=64, d_inner=8192),
    "rwkv7-world-0.1b": _p("rwkv7", "BlinkDL RWKV-7 Goose World 0.1B: L12 D768, head size 64"
                           + _MEM, d_model=768, n_layers=12),
    "rwkv7-world-0.4b": _p("rwkv7", _HF + "fla-hub/rwkv7-0.4B-world: hidden_size 1024, "
                           "num_hidden_layers 24, head_dim 64 (checked against a stored copy)",
                           d_model=1024, n_layers=24),
    "rwkv7-world-1.5b": _p("rwkv7", "BlinkDL RWKV-7 Goose World 1.5B: L24 D2048, head size 64"
                           + _MEM, d_model=2048, n_layers=24),
    "rwkv7-world-2.9b": _p("rwkv7", "BlinkDL RWKV-7 Goose World 2.9B: L32 D2560, head size 64"
                           + _MEM, d_model=2560, n_layers=32),
    "rwkv6-world-1.6b": _p("rwkv6", "BlinkDL RWKV-6 Finch World 1.6B: L24 D2048, head size 64"
                           + _MEM, d_model=2048, n_layers=24),
    "rwkv6-world-7b": _p("rwkv6", "BlinkDL RWKV-6 Finch World 7B: L32 D4096, head size 64" + _MEM,
                         d_model=4096, n_layers=32),
    "recurrentgemma-2b": _p("griffin", _HF + "google/recurrentgemma-2b: hidden_size 2560, "
                            "num_hidden_layers 26, lru_width 2560, conv1d_width 4, "
                            "attention_window_size 2048, num_key_value_heads 1, head_dim 256, "
                            "block_types [recurrent, recurrent, attention] (checked against a "
                            "stored copy)", d_model=2560, n_layers=26),
    "recurrentgemma-9b": _p("griffin", _HF + "google/recurrentgemma-9b: hidden_size 4096, "
                            "num_hidden_layers 38, lru_width 4096, conv1d_width 4, window 2048, "
                            "num_key_value_heads 1, head_dim 256 (checked against a stored copy)",
                            d_model=4096, n_layers=38),
    "xlstm-7b": _p("mlstm", _HF + "NX-AI/xLSTM-7b: embedding_dim 4096, num_blocks 32, "
                   "num_heads 8, qk_dim_factor 0.5, v_dim_factor 1.0, no conv" + _MEM,
                   d_model=4096, n_layers=32, heads=8),
    "gla-1.3b": _p("gla", _HF + "fla-hub/gla-1.3B-100B: hidden_size 2048, num_hidden_layers "
                   "24, num_heads 4, expand_k 0.5, expand_v 1" + _MEM, d_model=2048,
                   n_layers=24, heads=4),
    "rnn-icrag-0.5m": _p("mamba", "github.com/dangxingyu/rnn-icrag configs/0.5m_rnn.json: "
                         "hidden 64, 16 layers, state 16 (d_conv 4, expand 2: mamba_ssm "
                         "defaults)",
                         d_model=64, n_layers=16, d_state=16),
    "rnn-icrag-hybrid-0.5m": _p("hybrid-global", "github.com/dangxingyu/rnn-icrag "
                                "configs/0.5m_hybrid.json: hidden 64, 12 Mamba layers + one "
                                "global attention layer",
                                d_model=64, n_layers=13),
    "jamba-v0.1": _p("hybrid-global", "ai21labs/Jamba-v0.1: Mamba layers interleaved with global "
                     "attention (1 in 8)", d_model=4096, n_layers=32),
    "zamba-7b": _p("hybrid-global", "Zyphra Zamba-7B: Mamba backbone + shared global attention "
                   "block", d_model=3584, n_layers=76),
}


def preset_state(name: str, dtype: str | None = None) -> ArchState:
    """The state of a named checkpoint from :data:`PRESETS`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    family, params, source = PRESETS[name]
    return state_of(family, params, name, source, dtype)


#: rnngap training-config ``arch`` values whose models attend globally (state grows with n)
GLOBAL_ATTENTION_ARCHS = ("hybrid", "transformer")


def state_from_config(cfg: dict, dtype: str | None = None) -> ArchState:
    """Parse a model config: the one place to adapt when training configs change shape.

    Accepted: ``{"arch": "mamba", "d_model": 64, "n_layers": 16, "d_state": 16, "expand": 2,
    "d_conv": 4}`` (any family of FAMILIES; extra keys of DEFAULTS allowed, optional "dtype"),
    the same object under a ``"model"`` key (a run directory's config.json), or a Hugging Face
    Mamba config (``hidden_size``, ``num_hidden_layers``, ``state_size``, ``conv_kernel``,
    ``intermediate_size``; or ``d_model``, ``n_layer``, ``ssm_cfg``).
    """
    if isinstance(cfg.get("model"), dict):
        cfg = cfg["model"]
    if "arch" in cfg:
        fam = str(cfg["arch"]).lower().replace("_", "-")
        if fam in GLOBAL_ATTENTION_ARCHS:
            what = ("Transformer: every layer attends globally" if fam == "transformer" else
                    "hybrid: recurrent layers plus global attention")
            note = (f"{what}; global attention: the KV cache grows with n, so the state is "
                    "unbounded and no failure length follows (attention retrieves: C2, C6)")
            return ArchState(f"config ({fam})", fam, dict(cfg), (), "rnngap model config", True,
                             (note,))
        params = {k: v for k, v in cfg.items() if k not in ("arch", "dtype")}
        return state_of(fam, params, f"config ({fam})", "rnngap model config",
                        dtype or cfg.get("dtype"))
    if "hidden_size" in cfg and "state_size" in cfg and cfg.get("model_type") == "mamba2":
        params = {"d_model": cfg["hidden_size"], "n_layers": cfg.get("num_hidden_layers"),
                  "d_state": cfg["state_size"], "d_conv": cfg.get("conv_kernel", 4),
                  "expand": cfg.get("expand", 2), "head_dim": cfg.get("head_dim", 64),
                  "ngroups": cfg.get("n_groups", 1)}
        return state_of("mamba2", params, "config (HF mamba2)", "Hugging Face Mamba-2 config",
                        dtype)
    if "hidden_size" in cfg and "state_size" in cfg:
        params = {"d_model": cfg["hidden_size"], "n_layers": cfg.get("num_hidden_layers"),
                  "d_state": cfg["state_size"], "d_conv": cfg.get("conv_kernel", 4),
                  "d_inner": cfg.get("intermediate_size")}
        return state_of("mamba", params, "config (HF mamba)", "Hugging Face Mamba config", dtype)
    if "d_model" in cfg and "n_layer" in cfg:
        ssm = cfg.get("ssm_cfg") or {}
        fam = "mamba2" if ssm.get("layer") == "Mamba2" else "mamba"
        params = {"d_model": cfg["d_model"], "n_layers": cfg["n_layer"],
                  **{k: v for k, v in ssm.items() if k in ("d_state", "d_conv", "expand")}}
        if cfg.get("attn_layer_idx"):
            fam = "hybrid-global"
        return state_of(fam, params, f"config ({fam})", "mamba_ssm config", dtype)
    raise ValueError("config not understood: expected keys arch, d_model, n_layers (optionally "
                     "under 'model'), or a Hugging Face Mamba config")
