"""``analyze_gcs`` against a real storage emulator over HTTP, with CloudEvents sent to a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import requests

from .conftest import encode, free_port, start_function, stop, wait_until_up

pytest.importorskip("gcp_storage_emulator", reason="needs gcp-storage-emulator (pip install -r requirements-dev.txt)")
from google.cloud import storage

EVENT_TYPE = "google.cloud.storage.object.v1.finalized"
BUCKET = "uploads"


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """A gcp-storage-emulator server on loopback, in memory; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def client(emulator: str) -> storage.Client:
    os.environ["STORAGE_EMULATOR_HOST"] = emulator
    c = storage.Client(project="test")
    c.create_bucket(BUCKET)
    return c


@pytest.fixture(scope="module")
def function(emulator: str, client: storage.Client) -> Iterator[str]:
    """``analyze_gcs`` served by functions-framework; results go to the same bucket under results/."""
    process, url = start_function(
        "analyze_gcs", {"STORAGE_EMULATOR_HOST": emulator, "RESULTS_BUCKET": ""}, signature="cloudevent"
    )
    try:
        wait_until_up(url, process)
        yield url
    finally:
        stop(process)


def _upload(client: storage.Client, name: str, data: bytes, content_type: str) -> storage.Blob:
    blob = client.bucket(BUCKET).blob(name)
    blob.upload_from_string(data, content_type=content_type)
    return blob


def _event_data(blob: storage.Blob, **overrides) -> dict:
    data = {
        "bucket": BUCKET,
        "name": blob.name,
        "generation": str(blob.generation),
        "contentType": blob.content_type,
        "size": str(blob.size),
        "timeCreated": datetime.now(UTC).isoformat(),
    }
    return data | overrides


def _send(url: str, data: dict, *, structured: bool = False, time: datetime | None = None) -> requests.Response:
    """Deliver a storage CloudEvent in binary mode (ce-* headers) or structured mode (one JSON envelope)."""
    attributes = {
        "id": uuid.uuid4().hex,
        "specversion": "1.0",
        "type": EVENT_TYPE,
        "source": f"//storage.googleapis.com/projects/_/buckets/{data['bucket']}",
        "subject": f"objects/{data['name']}",
        "time": (time or datetime.now(UTC)).isoformat(),
    }
    if structured:
        envelope = attributes | {"datacontenttype": "application/json", "data": data}
        return requests.post(
            url, data=json.dumps(envelope), timeout=60, headers={"Content-Type": "application/cloudevents+json"}
        )
    headers = {f"ce-{k}": v for k, v in attributes.items()} | {"Content-Type": "application/json"}
    return requests.post(url, data=json.dumps(data), headers=headers, timeout=60)


def _result(client: storage.Client, name: str) -> storage.Blob | None:
    return client.bucket(BUCKET).get_blob(f"results/{name}.json")


@pytest.mark.parametrize("structured", [False, True], ids=["binary", "structured"])
def test_upload_then_event_stores_a_result(function, client, astronaut_jpeg, structured, validate_result) -> None:
    name = f"photos/{'s' if structured else 'b'}/astronaut.jpg"
    blob = _upload(client, name, astronaut_jpeg, "image/jpeg")
    assert _send(function, _event_data(blob), structured=structured).status_code == 200
    stored = _result(client, name)
    assert stored is not None and stored.content_type == "application/json"
    result = validate_result(json.loads(stored.download_as_bytes()))
    assert result["source"] == {"bucket": BUCKET, "name": name, "generation": str(blob.generation)}
    assert result["dominant_emotion"] == "happy" and len(result["faces"]) == 1
    assert "preview" in result


def test_a_repeated_event_does_not_write_a_second_result(function, client, astronaut_jpeg) -> None:
    blob = _upload(client, "again.png", encode(np.zeros((40, 40, 3), np.uint8) + 90, "PNG"), "image/png")
    data = _event_data(blob)
    assert _send(function, data).status_code == 200
    first = _result(client, "again.png")
    for structured in (False, True):
        assert _send(function, data, structured=structured).status_code == 200
    second = _result(client, "again.png")
    assert (second.generation, second.md5_hash) == (first.generation, first.md5_hash)


