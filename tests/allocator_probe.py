"""What glibc's allocator does in a fresh process after ``emotion.memory.configure()`` (the settings are
process-wide, so tests run this as a script and never set them in the test process itself).

``python tests/allocator_probe.py CHECK [ARG]`` prints one JSON object; the checks are the functions below.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emotion import memory  # (after the path is set)

PAGE = os.sysconf("SC_PAGE_SIZE")


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later): the main arena's figures, all ``size_t``."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes taken from the system by sbrk
            "ordblks",
            "smblks",
            "hblks",  # blocks mapped on their own (mmap)
            "hblkhd",  # bytes in those
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",  # the free chunk at the top of the heap: what a trim could give back
        )
    ]


libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
libc.malloc_trim.argtypes = [ctypes.c_size_t]
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]


def _touched(size: int) -> int:
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block


def _mapped_alone(size: int) -> bool:
    """Whether a block of ``size`` bytes gets a mapping of its own rather than a place in the heap."""
    before = libc.mallinfo2().hblks
    block = libc.malloc(size)
    mapped = libc.mallinfo2().hblks - before == 1
    libc.free(block)
    return mapped


def _kept_after_freeing(size: int) -> int:
    """Free a block of ``size`` bytes at the top of the heap: the free bytes left at the top afterwards."""
    libc.free(libc.malloc(size))
    return libc.mallinfo2().keepcost


def thresholds() -> dict:
    """Which blocks are mapped on their own, and how large a free top of the heap may stay."""
    memory.configure()
    # the one below first: an unmapped block that large would raise glibc's own (dynamic) threshold
    below = _mapped_alone((8 << 20) - PAGE)
    at = _mapped_alone(8 << 20)
    libc.malloc_trim(0)  # start from a trimmed top
    return {
        "mapped_below_8mib": below,
        "mapped_at_8mib": at,
        "top_kept_after_3_5mib": _kept_after_freeing(3584 << 10),
        "top_kept_after_4_5mib": _kept_after_freeing(4608 << 10),
    }


def arenas(cores: str) -> dict:
    """How many heaps (arenas) 16 threads that each allocate at once end up with, where the system has
    ``cores`` cores ("none": unknown; "unset": the allocator left as glibc sets it)."""
    if cores != "unset":
        os.cpu_count = lambda: None if cores == "none" else int(cores)  # type: ignore[assignment]
        memory.configure()
    threads, started, done = 16, threading.Barrier(17), threading.Event()

    def allocate() -> None:
        libc.free(libc.malloc(64))  # the thread's first allocation picks (or makes) its arena
        started.wait()
        done.wait()  # alive until counted: an ended thread's arena would be reused by the next

    workers = [threading.Thread(target=allocate) for _ in range(threads)]
    for worker in workers:
        worker.start()
    started.wait()
    report = Path(os.environ.get("TMPDIR", "/tmp")) / f"malloc-info-{os.getpid()}.xml"
    stream = libc.fopen(str(report).encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    done.set()
    for worker in workers:
        worker.join()
    xml = report.read_text()
    report.unlink()
    return {"heaps": xml.count("<heap nr=")}


def given_back() -> dict:
    """Whether the block's end trims: a touched 3.5 MiB block freed at the top stays there (under the
    trim threshold) until ``malloc_trim`` gives it back; ``_trimmed_at`` is set so that the process is
    just under, just over and exactly at ``TRIM_SLACK`` (16 MiB) above it."""
    memory.configure()
    out: dict = {}

    def top_freed() -> None:
        libc.free(_touched(3584 << 10))

    for name, above in (("under", (16 << 20) - (256 << 10)), ("over", (16 << 20) + (256 << 10))):
        top_freed()
        before = memory.resident_bytes()
        with memory.given_back():
            memory._trimmed_at = memory.resident_bytes() - above
        after = memory.resident_bytes()
        out[name] = {
            "top_kept": libc.mallinfo2().keepcost,
            "dropped": before - after,
            "trimmed_at_behind": after - memory._trimmed_at,  # how far the last trim's mark is behind now
        }
    # exactly at the slack: more than 16 MiB is needed, so no trim (tried a few times: a page the reads
    # themselves touch could make one try land just over)
    at: list[int] = []
    for _ in range(5):
        top_freed()
        with memory.given_back():
            memory._trimmed_at = memory.resident_bytes() - (16 << 20)
        at.append(libc.mallinfo2().keepcost)
    out["at"] = {"top_kept": max(at)}
    return out


def fragmented() -> dict:
    """A heap fragmented by many freed small blocks between live ones (where only ``malloc_trim`` gives
    memory back): resident sizes before, when grown, and after the block."""
    memory.configure()
    with memory.given_back():
        before = memory.resident_bytes()
        blocks = [bytearray(3000) for _ in range((64 << 20) // 3000)]
        kept = blocks[::16]
        del blocks
        gc.collect()
        grown = memory.resident_bytes()
    after = memory.resident_bytes()
    del kept
    return {"before": before, "grown": grown, "after": after, "trimmed_at": memory._trimmed_at}


if __name__ == "__main__":
    check, *args = sys.argv[1:]
    checks: dict[str, Callable[..., dict]] = {
        "thresholds": thresholds,
        "arenas": arenas,
        "given_back": given_back,
        "fragmented": fragmented,
    }
    print(json.dumps(checks[check](*args)))
