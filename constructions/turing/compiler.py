"""Turing machines compiled to an O(log T)-bit RNN with regex retrieval (claim C5).

**Machine text format** (one item per line, ``#`` starts a comment)::

    name: NAME            doc: ONE LINE          input: SYMBOLS...     tape: SYMBOLS... (optional)
    start: STATE          accept: STATE          reject: STATE
    STATES SYMBOLS -> NEW_STATE WRITE MOVE

``STATES`` and ``SYMBOLS`` are comma lists; ``WRITE`` is a symbol or ``=`` (unchanged); ``MOVE`` is
``L``, ``R`` or ``N``.  Symbols are single characters other than ``,`` ``=`` ``#``, whitespace;
``_`` is the blank and ``>`` the left-end marker (both always in the tape alphabet).  The
transition function must be total on (non-halting state) x (tape symbol), deterministic, and
name only known states.  Semantics: one-way tape, cell 0 holds ``>``, the input occupies cells
1..k, the head starts on cell 0 in the start state, a left move on cell 0 stays there; the
machine halts on entering accept or reject.  The output is cells 1.. up to the last non-blank.

**The compiled RNN** (``TMRag``) writes, for every step of the machine, ::

    q [STARTSEARCH] @ h [ENDSEARCH] r @ h w M

(``q`` the state, ``h`` the head cell, ``r`` the symbol retrieved for cell h, ``w`` the symbol
written, ``M`` the move).  The prompt is ``[BOS] @ 0 > @ 1 x_1 ... @ k x_k [EOS]``, so every
cell's content is its *last write record* ``@ c s``: the query ``@ h`` compiles to the raw
pattern ``^(?s:.*) @ h #\\S+`` (greedy prefix: the last occurrence; no group: the answer is the
last token of the match, the symbol); no record means blank (``[FAILED]``).  On halting it
writes ``q [EOS]``, then reads the tape back with ``[STARTSEARCH] @ i [ENDSEARCH] s`` for
``i = 1..hi`` (hi = the largest cell touched), then ``[EOS]`` and ``[ACCEPT]``/``[REJECT]``.
Registers: pc (5 bits), q and the next state (log2 |Q|), read/written symbol (log2 |Gamma|),
move (2), head h, hi and the output cursor (each ceil(log2(max_cells + 2)) bits): O(log T).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rnngap.constructions.istree.rnn_rag import HALT, RETRIEVE, BitBoundedRNN, NotHalted, drive
from rnngap.constructions.turing.machines import SOURCES
from rnngap.tasks.retrieval_env import RetrievalEnv

BLANK, LEFT = "_", ">"
MOVES = {"L": -1, "R": 1, "N": 0}


@dataclass(frozen=True)
class TuringMachine:
    """A deterministic one-way-tape Turing machine (module docstring)."""

    name: str
    doc: str
    states: tuple[str, ...]
    input_alphabet: tuple[str, ...]
    tape_alphabet: tuple[str, ...]
    start: str
    accept: str
    reject: str
    delta: dict[tuple[str, str], tuple[str, str, str]]

    def check_input(self, text: str) -> None:
        """Raise ValueError unless every character is an input symbol."""
        for i, c in enumerate(text):
            if c not in self.input_alphabet:
                raise ValueError(f"input symbol {c!r} at position {i} is not in the input "
                                 f"alphabet {{{', '.join(self.input_alphabet)}}} of {self.name}")

    def step_bound(self, k: int) -> int:
        """Default step limit on an input of length k: 40 (k + 3)^2 + 200 (all built-ins halt
        well within it); ``max_steps`` of :func:`simulate` / :func:`run_compiled` overrides it."""
        return 40 * (k + 3) ** 2 + 200


def parse_machine(text: str) -> TuringMachine:
    """Parse the text format; raise ValueError with the line number on any problem."""
    head: dict[str, str] = {}
    rules: dict[tuple[str, str], tuple[str, str, str]] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.strip().startswith("#") else ""
        if not line:
            continue
        key, sep, val = line.partition(":")
        if sep and key.strip() in ("name", "doc", "input", "tape", "start", "accept", "reject"):
            head[key.strip()] = val.strip()
            continue
        if "->" not in line:
            raise ValueError(f"line {no}: expected 'key: value' or a transition")
        left, right = (s.split() for s in line.split("->", 1))
        if len(left) != 2 or len(right) != 3:
            raise ValueError(f"line {no}: want 'STATES SYMBOLS -> STATE WRITE MOVE'")
        if right[2] not in MOVES:
            raise ValueError(f"line {no}: move must be L, R or N, got {right[2]!r}")
        for q, s in itertools.product(left[0].split(","), left[1].split(",")):
            if (q, s) in rules:
                raise ValueError(f"line {no}: transition for ({q}, {s}) defined twice")
            rules[(q, s)] = (right[0], s if right[1] == "=" else right[1], right[2])
    for key in ("name", "start", "accept", "reject", "input"):
        if key not in head:
            raise ValueError(f"missing '{key}:' line")
    inputs = tuple(head["input"].split())
    syms = set(inputs) | {BLANK, LEFT} | set(head.get("tape", "").split())
    syms |= {s for (_, s) in rules} | {w for (_, w, _) in rules.values()}
    for s in syms:
        if len(s) != 1 or s in ",=#" or s.isspace():
            raise ValueError(f"symbol {s!r}: symbols are single characters other than , = #")
    halting = {head["accept"], head["reject"]}
    states = {head["start"]} | halting | {q for (q, _) in rules} | {r[0] for r in rules.values()}
    for q, _ in rules:
        if q in halting:
            raise ValueError(f"halting state {q} must have no transitions")
    missing = [(q, s) for q in sorted(states - halting) for s in sorted(syms)
               if (q, s) not in rules]
    if missing:
        shown = ", ".join(f"({q}, {s})" for q, s in missing[:5])
        raise ValueError(f"undefined transitions: {shown}{' ...' if len(missing) > 5 else ''}")
    order = [head["start"]] + sorted(states - {head["start"]})
    return TuringMachine(head["name"], head.get("doc", ""), tuple(order), inputs,
                         tuple(sorted(syms)), head["start"], head["accept"], head["reject"],
                         rules)


MACHINES: dict[str, TuringMachine] = {name: parse_machine(src) for name, src in SOURCES.items()}


@dataclass(frozen=True)
class Outcome:
    """A run's result: 'accept' / 'reject' / 'timeout', the output tape, the steps taken.

    'timeout' means: did not halt within the step limit; ``tape`` is then the tape after
    exactly that many steps and ``steps`` the limit.
    """

    outcome: str
    tape: str
    steps: int


def simulate(m: TuringMachine, text: str, max_steps: int | None = None) -> Outcome:
    """Run ``m`` directly on a dict tape (the reference the compiled RNN is checked against)."""
    tape = {0: LEFT} | {i + 1: c for i, c in enumerate(text)}
    q, h, bound = m.start, 0, m.step_bound(len(text)) if max_steps is None else max_steps
    for step in range(bound + 1):
        if q in (m.accept, m.reject):
            hi = max(tape)
            out = "".join(tape.get(i, BLANK) for i in range(1, hi + 1)).rstrip(BLANK)
            return Outcome("accept" if q == m.accept else "reject", out, step)
        if step == bound:
            break
        q, w, mv = m.delta[(q, tape.get(h, BLANK))]
        tape[h] = w
        h = max(0, h + MOVES[mv])
    hi = max(tape)  # not halted: the tape after exactly ``bound`` steps
    return Outcome("timeout", "".join(tape.get(i, BLANK) for i in range(1, hi + 1))
                   .rstrip(BLANK), bound)


SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[STARTSEARCH]", "[ENDSEARCH]", "[FAILED]", "[ACCEPT]",
            "[REJECT]", "@", "L", "R", "N")
PAD, BOS, EOS, S, E, FAILED, ACCEPT, REJECT, AT, TL, TR, TN = range(len(SPECIALS))
PCS = ("PROMPT", "ST_Q", "Q_S", "Q_AT", "Q_H", "Q_E", "Q_GET", "W_AT", "W_H", "W_W", "W_M",
       "H_EOS", "O_S", "O_AT", "O_I", "O_E", "O_GET", "O_END", "VERDICT", "HALTED")
P = {name: i for i, name in enumerate(PCS)}


_Q, _H, _I, _W, _MV, _VERDICT, _PROMPT = -10, -11, -12, -13, -14, -15, -16
_EMIT = tuple({"PROMPT": _PROMPT, "ST_Q": _Q, "Q_S": S, "Q_AT": AT, "Q_H": _H, "Q_E": E,
               "Q_GET": RETRIEVE, "W_AT": AT, "W_H": _H, "W_W": _W, "W_M": _MV, "H_EOS": EOS,
               "O_S": S, "O_AT": AT, "O_I": _I, "O_E": E, "O_GET": RETRIEVE, "O_END": EOS,
               "VERDICT": _VERDICT, "HALTED": HALT}[name] for name in PCS)
"""g as a table: a constant token, a signal, or which register's token to write."""


