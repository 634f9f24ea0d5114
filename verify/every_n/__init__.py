"""Range verdicts: a construction proved for EVERY n in [n_min, n_max] at once (issue 17).

Theorem 4.6 of Wen, Dang, Lyu (ICLR 2025) says ONE constant-size model solves a retrieval task
for every n. ``rnngap verify TASK --n N`` proves the construction for one n; this package proves
it for a whole range of n in one run, without enumerating the n one by one.

What "verified for every n in [a, b]" means (the README repeats it):

* The range is split into **blocks**: maximal runs of consecutive n on which every n-dependent
  scalar of the construction is constant -- its claimed precision p(n) and, e.g., the inverse
  temperature beta(n). The scalars are computed by the construction's OWN functions (the ones
  its builder calls) at every n of the range, so the blocks are exact, not assumed.
* On a block [n_lo, n_hi] the construction's weights are formulas in n, the positions j and the
  token values t with those constant scalars. Each lemma of the block quantifies over every n in
  the block (and every position, token, query of that n): z3 over integers with n a bounded
  variable, exact-rational inequalities whose terms are nondecreasing in n evaluated at n_hi
  (written out in the lemma), sympy identities in a symbol j, or an enumeration over a bounded
  set that covers every n of the block at once (e.g. every count c <= n_hi). A block is
  VERIFIED only when every lemma is proved; the range only when every block is.
* The builder is code, not a formula: it is run at both ends of every block, where its
  precision and scalars must be the block's and its weights exactly the formulas the lemmas
  are about (each prover's ``builder_scalars``); between the ends the builder code is trusted to
  compute the same formulas (it is straight-line code in which n sets table sizes and the
  scalars). At sampled n of each block today's per-n verifier (the reference, which proves that
  n on its own) must agree. Blocks whose n exceed ``cross_check_max_n`` are proved and their
  builds checked but not run through the per-n verifier; the verdict says so in words.

A failing block names the smallest n where its proof breaks (bisection over sub-blocks: a
sub-block's proof is the block's proof with a smaller n_hi) and runs the per-n verifier at that
n, whose witness search may find an explicit wrong input.

A prover (one per task and model) provides: ``key(n)`` -> (p, scalars) as the construction
computes them; ``valid(n)``; ``n_limit`` (largest n its lemmas cover); ``prove(block)`` -> lemma
records; ``per_n(n, samples, seed)`` -> today's verdict; ``builder_scalars(n)`` -> (p, scalars)
of the built construction. See ``verify.every_n.index`` for the pattern.
"""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol


def provers() -> dict[tuple[str, str], str]:
    """(task, model) -> "module:Class" of its range prover, from the task cards
    (``tasks.registry.TaskCard.range_prover`` / ``hybrid_range_prover``)."""
    from rnngap.tasks.registry import CARDS

    out = {}
    for name, card in CARDS.items():
        for model, target in (("transformer", card.range_prover),
                              ("hybrid", card.hybrid_range_prover)):
            if target:
                out[(name, model)] = target
    return out


#: the largest precision the p-bit machine is emulated at (float64 accumulation, p <= 52)
MAX_P = 52
#: cross-check n above this only when asked (the per-n verifier takes ~25 s at n = 2^20)
CROSS_CHECK_MAX_N = 1 << 12


@dataclass(frozen=True)
class Block:
    """A maximal run [n_lo, n_hi] of n with the same precision and scalars."""

    n_lo: int
    n_hi: int
    precision_bits: int
    scalars: dict = field(default_factory=dict)


class Prover(Protocol):
    task: str
    model: str
    params: dict
    n_min: int
    n_limit: int

    def key(self, n: int) -> tuple[int, dict]: ...
    def valid(self, n: int) -> bool: ...
    def prove(self, block: Block) -> list[dict]: ...
    def per_n(self, n: int, samples: int, seed: int) -> dict: ...
    def builder_scalars(self, n: int) -> tuple[int, dict]: ...


class RangeError(ValueError):
    """A range that cannot be verified as asked (bad bounds, beyond what the lemmas cover)."""


def prover_for(task: str, model: str = "transformer", **params: Any) -> Prover:
    """The range prover of (task, model); RangeError naming the supported pairs otherwise."""
    table = provers()
    target = table.get((task, model))
    if target is None:
        have = ", ".join(f"{t} ({m})" for t, m in table)
        raise RangeError(f"no range verification for {task} ({model}) yet; supported: {have}")
    module, attr = target.split(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ModuleNotFoundError, AttributeError) as e:
        if isinstance(e, ModuleNotFoundError) and e.name != module:
            raise
        raise RangeError(f"range verification for {task} ({model}) is not built yet") from None
    return factory(**params)


def lemma(name: str, statement: str, method: str, ok: bool, t0: float, **extra: Any) -> dict:
    """One lemma record of a block (the same keys as a per-n certificate)."""
    return {"name": name, "statement": statement, "method": method,
            "result": "proved" if ok else "FAILED",
            "seconds": round(time.perf_counter() - t0, 4), **extra}


