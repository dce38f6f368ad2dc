"""The typed results and the published JSON Schemas agree: field for field, literal for enum, and what
``to_json()`` writes validates."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, get_args, get_type_hints

import jsonschema
import pytest

from emotion.errors import EmotionError, ErrorCode, ImageTooSmallError
from emotion.geometry import Box
from emotion.labels import EMOTIONS
from emotion.result import (
    DetectionKind,
    Face,
    Failure,
    FileSource,
    ImageInfo,
    ModelRef,
    ObjectSource,
    Preview,
    Result,
    Timing,
)

from .conftest import ROOT

RESULT_SCHEMA = json.loads((ROOT / "emotion" / "result.schema.json").read_text())
ERROR_SCHEMA = json.loads((ROOT / "emotion" / "error.schema.json").read_text())
FACE = RESULT_SCHEMA["$defs"]["face"]
SOURCES = RESULT_SCHEMA["$defs"]["source"]["oneOf"]

#: Each type and the schema object it stands for.
NODES: list[tuple[type, dict[str, Any]]] = [
    (Result, RESULT_SCHEMA),
    (Face, FACE),
    (Box, FACE["properties"]["box"]),
    (ImageInfo, RESULT_SCHEMA["properties"]["image"]),
    (ModelRef, RESULT_SCHEMA["properties"]["model"]),
    (Preview, RESULT_SCHEMA["properties"]["preview"]),
    (Timing, RESULT_SCHEMA["properties"]["timing_ms"]),
    (ObjectSource, SOURCES[0]),
    (FileSource, SOURCES[1]),
    (ObjectSource, ERROR_SCHEMA["properties"]["source"]["oneOf"][0]),
    (FileSource, ERROR_SCHEMA["properties"]["source"]["oneOf"][1]),
]
#: Where a JSON name is not the field's: bytes are base64 only in JSON.
JSON_NAME: dict[tuple[type, str], str] = {(Preview, "jpeg"): "base64"}
#: Properties computed from the fields rather than stored.
DERIVED: dict[type, set[str]] = {Result: {"dominant_emotion"}}


def json_names(cls: type) -> tuple[set[str], set[str]]:
    """The JSON names of ``cls``'s fields (all, and those always written: every field but those that
    default to None, which ``to_json`` leaves out when None) plus its derived properties."""
    fields = dataclasses.fields(cls)
    names = {JSON_NAME.get((cls, f.name), f.name) for f in fields} | DERIVED.get(cls, set())
    required = {JSON_NAME.get((cls, f.name), f.name) for f in fields if f.default is not None}
    return names, required | DERIVED.get(cls, set())


@pytest.mark.parametrize(("cls", "node"), NODES, ids=lambda v: getattr(v, "__name__", ""))
def test_every_field_is_a_property_of_the_schema_and_every_property_a_field(cls: type, node: dict) -> None:
    names, required = json_names(cls)
    assert names == set(node["properties"]), cls
    assert required == set(node["required"]), cls
    assert node["additionalProperties"] is False


def test_the_error_type_is_the_error_schema() -> None:
    names, required = json_names(Failure)
    error = ERROR_SCHEMA["properties"]["error"]
    # code and message sit in the "error" object; source beside it
    assert names == set(error["properties"]) | {"source"}
    assert required == set(error["required"]) and ERROR_SCHEMA["required"] == ["error"]
    assert set(ERROR_SCHEMA["properties"]) == {"error", "source"}


def test_the_literals_are_the_schema_enums() -> None:
    assert list(get_args(DetectionKind)) == FACE["properties"]["detection"]["enum"]
    assert list(get_args(ErrorCode)) == ERROR_SCHEMA["properties"]["error"]["properties"]["code"]["enum"]
    assert get_args(get_type_hints(Preview)["mime_type"]) == (
        RESULT_SCHEMA["properties"]["preview"]["properties"]["mime_type"]["const"],
    )
    assert list(EMOTIONS) == RESULT_SCHEMA["$defs"]["emotion"]["enum"] == FACE["properties"]["emotions"]["required"]


def built(source: ObjectSource | FileSource | None) -> Result:
    faces = (
        Face(Box(1, 2, 30, 40), "face", 0.9, dict(zip(EMOTIONS, [0.1, 0, 0, 0.6, 0.3, 0, 0], strict=True)), "happy"),
        Face(Box(0, 0, 5, 5), "whole_image", None, dict.fromkeys(EMOTIONS, 1 / 7), "angry"),
    )
    model = ModelRef("emotion-cnn", "1", "0" * 64)
    return Result(faces, ImageInfo(64, 48, "png"), model, Timing(1.0, 2.0, 3.0, 6.5), Preview(b"\xff\xd8\xff"), source)


@pytest.mark.parametrize("source", [None, ObjectSource("b", "a/b.jpg", 2**63 - 1), FileSource("/x.jpg", 10, 17)])
def test_a_built_result_validates_and_writes_every_property(source: ObjectSource | FileSource | None) -> None:
    document = built(source).to_json()
    jsonschema.Draft202012Validator(RESULT_SCHEMA).validate(document)
    assert set(document) == set(RESULT_SCHEMA["properties"]) - ({"source"} if source is None else set())
    assert document["preview"] == {"mime_type": "image/jpeg", "base64": "/9j/"}
    assert document["dominant_emotion"] == "happy"
    assert list(document["faces"][0]) == FACE["required"]
    if source is not None:
        assert document["source"] == source.to_json()
    bare = dataclasses.replace(built(None), faces=(), preview=None).to_json()
    jsonschema.Draft202012Validator(RESULT_SCHEMA).validate(bare)
    assert bare["dominant_emotion"] is None and "preview" not in bare


def test_sources_write_int64_as_decimal_strings() -> None:
    assert ObjectSource("b", "n", 12).to_json() == {"bucket": "b", "name": "n", "generation": "12"}
    assert FileSource("/p", 3, 45).to_json() == {"path": "/p", "size": 3, "mtime_ns": "45"}


@pytest.mark.parametrize("code", get_args(ErrorCode))
def test_every_error_validates_with_and_without_a_source(code: ErrorCode) -> None:
    validator = jsonschema.Draft202012Validator(ERROR_SCHEMA)
    failure = Failure(code, "what went wrong")
    assert failure.to_json() == {"error": {"code": code, "message": "what went wrong"}}
    validator.validate(failure.to_json())
    stored = failure.with_source(ObjectSource("b", "n", 1)).to_json()
    validator.validate(stored)
    assert stored["source"] == {"bucket": "b", "name": "n", "generation": "1"}


def test_a_typed_error_becomes_its_code_and_message() -> None:
    assert Failure.of(ImageTooSmallError("16 px")) == Failure("image_too_small", "16 px")
    assert Failure.of(EmotionError("a bug")) == Failure("internal", "a bug")


def test_results_cannot_change_once_built() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        built(None).faces = ()  # type: ignore[misc]


def test_every_result_type_is_frozen() -> None:
    """A result is built once and shared (threads, the storage write, the summary): none can be changed."""
    import dataclasses

    from emotion import result as module

    types = {name: obj for name, obj in vars(module).items() if isinstance(obj, type) and dataclasses.is_dataclass(obj)}
    assert {"Face", "ImageInfo", "ModelRef", "Preview", "Timing", "Result", "Failure"} <= set(types)
    for name, cls in types.items():
        if cls.__module__ == module.__name__:
            assert cls.__dataclass_params__.frozen, f"{name} is not frozen"  # type: ignore[attr-defined]
