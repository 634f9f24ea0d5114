"""``rnngap verify TASK``: exact verification of constructions, one subcommand per task."""

from __future__ import annotations

import click

from rnngap.commands._lazy import LazyGroup
from rnngap.tasks.registry import CARDS

#: one subcommand per task card (commands/verify_retrieval.py builds them), then the others
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    **{name: (f"rnngap.commands.verify_retrieval:{name}", card.title)
       for name, card in CARDS.items()},
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
