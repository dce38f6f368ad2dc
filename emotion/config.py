"""Settings read from the environment once, so one deployed function can be tuned without code."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any

#: Resident memory of the serving worker with the models loaded and a few requests served (measured:
#: bench/README.md), and what the instance needs besides the worker (the framework's parent process).
WORKER_BASE_MB = 110
RUNTIME_HEADROOM_MB = 28
#: Per analysis, besides the file and the decoder: the working images, detector and preview buffers.
PIPELINE_MB = 10
#: The least a decoder may be given: a 12 MP baseline JPEG or an 8-bit PNG of any size fit in it.
MIN_DECODE_MB = 24

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_flag(value: str) -> bool:
    """The one reading of a true/false text (any case, spaces around); ``ValueError`` for anything else."""
    lowered = value.strip().lower()
    if lowered not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError(f"not true or false: {value!r}")
    return lowered in TRUE_WORDS


def _flag(name: str, value: str) -> bool:
    try:
        return parse_flag(value)
    except ValueError:
        raise ValueError(f"{name} must be true or false, not {value!r}") from None


def _positive_int(name: str, value: str) -> int:
    refused = ValueError(f"{name} must be a positive integer, not {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise refused from None  # int's own message would not say which variable is wrong
    if number <= 0:
        raise refused
    return number


def setting(env: str, default: bool | int | str, doc: str, tidy: Callable[[str], str] | None = None) -> Any:
    """One setting, declared once: its variable, its default (whose type picks the parser) and what it does.

    ``tidy`` cleans a text value (trimmed, upper-cased) where that is safe.
    """
    return field(default=default, metadata={"env": env, "doc": doc, "tidy": tidy})


def _parse(spec: Field[Any], value: str) -> bool | int | str:
    name, default = spec.metadata["env"], spec.default
    if isinstance(default, bool):
        return _flag(name, value)
    if isinstance(default, int):
        return _positive_int(name, value)
    tidy = spec.metadata["tidy"]
    return tidy(value) if tidy else value


def _text(default: object) -> str:
    """A default as its variable would spell it."""
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


@dataclass(frozen=True)
class Settings:
    """The service's knobs; ``Settings.from_env()`` reads them, defaults suit the 256 MiB tier."""

    max_image_bytes: int = setting("MAX_IMAGE_BYTES", 20_000_000, "largest file accepted")
    max_image_pixels: int = setting("MAX_IMAGE_PIXELS", 40_000_000, "largest declared width x height")
    whole_image_fallback: bool = setting("WHOLE_IMAGE_FALLBACK", True, "classify the whole image when no face is found")
    detect_max_side: int = setting("DETECT_MAX_SIDE", 480, "longest side of the working image the detector tiles")
    detect_min_face: int = setting("DETECT_MIN_FACE", 48, "smallest face sought, in pixels of the photo")
    max_parallel_analyses: int = setting("MAX_PARALLEL_ANALYSES", 2, "images analyzed at once per instance")
    instance_memory_mib: int = setting("INSTANCE_MEMORY_MIB", 256, "the instance's memory, shared by the analyses")
    results_bucket: str = setting("RESULTS_BUCKET", "", "where results go (empty: the event's bucket)", str.strip)
    results_prefix: str = setting("RESULTS_PREFIX", "results/", "result object name prefix")
    max_event_age_seconds: int = setting("MAX_EVENT_AGE_SECONDS", 86_400, "older storage events are dropped")
    cors_allow_origin: str = setting("CORS_ALLOW_ORIGIN", "*", "the Access-Control-Allow-Origin answer")
    log_level: str = setting("LOG_LEVEL", "INFO", "the emotion loggers' level", str.upper)

    @property
    def analysis_memory_bytes(self) -> int:
        """What one analysis may hold (its file, the decoder, the pipeline): the instance's memory, less the
        worker's base and the runtime, shared by ``max_parallel_analyses``."""
        spare = self.instance_memory_mib * 1024 * 1024 - (WORKER_BASE_MB + RUNTIME_HEADROOM_MB) * 1_000_000
        return spare // self.max_parallel_analyses  # whole bytes, in integers: no rounding error

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
        values: dict[str, Any] = {
            spec.name: _parse(spec, source.get(spec.metadata["env"], _text(spec.default))) for spec in fields(cls)
        }
        settings = cls(**values)
        settings.check_memory()
        return settings


#: Every environment variable the code reads, with its default as text (Terraform sets a subset of these).
ENV_VARS: dict[str, str] = {spec.metadata["env"]: _text(spec.default) for spec in fields(Settings)}
