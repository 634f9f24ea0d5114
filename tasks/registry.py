"""Name -> class table of the four retrieval tasks (Definitions 4.2-4.5 of Wen, Dang, Lyu,
ICLR 2025), and ``make_task`` that builds one from keyword parameters with clear errors."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from rnngap.tasks.ar import ARTask
from rnngap.tasks.base import RetrievalTask
from rnngap.tasks.cgram import CGramTask
from rnngap.tasks.counting import CountingTask
from rnngap.tasks.index import IndexTask

TASKS: dict[str, type[RetrievalTask]] = {
    IndexTask.name: IndexTask,
    ARTask.name: ARTask,
    CGramTask.name: CGramTask,
    CountingTask.name: CountingTask,
}


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
