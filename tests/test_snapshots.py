"""Verdict snapshots: the JSON of four reference commands must not change (issue 13's guard for
refactors). Timing keys (``seconds*``) are dropped; floats are compared to a relative 1e-9, so a
different BLAS or CPU cannot fail the test while any change of a verdict, count, bound or
certificate statement does.

Refresh after an INTENDED change (and say why in the commit):
    RNNGAP_UPDATE_SNAPSHOTS=1 pytest tests/test_snapshots.py
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnngap.cli import main

HERE = Path(__file__).resolve().parent / "snapshots"
COMMANDS = {
    "verify-all-n64": ["verify", "all", "--n", "64", "--json"],
    "verify-all-n64-hybrid": ["verify", "all", "--n", "64", "--model", "hybrid", "--json"],
    "bound-state-bits-512": ["bound", "--state-bits", "512", "--json"],
    "verify-istree-all-n4": ["verify", "istree", "--method", "all", "--n", "4", "--json"],
}


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if not k.startswith("seconds")}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _diff(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one" for k in set(a) ^ set(b)]
        for k in sorted(set(a) & set(b)):
            out += _diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (u, v) in enumerate(zip(a, b)) for d in _diff(u, v, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and (
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300) or (math.isnan(a) and math.isnan(b))):
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_verdicts_match_snapshot(name: str) -> None:
    r = CliRunner().invoke(main, COMMANDS[name])
    assert r.exit_code == 0, r.output
    got = _strip(json.loads(r.stdout))
    path = HERE / f"{name}.json"
    if os.environ.get("RNNGAP_UPDATE_SNAPSHOTS") == "1":
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(path.read_text())
    diffs = _diff(want, got)
    assert not diffs, f"{len(diffs)} differences, first: {diffs[:5]}"


def test_diff_sees_changes() -> None:
    """The comparison itself: timing-free, tolerant to 1e-9 relative, strict otherwise."""
    a = {"verified": True, "x": 1.0, "rows": [1, 2], "seconds": 3.0}
    assert _diff(_strip(a), _strip({**a, "seconds": 9.0})) == []
    assert _diff(a, {**a, "x": 1.0 + 1e-12}) == []
    assert _diff(a, {**a, "x": 1.001}) and _diff(a, {**a, "verified": False})
    assert _diff(a, {**a, "rows": [1, 2, 3]}) and _diff(a, {**a, "new": 1})
