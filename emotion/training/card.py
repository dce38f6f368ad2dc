"""Reading and rewriting ``model.json``, the card beside a model file, for the tools that add figures to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def card_path(model: Path) -> Path:
    """Where the card of ``model`` (a ``.tflite`` file) lies."""
    return model.with_name("model.json")


def read_card(model: Path) -> dict[str, Any]:
    """The card of ``model`` as a dict."""
    card: dict[str, Any] = json.loads(card_path(model).read_text())
    return card


def write_card(model: Path, card: dict[str, Any]) -> None:
    """Write ``card`` beside ``model``, in the layout the committed card has (two-space indent, final newline)."""
    card_path(model).write_text(json.dumps(card, indent=2) + "\n")
