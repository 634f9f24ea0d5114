"""The claims ledger: each claim of the paper, the rnngap commands that check it, and a runner.

The ledger lives in ``claims.json`` beside this module. A check is a CLI invocation (argument
list for ``rnngap``) with a quick variant and an expectation:

* ``exit_code``: the required exit status;
* ``all_true``: a key that must be ``true`` in the JSON output (in every object of a list);
* ``all_have``: keys every JSON object must carry;
* ``equals``: key -> value pairs every JSON object must match.

``{tmpdir}`` in an argument is replaced by a fresh temporary directory (removed afterwards).

A claim's status is computed, never written down: ``verified`` when it has checks, all pass and
nothing of it is listed as unchecked; ``partially verified`` when its checks pass but part of it
is unchecked (the reason is printed); ``FAILED`` when a check fails; ``not checked`` when it has no
checks (the reason is printed).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass
class Check:
    what: str
    command: list[str]
    quick: list[str]
    expect: dict[str, Any]


@dataclass
class Claim:
    claim: str
    paper_ref: str
    paraphrase: str
    checks: list[Check]
    unchecked: str | None


def load_ledger() -> list[Claim]:
    """Parse ``claims.json`` into Claims (raises ValueError on a malformed ledger)."""
    raw = json.loads(resources.files("rnngap.paper_refs").joinpath("claims.json").read_text())
    out = []
    for c in raw["claims"]:
        checks = [Check(k["what"], list(k["command"]), list(k.get("quick", k["command"])),
                        dict(k.get("expect", {"exit_code": 0}))) for k in c["checks"]]
        out.append(Claim(c["claim"], c["paper_ref"], c["paraphrase"], checks, c.get("unchecked")))
    return out


def judge(expect: dict[str, Any], exit_code: int, stdout: str) -> str | None:
    """None when the run meets ``expect``, else a one-line reason."""
    want = expect.get("exit_code", 0)
    if exit_code != want:
        return f"exit code {exit_code}, expected {want}"
    needs_json = any(k in expect for k in ("all_true", "all_have", "all_int", "equals"))
    if not needs_json:
        return None
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return "output is not JSON"
    objs = data if isinstance(data, list) else [data]
    if not objs:
        return "empty JSON list"
    for o in objs:
        key = expect.get("all_true")
        if key and o.get(key) is not True:
            return f"{key} is {o.get(key)!r} for {o.get('task', '?')}"
        for k in expect.get("all_have", []):
            if k not in o:
                return f"missing key {k}"
        for k in expect.get("all_int", []):
            if isinstance(o.get(k), bool) or not isinstance(o.get(k), int):
                return f"{k} is {o.get(k)!r} for {o.get('task', '?')}, expected an integer"
        for k, v in expect.get("equals", {}).items():
            if o.get(k) != v:
                return f"{k} = {o.get(k)!r}, expected {v!r}"
    return None


def run_check(check: Check, quick: bool, cli) -> dict:
    """Run one check in-process through ``cli`` (the ``rnngap`` click group, passed in by the
    claims command so that nothing here imports ``rnngap.cli``) and judge it."""
    from click.testing import CliRunner

    args = check.quick if quick else check.command
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rnngap-claims-") as tmp:
        res = CliRunner().invoke(cli, [a.replace("{tmpdir}", tmp) for a in args])
    if res.exit_code == 130:   # Ctrl-C inside the check: the whole claims run stops, not FAILED
        raise KeyboardInterrupt
    reason = judge(check.expect, res.exit_code, res.stdout)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        reason = f"crashed: {type(res.exception).__name__}: {res.exception}"
    return {"command": "rnngap " + " ".join(args), "what": check.what,
            "passed": reason is None, "reason": reason,
            "seconds": round(time.perf_counter() - t0, 2)}


def evaluate(claim: Claim, quick: bool, cli, progress=None) -> dict:
    """Run a claim's checks and derive its status (see the module docstring)."""
    runs = []
    for check in claim.checks:
        runs.append(run_check(check, quick, cli))
        if progress:
            progress(claim.claim, runs[-1])
    if not runs:
        status = "not checked"
    elif not all(r["passed"] for r in runs):
        status = "FAILED"
    elif claim.unchecked:
        status = "partially verified"
    else:
        status = "verified"
    evidence = "; ".join(f"{r['command']}: {'passed' if r['passed'] else 'FAILED ' + r['reason']}"
                         f" ({r['seconds']} s)" for r in runs)
    if claim.unchecked:
        evidence = (evidence + "; " if evidence else "") + "unchecked: " + claim.unchecked
    return {"claim": claim.claim, "paper_ref": claim.paper_ref, "status": status,
            "evidence": evidence, "command": [r["command"] for r in runs],
            "paraphrase": claim.paraphrase, "runs": runs}
