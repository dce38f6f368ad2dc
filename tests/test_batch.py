"""``python -m emotion.batch``: Beam's own DirectRunner over a folder and over the storage emulator.

Beam lives in .venv-batch (requirements-batch.txt: it cannot share .venv's pins), so the pipeline runs as
a child process with that interpreter ($BATCH_PYTHON; `make test` sets it), and its results are compared
with what ``analyze`` gives here. The listing, skip and write rules have no Beam in them and are also
tested directly, against the emulator with the Google client.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emotion.batch.cli import parse_args
from emotion.batch.photos import Location, Photo, list_files
from emotion.batch.results import (
    ANALYZED,
    FAILED,
    SKIPPED,
    SUMMARY_COLUMNS,
    GcsResults,
    LocalResults,
    open_results,
    process,
)
from emotion.bucket_events import GENERATION_KEY
from emotion.pipeline import default_analyzer

from .conftest import ROOT, encode

BATCH_PYTHON = Path(os.environ.get("BATCH_PYTHON", ROOT / ".venv-batch" / "bin" / "python"))
# The test photos: name below the input folder -> (bytes maker, expected error code or None).
PHOTOS = ("astronaut.jpg", "sub/flipped.png", "sub/deeper/coffee.webp", "sub/cat.jpeg")
BROKEN = {"broken.jpg": "corrupt_image", "sub/text-named.jpg": "unsupported_image"}
NOT_IMAGES = ("notes.txt", "sub/deeper/data.json")


def _missing_beam() -> None:
    message = f"no Beam interpreter at {BATCH_PYTHON}: run `make batch` (or set BATCH_PYTHON)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


def run_batch(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the CLI with the Beam interpreter; returns the final JSON line (state, counters) and the log."""
    if not BATCH_PYTHON.is_file():
        _missing_beam()
    done = subprocess.run(
        [str(BATCH_PYTHON), "-m", "emotion.batch", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"log": done.stderr}


def expected(data: bytes) -> dict[str, Any]:
    """What ``analyze`` gives for a photo, without the timings (which differ run to run)."""
    result = default_analyzer().analyze(data, preview=False).to_json()
    result.pop("timing_ms")
    return result


def without_timing(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in {"timing_ms", "source"}}


@pytest.fixture(scope="module")
def photo_bytes(astronaut: np.ndarray, coffee: np.ndarray) -> dict[str, bytes]:
    from skimage import data

    jpeg = encode(astronaut, "JPEG", quality=90)
    return {
        "astronaut.jpg": jpeg,
        "sub/flipped.png": encode(np.ascontiguousarray(astronaut[:, ::-1]), "PNG"),
        "sub/deeper/coffee.webp": encode(coffee, "WEBP", quality=80),
        "sub/cat.jpeg": encode(data.chelsea(), "JPEG"),
        "broken.jpg": jpeg[: len(jpeg) // 3],
        "sub/text-named.jpg": b"this is not a JPEG at all\n" * 20,
        "notes.txt": b"not a photo",
        "sub/deeper/data.json": b"{}",
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, photo_bytes: dict[str, bytes]) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for name, data in photo_bytes.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def stored_results(dst: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.relative_to(dst))[: -len(".json")]: json.loads(p.read_text())
        for p in dst.rglob("*.json")
        if not p.name.startswith(".")
    }


def summary_lines(dst: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
    pattern = Path(run["summary"]).name
    return [json.loads(line) for path in dst.glob(pattern) for line in path.read_text().splitlines()]


# === the DirectRunner over a local folder ============================================================


def test_local_folder_first_run_second_run_and_overwrite(
    folder: Path, photo_bytes: dict[str, bytes], tmp_path: Path, validate_result, validate_error
) -> None:
    dst = tmp_path / "out"
    # The default: one worker process per core (here forced to two), each loading the analyzer once.
    first = run_batch("--input", str(folder), "--output", str(dst), "--direct_num_workers=2")
    assert first["state"] == "DONE"
    # Progress shows while it runs: the listing, then each worker's tally.
    assert f"listed {len(PHOTOS) + len(BROKEN)} photos under {folder}" in first["log"]
    assert re.search(r"worker \d+: \d+ photos done \(analyzed \d+", first["log"]), first["log"][-2000:]
    assert first | {"summary": None, "log": None} == {
        "state": "DONE",
        "summary": None,
        "listed": len(PHOTOS) + len(BROKEN),
        "not_images": len(NOT_IMAGES),
        ANALYZED: len(PHOTOS),
        SKIPPED: 0,
        FAILED: len(BROKEN),
        "gone": 0,
        "faces": first["faces"],
        "log": None,
    }
    results = stored_results(dst)
    assert set(results) == set(PHOTOS) | set(BROKEN), "one result per photo, none for other files"
    faces = 0
    for name in PHOTOS:
        document = validate_result(results[name])
        assert without_timing(document) == expected(photo_bytes[name]), name
        assert "preview" not in document
        stat = (folder / name).stat()
        assert document["source"] == {
            "path": str(folder / name),
            "size": stat.st_size,
            "mtime_ns": str(stat.st_mtime_ns),
        }
        faces += sum(face["detection"] == "face" for face in document["faces"])
    assert first["faces"] == faces >= 2, "the astronaut, flipped or not, has a face"
    for name, code in BROKEN.items():
        validate_error(results[name], code)
        assert results[name]["source"]["path"] == str(folder / name)

    rows = {row["name"]: row for row in summary_lines(dst, first)}
    assert set(rows) == set(PHOTOS) | set(BROKEN)
    assert all(set(row) == {name for name, _ in SUMMARY_COLUMNS} for row in rows.values())
    astronaut = rows["astronaut.jpg"]
    largest = results["astronaut.jpg"]["faces"][0]
    assert astronaut["status"] == ANALYZED and astronaut["faces"] >= 1
    assert astronaut["dominant_emotion"] == largest["dominant_emotion"]
    assert {e: astronaut[e] for e in largest["emotions"]} == largest["emotions"]
    assert rows["broken.jpg"] | {"source": None} == dict.fromkeys(rows["broken.jpg"]) | {
        "name": "broken.jpg",
        "status": FAILED,
        "error_code": "corrupt_image",
    }

    # A second run finds every result current and does nothing.
    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*.json")}
    second = run_batch("--input", str(folder), "--output", str(dst), "--direct_running_mode=in_memory")
    assert (second[ANALYZED], second[FAILED], second[SKIPPED]) == (0, 0, len(PHOTOS) + len(BROKEN))
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.json")} == before
    assert {row["status"] for row in summary_lines(dst, second)} == {SKIPPED}

    # --overwrite redoes them all (e.g. after a model change), with previews when asked.
    third = run_batch(
        "--input", str(folder), "--output", str(dst), "--overwrite", "--previews", "--direct_running_mode=in_memory"
    )
    assert (third[ANALYZED], third[FAILED], third[SKIPPED]) == (len(PHOTOS), len(BROKEN), 0)
    redone = stored_results(dst)
    assert all(redone[name]["preview"]["mime_type"] == "image/jpeg" for name in PHOTOS)
    assert all(redone[name]["timing_ms"] != results[name]["timing_ms"] for name in PHOTOS)


def test_glob_input_and_output_inside_the_input(folder: Path, tmp_path: Path) -> None:
    """A glob picks files (names stay relative to the folder before the first wildcard), and files under the
    output are never taken for photos, even when it lies inside the input (as the storage function never
    reads its own results)."""
    src = tmp_path / "in"
    for name in ("astronaut.jpg", "sub/flipped.png", "notes.txt", "results/earlier.png"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((folder / ("sub/flipped.png" if name.endswith(".png") else name)).read_bytes())
    dst = src / "results"
    run = run_batch("--input", f"{src}/**/*.png", "--output", str(dst), "--direct_running_mode=in_memory")
    assert (run["listed"], run[ANALYZED], run["not_images"]) == (1, 1, 0)
    assert set(stored_results(dst)) == {"sub/flipped.png"}


def test_bad_arguments_are_refused_before_beam_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
        (["--input", str(tmp_path / "missing"), "--output", str(tmp_path)], "no folder"),
        (["--input", str(tmp_path), "--output", f"{tmp_path}/*.json"], "not a glob"),
        (["--input", "gs://", "--output", str(tmp_path)], "names no bucket"),
        (["--input", str(tmp_path), "--output", str(tmp_path), "--bigquery-table", "nope"], "PROJECT:DATASET.TABLE"),
        (["--input", "gs://b/", "--output", str(tmp_path), "--runner=DataflowRunner"], "--output must be gs://"),
    ):
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err, argv
    args, beam_args = parse_args(["--input", "gs://b/in/", "--output", "gs://b/out/", "--runner", "DataflowRunner"])
    assert (args.input, args.overwrite, args.previews, beam_args) == (
        "gs://b/in/",
        False,
        False,
        ["--runner", "DataflowRunner"],
    )


BIGQUERY = ("--bigquery-table", "my-project:emotions.photos", "--temp_location", "gs://tmp/t")


def test_bigquery_table_adds_a_write_with_the_summary_columns(tmp_path: Path) -> None:
    """No BigQuery here: the graph is built (not run) and must hold the write with the summary's schema."""
    if not BATCH_PYTHON.is_file():
        _missing_beam()
    script = (
        "import json, sys, apache_beam as beam\n"
        "from emotion.batch.cli import parse_args\n"
        "from emotion.batch.pipeline import build, pipeline_options\n"
        "args, beam_args = parse_args(sys.argv[1:])\n"
        "p = beam.Pipeline(options=pipeline_options(beam_args))\n"
        "build(p, args, 'x')\n"
        "found = []\n"
        "def visit(node):\n"
        "    if isinstance(node.transform, beam.io.WriteToBigQuery):\n"
        "        t = node.transform\n"
        "        found.append([node.full_label, t.schema, t.table_reference.projectId,\n"
        "                      t.table_reference.datasetId, t.table_reference.tableId])\n"
        "    for part in node.parts:\n"
        "        visit(part)\n"
        "visit(p.transforms_stack[0])\n"
        "print(json.dumps(found))\n"
    )
    done = subprocess.run(
        [str(BATCH_PYTHON), "-c", script, "--input", str(tmp_path), "--output", str(tmp_path), *BIGQUERY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (write,) = json.loads(done.stdout.strip().splitlines()[-1])
    assert write[0] == "BigQuery" and write[2:] == ["my-project", "emotions", "photos"]
    fields = [(f["name"], f["type"], f["mode"]) for f in write[1]["fields"]]
    assert fields == [(name, kind, "NULLABLE") for name, kind in SUMMARY_COLUMNS]


def test_importing_the_serving_package_never_loads_beam() -> None:
    if not BATCH_PYTHON.is_file():
        _missing_beam()
    script = (
        "import sys, emotion, emotion.pipeline, emotion.bucket_events, emotion.http_api, main\n"
        "import emotion.batch, emotion.batch.photos, emotion.batch.results\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'apache_beam'], 'Beam was imported'\n"
    )
    done = subprocess.run([str(BATCH_PYTHON), "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_package_for_dataflow_workers_holds_the_code_and_the_model(tmp_path: Path) -> None:
    """Beam's own stager builds what --setup_file ./pyproject.toml ships; installed elsewhere, it analyzes.
    (It builds from a copy of what the package takes, since the build writes its egg-info beside the source.)"""
    if not BATCH_PYTHON.is_file():
        _missing_beam()
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for folder in ("emotion", "models"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    build = (
        "import sys\n"
        "from apache_beam.runners.portability.stager import Stager\n"
        "print(Stager._build_setup_package(sys.argv[1], sys.argv[2]))\n"
    )
    done = subprocess.run(
        [str(BATCH_PYTHON), "-c", build, str(source / "pyproject.toml"), str(tmp_path)],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sdist = Path(done.stdout.strip().splitlines()[-1])
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("emotion/batch/pipeline.py", "models/emotion.tflite", "models/model.json", "requirements.txt"):
        assert needed in names, needed
    site = tmp_path / "site"
    install = [str(BATCH_PYTHON), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*install, "--target", str(site), str(sdist)], check=True, capture_output=True, timeout=300)
    check = (
        "import emotion.litert, emotion.batch.pipeline\n"
        "from emotion.pipeline import default_analyzer\n"
        "assert emotion.litert.__file__.startswith(sys.argv[1]), emotion.litert.__file__\n"
        "print(default_analyzer().classifier.info.sha256)\n"
    )
    done = subprocess.run(
        [str(BATCH_PYTHON), "-c", "import sys\n" + check, str(site)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == default_analyzer().classifier.info.sha256


# === the listing and skip rules, without Beam ========================================================


def test_locations_and_globs(folder: Path) -> None:
    assert Location.parse("gs://b/photos") == Location("b", "photos/")
    assert Location.parse("gs://b") == Location.parse("gs://b/") == Location("b", "")
    every = Location.parse("gs://b/**")
    assert every.glob is not None and (every.base, every.glob.pattern) == ("", ".*")
    jpegs = Location.parse("gs://b/in/**/*.jpg")
    assert jpegs.base == "in/" and jpegs.glob is not None
    assert jpegs.glob.fullmatch("a.jpg") and jpegs.glob.fullmatch("x/y/a.jpg")
    assert not jpegs.glob.fullmatch("x/a.png") and not jpegs.glob.fullmatch("x/a.jpgx")
    one_level = Location.parse("gs://b/in/*/[!x]?.png")
    assert one_level.glob is not None
    assert one_level.glob.fullmatch("d/ab.png") and not one_level.glob.fullmatch("d/e/ab.png")
    assert not one_level.glob.fullmatch("d/xb.png")
    local = Location.parse(f"{folder}/**/*.jp*g")
    assert local.bucket is None and local.base == f"{folder}/"
    names = sorted(photo.relative for photo in list_files(local))
    assert names == ["astronaut.jpg", "broken.jpg", "sub/cat.jpeg", "sub/text-named.jpg"]
    everything = list(list_files(Location.parse(str(folder))))
    assert sorted(p.relative for p in everything if p.looks_like_image()) == sorted([*PHOTOS, *BROKEN])
    assert sorted(p.relative for p in everything if not p.looks_like_image()) == sorted(NOT_IMAGES)


def test_a_touched_photo_is_redone_and_the_others_skipped(folder: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("astronaut.jpg", "sub/cat.jpeg"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((folder / name).read_bytes())
    results = open_results(Location.parse(str(tmp_path / "out")), None)
    assert isinstance(results, LocalResults)

    def run_all() -> dict[str, str]:
        photos = list(list_files(Location.parse(str(src))))
        rows = [process(p, default_analyzer(), results, None, overwrite=False, previews=False)[0] for p in photos]
        return {row["name"]: row["status"] for row in rows}

    assert run_all() == {"astronaut.jpg": ANALYZED, "sub/cat.jpeg": ANALYZED}
    assert run_all() == {"astronaut.jpg": SKIPPED, "sub/cat.jpeg": SKIPPED}
    os.utime(src / "sub/cat.jpeg", ns=(1_000_000_000, 1_000_000_000))
    assert run_all() == {"astronaut.jpg": SKIPPED, "sub/cat.jpeg": ANALYZED}
    (tmp_path / "out" / "astronaut.jpg.json").write_text('{"faces": [')  # a damaged result is redone
    assert run_all() == {"astronaut.jpg": ANALYZED, "sub/cat.jpeg": SKIPPED}


# === Cloud Storage: the emulator ======================================================================


@pytest.fixture(scope="module")
def gcs(emulator: str, photo_bytes: dict[str, bytes]) -> Iterator[Any]:
    """Buckets ``photos`` (the test photos; non-images by content type) and ``out`` in the emulator."""
    from google.cloud import storage

    os.environ["STORAGE_EMULATOR_HOST"] = emulator
    client = storage.Client(project="test")
    photos = client.create_bucket("batch-photos")
    client.create_bucket("batch-out")
    types = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".txt": "text/plain"}
    for name, data in photo_bytes.items():
        content_type = "application/octet-stream" if name.endswith(".jpeg") else types.get(Path(name).suffix)
        photos.blob(f"in/{name}").upload_from_string(data, content_type=content_type or "application/json")
    # An image name with a non-image type is skipped, as the storage function skips it.
    photos.blob("in/labelled-text.jpg").upload_from_string(b"x", content_type="text/plain")
    yield client


def test_bucket_to_bucket_on_the_direct_runner(gcs: Any, emulator: str, photo_bytes: dict[str, bytes]) -> None:
    """Beam's own Cloud Storage I/O (the summary) reaches the emulator too: without credentials it retries
    Google's default credentials for about 30 s (once per worker process), then connects anonymously."""
    env = {"STORAGE_EMULATOR_HOST": emulator}
    args = ["--input", "gs://batch-photos/in/", "--output", "gs://batch-out/run/"]
    first = run_batch(*args, "--direct_running_mode=in_memory", env=env)
    assert (first["listed"], first["not_images"]) == (len(PHOTOS) + len(BROKEN), len(NOT_IMAGES) + 1)
    assert (first[ANALYZED], first[FAILED]) == (len(PHOTOS), len(BROKEN))
    out = {b.name: b for b in gcs.list_blobs("batch-out", prefix="run/")}
    for name in PHOTOS:
        blob = out.pop(f"run/{name}.json")
        source = gcs.bucket("batch-photos").get_blob(f"in/{name}")
        assert blob.metadata == {GENERATION_KEY: str(source.generation)}
        document = json.loads(blob.download_as_bytes())
        assert document["source"] == {
            "bucket": "batch-photos",
            "name": f"in/{name}",
            "generation": str(source.generation),
        }
        assert without_timing(document) == expected(photo_bytes[name]), name
    for name, code in BROKEN.items():
        assert json.loads(out.pop(f"run/{name}.json").download_as_bytes())["error"]["code"] == code
    summaries = [name for name in out if name.startswith("run/summary-") and name.endswith(".jsonl")]
    assert summaries and set(out) == set(summaries), f"unexpected objects: {sorted(out)}"
    rows = [json.loads(line) for name in summaries for line in out[name].download_as_text().splitlines()]
    assert sorted(row["source"] for row in rows) == sorted(f"gs://batch-photos/in/{n}" for n in [*PHOTOS, *BROKEN])

    # The rules alone: a new generation of one photo is redone, everything else is current.
    gcs.bucket("batch-photos").blob("in/astronaut.jpg").upload_from_string(photo_bytes["astronaut.jpg"], "image/jpeg")
    results = open_results(Location.parse("gs://batch-out/run/"), gcs)
    photos = [p for p in list_files(Location.parse("gs://batch-photos/in/"), gcs) if p.looks_like_image()]
    rows = [process(p, default_analyzer(), results, gcs, overwrite=False, previews=False)[0] for p in photos]
    assert {row["name"]: row["status"] for row in rows} == {
        name: ANALYZED if name == "astronaut.jpg" else SKIPPED for name in [*PHOTOS, *BROKEN]
    }


def test_bucket_listing_skip_and_write_with_the_google_client(gcs: Any) -> None:
    """The storage code alone: prefix and glob listing, generation skip, a photo gone since the listing.
    (The emulator ignores write preconditions, so the if-generation-match write is not proven here.)"""
    src = Location.parse("gs://batch-photos/in/sub/**/*.webp")
    (photo,) = list(list_files(src, gcs))
    assert photo.relative == "deeper/coffee.webp" and photo.uri == "gs://batch-photos/in/sub/deeper/coffee.webp"
    listed = list(
        list_files(Location.parse("gs://batch-photos/in"), gcs, exclude=Location.parse("gs://batch-photos/in/sub/"))
    )
    assert sorted(p.relative for p in listed) == ["astronaut.jpg", "broken.jpg", "labelled-text.jpg", "notes.txt"]

    results = open_results(Location.parse("gs://batch-out/direct/"), gcs)
    assert isinstance(results, GcsResults)
    row, document = process(photo, default_analyzer(), results, gcs, overwrite=False, previews=False)
    assert row["status"] == ANALYZED and document is not None
    assert process(photo, default_analyzer(), results, gcs, overwrite=False, previews=False)[0]["status"] == SKIPPED
    stored = results.stored(photo)
    assert stored.current and stored.generation
    stored_json = gcs.bucket("batch-out").blob("direct/deeper/coffee.webp.json").download_as_bytes()
    assert document is not None and json.loads(stored_json) == document.to_json()
    newer = Photo(photo.bucket, photo.name, photo.relative, photo.size, photo.version + 1, photo.content_type)
    assert not results.stored(newer).current
    gone = Photo("batch-photos", "in/vanished.jpg", "vanished.jpg", 10, 1, "image/jpeg")
    assert process(gone, default_analyzer(), results, gcs, overwrite=False, previews=False)[0]["status"] == "gone"
