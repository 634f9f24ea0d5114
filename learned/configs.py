"""Named model sizes: the official rnn-icrag configs (C8 of BRIEF.md) and a ``tiny`` smoke size.

The official repository ships JSON files ``configs/{0.5m,1m,2m}_{rnn,transformer,hybrid}.json``
with keys ``hidden_size``, ``num_hidden_layers``, ``state_size``, ``intermediate_size``,
``num_attention_heads``. Their values (facts, transcribed):

    size  rnn (hidden, layers)   transformer (hidden, mlp, layers, heads)   hybrid (hidden, mamba layers)
    0.5m  64, 16                 64, 256, 8, 4                                64, 12
    1m    128, 10                64, 256, 16, 4                               128, 7
    2m    128, 18                128, 256, 12, 4                              128, 14

Mamba: state 16, expand 2, conv 4, dt_rank ceil(d/16) (mamba_ssm defaults; the official rnn code
does not pass state_size through, so the default 16 applies). Hybrid attention layer: one LLaMA
decoder layer with 4 heads and MLP 256. Embeddings are frozen, so the trainable counts are the
backbone's; ``tests/test_lm.py`` checks them against the official numbers
(0.5m transformer 525,376; 0.5m rnn 523,328; 0.5m hybrid 458,176; 1m rnn 1,166,208;
2m hybrid 1,796,736).
"""

from __future__ import annotations

import json
from pathlib import Path

from rnngap.models.lm import ARCHS, LMConfig

ARCH_ALIASES = {"rnn": "mamba", "llama": "transformer"}
SIZES = ("tiny", "small", "0.5m", "1m", "2m")

#: (arch, size) -> LMConfig keyword arguments (vocab_size and max_len are added per task).
OFFICIAL: dict[tuple[str, str], dict] = {
    ("mamba", "0.5m"): {"d_model": 64, "n_layers": 16, "d_state": 16},
    ("mamba", "1m"): {"d_model": 128, "n_layers": 10, "d_state": 16},
    ("mamba", "2m"): {"d_model": 128, "n_layers": 18, "d_state": 16},
    ("transformer", "0.5m"): {"d_model": 64, "n_layers": 8, "n_heads": 4, "d_mlp": 256},
    ("transformer", "1m"): {"d_model": 64, "n_layers": 16, "n_heads": 4, "d_mlp": 256},
    ("transformer", "2m"): {"d_model": 128, "n_layers": 12, "n_heads": 4, "d_mlp": 256},
    ("hybrid", "0.5m"): {"d_model": 64, "n_layers": 12, "d_state": 16, "n_heads": 4, "d_mlp": 256},
    ("hybrid", "1m"): {"d_model": 128, "n_layers": 7, "d_state": 16, "n_heads": 4, "d_mlp": 256},
    ("hybrid", "2m"): {"d_model": 128, "n_layers": 14, "d_state": 16, "n_heads": 4, "d_mlp": 256},
    # tiny: a few thousand parameters, for smoke tests that finish in seconds.
    ("mamba", "tiny"): {"d_model": 16, "n_layers": 2, "d_state": 4},
    ("transformer", "tiny"): {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_mlp": 32},
    ("hybrid", "tiny"): {"d_model": 16, "n_layers": 1, "d_state": 4, "n_heads": 2, "d_mlp": 32},
    # small: the retrieval-scaling sizes (about 20k backbone parameters each; the default for
    # the retrieval tasks). The hybrid is Mamba -> ONE attention layer -> Mamba (chosen while
    # exploring; with the final recipe the official on-top placement learns too,
    # docs/learning.md).
    ("transformer", "small"): {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_mlp": 64},
    ("mamba", "small"): {"d_model": 32, "n_layers": 2, "d_state": 8},
    ("hybrid", "small"): {"d_model": 32, "n_layers": 2, "d_state": 8, "n_heads": 2, "d_mlp": 16,
                          "attn_position": 1},
}

#: the official trainable-parameter counts this module must reproduce (see tests/test_lm.py).
OFFICIAL_TRAINABLE = {("transformer", "0.5m"): 525_376, ("mamba", "0.5m"): 523_328,
                      ("hybrid", "0.5m"): 458_176, ("mamba", "1m"): 1_166_208,
                      ("hybrid", "2m"): 1_796_736}


#: default peak learning rates per (embedding, arch). ``learned``: the best of a 3-value sweep
#: per architecture (experiments/retrieval_scaling/RESULTS.md); ``official``: the earlier ones.
DEFAULT_LR: dict[tuple[str, str], float] = {
    ("official", "transformer"): 1e-3, ("official", "mamba"): 3e-4, ("official", "hybrid"): 3e-4,
    ("learned", "transformer"): 5e-3, ("learned", "mamba"): 5e-3, ("learned", "hybrid"): 5e-3,
}


def canonical_arch(arch: str) -> str:
    """``rnn`` -> ``mamba``, ``llama`` -> ``transformer``; raises ValueError on unknown names."""
    a = ARCH_ALIASES.get(arch, arch)
    if a not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)} (aliases: rnn, llama)")
    return a


def default_size(task: str) -> str:
    """``0.5m`` (official) for IsTree, ``small`` for the retrieval tasks."""
    return "0.5m" if task == "istree" else "small"


def named_config(arch: str, size: str, vocab_size: int, max_len: int = 8192,
                 **overrides) -> LMConfig:
    """The LMConfig for an official (or tiny / small) size."""
    a = canonical_arch(arch)
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known: {', '.join(SIZES)}")
    return LMConfig(arch=a, vocab_size=vocab_size, max_len=max_len,
                    **{**OFFICIAL[(a, size)], **overrides})


def official_json_config(path: str | Path, arch: str, vocab_size: int,
                         max_len: int = 8192) -> LMConfig:
    """Read one of the official repository's JSON config files for architecture ``arch``.

    The file type is recognised from its keys: ``state_size`` and ``intermediate_size`` ->
    hybrid; ``state_size`` only -> rnn (mamba); ``intermediate_size`` only -> transformer.
    A file of another type than ``arch`` raises ValueError.
    """
    def no_constant(name: str):
        raise ValueError(f"{name} is not a JSON number (write a finite number)")
    try:
        d = json.loads(Path(path).read_text(), parse_constant=no_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"cannot read official config {path}: "
                         f"{str(exc).splitlines()[0]}") from None
    if not isinstance(d, dict) or "hidden_size" not in d or "num_hidden_layers" not in d:
        raise ValueError(f"{path} is not an official rnn-icrag config (needs hidden_size, "
                         "num_hidden_layers)")
    kind = ("hybrid" if "state_size" in d and "intermediate_size" in d else
            "mamba" if "state_size" in d else "transformer")
    a = canonical_arch(arch)
    if kind != a:
        raise ValueError(f"{path} is a {kind} config, not a {a} config")
    for key in ("hidden_size", "num_hidden_layers", "state_size", "intermediate_size",
                "num_attention_heads", "max_position_embeddings"):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{path}: {key} must be a positive integer, got {v!r}")
    kw: dict = {"d_model": int(d["hidden_size"]), "n_layers": int(d["num_hidden_layers"])}
    if "state_size" in d:
        kw["d_state"] = int(d["state_size"])
    if "intermediate_size" in d:
        kw["d_mlp"] = int(d["intermediate_size"])
    if "num_attention_heads" in d:
        kw["n_heads"] = int(d["num_attention_heads"])
    if "max_position_embeddings" in d and a != "mamba":
        max_len = int(d["max_position_embeddings"])
    return LMConfig(arch=a, vocab_size=vocab_size, max_len=max_len, **kw)
