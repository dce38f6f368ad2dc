"""Each setting is declared once (name, type, default, doc in emotion/config.py) and everything else
follows from it: the variable table, the parser, the detector's defaults, the README table and the page."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re

import pytest

from emotion import http_api
from emotion.config import ENV_VARS, FALSE_WORDS, TRUE_WORDS, Settings, parse_flag
from emotion.detect import FaceDetector
from emotion.labels import EMOTIONS

from .conftest import ROOT


def test_every_field_declares_its_variable_and_doc_and_the_table_follows() -> None:
    specs = dataclasses.fields(Settings)
    assert [spec.metadata["env"] for spec in specs] == [spec.name.upper() for spec in specs] == list(ENV_VARS)
    assert all(spec.metadata["doc"] for spec in specs)
    # the table's texts read back as the defaults, so the two cannot drift apart
    assert Settings.from_env(ENV_VARS) == Settings()
    assert ENV_VARS["WHOLE_IMAGE_FALLBACK"] == "true" and ENV_VARS["MAX_IMAGE_BYTES"] == "20000000"


def test_the_readme_table_lists_every_variable_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration") : readme.index("## Without a server")]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (`[^`]*`|[^|`]+) \|", section, flags=re.MULTILINE)
    listed = {name: default.strip().strip("`") if default.startswith("`") else "" for name, default in rows}
    assert listed == ENV_VARS


def test_the_detector_defaults_are_the_settings() -> None:
    assert inspect.signature(FaceDetector).parameters["max_side"].default == Settings().detect_max_side
    assert inspect.signature(FaceDetector.detect).parameters["min_face"].default == Settings().detect_min_face


@pytest.mark.parametrize("word", [*sorted(TRUE_WORDS | FALSE_WORDS), "TRUE", " Off "])
def test_the_query_flag_and_the_variables_read_true_and_false_alike(word: str) -> None:
    assert http_api._flag(word, "preview") is parse_flag(word) is (word.strip().lower() in TRUE_WORDS)


def test_the_page_gets_the_limit_and_the_classes_from_the_server() -> None:
    page = http_api._page(12_345).decode()
    assert "const MAX_BYTES = 12345;" in page
    assert f"const EMOTIONS = {json.dumps(list(EMOTIONS))};" in page
    assert "{{" not in page
    source = http_api.PAGE.read_text()
    assert "20000000" not in source and '"angry"' not in source, "the page file holds its own copies"
