"""The one backbone: layers of three kinds stacked by a pattern (mamba_ssm's ``MixerModel`` with
``attn_layer_idx``, generalised), used by training and by the hand-set constructions alike.

A pattern is a list of layer specs, each a dict ``{"kind": k, ...}``:

* ``"mamba"``: a pre-norm Mamba-1 block (``models.mamba.MambaBlock``); keys override fields of
  the default ``MambaConfig`` (``d_state``, ``d_conv``, ``expand``, ``dt_rank``, ``norm_eps``);
* ``"lrnn"``: a residual linear RNN layer (``models.linear_rnn.LinearRNN``); keys ``d_inner``,
  ``d_state``, ``conv_kernel`` (default 1), ``selective`` (default false);
* ``"attention"``: a Transformer layer (``models.transformer.Block``: attention then MLP, with
  its own norms when ``norm = "rmsnorm"``); keys override fields of the default
  ``TransformerConfig`` (``n_heads``, ``d_head``, ``d_mlp``, ``norm``, ``pos``, ``mlp``,
  ``bias``, ``attn_scale``, ``rope_base``, ``norm_eps``);
* ``"norm"``: an RMSNorm (the final ``norm_f`` of a Mamba stack); no keys.

Layer i of the pattern is ``layers.i`` of the state dict. The trained hybrid of Def 5.5 (claim
C6; the official rnn-icrag code) is ``n`` Mamba blocks with ONE LLaMA-style attention layer at
``attn_position`` p::

    p == n (default, "on top"):  mamba * n, norm, attention        (no norm after attention)
    p <  n:                      mamba * p, attention, mamba * (n - p), norm

and the hand-set constructions (``models.hybrid_lrnn``) are ``lrnn * R, attention`` with a
ReLU MLP, no positions and no norms. Every layer runs under an ``Arith`` (``models.arith``)
except Mamba and RMSNorm, which are defined in plain torch only.

Modules are created and registered with the attention layers LAST (indices still follow the
pattern): that was the order of the earlier two-list layout (recurrent layers, ``norm_f``, then
``attention``), so a seed draws the same initial weights and the parameter order -- which
indexes the optimizer state in checkpoints -- is unchanged. State dicts in that earlier layout
(``layers.i`` = the i-th recurrent layer, ``norm_f``, ``attention``) are renamed on load.

State between tokens (:meth:`init_state`): one entry per layer, the recurrent layers' fixed-size
states (:meth:`state_scalars`) and each attention layer's KV cache, which grows with the
context (:meth:`kv_scalars`) -- the one place a hybrid stores the whole input.
"""

from __future__ import annotations

from dataclasses import replace

from torch import Tensor, nn

from rnngap.models.arith import Arith
from rnngap.models.linear_rnn import LinearRNN
from rnngap.models.mamba import MambaBlock, MambaConfig
from rnngap.models.transformer import Block, TransformerConfig

KINDS = ("attention", "mamba", "lrnn", "norm")
RECURRENT = ("mamba", "lrnn")
_LRNN_KEYS = ("d_inner", "d_state", "conv_kernel", "selective")
_MAMBA_KEYS = ("d_state", "d_conv", "expand", "dt_rank", "norm_eps")
_ATTN_KEYS = ("n_heads", "d_head", "d_mlp", "norm", "pos", "mlp", "bias", "attn_scale",
              "rope_base", "norm_eps")


def official_pattern(n_layers: int, attn_position: int | None = None) -> list[dict]:
    """The trained hybrid's pattern: n Mamba blocks, ONE attention layer at p (module
    docstring); ValueError unless 0 <= p <= n."""
    p = n_layers if attn_position is None else attn_position
    if not 0 <= p <= n_layers:
        raise ValueError(f"attn_position must be in [0, {n_layers}], got {p}")
    m, a, f = {"kind": "mamba"}, {"kind": "attention"}, {"kind": "norm"}
    if p == n_layers:
        return [m] * n_layers + [f, a]
    return [m] * p + [a] + [m] * (n_layers - p) + [f]


