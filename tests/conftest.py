"""Shared fixtures: real servers on loopback (functions-framework, the storage emulator) and test images."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.servers import ROOT, free_port, start_function, stop, wait_until_up

__all__ = ["ROOT", "free_port", "start_function", "stop", "wait_until_up"]
SHARED_DATA = Path(os.environ.get("EMOTION_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def http_server() -> Iterator[str]:
    """A real functions-framework server running ``analyze_http``; yields its base URL."""
    process, url = start_function("analyze_http")
    try:
        wait_until_up(url, process)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """A gcp-storage-emulator server on loopback, in memory (lax: see tests/cloud_storage.py for the strict
    one the storage function's tests use); yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
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
def coffee() -> np.ndarray:
    """A photo with no people in it (a cup of coffee), shipped with scikit-image."""
    from skimage import data

    return data.coffee()


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


class _Kept(logging.Handler):
    """Keeps the records it is given, in order."""

    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def gcs_log() -> Iterator[list[logging.LogRecord]]:
    """The log records of the storage edge (``emotion.gcs``) while a test runs it in this process."""
    records: list[logging.LogRecord] = []
    handler = _Kept(records)
    logger = logging.getLogger("emotion.gcs")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
