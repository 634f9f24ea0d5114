"""The in-context retrieval environment (BRIEF.md, "In-context RAG"; claim C5).

A context is a growing list of token ids.  A model writes ``[STARTSEARCH] q_1 .. q_k
[ENDSEARCH]``; the environment turns the query tokens into a regular expression (a *dialect*,
below), searches the whole current context with it and appends one token: the match or the
failure token.  Queries come from models, so they are untrusted.

Match semantics (exact; tests check them):

* **Rendering.** The context is searched as ASCII text: a space, then every token's name
  followed by one space (``" [BOS] 3 - 1 [EOS] 0 [STARTSEARCH] 0 ~ [ENDSEARCH] "``).  Names are
  non-empty, distinct and contain no whitespace, so a token boundary is exactly a space.  The
  text covers *every* token so far: prompt, chain of thought and the query itself with its
  ``[ENDSEARCH]``.
* **Which match.** The leftmost match, ties broken leftmost-first as in Perl (RE2's default,
  non-POSIX semantics): among matches starting at the leftmost possible offset, the one the
  regex prefers (lazy ``*?`` shortest, greedy ``*`` longest, alternatives left to right).
  The *last* occurrence of ``X`` is the leftmost-first match of ``^(?s:.*)X`` (greedy prefix).
* **Which token.** If the pattern has capture groups: the first group (by number) that
  participated in the match.  Otherwise: the last token of the whole match (one trailing
  space after it is allowed).  The chosen span
  must be exactly one whole token (from just after a space to just before the next space);
  the answer is that token.
* **Failure.** No match, a span that is not one whole token, a malformed pattern, a pattern
  longer than ``max_pattern_chars``, a context longer than ``max_context_chars``, a pattern
  whose compiled program would exceed ``max_mem``, or a query the dialect rejects: the answer
  is the failure token, and the reason is appended to :attr:`RetrievalEnv.log` (and logged at
  INFO level).  Nothing raises and nothing hangs: RE2 runs in time linear in the text.

Dialects.  Vocabularies like the official IsTree one have no regex metacharacters, so a query
is a short token string that a dialect compiles into a pattern; :class:`IsTreeDialect` is the
official one (``v ~``: v's parent record, ``v -``: v's first neighbour, ``v - p``: the neighbour
after ``p``).  :meth:`RetrievalEnv.search` takes a raw pattern directly.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import re2

from rnngap.tasks import istree as T

logger = logging.getLogger(__name__)

_CACHE: dict[tuple[str, int], object] = {}
"""Compiled patterns shared by all environments (FIFO-bounded by ``Limits.cache_size``)."""

_NAMES: dict[int, tuple[Sequence[str], list[bytes]]] = {}


def _encoded_names(names: Sequence[str]) -> list[bytes]:
    """Validate and encode a vocabulary once per list object (vocabularies can be large)."""
    hit = _NAMES.get(id(names))
    if hit is not None and hit[0] is names:
        return hit[1]
    if len(set(names)) != len(names):
        raise ValueError("token names must be distinct")
    for nm in names:
        if not nm or not nm.isascii() or any(c.isspace() for c in nm):
            raise ValueError(f"bad token name {nm!r}: need non-empty ASCII, no whitespace")
    out = [nm.encode() for nm in names]
    if isinstance(names, list):  # only lists are cached (kept alive by the cache entry)
        if len(_NAMES) > 256:
            _NAMES.clear()
        _NAMES[id(names)] = (names, out)
    return out


Dialect = Callable[[Sequence[int]], str]
"""Query tokens -> regex pattern; raises ``ValueError`` (with the reason) for a bad query."""


@dataclass(frozen=True)
class Limits:
    """Caps on untrusted input (defaults are generous for n = 4096 IsTree contexts)."""

    max_pattern_chars: int = 4096
    max_context_chars: int = 1 << 26
    max_query_tokens: int = 64
    max_mem: int = 32 << 20
    cache_size: int = 4096


@dataclass(frozen=True)
class Result:
    """One retrieval: the appended token, and why it failed (None on success)."""

    token: int
    ok: bool
    reason: str | None = None
    pattern: str | None = None


class RetrievalEnv:
    """A context plus a safe regex retriever (see the module docstring for exact semantics).

    Args:
        names: token id -> name used in the rendering (distinct, no whitespace, ASCII).
        failed: the failure token id.
        dialect: compiles query tokens into a pattern (needed for :meth:`retrieve`).
        limits: caps on patterns, context and RE2 memory.
    """

    def __init__(self, names: Sequence[str], failed: int, dialect: Dialect | None = None,
                 limits: Limits = Limits()):
        self._names = _encoded_names(names)
        self._failed = failed
        self._dialect = dialect
        self.limits = limits
        self.tokens: list[int] = []
        self._text = bytearray(b" ")
        self._starts: list[int] = []
        self.log: list[str] = []
        self.searches = 0
        self.failures = 0

    # -- the context -------------------------------------------------------------------------
    def append(self, tok: int) -> None:
        """Append one token to the context."""
        self._starts.append(len(self._text))
        self._text += self._names[tok] + b" "
        self.tokens.append(tok)

    def extend(self, toks: Iterable[int]) -> None:
        """Append tokens in order."""
        for t in toks:
            self.append(int(t))

    @property
    def failed_token(self) -> int:
        """The token appended when a retrieval fails."""
        return self._failed

    @property
    def text(self) -> str:
        """The rendering the patterns are matched against."""
        return self._text.decode()

    # -- searching ---------------------------------------------------------------------------
    def _fail(self, reason: str, pattern: str | None) -> Result:
        self.failures += 1
        self.log.append(reason)
        logger.info("retrieval failed: %s", reason)
        return Result(self._failed, False, reason, pattern)

    def _compile(self, pattern: str) -> object:
        key = (pattern, self.limits.max_mem)
        prog = _CACHE.get(key)
        if prog is None:
            opts = re2.Options()
            opts.max_mem = self.limits.max_mem
            opts.log_errors = False
            prog = re2.compile(pattern.encode(), opts)
            if len(_CACHE) >= self.limits.cache_size:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = prog
        return prog

    def search(self, pattern: str) -> Result:
        """Search the whole context with a raw pattern; never raises for a bad pattern."""
        self.searches += 1
        if not isinstance(pattern, str):
            return self._fail("pattern is not a string", None)
        if len(pattern) > self.limits.max_pattern_chars:
            return self._fail(f"pattern longer than {self.limits.max_pattern_chars} chars",
                              pattern[:80])
        if not pattern.isascii():
            return self._fail("pattern is not ASCII", pattern[:80])
        if len(self._text) > self.limits.max_context_chars:
            return self._fail(f"context longer than {self.limits.max_context_chars} chars",
                              pattern)
        try:
            prog = self._compile(pattern)
        except (re2.error, ValueError, TypeError, OverflowError) as err:  # malformed/too large
            return self._fail(f"malformed pattern: {err}", pattern)
        m = prog.search(self._text)
        if m is None:
            return self._fail("no match", pattern)
        span = None
        for g in range(1, prog.groups + 1):
            if m.start(g) >= 0:
                span = m.span(g)
                break
        if span is None:
            if prog.groups:
                return self._fail("no capture group participated", pattern)
            end = m.end()
            if end > m.start() and self._text[end - 1] == 32:  # a trailing space is allowed
                end -= 1
            k = bisect.bisect_right(self._starts, end - 1) - 1
            span = (self._starts[k], end) if k >= 0 else (end, end)
        return self._token_at(span, pattern)

    def _token_at(self, span: tuple[int, int], pattern: str) -> Result:
        start, end = span
        k = bisect.bisect_left(self._starts, start)
        if k >= len(self._starts) or self._starts[k] != start:
            return self._fail("matched span does not start at a token", pattern)
        tok = self.tokens[k]
        if end != start + len(self._names[tok]):
            return self._fail("matched span is not exactly one token", pattern)
        return Result(tok, True, None, pattern)

    def retrieve(self, query: Sequence[int]) -> Result:
        """Compile ``query`` with the dialect and search; a rejected query is a failure."""
        if self._dialect is None:
            raise RuntimeError("this environment has no query dialect")
        if len(query) > self.limits.max_query_tokens:
            self.searches += 1
            return self._fail(f"query longer than {self.limits.max_query_tokens} tokens", None)
        try:
            pattern = self._dialect(query)
        except ValueError as err:
            self.searches += 1
            return self._fail(f"bad query: {err}", None)
        return self.search(pattern)

    def pending_query(self, start: int, end: int) -> list[int] | None:
        """The tokens between the last ``start`` token and a final ``end`` token, if any."""
        return pending_query(self.tokens, start, end)


def pending_query(tokens: list[int], start: int, end: int) -> list[int] | None:
    """The tokens between the last ``start`` and a final ``end`` token (None if the context
    does not end with a complete query): shared by every retrieval environment."""
    if not tokens or tokens[-1] != end:
        return None
    for i in range(len(tokens) - 2, -1, -1):
        if tokens[i] == start:
            return tokens[i + 1:-1]
        if tokens[i] == end:
            return None
    return None


# -- the official IsTree dialect -------------------------------------------------------------
def istree_names(n: int) -> list[str]:
    """Rendering names of the IsTree vocabulary: the official strings, except ``' '`` ->
    ``[SP]`` and ``'\\n'`` -> ``[NL]`` (whitespace cannot be a name)."""
    names = [T.token_str(t) for t in range(T.vocab_size(n))]
    names[8], names[9] = "[SP]", "[NL]"
    return names


class IsTreeDialect:
    """Compile official IsTree queries (BRIEF.md, retrieval format) into patterns.

    * ``v ~``  -> `` v ~ (\\d+) ``: the vertex after v's parent record ``v ~ p``.  Records are
      written once per vertex; the query text ``v ~ [ENDSEARCH]`` cannot match ``\\d+``.
    * ``v -``  -> `` (?:v - (\\d+)|(\\d+) - v) (?:\\d|\\[EOS\\])``: the first edge containing v
      whose next token is a vertex or ``[EOS]``, i.e. an edge of the prompt (in the chain of
      thought ``-`` is always followed by a vertex and then ``[ENDSEARCH]``, or by
      ``[ENDSEARCH]``).  The prompt comes first, so the leftmost match is v's first neighbour.
    * ``v - p`` -> `` (?:v - p|p - v)(?: \\d+ - \\d+)*? (?:v - (\\d+)|(\\d+) - v) ``: from the edge
      {v, p} on, whole edges are skipped lazily up to the next edge containing v.  Inside the
      prompt ``-`` sits at every third token, so every ``a - b`` window is an edge; copies of
      ``v - p`` in the chain of thought are followed by ``[ENDSEARCH]`` and cannot extend.
      Hence the answer is the neighbour after p in prompt order, or a failure.
    """

    def __init__(self, n: int):
        self.n = n

    def _vertex(self, tok: int) -> int:
        v = T.token_vertex(tok)
        if v is None or v >= self.n:
            raise ValueError(f"{T.token_str(tok)!r} is not a vertex 0..{self.n - 1}")
        return v

    def __call__(self, query: Sequence[int]) -> str:
        q = [int(t) for t in query]
        if len(q) == 2 and q[1] == T.TILDE:
            return rf" {self._vertex(q[0])} ~ (\d+) "
        if len(q) == 2 and q[1] == T.DASH:
            v = self._vertex(q[0])
            return rf" (?:{v} - (\d+)|(\d+) - {v}) (?:\d|\[EOS\])"
        if len(q) == 3 and q[1] == T.DASH:
            v, p = self._vertex(q[0]), self._vertex(q[2])
            return rf" (?:{v} - {p}|{p} - {v})(?: \d+ - \d+)*? (?:{v} - (\d+)|(\d+) - {v}) "
        raise ValueError("an IsTree query is 'v ~', 'v -' or 'v - p'")


def istree_env(n: int, limits: Limits = Limits()) -> RetrievalEnv:
    """A retrieval environment over the official IsTree vocabulary for ``n`` vertices."""
    return RetrievalEnv(istree_names(n), T.FAILED, IsTreeDialect(n), limits)
