"""Loading ``.tflite`` files with LiteRT, the one runtime the serving path uses (never TensorFlow)."""

from __future__ import annotations

from pathlib import Path

from ai_edge_litert.interpreter import Interpreter

from emotion.errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def load_interpreter(path: Path, num_threads: int = 1) -> Interpreter:
    """An interpreter for ``path`` with tensors allocated; a missing or broken file is a ``ModelError``."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"LiteRT cannot load {path}: {exc}") from exc
    return interpreter
