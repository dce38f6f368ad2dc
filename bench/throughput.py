"""Throughput with concurrent clients against one server process, its peak memory, and memory stability.

``python -m bench.throughput [--requests N]``: one functions-framework server (one gunicorn worker,
threads as in production); 1, 2, 4 and 8 concurrent clients post the benchmark photos; then 2,000
requests, with resident memory read after 200 and after 2,000. Writes ``bench/out/throughput.json``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.common import pss_mb, rss_mb, write
from bench.images import PHOTOS
from bench.servers import start_function, stop, wait_until_up


def worker_pid(parent: int) -> int:
    """The gunicorn worker that serves requests (the child of the process we started), or the parent."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            return int(stat.parent.name)
    return parent


def blast(url: str, photos: list[bytes], clients: int, count: int) -> float:
    """Send ``count`` requests from ``clients`` threads; returns images per second."""
    bodies = list(itertools.islice(itertools.cycle(photos), count))

    def send(chunk: list[bytes]) -> None:
        with requests.Session() as session:
            for body in chunk:
                response = session.post(url, data=body, headers={"Content-Type": "image/jpeg"}, timeout=60)
                response.raise_for_status()

    chunks = [bodies[i::clients] for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, chunks))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    args = parser.parse_args()
    photos = [build() for build in PHOTOS.values()]
    process, url = start_function("analyze_http")
    try:
        wait_until_up(url, process)
        pid = worker_pid(process.pid)
        idle = rss_mb(pid)
        throughput = {str(c): round(blast(url, photos, c, args.requests), 1) for c in (1, 2, 4, 8)}
        after_load = rss_mb(pid)
        # What the instance really holds: the framework's parent process and its worker, shared pages once.
        instance_pss = round(pss_mb(process.pid) + pss_mb(pid), 1)

        stability_process, stability_url = start_function("analyze_http")
        try:
            wait_until_up(stability_url, stability_process)
            spid = worker_pid(stability_process.pid)
            blast(stability_url, photos, 4, 200)
            at_200 = rss_mb(spid)["rss_mb"]
            blast(stability_url, photos, 4, 1800)
            at_2000 = rss_mb(spid)["rss_mb"]
        finally:
            stop(stability_process)
    finally:
        stop(process)
    write(
        "throughput",
        {
            "images_per_second_by_clients": throughput,
            "photos": list(PHOTOS),
            "worker_memory_mb": {"idle": idle, "after_load": after_load},
            "peak_rss_mb": after_load["peak_rss_mb"],
            "instance_pss_after_load_mb": instance_pss,
            "memory_stability": {
                "rss_after_200_mb": at_200,
                "rss_after_2000_mb": at_2000,
                "growth": round(at_2000 / at_200 - 1, 4),
                "within_10_percent": at_2000 <= at_200 * 1.1,
            },
            "target_peak_rss_mb": 150,
            "meets_memory_target": after_load["peak_rss_mb"] <= 150,
        },
    )


if __name__ == "__main__":
    main()
