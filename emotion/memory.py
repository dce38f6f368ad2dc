"""Give memory back to the system after an analysis (glibc's allocator keeps freed memory otherwise).

Three settings, made once by the entry point with ``configure()`` (importing the library changes
nothing; where the C library is not glibc they are skipped): blocks of 8 MB and more are mapped on their
own and unmapped when freed (glibc would
otherwise raise that threshold to the largest block freed, up to 32 MB, and keep such blocks in its
heaps; a lower threshold made normal photos a few percent slower, each large buffer a fresh mapping);
the number of heaps (arenas) is held to two per core instead of eight; and after an analysis that left
the process more than ``TRIM_SLACK`` above where the last trim left it, ``malloc_trim`` hands the free
pages at the top and inside the heaps back (it costs about 0.4 ms, so normal photos skip it).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 8 << 20
TRIM_THRESHOLD = 4 << 20
TRIM_SLACK = 16 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _glibc() -> ctypes.CDLL | None:
    """glibc by its soname (``ctypes.util.find_library`` would run ``ldconfig``: slow for a cold start)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()


def configure() -> None:
    """Set the allocator for a long-running server (process-wide: the entry point calls it once)."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        _LIBC.mallopt(_M_ARENA_MAX, 2 * (os.cpu_count() or 1))


def resident_bytes() -> int:
    """This process's resident memory now (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_trimmed_at = resident_bytes()


@contextlib.contextmanager
def given_back() -> Iterator[None]:
    """Run the block, then return the allocator's free memory to the system if it grew (threads may race
    on ``_trimmed_at``: the worst outcome is one trim more or less)."""
    global _trimmed_at
    try:
        yield
    finally:
        if _LIBC is not None and resident_bytes() > _trimmed_at + TRIM_SLACK:
            _LIBC.malloc_trim(0)
            _trimmed_at = resident_bytes()