def check_pattern(pattern: object) -> list[dict]:
    """The pattern as a list of fresh dicts; ValueError naming the first bad entry."""
    if not isinstance(pattern, list | tuple) or not pattern:
        raise ValueError("layers must be a non-empty list of layer specs")
    allowed = {"attention": _ATTN_KEYS, "mamba": _MAMBA_KEYS, "lrnn": _LRNN_KEYS, "norm": ()}
    out = []
    for i, spec in enumerate(pattern):
        if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
            raise ValueError(f"layer {i}: a spec is a dict with kind in {KINDS}, got {spec!r}")
        unknown = set(spec) - {"kind", *allowed[spec["kind"]]}
        if unknown:
            raise ValueError(f"layer {i} ({spec['kind']}): unknown keys {sorted(unknown)}")
        if spec["kind"] == "lrnn" and not {"d_inner", "d_state"} <= set(spec):
            raise ValueError(f"layer {i} (lrnn): d_inner and d_state are required")
        out.append(dict(spec))
    if sum(s["kind"] == "norm" for s in out) > 1:
        raise ValueError("at most one norm layer (the final norm_f)")
    return out


def _layer(spec: dict, d_model: int, mamba: MambaConfig, attn: dict) -> nn.Module:
    kind, kw = spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
    if kind == "mamba":
        return MambaBlock(replace(mamba, **kw))
    if kind == "attention":
        return Block(TransformerConfig(**{**attn, **kw}))
    if kind == "lrnn":
        return LinearRNN(d_model, kw["d_inner"], kw["d_state"], kw.get("conv_kernel", 1),
                         kw.get("selective", False))
    return nn.RMSNorm(d_model, eps=mamba.norm_eps)


def layer_state_scalars(kind: str, layer: nn.Module) -> int:
    """Scalars a layer carries between tokens besides a KV cache (0 for attention, norm)."""
    if kind == "mamba":
        return layer.mixer.state_scalars()
    return layer.state_scalars() if kind == "lrnn" else 0


