"""Memory handed back: the allocator settings as glibc applies them (each checked in a fresh process by
``tests/allocator_probe.py``, since they are process-wide), the trim after an analysis only past the
documented slack, and the resident size read being the process's (0 where it cannot be read)."""

from __future__ import annotations

import ctypes
import io
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from emotion import memory

PROBE = Path(__file__).resolve().parent / "allocator_probe.py"
glibc = pytest.mark.skipif(memory._LIBC is None, reason="the allocator settings need glibc")


def _probe(*check: str) -> dict:
    done = subprocess.run([sys.executable, str(PROBE), *check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _status_rss() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_resident_bytes_is_this_processs_resident_size() -> None:
    assert abs(memory.resident_bytes() - _status_rss()) <= 16 * memory._PAGE


@pytest.mark.parametrize(
    "statm",
    [OSError("no /proc here"), b"", b"2048", b"2048 many 300"],
    ids=["no-proc", "empty", "one-field", "not-a-number"],
)
def test_resident_bytes_is_0_where_it_cannot_be_read(monkeypatch, statm) -> None:
    def fake_open(path, mode="r"):
        assert path == "/proc/self/statm"
        if isinstance(statm, Exception):
            raise statm
        return io.BytesIO(statm)

    monkeypatch.setattr(memory, "open", fake_open, raising=False)
    assert memory.resident_bytes() == 0


def _no_library(name: str) -> None:
    raise OSError(f"{name}: cannot open shared object file")


def _without_mallopt(name: str) -> types.SimpleNamespace:
    return types.SimpleNamespace()  # a library by that name without glibc's malloc functions


@pytest.mark.parametrize("cdll", [_no_library, _without_mallopt], ids=["no-libc.so.6", "no-mallopt"])
def test_the_settings_are_skipped_where_the_c_library_is_not_glibc(monkeypatch, cdll) -> None:
    monkeypatch.setattr(ctypes, "CDLL", cdll)
    assert memory._glibc() is None
    monkeypatch.setattr(memory, "_LIBC", None)
    memory.configure()  # nothing to set, and no error
    with memory.given_back():
        memory._trimmed_at = -(1 << 40)
    assert memory._trimmed_at == -(1 << 40)  # no trim was tried


@glibc
def test_blocks_of_8_mib_and_more_are_mapped_alone_and_a_free_top_over_4_mib_goes_back() -> None:
    """A block of 8 MiB gets a mapping of its own (unmapped when freed), one a page smaller a place in the
    heap; freeing a top block of 3.5 MiB leaves it there for the next, one of 4.5 MiB is given back."""
    found = _probe("thresholds")
    assert found["mapped_at_8mib"] is True
    assert found["mapped_below_8mib"] is False
    assert found["top_kept_after_3_5mib"] >= 3584 << 10
    assert found["top_kept_after_4_5mib"] < 1 << 20


@glibc
@pytest.mark.parametrize(("cores", "heaps"), [("3", 6), ("none", 2)])
def test_the_heaps_are_two_per_core(cores, heaps) -> None:
    """16 threads allocating at once share 2 heaps per core (2 where the core count is unknown)."""
    assert _probe("arenas", cores) == {"heaps": heaps}


@glibc
def test_without_the_settings_the_same_threads_make_more_heaps() -> None:
    """The check above can tell: left to glibc, the 16 threads get a heap each (8 per core allowed)."""
    assert _probe("arenas", "unset")["heaps"] > 6


@glibc
def test_the_heap_is_trimmed_only_past_16_mib_of_growth() -> None:
    found = _probe("given_back")
    assert found["under"]["top_kept"] >= 3584 << 10, found  # 256 KiB under the slack: no trim
    assert found["under"]["trimmed_at_behind"] > 15 << 20  # still where it was set
    assert found["at"]["top_kept"] >= 3584 << 10, found  # exactly at it: no trim either
    assert found["over"]["top_kept"] < 1 << 20, found  # 256 KiB over: the free top goes back
    assert found["over"]["dropped"] >= 3 << 20
    assert abs(found["over"]["trimmed_at_behind"]) <= 16 * memory._PAGE  # the next trim counts from here


@glibc
def test_a_fragmented_heap_is_given_back_after_the_block() -> None:
    """Freed small blocks between live ones (which no threshold returns) go back at the block's end."""
    found = _probe("fragmented")
    assert found["grown"] > found["before"] + (40 << 20), found
    assert found["after"] < found["grown"] - (30 << 20), found
    assert abs(found["trimmed_at"] - found["after"]) <= 16 * memory._PAGE