class Vocabulary:
    """Token ids of a compiled machine: specials, ``q:STATE``, ``#SYMBOL``, numbers 0..cells."""

    def __init__(self, m: TuringMachine, max_cells: int):
        self.m, self.max_cells = m, max_cells
        self.state0 = len(SPECIALS)
        self.sym0 = self.state0 + len(m.states)
        self.num0 = self.sym0 + len(m.tape_alphabet)
        self.names = (list(SPECIALS) + [f"q:{q}" for q in m.states]
                      + [f"#{s}" for s in m.tape_alphabet] + [str(i) for i in range(max_cells + 1)])
        self.sym_index = {s: i for i, s in enumerate(m.tape_alphabet)}
        self.state_index = {q: i for i, q in enumerate(m.states)}

    def dialect(self, query: list[int]) -> str:
        """``@ i`` -> the last write record of cell i (module docstring)."""
        if len(query) != 2 or query[0] != AT or not self.num0 <= query[1] < len(self.names):
            raise ValueError("a tape query is '@ CELL'")
        return rf"^(?s:.*) @ {query[1] - self.num0} #\S+"


_VOCABS: dict[tuple[int, int], tuple[TuringMachine, Vocabulary]] = {}


def _vocabulary(m: TuringMachine, max_cells: int) -> Vocabulary:
    """Vocabularies are cached per (machine, cells): building one is O(cells)."""
    key = (id(m), max_cells)
    hit = _VOCABS.get(key)
    if hit is None or hit[0] is not m:
        if len(_VOCABS) > 256:
            _VOCABS.clear()
        hit = _VOCABS[key] = (m, Vocabulary(m, max_cells))
    return hit[1]


