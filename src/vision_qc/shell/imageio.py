"""Reading image files robustly: a frame, or a message in words saying why not.

:func:`read_image` never raises for a bad file. It reads the bytes once, checks the header of
the formats it knows (PNG, JPEG, BMP, TIFF, PNM, WebP, GIF) with plain byte parsing, refuses an
image above :data:`MAX_PIXELS` *before* decoding it (a decompression bomb costs nothing), refuses
truncated PNG/JPEG/BMP/PNM files before the decoder sees them, and only then decodes with
``cv2.imdecode(..., IMREAD_UNCHANGED)`` so 16-bit and alpha channels reach the inspector as
they are (it converts them; what it cannot use it refuses with its own message).

Formats whose header is not parsed here are still tried with OpenCV; for them the pixel limit
is enforced by OpenCV's ``OPENCV_IO_MAX_IMAGE_PIXELS``, which this module sets (unless the user
did) before OpenCV is first imported, so it holds in every worker process started afterwards,
and by a check of the decoded size.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

# OpenCV reads this once, when it is loaded; set it before the first ``import cv2`` here and in
# the worker processes that inherit this environment.
MAX_PIXELS = 100_000_000
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["MAX_PIXELS", "MAX_FILE_BYTES", "IMAGE_EXTENSIONS", "ImageHeader", "read_image",
           "read_header"]

# Larger files are refused unread (an uncompressed 100 MP 16-bit BGRA image is 800 MB).
MAX_FILE_BYTES = 1 << 30

# Suffixes a folder scan picks up (files named explicitly are tried whatever their suffix).
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff",
                              ".pgm", ".ppm", ".pnm", ".pbm", ".webp", ".gif"})


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says: format name and size in px."""

    format: str
    width: int
    height: int


class _BadFile(Exception):
    """Internal: the file cannot be used; the message says why, in words."""


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.3g} MP"


# ----------------------------------------------------------------------------------------
# Header parsing per format. Each takes the whole file and returns an ImageHeader or raises
# _BadFile; they check only what is needed to size the image and to spot truncation.


def _png(data: bytes) -> ImageHeader:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _BadFile("truncated or corrupt PNG: the header (IHDR) is missing or cut short")
    width, height = struct.unpack(">II", data[16:24])
    # Walk the chunks (length, type, data, crc) to the end: a file cut short ends inside one.
    pos, n = 8, len(data)
    while True:
        if pos + 8 > n:
            raise _BadFile(f"truncated PNG: the file ends after {n} bytes, before the end chunk "
                           f"(IEND); it was cut short while being written or copied")
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        ctype = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > n:
            name = ctype.decode("latin-1") if ctype.isalpha() else repr(ctype)
            raise _BadFile(f"truncated PNG: the file ends after {n} bytes, inside chunk {name} "
                           f"which needs {end} bytes; it was cut short while being written or "
                           f"copied")
        if ctype == b"IEND":
            break
        pos = end
    return ImageHeader("PNG", width, height)


# JPEG start-of-frame markers (all but DHT C4, JPG C8 and DAC CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(data: bytes) -> ImageHeader:
    # A complete JPEG ends with the end-of-image marker; allow a little padding after it.
    if b"\xff\xd9" not in data[-256:].rstrip(b"\x00\r\n "):
        raise _BadFile(f"truncated JPEG: no end-of-image marker at the end of the {len(data)} "
                       f"bytes; it was cut short while being written or copied")
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise _BadFile("corrupt JPEG: a marker was expected in the header and not found")
        marker = data[pos + 1]
        if marker == 0xFF:          # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in _SOF:
            if pos + 9 > n:
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return ImageHeader("JPEG", width, height)
        if marker == 0xDA:          # start of scan before any frame header
            break
        pos += 2 + length
    raise _BadFile("corrupt JPEG: no frame header (SOF) giving the image size")


