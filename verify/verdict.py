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
