"""Batch throughput: ``python -m emotion.batch`` on Beam's DirectRunner (two worker processes) against the
sequential CLI (``python -m emotion``) over the same photos, with each worker's peak memory and the CPU
time per photo (from which README.md estimates a Dataflow run).

    .venv/bin/python -m bench.batch [--photos 500] [--repeats 3] [--workers 2]

Both commands run with the Beam interpreter (.venv-batch, `make batch`; --python to change it), so they use
the same library builds; this script itself needs scikit-image, which .venv has. The photos are built in a
temporary folder from images scikit-image ships (the three kinds of bench/images.py and a 12 MP phone-size
photo, mirrored and re-encoded so that no two files are the same) and deleted afterwards. Besides the wall
clock, each run is split into its phases by the moments photos were done (the CLI's printed lines, the
batch's result files): the fixed cost before the first photo and after the last, and the steady rate
between. Figures go to bench/out/batch.json (batch-N.json for other photo counts).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.common import cpu_model, write
from bench.images import PHOTOS

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.1
DEFAULT_PHOTOS = 500


def phone_photo_12mp() -> np.ndarray:
    """The astronaut at a phone camera's 4000x3000 (12 MP): most photos in a bucket are phone photos."""
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((4000, 3000), Image.Resampling.BILINEAR))


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` distinct JPEGs in five subfolders: the three bench photo kinds and a 12 MP phone photo, a
    quarter each in a shuffled (seeded) order, half of them mirrored, at JPEG quality 80-95. The order is
    shuffled because the DirectRunner splits the photos between its workers by position, so photo sizes that
    repeat in step with the names would load one worker more than the other."""
    bases = [np.asarray(Image.open(io.BytesIO(make()))) for make in PHOTOS.values()] + [phone_photo_12mp()]
    kinds = np.random.default_rng(11).permutation(np.arange(count) % len(bases))
    paths = []
    for i, kind in enumerate(kinds):
        rgb = bases[kind]
        if (i // len(bases)) % 2:
            rgb = rgb[:, ::-1]
        path = folder / f"set{i % 5}" / f"photo{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(rgb)).save(path, quality=80 + i % 16)
        paths.append(path)
    return paths


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from the parent ids in /proc (a worker's shell and the worker itself)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        children = parents.get(queue.pop(), [])
        found += children
        queue += children
    return found


def _sample(pid: int) -> dict[str, Any] | None:
    """Peak RSS (MB), CPU seconds and command line of a live process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    if hwm is None:  # a zombie: its last live sample stands
        return None
    return {"peak_mb": round(hwm / 1024, 1), "cpu_s": (int(stat[11]) + int(stat[12])) / TICKS, "cmd": cmdline}


def _phases(started: float, ended: float, done: list[float]) -> dict[str, float]:
    """Where the wall time went, from the moments photos were done (seconds since the epoch): before the
    first photo (imports, model load, job start), the steady rate from the first to the last photo, and
    after the last one (job teardown)."""
    first, last = min(done), max(done)
    return {
        "to_first_photo_s": round(first - started, 2),
        "steady_photos_per_s": round((len(done) - 1) / (last - first), 2),
        "after_last_photo_s": round(ended - last, 2),
    }


def run(argv: list[str], results: Path | None = None) -> dict[str, Any]:
    """Run a command to its end, sampling every process of its tree; wall time, CPU, per-process peaks, and
    its phases: from the moment each result line is printed (the CLI) or each result file in ``results``
    was written (the batch)."""
    before = os.times()
    started, clock = time.time(), time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    printed: list[float] = []
    reader = threading.Thread(target=lambda: printed.extend(time.time() for _ in process.stdout or ()))
    reader.start()
    seen: dict[int, dict[str, Any]] = {}
    while process.poll() is None:
        for pid in [process.pid, *_descendants(process.pid)]:
            if (sample := _sample(pid)) is not None:
                seen[pid] = sample
        time.sleep(POLL_S)
    wall = time.perf_counter() - clock
    ended = started + wall
    reader.join()
    after = os.times()
    assert process.returncode == 0, f"{argv[:4]} exited with {process.returncode}"
    done = printed if results is None else [path.stat().st_mtime for path in results.rglob("*.jpg.json")]
    workers = [s for s in seen.values() if "sdk_worker_main" in s["cmd"] and not s["cmd"].startswith("/bin/sh")]
    return {
        "wall_s": wall,
        # Every process of the tree that was waited for: the command and its worker processes.
        "cpu_s": (after.children_user - before.children_user) + (after.children_system - before.children_system),
        "main_peak_mb": seen[process.pid]["peak_mb"],
        "worker_peaks_mb": sorted(s["peak_mb"] for s in workers),
        "worker_cpu_s": sorted(round(s["cpu_s"], 2) for s in workers),
        **_phases(started, ended, done),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=DEFAULT_PHOTOS, help="other counts write batch-N.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--python", default=str(ROOT / ".venv-batch" / "bin" / "python"), help="Beam interpreter")
    args = parser.parse_args()
    python = args.python
    runs: dict[str, list[dict[str, Any]]] = {"cli": [], "batch": []}
    loads = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        photos = make_photos(Path(tmp) / "photos", args.photos)
        for repeat in range(args.repeats):
            loads.append(os.getloadavg()[0])
            runs["cli"].append(run([python, "-m", "emotion", *map(str, photos)]))
            out = Path(tmp) / f"out{repeat}"
            batch = [python, "-m", "emotion.batch", "--input", str(Path(tmp) / "photos"), "--output", str(out)]
            runs["batch"].append(
                run([*batch, "--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"], out)
            )
            results = sum(1 for _ in out.rglob("*.jpg.json"))
            assert results == args.photos, f"the batch wrote {results} results for {args.photos} photos"
            print(
                f"repeat {repeat + 1}: cli {runs['cli'][-1]['wall_s']:.1f} s, batch {runs['batch'][-1]['wall_s']:.1f} s"
            )
    loads.append(os.getloadavg()[0])

    def median(kind: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[kind]), 3)

    # What an idle machine with one core per worker would give: the CLI's CPU time against the launcher's
    # CPU time plus the busiest worker's (the workers run side by side), per repeat, median.
    projected = statistics.median(
        cli["cpu_s"] / (batch["cpu_s"] - sum(batch["worker_cpu_s"]) + max(batch["worker_cpu_s"]))
        for cli, batch in zip(runs["cli"], runs["batch"], strict=True)
    )
    cli_rate = args.photos / median("cli", "wall_s")
    batch_rate = args.photos / median("batch", "wall_s")
    worker_cpu = statistics.median(sum(r["worker_cpu_s"]) for r in runs["batch"])
    write(
        "batch" if args.photos == DEFAULT_PHOTOS else f"batch-{args.photos}",
        {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load_average_1m_at_each_repeat": [round(x, 2) for x in loads],
            "photos": args.photos,
            "workers": args.workers,
            "repeats": args.repeats,
            "cli_photos_per_s": round(cli_rate, 2),
            "batch_photos_per_s": round(batch_rate, 2),
            "speedup": round(batch_rate / cli_rate, 2),
            "speedup_from_cpu_times": round(projected, 2),
            # Between the first and the last photo: the speedup once both are running, without the fixed
            # costs before the first photo and after the last one (listed per kind below).
            "speedup_steady": round(median("batch", "steady_photos_per_s") / median("cli", "steady_photos_per_s"), 2),
            "to_first_photo_s": {kind: median(kind, "to_first_photo_s") for kind in runs},
            "after_last_photo_s": {kind: median(kind, "after_last_photo_s") for kind in runs},
            "cli_wall_s": [round(r["wall_s"], 2) for r in runs["cli"]],
            "batch_wall_s": [round(r["wall_s"], 2) for r in runs["batch"]],
            "cli_cpu_ms_per_photo": round(1000 * median("cli", "cpu_s") / args.photos, 2),
            "batch_cpu_ms_per_photo_all_processes": round(1000 * median("batch", "cpu_s") / args.photos, 2),
            "batch_cpu_ms_per_photo_workers": round(1000 * worker_cpu / args.photos, 2),
            "cli_peak_mb": median("cli", "main_peak_mb"),
            "batch_launcher_peak_mb": median("batch", "main_peak_mb"),
            "worker_peak_mb": max(max(r["worker_peaks_mb"], default=0) for r in runs["batch"]),
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
