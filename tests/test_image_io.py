"""Image reading: good files decode, bad ones raise PoseDataError naming the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from posedistill.data.image_io import check_image_bytes, decode_image, read_image
from posedistill.errors import PoseDataError
from tests.conftest import shared_path


def _photo(h: int = 120, w: int = 160) -> np.ndarray:
    """Smooth content plus noise: compresses to a JPEG with real entropy-coded data."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 40, img.shape, dtype=np.uint8)
    return cv2.add(img, noise)


def _jpeg(img: np.ndarray, progressive: bool = False) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    return buf.tobytes()


def test_read_png_is_exact_bgr(tmp_path: Path):
    img = _photo()
    cv2.imwrite(str(tmp_path / "a.png"), img)
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (120, 160, 3)
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("progressive", [False, True])
def test_read_jpeg_matches_imread(tmp_path: Path, progressive: bool):
    p = tmp_path / "a.jpg"
    p.write_bytes(_jpeg(_photo(), progressive))
    np.testing.assert_array_equal(read_image(p), cv2.imread(str(p)))


def test_grey_jpeg_becomes_three_channels(tmp_path: Path):
    p = tmp_path / "g.jpg"
    _, buf = cv2.imencode(".jpg", _photo()[..., 0])
    p.write_bytes(buf.tobytes())
    assert read_image(p).shape == (120, 160, 3)


def test_missing_file_names_it(tmp_path: Path):
    p = tmp_path / "nope" / "missing.jpg"
    with pytest.raises(PoseDataError, match="not found") as e:
        read_image(p)
    assert str(p) in str(e.value) and e.value.path == str(p)


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg_names_the_file(tmp_path: Path, progressive: bool):
    data = _jpeg(_photo(240, 320), progressive)
    for i, cut in enumerate([len(data) - 2, len(data) - 1, int(len(data) * 0.6), 300, 40, 3]):
        p = tmp_path / f"cut{i}.jpg"
        p.write_bytes(data[:cut])
        with pytest.raises(PoseDataError, match="truncated JPEG") as e:
            read_image(p)
        assert str(p) in str(e.value)


def test_jpeg_trailing_bytes_after_eoi_are_allowed(tmp_path: Path):
    p = tmp_path / "pad.jpg"
    img = _photo()
    p.write_bytes(_jpeg(img) + b"\x00" * 17 + b"trailer")
    np.testing.assert_array_equal(read_image(p), cv2.imdecode(np.frombuffer(_jpeg(img), np.uint8), cv2.IMREAD_COLOR))


def test_corrupt_files(tmp_path: Path):
    cases = {
        "garbage.jpg": b"this is not an image at all" * 10,
        "empty.png": b"",
        "badmarker.jpg": b"\xff\xd8" + b"\x00" * 100,
    }
    png = cv2.imencode(".png", _photo())[1].tobytes()
    cases["cut.png"] = png[: len(png) // 2]
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(PoseDataError) as e:
            read_image(p)
        assert str(p) in str(e.value), name
    with pytest.raises(PoseDataError, match="directory"):
        read_image(tmp_path)


def test_decode_and_check_bytes():
    data = _jpeg(_photo())
    assert check_image_bytes(data) is None
    assert "truncated" in check_image_bytes(data[:-100])
    assert decode_image(data).shape == (120, 160, 3)
    with pytest.raises(PoseDataError, match=r"frame\.jpg"):
        decode_image(data[:500], path="frame.jpg")


def test_real_lspet_images_read():
    root = shared_path("data", "lspet", "images")
    for p in sorted(root.glob("*.jpg"))[:25]:
        np.testing.assert_array_equal(read_image(p), cv2.imread(str(p)))
