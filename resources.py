"""Memory guard: refuse work whose tensors cannot fit BEFORE allocating them.

A request such as ``verify cgram --n 4096 --c 300`` (299 heads of 4,395 x 4,395 attention
scores) or ``train --n 8192`` used to start, try to allocate terabytes and die with an
allocator traceback (or be killed by the kernel). Heavy code paths call :func:`require` with
their own estimate of the bytes they are about to allocate; it raises :class:`ResourceError`
(a ``ValueError``: the commands turn it into one line and exit code 2) when the estimate
exceeds the limit:

* ``--max-memory SIZE`` on the heavy commands (:func:`set_limit`), else
* the memory this process can still get: ``MemAvailable`` from ``/proc/meminfo``, lowered to
  what an address-space limit (``ulimit -v``, RLIMIT_AS) leaves, read once and cached.

Estimates are of the largest live tensors (stated where they are made), not exact peaks: the
guard exists so a user learns in a second that a request is impossible, not to pack memory.
"""

from __future__ import annotations

import os
import re

#: the explicit limit in bytes (``--max-memory``); None: what the machine has available
_limit: int | None = None
_available: int | None = None
_UNITS = {"": 1, "b": 1, "k": 2 ** 10, "kb": 10 ** 3, "kib": 2 ** 10, "m": 2 ** 20,
          "mb": 10 ** 6, "mib": 2 ** 20, "g": 2 ** 30, "gb": 10 ** 9, "gib": 2 ** 30,
          "t": 2 ** 40, "tb": 10 ** 12, "tib": 2 ** 40}


class ResourceError(ValueError):
    """The work asked for needs more memory than the limit (message: one line, with both)."""


def parse_size(text: str) -> int:
    """'4G', '512M', '1.5GiB', '2000000000' -> bytes (K/M/G/T alone are binary). ValueError
    (one line) on anything else, on zero and on negative sizes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a memory size (examples: 512M, 4G, 1.5GiB)")
    value = float(m.group(1)) * _UNITS[unit]
    if not value >= 1:
        raise ValueError(f"{text!r}: a memory size must be at least 1 byte")
    return int(value)


def human(nbytes: float) -> str:
    """1536 -> '1.5 KiB' (binary units, 3 significant digits)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(nbytes) < 1024 or unit == "PiB":
            return f"{nbytes:.3g} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    raise AssertionError  # pragma: no cover


def set_limit(nbytes: int | None) -> None:
    """The explicit limit (``--max-memory``); None returns to the machine's available memory."""
    global _limit
    _limit = nbytes


def available_bytes() -> int | None:
    """Memory this process can still allocate (read once): MemAvailable, capped by what an
    address-space rlimit leaves above the current virtual size. None when neither is known."""
    global _available
    if _available is not None:
        return _available
    found: list[int] = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except OSError:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as f:
                vsize = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            found.append(max(0, soft - vsize))
    except (ImportError, OSError, ValueError):
        pass
    _available = min(found) if found else None
    return _available


def limit() -> tuple[int | None, str]:
    """(bytes, where the number comes from)."""
    if _limit is not None:
        return _limit, "--max-memory"
    return available_bytes(), "memory available on this machine"


def require(nbytes: float, what: str) -> None:
    """ResourceError unless ``nbytes`` (an estimate) fits the limit."""
    lim, source = limit()
    if lim is not None and nbytes > lim:
        raise ResourceError(f"{what} needs about {human(nbytes)}, more than the {human(lim)} of "
                            f"{source}; ask for less (smaller n, size or batch) or raise "
                            "--max-memory")
