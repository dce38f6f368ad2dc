"""Cheap structural checks of each accepted format, run before any decoder sees the bytes.

Each reader walks the file's markers, chunks or directory without decoding pixels and refuses structure
that would make a decoder spend far more memory or CPU than the file's size suggests: thousands of JPEG
scans or fill bytes, millions of TIFF strip offsets, endless PNG chunks. What they learn (size, how a
JPEG is coded, where a PNG's image data lies) lets the decoder bound its allocations before it starts.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field

from emotion.errors import CorruptImageError, InvalidImageError

#: A progressive JPEG has about 10 scans (mozjpeg: up to about 20); each one is a pass over every block.
MAX_JPEG_SCANS = 100
#: Markers before the image data, and 0xFF fill bytes in a row before a marker (encoders write a few).
MAX_JPEG_SEGMENTS = 1000
MAX_FILL_BYTES = 1024
#: Chunks in a PNG (a 20 MB file in libpng's 8 KB IDAT chunks has about 2,500).
MAX_PNG_CHUNKS = 20_000
#: Values one TIFF tag may hold, and tags in a directory (a 40 MP image in one-row strips has 40,000 rows
#: at most 65,536 strips; directories hold a few dozen tags).
MAX_TIFF_VALUES = 65_536
MAX_TIFF_TAGS = 1000
#: Chunks in a WebP file (an animation is refused after its first frame anyway).
MAX_WEBP_CHUNKS = 1000
#: EXIF blocks above this are not parsed for the orientation (a JPEG's is at most 64 KB by construction).
MAX_EXIF_BYTES = 65_536

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # in entropy-coded data, FF 00 and RSTn are not markers
_FILL = re.compile(rb"\xff+")
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_TIFF_BYTES_TYPES = {1, 2, 6, 7}  # BYTE, ASCII, SBYTE, UNDEFINED: read as one bytes object, not a tuple


def sniff(data: bytes) -> str:
    """The Pillow format name of an accepted file, by its signature; anything else is unsupported."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == PNG_SIGNATURE:
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    raise InvalidImageError(
        "the data is not a JPEG, PNG, WebP, BMP, TIFF or GIF image; other formats are not supported"
    )


@dataclass(frozen=True)
class JpegInfo:
    """What the markers say: size, whether libjpeg must hold every DCT coefficient, and their bytes."""

    width: int
    height: int
    whole_image_buffer: bool
    coefficient_bytes: int


