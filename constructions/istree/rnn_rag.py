"""A bit-bounded recurrent machine with in-context retrieval that decides IsTree (claim C5).

The model (BRIEF.md, "Models of computation"): an RNN with M-bit memory is a pair
``state_t = f(state_{t-1}, x_t)``, ``y_t = g(state_t)``; here the state is an explicit record of
non-negative integer fields, each with a declared width (a function of n) that is enforced after
every step.  The RNN reads the prompt, then writes its chain of thought token by token: every
token it writes is fed back as its next input.  When it writes ``[ENDSEARCH]`` the retrieval
environment (:mod:`rnngap.tasks.retrieval_env`) searches the whole context and appends one
token, which the RNN reads like any other.

The IsTree program writes exactly the official retrieval-format transcript
(:func:`rnngap.tasks.istree.retrieval_cot`).  Registers (``NONE = n`` encodes "no vertex" /
``[FAILED]``):

* ``pc``: program counter, 5 bits (31 instructions);
* ``top`` (current vertex), ``father`` (its retrieved parent), ``prev`` (where we came from:
  the parent on a first visit, the finished child otherwise), ``nxt`` (retrieved neighbour):
  each ``ceil(log2(n + 1))`` bits;
* ``count``: vertices discovered so far (1..n; set to 0 when a cycle is found), and ``m``:
  edges counted while reading the prompt (saturating), each ``ceil(log2(n + 1))`` bits.

Total ``5 + 6 * ceil(log2(n + 1))`` bits: O(log n).  The stack of the DFS lives in the context
as parent records ``x ~ v``; adjacency lives in the prompt; both are fetched by retrieval.

Correctness sketch.  (1) The program performs the explicit-stack DFS of the official format:
``father`` is retrieved from the record written when ``top`` was discovered (the root has none:
``[FAILED]``); ``prev == father`` holds exactly on a first visit, since afterwards ``prev`` is
a child; the neighbour after ``prev`` resumes v's adjacency scan where it stopped (edges are
distinct, so ``prev`` occurs once in it); popping sets ``top := father``, ``prev := old top``.
(2) A neighbour ``x != father`` is new iff it has no parent record and is not the root 0 (a
record is written at discovery); a visited ``x != father`` closes a cycle, so the answer is
FALSE.  (3) If the DFS from 0 ends without a cycle, the component of 0 is a tree with
``count`` vertices; with n - 1 edges the graph is a tree iff ``count == n``; the machine also
counts the prompt's edges (``m`` register, same width) and answers FALSE unless ``m == n - 1``.
Verified token for token against the parser in :mod:`rnngap.verify.istree.rnn_rag`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rnngap.tasks import istree as T
from rnngap.tasks.retrieval_env import RetrievalEnv, istree_env

RETRIEVE = -1
"""``emit`` result: the next token is written by the retrieval environment."""
HALT = -2
"""``emit`` result: the machine has finished."""

# program counter values (instruction -> what the machine writes there)
PC = ("PROMPT", "A_TOP", "A_S", "A_TOP2", "A_TILDE", "A_E", "A_GET_FATHER",
      "B_S", "B_TOP", "B_DASH", "B_PREV", "B_E", "B_GET_NXT",
      "C_S", "C_TOP", "C_DASH", "C_FATHER", "C_E", "C_GET_NXT",
      "D_S", "D_NXT", "D_TILDE", "D_E", "D_GET_REC", "W_NXT", "W_TILDE", "W_TOP")
PC_END = ("END_EOS", "END_TRUE", "END_FALSE", "HALTED")
PCS = PC + PC_END
P = {name: i for i, name in enumerate(PCS)}
FIELDS = ("pc", "top", "father", "prev", "nxt", "count", "m")
PROMPT_ONLY = -3
_REG = {"top": -11, "father": -12, "prev": -13, "nxt": -14}  # -10 - register index
_EMIT_BY_NAME = {
    "PROMPT": PROMPT_ONLY, "A_TOP": _REG["top"], "A_S": T.S, "A_TOP2": _REG["top"],
    "A_TILDE": T.TILDE, "A_E": T.E, "A_GET_FATHER": RETRIEVE, "B_S": T.S, "B_TOP": _REG["top"],
    "B_DASH": T.DASH, "B_PREV": _REG["prev"], "B_E": T.E, "B_GET_NXT": RETRIEVE, "C_S": T.S,
    "C_TOP": _REG["top"], "C_DASH": T.DASH, "C_FATHER": _REG["father"], "C_E": T.E,
    "C_GET_NXT": RETRIEVE, "D_S": T.S, "D_NXT": _REG["nxt"], "D_TILDE": T.TILDE, "D_E": T.E,
    "D_GET_REC": RETRIEVE, "W_NXT": _REG["nxt"], "W_TILDE": T.TILDE, "W_TOP": _REG["top"],
    "END_EOS": T.EOS, "END_TRUE": T.TRUE, "END_FALSE": T.FALSE, "HALTED": HALT}
EMIT = tuple(_EMIT_BY_NAME[name] for name in PCS)
"""g as a table: what the machine writes at each program counter."""
_SPECIAL = {"PROMPT", "A_GET_FATHER", "B_DASH", "B_GET_NXT", "C_GET_NXT", "D_GET_REC", "W_TOP",
            "END_EOS", "END_TRUE", "END_FALSE", "HALTED"}
ADVANCE = frozenset(P[name] for name in PCS if name not in _SPECIAL)
"""Program counters after which f simply moves on to the next instruction."""


def field_widths(n: int) -> dict[str, int]:
    """Declared width in bits of every register, as a function of n."""
    w = max(1, math.ceil(math.log2(n + 1)))
    return {"pc": math.ceil(math.log2(len(PCS))), "top": w, "father": w, "prev": w, "nxt": w,
            "count": w, "m": w}


@dataclass
class Trace:
    """What one run produced."""

    tokens: list[int]
    prompt_len: int
    verdict: bool | None
    declared_bits: int
    peak_bits: int
    retrievals: int
    retrieval_failures: int
    log: list[str] = field(default_factory=list)
    prompt_state: tuple[int, ...] = ()

    @property
    def cot_len(self) -> int:
        """Tokens written after the prompt (retrieved tokens included)."""
        return len(self.tokens) - self.prompt_len


class BitBoundedRNN:
    """Base class: a record of named integer registers with enforced widths.

    Subclasses define ``FIELDS``, ``widths``, ``init``, ``read`` (f) and ``emit`` (g).  The state
    is a tuple of ints in ``FIELDS`` order; :meth:`check` raises ``OverflowError`` if a value
    leaves ``[0, 2**width)``.
    """

    FIELDS: tuple[str, ...] = ()
    widths: dict[str, int]

    @property
    def declared_bits(self) -> int:
        """Sum of the declared widths: the machine's memory M in bits."""
        return sum(self.widths[f] for f in self.FIELDS)

    def check(self, state: tuple[int, ...]) -> int:
        """Enforce the widths; return the bits in use (sum of the values' bit lengths)."""
        widths = self.__dict__.get("_wtuple")
        if widths is None:
            widths = self._wtuple = tuple(self.widths[f] for f in self.FIELDS)
        bits = tuple(map(int.bit_length, state))
        if min(state) < 0 or any(map(operator.gt, bits, widths)):
            i = next(i for i, v in enumerate(state) if v < 0 or bits[i] > widths[i])
            name = self.FIELDS[i]
            raise OverflowError(f"register {name}={state[i]} exceeds {widths[i]} bits")
        return sum(bits)