def test_a_new_generation_replaces_an_older_result(function, client, astronaut_jpeg) -> None:
    old = _upload(client, "replaced.jpg", encode(np.full((40, 40, 3), 90, np.uint8), "JPEG"), "image/jpeg")
    assert _send(function, _event_data(old)).status_code == 200
    new = _upload(client, "replaced.jpg", astronaut_jpeg, "image/jpeg")
    assert _send(function, _event_data(new)).status_code == 200
    result = json.loads(_result(client, "replaced.jpg").download_as_bytes())
    assert result["source"]["generation"] == str(new.generation) and result["dominant_emotion"] == "happy"
    # a late redelivery of the old generation must not overwrite the newer result
    assert _send(function, _event_data(old)).status_code == 200
    assert json.loads(_result(client, "replaced.jpg").download_as_bytes())["source"]["generation"] == str(
        new.generation
    )


def test_result_objects_are_never_analyzed(function, client) -> None:
    blob = _upload(client, "results/loop.jpg.json", b'{"faces": []}', "application/json")
    assert _send(function, _event_data(blob)).status_code == 200
    blob = _upload(client, "results/sneaky.jpg", b"\xff\xd8\xff", "image/jpeg")
    assert _send(function, _event_data(blob)).status_code == 200
    names = {b.name for b in client.list_blobs(BUCKET, prefix="results/results/")}
    assert names == set()


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("notes.txt", "text/plain"), ("data.json", "application/json"), ("blob.bin", "application/octet-stream")],
)
def test_non_image_objects_are_skipped(function, client, name, content_type) -> None:
    blob = _upload(client, name, b"hello", content_type)
    assert _send(function, _event_data(blob)).status_code == 200
    assert _result(client, name) is None


def test_a_generic_content_type_with_an_image_name_is_analyzed(function, client, astronaut_jpeg) -> None:
    blob = _upload(client, "camera/IMG_0001.JPG", astronaut_jpeg, "application/octet-stream")
    assert _send(function, _event_data(blob)).status_code == 200
    assert json.loads(_result(client, "camera/IMG_0001.JPG").download_as_bytes())["dominant_emotion"] == "happy"


def test_a_corrupt_image_gets_an_error_result(function, client, astronaut_jpeg, validate_error) -> None:
    blob = _upload(client, "broken.jpg", astronaut_jpeg[:500], "image/jpeg")
    assert _send(function, _event_data(blob)).status_code == 200  # returns normally: no endless retries
    body = validate_error(json.loads(_result(client, "broken.jpg").download_as_bytes()), "corrupt_image")
    assert body["source"]["name"] == "broken.jpg"


def test_an_oversized_object_gets_an_error_result_without_download(function, client, validate_error) -> None:
    blob = _upload(client, "huge.png", b"\x89PNG", "image/png")
    assert _send(function, _event_data(blob, size=str(50_000_000))).status_code == 200
    validate_error(json.loads(_result(client, "huge.png").download_as_bytes()), "image_too_large")


def test_a_missing_object_is_dropped(function, client) -> None:
    data = {"bucket": BUCKET, "name": "gone.jpg", "generation": "123", "contentType": "image/jpeg", "size": "10"}
    assert _send(function, data).status_code == 200
    assert _result(client, "gone.jpg") is None


def test_old_events_are_dropped(function, client, astronaut_jpeg) -> None:
    blob = _upload(client, "late.jpg", astronaut_jpeg, "image/jpeg")
    assert _send(function, _event_data(blob), time=datetime.now(UTC) - timedelta(days=3)).status_code == 200
    assert _result(client, "late.jpg") is None


def test_malformed_events_are_dropped(function) -> None:
    assert _send(function, {"bucket": BUCKET, "name": ""}).status_code == 200


def test_a_storage_outage_fails_the_event_so_the_platform_retries(monkeypatch, astronaut_jpeg) -> None:
    """With storage unreachable, the handler raises (a 500 at the HTTP edge) instead of dropping the event."""
    from emotion import bucket_events
    from emotion.analyze import Analyzer
    from emotion.bucket_events import ObjectEvent, handle_event

    monkeypatch.setattr(bucket_events, "STORAGE_RETRY", bucket_events.STORAGE_RETRY.with_timeout(1.0))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    dead = storage.Client(project="test")
    event = ObjectEvent.parse(
        {"bucket": BUCKET, "name": "a.jpg", "generation": "1", "contentType": "image/jpeg", "size": "100"},
        datetime.now(UTC).isoformat(),
    )
    with pytest.raises(Exception) as raised:
        handle_event(event, Analyzer(), dead)
    assert "onnect" in repr(raised.value) or "RetryError" in repr(raised.value)