def check_jpeg(data: bytes) -> JpegInfo:
    """Walk the markers (segment lengths, scans, fill bytes) without decoding."""
    pos, scans, segments, frame = 2, 0, 0, None
    progressive = False
    while pos < len(data):
        fill = _FILL.match(data, pos)
        if fill is None:  # stray bytes between segments: libjpeg skips to the next marker, and so do we
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
            continue
        if fill.end() - pos - 1 > MAX_FILL_BYTES:
            raise CorruptImageError(
                f"the JPEG has {fill.end() - pos - 1} fill bytes in a row; at most {MAX_FILL_BYTES}"
            )
        pos = fill.end()
        if pos >= len(data):
            break
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # end of image
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        segments += 1
        if segments > MAX_JPEG_SEGMENTS + MAX_JPEG_SCANS:
            raise CorruptImageError(f"the JPEG has more than {MAX_JPEG_SEGMENTS} segments")
        if pos + 2 > len(data):
            break
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            raise CorruptImageError("the JPEG has a segment of impossible length")
        if marker in _SOF and frame is None:
            frame = _jpeg_frame(data[pos + 2 : pos + length])
            progressive = marker in _PROGRESSIVE
        pos += length
        if marker == 0xDA:  # start of scan: skip its entropy-coded data to the next marker
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise CorruptImageError(f"the JPEG has more than {MAX_JPEG_SCANS} scans")
            found = _NEXT_MARKER.search(data, pos)
            pos = found.start() if found else len(data)
    if frame is None:
        raise CorruptImageError("the JPEG has no frame header")
    width, height, components = frame
    h_max = max(h for h, _ in components)
    v_max = max(v for _, v in components)
    blocks = sum(-(-width * h // (h_max * 8)) * -(-height * v // (v_max * 8)) for h, v in components)
    return JpegInfo(width, height, progressive or scans > 1, blocks * 64 * 2)


def _jpeg_frame(body: bytes) -> tuple[int, int, list[tuple[int, int]]]:
    if len(body) < 6:
        raise CorruptImageError("the JPEG frame header is truncated")
    height, width, count = struct.unpack_from(">HHB", body, 1)
    if count == 0 or len(body) < 6 + 3 * count:
        raise CorruptImageError("the JPEG frame header is truncated")
    sampling = [(body[7 + 3 * i] >> 4 or 1, body[7 + 3 * i] & 15 or 1) for i in range(count)]
    return width, height, sampling


@dataclass
class PngFile:
    """A PNG's header and critical chunks; the image data stays in place (views into the file)."""

    width: int
    height: int
    depth: int
    colour: int
    interlaced: bool
    palette: bytes = b""
    transparency: bytes = b""
    exif: bytes = b""
    idat: list[memoryview] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return _PNG_CHANNELS[self.colour]

    def header(self, height: int | None = None, interlaced: bool | None = None) -> bytes:
        """A PNG signature, IHDR (optionally with another height) and the palette chunks."""
        ihdr = struct.pack(
            ">IIBBBBB",
            self.width,
            self.height if height is None else height,
            self.depth,
            self.colour,
            0,
            0,
            int(self.interlaced if interlaced is None else interlaced),
        )
        out = PNG_SIGNATURE + png_chunk(b"IHDR", ihdr)
        if self.palette:
            out += png_chunk(b"PLTE", self.palette)
        if self.transparency:
            out += png_chunk(b"tRNS", self.transparency)
        return out

    def sanitized(self) -> bytes:
        """The same image with only its critical chunks: what Pillow reads when it must decode it whole."""
        return self.header() + png_chunk(b"IDAT", b"".join(self.idat)) + png_chunk(b"IEND", b"")


def png_chunk(kind: bytes, body: bytes | memoryview) -> bytes:
    return struct.pack(">I", len(body)) + kind + bytes(body) + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def read_png(data: bytes) -> PngFile:
    """Walk the chunks (counted, CRC of critical ones checked); ancillary chunks other than eXIf are skipped."""
    view = memoryview(data)
    pos, count, png = len(PNG_SIGNATURE), 0, None
    while pos + 8 <= len(data):
        count += 1
        if count > MAX_PNG_CHUNKS:
            raise CorruptImageError(f"the PNG has more than {MAX_PNG_CHUNKS} chunks")
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = view[pos + 8 : pos + 8 + length]
        if len(body) < length:
            raise CorruptImageError("the PNG is truncated")
        critical = kind in (b"IHDR", b"PLTE", b"IDAT", b"tRNS")
        if critical and data[pos + 8 + length : pos + 12 + length] != struct.pack(
            ">I", zlib.crc32(body, zlib.crc32(kind))
        ):
            raise CorruptImageError(f"the PNG's {kind.decode('latin-1')} chunk is damaged (bad CRC)")
        pos += 12 + length
        if png is None:
            if kind != b"IHDR" or length != 13:
                raise CorruptImageError("the PNG does not start with its header chunk")
            png = _png_header(bytes(body))
        elif kind == b"IDAT":
            png.idat.append(body)
        elif kind == b"PLTE":
            png.palette = bytes(body)
        elif kind == b"tRNS":
            png.transparency = bytes(body)
        elif kind == b"eXIf" and not png.exif and length <= MAX_EXIF_BYTES:
            png.exif = bytes(body)
        elif kind == b"IEND":
            break
    if png is None or not png.idat:
        raise CorruptImageError("the PNG has no image data")
    if png.colour == 3 and not png.palette:
        raise CorruptImageError("the palette PNG has no palette")
    return png


def _png_header(body: bytes) -> PngFile:
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise CorruptImageError(f"the PNG header is invalid (depth {depth}, colour type {colour})")
    return PngFile(width, height, depth, colour, bool(interlace))


@dataclass(frozen=True)
class TiffInfo:
    """The first directory's size and the largest strip or tile, in bytes, the decoder reads at once."""

    width: int
    height: int
    strip_bytes: int


def check_tiff(data: bytes) -> TiffInfo:
    """Walk the first directory: tag count, values per tag, and the strip or tile size."""
    if len(data) < 8:
        raise CorruptImageError("the TIFF is truncated")
    order = "<" if data[:2] == b"II" else ">"
    (at,) = struct.unpack_from(order + "I", data, 4)
    if at + 2 > len(data):
        raise CorruptImageError("the TIFF directory lies past the end of the file")
    (count,) = struct.unpack_from(order + "H", data, at)
    if count > MAX_TIFF_TAGS:
        raise CorruptImageError(f"the TIFF directory has {count} tags; at most {MAX_TIFF_TAGS}")
    tags: dict[int, int] = {}
    for i in range(count):
        entry = at + 2 + 12 * i
        if entry + 12 > len(data):
            raise CorruptImageError("the TIFF directory is truncated")
        tag, kind, values = struct.unpack_from(order + "HHI", data, entry)
        if kind not in _TIFF_BYTES_TYPES and values > MAX_TIFF_VALUES:
            raise CorruptImageError(f"the TIFF tag {tag} holds {values} values; at most {MAX_TIFF_VALUES}")
        if values == 1 and kind in (3, 4):
            tags[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), data, entry + 8)[0]
    width, height = tags.get(256, 0), tags.get(257, 0)
    samples, bits = tags.get(277, 1), tags.get(258, 8)
    if 322 in tags and 323 in tags:  # tiled
        rows, columns = tags[323], tags[322]
    else:
        rows, columns = min(tags.get(278, height) or height, height), width
    return TiffInfo(width, height, rows * -(-columns * samples * bits // 8))


@dataclass(frozen=True)
class WebpInfo:
    """The EXIF chunk (for the orientation), when there is one of a sane size."""

    exif_bytes: int


def check_webp(data: bytes) -> WebpInfo:
    """Walk the RIFF chunks: count them and note the EXIF chunk's size."""
    pos, count, exif = 12, 0, 0
    while pos + 8 <= len(data):
        count += 1
        if count > MAX_WEBP_CHUNKS:
            raise CorruptImageError(f"the WebP has more than {MAX_WEBP_CHUNKS} chunks")
        kind, length = struct.unpack_from("<4sI", data, pos)
        if kind == b"EXIF":
            exif = length
        pos += 8 + length + (length & 1)
    return WebpInfo(exif)
