"""Helpers shared by the click commands: JSON output, parameter checks, exit codes, output
directories that are never overwritten by accident, and the ``--max-memory`` option.

Exit codes mean one thing each (README, "Exit codes"): 0 ok, 1 a check failed (verification,
a claim, a fooling search), 2 a user error (bad option, file or request; one line on stderr),
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

CHECK_FAILED, USER_ERROR, INTERRUPTED = 1, 2, 130


class UserError(click.ClickException):
    """A user mistake: ``Error: <message>`` on one line, exit code 2."""

    exit_code = USER_ERROR


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


def read_json_file(path: str | os.PathLike, option: str, kind: type | None = dict) -> Any:
    """Parse a JSON file the user handed in; UserError (one line naming the file) when it
    cannot be read, is not strict JSON (NaN/Infinity are refused) or is not a ``kind``."""
    def no_constant(name: str):
        raise ValueError(f"{name} is not a JSON number (write a finite number)")
    try:
        text = Path(path).read_text()
        data = json.loads(text, parse_constant=no_constant)
    except IsADirectoryError:
        raise UserError(f"{option} {path}: a directory, not a JSON file") from None
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"{option} {path}: not a text file") from None
    except ValueError as exc:   # JSONDecodeError included
        raise UserError(f"{option} {path}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if kind is not None and not isinstance(data, kind):
        want = {dict: "an object {...}", list: "a list [...]"}.get(kind, kind.__name__)
        raise UserError(f"{option} {path}: expected {want} at the top level, got "
                        f"{type(data).__name__}")
    return data


def _set_max_memory(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    from rnngap import resources
    if value is None:
        resources.set_limit(None)
        return
    try:
        resources.set_limit(resources.parse_size(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def max_memory_option(f):
    """``--max-memory SIZE``: refuse (exit 2, with the estimate) work whose tensors would not fit
    in SIZE; default: the memory available on the machine (rnngap.resources)."""
    return click.option("--max-memory", callback=_set_max_memory, expose_value=False,
                        metavar="SIZE",
                        help="Refuse up front (exit 2, with the estimate) work whose largest "
                             "tensors need more memory than SIZE (e.g. 4G, 512M) [default: the "
                             "memory available on this machine].")(f)


def unset(o) -> bool | None:
    """The value of a card's task option ``o`` (``tasks.registry.TaskOption``) when it is not
    given: False for a flag, else None."""
    return False if o.flag else None


def click_task_option(o, help: str | None = None):
    """The click option ``--NAME`` of a card's task option ``o`` (``tasks.registry.TaskOption``;
    ``help`` replaces its help text)."""
    if o.flag:
        return click.option(f"--{o.name}", is_flag=True, help=help or o.help)
    return click.option(f"--{o.name}", o.name, type=int, default=None, help=help or o.help)


def card_options(f):
    """Every card's task options (``--c``, ``--exact``), each saying the tasks it applies to
    (``construct``, where TASK is an argument)."""
    from rnngap.tasks.registry import OPTIONS, option_owners

    for o in reversed(OPTIONS.values()):
        f = click_task_option(o, f"{o.short} ({', '.join(option_owners(o.name))} only).")(f)
    return f


def overwrite_option(f):
    return click.option("--overwrite", is_flag=True,
                        help="Replace an existing output (a non-empty --out directory, an "
                             "existing --plot file). A directory is replaced only once the new "
                             "result is complete.")(f)


def check_out_dir(path: str | os.PathLike, overwrite: bool, option: str = "--out") -> Path:
    """The rule for every output directory: one that exists and is not empty is refused
    (UserError, exit 2) unless ``overwrite``; a file in its place is always refused."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"{option} {out}: a file is in the way (give a directory path)")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        what = "a run" if (out / "config.json").exists() else "files"
        raise UserError(f"{option} {out} already holds {what}; choose a new directory, or pass "
                        "--overwrite to replace it")
    return out


#: the image formats every matplotlib backend writes (checked before any work)
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff",
                  ".webp", ".pgf")


def check_out_file(path: str, overwrite: bool, option: str = "--plot",
                   image: bool = True) -> None:
    """Before any work: UserError (exit 2) unless ``path`` names a file in an existing, writable
    folder (an image format when ``image``), and an existing file there is only replaced with
    ``overwrite``."""
    if not path.strip():
        raise UserError(f"{option}: empty path")
    if path.endswith(("/", os.sep)):
        raise UserError(f"{option} {path}: a directory path; give a file name")
    p = Path(path)
    if image and p.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{option} {path}: unknown image format {p.suffix or '(none)'!r}; use "
                        f"one of {', '.join(IMAGE_SUFFIXES)}")
    if p.is_dir():
        raise UserError(f"{option} {path}: a directory is in the way (give a file path)")
    if not p.parent.is_dir():
        raise UserError(f"{option} {path}: folder {str(p.parent)!r} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise UserError(f"{option} {path}: folder {str(p.parent)!r} is not writable")
    if p.exists() and not overwrite:
        raise UserError(f"{option} {path} already exists; choose a new name, or pass "
                        "--overwrite to replace it")


@contextmanager
def staged_out_dir(path: str | os.PathLike, overwrite: bool,
                   option: str = "--out") -> Iterator[Path]:
    """Write into a temporary sibling of ``path``; on success it replaces ``path`` (which is
    removed only then). On any error or Ctrl-C the staging directory is deleted and ``path`` is
    untouched. Refuses like :func:`check_out_dir`."""
    out = check_out_dir(path, overwrite, option)
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    except OSError as exc:
        raise UserError(f"{option} {out}: cannot write there ({exc.strerror or exc})") from None
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    try:
        promote(stage, out)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        raise UserError(f"{option} {out}: cannot replace it ({exc.strerror or exc})") from None


def promote(stage: Path, out: Path) -> None:
    """Replace ``out`` by the complete ``stage`` directory: rename the old one aside, rename
    the new one in, then delete the old one (never a moment without a complete result)."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.absolute().parent))
        old.rmdir()
        out.rename(old)
    stage.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
