"""What a cold instance starts: at 0.167 vCPU every extra thread that spins at start-up costs start-up time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.servers import ROOT

COUNT_THREADS = """
import os, sys
import main
main.ANALYZER.analyze(open(sys.argv[1], "rb").read())
print(len(os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc (Linux)")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="thread pools start one thread per extra core")
def test_the_entry_point_runs_on_one_thread(tmp_path: Path, astronaut_jpeg: bytes) -> None:
    """Loading main.py and analyzing a photo leaves no worker threads (OpenBLAS, OpenCV, LiteRT) behind."""
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(astronaut_jpeg)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run(
        [sys.executable, "-c", COUNT_THREADS, str(photo)], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "1"
