"""``rnngap construct TASK --n N --out DIR``: build a construction and export its weights."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import click

from rnngap.commands._common import dump_json
from rnngap.commands.verify_retrieval import MAX_N, make_task

TASKS = ("index", "ar", "cgram", "counting")


@click.command()
@click.argument("task", type=click.Choice(TASKS))
@click.option("--n", "n", required=True, type=click.IntRange(min=1, max=MAX_N),
              help="Number of data tokens.")
@click.option("--alphabet", type=int, help="Data alphabet size k (default n+1).")
@click.option("--c", "c", type=int, help="Gram length (cgram only).")
@click.option("--exact", is_flag=True, help="Exact-count variant (counting only).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Directory to write model.safetensors, config.json, vocab.json into.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def construct(task, n, alphabet, c, exact, out, as_json):
    """Build the hand-set Transformer for TASK at length n and export it.

    The directory gets model.safetensors (every tensor, float64, the positional table
    included), config.json (architecture + the construction's facts: channels, scalars, the
    precision p(n) it claims) and vocab.json (token id -> string). With those files and the
    forward equations in rnngap.models.transformer anyone can rerun the model.
    """
    if not out.strip():
        raise click.BadParameter("must be a directory path, not empty", param_hint="--out")
    t = make_task(task, n, alphabet, c, exact)
    try:
        mod = importlib.import_module(f"rnngap.constructions.{task}")
    except ModuleNotFoundError:
        raise click.ClickException(f"the {task} construction is not built yet") from None
    from rnngap.constructions.base import export

    cons = mod.build(t)
    target = Path(out)
    if target.exists() and not os.access(target, os.W_OK):
        raise click.UsageError(f"--out {out}: directory is not writable")
    try:
        paths = export(cons, target)
    except OSError as e:
        raise click.UsageError(f"--out {out}: cannot write ({e.strerror or e})") from None
    summary = {"task": task, "n": n, "out": str(target), "files": [p.name for p in paths],
               **cons.sizes(), "precision_bits": cons.precision_bits,
               "precision_formula": cons.precision_formula}
    if as_json:
        dump_json(summary)
    else:
        click.echo(f"wrote {', '.join(summary['files'])} to {target}: {task} n={n}, "
                   f"{summary['layers']} layer(s), {summary['heads']} head(s), width "
                   f"{summary['width']}, needs p = {cons.precision_bits} bits "
                   f"({cons.precision_formula})")
