"""Cloud Function entry points: thin wrappers over the ``emotion`` library.

The model, detector and settings are loaded once per instance, here in global scope; the storage
client is made on the first bucket event, so the HTTP function never imports or builds it.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import flask
import functions_framework
from cloudevents.http import CloudEvent

# Before NumPy loads (the emotion package imports it). An instance has one vCPU or less and serving calls
# no threaded BLAS routine, so OpenBLAS's worker threads would only spin on the CPU quota at start-up.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2

from emotion import logs, memory
from emotion.http_api import handle
from emotion.pipeline import default_analyzer

if TYPE_CHECKING:
    from google.cloud import storage

# An instance serves concurrent requests on threads of one process on about one vCPU: OpenCV's own
# worker threads would only oversubscribe it. Set here, by the entry point, not on import of the library.
cv2.setNumThreads(1)
memory.configure()
ANALYZER = default_analyzer()
logs.configure(ANALYZER.settings.log_level)
_client_lock = threading.Lock()
_client: storage.Client | None = None


@functions_framework.http
def analyze_http(request: flask.Request) -> flask.Response:
    """POST an image (multipart ``image``, raw ``image/*`` or JSON ``image_base64``); GET serves the page."""
    return handle(request, ANALYZER)


@functions_framework.cloud_event
def analyze_gcs(cloud_event: CloudEvent) -> None:
    """Analyze each ``google.cloud.storage.object.v1.finalized`` object once; other events are logged and acked."""
    from emotion.bucket_events import handle_delivery

    attributes = cloud_event.get_attributes()
    handle_delivery(
        attributes.get("type"), attributes.get("time"), attributes.get("id"), cloud_event.data, ANALYZER, storage_client
    )


def storage_client() -> storage.Client:
    """One storage client per instance, made on first use and shared (it is thread-safe)."""
    global _client
    with _client_lock:
        if _client is None:
            from google.cloud import storage

            _client = storage.Client()
        return _client
