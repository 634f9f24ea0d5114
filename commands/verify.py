"""``rnngap verify TASK``: exact verification of constructions, one subcommand per task."""

from __future__ import annotations

import click

from rnngap.commands._lazy import LazyGroup

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "index": ("rnngap.commands.verify_retrieval:index", "Index (Def 4.2): the i-th token."),
    "ar": ("rnngap.commands.verify_retrieval:ar", "Associative recall (Def 4.3)."),
    "cgram": ("rnngap.commands.verify_retrieval:cgram", "c-gram retrieval (Def 4.4)."),
    "counting": ("rnngap.commands.verify_retrieval:counting", "Counting (Def 4.5)."),
    "all": ("rnngap.commands.verify_retrieval:verify_all", "All four retrieval tasks, one table."),
    "istree": ("rnngap.commands.verify_istree:istree", "IsTree: RNN + retrieval, or RNN + one attention layer."),
    "ar-oracle": ("rnngap.commands.verify_oracle:ar_oracle",
                  "AR by an RNN that asks an associative-recall oracle (C7)."),
}


@click.group(cls=LazyGroup, lazy=SUBCOMMANDS)
def verify() -> None:
    """Prove that a construction answers EVERY input of length n correctly.

    Data-independent parts (every query against every position) are enumerated at the emulated
    precision; data-dependent parts are covered by lemmas whose side conditions are checked
    (z3, sympy). Exit code 0 only when verified; 1 when verification fails (saying where).
    """
