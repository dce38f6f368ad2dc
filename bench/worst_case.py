"""Worst cases: each input of ``bench.worst_cases`` posted to a fresh server; peak memory, time, answer.

``python -m bench.worst_case [--only NAME ...] [--tier CPU MEM_MIB] [--out NAME]`` writes
``bench/out/worst_case.json`` (or ``--out``). Each case gets its own functions-framework server, so the
peak resident memory (``VmHWM``) of its worker is that case's alone. ``--tier 0.167 256`` runs each server
in a cgroup with the deployed tier's CPU share and hard memory limit (``/work/shared/tools/tier.py``,
root only) and records whether the kernel killed it. A last case sends 50 concurrent large PNGs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.common import rss_mb, write
from bench.servers import ROOT, free_port, stop, wait_until_up
from bench.throughput import worker_pid
from bench.worst_cases import CASES, Case, png_rgb, webp_lossless_rgba

TIER_TOOL = Path(os.environ.get("TIER_TOOL", "/work/shared/tools/tier.py"))
TIMEOUT_S = 150.0
#: 50 clients at once, each posting the same input (MAX_PARALLEL_ANALYSES decides how many decode at once).
CONCURRENT = {
    "50_concurrent_webp_lossless_rgba": Case("webp", webp_lossless_rgba, 413, "image_too_large"),
    "50_concurrent_png_rgb_8000x5000": Case("png", png_rgb, 200),
}


def _tier_module():
    spec = importlib.util.spec_from_file_location("tier", TIER_TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tier"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@contextlib.contextmanager
def server(root: Path, tier: tuple[float, int] | None):
    """A functions-framework server for ``analyze_http`` from ``root``, optionally inside a tier cgroup."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        "--target=analyze_http",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    with contextlib.ExitStack() as stack:
        group = stack.enter_context(_tier_module().tier(*tier)) if tier else None
        log = stack.enter_context(tempfile.TemporaryFile())
        process = subprocess.Popen(
            (group.wrap if group else []) + command, cwd=root, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}", process)
            yield process, f"http://127.0.0.1:{port}", group
        finally:
            stop(process)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used: unlike wall time, not inflated by a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post(url: str, case: Case, body: bytes) -> dict:
    start = time.perf_counter()
    try:
        response = requests.post(url, data=body, headers={"Content-Type": case.content_type}, timeout=TIMEOUT_S)
    except requests.Timeout:
        return {"status": "timeout", "seconds": round(time.perf_counter() - start, 2)}
    except requests.ConnectionError as exc:
        return {"status": "connection lost", "seconds": round(time.perf_counter() - start, 2), "error": str(exc)[:80]}
    seconds = round(time.perf_counter() - start, 2)
    try:
        code = response.json().get("error", {}).get("code")
    except ValueError:
        code = "not json: " + response.headers.get("Content-Type", "")
    return {"status": response.status_code, "code": code, "seconds": seconds}


def run_case(root: Path, case: Case, tier: tuple[float, int] | None, clients: int = 1) -> dict:
    body = case.build()
    with server(root, tier) as (process, url, group):
        pid = worker_pid(process.pid)
        base = rss_mb(pid)["peak_rss_mb"]
        cpu = cpu_seconds(pid)
        if clients == 1:
            row = post(url, case, body)
        else:
            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                answers = list(pool.map(lambda _: post(url, case, body), range(clients)))
            statuses = sorted({str(a["status"]) for a in answers})
            row = {"status": "/".join(statuses), "seconds": round(time.perf_counter() - start, 2), "clients": clients}
        row["bytes"] = len(body)
        row["base_peak_rss_mb"] = base
        try:
            row["worker_cpu_s"] = round(cpu_seconds(pid) - cpu, 2)
            row["peak_rss_mb"] = rss_mb(pid)["peak_rss_mb"]
            row["rss_after_mb"] = rss_mb(pid)["rss_mb"]
        except (OSError, KeyError):
            row["peak_rss_mb"] = None  # the worker is gone (killed)
        if group:
            row["cgroup_peak_mb"] = round(group.peak_mb(), 1)
            row["oom_kills"] = group.oom_kills()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="case names to run (default: all)")
    parser.add_argument("--tier", nargs=2, type=float, metavar=("CPU", "MEM_MIB"), help="e.g. 0.167 256")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose code serves (for 'before')")
    parser.add_argument("--out", default="worst_case")
    parser.add_argument("--clients", type=int, default=50, help="clients of the concurrent cases")
    args = parser.parse_args()
    tier = (args.tier[0], int(args.tier[1])) if args.tier else None
    results = {}
    cases = [case for case in CASES if not args.only or case.name in args.only]
    for case in cases:
        results[case.name] = run_case(args.root, case, tier)
        print(case.name, results[case.name], flush=True)
    for name, case in CONCURRENT.items():
        if not args.only or name in args.only:
            key = name.replace("50", str(args.clients), 1)
            results[key] = run_case(args.root, case, tier, clients=args.clients)
            print(key, results[key], flush=True)
    write(args.out, {"tier": tier, "clients": args.clients, "cases": results})


if __name__ == "__main__":
    main()
