"""Warm latency, p50 and p95, in-process and end to end over HTTP, for the three benchmark photos.

``python -m bench.latency [--repeats N]``: one thread in-process (pinned to one core), one client
against a single-worker functions-framework server. Writes ``bench/out/latency.json`` and
``bench/latency.png``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import requests

from bench.common import summary, write
from bench.images import PHOTOS
from bench.servers import start_function, stop, wait_until_up


def in_process(repeats: int) -> dict[str, list[float]]:
    from emotion.pipeline import Analyzer

    analyzer = Analyzer()
    timings: dict[str, list[float]] = {}
    for name, build in PHOTOS.items():
        data = build()
        for _ in range(5):
            analyzer.analyze(data)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            analyzer.analyze(data)
            samples.append((time.perf_counter() - start) * 1000)
        timings[name] = samples
    return timings


def over_http(repeats: int) -> dict[str, list[float]]:
    process, url = start_function("analyze_http")
    try:
        wait_until_up(url, process)
        timings: dict[str, list[float]] = {}
        with requests.Session() as session:
            for name, build in PHOTOS.items():
                data = build()
                headers = {"Content-Type": "image/jpeg"}
                for _ in range(5):
                    session.post(url, data=data, headers=headers, timeout=30).raise_for_status()
                samples = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    session.post(url, data=data, headers=headers, timeout=30).raise_for_status()
                    samples.append((time.perf_counter() - start) * 1000)
                timings[name] = samples
        return timings
    finally:
        stop(process)


def plot(raw: dict[str, dict[str, list[float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(raw), figsize=(11, 4), sharey=True)
    for ax, (mode, timings) in zip(axes, raw.items(), strict=True):
        ax.boxplot(list(timings.values()), showfliers=True)
        ax.set_xticks(range(1, len(timings) + 1), [n.replace("_", "\n", 1) for n in timings], fontsize=8)
        ax.set_title(f"{mode} (ms)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Warm latency per photo (one worker, preview included)")
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parent / "latency.png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # in-process figures are for one core
    raw = {"in_process": in_process(args.repeats)}
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    raw["http"] = over_http(args.repeats)
    plot(raw)
    write("latency", {mode: {name: summary(s) for name, s in timings.items()} for mode, timings in raw.items()})


if __name__ == "__main__":
    main()
