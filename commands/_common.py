"""Helpers shared by the click commands: JSON output, parameter checks, exit codes."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click


def positive_int(name: str, value: int | None, minimum: int = 1) -> int | None:
    """Reject integers below ``minimum`` with a usage error (exit 2)."""
    if value is not None and value < minimum:
        raise click.BadParameter(f"must be >= {minimum}, got {value}", param_hint=f"--{name}")
    return value


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _finite(obj: Any) -> Any:
    """Replace non-finite floats (not valid JSON) by the strings "inf", "-inf", "nan"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dump_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout (numpy arrays and dataclasses allowed;
    non-finite floats become strings, so the output is always valid JSON)."""
    click.echo(json.dumps(_finite(obj), indent=2, default=_default, allow_nan=False))


def fail(message: str, code: int = 1) -> None:
    """Print one line on stderr and exit with ``code`` (1: a check failed; 2: usage)."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Render ``rows`` as a fixed-width text table with the given column order."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)
