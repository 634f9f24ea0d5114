"""RNN + associative-recall oracle (claim C7): the positive side, and the environment.

The environment (:class:`AROracleEnv`) plugs into the same loop that drives the RNN with
regular-expression retrieval (:func:`rnngap.constructions.istree.rnn_rag.drive`): the machine writes
``[ASK] q [END]`` and then a retrieval slot; the environment appends the oracle's answer about
the DATA part of the row (the token after an occurrence of ``q``: rule and search as in
:mod:`rnngap.verify.bounds.oracle`), or ``[NONE]``. Vocabulary: data tokens ``0..k-1``, then
``[ASK] = k``, ``[END] = k + 1``, ``[NONE] = k + 2``.

:class:`ARRecall` is the bit-bounded RNN that solves AR (Def 4.3, key-value form) with it: it
keeps only the last token read (the query), asks the oracle once, and halts holding the
answer: ``3 + 2 ceil(log2(k + 3))`` bits, O(log n). :func:`verify_ar_recall` runs it on EVERY
AR input of one length. With ``search keys`` (occurrences at key positions: an oracle for AR)
it is exact under every occurrence rule (keys are distinct, so there is one occurrence). With
``search all`` it fails: a value equal to the query key can come first (first rule) or last
(last rule), and then the oracle answers with the wrong successor; ``rnngap bound --oracle ar
--task ar`` shows that no small-state machine can repair that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rnngap.constructions.istree.rnn_rag import HALT, RETRIEVE, BitBoundedRNN, drive
from rnngap.tasks.retrieval_env import Result, pending_query
from rnngap.verify.bounds.oracle import check_rule, occurrences


class AROracleEnv:
    """The AR-oracle environment with the interface ``drive`` uses (append, retrieve, ...)."""

    def __init__(self, k: int, n: int, rule: str = "first", search: str = "keys",
                 choose: Callable[[list[int]], int] | None = None) -> None:
        check_rule(rule, search)
        if rule == "adversarial" and choose is None:
            raise ValueError("the adversarial rule needs a choice function (which occurrence)")
        self.k, self.n, self.rule, self.search, self.choose = k, n, rule, search, choose
        self.ASK, self.END, self.NONE = k, k + 1, k + 2
        self.tokens: list[int] = []
        self.log: list[str] = []
        self.failures = 0
        self.calls: list[tuple[int, int]] = []          # (query token, answer token)

    @property
    def failed_token(self) -> int:
        return self.NONE

    def append(self, tok: int) -> None:
        self.tokens.append(int(tok))

    def extend(self, toks) -> None:
        for t in toks:
            self.append(t)

    def pending_query(self, start: int, end: int) -> list[int] | None:
        return pending_query(self.tokens, start, end)

    def retrieve(self, query: Sequence[int]) -> Result:
        """The oracle: one data token in, the token after one of its occurrences out."""
        if len(query) != 1 or not 0 <= query[0] < self.k:
            self.failures += 1
            self.log.append(f"malformed AR query {list(query)} (one data token expected)")
            return Result(self.NONE, False, "malformed query")
        data = self.tokens[:self.n]
        occ = occurrences(data, query[0], self.search)
        if not occ:
            self.calls.append((query[0], self.NONE))
            return Result(self.NONE, True)
        j = occ[0] if self.rule == "first" else occ[-1] if self.rule == "last" else \
            self.choose(occ)
        ans = data[j + 1]
        self.calls.append((query[0], ans))
        return Result(ans, True)


class ARRecall(BitBoundedRNN):
    """Keep the last token read; after the prompt: [ASK] last [END] <oracle> -> halt."""

    FIELDS = ("pc", "last", "ans")

    def __init__(self, k: int) -> None:
        w = max(1, math.ceil(math.log2(k + 3)))
        self.k, self.ASK, self.END = k, k, k + 1
        self.widths = {"pc": 3, "last": w, "ans": w}

    def init(self) -> tuple[int, ...]:
        return (0, 0, 0)

    def read(self, s: tuple[int, ...], tok: int) -> tuple[int, ...]:
        pc, last, ans = s
        if pc == 0:
            return (1, last, ans) if tok == self.ASK else (0, tok, ans)
        if pc in (1, 2):
            return (pc + 1, last, ans)
        if pc == 3:
            return (4, last, tok)                 # the oracle's answer
        return s

    def emit(self, s: tuple[int, ...]) -> int:
        return (self.ASK, s[1], self.END, RETRIEVE, HALT)[s[0]]


@dataclass
class ARRecallReport:
    n: int
    alphabet: int
    rule: str
    search: str
    inputs: int
    runs: int                       # inputs x adversary choices
    failures: int
    declared_bits: int
    peak_bits: int
    oracle_calls: int
    example_failure: dict | None
    seconds: float

    @property
    def verified(self) -> bool:
        return self.failures == 0


def verify_ar_recall(n: int, k: int | None = None, rule: str = "first", search: str = "keys"
                     ) -> ARRecallReport:
    """Run :class:`ARRecall` with the oracle on every AR input of length n (every ordered key
    choice, every value vector, every queried key); adversarial: under every occurrence the
    adversary may pick. Exhaustive: tiny n only."""
    import time

    from rnngap.verify.bounds.prefix_classes import ar_instances
    check_rule(rule, search)
    if n < 2 or n % 2:
        raise ValueError(f"AR needs an even n >= 2, got {n}")
    k = n + 1 if k is None else k
    if k < n // 2:
        raise ValueError(f"AR needs alphabet >= n/2 = {n // 2}, got {k}")
    size = math.perm(k, n // 2) * k ** (n // 2) * (n // 2)
    if size > 2_000_000:
        raise ValueError(f"{size:,} AR inputs at n={n}, alphabet {k}: too many to enumerate "
                         "(limit 2,000,000); use a smaller --n")
    t0 = time.perf_counter()
    m = ARRecall(k)
    runs = fails = calls = peak = 0
    example = None
    for word, want in ar_instances(n // 2, k):
        data = word[:n]
        n_choices = len(occurrences(data, word[-1], search)) if rule == "adversarial" else 1
        for c in range(max(1, n_choices)):
            env = AROracleEnv(k, n, rule, search,
                              choose=(lambda occ, c=c: occ[c]) if rule == "adversarial" else None)
            state, tr = drive(m, env, list(word), m.ASK, m.END)
            runs += 1
            calls += tr.retrievals
            peak = max(peak, tr.peak_bits)
            got = state[2]
            if got != want:
                fails += 1
                if example is None:
                    example = {"data": list(data), "query": word[-1], "expected": want,
                               "oracle_answer": None if got == env.NONE else got,
                               "calls": env.calls}
    return ARRecallReport(n, k, rule, search, size, runs, fails, m.declared_bits, peak, calls,
                          example, round(time.perf_counter() - t0, 2))
