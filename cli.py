"""The command line: one click group whose subcommands are imported only when invoked.

Each subcommand lives in ``rnngap.commands.<module>`` and is registered in ``COMMANDS`` below by
import path, so ``rnngap --help`` never imports torch, z3 or sympy. Nothing imports this module.
"""

from __future__ import annotations

import click

from rnngap.commands._lazy import LazyGroup

#: name -> ("module:attribute", one-line help shown by ``rnngap --help`` without importing it)
COMMANDS: dict[str, tuple[str, str]] = {
    "verify": ("rnngap.commands.verify:verify", "Exactly verify a construction (every input)."),
    "construct": ("rnngap.commands.construct:construct", "Build a construction, export weights."),
    "bound": ("rnngap.commands.bound:bound", "State-size lower bounds for any RNN."),
    "fool": ("rnngap.commands.fool:fool", "Find two inputs a small-state machine confuses."),
    "run": ("rnngap.commands.run:run", "Run a method on one input and print the transcript."),
    "train": ("rnngap.commands.train:train", "Train a Transformer, Mamba or hybrid."),
    "eval": ("rnngap.commands.evaluate:evaluate",
             "Evaluate a trained run (or a transformers model) by generation."),
    "export": ("rnngap.commands.export:export", "Export a trained run as a transformers model."),
    "sweep": ("rnngap.commands.sweep:sweep", "Run a grid of trainings (local or submitit)."),
    "params": ("rnngap.commands.params:params", "Parameter and state counts of a model."),
    "claims": ("rnngap.commands.claims:claims", "Check the paper's claims, one row each."),
    "report": ("rnngap.commands.report:report", "Construction vs bound vs learned, per task."),
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnngap")
def main() -> None:
    """rnngap: where and why a fixed-state RNN must fail at in-context retrieval, and what fixes it.

    \b
    Typical use:
      rnngap verify index --n 4096        prove a constant-size Transformer solves Index
      rnngap bound --state-bits 512        failure lengths for any 512-bit-state RNN
      rnngap train --task istree ...       train Transformer / Mamba / hybrid on the same tasks
    """


if __name__ == "__main__":  # pragma: no cover
    main()
