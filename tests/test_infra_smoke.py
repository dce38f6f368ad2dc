"""``python -m infra.smoke`` against local servers: functions-framework serving both functions and the storage
emulator, with a stand-in for Eventarc that delivers each upload to the storage function as a CloudEvent.

The same command checks a real deployment after ``terraform apply``; here it is known to work before
anyone runs it on a project, and to fail (exit 1, FAIL lines) when the deployment does not answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from .conftest import ROOT, free_port, start_function, stop, wait_until_up

pytest.importorskip("gcp_storage_emulator", reason="needs gcp-storage-emulator (pip install -r requirements-dev.txt)")
from google.cloud import storage

UPLOADS, RESULTS = "smoke-uploads", "smoke-results"


@pytest.fixture(scope="module")
def client(emulator: str) -> Iterator[storage.Client]:
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = emulator
    c = storage.Client(project="smoke")
    for name in (UPLOADS, RESULTS):
        c.create_bucket(name)
    yield c
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="module")
def deployment(emulator: str, client: storage.Client) -> Iterator[dict[str, str]]:
    """Both functions as Terraform configures them (separate results bucket), and the event relay."""
    env = {"STORAGE_EMULATOR_HOST": emulator, "RESULTS_BUCKET": RESULTS, "RESULTS_PREFIX": "results/"}
    http, http_url = start_function("analyze_http", env)
    gcs, gcs_url = start_function("analyze_gcs", env, signature="cloudevent")
    done = threading.Event()
    relay = threading.Thread(target=_relay_uploads, args=(client, gcs_url, done), daemon=True)
    try:
        wait_until_up(http_url, http)
        wait_until_up(gcs_url, gcs)
        relay.start()
        yield {"http_url": http_url, "emulator": emulator}
    finally:
        done.set()
        if relay.is_alive():
            relay.join(timeout=10)
        stop(http)
        stop(gcs)


def _relay_uploads(client: storage.Client, url: str, done: threading.Event) -> None:
    """What Eventarc does on Google Cloud: deliver each new object generation of the uploads bucket to the
    storage function as a ``google.cloud.storage.object.v1.finalized`` CloudEvent (binary mode)."""
    seen: set[tuple[str, int]] = set()
    while not done.wait(0.25):
        for blob in client.list_blobs(UPLOADS):
            key = (blob.name, int(blob.generation))
            if key in seen:
                continue
            seen.add(key)
            data = {
                "bucket": UPLOADS,
                "name": blob.name,
                "generation": str(blob.generation),
                "contentType": blob.content_type,
                "size": str(blob.size),
                "timeCreated": datetime.now(UTC).isoformat(),
            }
            headers = {
                "ce-id": uuid.uuid4().hex,
                "ce-specversion": "1.0",
                "ce-type": "google.cloud.storage.object.v1.finalized",
                "ce-source": f"//storage.googleapis.com/projects/_/buckets/{UPLOADS}",
                "ce-subject": f"objects/{blob.name}",
                "ce-time": datetime.now(UTC).isoformat(),
                "Content-Type": "application/json",
            }
            requests.post(url, data=json.dumps(data), headers=headers, timeout=120)


def _smoke(emulator: str, *flags: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"STORAGE_EMULATOR_HOST": emulator, "SMOKE_IDENTITY_TOKEN": "local-test-token"}
    return subprocess.run(
        [sys.executable, "-m", "infra.smoke", *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_smoke_passes_against_a_working_deployment(deployment: dict[str, str], client: storage.Client) -> None:
    done = _smoke(
        deployment["emulator"],
        f"--http-url={deployment['http_url']}",
        f"--uploads-bucket={UPLOADS}",
        f"--results-bucket={RESULTS}",
        "--results-prefix=results/",
        "--timeout=120",
    )
    print(done.stdout)  # the lines the command prints (pytest -s shows them)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["PASS", "config"],
        ["PASS", "http"],
        ["PASS", "upload"],
        ["PASS", "result"],
        ["PASS", "cleanup"],
    ], done.stdout
    assert "1 face(s)" in lines[1] and "1 face(s)" in lines[3]
    # It cleaned up after itself: no photo, no result left.
    assert not list(client.list_blobs(UPLOADS, prefix="smoke/"))
    assert not list(client.list_blobs(RESULTS, prefix="results/"))


def test_smoke_fails_when_the_deployment_does_not_answer(deployment: dict[str, str], client: storage.Client) -> None:
    """Nothing listens on the URL and no event is delivered from this bucket: FAIL lines and exit 1."""
    client.create_bucket("smoke-unwatched")
    done = _smoke(
        deployment["emulator"],
        f"--http-url=http://127.0.0.1:{free_port()}",
        "--uploads-bucket=smoke-unwatched",
        f"--results-bucket={RESULTS}",
        "--results-prefix=results/",
        "--timeout=3",
    )
    print(done.stdout)
    assert done.returncode == 1, done.stdout + done.stderr
    verdicts = {line.split()[1]: line.split()[0] for line in done.stdout.splitlines()}
    assert verdicts == {"config": "PASS", "http": "FAIL", "upload": "PASS", "result": "FAIL", "cleanup": "PASS"}


def test_smoke_without_outputs_or_flags_fails_clearly(tmp_path) -> None:
    done = _smoke("http://127.0.0.1:9", f"--tf-dir={tmp_path}")
    assert done.returncode == 1
    assert done.stdout.startswith("FAIL  config"), done.stdout