def blocks(prover: Prover, n_min: int, n_max: int) -> list[Block]:
    """Maximal runs of VALID n in [n_min, n_max] with equal ``prover.key(n)``, computed at every
    n (one call of the construction's own scalar functions per n)."""
    out: list[Block] = []
    cur: tuple | None = None
    lo = last = None
    for n in range(n_min, n_max + 1):
        if not prover.valid(n):
            continue
        p, sc = prover.key(n)
        k = (p, tuple(sorted(sc.items())))
        if k != cur:
            if cur is not None:
                out.append(Block(lo, last, cur[0], dict(cur[1])))
            cur, lo = k, n
        last = n
    if cur is not None:
        out.append(Block(lo, last, cur[0], dict(cur[1])))
    return out


def _proved(lemmas: list[dict]) -> bool:
    return all(x["result"] == "proved" for x in lemmas)


def first_failing(prover: Prover, block: Block) -> int:
    """Smallest n in a failing block whose sub-block [n_lo, n] already fails (bisection: the
    lemmas of [n_lo, m] are those of the block with n_hi = m, weaker as m grows)."""
    lo, hi = block.n_lo, block.n_hi      # invariant: [n_lo, hi] fails
    if not _proved(prover.prove(Block(block.n_lo, lo, block.precision_bits, block.scalars))):
        return lo
    while hi - lo > 1:                   # [n_lo, lo] proves
        mid = (lo + hi) // 2
        if _proved(prover.prove(Block(block.n_lo, mid, block.precision_bits, block.scalars))):
            lo = mid
        else:
            hi = mid
    while not prover.valid(hi):          # the failing sub-block's largest valid n
        hi -= 1
    return hi


def _sample_ns(block: Block, prover: Prover, k: int, rng: random.Random) -> list[int]:
    """Both ends of the block and (k >= 3) random valid interior n."""
    ns = [block.n_lo, block.n_hi]
    tries = 0
    while len(set(ns)) < k and tries < 50 and block.n_hi - block.n_lo > 1:
        m = rng.randint(block.n_lo + 1, block.n_hi - 1)
        tries += 1
        if prover.valid(m):
            ns.append(m)
    return sorted(set(ns))


def builder_check(prover: Prover, block: Block, n: int) -> dict:
    """The builder run at n: its precision and scalars must be the block's and its weights the
    formulas the lemmas are about (each prover's ``builder_scalars`` adds an entry when not)."""
    t0 = time.perf_counter()
    p, sc = prover.builder_scalars(n)
    ok = p == block.precision_bits and sc == block.scalars
    out = {"n": n, "matches": ok, "seconds": round(time.perf_counter() - t0, 3)}
    if not ok:
        out["built"] = {"precision_bits": p, "scalars": sc}
    return out


def cross_check(prover: Prover, block: Block, n: int, proved: bool, samples: int,
                seed: int) -> dict:
    """Today's per-n verifier at n, and the builder's scalars against the block's."""
    t0 = time.perf_counter()
    p, sc = prover.builder_scalars(n)
    same = p == block.precision_bits and sc == block.scalars
    v = prover.per_n(n, samples, seed)
    agrees = same and (bool(v["verified"]) or not proved)
    return {"n": n, "per_n_verified": bool(v["verified"]), "builder_scalars_match": same,
            "agrees": agrees, "per_n_failure": v.get("failure"),
            "per_n_witness": v.get("witness"), "seconds": round(time.perf_counter() - t0, 3)}