class HybridBackbone(nn.Module):
    """``layers`` of the kinds of ``pattern`` (module docstring): R^{B x T x d} -> same shape."""

    def __init__(self, pattern: list[dict], d_model: int, mamba: MambaConfig | None = None,
                 attn: dict | None = None) -> None:
        """``mamba``: the Mamba blocks' default config; ``attn``: default ``TransformerConfig``
        fields of the attention layers (a spec's keys override both)."""
        super().__init__()
        self.pattern = check_pattern(pattern)
        self.kinds = [s["kind"] for s in self.pattern]
        self.d_model = d_model
        mamba = mamba or MambaConfig(d_model, 1)
        attn = {"vocab_size": 1, "d_model": d_model, "n_layers": 1, "n_heads": 1, "d_mlp": 1,
                "norm": "none", "pos": "none", **(attn or {})}
        if attn["d_model"] != d_model or mamba.d_model != d_model:
            raise ValueError("attention and Mamba widths differ")
        self.layers = nn.ModuleList()
        order = [i for i, k in enumerate(self.kinds) if k != "attention"] + \
                [i for i, k in enumerate(self.kinds) if k == "attention"]
        for i in order:                       # attention last (module docstring); index = i
            self.layers.add_module(str(i), _layer(self.pattern[i], d_model, mamba, attn))
        self._register_load_state_dict_pre_hook(self._rename_legacy)

    def layer(self, i: int) -> nn.Module:
        """Layer i of the pattern (``self.layers`` iterates in registration order)."""
        return self.layers[i]

    def attention_layers(self) -> list[Block]:
        return [self.layers[i] for i, k in enumerate(self.kinds) if k == "attention"]

    def first_attention(self) -> int:
        return self.kinds.index("attention")

    def _rename_legacy(self, state_dict: dict, prefix: str, *_args) -> None:
        """Keys of the two-list layout (``layers.i`` = i-th recurrent layer, ``norm_f``,
        ``attention``) -> ``layers.<pattern index>``."""
        legacy = (prefix + "norm_f.", prefix + "attention.")
        if not any(k.startswith(legacy) for k in state_dict):
            return
        rec = [i for i, k in enumerate(self.kinds) if k in RECURRENT]
        where = {"norm_f": [i for i, k in enumerate(self.kinds) if k == "norm"],
                 "attention": [i for i, k in enumerate(self.kinds) if k == "attention"]}
        renamed = {}
        for key in [k for k in state_dict if k.startswith(prefix)]:
            head, _, rest = key[len(prefix):].partition(".")
            if head == "layers":
                idx, _, rest = rest.partition(".")
                new = rec[int(idx)] if int(idx) < len(rec) else None
            else:
                new = where[head][0] if len(where.get(head, ())) == 1 else None
            if new is not None:
                renamed[f"{prefix}layers.{new}.{rest}"] = state_dict.pop(key)
        state_dict.update(renamed)

    # ------------------------------------------------------------------ full sequences
    def forward(self, h: Tensor, state: list | None = None, arith: Arith | None = None,
                last_only: bool = False, traces: list[dict] | None = None,
                stop: int | None = None) -> Tensor:
        """h (B, T, d) -> (B, T, d), or (B, 1, d) at the final position when ``last_only``.

        With ``state`` (from :meth:`init_state`) the recurrent states and KV caches are filled
        in; ``traces`` receives one dict per linear RNN layer (its u, v, h); ``stop`` runs
        layers 0 .. stop - 1 only (the residual stream entering layer ``stop``)."""
        n = len(self.kinds) if stop is None else stop
        for i in range(n):
            kind, layer, st = self.kinds[i], self.layers[i], None if state is None else state[i]
            if arith is not None and kind in ("mamba", "norm"):
                raise NotImplementedError(f"p-bit arithmetic is not defined for {kind} layers")
            if kind == "mamba":
                h = layer(h, st)
            elif kind == "lrnn":
                tr = None if traces is None else {}
                h = layer(h, arith, tr, st)
                if traces is not None:
                    traces.append(tr)
            elif kind == "attention":
                h = layer(h, arith, last_only=last_only and i == n - 1, cache=st)
            else:
                h = layer(h)
        return h[:, -1:] if last_only and h.shape[1] > 1 else h

    # ------------------------------------------------------------------ one token at a time
    def init_state(self, batch: int, device=None, capacity: int | None = None) -> list:
        """Empty per-layer states: Mamba (float32) and linear RNN (the weights' dtype) zero
        states, an empty KV cache per attention layer (``capacity``: the final length when
        known), None for a norm."""
        out: list = []
        for i, kind in enumerate(self.kinds):
            layer = self.layers[i]
            if kind == "mamba":
                out.append(layer.mixer.init_state(batch, device))
            elif kind == "lrnn":
                st = layer.init_state(batch, layer.a.dtype)
                out.append({k: v.to(device) for k, v in st.items()} if device else st)
            elif kind == "attention":
                out.append({"k": None, "v": None, "capacity": capacity})
            else:
                out.append(None)
        return out

    def step(self, h: Tensor, state: list, arith: Arith | None = None) -> Tensor:
        """One token h (B, d) -> (B, d), updating ``state`` in place."""
        for i, kind in enumerate(self.kinds):
            layer = self.layers[i]
            if kind == "mamba":
                h = layer.step(h, state[i])
            elif kind == "lrnn":
                h = layer.step(h, state[i], arith)
            elif kind == "attention":
                h = layer(h.unsqueeze(1), arith, cache=state[i]).squeeze(1)
            else:
                h = layer(h)
        return h

    def select(self, state: list, keep: Tensor) -> None:
        """Keep only the rows ``keep`` of every state and cache (finished rows dropped)."""
        for kind, st in zip(self.kinds, state, strict=True):
            if kind == "attention" and st["k"] is not None:
                st["k"], st["v"] = st["k"][keep], st["v"][keep]
            elif kind in RECURRENT:
                for k in list(st):
                    st[k] = st[k][keep]

    # ------------------------------------------------------------------ sizes
    def state_scalars(self) -> int:
        """Scalars the recurrent layers carry between tokens (independent of the context)."""
        return sum(layer_state_scalars(k, self.layers[i]) for i, k in enumerate(self.kinds))

    def kv_scalars(self, context_len: int) -> int:
        """Scalars of the attention layers' KV caches after ``context_len`` positions."""
        return sum(b.attn.kv_scalars(context_len) for b in self.attention_layers())

