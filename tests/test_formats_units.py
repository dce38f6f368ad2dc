"""The structural checks of ``emotion.formats``, pinned at their limits: each cap holds exactly at its value
and refuses one more, and what the checks learn (size, coding, strip bytes) is exact. The limits are the
documented ones (README, errors table), written here as numbers: a test reading the constant it checks
would follow a changed constant."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from emotion import formats
from emotion.errors import CorruptImageError, InvalidImageError

MAX_JPEG_SCANS, MAX_JPEG_SEGMENTS, MAX_FILL_BYTES = 100, 1000, 1024
MAX_PNG_CHUNKS, MAX_EXIF_BYTES = 20_000, 65_536
MAX_TIFF_VALUES, MAX_TIFF_TAGS, MAX_WEBP_CHUNKS = 65_536, 1000, 1000


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# --- sniff ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0", "JPEG"),
        (formats.PNG_SIGNATURE, "PNG"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"BM\x00\x00", "BMP"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
    ],
)
def test_sniff_names_each_signature(head: bytes, kind: str) -> None:
    assert formats.sniff(head + b"\x00" * 16) == kind


@pytest.mark.parametrize(
    "head", [b"\xff\xd8\xfe", b"RIFF\x00\x00\x00\x00WAVE", b"GIF88a", b"II+\x00", b"MM*\x00", b"\x00\x00\x01\x00"]
)
def test_sniff_refuses_near_misses(head: bytes) -> None:
    with pytest.raises(InvalidImageError, match="not a JPEG, PNG, WebP, BMP, TIFF or GIF"):
        formats.sniff(head + b"\x00" * 16)


# --- JPEG ----------------------------------------------------------------------------------------


def _jpeg(size: tuple[int, int] = (65, 49), **options) -> bytes:
    return _save(Image.new("RGB", size, (120, 60, 30)), "JPEG", **options)


def _split(data: bytes) -> tuple[bytes, bytes, bytes]:
    """SOI, the segments up to the first scan, and the rest (SOS onwards)."""
    pos = 2
    while data[pos + 1] != 0xDA:
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return data[:2], data[2:pos], data[pos:]


def _segments_before_scan(data: bytes) -> int:
    _, head, _ = _split(data)
    count, pos = 0, 0
    while pos < len(head):
        count += 1
        pos += 2 + struct.unpack_from(">H", head, pos + 2)[0]
    return count


def test_a_jpegs_size_and_coefficient_bytes() -> None:
    # 4:2:0: luma 9 x 7 blocks of 16 px halves (ceil(65 * 2 / 16), ceil(49 * 2 / 16)), chroma 5 x 4 each
    info = formats.check_jpeg(_jpeg())
    assert (info.width, info.height, info.whole_image_buffer) == (65, 49, False)
    assert info.coefficient_bytes == (9 * 7 + 2 * 5 * 4) * 64 * 2
    # 4:4:4: three components of 9 x 7 blocks
    assert formats.check_jpeg(_jpeg(subsampling=0)).coefficient_bytes == 3 * 9 * 7 * 128
    # 4:2:2: luma 9 x 7, chroma 5 x 7
    assert formats.check_jpeg(_jpeg(subsampling=1)).coefficient_bytes == (9 * 7 + 2 * 5 * 7) * 128
    gray = formats.check_jpeg(_save(Image.new("L", (65, 49)), "JPEG"))
    assert gray.coefficient_bytes == 9 * 7 * 128


def test_a_progressive_or_multi_scan_jpeg_needs_the_whole_image_buffer() -> None:
    assert formats.check_jpeg(_jpeg(progressive=True)).whole_image_buffer
    soi, head, scan = _split(_jpeg())
    two_scans = soi + head + scan[:-2] + scan[:-2] + b"\xff\xd9"
    assert formats.check_jpeg(two_scans).whole_image_buffer


def test_the_scan_limit_is_exact() -> None:
    soi, head, scan = _split(_jpeg())
    body = scan[:-2]  # the scan without EOI
    formats.check_jpeg(soi + head + body * MAX_JPEG_SCANS + b"\xff\xd9")
    with pytest.raises(CorruptImageError, match=f"more than {MAX_JPEG_SCANS} scans"):
        formats.check_jpeg(soi + head + body * (MAX_JPEG_SCANS + 1) + b"\xff\xd9")


def test_the_segment_limit_is_exact() -> None:
    data = _jpeg()
    soi, head, scan = _split(data)
    room = MAX_JPEG_SEGMENTS + MAX_JPEG_SCANS - _segments_before_scan(data) - 1  # the SOS
    comment = b"\xff\xfe\x00\x02"
    formats.check_jpeg(soi + comment * room + head + scan)
    with pytest.raises(CorruptImageError, match=f"more than {MAX_JPEG_SEGMENTS} segments"):
        formats.check_jpeg(soi + comment * (room + 1) + head + scan)


def test_the_fill_byte_limit_is_exact() -> None:
    soi, head, scan = _split(_jpeg())
    formats.check_jpeg(soi + b"\xff" * MAX_FILL_BYTES + head + scan)
    with pytest.raises(CorruptImageError, match=f"has {MAX_FILL_BYTES + 1} fill bytes in a row"):
        formats.check_jpeg(soi + b"\xff" * (MAX_FILL_BYTES + 1) + head + scan)


def test_stray_bytes_restart_markers_and_stuffing_are_skipped() -> None:
    soi, head, scan = _split(_jpeg())
    info = formats.check_jpeg(soi + b"junk\x00" + b"\xff\xd0\xff\x01" + head + scan)
    assert (info.width, info.height) == (65, 49)
    for marker in (0xD0, 0xD7, 0x01):  # RSTn and TEM: markers without a length
        info = formats.check_jpeg(soi + bytes((0xFF, marker)) + head + scan)
        assert (info.width, info.height) == (65, 49)
    # after the scan: stuffed FF 00 and restart markers are entropy data, then a second frame is ignored
    tail = scan[:-2] + b"\xff\x00\xff\xd3" + b"\xff\xc0\x00\x0b\x08\x00\x10\x00\x10\x01\x01\x11\x00" + b"\xff\xd9"
    assert formats.check_jpeg(soi + head + tail).width == 65
    # stray bytes to the end of the file (no EOI, no further marker): the walk ends there
    assert formats.check_jpeg(soi + head + b"junk").width == 65


def test_the_end_of_image_stops_the_walk() -> None:
    soi, head, scan = _split(_jpeg())
    assert formats.check_jpeg(soi + head + scan + b"\xff\xfe\x00\x00").width == 65  # a bad length after EOI


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda soi, head, scan: soi + b"\xff\xfe\x00\x01" + head + scan, "impossible length"),
        (lambda soi, head, scan: soi + b"\xff\xfe\x00\x00" + head + scan, "impossible length"),
        (lambda soi, head, scan: soi + b"\xff\xfe\x00\x02" + scan, "no frame header"),
        (lambda soi, head, scan: soi + b"\xff\xc0\x00\x07\x08\x00\x10\x00\x10\x00", "frame header is truncated"),
        (lambda soi, head, scan: soi + b"\xff\xc0\x00\x0b\x08\x00\x10\x00\x10\x02\x01\x11\x00", "truncated"),
        (lambda soi, head, scan: soi + b"\xff\xc0\x00\x08\x08\x00\x10\x00\x10\x00", "truncated"),
        # two components declared, the second one byte short (11 of 12 bytes)
        (lambda soi, head, scan: soi + b"\xff\xc0\x00\x0d\x08\x00\x10\x00\x10\x02\x01\x11\x00\x02\x11", "truncated"),
        (lambda soi, head, scan: soi + b"\xff\xe0", "no frame header"),
        (lambda soi, head, scan: soi + b"\xff\xe0\x00", "no frame header"),
        # a second SOI is no marker without a length (only RSTn and TEM are): its "length" runs past the end
        (lambda soi, head, scan: soi + soi + head + scan, "no frame header"),
    ],
)
def test_broken_jpeg_structure_is_corrupt(damage, message: str) -> None:
    with pytest.raises(CorruptImageError, match=message):
        formats.check_jpeg(damage(*_split(_jpeg())))


def test_a_frame_with_zero_sampling_counts_as_one() -> None:
    frame = b"\xff\xc0\x00\x11\x08\x00\x31\x00\x41\x03" + b"\x01\x00\x00\x02\x00\x01\x03\x00\x01"
    info = formats.check_jpeg(b"\xff\xd8" + frame + b"\xff\xd9")
    assert (info.width, info.height, info.coefficient_bytes) == (65, 49, 3 * 9 * 7 * 128)
    # a vertical factor of 3 (odd, so every bit of it counts): Y 1x3 is 9 x 7 blocks (ceil(49 * 3 / 24)),
    # Cb and Cr 1x1 are 9 x 3 each
    frame = b"\xff\xc0\x00\x11\x08\x00\x31\x00\x41\x03" + b"\x01\x13\x00\x02\x11\x01\x03\x11\x01"
    assert formats.check_jpeg(b"\xff\xd8" + frame + b"\xff\xd9").coefficient_bytes == (9 * 7 + 2 * 9 * 3) * 128
    # a zero factor beside a component's factor of 1: Y 1x1, Cb (1, 0) and Cr (0, 1) are 1x1 too
    frame = b"\xff\xc0\x00\x11\x08\x00\x31\x00\x41\x03" + b"\x01\x11\x00\x02\x10\x01\x03\x01\x01"
    assert formats.check_jpeg(b"\xff\xd8" + frame + b"\xff\xd9").coefficient_bytes == 3 * 9 * 7 * 128


# --- PNG -----------------------------------------------------------------------------------------


def _png(image: Image.Image | None = None, **options) -> bytes:
    return _save(image or Image.new("RGB", (20, 20)), "PNG", **options)


def _chunk(kind: bytes, body: bytes = b"") -> bytes:
    return formats.png_chunk(kind, body)


def _ihdr(data: bytes) -> bytes:
    return data[8:33]


def _after_ihdr(data: bytes) -> bytes:
    return data[33:]


def test_a_pngs_header_and_chunks_are_read() -> None:
    palette = Image.new("P", (20, 10))
    palette.putpalette([1, 2, 3] * 256)
    png = formats.read_png(_png(palette, transparency=0))
    assert (png.width, png.height, png.depth, png.colour, png.interlaced, png.channels) == (20, 10, 8, 3, False, 1)
    assert png.palette[:6] == b"\x01\x02\x03\x01\x02\x03" and png.transparency[:1] == b"\x00"
    assert len(png.idat) == 1 and bytes(png.idat[0])
    rgba = formats.read_png(_png(Image.new("RGBA", (20, 20))))
    assert (rgba.colour, rgba.channels) == (6, 4)
    assert formats.read_png(_interlaced()).interlaced


def _interlaced() -> bytes:
    data = _png(Image.new("L", (20, 20)))
    ihdr = bytearray(_ihdr(data)[8:21])
    ihdr[12] = 1
    return data[:8] + _chunk(b"IHDR", bytes(ihdr)) + _after_ihdr(data)


def test_the_sanitized_png_keeps_only_critical_chunks_and_decodes_the_same() -> None:
    image = Image.fromarray(np.arange(400, dtype=np.uint8).reshape(20, 20) % 251)
    data = _png(image)
    with_text = data[:33] + _chunk(b"tEXt", b"k\x00v") + _after_ihdr(data)
    clean = formats.read_png(with_text).sanitized()
    assert b"tEXt" not in clean
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(clean))), np.asarray(image))
    assert formats.read_png(data).header(height=7, interlaced=True)[8:33] == _chunk(
        b"IHDR", struct.pack(">IIBBBBB", 20, 7, 8, 0, 0, 0, 1)
    )


def test_the_chunk_limit_is_exact() -> None:
    data = _png()
    # IHDR, IDAT and IEND are chunks too
    filler = _chunk(b"tEXt", b"")
    room = MAX_PNG_CHUNKS - 3
    formats.read_png(data[:33] + filler * room + _after_ihdr(data))
    with pytest.raises(CorruptImageError, match=f"more than {MAX_PNG_CHUNKS} chunks"):
        formats.read_png(data[:33] + filler * (room + 1) + _after_ihdr(data))


def test_chunks_after_iend_are_not_read() -> None:
    data = _png()
    assert formats.read_png(data + b"\x00\x00\x00\x05junk").width == 20


@pytest.mark.parametrize("kind", [b"IHDR", b"PLTE", b"IDAT", b"tRNS"])
def test_a_critical_chunk_with_a_bad_crc_is_corrupt(kind: bytes) -> None:
    palette = Image.new("P", (20, 20))
    palette.putpalette([0] * 768)
    data = bytearray(_png(palette, transparency=0))
    at = data.index(kind)
    (length,) = struct.unpack_from(">I", data, at - 4)
    data[at + 4 + length] ^= 1
    with pytest.raises(CorruptImageError, match=f"{kind.decode()} chunk is damaged"):
        formats.read_png(bytes(data))


def test_an_ancillary_chunk_with_a_bad_crc_is_skipped() -> None:
    data = _png()
    assert formats.read_png(data[:33] + b"\x00\x00\x00\x00tEXtBAD!" + _after_ihdr(data)).width == 20


def test_only_the_first_exif_chunk_of_a_sane_size_is_kept() -> None:
    data = _png()
    big = _chunk(b"eXIf", b"x" * (MAX_EXIF_BYTES + 1))
    exact = _chunk(b"eXIf", b"y" * MAX_EXIF_BYTES)
    assert formats.read_png(data[:33] + big + _after_ihdr(data)).exif == b""
    assert formats.read_png(data[:33] + exact + _after_ihdr(data)).exif == b"y" * MAX_EXIF_BYTES
    two = _chunk(b"eXIf", b"first") + _chunk(b"eXIf", b"second")
    assert formats.read_png(data[:33] + two + _after_ihdr(data)).exif == b"first"


@pytest.mark.parametrize(
    ("ihdr", "message"),
    [
        (struct.pack(">IIBBBBB", 20, 20, 8, 1, 0, 0, 0), "invalid"),  # no colour type 1
        (struct.pack(">IIBBBBB", 20, 20, 16, 3, 0, 0, 0), "invalid"),  # no 16-bit palette
        (struct.pack(">IIBBBBB", 20, 20, 4, 2, 0, 0, 0), "invalid"),
        (struct.pack(">IIBBBBB", 20, 20, 8, 2, 1, 0, 0), "invalid"),
        (struct.pack(">IIBBBBB", 20, 20, 8, 2, 0, 1, 0), "invalid"),
        (struct.pack(">IIBBBBB", 20, 20, 8, 2, 0, 0, 2), "invalid"),
        (struct.pack(">IIBBBBB", 20, 20, 8, 2, 0, 0, 0) + b"\x00", "does not start with its header"),
    ],
)
def test_an_invalid_header_is_corrupt(ihdr: bytes, message: str) -> None:
    data = _png()
    with pytest.raises(CorruptImageError, match=message):
        formats.read_png(data[:8] + _chunk(b"IHDR", ihdr) + _after_ihdr(data))


@pytest.mark.parametrize(("colour", "depths"), [(0, (1, 2, 4, 8, 16)), (2, (8, 16)), (3, (1, 2, 4, 8)),
                                                (4, (8, 16)), (6, (8, 16))])  # fmt: skip
def test_every_valid_depth_is_accepted(colour: int, depths: tuple[int, ...]) -> None:
    data = _png()
    extra = _chunk(b"PLTE", b"\x00" * 3) if colour == 3 else b""
    for depth in depths:
        ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 20, 20, depth, colour, 0, 0, 0))
        assert formats.read_png(data[:8] + ihdr + extra + _after_ihdr(data)).depth == depth


def test_missing_pieces_are_corrupt() -> None:
    data = _png()
    with pytest.raises(CorruptImageError, match="does not start with its header"):
        formats.read_png(data[:8] + _chunk(b"tEXt", b"") + data[8:])
    with pytest.raises(CorruptImageError, match="no image data"):
        formats.read_png(data[:33] + _chunk(b"IEND"))
    with pytest.raises(CorruptImageError, match="no image data"):
        formats.read_png(data[:8])
    with pytest.raises(CorruptImageError, match="truncated"):
        formats.read_png(data[:-20])
    palette_ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 20, 20, 8, 3, 0, 0, 0))
    with pytest.raises(CorruptImageError, match="palette PNG has no palette"):
        formats.read_png(data[:8] + palette_ihdr + _after_ihdr(data))


def test_the_chunk_walk_reads_a_chunk_header_that_ends_the_file() -> None:
    """Eight bytes left make a chunk header (a zero-length IDAT without its CRC: damaged); seven do not."""
    data = _png()
    without_end = data[: -len(_chunk(b"IEND"))]
    with pytest.raises(CorruptImageError, match="IDAT chunk is damaged"):
        formats.read_png(without_end + b"\x00\x00\x00\x00IDAT")
    assert formats.read_png(without_end + b"\x00\x00\x00\x00IDA").width == formats.read_png(data).width


# --- TIFF ----------------------------------------------------------------------------------------


def _tiff(entries: list[tuple[int, int, int, int]], order: str = "<", tail: bytes = b"") -> bytes:
    """A TIFF header and one directory of (tag, type, count, value) entries."""
    head = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8)
    body = struct.pack(order + "H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack(order + "H", value) + b"\x00\x00" if kind == 3 else struct.pack(order + "I", value)
        body += struct.pack(order + "HHI", tag, kind, count) + packed
    return head + body + struct.pack(order + "I", 0) + tail


@pytest.mark.parametrize("order", ["<", ">"])
def test_tiff_strip_and_tile_bytes(order: str) -> None:
    size = [(256, 4, 1, 1000), (257, 3, 1, 700)]
    strips = formats.check_tiff(_tiff([*size, (277, 3, 1, 3), (278, 4, 1, 16)], order))
    assert (strips.width, strips.height, strips.strip_bytes) == (1000, 700, 16 * 3000)
    deep = formats.check_tiff(_tiff([*size, (258, 3, 1, 16), (277, 3, 1, 1), (278, 3, 1, 5)], order))
    assert deep.strip_bytes == 5 * 2000
    odd = formats.check_tiff(_tiff([(256, 3, 1, 9), (257, 3, 1, 700), (258, 3, 1, 1)], order))
    assert odd.strip_bytes == 700 * 2  # one strip of 9 one-bit pixels a row: 2 bytes a row
    one_strip = formats.check_tiff(_tiff([*size, (278, 4, 1, 4_000_000)], order))
    assert one_strip.strip_bytes == 700 * 1000
    zero_rows = formats.check_tiff(_tiff([*size, (278, 4, 1, 0)], order))
    assert zero_rows.strip_bytes == 700 * 1000
    tiled = formats.check_tiff(_tiff([*size, (277, 3, 1, 4), (322, 3, 1, 64), (323, 3, 1, 32)], order))
    assert tiled.strip_bytes == 32 * 64 * 4
    only_width = formats.check_tiff(_tiff([*size, (322, 3, 1, 64), (278, 3, 1, 10)], order))
    assert only_width.strip_bytes == 10 * 1000


def test_a_tile_length_without_a_tile_width_is_no_tiled_tiff() -> None:
    """Both tile tags make a tiled TIFF; a tile length alone is ignored and the strips are counted."""
    info = formats.check_tiff(_tiff([(256, 4, 1, 1000), (257, 4, 1, 700), (278, 4, 1, 16), (323, 4, 1, 64)]))
    assert info.strip_bytes == 16 * 1000


def test_a_pillow_tiff_is_read() -> None:
    info = formats.check_tiff(_save(Image.new("RGB", (65, 49)), "TIFF"))
    assert (info.width, info.height, info.strip_bytes) == (65, 49, 49 * 65 * 3)


def test_tiff_value_and_tag_limits_are_exact() -> None:
    size = [(256, 4, 1, 10), (257, 4, 1, 10)]
    formats.check_tiff(_tiff([*size, (273, 4, MAX_TIFF_VALUES, 0)]))
    with pytest.raises(CorruptImageError, match=f"tag 273 holds {MAX_TIFF_VALUES + 1} values"):
        formats.check_tiff(_tiff([*size, (273, 4, MAX_TIFF_VALUES + 1, 0)]))
    for kind in (1, 2, 6, 7):  # bytes: one object, not a tuple of values
        formats.check_tiff(_tiff([*size, (700, kind, 10_000_000, 0)]))
    many = [(1000 + i, 3, 1, 0) for i in range(MAX_TIFF_TAGS)]
    formats.check_tiff(_tiff(many))
    with pytest.raises(CorruptImageError, match=f"has {MAX_TIFF_TAGS + 1} tags"):
        formats.check_tiff(_tiff([*many, (3000, 3, 1, 0)]))


def test_tiff_values_that_are_not_single_shorts_or_longs_are_not_read() -> None:
    info = formats.check_tiff(_tiff([(256, 4, 2, 1000), (257, 5, 1, 700)]))
    assert (info.width, info.height) == (0, 0)


def test_truncated_tiffs_are_corrupt() -> None:
    with pytest.raises(CorruptImageError, match="truncated"):
        formats.check_tiff(b"II*\x00\x08\x00\x00")
    with pytest.raises(CorruptImageError, match="past the end"):
        formats.check_tiff(b"II*\x00" + struct.pack("<I", 8) + b"\x00")
    with pytest.raises(CorruptImageError, match="past the end"):  # 8 bytes: the whole header, no directory
        formats.check_tiff(b"II*\x00" + struct.pack("<I", 8))
    formats.check_tiff(b"II*\x00" + struct.pack("<I", 8) + b"\x00\x00")  # an empty directory, exactly at the end
    whole = _tiff([(256, 4, 1, 10), (257, 4, 1, 10)])
    with pytest.raises(CorruptImageError, match="directory is truncated"):
        formats.check_tiff(whole[: 8 + 2 + 12 + 11])
    formats.check_tiff(whole[: 8 + 2 + 24])


# --- WebP ----------------------------------------------------------------------------------------


def _riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(kind + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1) for kind, data in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def test_the_webp_exif_size_is_noted_past_odd_chunks() -> None:
    assert formats.check_webp(_riff([(b"VP8X", b"x" * 10), (b"ICCP", b"abc"), (b"EXIF", b"e" * 7)])).exif_bytes == 7
    assert formats.check_webp(_riff([(b"VP8 ", b"x" * 10)])).exif_bytes == 0
    assert formats.check_webp(_save(Image.new("RGB", (20, 20)), "WEBP", exif=b"Exif\x00\x00" + b"\x00" * 8)).exif_bytes


def test_seven_bytes_after_the_last_webp_chunk_are_no_chunk() -> None:
    assert formats.check_webp(_riff([(b"EXIF", b"ab")]) + b"EXIF\x00\x00\x00").exif_bytes == 2


def test_the_webp_chunk_limit_is_exact() -> None:
    formats.check_webp(_riff([(b"JUNK", b"")] * MAX_WEBP_CHUNKS))
    with pytest.raises(CorruptImageError, match=f"more than {MAX_WEBP_CHUNKS} chunks"):
        formats.check_webp(_riff([(b"JUNK", b"")] * (MAX_WEBP_CHUNKS + 1)))


def test_png_chunk_crc() -> None:
    assert formats.png_chunk(b"IEND", b"") == b"\x00\x00\x00\x00IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


@pytest.mark.parametrize("marker", [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF])
def test_every_frame_marker_is_read_and_the_progressive_ones_need_the_whole_image(marker: int) -> None:
    frame = bytes((0xFF, marker)) + b"\x00\x0b\x08\x00\x31\x00\x41\x01\x01\x11\x00"
    info = formats.check_jpeg(b"\xff\xd8" + frame + b"\xff\xd9")
    assert (info.width, info.height) == (65, 49)
    assert info.whole_image_buffer is (marker in (0xC2, 0xC6, 0xCA, 0xCE))


@pytest.mark.parametrize("marker", [0xC4, 0xC8, 0xCC])  # DHT, JPG and DAC share the range but are no frames
def test_other_markers_in_the_frame_range_are_not_frames(marker: int) -> None:
    segment = bytes((0xFF, marker)) + b"\x00\x0b\x08\x00\x31\x00\x41\x01\x01\x11\x00"
    with pytest.raises(CorruptImageError, match="no frame header"):
        formats.check_jpeg(b"\xff\xd8" + segment + b"\xff\xd9")


def test_a_segment_whose_length_ends_the_file_is_still_read() -> None:
    with pytest.raises(CorruptImageError, match="frame header is truncated"):
        formats.check_jpeg(b"\xff\xd8\xff\xc0\x00\x11")
    with pytest.raises(CorruptImageError, match="no frame header"):
        formats.check_jpeg(b"\xff\xd8\xff\xc0\x00")


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4), ("P", 1)])
def test_png_channels_per_colour_type(mode: str, channels: int) -> None:
    assert formats.read_png(_png(Image.new(mode, (20, 20)))).channels == channels


def test_each_components_own_sampling_is_read() -> None:
    """Cb sampled twice as wide as Y and Cr (unusual, but legal): each component's factors come from its own bytes."""
    components = b"\x01\x11\x00" + b"\x02\x21\x01" + b"\x03\x12\x01"
    frame = b"\xff\xc0\x00\x11\x08\x00\x31\x00\x41\x03" + components
    info = formats.check_jpeg(b"\xff\xd8" + frame + b"\xff\xd9")
    # h_max 2, v_max 2: Y 5 x 4 blocks (ceil(65 / 16), ceil(49 / 16)), Cb 9 x 4, Cr 5 x 7
    assert info.coefficient_bytes == (5 * 4 + 9 * 4 + 5 * 7) * 128


@pytest.mark.parametrize(("sampling", "blocks"), [(0x11, 3 * 38 * 25), (0x22, 38 * 25 + 2 * 19 * 13)])
def test_blocks_are_counted_in_8_pixel_steps_both_ways(sampling: int, blocks: int) -> None:
    components = bytes((1, sampling, 0)) + b"\x02\x11\x01" + b"\x03\x11\x01"
    frame = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 200, 300) + b"\x03" + components  # 300 x 200
    assert formats.check_jpeg(b"\xff\xd8" + frame + b"\xff\xd9").coefficient_bytes == blocks * 128
