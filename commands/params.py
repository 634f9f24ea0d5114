"""``rnngap params``: trainable / total parameters and state size of a learned model."""

from __future__ import annotations

import click

from rnngap.commands._common import dump_json


@click.command(context_settings={"show_default": True})
@click.option("--arch", type=click.Choice(["transformer", "mamba", "hybrid", "rnn", "llama"]),
              required=True)
@click.option("--size", type=click.Choice(["tiny", "small", "0.5m", "1m", "2m"]),
              default="0.5m")
@click.option("--n", type=int, default=16,
              help="IsTree n, 4 <= n <= 8192 (sets the vocabulary: n + 17).")
@click.option("--context", type=int, default=None,
              help="Context length (>= 1) for the KV-cache size of attention models [default: "
                   "the IsTree CoT length for n].")
@click.option("--embedding", type=click.Choice(["official", "learned"]), default="official",
              help="official: frozen number table + tied head (the official counts); learned: "
                   "trainable token and position tables + untied head (all trainable).")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
def params(arch: str, size: str, n: int, context: int | None, embedding: str,
           as_json: bool) -> None:
    """Parameter counts (trainable: what is learned; total: plus the frozen number embedding,
    counted once since the head is tied) and state_scalars: numbers carried between tokens
    (Mamba: fixed; attention: KV cache, which grows with the context)."""
    from rnngap.learned.data import MAX_N

    if not 4 <= n <= MAX_N:
        raise click.BadParameter(f"must be between 4 and {MAX_N}, got {n}", param_hint="--n")
    if context is not None and context < 1:
        raise click.BadParameter(f"must be >= 1, got {context}", param_hint="--context")
    from rnngap.learned.configs import OFFICIAL_TRAINABLE, canonical_arch, named_config
    from rnngap.models.lm import LM
    from rnngap.tasks.istree import vocab_size

    a = canonical_arch(arch)
    ctx_len = context if context is not None else 3 * (n - 1) + 2 + 2 * n + 2
    extra = {} if embedding == "official" else {"embedding": "learned", "max_len": ctx_len}
    lm = LM(named_config(a, size, vocab_size(n), **extra))
    res = {"arch": a, "size": size, "embedding": embedding,
           "trainable": lm.trainable_parameters(),
           "total": lm.total_parameters(), "state_scalars": lm.state_scalars(ctx_len),
           "state_context_len": None if a == "mamba" else ctx_len,
           "official_trainable": OFFICIAL_TRAINABLE.get((a, size)) if embedding == "official"
           else None,
           "config": lm.cfg.to_dict()}
    if as_json:
        dump_json(res)
        return
    off = res["official_trainable"]
    click.echo(f"{a} {size}: trainable {res['trainable']:,}"
               + (f" (official {off:,}: {'match' if off == res['trainable'] else 'MISMATCH'})"
                  if off else "")
               + f", total {res['total']:,}, state scalars {res['state_scalars']:,}"
               + ("" if a == "mamba" else f" at context {ctx_len}"))
