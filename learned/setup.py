"""Run settings from options: the (LMConfig, DataSpec, TrainConfig) of a training run and the
per-task defaults behind them (schedule, embedding, learning rate, length mixture, early
stopping). ``rnngap train`` and ``rnngap sweep`` both build their runs here, so a sweep run is
exactly the run the same options give on the command line. Errors are ValueError, one line,
naming the option.
"""

from __future__ import annotations


def parse_task_params(items: tuple[str, ...]) -> dict:
    out: dict = {}
    for it in items:
        key, sep, val = it.partition("=")
        if not sep or not key:
            raise ValueError(f"--task-param: expected KEY=VALUE, got {it!r}")
        if key in out:
            raise ValueError(f"--task-param: {key} given more than once")
        if key in ("n", "task", "format", "fmt"):
            raise ValueError(f"--task-param: {key} is an option of its own (--{key}), not a "
                             "task parameter")
        low = val.lower()
        out[key] = True if low == "true" else False if low == "false" else \
            None if low == "none" else int(val) if val.lstrip("-").isdigit() else val
    return out


def build_configs(o: dict, vocab_size: int | None = None):
    """(LMConfig, DataSpec, TrainConfig) from command-line options; ValueError on bad values."""
    from rnngap.learned.configs import canonical_arch, named_config, official_json_config
    from rnngap.learned.data import DataSpec
    from rnngap.learned.train import TrainConfig

    mix = o.get("mix_min_n")
    if mix is None and o["task"] != "istree":
        mix = DEFAULT_MIX_MIN_N if o["n"] > DEFAULT_MIX_MIN_N else None
    data = DataSpec(task=o["task"], n=o["n"], fmt=o["fmt"], family=o["family"],
                    official_quirks=o["official_quirks"], params=parse_task_params(o["task_param"]),
                    min_n=mix or None)
    vs = data.vocab_size() if vocab_size is None else vocab_size
    arch = canonical_arch(o["arch"])
    emb = o.get("embedding") or default_embedding(data.task)
    extra = {"scan": o["scan"], "embedding": emb}
    if emb == "learned":
        extra["max_len"] = learned_max_len(data)
    if o["attn_position"] is not None:
        if arch != "hybrid":
            raise ValueError("--attn-position applies to --arch hybrid only")
        extra["attn_position"] = o["attn_position"]
    if o["config"]:
        model = official_json_config(o["config"], arch, vs)
        model = type(model)(**{**model.__dict__, **extra})
    else:
        from rnngap.learned.configs import default_size
        size = o["size"] or default_size(data.task)
        model = named_config(arch, size, vs, **extra)
    lr = o["lr"] if o["lr"] is not None else default_lr(arch, emb)
    tc = TrainConfig(steps=o["steps"], batch_size=o["batch_size"], lr=lr, warmup=o["warmup"],
                     weight_decay=o["weight_decay"], grad_clip=o["grad_clip"], seed=o["seed"],
                     log_every=o["log_every"], eval_every=o["eval_every"],
                     eval_batches=o["eval_batches"], ckpt_every=o["ckpt_every"],
                     **early_stop_settings(o, lenient=o.get("early_stop_lenient", False)))
    return model, data, tc


#: --early-stop: probe period and plateau patience when not given (steps)
EARLY_STOP_DEFAULTS = {"probe_every": 100, "patience": 2000}


def early_stop_settings(o: dict, lenient: bool = False) -> dict:
    """TrainConfig early-stopping fields from --early-stop / --probe-every / --patience.
    ValueError when the two numbers are given without --early-stop (``lenient``: ignored
    instead, for sweep grids whose axis turns early stopping off for some runs), or when
    --probe-every is below 1."""
    if not o.get("early_stop"):
        given = [k for k in EARLY_STOP_DEFAULTS if o.get(k) is not None]
        if given and not lenient:
            raise ValueError(f"--{given[0].replace('_', '-')} needs --early-stop")
        return {}
    out = {k: v if (v := o.get(k)) is not None else d for k, d in EARLY_STOP_DEFAULTS.items()}
    if isinstance(out["probe_every"], bool) or not isinstance(out["probe_every"], int) \
            or out["probe_every"] < 1:
        raise ValueError(f"--probe-every must be >= 1 with --early-stop, got {out['probe_every']}")
    if isinstance(out["patience"], bool) or not isinstance(out["patience"], int) \
            or out["patience"] < 0:
        raise ValueError(f"--patience must be >= 0 (0: stop only when solved), got "
                         f"{out['patience']}")
    return out


#: retrieval tasks train on lengths 8, 16, ..., n by default (``--mix-min-n 0``: only n)
DEFAULT_MIX_MIN_N = 8


#: (steps, batch size, warmup) when not given: IsTree as before; the retrieval tasks use the
#: retrieval-scaling recipe (experiments/retrieval_scaling/RESULTS.md)
DEFAULT_SCHEDULE = {"istree": (1000, 64, 100), "retrieval": (3000, 32, 50)}


def fill_schedule_defaults(o: dict) -> dict:
    """``o`` with --steps / --batch-size / --warmup set from DEFAULT_SCHEDULE where None."""
    steps, bs, warm = DEFAULT_SCHEDULE["istree" if o["task"] == "istree" else "retrieval"]
    return {**o, "steps": steps if o["steps"] is None else o["steps"],
            "batch_size": bs if o["batch_size"] is None else o["batch_size"],
            "warmup": warm if o["warmup"] is None else o["warmup"]}


def default_embedding(task: str) -> str:
    """``learned`` for the retrieval tasks (the frozen table does not learn at CPU scale, see
    docs/learning.md), ``official`` for IsTree (the paper's setup)."""
    return "official" if task == "istree" else "learned"


def default_lr(arch: str, embedding: str) -> float:
    """Per-architecture peak learning rates. ``learned``: the best of the sweep in
    experiments/retrieval_scaling (AR n = 32, 3 values each, docs/learning.md); ``official``:
    the earlier defaults (1e-3 Transformer, 3e-4 Mamba / hybrid)."""
    from rnngap.learned.configs import DEFAULT_LR
    return DEFAULT_LR[(embedding, arch)]


def learned_max_len(data) -> int:
    """Positions of a learned position table: the task's sequence length (retrieval tasks:
    row + answer), or the official 8192 for IsTree, whose transcripts vary in length."""
    from rnngap.learned.data import MAX_N
    if data.task == "istree":
        return MAX_N
    t = data.task_obj()
    return t.n + t.query_len() + 1
