"""The verdict every construction verifier returns (stable JSON keys, see ``KEYS``)."""

from __future__ import annotations

import numpy as np
import torch

KEYS = ("task", "n", "verified", "precision_bits", "layers", "heads", "width", "params",
        "min_target_attention", "min_logit_margin", "enumerated", "certificates", "seconds")


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