class TMRag(BitBoundedRNN):
    """The compiled machine: f = ``read``, g = ``emit`` (module docstring)."""

    FIELDS = ("pc", "q", "h", "r", "nq", "w", "mv", "hi", "i")

    def __init__(self, m: TuringMachine, max_cells: int):
        self.m, self.v = m, _vocabulary(m, max_cells)
        cw = math.ceil(math.log2(max_cells + 2))
        qw = max(1, math.ceil(math.log2(len(m.states))))
        sw = max(1, math.ceil(math.log2(len(m.tape_alphabet))))
        self.widths = {"pc": math.ceil(math.log2(len(PCS))), "q": qw, "nq": qw, "r": sw,
                       "w": sw, "mv": 2, "h": cw, "hi": cw, "i": cw}
        self.acc = self.v.state_index[m.accept]
        self.rej = self.v.state_index[m.reject]
        self.table = {(self.v.state_index[q], self.v.sym_index[s]):
                      (self.v.state_index[q2], self.v.sym_index[w], "LRN".index(mv))
                      for (q, s), (q2, w, mv) in m.delta.items()}

    def init(self) -> tuple[int, ...]:
        """Before the prompt: counting cells."""
        return (P["PROMPT"], 0, 0, 0, 0, 0, 0, 0, 0)

    def emit(self, s: tuple[int, ...]) -> int:
        """g: the token written in state ``s`` (``EMIT[pc]``: a constant or a register's token)."""
        pc, q, h, _, _, w, mv, _, i = s
        what = _EMIT[pc]
        if what >= 0 or what in (RETRIEVE, HALT):
            return what
        v = self.v
        if what == _Q:
            return v.state0 + q
        if what == _H:
            return v.num0 + h
        if what == _I:
            return v.num0 + i
        if what == _W:
            return v.sym0 + w
        if what == _MV:
            return (TL, TR, TN)[mv]
        if what == _VERDICT:
            return ACCEPT if q == self.acc else REJECT
        raise RuntimeError("emit called while reading the prompt")

    def read(self, s: tuple[int, ...], tok: int) -> tuple[int, ...]:
        """f: the new state after reading ``tok``."""
        pc, q, h, r, nq, w, mv, hi, i = s
        name, v = PCS[pc], self.v
        if name == "PROMPT":
            if tok == AT:
                return (pc, q, h, r, nq, w, mv, hi + 1, i)
            if tok == EOS:  # hi = number of records - 1 = k (cells 0..k)
                return (P["ST_Q"], v.state_index[self.m.start], 0, 0, 0, 0, 0,
                        max(hi - 1, 0), 0)
            return s
        if name == "ST_Q":
            nxt = P["H_EOS"] if q in (self.acc, self.rej) else P["Q_S"]
            return (nxt, q, h, r, nq, w, mv, hi, i)
        if name == "Q_GET":
            r = v.sym_index[BLANK] if tok == FAILED else tok - v.sym0
            nq, w, mv = self.table[(q, r)]
            return (P["W_AT"], q, h, r, nq, w, mv, hi, i)
        if name == "W_M":
            h = max(0, h + (-1, 1, 0)[mv])
            return (P["ST_Q"], nq, h, r, nq, w, mv, max(hi, h), i)
        if name == "H_EOS":
            return (P["O_S"] if hi >= 1 else P["O_END"], q, h, r, nq, w, mv, hi, 1)
        if name == "O_GET":
            return (P["O_S"] if i < hi else P["O_END"], q, h, r, nq, w, mv, hi, i + 1)
        if name == "VERDICT":
            return (P["HALTED"],) + s[1:]
        return (pc + 1,) + s[1:]


