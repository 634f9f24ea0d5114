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
class TaskOption:
    """A task parameter that ``verify TASK`` and ``construct`` take as a command option
    (``--NAME``); the commands generate the click option from it."""

    name: str
    """The task's constructor parameter and the option's name (``--c``, ``--exact``)."""
    default: Any
    """The task parameter when the option is not given (a flag's is False)."""
    help: str
    """``rnngap verify TASK --help``."""
    short: str
    """A few words for ``rnngap construct --help`` (which adds "(TASK only)")."""
    flag: bool = False
    """An on/off switch; otherwise the option takes an int."""


@dataclass(frozen=True)
class TaskCard:
    """Everything rnngap knows about one retrieval task, in one place (issue 13): commands,
    click choices, the report and the data path read these cards instead of their own lists.
    A new retrieval task is its task file, its construction and verifier files, and one card.

    Every "module:function" field is imported on use (:func:`load`); an optional capability is
    None where the task lacks it."""

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
    options: tuple[TaskOption, ...] = ()
    """Task parameters given as options of ``verify TASK`` and ``construct`` (``--c``)."""
    hybrid_construction: str | None = None
    """"module:function" ``(task) -> Construction``: the linear-RNN hybrid (Def 5.5)."""
    hybrid_verifier: str | None = None
    """"module:function" ``(task, precision, samples, seed, construction) -> verdict`` of the
    hybrid (``verify --model hybrid``)."""
    counter: str | None = None
    """"module:function" ``(n, alphabet=, order=, **task options) -> verify.bounds.counts.Count``:
    the prefix classes a one-pass machine must tell apart (``rnngap bound``, ``report``)."""
    fool: str | None = None
    """"module:NAME" of a ``verify.bounds.fool.FoolFamily``: ``rnngap fool`` searches explicit
    fooling pairs for it."""
    oracle: str | None = None
    """"module:NAME" of a ``verify.bounds.oracle.OracleRule``: the task with an associative-
    recall oracle (claim C7, ``bound --oracle``, ``fool --oracle``)."""
    range_prover: str | None = None
    """"module:Class" of the range prover (``verify.every_n``): ``verify NAME --n-max N``
    proves the Transformer construction for every n of a range at once."""
    hybrid_range_prover: str | None = None
    """The same for the hybrid (``verify NAME --n-max N --model hybrid``)."""
    verdict_form: str | None = None
    """"module:function" ``(task) -> dict``: keys ``rnngap verify`` adds to each verdict of the
    task, for either model (Counting: which form was proved and its convention)."""

    @property
    def hybrid(self) -> bool:
        """A linear-RNN hybrid construction exists (``constructions.retrieval.hybrid.build``)."""
        return self.hybrid_construction is not None


_HYBRID = "rnngap.constructions.retrieval.hybrid"
_HYBRID_V = "rnngap.verify.retrieval.hybrid"
_COUNTS = "rnngap.verify.bounds.counts"
_FOOL = "rnngap.verify.bounds.fool"
_ORACLE = "rnngap.verify.bounds.oracle"
_EVERY_N = "rnngap.verify.every_n"

