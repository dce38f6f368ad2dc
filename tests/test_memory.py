"""Memory handed back after an analysis: a heap fragmented by many freed blocks is trimmed, a small
growth is not (the trim costs time), and the resident size read is the process's."""

from __future__ import annotations

import gc

import pytest

from emotion import memory

pytestmark = pytest.mark.skipif(memory._LIBC is None, reason="the allocator settings need glibc")


@pytest.fixture(autouse=True)
def _configured() -> None:
    """As the entry point sets the allocator up."""
    memory.configure()


def _status_rss() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_resident_bytes_is_this_processs_resident_size() -> None:
    assert abs(memory.resident_bytes() - _status_rss()) < 4 << 20


def _fragment(total: int) -> list[bytearray]:
    """Fill the heap with 3 kB blocks (under the mmap threshold) and free all but every 16th: the freed
    space lies between live blocks, where only ``malloc_trim`` returns it."""
    blocks = [bytearray(3000) for _ in range(total // 3000)]
    kept = blocks[::16]
    del blocks
    gc.collect()
    return kept


def test_a_fragmented_heap_is_given_back_after_the_block() -> None:
    with memory.given_back():
        before = memory.resident_bytes()
        kept = _fragment(96 << 20)
        grown = memory.resident_bytes()
        assert grown > before + (60 << 20)
    after = memory.resident_bytes()
    assert after < grown - (50 << 20), (before >> 20, grown >> 20, after >> 20)
    assert memory._trimmed_at == pytest.approx(after, abs=1 << 20)
    del kept


def test_a_small_growth_is_not_trimmed() -> None:
    with memory.given_back():  # start from a trimmed heap
        pass
    memory._trimmed_at = memory.resident_bytes()
    mark = memory._trimmed_at
    with memory.given_back():
        kept = _fragment(8 << 20)  # half the documented 16 MB of slack
    assert memory._trimmed_at == mark
    del kept


_FREED_BLOCKS = """
import ctypes, os, sys
import emotion.memory
emotion.memory.configure()

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]


def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def touched(size):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block


libc.free(touched(8 << 20))  # unset, glibc would now raise its mmap threshold to 8 MB and its trim one to 16
base = rss()
blocks = []
for _ in range(6):
    blocks.append(touched(1536 << 10))
    libc.malloc(1000)  # a small block after each large one, so the heap cannot simply shrink from the top
for block in blocks:
    libc.free(block)
print(rss() - base)
"""


def test_blocks_of_a_megabyte_and_more_go_back_to_the_system_when_freed() -> None:
    """In a fresh process: glibc's dynamic thresholds would keep 9 MB of freed 1.5 MB blocks in its heap."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    kept = subprocess.run([sys.executable, "-c", _FREED_BLOCKS], cwd=root, capture_output=True, text=True, check=True)
    assert int(kept.stdout) < 2 << 20, kept.stdout