@dataclass
class CompiledRun:
    """A compiled run: outcome and output decoded from the transcript, plus its costs."""

    outcome: str
    tape: str
    steps: int
    transcript: str
    tokens: list[int]
    peak_bits: int
    declared_bits: int
    cot_len: int
    retrievals: int


def run_compiled(m: TuringMachine, text: str, retrieval: bool = True,
                 max_steps: int | None = None) -> CompiledRun:
    """Run the compiled RNN + retrieval machine on ``text`` and decode its transcript.

    A machine that has not halted after ``max_steps`` machine steps (default
    ``m.step_bound(len(text))``) is stopped there, exactly like :func:`simulate`: outcome
    'timeout', steps = the limit, and the tape, transcript, peak state bits, CoT length and
    retrievals are the real ones computed up to that point.
    """
    m.check_input(text)
    bound = m.step_bound(len(text)) if max_steps is None else max_steps
    if bound < 0:
        raise ValueError(f"max_steps must be >= 0, got {bound}")
    # a halting run writes 10 tokens per step and 5 per output cell; the token budget below
    # allows that, and within it the head (one cell per step) stays below ``cells``
    limit = 10 * (bound + 1) + 5 * (len(text) + bound + 2) + 10
    cells = len(text) + limit // 10 + 2
    rnn = TMRag(m, cells)
    voc = rnn.v
    env = RetrievalEnv(voc.names, FAILED, voc.dialect)
    prompt = [BOS, AT, voc.num0, voc.sym0 + voc.sym_index[LEFT]]
    for i, c in enumerate(text, 1):
        prompt += [AT, voc.num0 + i, voc.sym0 + voc.sym_index[c]]
    prompt.append(EOS)
    halting = (rnn.acc, rnn.rej)

    def stop(state: tuple[int, ...], written: int) -> bool:
        # every machine step writes exactly 10 tokens; after ``bound`` steps the RNN is about
        # to write the state token: stop there unless that state halts (as ``simulate`` does)
        return written >= 10 * bound and state[0] == P["ST_Q"] and state[1] not in halting

    try:
        _, tr = drive(rnn, env, prompt, S, E, retrieval=retrieval, max_steps=limit, stop=stop)
    except NotHalted as err:
        tr = err.trace
        toks = tr.tokens
        tape = {0: LEFT} | {i + 1: c for i, c in enumerate(text)}
        steps = 0
        for base in range(len(prompt), len(toks) - 9, 10):  # q S @ h E r @ h w M
            tape[toks[base + 7] - voc.num0] = voc.names[toks[base + 8]][1:]
            steps += 1
        hi = max(tape)
        out = "".join(tape.get(i, BLANK) for i in range(1, hi + 1)).rstrip(BLANK)
        shown = " ".join(voc.names[t] for t in toks)
        return CompiledRun("timeout", out, steps, shown, toks, tr.peak_bits, tr.declared_bits,
                           tr.cot_len, tr.retrievals)
    toks = tr.tokens
    steps = sum(1 for t in toks[len(prompt):] if t in (TL, TR, TN))
    halt_eos = toks.index(EOS, len(prompt))
    cells_out = [toks[j + 1] for j in range(halt_eos, len(toks) - 1) if toks[j] == E]
    tape = "".join(BLANK if t == FAILED else voc.names[t][1:] for t in cells_out).rstrip(BLANK)
    outcome = "accept" if toks[-1] == ACCEPT else "reject"
    shown = " ".join(voc.names[t] for t in toks)
    return CompiledRun(outcome, tape, steps, shown, toks, tr.peak_bits, tr.declared_bits,
                       tr.cot_len, tr.retrievals)


