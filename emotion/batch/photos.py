"""Where the photos are: a local folder or glob, or a Cloud Storage prefix or glob, listed and read.

No Beam here: the pipeline calls these functions, and the tests run them against the storage emulator.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from emotion.bucket_events import STORAGE_RETRY, ObjectEvent, looks_like_image
from emotion.result import FileSource, ObjectSource, Source

if TYPE_CHECKING:
    from google.cloud import storage

GS = "gs://"
_WILDCARD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Location:
    """A ``SRC`` or ``DST``: a bucket (None: this machine), the folder or prefix every name starts with, and
    a glob over the rest of the name (None: everything under it). Names below ``base`` use ``/``."""

    bucket: str | None
    base: str
    glob: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, uri: str) -> Location:
        """``photos/``, ``photos/**/*.jpg``, ``gs://bucket/photos/``, ``gs://bucket/**``; raises ``ValueError``."""
        bucket: str | None = None
        path = uri
        if uri.startswith(GS):
            bucket, _, path = uri[len(GS) :].partition("/")
            if not bucket or _WILDCARD.search(bucket):
                raise ValueError(f"{uri!r} names no bucket")
        elif not uri:
            raise ValueError("the location is empty")
        wildcard = _WILDCARD.search(path)
        if wildcard is None:
            base, glob = path, None
        else:
            cut = path.rfind("/", 0, wildcard.start()) + 1
            base, glob = path[:cut], _glob_regex(path[cut:])
        if bucket is None:
            base = str(Path(base or ".").resolve())
        base = base.rstrip("/") + "/" if base.strip("/") else ("/" if bucket is None else "")
        return cls(bucket, base, glob)

    def uri(self, relative: str = "") -> str:
        return (f"{GS}{self.bucket}/" if self.bucket is not None else "") + self.base + relative

    def contains(self, uri: str) -> bool:
        """True when ``uri`` lies under this location's folder or prefix (results are never inputs)."""
        return uri.startswith(self.uri())


def _glob_regex(glob: str) -> re.Pattern[str]:
    """``**`` crosses folders, ``*`` and ``?`` do not, ``[...]`` is a character class (``[!...]`` negated)."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class Photo:
    """One listed file. ``relative`` is its name below SRC (the result is ``DST/<relative>.json``);
    ``version`` is the object's generation, or the file's modification time in ns."""

    bucket: str | None
    name: str
    relative: str
    size: int
    version: int
    content_type: str = ""

    @property
    def uri(self) -> str:
        return f"{GS}{self.bucket}/{self.name}" if self.bucket is not None else self.name

    def source(self) -> Source:
        """What the result's ``source`` says: the object and generation, or the path, size and mtime."""
        if self.bucket is not None:
            return ObjectSource(self.bucket, self.name, self.version)
        return FileSource(self.name, self.size, self.version)

    def looks_like_image(self) -> bool:
        """The storage function's rule: an ``image/*`` type, or a generic one and an image name.
        A local file has no content type, so, as for a generic one, its name decides."""
        event = ObjectEvent(
            bucket=self.bucket or "",
            name=self.name,
            generation=self.version,
            content_type=self.content_type.split(";")[0].strip().lower(),
            size=self.size,
            time=datetime.now(UTC),
        )
        return looks_like_image(event)


def list_files(
    src: Location, client: storage.Client | None = None, *, exclude: Location | None = None
) -> Iterator[Photo]:
    """Every file under ``src`` that its glob matches, except those under ``exclude`` (the output)."""
    listed = _list_gcs(src, client) if src.bucket is not None else _list_local(src)
    for photo in listed:
        if src.glob is not None and not src.glob.fullmatch(photo.relative):
            continue
        if exclude is not None and exclude.contains(photo.uri):
            continue
        yield photo


def _list_local(src: Location) -> Iterator[Photo]:
    for folder, dirs, files in os.walk(src.base):
        dirs.sort()
        for file in sorted(files):
            path = os.path.join(folder, file)
            try:
                stat = os.stat(path)
            except FileNotFoundError:  # deleted while listing
                continue
            yield Photo(
                None, path, os.path.relpath(path, src.base).replace(os.sep, "/"), stat.st_size, stat.st_mtime_ns
            )


def _list_gcs(src: Location, client: storage.Client | None) -> Iterator[Photo]:
    assert client is not None and src.bucket is not None, "listing a bucket needs a storage client"
    for blob in client.list_blobs(src.bucket, prefix=src.base, retry=STORAGE_RETRY):
        if blob.name.endswith("/"):  # a "folder" placeholder made by the console
            continue
        yield Photo(
            src.bucket,
            blob.name,
            blob.name[len(src.base) :],
            int(blob.size or 0),
            int(blob.generation or 0),
            blob.content_type or "",
        )


def read_photo(photo: Photo, max_bytes: int, client: storage.Client | None = None) -> bytes:
    """The file's bytes (at most ``max_bytes + 1``, which the decoder then refuses); ``FileNotFoundError``
    when it is gone. A bucket object is read at its listed generation, so the result matches its source."""
    if photo.bucket is None:
        with open(photo.name, "rb") as handle:
            return handle.read(max_bytes + 1)
    from google.api_core import exceptions as gexc

    assert client is not None, "reading an object needs a storage client"
    blob = client.bucket(photo.bucket).blob(photo.name, generation=photo.version or None)
    try:
        return blob.download_as_bytes(retry=STORAGE_RETRY)
    except gexc.NotFound as exc:
        raise FileNotFoundError(photo.uri) from exc
