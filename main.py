"""Cloud Function entry points: thin wrappers over the ``emotion`` library.

The model, detector and settings are loaded once per instance, here in global scope; the storage
client is made on the first bucket event, so the HTTP function never imports or builds it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

import flask
import functions_framework
from cloudevents.http import CloudEvent

# Before NumPy loads (the emotion package imports it). An instance has one vCPU or less and serving calls
# no threaded BLAS routine, so OpenBLAS's worker threads would only spin on the CPU quota at start-up.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from emotion import logs
from emotion.analyze import default_analyzer
from emotion.http_api import handle

if TYPE_CHECKING:
    from google.cloud import storage

ANALYZER = default_analyzer()
logs.configure(ANALYZER.settings.log_level)
log = logging.getLogger("emotion.main")
_client_lock = threading.Lock()
_client: storage.Client | None = None


@functions_framework.http
def analyze_http(request: flask.Request) -> flask.Response:
    """POST an image (multipart ``image``, raw ``image/*`` or JSON ``image_base64``); GET serves the page."""
    return handle(request, ANALYZER)


@functions_framework.cloud_event
def analyze_gcs(cloud_event: CloudEvent) -> None:
    """On ``google.cloud.storage.object.v1.finalized``: analyze the object and store its result JSON."""
    from emotion.bucket_events import ObjectEvent, handle_event

    try:
        event = ObjectEvent.parse(cloud_event.data, cloud_event.get("time"))
    except (ValueError, TypeError) as exc:
        log.error("dropped a malformed event", extra={"error": str(exc), "event_id": cloud_event.get("id")})
        return
    handle_event(event, ANALYZER, storage_client())


def storage_client() -> storage.Client:
    """One storage client per instance, made on first use and shared (it is thread-safe)."""
    global _client
    with _client_lock:
        if _client is None:
            from google.cloud import storage

            _client = storage.Client()
        return _client
