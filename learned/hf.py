"""Bring your own model: Hugging Face ``transformers`` causal LMs on the retrieval tasks, and
rnngap runs exported as ``transformers`` models (needs the ``hf`` extra: pip install
'rnngap[hf]').

Evaluation (:func:`evaluate_hf`). Each task is rendered as plain text, the model continues
the prompt by greedy decoding, and the answer is parsed from the continuation:

* ``phonebook`` (n entries): lines ``"{name}: {number}"`` (names: distinct two- or
  three-syllable words such as ``Kalo``, numbers: 7 digits ``DDD-DDDD``, uniform), a blank
  line, then ``"{name}:"`` for one listed name. Expected answer: its number.
* ``ar`` (Def 4.3, key-value form, n data tokens): ``"k1:v1 k2:v2 ... km:vm\\n{q}:"``, numbers
  in decimal, keys distinct (rnngap's AR sampler). Expected: the value of key q.
* ``index`` (Def 4.2): ``"x1 x2 ... xn\\nposition {i}:"``. Expected: x_i.

Parsing: the decoded continuation with leading spaces removed, cut at the first whitespace.
Accuracy = the fraction of prompts whose parsed answer equals the expected string exactly.
``max_new_tokens`` is the token length of the expected answer plus 4.

Bounds beside the accuracy: a recurrent model's state bits come from its config (the presets
code, :func:`rnngap.verify.bounds.archs.state_from_config`; Hugging Face Mamba configs are read);
the Fano ceiling for that many bits at each n is :func:`rnngap.verify.bounds.ceilings.fano_ceiling`
on the task's hard distribution (phonebook: n numbers uniform over 10^7; AR n/2 values over
n+1 symbols; Index n symbols over n+1). An attention model gets no ceiling; its KV cache at
the prompt length is reported instead: 2 x layers x kv_heads x head_dim x tokens x the
parameter dtype's bits.

Export (:func:`export_run`): a trained rnngap Mamba run becomes a ``MambaForCausalLM`` folder
and a Transformer run a ``LlamaForCausalLM`` folder; logits agree with rnngap's to float32
tolerance (tests/test_hf.py). What maps and what does not:

* maps: the official embedding (the frozen sinusoidal table becomes the token embedding, tied
  to the output head), RMSNorm pre-norm blocks, Mamba-1 mixers (mamba_ssm parameter names
  are Hugging Face's), Llama attention with half-split RoPE (rnngap counts positions from 1,
  Hugging Face from 0; RoPE scores depend only on the difference), SwiGLU MLPs;
* does not map: the ``learned`` embedding's absolute position table (neither Llama nor Mamba
  has one), the hybrid (no ``transformers`` class with one attention layer among Mamba
  layers in this layout), and the Mamba ``chunked``/``cuda`` scan choice (an implementation
  detail; the weights are the same).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HF_HINT = "this needs the transformers package: pip install 'rnngap[hf]'"
TASKS = ("phonebook", "ar", "index")
MAX_PHONEBOOK = 4352      # 16^2 two-syllable + 16^3 three-syllable names
_SYLL = ("ka", "lo", "mi", "ra", "tu", "ze", "no", "vi", "pa", "se", "do", "fi", "gu", "he",
         "ju", "be")


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise ValueError(HF_HINT) from None
    # one-line CLI output: no download/progress bars or kernel-fallback notices from the library
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


# ----------------------------------------------------------------------------- rendering
def names(count: int) -> list[str]:
    """``count`` distinct names: two syllables (256), then three (4,096)."""
    out = [(a + b).capitalize() for a in _SYLL for b in _SYLL]
    out += [(a + b + c).capitalize() for a in _SYLL for b in _SYLL for c in _SYLL]
    if count > len(out):
        raise ValueError(f"phonebook supports at most {len(out)} entries, got {count}")
    return out[:count]


def render(task: str, n: int, rng: np.random.Generator) -> tuple[str, str]:
    """(prompt, expected answer) of one random instance (module docstring)."""
    if task == "phonebook":
        if not 1 <= n <= MAX_PHONEBOOK:
            raise ValueError(f"phonebook takes 1 to {MAX_PHONEBOOK:,} entries (distinct names), "
                             f"got {n}")
        pool = names(max(n, 16) * 4 if n * 4 <= 4352 else 4352)
        who = [pool[i] for i in rng.choice(len(pool), n, replace=False)]
        nums = [f"{rng.integers(0, 1000):03d}-{rng.integers(0, 10000):04d}" for _ in range(n)]
        q = int(rng.integers(0, n))
        book = "\n".join(f"{a}: {b}" for a, b in zip(who, nums))
        return f"{book}\n\n{who[q]}:", nums[q]
    if task == "ar":
        row = _ar_row(n, rng)
        pairs = " ".join(f"{row[i]}:{row[i + 1]}" for i in range(0, n, 2))
        q = row[2 * int(rng.integers(0, n // 2))]
        ans = row[row[0:n:2].index(q) * 2 + 1]
        return f"{pairs}\n{q}:", str(ans)
    if task == "index":
        x = rng.integers(0, n + 1, n).tolist()
        i = int(rng.integers(1, n + 1))
        return f"{' '.join(map(str, x))}\nposition {i}:", str(x[i - 1])
    raise ValueError(f"unknown text task {task!r}; known: {', '.join(TASKS)}")


def _ar_row(n: int, rng: np.random.Generator) -> list[int]:
    """AR data (Def 4.3 key-value form, rnngap's convention): distinct keys, values any."""
    if n < 2 or n % 2:
        raise ValueError(f"ar needs an even n >= 2, got {n}")
    k = n + 1
    keys = rng.permutation(k)[: n // 2].tolist()
    vals = rng.integers(0, k, n // 2).tolist()
    return [t for kv in zip(keys, vals) for t in kv]


def parse(continuation: str) -> str:
    """The answer in a continuation: leading spaces dropped, cut at the first whitespace."""
    s = continuation.lstrip(" ")
    return s.split(None, 1)[0] if s.strip() else ""


# ----------------------------------------------------------------------------- loading
@dataclass
class Loaded:
    model: object
    tokenizer: object
    name: str
    state_bits: int | None
    kv_bits_per_token: int | None
    max_positions: int | None


def load_causal_lm(path_or_id: str, allow_download: bool | None = None) -> Loaded:
    """A ``transformers`` causal LM and its tokenizer. A local folder is loaded with
    ``local_files_only``; anything else is a hub id and is downloaded (only then)."""
    transformers = require_transformers()
    local = Path(path_or_id).exists()
    if not local and path_or_id.startswith((".", "/", "~")):
        raise ValueError(f"{path_or_id}: no such model folder")
    if allow_download is None:
        allow_download = not local
    if local and not Path(path_or_id, "config.json").is_file():
        raise ValueError(f"{path_or_id} is not a transformers model folder (no config.json)")
    kw = {"local_files_only": not allow_download}
    try:
        cfg = transformers.AutoConfig.from_pretrained(path_or_id, **kw)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load a model config from {path_or_id}: "
                         f"{str(exc).splitlines()[0]}") from None
    if getattr(cfg, "is_encoder_decoder", False):
        raise ValueError(f"{path_or_id} is an encoder-decoder model, not a causal LM")
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path_or_id, **kw)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path_or_id} is not a causal LM transformers can load: "
                         f"{str(exc).splitlines()[0]}") from None
    try:
        tok = transformers.AutoTokenizer.from_pretrained(path_or_id, **kw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path_or_id} has no usable tokenizer: "
                         f"{str(exc).splitlines()[0]}") from None
    digits = "0123456789"
    back = tok.decode(tok(digits, add_special_tokens=False)["input_ids"])
    if back.replace(" ", "") != digits:
        raise ValueError(f"the tokenizer of {path_or_id} cannot render numbers ({digits!r} "
                         f"decodes to {back!r})")
    model.eval()
    state_bits, kv = _state_and_kv(cfg, model)
    maxpos = getattr(cfg, "max_position_embeddings", None) if state_bits is None else None
    return Loaded(model, tok, str(path_or_id), state_bits, kv, maxpos)


