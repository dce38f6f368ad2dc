"""Small helpers the benchmark scripts share: percentiles, memory readings, JSON output."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out"


def summary(ms: list[float]) -> dict[str, float]:
    """p50/p95/mean/min of a list of milliseconds, rounded for reading."""
    values = np.asarray(ms)
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "mean_ms": round(float(values.mean()), 2),
        "min_ms": round(float(values.min()), 2),
    }


def rss_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def pss_mb(pid: int) -> float:
    """Proportional set size: this process's share of the memory it uses, shared pages split fairly."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no Pss for {pid}")


def cpu_model() -> str:
    """The CPU's model name: every figure names the machine it was measured on."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def write(name: str, data: dict[str, Any]) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2))
    return path
