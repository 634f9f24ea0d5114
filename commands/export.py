"""``rnngap export RUN_DIR --out DIR``: a trained run as a transformers model folder."""

from __future__ import annotations

import click

from rnngap.commands._common import UserError, dump_json, overwrite_option, staged_out_dir


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for config.json + model.safetensors (AutoModelForCausalLM loads it).")
@overwrite_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def export(run_dir, out, overwrite, as_json):
    """Export a trained Mamba run as MambaForCausalLM, a Transformer run as LlamaForCausalLM.

    \b
    Needs pip install 'rnngap[hf]'. Maps: the official embedding (frozen sinusoidal table,
    tied head), RMSNorm blocks, Mamba-1 mixers, Llama attention (half-split RoPE), SwiGLU.
    Refused: runs with the learned embedding (its absolute position table has no counterpart)
    and hybrids. Logits agree with rnngap's to float32 tolerance (tests/test_hf.py).
    """
    from pathlib import Path

    from rnngap.learned.checkpoint import CheckpointError
    from rnngap.learned.hf import export_run
    src, dst = Path(run_dir).resolve(), Path(out).resolve()
    if dst == src or src.is_relative_to(dst) or dst == Path.cwd().resolve():
        raise UserError(f"--out {out}: would replace the run being exported (or the current "
                        "directory); choose another folder")
    try:
        with staged_out_dir(out, overwrite) as stage:
            files = export_run(run_dir, stage)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    if as_json:
        dump_json({"run": run_dir, "out": out, "files": files})
    else:
        click.echo(f"wrote {', '.join(files)} to {out} (transformers.AutoModelForCausalLM)")
