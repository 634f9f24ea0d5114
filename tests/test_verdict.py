"""One typed verdict (issue 13): the retrieval and IsTree verdicts are declared once, in
``verify.verdict``, and what the verifiers return conforms to those declarations."""

from __future__ import annotations

import pytest

from rnngap.tasks.registry import CARDS, load, make_task
from rnngap.verify.istree.methods import METHODS
from rnngap.verify.istree.rnn_rag import VERDICT_KEYS
from rnngap.verify.verdict import (
    ISTREE_KEYS,
    KEYS,
    ConstructionVerdict,
    IsTreeVerdict,
    Verdict,
    problems,
)

pytestmark = pytest.mark.timeout(180)


def test_the_two_families_share_one_core() -> None:
    core = Verdict.__required_keys__
    assert core <= ConstructionVerdict.__required_keys__ and core <= IsTreeVerdict.__required_keys__
    assert set(KEYS) == ConstructionVerdict.__required_keys__
    assert VERDICT_KEYS is ISTREE_KEYS == IsTreeVerdict.__required_keys__


@pytest.mark.parametrize("name", list(CARDS))
def test_every_retrieval_verifier_returns_a_construction_verdict(name: str) -> None:
    v = load(CARDS[name].verifier)(make_task(name, n=4), samples=2, seed=0)
    assert problems(v, ConstructionVerdict) == [] and v["verified"]


def test_every_istree_method_returns_an_istree_verdict() -> None:
    for name, m in METHODS.items():
        v = m.load()(3, samples=1, seed=0)
        assert problems(v, IsTreeVerdict) == [], name
        assert v["task"] == "istree" and v["n"] == 3


def test_problems_names_what_is_missing_or_mistyped() -> None:
    v = load(CARDS["index"].verifier)(make_task("index", n=4), samples=2, seed=0)
    assert problems({k: x for k, x in v.items() if k != "heads"}, ConstructionVerdict) == \
        ["missing heads"]
    bad = {**v, "verified": "yes", "min_logit_margin": None, "params": 1.5}
    assert [p.split(":")[0] for p in problems(bad, ConstructionVerdict)] == ["verified", "params"]
    assert problems({**v, "seconds": 3}, Verdict) == []      # an int is a float