def _state_and_kv(cfg, model) -> tuple[int | None, int | None]:
    """(recurrent state bits, None) for a model the presets code understands as recurrent,
    every component at the model's parameter dtype; (None, KV-cache bits per token) for an
    attention model; (None, None) when neither can be derived from the config."""
    from rnngap.verify.bounds.archs import state_from_config
    pdt = next(model.parameters()).dtype
    bits = pdt.itemsize * 8
    dtype = {"torch.float32": "fp32", "torch.bfloat16": "bf16",
             "torch.float16": "fp16"}.get(str(pdt))
    try:
        st = state_from_config(cfg.to_dict(), dtype)
    except (ValueError, TypeError, KeyError):
        st = None
    if st is not None and not st.global_attention:
        return int(st.state_bits), None
    layers = getattr(cfg, "num_hidden_layers", None)
    heads = getattr(cfg, "num_attention_heads", None)
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    hd = getattr(cfg, "head_dim", None) or (cfg.hidden_size // heads if heads else None)
    if not (layers and kv_heads and hd):
        return None, None
    return None, 2 * layers * kv_heads * hd * bits


# ----------------------------------------------------------------------------- evaluation
def ceiling(task: str, n: int, state_bits: float | None) -> float | None:
    from rnngap.verify.bounds.ceilings import ceiling as task_ceiling
    from rnngap.verify.bounds.ceilings import fano_ceiling
    if state_bits is None:
        return None
    if task == "phonebook":
        return fano_ceiling(n, 10 ** 7, state_bits)
    return task_ceiling(task, n, state_bits)


def check_context(lm: Loaded, task: str, n: int, probes: int = 16) -> None:
    """Before any generation: ValueError when prompts of size n (``probes`` rendered ones)
    plus the answer budget would not fit the model's context."""
    if lm.max_positions is None:
        return
    rng = np.random.default_rng([n, 12345])
    need = 0
    for _ in range(probes):
        prompt, want = render(task, n, rng)
        need = max(need, len(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
                   + len(lm.tokenizer(want, add_special_tokens=False)["input_ids"]) + 4)
    if need > lm.max_positions:
        raise ValueError(f"{task} at n={n} needs about {need} tokens (prompt + answer); the "
                         f"model's context is {lm.max_positions}")


def evaluate_hf(lm: Loaded, task: str, n: int, samples: int, seed: int = 0,
                progress=None) -> dict:
    """Accuracy by greedy generation on ``samples`` rendered prompts (module docstring)."""
    import torch
    rng = np.random.default_rng([seed, n, TASKS.index(task)])
    tok, model = lm.tokenizer, lm.model
    hits, longest = 0, 0
    first = None
    for _ in range(samples):
        prompt, want = render(task, n, rng)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        longest = max(longest, ids.shape[1])
        budget = len(tok(want, add_special_tokens=False)["input_ids"]) + 4
        if lm.max_positions is not None and ids.shape[1] + budget > lm.max_positions:
            raise ValueError(f"{task} at n={n} needs {ids.shape[1]} prompt tokens + {budget} "
                             f"to generate; the model's context is {lm.max_positions}")
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=budget,
                                 pad_token_id=tok.pad_token_id if tok.pad_token_id is not None
                                 else tok.eos_token_id)
        got = parse(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
        hits += got == want
        if first is None:
            first = {"prompt_tail": prompt[-40:], "expected": want, "got": got}
        if progress:
            progress(1)
    kv = lm.kv_bits_per_token * longest if lm.kv_bits_per_token else None
    return {"model": lm.name, "task": task, "n": n, "accuracy": hits / samples,
            "samples": samples, "state_bits": lm.state_bits, "kv_bits_at_n": kv,
            "prompt_tokens": longest, "fano_ceiling": ceiling(task, n, lm.state_bits),
            "example": first}


# ----------------------------------------------------------------------------- export
def export_run(run: str | os.PathLike, out: str | os.PathLike) -> list[str]:
    """Write a trained rnngap run as a ``transformers`` model folder (module docstring:
    Mamba -> MambaForCausalLM, Transformer -> LlamaForCausalLM). ValueError (one line) for a
    run whose options do not map."""
    import torch
    transformers = require_transformers()
    from rnngap.learned.evaluate import load_run
    lm, _data, _tc, _meta = load_run(run)
    cfg = lm.cfg
    if cfg.embedding != "official":
        raise ValueError("this run has a learned embedding with an absolute position table, "
                         "which neither LlamaForCausalLM nor MambaForCausalLM has; export runs "
                         "trained with --embedding official")
    table = lm.embedding.detach().clone().float()
    sd = {k: v.detach().clone() for k, v in lm.backbone.state_dict().items()}
    if cfg.arch == "mamba":
        mc = cfg.mamba_config()
        hf_cfg = transformers.MambaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, state_size=mc.d_state,
            num_hidden_layers=cfg.n_layers, layer_norm_epsilon=cfg.norm_eps, expand=mc.expand,
            conv_kernel=mc.d_conv, use_bias=False, use_conv_bias=True,
            time_step_rank=mc.dt_rank, residual_in_fp32=True, tie_word_embeddings=True,
            pad_token_id=0, bos_token_id=0, eos_token_id=0)
        model = transformers.MambaForCausalLM(hf_cfg)
        weights = {f"backbone.{k}": v for k, v in sd.items()}
        weights["backbone.embeddings.weight"] = table
    elif cfg.arch == "transformer":
        tc = cfg.transformer_config()
        hf_cfg = transformers.LlamaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_mlp,
            num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
            num_key_value_heads=cfg.n_heads, head_dim=tc.d_head,
            max_position_embeddings=cfg.max_len, rms_norm_eps=cfg.norm_eps,
            rope_theta=tc.rope_base, attention_bias=False, mlp_bias=False,
            tie_word_embeddings=True, pad_token_id=0, bos_token_id=0, eos_token_id=0)
        model = transformers.LlamaForCausalLM(hf_cfg)
        weights = {"model.embed_tokens.weight": table}
        for k, v in sd.items():
            weights[_llama_name(k)] = v
    else:
        raise ValueError(f"{cfg.arch} runs have no transformers class with this layout (one "
                         "attention layer among Mamba layers); export mamba or transformer runs")
    weights["lm_head.weight"] = table
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise ValueError(f"weight names do not map: missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}")
    model.tie_weights()
    with torch.no_grad():
        model.save_pretrained(str(out))
    return sorted(p.name for p in Path(out).iterdir())


def _llama_name(k: str) -> str:
    """rnngap Transformer backbone name -> LlamaForCausalLM name."""
    rep = {"norm1": "input_layernorm", "norm2": "post_attention_layernorm", "attn": "self_attn"}
    parts = k.split(".")
    if parts[0] == "final_norm":
        return "model.norm." + ".".join(parts[1:])
    if parts[0] == "blocks":
        parts = ["model", "layers", parts[1], *[rep.get(p, p) for p in parts[2:]]]
        return ".".join(parts)
    return k
