"""Image (width, height) from the file header, without decoding the pixels.

Readers need the size of every image (for clipping boxes and marking joints outside the frame), and decoding
3,000 JPEGs only to learn their sizes takes seconds; parsing the headers takes milliseconds. JPEG (the SOFn
segment, plus the EXIF orientation tag, because OpenCV's ``imread`` turns the image by it) and PNG (IHDR) are
parsed here; anything else falls back to ``cv2.imread``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC are other segments.
_SOF = frozenset([0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF])
_STANDALONE = frozenset([0x01, *range(0xD0, 0xDA)])  # TEM, RST0-7, SOI, EOI: no length field


def _exif_orientation(segment: bytes) -> int:
    """EXIF orientation (1-8) from an APP1 payload, 1 when absent or unreadable."""
    if not segment.startswith(b"Exif\x00\x00") or len(segment) < 14:
        return 1
    tiff = segment[6:]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return 1
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            tag, _, _, value = struct.unpack_from(order + "HHIH", tiff, ifd + 2 + 12 * i)
            if tag == 0x0112:
                return value if 1 <= value <= 8 else 1
    except struct.error:
        pass
    return 1


def _jpeg_size(f) -> tuple[int, int] | None:
    orientation = 1
    while True:
        byte = f.read(1)
        while byte == b"\xff":  # fill bytes, then the marker code
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in _STANDALONE:
            continue
        head = f.read(2)
        if len(head) < 2:
            return None
        length = (head[0] << 8) | head[1]
        if marker in _SOF:
            body = f.read(5)
            if len(body) < 5:
                return None
            h, w = struct.unpack(">HH", body[1:5])
            # Orientations 5-8 turn the image by 90 degrees: OpenCV returns it transposed.
            return (h, w) if orientation >= 5 else (w, h)
        if marker == 0xE1 and orientation == 1:
            orientation = _exif_orientation(f.read(length - 2))
            continue
        if marker == 0xDA:  # start of scan before any SOF: not a valid JPEG
            return None
        f.seek(length - 2, os.SEEK_CUR)
        # A marker must follow; anything else means a broken file.
        nxt = f.read(1)
        if nxt != b"\xff":
            return None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as ``cv2.imread`` would return it; (0, 0) if missing or unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
            if head[:2] == b"\xff\xd8":
                f.seek(2)
                size = _jpeg_size(f)
                if size is not None:
                    return size
            elif head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                return int(w), int(h)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return (0, 0)
    img = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return (0, 0)
    return int(img.shape[1]), int(img.shape[0])
