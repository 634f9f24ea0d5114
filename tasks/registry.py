"""Name -> class table of the four retrieval tasks (Definitions 4.2-4.5 of Wen, Dang, Lyu,
ICLR 2025), and ``make_task`` that builds one from keyword parameters with clear errors."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from rnngap.tasks.ar import ARTask
from rnngap.tasks.base import RetrievalTask
from rnngap.tasks.cgram import CGramTask
from rnngap.tasks.counting import CountingTask
from rnngap.tasks.index import IndexTask


@dataclass(frozen=True)
class TaskCard:
    """Everything rnngap knows about one retrieval task, in one place (issue 13): commands,
    click choices, the report and the data path read these cards instead of their own lists.
    A new retrieval task is its task file, its construction and verifier files, and one card."""

    name: str
    cls: type[RetrievalTask]
    title: str
    """A few words for command listings (``rnngap verify --help``)."""
    summary: str
    """One line for ``rnngap verify NAME --help``."""
    construction: str
    """"module:function" building the Transformer construction from a task object."""
    verifier: str
    """"module:function" returning the verdict dict (``verify.verdict``) of that construction."""
    hybrid: bool = True
    """A linear-RNN hybrid construction exists (``constructions.retrieval.hybrid.build``)."""
    fool: bool = False
    """``rnngap fool`` searches explicit fooling pairs for it (``verify.bounds.fool``)."""


CARDS: dict[str, TaskCard] = {c.name: c for c in (
    TaskCard("index", IndexTask, "Index (Def 4.2): the i-th token.",
             "Index (Def 4.2): x_1..x_n, i -> x_i. Proves the constructed 1-layer Transformer "
             "right on EVERY input at p bits.",
             "rnngap.constructions.retrieval.index:build",
             "rnngap.verify.retrieval.index:verify_index", fool=True),
    TaskCard("ar", ARTask, "Associative recall (Def 4.3).",
             "Associative recall (Def 4.3), key-value form with distinct keys.",
             "rnngap.constructions.retrieval.ar:build", "rnngap.verify.retrieval.ar:verify_ar",
             fool=True),
    TaskCard("cgram", CGramTask, "c-gram retrieval (Def 4.4).",
             "c-gram retrieval (Def 4.4): the token after the last occurrence of the query "
             "(c-1)-gram.",
             "rnngap.constructions.retrieval.cgram:build",
             "rnngap.verify.retrieval.cgram:verify_cgram"),
    TaskCard("counting", CountingTask, "Counting (Def 4.5).",
             "Counting (Def 4.5): 1 if the query token occurs more than t times.",
             "rnngap.constructions.retrieval.counting:build",
             "rnngap.verify.retrieval.counting:verify_counting",
             fool=True),
)}
#: the retrieval tasks, in the order every listing uses
RETRIEVAL_NAMES: tuple[str, ...] = tuple(CARDS)
TASKS: dict[str, type[RetrievalTask]] = {name: c.cls for name, c in CARDS.items()}


def load(target: str):
    """The object a "module:function" string of a card names (imported on use)."""
    import importlib

    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def task_params(name: str) -> list[str]:
    """The constructor parameter names of task ``name`` (e.g. ``['n', 'c', 'alphabet']``)."""
    return [f.name for f in fields(_lookup(name))]


def _lookup(name: str) -> type[RetrievalTask]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def make_task(name: str, **params: Any) -> RetrievalTask:
    """Build task ``name`` from ``params``.

    Raises:
        ValueError: unknown task name, unknown parameter name, or an invalid parameter value
            (one line each).
    """
    cls = _lookup(name)
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"task {name!r} has no parameter(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(allowed)}")
    if "n" not in params:
        raise ValueError(f"task {name!r} needs the parameter n")
    return cls(**params)


#: largest n the retrieval constructions are built and verified at (``verify``, ``construct``)
CONSTRUCTION_MAX_N = 1 << 20
#: largest vocabulary: every number token of a construction has an embedding row
CONSTRUCTION_MAX_VOCAB = 1 << 21


def construction_task(name: str, n: int, alphabet: int | None = None, c: int | None = None,
                      exact: bool = False) -> RetrievalTask:
    """The task a construction is built for, from the verify/construct options (``--c`` for
    cgram only, default 2; ``--exact`` for counting only); ValueError, one line, naming the
    option or the task."""
    params: dict[str, Any] = {"n": n, "alphabet": alphabet}
    if name == "cgram":
        params["c"] = 2 if c is None else c
    elif c is not None:
        raise ValueError(f"--c applies to cgram only, not {name}")
    if name == "counting":
        params["exact"] = exact
    elif exact:
        raise ValueError(f"--exact applies to counting only, not {name}")
    try:
        task = make_task(name, **params)
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith(name) else f"{name}: {msg}") from None
    if task.vocab_size() > CONSTRUCTION_MAX_VOCAB:
        raise ValueError(f"{name}: vocabulary of {task.vocab_size()} tokens is too large (at "
                         f"most {CONSTRUCTION_MAX_VOCAB}: every number token has an embedding "
                         "row)")
    return task
