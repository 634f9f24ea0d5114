"""What an exported model's config.json says about its forward pass (docs/export-format.md).

Every export (a construction from ``rnngap construct``, a trained run's directory) carries a
``format`` tag and a ``conventions`` block, so that a reader can run the weights without the
rnngap source: the weight layout, how heads are split and merged, which positional row a token
uses, the RoPE variant and base, the normalisation formula, Mamba's derived sizes, the embedding
formula and the p-bit rounding rule. The equations themselves are stated once, in
docs/export-format.md; the block names the variant of each and gives every number.
"""

from __future__ import annotations

from typing import Any

CONSTRUCTION_FORMAT = "rnngap-construction-1"
RUN_FORMAT = "rnngap-run-1"
SPEC = "docs/export-format.md"

#: shared by every model of rnngap
COMMON: dict[str, Any] = {
    "linear": "y = x @ W.T + b; W is stored (out_features, in_features) as in torch.nn.Linear",
    "positions": "1-based: the j-th token of the sequence (j = 1, 2, ...) is at position j",
    "argmax_ties": "the lowest token id wins",
    "dtype": "weights are stored in the dtype of the safetensors file; constructions float64",
}

#: models.transformer (constructions and the trained Transformer / hybrid attention layer)
TRANSFORMER: dict[str, Any] = {
    "heads": ("q_proj/k_proj/v_proj outputs are split into n_heads consecutive blocks of d_head "
              "columns (head h = columns h*d_head .. (h+1)*d_head - 1); o_proj reads the heads' "
              "outputs concatenated in head order"),
    "attention": "s_ij = attn_scale * <q_i, k_j> for j <= i (causal), a = softmax_j(s), "
                 "o_i = sum_j a_ij v_j; attn_scale null means 1/sqrt(d_head)",
    "pos_table": "pos = 'table': h0_j = E[t_j] + pos_table[j - 1] (row j - 1 for position j)",
    "rope": "pos = 'rope': half-split rotary embedding of q and k at position j: "
            "x1 = x[:d/2], x2 = x[d/2:], angle_i = j * rope_base^(-i/(d/2)), "
            "(x1 cos - x2 sin, x1 sin + x2 cos); an odd last channel is left unrotated",
    "norm": "norm = 'rmsnorm': x / sqrt(mean(x^2) + norm_eps) * weight (pre-norm, and norm_f "
            "before the unembedding); 'none': identity",
    "mlp": "relu: fc_out(relu(fc_in(x))); swiglu: down_proj(silu(gate_proj(x)) * up_proj(x))",
    "block": "h' = h + attn(norm1(h)); h'' = h' + mlp(norm2(h'))",
    "logits": "unembed(norm_f(h_L))",
}

#: models.arith.PBitArith: how a construction is run at its claimed precision
ROUNDING: dict[str, Any] = {
    "rule": "r(x): float64 significand rounded to precision_bits bits, round to nearest, ties "
            "to even; float64 exponent range",
    "where": "once after every element-wise op, exp, sigmoid, division and every reduction "
             "(matmul, dot product, sum: accumulated in float64 in any order, then rounded); a "
             "linear map with a bias is ONE reduction: r(x W^T + b), the bias accumulated with "
             "the products; max, comparisons and ReLU exact",
    "linear_rnn": "the conv sum with its bias is one reduction r(sum_k w_k u_{t-k} + b); "
                  "B @ v_t is one reduction; each scan step is r(r(a_t * h_{t-1}) + Bv_t); the "
                  "read-out C @ h_t + D @ v_t is ONE reduction r([C D] @ [h_t; v_t])",
    "softmax": "d = r(s - max s), e = r(exp(d)), Z = r(sum e), a = r(e / Z)",
}

