"""Importing the library does only imports: the model tooling, the batch rules and the typed results load
no serving runtime (OpenCV, LiteRT) until they use it, and the entry point, not a library module, sets
OpenCV's thread count."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT

RUNTIMES = ("cv2", "ai_edge_litert")


def loaded_after(statement: str) -> dict[str, object]:
    """Which serving runtimes a fresh interpreter holds after ``statement``, and OpenCV's thread count."""
    probe = (
        f"{statement}\n"
        "import json, sys\n"
        f"loaded = [m for m in {RUNTIMES!r} if m in sys.modules]\n"
        "threads = sys.modules['cv2'].getNumThreads() if 'cv2' in sys.modules else None\n"
        "print(json.dumps({'loaded': loaded, 'threads': threads}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "statement",
    [
        "import emotion",
        "import emotion.training.metrics",
        "import emotion.training.data",
        "import emotion.result, emotion.geometry, emotion.config, emotion.errors, emotion.labels",
        "from emotion import EMOTIONS, EmotionError",
    ],
)
def test_light_imports_load_no_serving_runtime(statement: str) -> None:
    assert loaded_after(statement)["loaded"] == []


def test_the_lazy_names_load_the_pipeline_on_first_use() -> None:
    assert loaded_after("from emotion import Analyzer")["loaded"] == list(RUNTIMES)


def test_the_library_leaves_opencv_threads_alone_and_the_entry_point_sets_one() -> None:
    library = loaded_after("import cv2; cv2.setNumThreads(3); import emotion.pipeline, emotion.http_api")
    assert library == {"loaded": list(RUNTIMES), "threads": 3}, "a library import changed a setting"
    assert loaded_after("import cv2; cv2.setNumThreads(3); import main")["threads"] == 1


def test_an_unknown_name_is_an_attribute_error() -> None:
    import emotion

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        emotion.nothing  # noqa: B018
    assert emotion.analyze is emotion.pipeline.analyze and emotion.pipeline.__name__ == "emotion.pipeline"
