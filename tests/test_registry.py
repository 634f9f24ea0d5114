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


def _toy_card():
    """A card named "toy" whose every capability points at Index's (so the outputs are known):
    registering it is all a task needs for the dispatchers to reach its pieces."""
    from rnngap.tasks.index import IndexTask
    from rnngap.tasks.registry import TaskCard

    return TaskCard("toy", IndexTask, "Toy (Index under another name).", "Toy: Index again.",
                    "rnngap.constructions.retrieval.index:build",
                    "rnngap.verify.retrieval.index:verify_index",
                    hybrid_construction="rnngap.constructions.retrieval.hybrid:build_index",
                    hybrid_verifier="rnngap.verify.retrieval.hybrid:verify_index_hybrid",
                    counter="rnngap.verify.bounds.counts:index_count",
                    fool="rnngap.verify.bounds.fool:INDEX",
                    oracle="rnngap.verify.bounds.oracle:INDEX")


def test_a_new_card_is_all_a_task_needs_for_every_dispatcher(monkeypatch) -> None:
    import json

    from click.testing import CliRunner

    from rnngap.commands import verify_retrieval
    from rnngap.constructions.retrieval import hybrid
    from rnngap.tasks.index import IndexTask
    from rnngap.tasks.registry import construction_task
    from rnngap.verify.bounds import counts, fool, oracle
    from rnngap.verify.retrieval.hybrid import verify_hybrid

    monkeypatch.setitem(CARDS, "toy", _toy_card())
    monkeypatch.setitem(verify_retrieval.HELP, "toy", CARDS["toy"].summary)
    task = construction_task("toy", 4)
    assert task == IndexTask(4)
    cmd = verify_retrieval._command("toy")
    assert "--c" not in [o for p in cmd.params for o in p.opts]
    got = CliRunner().invoke(cmd, ["--n", "4", "--samples", "2", "--json"])
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["verified"]
    assert hybrid.build("toy", task).state_dict.keys() == hybrid.build_index(task).state_dict.keys()
    assert verify_hybrid("toy", task, samples=2)["verified"]
    assert counts.count("toy", 5) == counts.index_count(5)
    assert fool.family("toy") is fool.INDEX and fool.answer("toy", (3, 1, 2), (2,)) == 1
    assert oracle.rule_for("toy") is oracle.INDEX
    assert oracle.count("toy", 4).prefix_classes == oracle.count("index", 4).prefix_classes


def test_a_card_without_a_capability_is_refused_by_its_dispatcher(monkeypatch) -> None:
    import dataclasses

    from rnngap.constructions.retrieval import hybrid
    from rnngap.tasks.registry import construction_task
    from rnngap.verify.bounds import counts, fool, oracle

    bare = dataclasses.replace(_toy_card(), hybrid_construction=None, hybrid_verifier=None,
                               counter=None, fool=None, oracle=None)
    monkeypatch.setitem(CARDS, "toy", bare)
    task = construction_task("toy", 4)
    for call in (lambda: hybrid.build("toy", task), lambda: counts.count("toy", 4),
                 lambda: fool.family("toy"), lambda: oracle.rule_for("toy")):
        with pytest.raises(ValueError, match="toy"):
            call()


def test_dispatchers_keep_no_per_task_branches() -> None:
    """The dispatchers read the cards: no retrieval task's name is spelled in them."""
    import inspect

    from rnngap.commands import construct, verify_retrieval
    from rnngap.constructions.retrieval import hybrid
    from rnngap.tasks import registry
    from rnngap.verify.bounds import counts, fool, oracle
    from rnngap.verify.retrieval import hybrid as vhybrid

    dispatchers = [hybrid.build, vhybrid.verify_hybrid, counts.count, fool.family,
                   fool.sample_data, fool.queries, fool.answer, fool.separating_query,
                   fool.birthday_search, oracle.rule_for, oracle.family, oracle.answer,
                   oracle.separating_query, oracle.data_strings, oracle.brute_force,
                   registry.construction_task, verify_retrieval.make_task,
                   verify_retrieval.precheck, verify_retrieval.run_one,
                   verify_retrieval._command, verify_retrieval.verify_all.callback,
                   construct.construct.callback]
    for fn in dispatchers:
        src = inspect.getsource(fn)
        named = [n for n in CARDS if f'"{n}"' in src or f"'{n}'" in src]
        assert not named, f"{fn.__qualname__} branches on {named}"


def test_task_options_come_from_the_cards() -> None:
    from rnngap.commands import construct, verify_retrieval
    from rnngap.tasks.registry import OPTIONS, construction_task, option_owners

    assert list(OPTIONS) == ["c", "exact"] and option_owners("c") == ["cgram"]
    for name, card in CARDS.items():
        opts = {o for p in getattr(verify_retrieval, name).params for o in p.opts}
        assert {f"--{o.name}" for o in card.options} == opts & {"--c", "--exact"}
    assert {"--c", "--exact"} <= {o for p in construct.construct.params for o in p.opts}
    assert construction_task("cgram", 8).c == 2 and construction_task("cgram", 8, c=3).c == 3
    assert construction_task("counting", 8, exact=True).exact
    with pytest.raises(ValueError, match="--c applies to cgram only, not index"):
        construction_task("index", 8, c=3)
    with pytest.raises(ValueError, match="--exact applies to counting only, not ar"):
        construction_task("ar", 8, exact=True)