#: models.hybrid_lrnn + models.linear_rnn (the hand-set hybrids of Definition 5.5)
HYBRID_LRNN: dict[str, Any] = {
    "layout": "h0_j = E[t_j] (no positional table); n_rnn_layers LinearRNN layers; ONE "
              "attention block (Transformer attention + ReLU MLP, pos 'none', norm 'none'); "
              "logits = unembed(h)",
    "linear_rnn": "u_t = in_proj(x_t); v_t = sum_{k<K} conv_weight[:, k] * u_{t-k} + "
                  "conv_bias (u_s = 0 for s < 1); a_t = a (selective false) or "
                  "sigmoid(a_proj(v_t)) (selective); h_t = a_t * h_{t-1} + B @ v_t, h_0 = 0; "
                  "y_t = C @ h_t + D @ v_t; out_t = x_t + y_t (B: (d_state, d_inner), C: "
                  "(d_model, d_state), D: (d_model, d_inner), plain matrices, not Linear)",
}

#: models.lm (trained runs)
LM: dict[str, Any] = {
    "embedding_official": "frozen E[i, 2k] = sin(i / 10000^(2k/d)), E[i, 2k+1] = cos(i / "
                          "10000^(2k/d)) (not stored: a function of vocab_size and d_model); "
                          "logits = h E^T (tied, frozen)",
    "embedding_learned": "h0_j = tok_embed[t_j] + pos_embed[j - 1]; logits = lm_head(h)",
    "mamba": "Mamba-1 blocks (Gu and Dao 2023): h + mixer(rmsnorm(h)); mixer: x, z = "
             "in_proj(u).chunk(2); x = silu(causal depthwise conv1d(x) [d_conv taps, left "
             "padding]); dt, B, C = x_proj(x).split(dt_rank, d_state, d_state); Delta = "
             "softplus(dt_proj(dt)); A = -exp(A_log); h_t = exp(Delta_t A) h_{t-1} + Delta_t "
             "B_t x_t; y_t = <h_t, C_t> + D x_t; out = out_proj(y * silu(z)); final norm_f",
    "hybrid": "attn_position p (null: n_layers) Mamba blocks, then ONE Transformer block "
              "(pre-norm rmsnorm, rope, swiglu, no bias, no final norm of its own), then the "
              "other Mamba blocks, then norm_f; when p = n_layers (attention on top) norm_f "
              "comes BEFORE the attention block and nothing follows it",
    "mamba_conv": "torch Conv1d weight (d_inner, 1, d_conv): output t = sum_k w[:, 0, k] * "
                  "x_{t-d_conv+1+k} + bias (the LAST tap multiplies x_t; left zero padding)",
}


def construction_header(kind: str) -> dict:
    """``format``, ``spec`` and ``conventions`` for an exported construction (kind:
    ``transformer`` or ``hybrid_lrnn``)."""
    conv = {**COMMON, "transformer": TRANSFORMER, "rounding": ROUNDING}
    if kind == "hybrid_lrnn":
        conv["hybrid_lrnn"] = HYBRID_LRNN
    return {"format": CONSTRUCTION_FORMAT, "spec": SPEC, "conventions": conv}


def run_header(model_cfg) -> dict:
    """``format``, ``spec`` and ``conventions`` for a trained run's config.json: the blocks of
    the module plus the effective sub-configurations with every default filled in (RoPE base,
    norm eps, Mamba expand / d_conv / dt_rank), so a changed code default cannot change what an
    old run's config means."""
    conv: dict[str, Any] = {**COMMON, "lm": LM}
    eff: dict[str, Any] = {}
    if model_cfg.arch != "mamba":
        conv["transformer"] = TRANSFORMER
        t = model_cfg.transformer_config(1 if model_cfg.arch == "hybrid" else None)
        eff["transformer"] = {k: v for k, v in vars(t).items()}
    if model_cfg.arch != "transformer":
        m = model_cfg.mamba_config()
        eff["mamba"] = {k: v for k, v in vars(m).items() if k not in ("scan", "chunk")}
    conv["effective"] = eff
    return {"format": RUN_FORMAT, "spec": SPEC, "conventions": conv}
