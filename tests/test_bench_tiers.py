"""The benchmark's Cloud Run tiers are real limits: the kernel caps the CPU share and kills above the memory."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cgroup import Tier, limits, unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=f"no cgroups here: {unavailable()}")
SMALLEST = Tier(256, 0.167)

SPIN = """
import time
start = time.perf_counter()
while time.perf_counter() - start < 1.0:
    pass
print(time.process_time())
"""


def test_the_cpu_quota_binds() -> None:
    """One second of spinning gets about 0.167 s of CPU (generous margin: under 0.4 s)."""
    with limits(SMALLEST) as group:
        done = subprocess.run([*group.wrap, sys.executable, "-c", SPIN], capture_output=True, text=True, check=True)
        assert group.throttled()["throttled"] > 0
    assert float(done.stdout) < 0.4


def test_going_over_the_memory_limit_is_killed() -> None:
    with limits(SMALLEST) as group:
        small = subprocess.run([*group.wrap, sys.executable, "-c", 'b = b"x" * (50 << 20)'], check=False)
        big = subprocess.run([*group.wrap, sys.executable, "-c", 'b = b"x" * (400 << 20)'], check=False)
        peak = group.peak_mb()
    assert small.returncode == 0
    assert big.returncode == -9
    assert 50 < peak <= 256 * 1.05 * 1024 * 1024 / 1e6
