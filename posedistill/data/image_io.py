"""Read an image file into a BGR uint8 array, or fail loudly naming the file.

OpenCV decodes a truncated JPEG without an error: libjpeg prints "Premature end of JPEG file" to stderr and
returns an image whose missing rows are grey. Training on that would be a silent wrong sample, so JPEGs are
checked structurally before decoding: the marker segments are walked from SOI to EOI (entropy-coded scans are
skipped with a vectorised search for the next marker) and a file that ends before EOI is rejected. Bytes after
EOI (padding, appended trailers) are allowed. PNGs must contain their IEND chunk.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from posedistill.errors import PoseDataError

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Markers without a length field: TEM, RST0-7, SOI, EOI
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8), 0xD8, 0xD9])


def _jpeg_problem(buf: np.ndarray) -> str | None:
    """None if the JPEG byte stream (uint8 array) runs from SOI to EOI, else what is wrong with it."""
    n = buf.size
    data = buf.tobytes()
    pos = 2  # after SOI
    markers: np.ndarray | None = None  # positions of FF bytes that start a marker inside scans, built lazily
    while True:
        if pos >= n:
            return f"truncated JPEG: the data ends after {n} bytes without an end-of-image marker (FFD9)"
        if data[pos] != 0xFF:
            return f"corrupt JPEG: expected a marker at byte {pos}, found 0x{data[pos]:02X}"
        while pos < n and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= n:
            continue
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return None
        if marker in _STANDALONE:
            continue
        if pos + 2 > n:
            return f"truncated JPEG: the data ends inside a marker segment after {n} bytes"
        pos += (data[pos] << 8) | data[pos + 1]
        if marker != 0xDA:
            continue
        # Start of scan: entropy-coded data follows, in which FF is always followed by 00 (stuffing), an RSTn
        # marker (D0-D7) or more FF fill bytes; the first FF followed by anything else starts the next marker.
        if markers is None:
            ff = np.flatnonzero(buf[:-1] == 0xFF)
            nxt = buf[ff + 1]
            markers = ff[(nxt != 0x00) & (nxt != 0xFF) & ((nxt < 0xD0) | (nxt > 0xD7))]
        k = np.searchsorted(markers, pos)
        if k == markers.size:
            return f"truncated JPEG: the data ends inside the image data after {n} bytes (no end-of-image marker)"
        pos = int(markers[k])


def _png_problem(data: bytes) -> str | None:
    # The last chunk is IEND (length 0): 00 00 00 00 'IEND' CRC. Look near the end to allow trailing padding.
    if b"\x00\x00\x00\x00IEND" not in data[-1024:]:
        return f"truncated PNG: no IEND chunk at the end of its {len(data)} bytes"
    return None


def check_image_bytes(data: np.ndarray | bytes) -> str | None:
    """What is wrong with an encoded JPEG / PNG byte stream (truncation, bad markers), or None if it looks whole.

    Other formats are not checked here; the decoder still has to succeed.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    head = buf[:8].tobytes()
    if head.startswith(_JPEG_SOI):
        return _jpeg_problem(buf)
    if head.startswith(_PNG_SIGNATURE):
        return _png_problem(buf.tobytes())
    return None


def decode_image(data: np.ndarray | bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes into (H, W, 3) BGR uint8, raising :class:`PoseDataError` naming ``path``."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    if buf.size == 0:
        raise PoseDataError(path, "image file is empty (0 bytes)")
    problem = check_image_bytes(buf)
    if problem is not None:
        raise PoseDataError(path, problem)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise PoseDataError(path, f"cannot decode the image ({buf.size} bytes): not a readable image or corrupt")
    return img


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) BGR uint8 (grey images are expanded; EXIF orientation as OpenCV applies it).

    Raises :class:`PoseDataError` naming the file when it is missing, unreadable, truncated or corrupt.
    """
    path = os.fspath(path)
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise PoseDataError(path, "image file not found") from None
    except IsADirectoryError:
        raise PoseDataError(path, "expected an image file, found a directory") from None
    except OSError as e:
        raise PoseDataError(path, f"cannot read the image file: {e.strerror or e}") from None
    return decode_image(buf, path)
