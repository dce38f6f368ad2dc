"""The storage function's decisions, as pure functions: no server, no storage client."""

from __future__ import annotations

import gzip
import hashlib
import logging
from datetime import UTC, datetime, timedelta

import pytest

from emotion import bucket_events as be
from emotion.bucket_events import (
    FINALIZED,
    MalformedEventError,
    ObjectEvent,
    StoredResult,
    Verdict,
    inflate,
    judge_stored,
    marker_name,
    needs_live_generation,
    parse_count,
    result_name,
    screen,
)
from emotion.config import Settings
from emotion.errors import CorruptImageError, ImageTooLargeError
from emotion.result import Result

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SAME = Settings()  # results beside the uploads, under results/
SEPARATE = Settings(results_bucket="results-bucket")


def _data(**overrides: object) -> dict:
    return {
        "bucket": "uploads",
        "name": "photos/a.jpg",
        "generation": "1700000000000001",
        "contentType": "image/jpeg",
        "size": "1234",
        "timeCreated": "2026-11-27T11:59:00.000Z",
    } | overrides


def _event(**overrides: object) -> ObjectEvent:
    return ObjectEvent.parse(_data(**overrides), None)


# --- parsing ---------------------------------------------------------------------------------------


def test_an_event_is_parsed_with_its_fields() -> None:
    event = ObjectEvent.parse(_data(), "2026-11-27T11:59:30Z")
    assert event == ObjectEvent(
        bucket="uploads",
        name="photos/a.jpg",
        generation=1700000000000001,
        content_type="image/jpeg",
        size=1234,
        time=datetime(2026, 11, 27, 11, 59, 30, tzinfo=UTC),
    )
    assert event.source().to_json() == {"bucket": "uploads", "name": "photos/a.jpg", "generation": "1700000000000001"}


def test_the_content_type_is_lower_cased_without_parameters() -> None:
    assert _event(contentType="IMAGE/JPEG; charset=binary").content_type == "image/jpeg"
    assert _event(contentType=None).content_type == ""


