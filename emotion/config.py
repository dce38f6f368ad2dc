"""Settings read from the environment once, so one deployed function can be tuned without code."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: Every environment variable the code reads, with its default (Terraform sets a subset of these).
ENV_VARS: dict[str, str] = {
    "MAX_IMAGE_BYTES": "20000000",
    "MAX_IMAGE_PIXELS": "40000000",
    "WHOLE_IMAGE_FALLBACK": "true",
    "DETECT_MAX_SIDE": "480",
    "DETECT_MIN_FACE": "48",
    "MAX_PARALLEL_ANALYSES": "2",
    "RESULTS_BUCKET": "",
    "RESULTS_PREFIX": "results/",
    "MAX_EVENT_AGE_SECONDS": "86400",
    "CORS_ALLOW_ORIGIN": "*",
    "LOG_LEVEL": "INFO",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in _TRUE | _FALSE:
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return lowered in _TRUE


def _positive_int(name: str, value: str) -> int:
    refused = ValueError(f"{name} must be a positive integer, not {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise refused from None  # int's own message would not say which variable is wrong
    if number <= 0:
        raise refused
    return number


@dataclass(frozen=True)
class Settings:
    """The service's knobs; ``Settings.from_env()`` reads them, defaults suit the 256 MiB tier."""

    max_image_bytes: int = 20_000_000
    max_image_pixels: int = 40_000_000
    whole_image_fallback: bool = True
    detect_max_side: int = 480
    detect_min_face: int = 48
    max_parallel_analyses: int = 2
    results_bucket: str = ""
    results_prefix: str = "results/"
    max_event_age_seconds: int = 86_400
    cors_allow_origin: str = "*"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every variable in ``ENV_VARS``; a malformed value fails at start-up, not per request."""
        source = os.environ if env is None else env

        def get(name: str) -> str:
            return source.get(name, ENV_VARS[name])

        return cls(
            max_image_bytes=_positive_int("MAX_IMAGE_BYTES", get("MAX_IMAGE_BYTES")),
            max_image_pixels=_positive_int("MAX_IMAGE_PIXELS", get("MAX_IMAGE_PIXELS")),
            whole_image_fallback=_flag("WHOLE_IMAGE_FALLBACK", get("WHOLE_IMAGE_FALLBACK")),
            detect_max_side=_positive_int("DETECT_MAX_SIDE", get("DETECT_MAX_SIDE")),
            detect_min_face=_positive_int("DETECT_MIN_FACE", get("DETECT_MIN_FACE")),
            max_parallel_analyses=_positive_int("MAX_PARALLEL_ANALYSES", get("MAX_PARALLEL_ANALYSES")),
            results_bucket=get("RESULTS_BUCKET").strip(),
            results_prefix=get("RESULTS_PREFIX"),
            max_event_age_seconds=_positive_int("MAX_EVENT_AGE_SECONDS", get("MAX_EVENT_AGE_SECONDS")),
            cors_allow_origin=get("CORS_ALLOW_ORIGIN"),
            log_level=get("LOG_LEVEL").upper(),
        )
