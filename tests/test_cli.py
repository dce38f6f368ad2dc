"""``python -m emotion``: one JSON line per photo, previews on disk, a non-zero exit when any photo fails."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def test_cli_prints_one_result_per_photo(tmp_path, astronaut_jpeg, validate_result) -> None:
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(astronaut_jpeg)
    previews = tmp_path / "previews"
    out = subprocess.run(
        [sys.executable, "-m", "emotion", str(photo), str(photo), "--preview-dir", str(previews)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert line.pop("file") == str(photo)
        preview = line.pop("preview_file")
        assert (previews / "astronaut.jpg.preview.jpg").read_bytes()[:2] == b"\xff\xd8" and preview.endswith(".jpg")
        assert validate_result(line)["dominant_emotion"] == "happy"


def test_cli_reports_bad_files_and_fails(tmp_path, astronaut_jpeg) -> None:
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    good.write_bytes(astronaut_jpeg)
    bad.write_bytes(b"not a photo")
    out = subprocess.run(
        [sys.executable, "-m", "emotion", str(bad), str(good), str(tmp_path / "missing.png")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line.get("error", {}).get("code") for line in lines] == ["unsupported_image", None, "unreadable_file"]
    assert "preview" not in lines[1] and lines[1]["dominant_emotion"] == "happy"
