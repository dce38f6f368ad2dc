"""Start real local servers (functions-framework) on loopback; shared by the tests and the benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers; fail early with the server's output if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server_output(process)}")
        try:
            requests.options(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not come up in {timeout} s")


def start_function(
    target: str, env: dict[str, str] | None = None, signature: str = "http", port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """Start ``functions-framework --target TARGET`` on a loopback port; returns (process, base URL)."""
    port = port or free_port()
    # The server's log goes to a file, not a pipe: a pipe nobody reads fills up and blocks the server.
    log = tempfile.NamedTemporaryFile(prefix=f"{target}-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "functions_framework",
            f"--target={target}",
            f"--signature-type={signature}",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        cwd=ROOT,
        env=os.environ | (env or {}),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    process.log_path = log.name  # type: ignore[attr-defined]
    return process, f"http://127.0.0.1:{port}"


def server_output(process: subprocess.Popen) -> str:
    """What the server has logged so far (servers started elsewhere keep no log here)."""
    path = getattr(process, "log_path", None)
    return Path(path).read_text(errors="replace") if path else ""


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log_path = getattr(process, "log_path", None)
    if log_path:
        Path(log_path).unlink(missing_ok=True)
    log_path = getattr(process, "log_path", None)
    if log_path:
        Path(log_path).unlink(missing_ok=True)
