"""``rnngap construct TASK --n N --out DIR``: build a construction and export its weights."""

from __future__ import annotations

from pathlib import Path

import click

from rnngap.commands._common import (
    card_options,
    check_out_dir,
    dump_json,
    max_memory_option,
    overwrite_option,
    staged_out_dir,
)
from rnngap.resources import ResourceError
from rnngap.tasks.registry import CARDS, OPTIONS, RETRIEVAL_NAMES, construction_task, load
from rnngap.tasks.registry import CONSTRUCTION_MAX_N as MAX_N

TASKS = (*RETRIEVAL_NAMES, "istree")


@click.command()
@click.argument("task", type=click.Choice(TASKS))
@click.option("--n", "n", required=True, type=click.IntRange(min=1, max=MAX_N),
              help="Number of data tokens (istree: vertices, 2..4096).")
@click.option("--model", type=click.Choice(["transformer", "hybrid"]), default="transformer",
              show_default=True, help="transformer: the constant-size Transformer; hybrid: "
              "linear RNN layers + ONE attention layer (Definition 5.5).")
@click.option("--alphabet", type=int, help="Data alphabet size k (default n+1).")
@card_options
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Directory to write model.safetensors, config.json, vocab.json into.")
@overwrite_option
@max_memory_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def construct(task, n, model, alphabet, out, overwrite, as_json, **options):
    """Build the hand-set model for TASK at length n and export it.

    The directory gets model.safetensors (every tensor, float64, the positional table
    included) and config.json (architecture + the construction's facts: channels, scalars, the
    precision p(n) it claims); a Transformer also gets vocab.json (token id -> string). With
    those files and the forward equations in rnngap.models.transformer (hybrid:
    rnngap.models.hybrid_lrnn) anyone can rerun the model.  istree: the Transformer writes the
    official O(n)-token cot format, the hybrid a union-find CoT (rnngap verify istree).
    """
    if not out.strip():
        raise click.BadParameter("must be a directory path, not empty", param_hint="--out")
    check_out_dir(out, overwrite)  # before any work; checked again when writing
    if task == "istree":
        if n < 2 or n > 4096:
            raise click.BadParameter(f"istree needs 2 <= n <= 4096, got {n}", param_hint="--n")
        if alphabet is not None or any(v is not None and v is not False
                                       for v in options.values()):
            named = ["--alphabet", *(f"--{o}" for o in OPTIONS)]
            raise click.UsageError(f"istree takes no {', '.join(named[:-1])} or {named[-1]}")
        if model == "hybrid":
            from rnngap.constructions.istree.hybrid import build as construction
        else:
            from rnngap.constructions.istree.transformer import build as construction
        cons = construction(n)
    else:
        try:
            t = construction_task(task, n, alphabet, **options)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        try:
            if model == "hybrid":
                from rnngap.constructions.retrieval.hybrid import build as build_hybrid

                cons = build_hybrid(task, t)
            else:
                cons = load(CARDS[task].construction)(t)
        except ResourceError:
            raise  # one line at the top level (cli), not a usage message
        except ValueError as e:
            raise click.UsageError(str(e)) from None
    from rnngap.constructions.base import export

    target = Path(out)
    try:
        with staged_out_dir(target, overwrite) as stage:
            paths = export(cons, stage)
    except OSError as e:
        raise click.UsageError(f"--out {out}: cannot write ({e.strerror or e})") from None
    paths = [target / p.name for p in map(Path, paths)]
    summary = {"task": task, "n": n, "model": model, "out": str(target),
               "files": [p.name for p in paths], **cons.sizes(),
               "precision_bits": cons.precision_bits,
               "precision_formula": cons.precision_formula}
    if as_json:
        dump_json(summary)
    else:
        click.echo(f"wrote {', '.join(summary['files'])} to {target}: {task} n={n} {model}, "
                   f"{summary['layers']} attention layer(s), {summary['heads']} head(s), width "
                   f"{summary['width']}, needs p = {cons.precision_bits} bits "
                   f"({cons.precision_formula})")
