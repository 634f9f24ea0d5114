"""``rnngap eval RUN_DIR``: accuracy through generation (live retrieval) + teacher-forced metric."""

from __future__ import annotations

import click

from rnngap.commands._common import UserError, dump_json, max_memory_option
from rnngap.resources import ResourceError


@click.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--n", type=int, default=None,
              help="Evaluate at this task size, at most 8192 [default: trained n].")
@click.option("--format", "fmt", default=None, help="IsTree format [default: trained format].")
@click.option("--samples", type=int, default=256, help="Test samples (a held-out seed stream).")
@click.option("--batch-size", type=int, default=64)
@click.option("--seed", type=int, default=None, help="Test stream seed [default: the run's seed].")
@click.option("--device", default="cpu", help="cpu | cuda | cuda:K | auto")
@click.option("--progress/--no-progress", default=True)
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
@max_memory_option
def evaluate(run_dir: str, n: int | None, fmt: str | None, samples: int, batch_size: int,
             seed: int | None, device: str, progress: bool, as_json: bool) -> None:
    """Evaluate a trained run by greedy generation.

    \b
    accuracy_generation      answers produced by generation with incremental decoding; every
                             [STARTSEARCH] .. [ENDSEARCH] query is executed live by
                             tasks/retrieval_env.py and its answer appended
    accuracy_teacher_forced  the official code's metric: all supervised tokens correct given
                             the gold prefix (NOT generation; shown for comparison)
    """
    for name, v in (("samples", samples), ("batch-size", batch_size), ("n", n)):
        if v is not None and v < 1:
            raise click.BadParameter(f"must be >= 1, got {v}", param_hint=f"--{name}")
    if seed is not None and seed < 0:
        raise click.BadParameter("must be >= 0", param_hint="--seed")
    from rnngap.learned.data import MAX_N

    if n is not None and n > MAX_N:
        raise click.BadParameter(f"must be <= {MAX_N} for the learned models, got {n}",
                                 param_hint="--n")
    from rnngap.learned.checkpoint import CheckpointError
    from rnngap.learned.data import TEST, make_batch
    from rnngap.learned.evaluate import evaluate as run_eval
    from rnngap.learned.evaluate import load_run
    from rnngap.models.lm import memory_estimate
    from rnngap.resources import require

    try:
        lm, data, tc, meta = load_run(run_dir, n=n, fmt=fmt, device=device)
        length = make_batch(data, 1, tc.seed if seed is None else seed, 0, TEST).tokens.shape[1]
        need, _ = memory_estimate(lm.cfg, min(batch_size, samples), length, training=False)
        require(need, f"evaluating batches of {min(batch_size, samples)} x {length:,} tokens")
        res = run_eval(lm, data, samples, batch_size, tc.seed if seed is None else seed,
                       progress=progress and not as_json)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    except ResourceError:
        raise  # one line at the top level (cli), not a usage message
    except ValueError as exc:
        raise click.UsageError(str(exc).splitlines()[0]) from None
    res = {**res, "arch": lm.cfg.arch, "run": run_dir, "step": meta["step"],
           "trained_steps": tc.steps, "seed": tc.seed if seed is None else seed}
    if as_json:
        dump_json(res)
        return
    click.echo(f"{res['arch']} on {res['task']} n={res['n']} format={res['format']} "
               f"(checkpoint step {res['step']}, {samples} samples)")
    click.echo(f"  accuracy through generation (live retrieval): {res['accuracy_generation']:.4f}")
    click.echo(f"  exact continuation through generation:        "
               f"{res['exact_sequence_generation']:.4f}")
    click.echo(f"  retrievals executed: {res['retrievals_executed']} "
               f"(failed: {res['retrieval_failures']})")
    click.echo(f"  teacher-forced (official val.py metric, NOT generation): "
               f"{res['accuracy_teacher_forced']:.4f}; token accuracy "
               f"{res['teacher_forced_token_accuracy']:.4f}")
