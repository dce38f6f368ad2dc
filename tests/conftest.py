"""Shared fixtures: real servers on loopback (functions-framework, the storage emulator) and test images."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("EMOTION_SHARED_DATA", ROOT.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers; fail early with the server's output if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{output}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout} s")


def start_function(
    target: str, env: dict[str, str] | None = None, signature: str = "http"
) -> tuple[subprocess.Popen, str]:
    """Start ``functions-framework --target TARGET`` on a free loopback port; returns (process, base URL)."""
    port = free_port()
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
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def http_server() -> Iterator[str]:
    """A real functions-framework server running ``analyze_http``; yields its base URL."""
    process, url = start_function("analyze_http")
    try:
        # OPTIONS is cheap and needs no page or model work: good for a readiness probe.
        wait_until_up(url, process)
        yield url
    finally:
        stop(process)


def encode(array: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut: np.ndarray) -> bytes:
    return encode(astronaut, "JPEG", quality=92)


@pytest.fixture(scope="session")
def validate_result():
    """Validate a result dict against the published JSON Schema (and check what a schema can't say)."""
    import json

    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads((ROOT / "emotion" / "result.schema.json").read_text()))

    def check(result: dict) -> dict:
        validator.validate(result)
        for face in result["faces"]:
            assert abs(sum(face["emotions"].values()) - 1.0) < 1e-4
            assert face["dominant_emotion"] == max(face["emotions"], key=face["emotions"].get)
            box = face["box"]
            assert box["x"] + box["width"] <= result["image"]["width"]
            assert box["y"] + box["height"] <= result["image"]["height"]
        return result

    return check


@pytest.fixture(scope="session")
def validate_error():
    import json

    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads((ROOT / "emotion" / "error.schema.json").read_text()))

    def check(body: dict, code: str | None = None) -> dict:
        validator.validate(body)
        if code is not None:
            assert body["error"]["code"] == code, body
        return body

    return check


# The astronaut's face in skimage.data.astronaut() (x, y, width, height), measured once by eye.
ASTRONAUT_FACE = (175, 55, 100, 115)


def overlaps_astronaut_face(box: dict, shift: tuple[int, int] = (0, 0)) -> bool:
    """True when ``box`` covers most of the astronaut's face and is not much larger than it."""
    fx, fy, fw, fh = ASTRONAUT_FACE
    fx, fy = fx + shift[0], fy + shift[1]
    ix = max(0, min(fx + fw, box["x"] + box["width"]) - max(fx, box["x"]))
    iy = max(0, min(fy + fh, box["y"] + box["height"]) - max(fy, box["y"]))
    inter = ix * iy
    union = fw * fh + box["width"] * box["height"] - inter
    return inter / union > 0.5
