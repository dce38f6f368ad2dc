"""The JSON log lines and the stable error codes clients read."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from emotion import errors, logs


class _Opaque:
    """Not JSON: written with ``str``."""

    def __str__(self) -> str:
        return "opaque"


def _record(**extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"name": "emotion.test", "levelname": "WARNING", "msg": "hello %s", "args": ("you",)}
    )
    record.__dict__.update(extra)
    return record


def test_a_line_is_one_json_object_with_severity_message_logger_and_extras() -> None:
    line = logs.JsonFormatter().format(_record(status=413, path="/x", when=_Opaque()))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["severity"] == "WARNING" and entry["message"] == "hello you" and entry["logger"] == "emotion.test"
    assert entry["status"] == 413 and entry["path"] == "/x" and entry["when"] == "opaque"
    assert set(entry) == {"severity", "message", "logger", "status", "path", "when"}
    assert "stack_trace" not in entry


def test_an_exception_adds_its_stack_trace() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(exc_info=sys.exc_info())
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["stack_trace"].startswith("Traceback") and "ValueError: boom" in entry["stack_trace"]


def test_configure_routes_emotion_logs_to_stdout_once(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("emotion")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers = []
    try:
        logs.configure("WARNING")
        logs.configure("WARNING")
        assert len(logger.handlers) == 1 and logger.level == logging.WARNING and logger.propagate is False
        logging.getLogger("emotion.x").info("quiet")
        logging.getLogger("emotion.x").warning("loud", extra={"n": 1})
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line)["message"] for line in lines] == ["loud"] and json.loads(lines[0])["n"] == 1
        logs.configure()
        assert logger.level == logging.INFO and len(logger.handlers) == 1
    finally:
        logger.handlers, logger.level, logger.propagate = saved


def test_error_codes_are_stable() -> None:
    codes = {
        errors.EmotionError: "internal",
        errors.InvalidImageError: "unsupported_image",
        errors.CorruptImageError: "corrupt_image",
        errors.ImageTooSmallError: "image_too_small",
        errors.ImageTooLargeError: "image_too_large",
        errors.ModelError: "model_error",
    }
    for cls, code in codes.items():
        assert cls.code == code and issubclass(cls, errors.EmotionError) and issubclass(cls, Exception)
