"""Reading image files: every bad file becomes a message in words, never an exception; what the
inspector can use (16-bit, alpha) comes through as stored."""

import os
import struct
import time
import zlib

import cv2
import numpy as np
import pytest

from vision_qc.shell import imageio
from vision_qc.shell.imageio import MAX_PIXELS, read_header, read_image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bytes(width: int, height: int, *, depth=8, color_type=0,
               idat: bytes | None = None) -> bytes:
    """A PNG written by hand; with ``idat=None`` all-zero rows (compressed: tiny even when huge)."""
    if idat is None:
        bits = {0: 1, 2: 3, 4: 2, 6: 4}[color_type] * depth
        row = b"\0" + bytes((width * bits + 7) // 8)
        co = zlib.compressobj(9)
        idat = co.compress(row * height) + co.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def gray():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (48, 64), dtype=np.uint8)


def _encoded(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def _write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


# ---------------------------------------------------------------------------------------
# Good files come through as stored


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".pgm", ".jpg", ".webp"])
def test_grey_formats_read_back(tmp_path, gray, ext):
    path = _write(tmp_path / f"a{ext}", _encoded(ext, gray))
    frame, err = read_image(path)
    assert err is None
    assert frame.shape[:2] == gray.shape and frame.dtype == np.uint8
    if ext not in (".jpg", ".webp"):         # lossless: the same pixels
        np.testing.assert_array_equal(frame, gray)


def test_16bit_png_stays_16bit(tmp_path, gray):
    img16 = gray.astype(np.uint16) * 257
    frame, err = read_image(_write(tmp_path / "a.png", _encoded(".png", img16)))
    assert err is None and frame.dtype == np.uint16
    np.testing.assert_array_equal(frame, img16)


def test_rgba_png_keeps_alpha(tmp_path, gray):
    bgra = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA)
    bgra[..., 3] = 200
    frame, err = read_image(_write(tmp_path / "a.png", _encoded(".png", bgra)))
    assert err is None and frame.shape == (48, 64, 4)
    np.testing.assert_array_equal(frame, bgra)


def test_grey_alpha_png_reads_as_four_channels(tmp_path):
    frame, err = read_image(_write(tmp_path / "ga.png", _png_bytes(32, 16, color_type=4)))
    assert err is None and frame.shape == (16, 32, 4)


def test_suffix_does_not_matter(tmp_path, gray):
    # a PNG named .jpg is still a PNG
    frame, err = read_image(_write(tmp_path / "really_png.jpg", _encoded(".png", gray)))
    assert err is None and frame.shape == gray.shape


# ---------------------------------------------------------------------------------------
# Bad files: a message in words, table-driven


def _truncated(ext):
    def make(gray):
        data = _encoded(ext, np.tile(gray, (8, 8)))
        return data[: len(data) // 2]
    return make


BAD = [
    # name, bytes from the grey test image, words the message must contain
    ("zero.png", lambda g: b"", "empty file"),
    ("text.png", lambda g: b"hello, I am a text file\n", "not an image"),
    ("binary.png", lambda g: bytes(range(256)) * 4, "not an image"),
    ("half.png", _truncated(".png"), "truncated png"),
    ("no_iend.png", lambda g: _encoded(".png", g)[:-12], "truncated png"),
    ("header_only.png", lambda g: _encoded(".png", g)[:20], "truncated or corrupt png"),
    ("half.jpg", _truncated(".jpg"), "truncated jpeg"),
    ("half.bmp", _truncated(".bmp"), "truncated bmp"),
    ("half.pgm", _truncated(".pgm"), "truncated pnm"),
    ("bad_zlib.png", lambda g: _png_bytes(64, 48, idat=b"not zlib data at all"), "cannot decode"),
    ("huge_header.png", lambda g: _png_bytes(30000, 30000, idat=b"x"), "refused before decoding"),
]


@pytest.mark.parametrize("name, make, words", BAD, ids=[b[0] for b in BAD])
def test_bad_files_give_a_message(tmp_path, gray, name, make, words):
    path = _write(tmp_path / name, make(gray))
    frame, err = read_image(path)
    assert frame is None
    assert isinstance(err, str) and words in err.lower(), err


def test_missing_file_and_folder(tmp_path):
    assert read_image(tmp_path / "nope.png") == (None, "no such file")
    frame, err = read_image(tmp_path)
    assert frame is None and "folder" in err


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    # 20000 x 20000 1-bit grey: 48 kB on disk, 400 MB once decoded to 8 bits
    path = _write(tmp_path / "bomb.png", _png_bytes(20000, 20000, depth=1))
    assert os.path.getsize(path) < 100_000
    t0 = time.perf_counter()
    frame, err = read_image(path)
    assert frame is None
    assert "20000×20000" in err and "before decoding" in err
    assert time.perf_counter() - t0 < 0.5        # decoding it would take seconds


def test_pixel_limit_is_a_parameter(tmp_path, gray):
    path = _write(tmp_path / "a.png", _encoded(".png", gray))
    frame, err = read_image(path, max_pixels=gray.size - 1)
    assert frame is None and "limit" in err
    frame, err = read_image(path, max_pixels=gray.size)
    assert err is None


def test_file_size_limit(tmp_path, gray):
    path = _write(tmp_path / "a.png", _encoded(".png", gray))
    frame, err = read_image(path, max_bytes=10)
    assert frame is None and "limit" in err


def test_opencv_pixel_limit_is_set_for_workers():
    # workers started after this import inherit it; OpenCV reads it when first loaded
    assert int(os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"]) <= MAX_PIXELS
    assert imageio.MAX_PIXELS == MAX_PIXELS


def test_unreadable_file(tmp_path):
    """A path the system refuses to open (here: below a plain file, which fails for root
    too, unlike a file without read permission) is an error in words, not an exception."""
    (tmp_path / "plain.txt").write_text("not a folder")
    frame, err = read_image(tmp_path / "plain.txt" / "a.png")
    assert frame is None and "cannot read" in err and "Not a directory" in err


# ---------------------------------------------------------------------------------------
# Headers


@pytest.mark.parametrize("ext, fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".bmp", "BMP"),
                                      (".tif", "TIFF"), (".pgm", "PNM"), (".ppm", "PNM"),
                                      (".webp", "WebP")])
def test_header_size(gray, ext, fmt):
    img = gray if ext != ".ppm" else cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    h = read_header(_encoded(ext, img))
    assert (h.format, h.width, h.height) == (fmt, 64, 48)


def test_header_gif_and_unknown():
    assert read_header(b"GIF89a" + struct.pack("<HH", 640, 480) + bytes(20)).width == 640
    assert read_header(b"just text") is None


def test_header_of_truncated_file_raises_value_error(gray):
    with pytest.raises(ValueError, match="truncated PNG"):
        read_header(_encoded(".png", gray)[:100])