def all_inputs(m: TuringMachine, max_len: int) -> Iterator[str]:
    """Every string over the input alphabet of length 0..max_len, shortest first."""
    for k in range(max_len + 1):
        for tup in itertools.product(m.input_alphabet, repeat=k):
            yield "".join(tup)


def check_machine(m: TuringMachine, max_len: int,
                  spec: Callable[[str, str, str], bool] | None = None,
                  progress: Callable[[int], None] | None = None,
                  max_steps: int | None = None) -> dict:
    """Run the compiled RNN and the direct simulator on every input of length <= max_len.

    Returns a dict: inputs, disagreements (compiled vs direct: outcome, output and step count),
    spec_failures (direct runs violating ``spec(input, outcome, tape)``, when given), the first
    few bad inputs, the largest step count, CoT length and peak state bits seen, and
    ``not_halted``: inputs on which BOTH did not halt within the same step limit (``max_steps``,
    default ``m.step_bound(len(x))``) with the same tape -- they agree only up to that limit.
    A run that halts in one and not in the other is a disagreement.  ``spec`` is not applied
    to runs cut off by an explicit ``max_steps`` (counted in ``spec_skipped``); under the
    default limit a non-halting run violates the specification (built-ins must halt).
    """
    out = {"machine": m.name, "max_len": max_len, "inputs": 0, "disagreements": 0,
           "not_halted": 0, "max_steps_limit": max_steps, "spec_skipped": 0,
           "spec_checked": spec is not None, "spec_failures": 0, "examples": [],
           "max_steps": 0, "max_cot_tokens": 0, "peak_state_bits": 0, "declared_state_bits": 0}
    for x in all_inputs(m, max_len):
        run, ref = run_compiled(m, x, max_steps=max_steps), simulate(m, x, max_steps=max_steps)
        out["inputs"] += 1
        same = (run.outcome, run.tape, run.steps) == (ref.outcome, ref.tape, ref.steps)
        if same and ref.outcome == "timeout":
            out["not_halted"] += 1
        if not same:
            out["disagreements"] += 1
            out["examples"].append({"input": x, "compiled": [run.outcome, run.tape],
                                    "direct": [ref.outcome, ref.tape]})
        if spec is not None and ref.outcome == "timeout" and max_steps is not None:
            out["spec_skipped"] += 1  # cut off by the caller's limit: nothing to judge
        elif spec is not None and not spec(x, ref.outcome, ref.tape):
            out["spec_failures"] += 1
            out["examples"].append({"input": x, "spec_violated_by": [ref.outcome, ref.tape]})
        out["max_steps"] = max(out["max_steps"], ref.steps)
        out["max_cot_tokens"] = max(out["max_cot_tokens"], run.cot_len)
        out["peak_state_bits"] = max(out["peak_state_bits"], run.peak_bits)
        out["declared_state_bits"] = max(out["declared_state_bits"], run.declared_bits)
        if progress:
            progress(1)
    out["examples"] = out["examples"][:5]
    out["agree"] = out["disagreements"] == 0 and out["spec_failures"] == 0
    return out
