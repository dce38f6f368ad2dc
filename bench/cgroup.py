"""Cloud Run's instance tiers as Linux cgroups: a CPU quota and a hard memory limit for a child process.

Each memory size comes with a share of a CPU: 256 MiB with 0.167 vCPU, a CFS quota of 16.7 ms of CPU per
100 ms period, with a kernel that kills the instance above its memory. The benchmarks run the real
server under the same limits. Needs root and a cgroup v1 ``cpu`` and ``memory`` hierarchy (or cgroup v2
with both controllers delegated); ``unavailable()`` says why not where the machine does not allow it.

The benchmark machine is shared, so each group also gets a high CPU weight: the tier then has the CPU its
quota allows, as on Cloud Run, while the quota still bounds what it takes from the others. (``nice`` would
not do: the scheduler weighs cgroups and session autogroups against each other, not processes.)
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
#: Ten times the default weight (v1 ``cpu.shares`` 1024, v2 ``cpu.weight`` 100).
WEIGHT_FACTOR = 10


@dataclass(frozen=True)
class Tier:
    """One memory size with the vCPU share Cloud Run gives it."""

    mem_mib: int
    cpu: float

    @property
    def name(self) -> str:
        size = f"{self.mem_mib // 1024} GiB" if self.mem_mib >= 1024 else f"{self.mem_mib} MiB"
        return f"{size} / {self.cpu:g} vCPU"


#: Cloud Run's pairs of memory and the default vCPU for it (Cloud Run functions' table).
TIERS = (Tier(256, 0.167), Tier(512, 0.333), Tier(1024, 0.583), Tier(2048, 1.0))


@dataclass
class Limits:
    """A cgroup made for one run: ``wrap + command`` starts a command inside it."""

    wrap: list[str]
    cpu_dir: Path
    mem_dir: Path
    v2: bool

    def peak_mb(self) -> float:
        """Peak memory of everything that ran in the group (page cache included, as the platform counts)."""
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        return int((self.mem_dir / name).read_text()) / 1e6

    def throttled(self) -> dict[str, int]:
        """CFS periods used and how many of them ran out of quota."""
        stat = dict(line.split() for line in (self.cpu_dir / "cpu.stat").read_text().splitlines())
        return {"periods": int(stat.get("nr_periods", 0)), "throttled": int(stat.get("nr_throttled", 0))}


def _v2() -> bool:
    return (ROOT / "cgroup.controllers").is_file()


def unavailable() -> str | None:
    """Why tiers cannot be set up here, or None when they can."""
    if os.geteuid() != 0:
        return "making cgroups needs root"
    if _v2():
        controllers = (ROOT / "cgroup.subtree_control").read_text().split()
        if not {"cpu", "memory"} <= set(controllers):
            return "cgroup v2 without the cpu and memory controllers delegated at the root"
        return None
    if not (ROOT / "cpu" / "cpu.cfs_quota_us").exists() or not (ROOT / "memory").is_dir():
        return "no cgroup v1 cpu (CFS quota) and memory hierarchies under /sys/fs/cgroup"
    return None


@contextlib.contextmanager
def limits(tier: Tier | None) -> Iterator[Limits]:
    """A fresh cgroup with ``tier``'s CPU quota and memory limit (None: the whole machine), removed afterwards."""
    name = f"emotion-bench-{uuid.uuid4().hex[:8]}"
    v2 = _v2()
    if v2:
        cpu_dir = mem_dir = ROOT / name
        cpu_dir.mkdir()
        dirs = [cpu_dir]
        (cpu_dir / "cpu.weight").write_text(str(100 * WEIGHT_FACTOR))
        if tier:
            (cpu_dir / "cpu.max").write_text(f"{round(tier.cpu * PERIOD_US)} {PERIOD_US}")
            (cpu_dir / "memory.max").write_text(str(tier.mem_mib * 1024 * 1024))
            if (cpu_dir / "memory.swap.max").exists():  # absent without swap accounting
                (cpu_dir / "memory.swap.max").write_text("0")
    else:
        cpu_dir, mem_dir = ROOT / "cpu" / name, ROOT / "memory" / name
        cpu_dir.mkdir()
        mem_dir.mkdir()
        dirs = [cpu_dir, mem_dir]
        (cpu_dir / "cpu.shares").write_text(str(1024 * WEIGHT_FACTOR))
        if tier:
            (cpu_dir / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (cpu_dir / "cpu.cfs_quota_us").write_text(str(round(tier.cpu * PERIOD_US)))
            (mem_dir / "memory.limit_in_bytes").write_text(str(tier.mem_mib * 1024 * 1024))
    join = " && ".join(f"echo $$ > {d}/cgroup.procs" for d in dirs)
    try:
        yield Limits(["sh", "-c", f'{join} && exec "$@"', "tier"], cpu_dir, mem_dir, v2)
    finally:
        for d in dirs:
            parent = d.parent
            with contextlib.suppress(OSError):
                for pid in (d / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (parent / "cgroup.procs").write_text(pid)
            with contextlib.suppress(OSError):
                d.rmdir()