@pytest.mark.parametrize(
    ("event_time", "time_created", "expected"),
    [
        ("2026-11-27T10:00:00", None, datetime(2026, 11, 27, 10, tzinfo=UTC)),  # naive: UTC
        (None, "2026-11-27T10:00:00", datetime(2026, 11, 27, 10, tzinfo=UTC)),  # naive timeCreated
        ("2026-11-27T10:00:00+02:00", "2026-11-27T01:00:00Z", datetime(2026, 11, 27, 8, tzinfo=UTC)),
        (12345, "2026-11-27T10:00:00Z", datetime(2026, 11, 27, 10, tzinfo=UTC)),  # not a string: fall back
        ("yesterday", "2026-11-27T10:00:00.5z", datetime(2026, 11, 27, 10, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_the_event_time_is_always_aware(event_time, time_created, expected) -> None:
    event = ObjectEvent.parse(_data(timeCreated=time_created), event_time)
    assert event.time == expected and event.time.tzinfo is not None
    assert screen(event, SAME, NOW) in (None, "skipped: event too old")  # comparable with an aware now: no TypeError


@pytest.mark.parametrize(
    "overrides",
    [
        {"bucket": "ab"},
        {"bucket": "Uploads"},
        {"bucket": "-uploads"},
        {"bucket": "uploads-"},
        {"bucket": "up..loads"},
        {"bucket": "up loads"},
        {"bucket": "a" * 223},
        {"bucket": None},
        {"bucket": 7},
        {"name": ""},
        {"name": "."},
        {"name": ".."},
        {"name": "a\rb.jpg"},
        {"name": "a\nb.jpg"},
        {"name": "\ud800.jpg"},
        {"name": "n" * 1025},
        {"name": "é" * 513},
        {"name": ["a.jpg"]},
        {"generation": None},
        {"generation": "0"},
        {"generation": "-1"},
        {"generation": "1.5"},
        {"generation": "12345678901234567890"},
        {"generation": True},
        {"size": "-1"},
        {"size": "big"},
        {"contentType": ["image/jpeg"]},
        {"timeCreated": None},
        {"timeCreated": "soon"},
    ],
)
def test_malformed_events_are_refused(overrides) -> None:
    with pytest.raises(MalformedEventError):
        ObjectEvent.parse(_data(**overrides), None)


@pytest.mark.parametrize("data", [None, [], "text", 5])
def test_a_payload_that_is_not_an_object_is_refused(data) -> None:
    with pytest.raises(MalformedEventError):
        ObjectEvent.parse(data, "2026-11-27T10:00:00Z")


@pytest.mark.parametrize(
    "overrides",
    [
        {"bucket": "abc"},
        {"bucket": "my_bucket.example.com"},
        {"bucket": "a" * 63},
        {"name": "n" * 1024},
        {"name": "é" * 512},
        {"generation": 42},
        {"size": 0},
    ],
)
def test_valid_edge_cases_are_accepted(overrides) -> None:
    ObjectEvent.parse(_data(**overrides), None)


def test_size_defaults_to_zero() -> None:
    data = _data()
    del data["size"]
    assert ObjectEvent.parse(data, None).size == 0


# --- screening -------------------------------------------------------------------------------------


def test_events_are_screened_by_age_prefix_and_type() -> None:
    limit = SAME.max_event_age_seconds
    assert screen(_event(), SAME, NOW) is None
    on_limit = ObjectEvent.parse(_data(), (NOW - timedelta(seconds=limit)).isoformat())
    past = ObjectEvent.parse(_data(), (NOW - timedelta(seconds=limit + 1)).isoformat())
    assert screen(on_limit, SAME, NOW) is None
    assert screen(past, SAME, NOW) == "skipped: event too old"
    assert screen(_event(name="results/a.jpg"), SAME, NOW) == "skipped: a result object"
    assert screen(_event(name="notes.txt", contentType="text/plain"), SAME, NOW) == "skipped: not an image"


def test_the_results_prefix_only_matters_in_the_results_bucket() -> None:
    assert screen(_event(name="results/a.jpg"), SEPARATE, NOW) is None
    assert screen(_event(bucket="results-bucket", name="results/a.jpg"), SEPARATE, NOW) == "skipped: a result object"


@pytest.mark.parametrize(
    ("name", "content_type", "image"),
    [
        ("a.txt", "image/png", True),
        ("a.JPG", "application/octet-stream", True),
        ("a.webp", "", True),
        ("a.jpg", "text/plain", False),
        ("a.bin", "application/octet-stream", False),
        ("jpg", "", False),
    ],
)
def test_what_looks_like_an_image(name, content_type, image) -> None:
    assert be.looks_like_image(_event(name=name, contentType=content_type)) is image


# --- names -----------------------------------------------------------------------------------------


def test_result_names_in_the_same_and_in_a_separate_bucket() -> None:
    assert result_name(_event(), SAME) == "results/photos/a.jpg.json"
    assert result_name(_event(), SEPARATE) == "results/uploads/photos/a.jpg.json"
    assert result_name(_event(bucket="other"), SEPARATE) == "results/other/photos/a.jpg.json"


def test_a_result_name_that_fits_exactly_is_kept_whole() -> None:
    name = "n" * (1024 - len("results/") - len(".json"))
    assert result_name(_event(name=name), SAME) == f"results/{name}.json"
    assert len(result_name(_event(name=name), SAME).encode()) == 1024


@pytest.mark.parametrize("unit", ["n", "é", "😀"])
@pytest.mark.parametrize("settings", [SAME, SEPARATE], ids=["same", "separate"])
def test_a_result_name_that_would_not_fit_is_cut_and_hashed(unit, settings) -> None:
    name = "dir/" + unit * ((1024 - 4) // len(unit.encode()))
    target = result_name(_event(name=name), settings)
    folder = "results/" if settings is SAME else "results/uploads/"
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    assert target.startswith(folder) and target.endswith(f"~{digest}.json")
    cut = target[len(folder) : -len(f"~{digest}.json")]
    assert name.startswith(cut) and len(target.encode()) <= 1024
    assert len(target.encode()) > 1024 - len(unit.encode())  # as long as a character boundary allows
    assert result_name(_event(name=name), settings) == target  # deterministic
    assert result_name(_event(name=name[:-1] + "x"), settings) != target  # the hash tells them apart


def test_a_results_prefix_that_leaves_no_room_keeps_nothing_of_the_name() -> None:
    """Cut to the longest prefix that fits, which is none: the folder and the hash alone."""
    settings = Settings(results_prefix="p" * 1010 + "/")  # the whole name would take 1028 bytes
    digest = hashlib.sha256(b"photos/a.jpg").hexdigest()[:32]
    assert result_name(_event(), settings) == "p" * 1010 + f"/~{digest}.json"


def test_marker_names_are_short_and_distinct() -> None:
    one = marker_name(_event(), SAME)
    assert one == (
        "results/.attempts/" + hashlib.sha256(b"uploads/photos/a.jpg").hexdigest()[:32] + ".1700000000000001"
    )
    assert marker_name(_event(generation="2"), SAME) != one
    assert marker_name(_event(bucket="other"), SAME) != one
    assert len(marker_name(_event(name="n" * 1024), SAME)) == len(one)
    assert screen(_event(name=one), SAME, NOW) == "skipped: a result object"


# --- stored results --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", 12),
        ("0", 0),
        ("9223372036854775807", 2**63 - 1),
        ("9223372036854775808", None),
        ("", None),
        (" 1", None),
        ("1e3", None),
        ("-1", None),
        ("١٢", None),  # Arabic-Indic digits: int() would take them
        (12, None),
        (None, None),
    ],
)
def test_parse_count(value, expected) -> None:
    assert parse_count(value) == expected


@pytest.mark.parametrize(
    ("stored", "live", "verdict"),
    [
        (None, None, Verdict(None, 0)),
        (StoredResult(77, None), None, Verdict(None, 77, "replacing a result with malformed source metadata")),
        (StoredResult(77, 10), None, Verdict("skipped: result already stored")),
        (StoredResult(77, 9), None, Verdict(None, 77)),
        (StoredResult(77, 11), 11, Verdict("skipped: a newer generation's result is stored")),
        (StoredResult(77, 11), 12, Verdict("skipped: a newer generation's result is stored")),
        (StoredResult(77, 11), None, Verdict("skipped: a newer generation's result is stored")),  # source gone
        (
            StoredResult(77, 11),
            10,
            Verdict(None, 77, "replacing a result that claims a generation the source never had"),
        ),
    ],
)
def test_judge_stored(stored, live, verdict) -> None:
    assert judge_stored(10, stored, live) == verdict


def test_the_live_generation_is_needed_only_for_a_newer_claim() -> None:
    assert not needs_live_generation(10, None)
    assert not needs_live_generation(10, StoredResult(1, None))
    assert not needs_live_generation(10, StoredResult(1, 10))
    assert needs_live_generation(10, StoredResult(1, 11))


# --- bytes -----------------------------------------------------------------------------------------


def test_inflate_leaves_plain_and_mislabelled_bytes_alone() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(100)
    assert inflate(jpeg, None, 10) is jpeg  # not labelled: untouched, whatever the size (the cap was the download's)
    assert inflate(jpeg, "gzip", 10) is jpeg  # labelled gzip, but not gzip
    zipped = gzip.compress(jpeg)
    assert inflate(zipped, "identity", 10) is zipped


@pytest.mark.parametrize("label", ["gzip", "GZIP", " gzip "])
def test_inflate_gunzips_under_the_limit(label) -> None:
    data = bytes(range(256)) * 4
    assert inflate(gzip.compress(data), label, len(data)) == data
    with pytest.raises(ImageTooLargeError, match="inflates to more than 1023 bytes"):
        inflate(gzip.compress(data), label, len(data) - 1)


def test_inflate_refuses_a_bomb_without_inflating_it() -> None:
    bomb = gzip.compress(bytes(50_000_000))
    with pytest.raises(ImageTooLargeError):
        inflate(bomb, "gzip", 1000)


@pytest.mark.parametrize(
    "damage",
    [lambda z: z[: len(z) // 2], lambda z: z[:10] + b"\x00" * (len(z) - 10)],
    ids=["truncated", "damaged"],
)
def test_inflate_refuses_broken_gzip(damage) -> None:
    with pytest.raises(CorruptImageError):
        inflate(damage(gzip.compress(bytes(range(256)) * 40)), "gzip", 1_000_000)


def test_the_capped_sink_stops_at_the_limit() -> None:
    sink = be._CappedSink(10)
    sink.write(b"12345")
    sink.write(memoryview(b"67890"))
    assert sink.value() == b"1234567890"
    with pytest.raises(ImageTooLargeError, match="over the limit of 10 bytes"):
        sink.write(b"x")


def test_error_bodies_follow_the_error_schema(validate_error) -> None:
    validate_error(be.gave_up(2).to_json(), "internal")
    assert be.gave_up(2).message.startswith("the analysis failed 2 times")


# --- the delivery edge -----------------------------------------------------------------------------


def _no_client():
    raise AssertionError("no storage call was needed")


class _Analyzer:
    settings = SAME

    def analyze(self, data: bytes) -> Result:
        raise AssertionError("nothing to analyze")


@pytest.mark.parametrize("event_type", ["google.cloud.storage.object.v1.deleted", None, "", FINALIZED.upper()])
def test_only_finalized_events_are_handled(event_type, gcs_log) -> None:
    outcome = be.handle_delivery(event_type, None, "id-1", _data(), _Analyzer(), _no_client)
    assert outcome == "skipped: not a finalized event"
    [record] = gcs_log
    assert (record.getMessage(), record.type, record.event_id) == (outcome, str(event_type), "id-1")


def test_a_malformed_event_is_logged_and_dropped(gcs_log) -> None:
    outcome = be.handle_delivery(FINALIZED, None, "id-2", _data(bucket="Bad!"), _Analyzer(), _no_client)
    assert outcome == "dropped a malformed event"
    [record] = gcs_log
    assert record.levelno == logging.ERROR and "not a bucket name" in record.error and record.event_id == "id-2"
