"""The C allocator of a ``colorize serve`` process: glibc malloc settings made before threads start, and its
statistics.

glibc gives each thread that allocates while another holds the lock its own
arena, up to 8 per core; a server's decode, encode and inference threads then
spread image-sized buffers over many arenas whose freed space is kept rather
than returned, and RSS creeps up for minutes (``benchmarks/soak.py``).
``configure`` caps the arenas (``M_ARENA_MAX``, what ``MALLOC_ARENA_MAX`` sets)
and fixes the mmap threshold (``M_MMAP_THRESHOLD``), so that buffers of that
size or more are mapped on their own and unmapped when freed, instead of the
dynamic threshold moving them into the arenas. It calls ``mallopt`` through
ctypes, which takes effect for arenas created after it: call it first thing,
before numpy, onnxruntime or openvino start threads.

Values the user set in the environment (``MALLOC_ARENA_MAX``,
``MALLOC_MMAP_THRESHOLD_``) are left alone. Elsewhere than glibc (musl,
macOS) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

#: ``mallopt`` parameters (glibc ``malloc.h``)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: arenas for the whole process (glibc's default is 8 per core)
ARENA_MAX = 2
#: allocations of this many bytes or more get their own mapping, returned to the system when freed
MMAP_THRESHOLD = 256 * 1024


@dataclass(frozen=True)
class AllocatorSetup:
    applied: dict[str, int]  # mallopt parameter -> value set
    skipped: dict[str, str]  # parameter -> why not

    def describe(self) -> str:
        done = ", ".join(f"{k}={v}" for k, v in self.applied.items())
        left = ", ".join(f"{k} ({why})" for k, why in self.skipped.items())
        return "; ".join(p for p in (f"malloc: {done}" if done else "", f"left as is: {left}" if left else "") if p)


@functools.lru_cache(maxsize=1)
def _glibc():
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    gnu_get_libc_version = getattr(libc, "gnu_get_libc_version", None)
    if gnu_get_libc_version is None or not hasattr(libc, "mallopt"):
        return None
    return libc


def configure(environ: Mapping[str, str] | None = None, arena_max: int = ARENA_MAX,
              mmap_threshold: int = MMAP_THRESHOLD) -> AllocatorSetup:
    """Cap glibc's malloc arenas and fix its mmap threshold for this process, unless the environment sets them.

    Returns what was set and what was left alone (and why).
    """
    environ = os.environ if environ is None else environ
    libc = _glibc()
    wanted = {"M_ARENA_MAX": (M_ARENA_MAX, arena_max, "MALLOC_ARENA_MAX"),
              "M_MMAP_THRESHOLD": (M_MMAP_THRESHOLD, mmap_threshold, "MALLOC_MMAP_THRESHOLD_")}
    applied: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for name, (param, value, var) in wanted.items():
        if libc is None:
            skipped[name] = "not glibc"
        elif var in environ:
            skipped[name] = f"{var}={environ[var]} in the environment"
        elif libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
            skipped[name] = "mallopt refused it"
        else:
            applied[name] = value
    return AllocatorSetup(applied, skipped)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def mallinfo() -> dict[str, int] | None:
    """glibc's ``mallinfo2`` over all arenas, in bytes: ``arena`` (heap obtained by sbrk/arenas), ``mmapped``
    (``hblkhd``), ``in_use`` (``uordblks``), ``free`` (``fordblks``: held by malloc, not in use). None
    elsewhere than glibc >= 2.33."""
    libc = _glibc()
    fn = getattr(libc, "mallinfo2", None) if libc is not None else None
    if fn is None:
        return None
    fn.restype = _Mallinfo2
    m = fn()
    return {"arena": m.arena, "mmapped": m.hblkhd, "in_use": m.uordblks, "free": m.fordblks}
