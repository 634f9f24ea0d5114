"""``rnngap eval RUN_DIR``: accuracy through generation (live retrieval) + teacher-forced metric."""

from __future__ import annotations

import click

from rnngap.commands._common import UserError, dump_json, max_memory_option
from rnngap.resources import ResourceError


@click.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(file_okay=False), required=False)
@click.option("--hf", "hf", metavar="PATH_OR_ID", default=None,
              help="Instead of RUN_DIR: a transformers causal LM (a local folder, or a hub id, "
                   "the only case that downloads), evaluated on text renderings of --task over "
                   "--ns (pip install 'rnngap[hf]'; learned/hf.py documents the rendering).")
@click.option("--task", "hf_task", type=click.Choice(["phonebook", "ar", "index"]),
              default="phonebook", help="With --hf: the text task.")
@click.option("--ns", default="8,16,32", help="With --hf: comma-separated sizes (phonebook: "
              "entries; ar, index: data tokens).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="With --hf: accuracy vs n beside the Fano ceiling of the model's state bits.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --plot file.")
@click.option("--n", type=int, default=None,
              help="Evaluate at this task size, at most 8192 [default: trained n].")
@click.option("--format", "fmt", default=None, help="IsTree format [default: trained format].")
@click.option("--samples", type=int, default=None,
              help="Test samples (a held-out seed stream) [default: 256; with --hf 32 per n].")
@click.option("--batch-size", type=int, default=64)
@click.option("--seed", type=int, default=None, help="Test stream seed [default: the run's seed].")
@click.option("--device", default="cpu", help="cpu | cuda | cuda:K | auto")
@click.option("--progress/--no-progress", default=True)
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
@max_memory_option
def evaluate(run_dir: str | None, hf: str | None, hf_task: str, ns: str, plot: str | None,
             overwrite: bool, n: int | None, fmt: str | None, samples: int | None,
             batch_size: int, seed: int | None, device: str, progress: bool,
             as_json: bool) -> None:
    """Evaluate a trained run by greedy generation.

    \b
    accuracy_generation      answers produced by generation with incremental decoding; every
                             [STARTSEARCH] .. [ENDSEARCH] query is executed live by
                             tasks/retrieval_env.py and its answer appended
    accuracy_teacher_forced  the official code's metric: all supervised tokens correct given
                             the gold prefix (NOT generation; shown for comparison)
    """
    if hf is not None:
        if run_dir is not None:
            raise click.UsageError("give RUN_DIR or --hf MODEL, not both")
        _eval_hf(hf, hf_task, ns, plot, overwrite, 32 if samples is None else samples,
                 0 if seed is None else seed, progress, as_json)
        return
    if run_dir is None:
        raise click.UsageError("give RUN_DIR (an rnngap run) or --hf MODEL")
    if plot is not None:
        raise click.UsageError("--plot applies with --hf")
    samples = 256 if samples is None else samples
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
           "trained_steps": tc.steps, "stopped_early": meta.get("stopped_early"),
           "seed": tc.seed if seed is None else seed}
    if as_json:
        dump_json(res)
        return
    stop = f", stopped early: {res['stopped_early']['reason']}" if res["stopped_early"] else ""
    click.echo(f"{res['arch']} on {res['task']} n={res['n']} format={res['format']} "
               f"(checkpoint step {res['step']}{stop}, {samples} samples)")
    click.echo(f"  accuracy through generation (live retrieval): {res['accuracy_generation']:.4f}")
    click.echo(f"  exact continuation through generation:        "
               f"{res['exact_sequence_generation']:.4f}")
    click.echo(f"  retrievals executed: {res['retrievals_executed']} "
               f"(failed: {res['retrieval_failures']})")
    click.echo(f"  teacher-forced (official val.py metric, NOT generation): "
               f"{res['accuracy_teacher_forced']:.4f}; token accuracy "
               f"{res['teacher_forced_token_accuracy']:.4f}")


def _eval_hf(model: str, task: str, ns: str, plot: str | None, overwrite: bool, samples: int,
             seed: int, progress: bool, as_json: bool) -> None:
    """``eval --hf``: a transformers causal LM on rendered retrieval tasks (learned/hf.py)."""
    from rnngap.commands._common import check_out_file

    try:
        sizes = [int(x) for x in ns.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {ns!r}",
                                 param_hint="--ns") from None
    if not sizes or min(sizes) < 1 or (task == "ar" and any(x % 2 for x in sizes)):
        raise click.BadParameter("sizes must be >= 1 (even for ar)", param_hint="--ns")
    if samples < 1 or seed < 0:
        raise click.BadParameter("--samples must be >= 1 and --seed >= 0")
    if plot:
        check_out_file(plot, overwrite)
    import numpy as np
    from tqdm import tqdm

    from rnngap.learned import hf as H
    try:
        lm = H.load_causal_lm(model)
        for x in sizes:                        # every size checked before any generation
            H.render(task, x, np.random.default_rng(0))
            H.check_context(lm, task, x)
        rows = []
        with tqdm(total=samples * len(sizes), desc=f"eval {task}", unit="prompt",
                  disable=not progress or as_json, leave=False) as bar:
            for x in sizes:
                rows.append(H.evaluate_hf(lm, task, x, samples, seed, bar.update))
    except ValueError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    if plot:
        _plot_hf(plot, rows)
    if as_json:
        dump_json(rows)
        return
    kind = (f"recurrent, {lm.state_bits:,} state bits" if lm.state_bits is not None else
            "attention (KV cache grows with n)" if lm.kv_bits_per_token else
            "state size not derived from this config")
    click.echo(f"{model} ({kind}) on {task}, {samples} prompts per n, greedy, exact match:")
    for r in rows:
        extra = (f"Fano ceiling {r['fano_ceiling']:.3f}" if r["fano_ceiling"] is not None else
                 f"KV cache {r['kv_bits_at_n']:,} bits" if r["kv_bits_at_n"] else "")
        click.echo(f"  n={r['n']:<6} accuracy {r['accuracy']:.3f}  ({r['prompt_tokens']} prompt "
                   f"tokens; {extra})")
    if plot:
        click.echo(f"wrote {plot}", err=True)


def _plot_hf(path: str, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ns = [r["n"] for r in rows]
    ax.plot(ns, [r["accuracy"] for r in rows], "o-", label=f"{rows[0]['model']} (measured)")
    if rows[0]["state_bits"] is not None:
        ax.plot(ns, [r["fano_ceiling"] for r in rows], "k--",
                label=f"Fano ceiling, {rows[0]['state_bits']:,} state bits")
    else:
        for r in rows:
            ax.annotate(f"KV {r['kv_bits_at_n']:,} b", (r["n"], r["accuracy"]), fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(f"n ({rows[0]['task']})")
    ax.set_ylabel("accuracy (exact match, generation)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise UserError(f"--plot {path}: cannot write ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
