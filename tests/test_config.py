"""Settings from the environment: each variable from its own name, the defaults, and bad values refused."""

from __future__ import annotations

import dataclasses

import pytest

from emotion.config import ENV_VARS, Settings

#: The documented defaults, written out here rather than read from the code under test.
DEFAULTS = {
    "max_image_bytes": 20_000_000,
    "max_image_pixels": 40_000_000,
    "whole_image_fallback": True,
    "detect_max_side": 480,
    "detect_min_face": 48,
    "max_parallel_analyses": 2,
    "instance_memory_mib": 256,
    "results_bucket": "",
    "results_prefix": "results/",
    "max_event_age_seconds": 86_400,
    "cors_allow_origin": "*",
    "log_level": "INFO",
}
INTEGERS = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "DETECT_MAX_SIDE",
    "DETECT_MIN_FACE",
    "MAX_PARALLEL_ANALYSES",
    "INSTANCE_MEMORY_MIB",
    "MAX_EVENT_AGE_SECONDS",
]
#: Enough memory for any limit the tests below set (the memory check is tested on its own).
ROOMY = {"INSTANCE_MEMORY_MIB": "200000"}


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    assert dataclasses.asdict(Settings.from_env({})) == DEFAULTS
    assert dataclasses.asdict(Settings()) == DEFAULTS


def test_every_setting_has_one_variable_named_after_it() -> None:
    assert sorted(ENV_VARS) == sorted(name.upper() for name in DEFAULTS)


def test_each_variable_is_read_from_its_own_name() -> None:
    """Distinct values everywhere, so a setting read from a neighbour's variable shows."""
    env = {name: str(1000 + i) for i, name in enumerate(INTEGERS)} | ROOMY
    env |= {
        "WHOLE_IMAGE_FALLBACK": "false",
        "RESULTS_BUCKET": "results-bucket",
        "RESULTS_PREFIX": "out/",
        "CORS_ALLOW_ORIGIN": "https://example.test",
        "LOG_LEVEL": "warning",
    }
    assert dataclasses.asdict(Settings.from_env(env)) == {
        "max_image_bytes": 1000,
        "max_image_pixels": 1001,
        "whole_image_fallback": False,
        "detect_max_side": 1002,
        "detect_min_face": 1003,
        "max_parallel_analyses": 1004,
        "instance_memory_mib": 200000,
        "results_bucket": "results-bucket",
        "results_prefix": "out/",
        "max_event_age_seconds": 1006,
        "cors_allow_origin": "https://example.test",
        "log_level": "WARNING",
    }


def test_without_a_mapping_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DETECT_MIN_FACE", "24")
    monkeypatch.setenv("WHOLE_IMAGE_FALLBACK", "off")
    assert Settings.from_env() == dataclasses.replace(Settings(), detect_min_face=24, whole_image_fallback=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        (" TRUE ", True),
        ("Yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        (" OFF", False),
    ],
)
def test_flags_read_the_usual_spellings(value: str, expected: bool) -> None:
    assert Settings.from_env({"WHOLE_IMAGE_FALLBACK": value}).whole_image_fallback is expected


@pytest.mark.parametrize("value", ["", "maybe", "2", "enabled"])
def test_a_flag_that_is_neither_true_nor_false_stops_start_up(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        Settings.from_env({"WHOLE_IMAGE_FALLBACK": value})
    assert str(caught.value) == f"WHOLE_IMAGE_FALLBACK must be true or false, not {value!r}"


@pytest.mark.parametrize("name", INTEGERS)
@pytest.mark.parametrize("value", ["0", "-3", "", "12.5", "lots"])
def test_a_limit_that_is_not_a_positive_integer_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value) == f"{name} must be a positive integer, not {value!r}"


@pytest.mark.parametrize("name", [n for n in INTEGERS if n not in ROOMY])
def test_one_is_the_smallest_limit_accepted(name: str) -> None:
    assert getattr(Settings.from_env({name: "1"} | ROOMY), name.lower()) == 1
    assert getattr(Settings.from_env({name: " 7 "} | ROOMY), name.lower()) == 7


def test_text_settings_are_tidied_only_where_it_is_safe() -> None:
    """The bucket name is trimmed and the log level upper-cased; prefix and origin are taken as given."""
    settings = Settings.from_env(
        {"RESULTS_BUCKET": "  my-bucket\n", "LOG_LEVEL": "debug", "RESULTS_PREFIX": " a/", "CORS_ALLOW_ORIGIN": ""}
    )
    assert settings.results_bucket == "my-bucket"
    assert settings.log_level == "DEBUG"
    assert settings.results_prefix == " a/"
    assert settings.cors_allow_origin == ""


def test_settings_cannot_change_once_read() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().detect_min_face = 1  # type: ignore[misc]
