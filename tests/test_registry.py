"""The task cards are the one list of retrieval tasks (issue 13): every command, choice and
listing is derived from ``tasks.registry.CARDS``, and every card's targets import."""

from __future__ import annotations

import click
import pytest

from rnngap.tasks.registry import CARDS, RETRIEVAL_NAMES, TASKS, load

pytestmark = pytest.mark.timeout(60)


def test_cards_are_complete_and_load() -> None:
    assert RETRIEVAL_NAMES == tuple(CARDS) and set(TASKS) == set(CARDS)
    for name, card in CARDS.items():
        assert card.cls.name == name and card.summary
        assert callable(load(card.construction)) and callable(load(card.verifier))


def test_every_listing_is_derived_from_the_cards() -> None:
    from rnngap.commands import construct, report, train, verify_retrieval
    from rnngap.constructions.retrieval import hybrid
    from rnngap.learned import data
    from rnngap.verify import report as vreport
    from rnngap.verify.bounds import fool

    assert train.TASKS == ("istree", *RETRIEVAL_NAMES)
    assert construct.TASKS == (*RETRIEVAL_NAMES, "istree")
    assert data.RETRIEVAL_TASKS == RETRIEVAL_NAMES == vreport.RETRIEVAL
    assert set(verify_retrieval.HELP) == set(CARDS)
    assert hybrid.BUILT == tuple(n for n, c in CARDS.items() if c.hybrid)
    assert fool.TASKS == tuple(n for n, c in CARDS.items() if c.fool)
    choice = next(p for p in report.report.params if p.name == "task").type
    assert isinstance(choice, click.Choice) and tuple(choice.choices) == (*RETRIEVAL_NAMES, "istree")
    from rnngap.commands.verify import verify
    assert set(CARDS) <= set(verify.list_commands(click.Context(verify)))