def verify_range(prover: Prover, n_min: int, n_max: int, cross_checks: int = 3,
                 cross_check_max_n: int = CROSS_CHECK_MAX_N, samples: int = 8, seed: int = 0,
                 progress: Callable[[Iterator], Iterator] | None = None) -> dict:
    """The range verdict (keys: task, model, n_min, n_max, verified, blocks, first_failing_n,
    seconds, ...). RangeError for a range the prover cannot cover."""
    t0 = time.perf_counter()
    if n_min > n_max:
        raise RangeError(f"--n-min {n_min} is larger than --n-max {n_max}")
    if n_min < prover.n_min:
        raise RangeError(f"{prover.task} ({prover.model}): n must be >= {prover.n_min}, "
                         f"got --n-min {n_min}")
    if n_max > prover.n_limit:
        raise RangeError(
            f"{prover.task} ({prover.model}): --n-max {n_max} is beyond n = {prover.n_limit}, "
            f"the largest n whose claimed precision p(n) <= {MAX_P} bits can be emulated "
            "(float64 accumulation) and whose lemmas hold as stated")
    bl = blocks(prover, n_min, n_max)
    if not bl:
        raise RangeError(f"no valid n in [{n_min}, {n_max}] for {prover.task}")
    t_blocks = time.perf_counter() - t0
    rng = random.Random(seed)
    rows, t_proof, t_cross = [], 0.0, 0.0
    it: Iterator = iter(bl) if progress is None else progress(iter(bl))
    for b in it:
        t1 = time.perf_counter()
        lem = prover.prove(b)
        ok = _proved(lem)
        row = {"n_lo": b.n_lo, "n_hi": b.n_hi, "precision_bits": b.precision_bits,
               "scalars": b.scalars, "verified": ok, "lemmas": lem, "first_failing_n": None}
        if not ok:
            row["first_failing_n"] = first_failing(prover, b)
        t_proof += time.perf_counter() - t1
        t2 = time.perf_counter()
        row["builder_checks"] = [builder_check(prover, b, n) for n in sorted({b.n_lo, b.n_hi})]
        ns = [n for n in _sample_ns(b, prover, cross_checks, rng)] if cross_checks else []
        row["cross_checks"] = [cross_check(prover, b, n, ok, samples, seed)
                               for n in ns if n <= cross_check_max_n]
        row["cross_checks_skipped"] = [n for n in ns if n > cross_check_max_n]
        f = row["first_failing_n"]
        if not ok and f is not None and f <= cross_check_max_n:
            v = prover.per_n(f, samples, seed)
            row["at_first_failing_n"] = {"per_n_verified": bool(v["verified"]),
                                         "failure": v.get("failure"),
                                         "witness": v.get("witness")}
        elif not ok and f is not None:
            row["at_first_failing_n"] = {"per_n_verified": None, "failure": None,
                                         "witness": None, "note": f"per-n verifier not run at "
                                         f"n = {f} (above --cross-check-max-n "
                                         f"{cross_check_max_n})"}
        t_cross += time.perf_counter() - t2
        rows.append(row)
    failing = [r for r in rows if not r["verified"]]
    disagree = [(r, c) for r in rows for c in r["cross_checks"] if not c["agrees"]]
    unbuilt = [(r, c) for r in rows for c in r["builder_checks"] if not c["matches"]]
    first = min((r["first_failing_n"] for r in failing), default=None)
    failure = None
    if failing:
        r = min(failing, key=lambda r: r["first_failing_n"])
        bad = [x["name"] for x in r["lemmas"] if x["result"] != "proved"]
        failure = (f"block [{r['n_lo']}, {r['n_hi']}] (p = {r['precision_bits']}): lemma(s) "
                   f"{', '.join(bad)} not proved; the proof first breaks at n = {first}")
    elif unbuilt:
        r, c = unbuilt[0]
        failure = (f"the builder at n = {c['n']} (block [{r['n_lo']}, {r['n_hi']}]) does not "
                   f"build the construction the lemmas are about: {c['built']}")
    elif disagree:
        r, c = disagree[0]
        failure = (f"cross-check disagrees at n = {c['n']} in block [{r['n_lo']}, {r['n_hi']}]: "
                   + ("the builder's scalars differ from the block's" if not
                      c["builder_scalars_match"] else f"the per-n verifier fails: "
                      f"{c['per_n_failure']}"))
    checked = sum(1 for r in rows if r["cross_checks"])
    skipped = [r for r in rows if not r["cross_checks"]]
    note = (f"every n in [{n_min}, {n_max}]"
            + (" (even n only: the task needs even n)" if not all(
                prover.valid(n) for n in (n_min, n_min + 1)) else "")
            + f" at its claimed p(n): {len(rows)} blocks of constant p(n) and scalars, each "
            "proved by lemmas quantified over every n of the block about the construction's "
            "formulas; the builder was run at both ends of every block and built exactly those "
            "formulas (between the ends the builder code is trusted to do the same); per-n "
            "verifier run at "
            + (f"{sum(len(r['cross_checks']) for r in rows)} n in {checked} of {len(rows)} "
               "blocks" if cross_checks else "no n (cross-checks off)")
            + (f"; blocks above n = {cross_check_max_n} ({len(skipped)}) proved but not "
               "cross-checked (raise --cross-check-max-n)" if cross_checks and skipped else ""))
    return {"task": prover.task, "model": prover.model, "params": prover.params,
            "n_min": n_min, "n_max": n_max, "verified": failure is None, "blocks": rows,
            "first_failing_n": first, "failure": failure, "meaning": note,
            "block_seconds": round(t_blocks, 3), "proof_seconds": round(t_proof, 3),
            "cross_check_seconds": round(t_cross, 3),
            "seconds": round(time.perf_counter() - t0, 3)}


def exact_exp_upper(x) -> Fraction:
    """A rational upper bound of exp(x) for a rational x (mpmath interval arithmetic)."""
    import mpmath

    iv = mpmath.iv
    saved, iv.prec = iv.prec, 96
    try:
        xf = Fraction(x)
        v = iv.exp(iv.mpf(xf.numerator) / iv.mpf(xf.denominator))
    finally:
        iv.prec = saved
    hi = mpmath.mpf(v.b)
    m, e = mpmath.frexp(hi)           # hi = m * 2^e with 0.5 <= m < 1 (exactly)
    num = int(mpmath.ldexp(m, 96))
    return Fraction(num + 1) * Fraction(2) ** (int(e) - 96)


def gamma_exact(m: int) -> Fraction:
    """Higham's gamma_m = m u / (1 - m u), u = 2^-53, as an exact rational."""
    u = Fraction(1, 2 ** 53)
    if m * u >= 1:
        raise ValueError(f"gamma_{m} is undefined (m u >= 1)")
    return m * u / (1 - m * u)
