"""Frames from an image file, a folder of images, a glob pattern, a video file, a stream URL, a webcam index or
numpy arrays.

``open_source(src)`` returns a :class:`Source`; iterating it yields :class:`Frame` tuples
``(frame_id, name, image_bgr, timestamp)``:

- ``frame_id``: 0, 1, 2, ... in reading order;
- ``name``: the image file stem (the file name when stems collide: ``x.jpg`` and ``x.png`` in one folder), or
  ``<video stem>_<frame_id:06d>`` for video frames; unique within a source (used for output files);
- ``image_bgr``: (H, W, 3) uint8 BGR;
- ``timestamp``: seconds since the start for videos (``frame_id / fps``) and webcams (wall clock), None for images.

Problems are reported as :class:`posedistill.errors.PoseDataError` naming the file: a path that does not exist, a
glob that matches nothing, a folder without images, an unreadable image, a video OpenCV cannot open or that has no
frame. Videos are checked when opened (the first frame is read ahead), so a bad video fails before any output is
written. Folders and globs yield images only, in natural order (``2.jpg`` before ``10.jpg``); an unreadable image
among them is skipped with a warning (listed in ``source.skipped``; ``frame_id`` stays the image's index), as
training skips bad images, and only a folder with no readable image at all is an error. Torch-free.
"""

from __future__ import annotations

import glob as globlib
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from posedistill.data.image_io import read_image
from posedistill.errors import PoseDataError

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif"})
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://")

log = logging.getLogger(__name__)


class Frame(NamedTuple):
    frame_id: int
    name: str
    image: np.ndarray
    timestamp: float | None


def _natural_key(path: Path) -> list:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", str(path))]


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """One distinct name per path, for output files: the file stems; where stems collide, the path relative to
    the common folder with '/' -> '_', without its extension, or with it when that still collides (``x.jpg``,
    ``x.png``); a number is appended to whatever still collides."""
    names = [p.stem for p in paths]
    if len(set(names)) == len(names):
        return names
    root = Path(os.path.commonpath([str(p.parent.resolve()) for p in paths]))
    rel = [str(p.resolve().relative_to(root)).replace(os.sep, "_") for p in paths]
    names = [str(Path(r).with_suffix("")) if Path(r).suffix else r for r in rel]
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    names = [r if counts[n] > 1 else n for n, r in zip(names, rel)]
    seen: set[str] = set()
    out = []
    for n in names:
        unique, k = n, 1
        while unique in seen:
            k += 1
            unique = f"{n}_{k}"
        seen.add(unique)
        out.append(unique)
    return out


class Source:
    """Base class: ``kind`` (image, folder, glob, video, stream, webcam, arrays), ``name`` (for output files),
    ``is_video`` (frames are a time series from one capture), ``fps`` (None when unknown), ``len()`` (frame count,
    0 when unknown, e.g. a webcam)."""

    kind: str = ""
    name: str = ""
    is_video: bool = False
    fps: float | None = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __len__(self) -> int:
        return 0

    def close(self) -> None:
        """Release the capture (videos); harmless to call twice."""


class ImageSource(Source):
    """Images read one by one (an image file, a folder or a glob). ``skip_bad`` (default: when there is more than
    one image) skips an unreadable image with a warning and records it in ``skipped``, else it raises."""

    def __init__(
        self, paths: Sequence[Path], kind: str, name: str, fps: float | None = None, skip_bad: bool | None = None
    ) -> None:
        self.paths = list(paths)
        self.names = _unique_names(self.paths)
        self.kind = kind
        self.name = name
        self.fps = fps
        self.skip_bad = len(self.paths) > 1 if skip_bad is None else bool(skip_bad)
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[Frame]:
        self.skipped = []
        for i, (path, name) in enumerate(zip(self.paths, self.names)):
            try:
                image = read_image(path)
            except PoseDataError as e:
                if not self.skip_bad:
                    raise
                log.warning("skipping an unreadable image: %s", e)
                self.skipped.append(str(path))
                continue
            yield Frame(i, name, image, None)
        if self.paths and len(self.skipped) == len(self.paths):
            where = Path(self.paths[0]).parent if self.kind == "folder" else self.name
            raise PoseDataError(where, f"none of the {len(self.paths)} images could be read (see the warnings)")


