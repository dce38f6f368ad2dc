"""Cold start, warm latency and peak memory at Cloud Run's tiers, through a real functions-framework server.

``python -m bench.tiers [--runs 3] [--requests 20] [--tiers 256,512,1024,2048] [--python PATH]`` writes
``bench/out/tiers.json``. For each tier (and the whole machine, without limits) and each run, in a fresh
cgroup with the tier's CPU quota and memory limit (``bench.cgroup``):

- **cold start**: spawn functions-framework, POST the astronaut photo until the first 200 answer;
- **warm latency**: the benchmark photos, each request ``--gap`` seconds after the last (an instance of
  concurrency 1 that is not saturated: the quota has refilled), plus the astronaut back to back (a
  saturated instance, where every request also pays for the quota the previous one used);
- **peak memory** of the whole group (framework parent, worker, page cache), as the platform counts it;
- **breakdown**: ``bench.startup`` under ``-X importtime`` in another fresh cgroup of the tier.

The whole machine is measured in a cgroup too (no quota, no limit), for its peak memory and the same
high CPU weight (see ``bench.cgroup``). Medians over the runs are reported. Where the machine does not
allow cgroups (not root, no CPU quota controller) it stops, saying why; ``bench.cold_start`` and
``bench.latency`` measure without them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

from bench.cgroup import TIERS, Tier, limits, unavailable
from bench.common import cpu_model, summary, write
from bench.images import PHOTOS
from bench.servers import ROOT, free_port, stop

#: The issue's targets at the deployed tier.
TARGETS = {"cold_start_s": 1.5, "astronaut_512x512": 60.0, "five_faces_1920x1080": 250.0}
FIRST_PHOTO = "astronaut_512x512"
HEADERS = {"Content-Type": "image/jpeg"}
KEYS = ("p50_ms", "p95_ms", "mean_ms")


def cold_run(python: str, tier: Tier | None, photos: dict[str, bytes], count: int, gap: float) -> dict:
    """One cold start and the warm requests after it, on one fresh server."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [python, "-m", "functions_framework", "--target=analyze_http", "--host=127.0.0.1", f"--port={port}"]
    with limits(tier) as group, tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        process = subprocess.Popen(group.wrap + command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            with requests.Session() as session:
                while True:
                    with contextlib.suppress(requests.ConnectionError):
                        if session.post(url, data=photos[FIRST_PHOTO], headers=HEADERS, timeout=60).ok:
                            break
                    if process.poll() is not None or time.perf_counter() - start > 120:
                        log.seek(0)
                        raise RuntimeError(f"the server did not come up:\n{log.read().decode(errors='replace')}")
                    time.sleep(0.005)
                cold = time.perf_counter() - start
                warm = {name: timed(session, url, data, count, gap) for name, data in photos.items()}
                busy = timed(session, url, photos[FIRST_PHOTO], count, 0.0)
        finally:
            stop(process)
        return {"cold_start_s": cold, "warm_ms": warm, "busy_ms": busy, "peak_mb": group.peak_mb(), **group.throttled()}


def timed(session: requests.Session, url: str, data: bytes, count: int, gap: float) -> list[float]:
    """Milliseconds per request, after three untimed ones, each request ``gap`` s after the last answer."""
    samples = []
    for i in range(count + 3):
        time.sleep(gap)
        start = time.perf_counter()
        session.post(url, data=data, headers=HEADERS, timeout=60).raise_for_status()
        if i >= 3:
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def breakdown_run(python: str, tier: Tier | None, photo_path: Path) -> dict:
    """``bench.startup`` once under ``-X importtime``: its steps, and import time by top-level package."""
    command = [python, "-X", "importtime", "-m", "bench.startup", str(photo_path)]
    with limits(tier) as group:
        start = time.perf_counter()
        done = subprocess.run(group.wrap + command, cwd=ROOT, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["interpreter_start_ms"] = round((report.pop("started") - start) * 1000, 1)
    packages: Counter[str] = Counter()  # microseconds
    modules: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        packages[name.strip().split(".")[0]] += int(own)  # microseconds
        modules[name.strip()] += int(own)
    report["import_ms_by_package"] = {name: us / 1000 for name, us in packages.most_common(15)}
    report["slowest_imports_ms"] = {name: us / 1000 for name, us in modules.most_common(10)}
    return report


def median_of(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure(python: str, tier: Tier | None, photos: dict[str, bytes], photo_path: Path, args) -> dict:
    runs = [cold_run(python, tier, photos, args.requests, args.gap) for _ in range(args.runs)]
    breakdowns = [breakdown_run(python, tier, photo_path) for _ in range(args.runs)]
    result: dict = {
        "cold_start_s": median_of([r["cold_start_s"] for r in runs]),
        "cold_start_runs_s": [round(r["cold_start_s"], 3) for r in runs],
        "warm": {
            name: {
                **{key: median_of([summary(r["warm_ms"][name])[key] for r in runs]) for key in KEYS},
                "p50_runs_ms": [summary(r["warm_ms"][name])["p50_ms"] for r in runs],
            }
            for name in photos
        },
        "busy_astronaut": {key: median_of([summary(r["busy_ms"])[key] for r in runs]) for key in KEYS},
        "breakdown": {
            "interpreter_start_ms": median_of([b["interpreter_start_ms"] for b in breakdowns]),
            "steps": {
                name: {key: median_of([b["steps"][name][key] for b in breakdowns]) for key in ("wall_ms", "cpu_ms")}
                for name in breakdowns[0]["steps"]
            },
            "first_analysis_ms": {
                key: median_of([b["first_analysis_ms"][key] for b in breakdowns])
                for key in breakdowns[0]["first_analysis_ms"]
            },
            "import_ms_by_package": {
                key: median_of([b["import_ms_by_package"].get(key, 0.0) for b in breakdowns])
                for key in breakdowns[0]["import_ms_by_package"]
            },
            "slowest_imports_ms": breakdowns[len(breakdowns) // 2]["slowest_imports_ms"],
        },
    }
    result["peak_mb"] = round(max(r["peak_mb"] for r in runs), 1)
    result["throttled_periods"] = [f"{r['throttled']}/{r['periods']}" for r in runs]
    result["meets_targets"] = meets(result)
    return result


def meets(result: dict) -> dict[str, bool]:
    return {
        "cold_start": result["cold_start_s"] <= TARGETS["cold_start_s"],
        **{name: result["warm"][name]["p50_ms"] <= TARGETS[name] for name in TARGETS if name in result["warm"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per photo and run")
    parser.add_argument("--gap", type=float, default=0.25, help="seconds between warm requests")
    parser.add_argument("--tiers", default=",".join(str(t.mem_mib) for t in TIERS), help="memory sizes in MiB")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the environment to serve from")
    parser.add_argument("--no-full", action="store_true", help="skip the whole-machine run")
    args = parser.parse_args()

    photos = {name: build() for name, build in PHOTOS.items()}
    photo_path = Path(tempfile.gettempdir()) / "emotion-bench-astronaut.jpg"
    photo_path.write_bytes(photos[FIRST_PHOTO])
    wanted = {int(m) for m in args.tiers.split(",") if m}
    result: dict = {
        "cpu": cpu_model(),
        "python": args.python,
        "runs": args.runs,
        "requests": args.requests,
        "gap_s": args.gap,
        "targets": TARGETS,
        "tiers": {},
    }
    why_not = unavailable()
    if why_not:
        sys.exit(f"no cgroups here ({why_not}): the tiers cannot be measured; bench.cold_start and bench.latency can")
    for tier in [t for t in TIERS if t.mem_mib in wanted] + ([] if args.no_full else [None]):
        name = tier.name if tier else "whole machine"
        print(f"measuring {name}", file=sys.stderr)
        result["tiers"][name] = measure(args.python, tier, photos, photo_path, args)
    write("tiers", result)


if __name__ == "__main__":
    main()
