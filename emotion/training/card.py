"""Reading and rewriting ``model.json``, the card beside a model file, for the tools that add figures to it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from emotion.classifier import DEFAULT_MODEL


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


def validation_entry(figures: dict[str, Any]) -> dict[str, Any]:
    """The card's ``validation`` block from ``metrics.report`` figures on FER2013's validation split."""
    keys = ("images", "accuracy", "macro_recall", "per_class_recall", "confusion_matrix")
    return {"data": "FER2013 PublicTest (val.npz)", **{k: figures[k] for k in keys}}


def fitting_parser(doc: str | None, *, fit: str, measure: str, record: str) -> argparse.ArgumentParser:
    """The arguments of a tool that fits something on held-out faces, measures it on the validation split and
    records it in a model's card: ``--model``, ``--data`` (repeatable), ``--val`` and ``--write``."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the .tflite file (model.json beside it)")
    parser.add_argument("--data", action="append", required=True, help=f"held-out npz (x, y) to {fit}; repeatable")
    parser.add_argument("--val", required=True, help=f"the validation npz, {measure}")
    parser.add_argument("--write", action="store_true", help=f"record {record} in model.json")
    return parser
