"""Export a (plain) rnngap Transformer to TransformerLens' ``HookedTransformer`` (optional extra).

This shows that constructed weights are ordinary Transformer weights that interpretability tools
load as they are. Supported: ``norm="none"``, ``pos="table"``, ``mlp="relu"``, biases on --
the configuration every construction uses. Requires ``pip install 'rnngap[lens]'``
(TransformerLens 2.x, whose ``HookedTransformer`` API this targets; 4.x removed it).

Weight layout (TransformerLens): W_Q/W_K/W_V are (heads, d_model, d_head), W_O is
(heads, d_head, d_model), W_in (d_model, d_mlp), W_U (d_model, vocab); our nn.Linear weights are
(out, in), so each is transposed and split per head. Attention scores in TransformerLens are
divided by ``attn_scale``; ours are multiplied by ``cfg.scale``, so attn_scale = 1 / scale.
"""

from __future__ import annotations

import torch

from rnngap.models.transformer import Transformer


def to_hooked_transformer(model: Transformer, dtype: torch.dtype = torch.float64):
    """A ``HookedTransformer`` computing the same function as ``model`` (float arithmetic)."""
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError as e:  # pragma: no cover - depends on the optional extra
        raise RuntimeError("TransformerLens 2.x is not installed: pip install 'rnngap[lens]'"
                           ) from e
    cfg = model.cfg
    if (cfg.norm, cfg.pos, cfg.mlp, cfg.bias) != ("none", "table", "relu", True):
        raise ValueError("export supports norm='none', pos='table', mlp='relu', bias=True only")
    h, dh = cfg.n_heads, cfg.d_head
    tl_cfg = HookedTransformerConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, d_head=dh, n_heads=h, d_mlp=cfg.d_mlp,
        d_vocab=cfg.vocab_size, d_vocab_out=cfg.vocab_size, n_ctx=cfg.max_len, act_fn="relu",
        normalization_type=None, positional_embedding_type="standard", use_attn_scale=True,
        attn_scale=1.0 / cfg.scale, default_prepend_bos=False, dtype=dtype, device="cpu")
    tl = HookedTransformer(tl_cfg)
    sd = {"embed.W_E": model.embed.weight, "pos_embed.W_pos": model.pos_table,
          "unembed.W_U": model.unembed.weight.T, "unembed.b_U": model.unembed.bias}
    for i, blk in enumerate(model.blocks):
        a, p = blk.attn, f"blocks.{i}."
        for name, lin in (("Q", a.q_proj), ("K", a.k_proj), ("V", a.v_proj)):
            sd[p + f"attn.W_{name}"] = lin.weight.T.reshape(cfg.d_model, h, dh).permute(1, 0, 2)
            sd[p + f"attn.b_{name}"] = lin.bias.reshape(h, dh)
        sd[p + "attn.W_O"] = a.o_proj.weight.T.reshape(h, dh, cfg.d_model)
        sd[p + "attn.b_O"] = a.o_proj.bias
        sd[p + "mlp.W_in"], sd[p + "mlp.b_in"] = blk.mlp.fc_in.weight.T, blk.mlp.fc_in.bias
        sd[p + "mlp.W_out"], sd[p + "mlp.b_out"] = blk.mlp.fc_out.weight.T, blk.mlp.fc_out.bias
    sd = {k: v.detach().to(dtype).contiguous() for k, v in sd.items()}
    missing, unexpected = tl.load_state_dict(sd, strict=False)
    real_missing = [k for k in missing if not k.endswith(("IGNORE", "mask"))]
    if real_missing or unexpected:
        raise RuntimeError(f"TransformerLens layout mismatch: missing {real_missing}, "
                           f"unexpected {unexpected}")
    return tl.eval()