CARDS: dict[str, TaskCard] = {c.name: c for c in (
    TaskCard("index", IndexTask, "Index (Def 4.2): the i-th token.",
             "Index (Def 4.2): x_1..x_n, i -> x_i. Proves the constructed 1-layer Transformer "
             "right on EVERY input at p bits.",
             "rnngap.constructions.retrieval.index:build",
             "rnngap.verify.retrieval.index:verify_index",
             hybrid_construction=f"{_HYBRID}:build_index",
             hybrid_verifier=f"{_HYBRID_V}:verify_index_hybrid",
             counter=f"{_COUNTS}:index_count", fool=f"{_FOOL}:INDEX",
             oracle=f"{_ORACLE}:INDEX", range_prover=f"{_EVERY_N}.index:IndexProver",
             hybrid_range_prover=f"{_EVERY_N}.index:IndexHybridProver"),
    TaskCard("ar", ARTask, "Associative recall (Def 4.3).",
             "Associative recall (Def 4.3), key-value form with distinct keys.",
             "rnngap.constructions.retrieval.ar:build", "rnngap.verify.retrieval.ar:verify_ar",
             hybrid_construction=f"{_HYBRID}:build_ar",
             hybrid_verifier="rnngap.verify.retrieval.hybrid_gram:verify_ar_hybrid",
             counter=f"{_COUNTS}:ar_count", fool=f"{_FOOL}:AR", oracle=f"{_ORACLE}:AR",
             range_prover=f"{_EVERY_N}.gram:ARProver",
             hybrid_range_prover=f"{_EVERY_N}.gram:ARHybridProver"),
    TaskCard("cgram", CGramTask, "c-gram retrieval (Def 4.4).",
             "c-gram retrieval (Def 4.4): the token after the last occurrence of the query "
             "(c-1)-gram.",
             "rnngap.constructions.retrieval.cgram:build",
             "rnngap.verify.retrieval.cgram:verify_cgram",
             options=(TaskOption("c", 2, "Gram length c >= 2 (default 2).", "Gram length"),),
             hybrid_construction=f"{_HYBRID}:build_cgram",
             hybrid_verifier="rnngap.verify.retrieval.hybrid_gram:verify_cgram_hybrid",
             counter=f"{_COUNTS}:cgram_count", oracle=f"{_ORACLE}:CGRAM",
             range_prover=f"{_EVERY_N}.gram:CGramProver",
             hybrid_range_prover=f"{_EVERY_N}.gram:CGramHybridProver"),
    TaskCard("counting", CountingTask, "Counting (Def 4.5).",
             "Counting (Def 4.5): 1 if the query token occurs more than t times.",
             "rnngap.constructions.retrieval.counting:build",
             "rnngap.verify.retrieval.counting:verify_counting",
             options=(TaskOption("exact", False, "Exact-count variant: row x_1..x_n q -> the "
                                 "count (Transformer and --model hybrid).",
                                 "Exact-count variant", flag=True),),
             hybrid_construction=f"{_HYBRID}:build_counting",
             hybrid_verifier="rnngap.verify.retrieval.hybrid_counting:verify_counting_hybrid",
             counter=f"{_COUNTS}:counting_count", fool=f"{_FOOL}:COUNTING",
             oracle=f"{_ORACLE}:COUNTING",
             range_prover=f"{_EVERY_N}.counting:CountingProver",
             hybrid_range_prover=f"{_EVERY_N}.counting:CountingHybridProver",
             verdict_form="rnngap.verify.retrieval.counting:verdict_form"),
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
    if name not in CARDS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(CARDS))}")
    return CARDS[name].cls


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


def option_owners(option: str) -> list[str]:
    """The tasks whose cards declare the command option ``option`` (``"c"`` -> ``["cgram"]``)."""
    return [name for name, card in CARDS.items() if any(o.name == option for o in card.options)]


#: every task option of every card, by name (the union ``construct`` offers)
OPTIONS: dict[str, TaskOption] = {o.name: o for card in CARDS.values() for o in card.options}


def construction_task(name: str, n: int, alphabet: int | None = None,
                      **options: Any) -> RetrievalTask:
    """The task a construction is built for, from the verify/construct options (the card's
    :class:`TaskOption` s: ``c`` for cgram, default 2; ``exact`` for counting); ValueError, one
    line, naming the option or the task. An option not given is None (a flag: False)."""
    params: dict[str, Any] = {"n": n, "alphabet": alphabet}
    own = {o.name: o for o in CARDS[name].options} if name in CARDS else {}
    for opt, value in options.items():
        if opt not in own and value is not None and value is not False:
            raise ValueError(f"--{opt} applies to {', '.join(option_owners(opt))} only, "
                             f"not {name}")
    for opt, o in own.items():
        value = options.get(opt)
        params[opt] = o.default if value is None else value
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