class ArraySource(Source):
    """Images given as numpy arrays (H, W, 3) uint8 BGR."""

    def __init__(self, images: Sequence[np.ndarray], name: str = "array") -> None:
        self.images = list(images)
        for i, im in enumerate(self.images):
            if not isinstance(im, np.ndarray) or im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                shape = getattr(im, "shape", None)
                raise PoseDataError(None, f"expected (H, W, 3) uint8 BGR arrays, got {shape}", record=f"array {i}")
        self.kind = "arrays"
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[Frame]:
        for i, im in enumerate(self.images):
            yield Frame(i, f"{self.name}_{i:06d}", im, None)


class VideoSource(Source):
    """A video file, a stream URL or a webcam, read with ``cv2.VideoCapture``. The first frame is read when the
    source is opened, so an unreadable or empty video fails at once."""

    def __init__(self, target: str | int, kind: str) -> None:
        self.kind = kind
        self.is_video = True
        self.target = target
        if kind == "webcam":
            self.name, where = f"webcam{target}", f"webcam {target}"
        elif kind == "stream":
            self.name, where = "stream", str(target)
        else:
            self.name, where = Path(str(target)).stem, str(target)
        self.where = where
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            self.cap.release()
            what = "cannot open the camera" if kind == "webcam" else "OpenCV cannot open this video (unknown codec?)"
            raise PoseDataError(where, what)
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if fps > 0 and math.isfinite(fps) else None
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._count = max(count, 0) if kind == "video" else 0
        ok, first = self.cap.read()
        if not ok or first is None:
            self.cap.release()
            raise PoseDataError(where, "the video has no readable frame (0 frames)")
        self._first: np.ndarray | None = first

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self.cap.release()

    def _timestamp(self, frame_id: int, t0: float) -> float:
        if self.kind == "video" and self.fps:
            return frame_id / self.fps
        return time.monotonic() - t0

    def __iter__(self) -> Iterator[Frame]:
        if self._first is None:
            raise RuntimeError(f"{self.where}: a video source can be iterated only once")
        t0 = time.monotonic()
        frame, self._first = self._first, None
        i = 0
        try:
            while frame is not None:
                yield Frame(i, f"{self.name}_{i:06d}", _to_bgr(frame), self._timestamp(i, t0))
                i += 1
                ok, frame = self.cap.read()
                if not ok:
                    break
        finally:
            self.cap.release()


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def _has_glob_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def open_source(source: str | Path | int | np.ndarray | Sequence[np.ndarray], fps: float | None = None) -> Source:
    """Open what ``posedistill infer SOURCE`` accepts (see the module docstring). ``fps`` sets the frame rate of
    an image sequence (used for smoothing), and overrides a video's when its container has none."""
    if isinstance(source, np.ndarray):
        return ArraySource([source])
    if isinstance(source, list | tuple) and all(isinstance(s, np.ndarray) for s in source):
        return ArraySource(source)
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit() and not Path(source).exists()):
        src: Source = VideoSource(int(source), "webcam")
        src.fps = src.fps or fps
        return src
    s = os.fspath(source)  # type: ignore[arg-type]
    if s.startswith(STREAM_PREFIXES):
        src = VideoSource(s, "stream")
        src.fps = src.fps or fps
        return src
    path = Path(s)
    if path.is_dir():
        paths = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=_natural_key)
        if not paths:
            exts = ", ".join(sorted(IMAGE_EXTS))
            raise PoseDataError(path, f"the folder contains no images (looked for {exts})")
        return ImageSource(paths, "folder", path.name or "images", fps)
    if path.is_file():
        ext = path.suffix.lower()
        if ext in VIDEO_EXTS:
            src = VideoSource(str(path), "video")
            src.fps = src.fps or fps
            return src
        if ext in IMAGE_EXTS:
            return ImageSource([path], "image", path.stem, fps)
        raise PoseDataError(
            path,
            f"unknown file type {ext or '(no extension)'!r}: expected an image ({', '.join(sorted(IMAGE_EXTS))}) or a "
            f"video ({', '.join(sorted(VIDEO_EXTS))})",
        )
    if _has_glob_magic(s):
        matches = [Path(p) for p in globlib.glob(s, recursive=True)]
        paths = sorted((p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=_natural_key)
        if not paths:
            found = f" ({len(matches)} non-image matches)" if matches else ""
            raise PoseDataError(s, f"the glob pattern matches no image files{found}")
        return ImageSource(paths, "glob", Path(s).parent.name or "glob", fps)
    raise PoseDataError(path, "no such file or folder")
