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
