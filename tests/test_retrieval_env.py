"""tasks/retrieval_env.py: exact match semantics, untrusted patterns, the IsTree dialect."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngap.tasks import istree as T
from rnngap.tasks import retrieval_env as R

NAMES = ["a", "b", "c", "[X]", "10", "1", "[F]"]
FAILED = 6


def env_of(tokens: list[int]) -> R.RetrievalEnv:
    env = R.RetrievalEnv(NAMES, FAILED)
    env.extend(tokens)
    return env


def test_rendering_and_leftmost_first():
    env = env_of([0, 1, 0, 2, 4, 5])
    assert env.text == " a b a c 10 1 "
    assert env.search(r" a (\S+) ").token == 1          # leftmost occurrence
    assert env.search(r"^(?s:.*) a (\S+) ").token == 2  # greedy prefix: the last occurrence
    assert env.search(r" a \S+").token == 1             # no group: last token of the match
    assert env.search(r" (?:(x)|(1)) ").token == 5      # first group that participated
    assert env.search(r" (1)").reason == "matched span is not exactly one token"  # in "10"
    assert env.search(r" (1) ").token == 5              # boundaries make it a whole token


def test_failures_are_tokens_with_logged_reasons():
    env = env_of([0, 1, 4])
    cases = {"(": "malformed", r" (a b) ": "exactly one token", r"(0) ": "start at a token",
             " z ": "no match", "a" * 5000: "longer", "é": "ASCII"}
    for pat, why in cases.items():
        r = env.search(pat)
        assert r.token == FAILED and not r.ok and why in r.reason
    assert env.failures == len(cases) and len(env.log) == len(cases)
    assert env.search("(?:a{1000}){1000}").reason.startswith("malformed")  # too big to compile


def test_bad_names_rejected():
    with pytest.raises(ValueError):
        R.RetrievalEnv(["a", "a"], 0)
    with pytest.raises(ValueError):
        R.RetrievalEnv(["a", "b c"], 0)


def test_pathological_patterns_return_promptly():
    env = env_of([0] * 100_000 + [1])
    evil = [r"(a*)*c", r"(?:(?: a)+)+ c", r"(?: a| a a)* c", r"^(?s:.*)(?s:.*)(?s:.*) c",
            r"(x+x+)+y", r"(?: a){0,1000} c"]
    for pat in evil:
        t = time.perf_counter()
        r = env.search(pat)
        assert time.perf_counter() - t < 2.0, pat
        assert r.token == FAILED or r.ok
    # python's backtracking engine would need 2^k steps on this one; RE2 is linear
    assert env.search(r"(?: a| a a)* b").token == 1


@settings(max_examples=80, deadline=None)
@given(toks=st.lists(st.integers(0, 5), min_size=1, max_size=30),
       key=st.integers(0, 5), greedy=st.booleans())
def test_next_token_semantics_match_direct_computation(toks, key, greedy):
    env = env_of(toks)
    name = re.escape(NAMES[key])
    pat = (r"^(?s:.*)" if greedy else "") + rf" {name} (\S+) "
    hits = [i for i in range(len(toks) - 1) if toks[i] == key]
    want = FAILED if not hits else toks[(hits[-1] if greedy else hits[0]) + 1]
    assert env.search(pat).token == want
    # and the same as Python's own (backtracking) regex engine on the same text
    m = re.search(pat, env.text)
    assert (m is None and want == FAILED) or NAMES.index(m.group(1)) == want


def test_pending_query():
    env = R.istree_env(4)
    env.extend([T.BOS, T.EOS, T.S, T.vertex_token(2), T.TILDE, T.E])
    assert env.pending_query(T.S, T.E) == [T.vertex_token(2), T.TILDE]
    env.append(T.FAILED)
    assert env.pending_query(T.S, T.E) is None


def test_istree_dialect_rejects_bad_queries():
    env = R.istree_env(4)
    env.extend(T.prompt_tokens(4, [(1, 0), (2, 1), (3, 2)]))
    for q in ([T.TILDE], [T.vertex_token(4), T.TILDE], [T.vertex_token(1), T.EOS],
              [T.vertex_token(1)] * 70):
        r = env.retrieve(q)
        assert r.token == T.FAILED and ("bad query" in r.reason or "longer" in r.reason)


@pytest.mark.parametrize("family", ["binary", "random"])
def test_istree_dialect_reproduces_every_reference_retrieval(family):
    for n in (4, 7, 33):
        edges, _ = T.sample_graphs(n, 25, family, seed=n)
        for e in edges:
            ex = T.encode(n, e, "retrieval")
            env = R.istree_env(n)
            for i, t in enumerate(ex.tokens.tolist()):
                if ex.retrieved_mask[i]:
                    got = env.retrieve(env.pending_query(T.S, T.E))
                    assert got.token == t, (n, e.tolist(), i)
                env.append(t)


def test_istree_dialect_exhaustive_small():
    n = 4
    for e in T.enumerate_ordered(n):
        ex = T.encode(n, e, "retrieval")
        env = R.istree_env(n)
        for i, t in enumerate(ex.tokens.tolist()):
            if ex.retrieved_mask[i]:
                assert env.retrieve(env.pending_query(T.S, T.E)).token == t
            env.append(t)


def test_context_cap():
    env = R.RetrievalEnv(NAMES, FAILED, limits=R.Limits(max_context_chars=20))
    env.extend([0] * 30)
    r = env.search(r" (a) ")
    assert r.token == FAILED and "context longer" in r.reason
