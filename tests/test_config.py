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


# === The memory each analysis gets, and the start-up check of the limits against it ===================
# Documented figures (README, Configuration): (MiB x 1.048576 - 110 MB worker - 28 MB runtime) / analyses; a
# file of F MB needs max(F + 10 MB pipeline + 24 MB decoder, 2 x 4/3 x F) of it.


@pytest.mark.parametrize(
    ("mib", "parallel", "expected"),
    [(256, 2, 65_217_728), (256, 3, 43_478_485), (512, 1, 398_870_912), (184, 1, 54_937_984)],
)
def test_each_analysis_gets_its_share_of_the_spare_memory(mib: int, parallel: int, expected: int) -> None:
    # 256 MiB = 268,435,456 bytes; less 138 MB leaves 130,435,456, whole bytes shared by the analyses.
    settings = Settings(instance_memory_mib=mib, max_parallel_analyses=parallel)
    assert settings.analysis_memory_bytes == expected and isinstance(settings.analysis_memory_bytes, int)


def test_a_file_needs_34_mb_besides_itself_to_the_byte() -> None:
    """227 MiB for two analyses gives each 50,013,376 bytes: a file 34 MB smaller fits, 10 bytes more do not."""
    assert Settings(instance_memory_mib=227, max_parallel_analyses=2).analysis_memory_bytes == 50_013_376
    fits = 50_013_376 - 34_000_000 - 5
    Settings(instance_memory_mib=227, max_parallel_analyses=2, max_image_bytes=fits).check_memory()
    with pytest.raises(ValueError):
        Settings(instance_memory_mib=227, max_parallel_analyses=2, max_image_bytes=fits + 15).check_memory()


@pytest.mark.parametrize(("mib", "fits"), [(183, False), (184, True)])
def test_20_mb_files_need_54_mb_per_analysis(mib: int, fits: bool) -> None:
    settings = Settings(instance_memory_mib=mib, max_parallel_analyses=1, max_image_bytes=20_000_000)
    if fits:
        settings.check_memory()
    else:
        with pytest.raises(ValueError):
            settings.check_memory()


@pytest.mark.parametrize(("mib", "fits"), [(207, False), (208, True)])
def test_large_files_need_8_thirds_of_themselves_for_a_json_body(mib: int, fits: bool) -> None:
    """30 MB files: 2 x 4/3 x 30 = 80 MB beats 30 + 34; 208 MiB leaves 80.1 MB, 207 MiB 79.06."""
    settings = Settings(instance_memory_mib=mib, max_parallel_analyses=1, max_image_bytes=30_000_000)
    if fits:
        settings.check_memory()
    else:
        with pytest.raises(ValueError):
            settings.check_memory()


def test_the_refusal_says_what_each_analysis_would_get_and_need() -> None:
    with pytest.raises(ValueError) as caught:
        Settings(instance_memory_mib=256, max_parallel_analyses=3).check_memory()
    assert str(caught.value) == (
        "INSTANCE_MEMORY_MIB=256 cannot hold MAX_PARALLEL_ANALYSES=3 analyses of files up to "
        "MAX_IMAGE_BYTES=20000000: each would get 43 MB (the instance's memory less 110 MB for the worker and "
        "28 MB for the runtime, shared) and needs 54 MB; lower MAX_PARALLEL_ANALYSES or MAX_IMAGE_BYTES, or give "
        "it more memory"
    )
