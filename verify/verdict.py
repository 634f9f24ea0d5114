"""The verdict every verifier returns: one typed schema, two families (stable JSON keys).

:class:`Verdict` is what every verdict says (the task, n, whether it is verified, what was
enumerated, the time). A retrieval construction's verdict (``verify.retrieval``) is a
:class:`ConstructionVerdict`; an IsTree method's (``verify.istree``: the RNN with retrieval, the
hybrids, the Transformer) is an :class:`IsTreeVerdict`. Verifiers may add keys of their own
(``recurrent_state_bits``, ``failure``, ``audit``, ...); the declared ones are always there, and
the key order of the JSON is the order in which a verifier writes them (unchanged by the types).
"""

from __future__ import annotations

from types import UnionType
from typing import TypedDict, Union, get_args, get_origin, get_type_hints

import numpy as np
import torch


class Verdict(TypedDict):
    """The keys of every verdict."""

    task: str
    n: int
    verified: bool
    enumerated: str
    seconds: float


class ConstructionVerdict(Verdict):
    """A retrieval construction proved (or not) on every input at ``precision_bits``."""

    precision_bits: int
    layers: int
    heads: int
    width: int
    params: int
    min_target_attention: float | None
    min_logit_margin: float | None
    certificates: list[dict]


class IsTreeVerdict(Verdict):
    """An IsTree method checked on an enumeration plus samples (``verify istree``)."""

    method: str
    passed: bool
    exhaustive: bool
    inputs_checked: int
    failures: int
    failure_examples: list[dict]
    peak_state_bits: int
    declared_state_bits: int
    max_cot_tokens: int
    retrievals: int
    planned_enumeration: int


KEYS = ("task", "n", "verified", "precision_bits", "layers", "heads", "width", "params",
        "min_target_attention", "min_logit_margin", "enumerated", "certificates", "seconds")
"""The keys of a :class:`ConstructionVerdict`, in the order the verifiers write them."""
ISTREE_KEYS = frozenset(IsTreeVerdict.__required_keys__)
"""The keys every IsTree method's verdict carries (the script interface of verify istree)."""
assert set(KEYS) == ConstructionVerdict.__required_keys__


def problems(verdict: dict, schema: type = Verdict) -> list[str]:
    """What keeps ``verdict`` from being a ``schema`` (a missing key, or a value of another
    type; ``int`` counts as ``float``, ``None`` only where declared); empty when it is one."""
    out = []
    for key, want in get_type_hints(schema).items():
        if key not in verdict:
            out.append(f"missing {key}")
            continue
        v = verdict[key]
        kinds = get_args(want) if get_origin(want) in (Union, UnionType) else (want,)
        kinds = tuple(get_origin(k) or k for k in kinds)
        ok = any(k is type(None) and v is None or k is float and type(v) in (int, float)
                 or k is int and type(v) is int or k not in (int, float, type(None))
                 and isinstance(v, k) for k in kinds)
        if not ok:
            out.append(f"{key}: {type(v).__name__} is not {want}")
    return out


def side_condition(name: str, ok: bool, detail: str = "") -> dict:
    """One checked structural side condition of a lemma (recorded in the verdict)."""
    return {"name": name, "result": "holds" if ok else "FAILS", "detail": detail}


def cross_check(task, model, arith, rows: np.ndarray, label: str, batch: int = 64) -> dict:
    """Run ``rows`` end to end through ``model`` under ``arith`` and compare with the solver."""
    want = task.solve(rows)
    got = np.empty_like(want)
    for s in range(0, rows.shape[0], batch):
        with torch.no_grad():
            got[s:s + batch] = model.predict(torch.from_numpy(rows[s:s + batch]), arith).numpy()
    bad = np.flatnonzero(got != want)
    out = {"inputs": label, "checked": int(rows.shape[0]), "failures": int(bad.size)}
    if bad.size:
        b = int(bad[0])
        out["first_failure"] = {"input": compact_row(rows[b]), "expected": int(want[b]),
                                "got": int(got[b])}
    return out


def compact_row(row: np.ndarray, edge: int = 8) -> str:
    """A row as text, eliding the middle of long rows."""
    r = [int(v) for v in row]
    if len(r) <= 2 * edge + 4:
        return " ".join(map(str, r))
    return " ".join(map(str, r[:edge])) + f" ... ({len(r) - 2 * edge} more) ... " + \
        " ".join(map(str, r[-edge:]))


def first_failure(exact: dict, conds: list[dict], certs: list[dict], p: int,
                  exact_detail: str | None = None, exact_hint: str = "",
                  special: dict[str, str] | None = None) -> str | None:
    """The first reason a proof built from an integer-exactness certificate, side conditions
    and certificates fails at p bits (None when all hold). ``special`` maps a certificate name
    to the message used when that certificate (checked first, in order) fails."""
    bad = [s["name"] for s in conds if s["result"] != "holds"]
    if exact["result"] != "proved":
        return (f"integers not exact at p={p}: {exact_detail or exact['worst']} > 2^{p}"
                + (f" {exact_hint}" if exact_hint else ""))
    if bad:
        return f"side condition(s) fail at p={p}: {', '.join(bad)}"
    for name, message in (special or {}).items():
        if any(c["name"] == name and c["result"] != "proved" for c in certs):
            return message
    if not all(c["result"] == "proved" for c in certs):
        return f"a certificate failed at p={p}: " + ", ".join(
            c["name"] for c in certs if c["result"] != "proved")
    return None


def end_to_end(task, model, arith, samples: int, seed: int, families: np.ndarray | None,
               label: str, exhaustive_limit: int) -> tuple[list[dict], dict | None]:
    """Cross-checks run end to end: every input when there are at most ``exhaustive_limit``,
    ``samples`` uniform samples, and the given adversarial rows. Returns (checks, first wrong)."""
    checks = []
    if task.num_inputs() <= exhaustive_limit:
        every = np.concatenate(list(task.enumerate()))
        checks.append(cross_check(task, model, arith, every, f"{label}: every input "
                                  "(exhaustive)", batch=4096))
    if samples:
        rows, _ = task.sample(samples, seed)
        checks.append(cross_check(task, model, arith, rows, f"{label}: {samples} samples "
                                  f"(seed {seed})", batch=256))
    if families is not None:
        checks.append(cross_check(task, model, arith, families, f"{label}: adversarial "
                                  "families (first 16 rows of each)", batch=512))
    return checks, next((c["first_failure"] for c in checks if "first_failure" in c), None)