def _bmp(data: bytes) -> ImageHeader:
    if len(data) < 26:
        raise _BadFile(f"truncated BMP: the header is cut short ({len(data)} bytes)")
    offset = struct.unpack("<I", data[10:14])[0]
    hsize = struct.unpack("<I", data[14:18])[0]
    if hsize == 12:                  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
        bpp, compression = struct.unpack("<H", data[24:26])[0], 0
    else:
        if len(data) < 34:
            raise _BadFile(f"truncated BMP: the header is cut short ({len(data)} bytes)")
        width, height = struct.unpack("<ii", data[18:26])
        bpp = struct.unpack("<H", data[28:30])[0]
        compression = struct.unpack("<I", data[30:34])[0]
    height = abs(height)             # negative: rows stored top-down
    if width <= 0 or height == 0:
        raise _BadFile(f"corrupt BMP: the header gives a size of {width}×{height} px")
    if compression in (0, 3) and bpp in (1, 4, 8, 16, 24, 32):
        need = offset + ((width * bpp + 31) // 32) * 4 * height
        if len(data) < need:
            raise _BadFile(f"truncated BMP: {len(data)} bytes, but {width}×{height} px at {bpp} "
                           f"bits need {need}; it was cut short while being written or copied")
    return ImageHeader("BMP", width, height)


def _tiff(data: bytes) -> ImageHeader:
    end = "<" if data[:2] == b"II" else ">"
    if struct.unpack(end + "H", data[2:4])[0] == 43:
        raise _BadFile("BigTIFF files are not supported")
    ifd = struct.unpack(end + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        raise _BadFile(f"truncated TIFF: the directory of the first image (at byte {ifd}) lies "
                       f"beyond the end of the {len(data)} bytes")
    count = struct.unpack(end + "H", data[ifd:ifd + 2])[0]
    size = {}
    for i in range(count):
        e = ifd + 2 + 12 * i
        if e + 12 > len(data):
            raise _BadFile("truncated TIFF: the image directory is cut short")
        tag, typ = struct.unpack(end + "HH", data[e:e + 4])
        if tag in (256, 257):
            fmt = end + ("H" if typ == 3 else "I")
            size[tag] = struct.unpack(fmt, data[e + 8:e + 8 + struct.calcsize(fmt)])[0]
    if 256 not in size or 257 not in size:
        raise _BadFile("corrupt TIFF: the first image has no width or height")
    return ImageHeader("TIFF", size[256], size[257])


def _pnm(data: bytes) -> ImageHeader:
    kind = data[1:2]
    need_fields = 2 if kind in (b"1", b"4") else 3
    fields: list[int] = []
    pos, n = 2, len(data)
    while len(fields) < need_fields:
        while pos < n and data[pos:pos + 1].isspace():
            pos += 1
        if pos < n and data[pos:pos + 1] == b"#":
            while pos < n and data[pos:pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < n and data[pos:pos + 1].isdigit():
            pos += 1
        if start == pos:
            raise _BadFile("corrupt or truncated PNM: the header does not give width, height "
                           "and maximum value")
        fields.append(int(data[start:pos]))
    width, height = fields[0], fields[1]
    if kind in (b"5", b"6"):
        channels = 3 if kind == b"6" else 1
        depth = 2 if fields[2] > 255 else 1
        need = pos + 1 + width * height * channels * depth
        if n < need:
            raise _BadFile(f"truncated PNM: {n} bytes, but {width}×{height} px need {need}; it "
                           f"was cut short while being written or copied")
    return ImageHeader("PNM", width, height)


def _webp(data: bytes) -> ImageHeader:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 " and len(data) >= 30:
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
    else:
        raise _BadFile("truncated or corrupt WebP: no image header")
    riff_len = int.from_bytes(data[4:8], "little") + 8
    if len(data) < riff_len:
        raise _BadFile(f"truncated WebP: {len(data)} bytes, but the file says {riff_len}; it was "
                       f"cut short while being written or copied")
    return ImageHeader("WebP", width, height)


def _gif(data: bytes) -> ImageHeader:
    if len(data) < 10:
        raise _BadFile("truncated GIF: the header is cut short")
    width, height = struct.unpack("<HH", data[6:10])
    return ImageHeader("GIF", width, height)


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", _png),
    (b"\xff\xd8\xff", _jpeg),
    (b"BM", _bmp),
    (b"II*\x00", _tiff), (b"MM\x00*", _tiff), (b"II+\x00", _tiff), (b"MM\x00+", _tiff),
    (b"P1", _pnm), (b"P2", _pnm), (b"P3", _pnm), (b"P4", _pnm), (b"P5", _pnm), (b"P6", _pnm),
    (b"GIF87a", _gif), (b"GIF89a", _gif),
)


def read_header(data: bytes) -> ImageHeader | None:
    """The format and size from a file's first bytes, or None for a format not parsed here.

    Raises
    ------
    ValueError
        The file claims a known format but is truncated or corrupt (the message says how).
    """
    try:
        return _read_header(data)
    except _BadFile as exc:
        raise ValueError(str(exc)) from None


def _read_header(data: bytes) -> ImageHeader | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    for magic, parse in _SIGNATURES:
        if data.startswith(magic):
            try:
                return parse(data)
            except (struct.error, IndexError, ValueError):
                raise _BadFile(f"corrupt {parse.__name__.strip('_').upper()} header") from None
    return None


def _describe_start(data: bytes) -> str:
    head = data[:24]
    text = head.decode("utf-8", errors="replace")
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"it starts with the text {text.strip()[:20]!r}"
    return f"it starts with the bytes {head[:8].hex(' ')}"


def read_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS,
               max_bytes: int = MAX_FILE_BYTES) -> tuple[np.ndarray | None, str | None]:
    """Read one image file as it is stored.

    Parameters
    ----------
    path : str or os.PathLike
    max_pixels : int, keyword-only
        Larger images (width × height) are refused; from the header, before decoding, when the
        format is one parsed here.
    max_bytes : int, keyword-only
        Larger files are refused unread.

    Returns
    -------
    (frame, None)
        ``frame`` as decoded with ``IMREAD_UNCHANGED``: H×W, H×W×3 (BGR) or H×W×4 (BGRA),
        uint8 or uint16 (or whatever else the file holds, e.g. float32 TIFF).
    (None, message)
        The file cannot be used; ``message`` says why in words (no such file, empty,
        not an image, truncated, too large, cannot be decoded).
    """
    try:
        return _read(os.fspath(path), max_pixels, max_bytes), None
    except _BadFile as exc:
        return None, str(exc)


def _read(path: str, max_pixels: int, max_bytes: int) -> np.ndarray:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _BadFile("no such file") from None
    except OSError as exc:
        raise _BadFile(f"cannot read the file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise _BadFile("is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise _BadFile("is not a regular file")
    if st.st_size == 0:
        raise _BadFile("empty file (0 bytes): not an image")
    if st.st_size > max_bytes:
        raise _BadFile(f"file is {st.st_size} bytes, more than the {max_bytes}-byte limit; "
                       f"refused unread")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise _BadFile(f"cannot read the file: {exc.strerror or exc}") from None
    if not data:
        raise _BadFile("empty file (0 bytes): not an image")

    header = _read_header(data)
    if header is not None:
        pixels = header.width * header.height
        if header.width <= 0 or header.height <= 0:
            raise _BadFile(f"corrupt {header.format}: the header gives a size of "
                           f"{header.width}×{header.height} px")
        if pixels > max_pixels:
            raise _BadFile(f"image is {header.width}×{header.height} px ({_mp(pixels)}), more "
                           f"than the {_mp(max_pixels)} limit; refused before decoding "
                           f"(a decompression bomb, or not a camera image)")
    try:
        frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        # OpenCV's own pixel limit, or a decoder assertion
        detail = str(exc).strip().splitlines()[-1]
        raise _BadFile(f"cannot decode the image: {detail}") from None
    if frame is None:
        if header is None:
            raise _BadFile(f"not an image: no supported image format recognised "
                           f"({_describe_start(data)})")
        raise _BadFile(f"cannot decode the {header.format} data: the file is corrupt")
    if frame.shape[0] * frame.shape[1] > max_pixels:
        raise _BadFile(f"image is {frame.shape[1]}×{frame.shape[0]} px "
                       f"({_mp(frame.shape[0] * frame.shape[1])}), more than the "
                       f"{_mp(max_pixels)} limit")
    return frame
