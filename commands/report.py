"""``rnngap report --task T [--runs RUN...] --out DIR``: the three views of one task."""

from __future__ import annotations

from pathlib import Path

import click

from rnngap.commands._common import (
    UserError,
    check_out_dir,
    dump_json,
    overwrite_option,
    read_json_file,
    staged_out_dir,
)
from rnngap.tasks.registry import RETRIEVAL_NAMES


@click.command()
@click.option("--task", required=True,
              type=click.Choice([*RETRIEVAL_NAMES, "istree"]))
@click.option("--runs", multiple=True, type=click.Path(file_okay=False),
              help="Trained run directories (rnngap train --out); repeatable.")
@click.option("--results", type=click.Path(dir_okay=False), default=None,
              help="An experiment results file (experiments/retrieval_scaling/results.json): "
                   "draw its learned rows (median, min-max over seeds), its state sweep and "
                   "effective bits per state bit beside the construction and the ceilings, "
                   "without re-evaluating anything. Not with --runs.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for report.png, report.md, report.json.")
@click.option("--n-min", default=4, show_default=True, type=click.IntRange(2))
@click.option("--n-max", default=1024, show_default=True, type=click.IntRange(2, 1 << 16))
@click.option("--samples", default=256, show_default=True, type=click.IntRange(1),
              help="Test samples per (run, n).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the report data as JSON.")
@overwrite_option
def report(task, runs, results, out, n_min, n_max, samples, seed, as_json, overwrite):
    """Construction, bound and trained models vs n, in one figure and one markdown table.

    \b
    construction: index/ar/cgram/counting: the Transformer construction, plotted at 1.0 only
                  where it was just verified for every input; istree: the RNN with in-context
                  retrieval on 32 sampled graphs per n (measured, labelled "sampled") and the
                  hand-set Transformer with O(n) CoT (every input at n <= 5, 8 samples per
                  family up to n = 256, left out beyond).
    bound:        the Fano accuracy ceiling of ANY machine with S state bits, S from each
                  recurrent run (float32 state), or 64/512/4096 bits without runs.
    learned:      each run's accuracy by generation at every n of the grid
                  (n_min, 2 n_min, ... <= n_max; AR keeps the even ones).

    Works with no runs: the construction and reference-size ceilings alone.
    """
    from rnngap.verify.report import build_report, build_results_report

    check_out_dir(out, overwrite)
    if results is not None:
        if runs:
            raise click.UsageError("give --runs or --results, not both")
        if not Path(results).is_file():
            raise click.BadParameter(f"{results} is not a file", param_hint="--results")
        if task == "istree":
            raise click.BadParameter("experiment results files hold retrieval tasks only",
                                     param_hint="--task")
        rows = read_json_file(results, "--results", list)
        if not all(isinstance(r, dict) for r in rows):
            raise UserError(f"--results {results}: every entry must be an object (one run)")
        try:
            with staged_out_dir(out, overwrite) as stage:
                rep = build_results_report(task, results, stage, seed)
        except (ValueError, OSError, KeyError, TypeError, AttributeError) as e:
            msg = f"{results}: not a usable results file ({type(e).__name__}: {e})" \
                if isinstance(e, (KeyError, TypeError, AttributeError)) else str(e)
            raise UserError(msg.splitlines()[0]) from None
        if as_json:
            dump_json(rep)
        else:
            click.echo((Path(out) / "report.md").read_text())
            click.echo(f"wrote {out}/report.png, report.md, report.json", err=True)
        return
    if n_min > n_max:
        raise click.BadParameter("must be <= --n-max", param_hint="--n-min")
    for r in runs:
        if not (Path(r) / "config.json").is_file():
            raise click.BadParameter(f"{r} is not a run directory (no config.json)",
                                     param_hint="--runs")
    if task == "istree" and n_min <= 256:
        click.echo("note: the IsTree Transformer construction is run at every n <= 256 of the "
                   "grid (8 graphs per family; about a minute up to n = 256)", err=True)
    try:
        with staged_out_dir(out, overwrite) as stage:
            rep = build_report(task, list(runs), stage, n_min, n_max, samples, seed)
    except (ValueError, OSError) as e:
        raise UserError(str(e).splitlines()[0]) from None
    if as_json:
        dump_json(rep)
    else:
        click.echo((Path(out) / "report.md").read_text())
        click.echo(f"wrote {out}/report.png, report.md, report.json", err=True)