class NotHalted(RuntimeError):
    """:func:`drive` stopped a machine that had not halted; ``state`` and ``trace`` hold what
    it had computed up to then (every token written, the peak bits, the retrievals)."""

    def __init__(self, message: str, state: tuple, trace: Trace):
        super().__init__(message)
        self.state, self.trace = state, trace


def drive(machine: BitBoundedRNN, env: RetrievalEnv, prompt: Sequence[int], start: int,
          end: int, retrieval: bool = True, max_steps: int = 10**8,
          stop: Callable[[tuple, int], bool] | None = None) -> tuple[tuple, Trace]:
    """Feed ``prompt``, then let the machine write until it halts.

    ``retrieval=False`` switches the oracle off: every retrieval slot receives the failure
    token (the machine is unchanged).  Returns the final state and a :class:`Trace` (verdict
    left None; the caller interprets the state).  Raises :class:`NotHalted` (with the partial
    trace) after ``max_steps`` written tokens, or earlier when ``stop(state, tokens written
    after the prompt)`` returns True before a token is written.
    """
    state = machine.init()
    peak = machine.check(state)
    n_ret = n_fail = 0
    for t in prompt:
        env.append(int(t))
        state = machine.read(state, int(t))
        peak = max(peak, machine.check(state))
    prompt_state = state

    def partial(why: str) -> NotHalted:
        tr = Trace(list(env.tokens), len(prompt), None, machine.declared_bits, peak, n_ret,
                   env.failures, list(env.log), prompt_state)
        return NotHalted(why, state, tr)

    for written in range(max_steps):
        if stop is not None and stop(state, written):
            raise partial(f"stopped before halting after {written} tokens")
        out = machine.emit(state)
        if out == HALT:
            break
        if out == RETRIEVE:
            n_ret += 1
            if retrieval:
                res = env.retrieve(env.pending_query(start, end) or [])
                out = res.token
            else:
                out = env.failed_token
        env.append(out)
        state = machine.read(state, out)
        peak = max(peak, machine.check(state))
    else:
        raise partial(f"machine did not halt within {max_steps} steps")
    n_fail = env.failures
    trace = Trace(list(env.tokens), len(prompt), None, machine.declared_bits, peak, n_ret,
                  n_fail, list(env.log), prompt_state)
    return state, trace


