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
    "INSTANCE_MEMORY_MIB": "256",
    "RESULTS_BUCKET": "",
    "RESULTS_PREFIX": "results/",
    "MAX_EVENT_AGE_SECONDS": "86400",
    "CORS_ALLOW_ORIGIN": "*",
    "LOG_LEVEL": "INFO",
}

#: Resident memory of the serving worker with the models loaded and a few requests served (measured:
#: bench/README.md), and what the instance needs besides the worker (the framework's parent process).
WORKER_BASE_MB = 110
RUNTIME_HEADROOM_MB = 28
#: Per analysis, besides the file and the decoder: the working images, detector and preview buffers.
PIPELINE_MB = 10
#: The least a decoder may be given: a 12 MP baseline JPEG or an 8-bit PNG of any size fit in it.
MIN_DECODE_MB = 24

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
    instance_memory_mib: int = 256
    results_bucket: str = ""
    results_prefix: str = "results/"
    max_event_age_seconds: int = 86_400
    cors_allow_origin: str = "*"
    log_level: str = "INFO"

    @property
    def analysis_memory_bytes(self) -> int:
        """What one analysis may hold (its file, the decoder, the pipeline): the instance's memory, less the
        worker's base and the runtime, shared by ``max_parallel_analyses``."""
        spare_mb = self.instance_memory_mib * 1.048576 - WORKER_BASE_MB - RUNTIME_HEADROOM_MB
        return int(spare_mb * 1e6) // self.max_parallel_analyses

    def check_memory(self) -> None:
        """Refuse limits the instance's memory cannot hold. An analysis holds its file, the pipeline and at
        least a decoder's minimum; before that, a JSON body (base64: 4/3 of the file) is held twice while
        it is read and parsed."""
        file_mb = self.max_image_bytes / 1e6
        needed_mb = max(file_mb + PIPELINE_MB + MIN_DECODE_MB, 2 * file_mb * 4 / 3)
        if self.analysis_memory_bytes < needed_mb * 1e6:
            raise ValueError(
                f"INSTANCE_MEMORY_MIB={self.instance_memory_mib} cannot hold MAX_PARALLEL_ANALYSES="
                f"{self.max_parallel_analyses} analyses of files up to MAX_IMAGE_BYTES={self.max_image_bytes}: "
                f"each would get {self.analysis_memory_bytes / 1e6:.0f} MB (the instance's memory less "
                f"{WORKER_BASE_MB} MB for the worker and {RUNTIME_HEADROOM_MB} MB for the runtime, shared) and "
                f"needs {needed_mb:.0f} MB; lower MAX_PARALLEL_ANALYSES or MAX_IMAGE_BYTES, or give it more memory"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every variable in ``ENV_VARS``; a malformed value fails at start-up, not per request."""
        source = os.environ if env is None else env

        def get(name: str) -> str:
            return source.get(name, ENV_VARS[name])

        settings = cls(
            max_image_bytes=_positive_int("MAX_IMAGE_BYTES", get("MAX_IMAGE_BYTES")),
            max_image_pixels=_positive_int("MAX_IMAGE_PIXELS", get("MAX_IMAGE_PIXELS")),
            whole_image_fallback=_flag("WHOLE_IMAGE_FALLBACK", get("WHOLE_IMAGE_FALLBACK")),
            detect_max_side=_positive_int("DETECT_MAX_SIDE", get("DETECT_MAX_SIDE")),
            detect_min_face=_positive_int("DETECT_MIN_FACE", get("DETECT_MIN_FACE")),
            max_parallel_analyses=_positive_int("MAX_PARALLEL_ANALYSES", get("MAX_PARALLEL_ANALYSES")),
            instance_memory_mib=_positive_int("INSTANCE_MEMORY_MIB", get("INSTANCE_MEMORY_MIB")),
            results_bucket=get("RESULTS_BUCKET").strip(),
            results_prefix=get("RESULTS_PREFIX"),
            max_event_age_seconds=_positive_int("MAX_EVENT_AGE_SECONDS", get("MAX_EVENT_AGE_SECONDS")),
            cors_allow_origin=get("CORS_ALLOW_ORIGIN"),
            log_level=get("LOG_LEVEL").upper(),
        )
        settings.check_memory()
        return settings
