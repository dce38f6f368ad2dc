"""Smoke test of a deployment: the HTTP function answers with faces, and a photo uploaded to the uploads
bucket gets its result in the results bucket.

Run it from the repository root right after ``terraform apply``::

    python -m infra.smoke --tf-dir infra

It reads the URL and bucket names from ``terraform output`` (or takes them as flags), calls the HTTP
function with your identity token, uploads a photo that ships with the repository and waits for its
result, then prints one line per step (PASS or FAIL, its time, what it saw) and exits non-zero if a step
failed. It needs what ``requirements.txt`` installs (google-cloud-storage brings requests and google-auth)
and credentials that may upload to and read the buckets (``gcloud auth application-default login``).

Against local servers (as tests/test_infra_smoke.py runs it): pass ``--http-url`` and the bucket names,
set ``STORAGE_EMULATOR_HOST`` for the storage emulator, and give the token with ``--identity-token`` or
``SMOKE_IDENTITY_TOKEN`` (or ``--no-auth``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
# A photo with one face that ships with the repository: the public-domain portrait the README uses.
DEFAULT_PHOTO = ROOT / "docs" / "photo.jpg"
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


class StepFailed(Exception):
    """A step saw something other than a working deployment; the message says what."""


@dataclass(frozen=True)
class Target:
    """What the smoke test talks to."""

    http_url: str
    uploads_bucket: str
    results_bucket: str
    results_prefix: str


def terraform_outputs(tf_dir: Path) -> dict[str, Any]:
    """``terraform output -json`` of the deployment in ``tf_dir``, as plain values."""
    binary = shutil.which("terraform")
    if binary is None:
        raise StepFailed("no terraform on PATH: pass --http-url, --uploads-bucket and --results-bucket instead")
    done = subprocess.run(
        [binary, f"-chdir={tf_dir}", "output", "-json"], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise StepFailed(f"terraform output failed: {done.stderr.strip()[:300]}")
    return {name: output["value"] for name, output in json.loads(done.stdout).items()}


def resolve_target(args: argparse.Namespace) -> Target:
    outputs: dict[str, Any] = {}
    if not (args.http_url and args.uploads_bucket and args.results_bucket):
        outputs = terraform_outputs(args.tf_dir)
    values = {
        "http_url": args.http_url or outputs.get("http_url"),
        "uploads_bucket": args.uploads_bucket or outputs.get("uploads_bucket"),
        "results_bucket": args.results_bucket or outputs.get("results_bucket"),
        "results_prefix": args.results_prefix if args.results_prefix is not None else outputs.get("results_prefix"),
    }
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise StepFailed(f"missing {', '.join(missing)} (neither flags nor terraform outputs give them)")
    return Target(**{name: str(value) for name, value in values.items()})


def identity_token(args: argparse.Namespace, audience: str) -> str | None:
    """The caller's identity token for the private HTTP function: the flag or SMOKE_IDENTITY_TOKEN, else one
    from the application-default credentials (service accounts), else ``gcloud auth print-identity-token``."""
    if args.no_auth:
        return None
    given = args.identity_token or os.environ.get("SMOKE_IDENTITY_TOKEN")
    if given:
        return given
    try:
        import google.auth.transport.requests
        import google.oauth2.id_token

        return google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)
    except Exception:  # user credentials cannot mint one this way; gcloud can
        pass
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise StepFailed("no identity token: install gcloud, or pass --identity-token (or --no-auth if public)")
    done = subprocess.run(
        [gcloud, "auth", "print-identity-token"], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise StepFailed(f"gcloud auth print-identity-token failed: {done.stderr.strip()[:300]}")
    return done.stdout.strip()


def check_http(target: Target, photo: Path, token: str | None, timeout: float) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    content_type = CONTENT_TYPES.get(photo.suffix.lower(), "application/octet-stream")
    with photo.open("rb") as handle:
        response = requests.post(
            f"{target.http_url.rstrip('/')}/?preview=false",
            files={"image": (photo.name, handle, content_type)},
            headers=headers,
            timeout=timeout,
        )
    if response.status_code != 200:
        raise StepFailed(f"HTTP {response.status_code}: {response.text[:200]}")
    return describe(response.json())


def describe(result: dict[str, Any]) -> str:
    faces = result.get("faces") or []
    if not faces:
        raise StepFailed(f"no face found in the photo: {json.dumps(result)[:200]}")
    return f"{len(faces)} face(s), dominant {result.get('dominant_emotion')}"


def result_names(target: Target, name: str) -> list[str]:
    """Where the storage function writes the result of ``name``: under a folder named after the source
    bucket when results have a bucket of their own, or directly under the prefix (older code)."""
    return [f"{target.results_prefix}{target.uploads_bucket}/{name}.json", f"{target.results_prefix}{name}.json"]


def wait_for_result(client: Any, target: Target, name: str, generation: int, timeout: float) -> str:
    bucket = client.bucket(target.results_bucket)
    deadline = time.monotonic() + timeout
    while True:
        for candidate in result_names(target, name):
            blob = bucket.get_blob(candidate)
            if blob is None:
                continue
            result = json.loads(blob.download_as_bytes())
            stored = str((result.get("source") or {}).get("generation"))
            if stored != str(generation):
                raise StepFailed(f"gs://{bucket.name}/{candidate} is for generation {stored}, not {generation}")
            if "error" in result:
                raise StepFailed(f"error result: {result['error']}")
            return f"gs://{bucket.name}/{candidate}: {describe(result)}"
        if time.monotonic() >= deadline:
            raise StepFailed(f"no result in gs://{target.results_bucket} after {timeout:.0f} s")
        time.sleep(2.0)


class Report:
    """Runs steps, prints one line each, and remembers whether any failed."""

    def __init__(self) -> None:
        self.failed = False

    def step(self, name: str, action: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail, ok = action(), True
        except StepFailed as exc:
            detail, ok = str(exc), False
        except Exception as exc:  # any other error is this step's failure too, reported, not a traceback
            detail, ok = f"{type(exc).__name__}: {exc}", False
        self.failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name:<8} {time.monotonic() - started:6.2f} s  {detail}", flush=True)
        return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tf-dir", type=Path, default=ROOT / "infra", help="where terraform output runs")
    parser.add_argument("--http-url", help="the HTTP function's URL (default: terraform output http_url)")
    parser.add_argument("--uploads-bucket", help="default: terraform output uploads_bucket")
    parser.add_argument("--results-bucket", help="default: terraform output results_bucket")
    parser.add_argument("--results-prefix", help="default: terraform output results_prefix")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="a photo with a face")
    parser.add_argument("--identity-token", help="token for the HTTP function (default: SMOKE_IDENTITY_TOKEN, gcloud)")
    parser.add_argument("--no-auth", action="store_true", help="send no token (a public function)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the result")
    parser.add_argument("--keep", action="store_true", help="leave the uploaded photo and its result")
    args = parser.parse_args(argv)

    report = Report()
    found: dict[str, Target] = {}

    def read_target() -> str:
        found["target"] = target = resolve_target(args)
        if not args.photo.is_file():
            raise StepFailed(f"no photo at {args.photo}")
        return f"{target.http_url} gs://{target.uploads_bucket} -> gs://{target.results_bucket}/{target.results_prefix}"

    if not report.step("config", read_target):
        return 1
    target = found["target"]
    report.step("http", lambda: check_http(target, args.photo, identity_token(args, target.http_url), 120.0))

    from google.cloud import storage

    client = storage.Client()
    name = f"smoke/{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}{args.photo.suffix.lower()}"
    uploaded: dict[str, int] = {}

    def upload() -> str:
        blob = client.bucket(target.uploads_bucket).blob(name)
        blob.upload_from_filename(str(args.photo), content_type=CONTENT_TYPES.get(args.photo.suffix.lower()))
        uploaded["generation"] = int(blob.generation)
        return f"gs://{target.uploads_bucket}/{name} (generation {blob.generation})"

    if report.step("upload", upload):
        report.step("result", lambda: wait_for_result(client, target, name, uploaded["generation"], args.timeout))
        if not args.keep:

            def clean_up() -> str:
                client.bucket(target.uploads_bucket).delete_blob(name)
                for candidate in result_names(target, name):
                    blob = client.bucket(target.results_bucket).get_blob(candidate)
                    if blob is not None:
                        blob.delete()
                return "deleted the photo and its result"

            report.step("cleanup", clean_up)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