class IsTreeRAG(BitBoundedRNN):
    """The IsTree program (module docstring).  ``f = read``, ``g = emit``."""

    FIELDS = FIELDS

    def __init__(self, n: int):
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n = n
        self.none = n
        self.widths = field_widths(n)

    def init(self) -> tuple[int, ...]:
        """Before the prompt: pc PROMPT, no vertices, nothing counted."""
        return (P["PROMPT"], self.none, self.none, self.none, self.none, 0, 0)

    def _v(self, tok: int) -> int:
        """Register value of a vertex token, or NONE for anything else (e.g. [FAILED])."""
        v = T.token_vertex(tok)
        return v if v is not None and v < self.n else self.none

    def _tok(self, v: int) -> int:
        return T.FAILED if v == self.none else T.vertex_token(v)

    def emit(self, s: tuple[int, ...]) -> int:
        """g: the token written in state ``s`` (RETRIEVE / HALT are signals).

        Table-driven: ``EMIT[pc]`` is a constant token, a signal, or ``-10 - r`` meaning "the
        vertex token of register ``r``" (``[FAILED]`` for NONE).
        """
        what = EMIT[s[0]]
        if what <= -10:
            v = s[-10 - what]
            return T.FAILED if v == self.none else T.FIRST_VERTEX + v
        if what == PROMPT_ONLY:
            raise RuntimeError("emit called while reading the prompt")
        return what

    def _after_neighbour(self, s: list[int]) -> int:
        """Branch once the neighbour ``nxt`` is known: skip parent / pop / check it."""
        top, father, nxt = s[1], s[2], s[4]
        if nxt != self.none and nxt == father and PCS[s[0]] == "B_GET_NXT":
            return P["C_S"]
        if nxt == self.none:  # v is finished: pop
            if father == self.none:  # the root: the DFS is over without a cycle
                return P["END_EOS"]
            s[3], s[1], s[2] = top, father, self.none
            return P["A_TOP"]
        return P["D_S"]

    def read(self, s: tuple[int, ...], tok: int) -> tuple[int, ...]:
        """f: the new state after reading ``tok`` (a prompt token, own output or retrieval)."""
        if s[0] in ADVANCE:
            return (s[0] + 1,) + s[1:]
        r = list(s)
        name = PCS[s[0]]
        if name == "PROMPT":
            if tok == T.DASH:
                r[6] = min(s[6] + 1, (1 << self.widths["m"]) - 1)  # saturating edge counter
            elif tok == T.EOS:
                r = [P["A_TOP"], 0, self.none, self.none, self.none, 1, s[6]]
            return tuple(r)
        if name == "A_GET_FATHER":
            r[2] = self._v(tok)
            r[0] = P["B_S"]
        elif name == "B_DASH":
            r[0] = P["B_E"] if s[3] == s[2] else P["B_PREV"]
        elif name in ("B_GET_NXT", "C_GET_NXT"):
            r[4] = self._v(tok)
            r[0] = self._after_neighbour(r)
        elif name == "D_GET_REC":
            new = tok == T.FAILED and r[4] != 0
            r[0] = P["W_NXT"] if new else P["END_EOS"]
            if not new:
                r[5] = 0  # a cycle: mark the verdict FALSE (count can no longer be n)
        elif name == "W_TOP":
            r = [P["A_TOP"], s[4], self.none, s[1], self.none, s[5] + 1, s[6]]
        elif name == "END_EOS":
            ok = s[5] == self.n and s[6] == self.n - 1
            r[0] = P["END_TRUE"] if ok else P["END_FALSE"]
        elif name in ("END_TRUE", "END_FALSE"):
            r[0] = P["HALTED"]
        else:
            r[0] = s[0] + 1
        return tuple(r)


def run_istree(n: int, edges: object, retrieval: bool = True) -> Trace:
    """Run :class:`IsTreeRAG` on one graph with a fresh :func:`istree_env`.

    ``retrieval=False`` switches the oracle off (every retrieval answers ``[FAILED]``).
    """
    machine = IsTreeRAG(n)
    env = istree_env(n)
    prompt = T.prompt_tokens(n, edges)
    _, trace = drive(machine, env, prompt, T.S, T.E, retrieval=retrieval,
                         max_steps=64 * (n + 2) + 64)
    last = trace.tokens[-1]
    trace.verdict = True if last == T.TRUE else False if last == T.FALSE else None
    return trace


def peak_bits_table(ns: Sequence[int], seed: int = 0) -> list[dict[str, int]]:
    """Run one 'random'-family graph per n and report declared and peak used state bits."""
    rows = []
    for n in ns:
        (edges,), _ = T.sample_graphs(n, 1, "random", seed=seed)
        tr = run_istree(n, edges)
        rows.append({"n": n, "declared_bits": tr.declared_bits, "peak_bits": tr.peak_bits,
                     "cot_tokens": tr.cot_len, "retrievals": tr.retrievals,
                     "log2_n": int(np.ceil(np.log2(n)))})
    return rows
