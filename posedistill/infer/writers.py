"""Writers for inference outputs that never leave a truncated file.

- :class:`JsonResultWriter`: one JSON file for a whole image set or video, in ``coco`` (a list of COCO keypoint
  results) or ``mmpose`` (``{"meta_info", "instance_info": [per-frame entries]}``) format. Each frame is serialised
  once, when it is added, and kept in memory as text; the file is re-assembled and replaced **atomically** (temp
  file + rename) every ``flush_every`` frames and/or ``flush_interval`` seconds, and on ``close()``. So at any moment
  the file on disk is valid JSON holding the frames done up to the last flush: an interrupted run (Ctrl-C, SIGTERM
  turned into an exception by the caller, a crash, or even SIGKILL) leaves a parseable file. To bound the cost of
  the rewrites on long videos, the next time-based flush waits at least 20x as long as the last rewrite took.
- :class:`OpenPoseWriter`: one OpenPose JSON per frame in a folder, named ``<frame name>_keypoints.json`` as
  OpenPose names them, each written atomically.
- :class:`VideoWriter`: annotated video through ``cv2.VideoWriter`` (``mp4v``) into a hidden temp file next to the
  target, renamed to the target on ``close()``; nothing named like the target exists before that.
- :func:`write_image`: an annotated image, atomically (``cv2.imwrite`` into a temp file, then rename).

All writers are context managers; leaving the ``with`` block by an exception still closes them, so the frames done
so far are kept. Torch-free.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import cv2
import numpy as np

from posedistill.fileio import atomic_open, atomic_write_json, atomic_write_with, file_mode
from posedistill.infer.results import PoseResult
from posedistill.layouts import get_layout

JsonFormat = Literal["coco", "mmpose"]
_SLOW_WRITE_FACTOR = 20.0  # wait >= this many times the last rewrite's duration before a time-based flush
_W = TypeVar("_W", bound="_Closing")


class _Closing:
    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def image_id_for(name: str, frame_id: int) -> int:
    """COCO ``image_id`` of a frame: the number in a numeric file stem (``000000000139`` -> 139, as COCO names its
    images), else the frame index."""
    return int(name) if name.isdigit() else int(frame_id)


class JsonResultWriter(_Closing):
    """Per-frame results into one JSON file, valid on disk at every moment (see the module docstring).

    Args:
        path: the JSON file.
        fmt: ``"mmpose"`` or ``"coco"``.
        layout: layout name for ``meta_info`` (mmpose); default: the first result's.
        flush_every: rewrite the file after this many new frames (None: only by time).
        flush_interval: rewrite the file when this many seconds have passed since the last rewrite.
        indent: JSON indentation of each record (None: compact).
    """

    def __init__(
        self,
        path: str | Path,
        fmt: JsonFormat = "mmpose",
        layout: str | None = None,
        flush_every: int | None = None,
        flush_interval: float = 2.0,
        indent: int | None = None,
    ) -> None:
        if fmt not in ("mmpose", "coco"):
            raise ValueError(f"unknown JSON format {fmt!r}; expected 'mmpose' or 'coco' (openpose: OpenPoseWriter)")
        self.path = Path(path)
        self.fmt = fmt
        self.layout = layout
        self.flush_every = flush_every
        self.flush_interval = float(flush_interval)
        self.indent = indent
        self._chunks: list[str] = []  # serialised frames (mmpose) or runs of records (coco)
        self.n_frames = 0
        self._pending = 0
        self._next_flush = time.monotonic() + self.flush_interval
        self._closed = False

    def add(self, result: PoseResult, name: str | None = None, image_id: int | str | None = None) -> None:
        """Add one frame. ``name`` is the frame / image name (mmpose: stored as ``name``; coco: its numeric stem
        gives the ``image_id`` unless ``image_id`` is set)."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        if self.layout is None:
            self.layout = result.layout
        frame_id = self.n_frames if result.frame_id is None else int(result.frame_id)
        if self.fmt == "mmpose":
            self._chunks.append(json.dumps(result.to_json(name=name), indent=self.indent))
        else:
            iid = image_id if image_id is not None else image_id_for(name or "", frame_id)
            records = result.to_coco(iid)
            if records:
                self._chunks.append(",\n".join(json.dumps(r, indent=self.indent) for r in records))
        self.n_frames += 1
        self._pending += 1
        now = time.monotonic()
        if (self.flush_every is not None and self._pending >= self.flush_every) or now >= self._next_flush:
            self.flush()

    def _text(self) -> str:
        body = ",\n".join(self._chunks)
        if self.fmt == "coco":
            return f"[\n{body}\n]\n" if body else "[]\n"
        meta = get_layout(self.layout).metainfo() if self.layout is not None else {}
        return f'{{"meta_info": {json.dumps(meta)},\n"instance_info": [\n{body}\n]}}\n'

    def flush(self) -> None:
        """Atomically replace the file with all frames added so far."""
        start = time.monotonic()
        with atomic_open(self.path, "w", encoding="utf-8") as f:
            f.write(self._text())
        took = time.monotonic() - start
        self._pending = 0
        self._next_flush = time.monotonic() + max(self.flush_interval, _SLOW_WRITE_FACTOR * took)

    def close(self) -> None:
        """Write the final file (also with zero frames). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.flush()

    def discard(self) -> None:
        """Close without writing anything more (a run that failed before its first frame: no file at all)."""
        self._closed = True


class OpenPoseWriter(_Closing):
    """One OpenPose JSON per frame: ``<folder>/<name>_keypoints.json``, each written atomically.

    ``include_face`` / ``include_hands`` / ``face_70`` / ``kpt_thr`` are passed to :meth:`PoseResult.to_openpose`.
    """

    def __init__(
        self,
        folder: str | Path,
        include_face: bool = True,
        include_hands: bool = True,
        face_70: bool = False,
        kpt_thr: float | None = None,
    ) -> None:
        self.folder = Path(folder)  # created with the first frame: a run that fails before leaves nothing
        self.options: dict[str, Any] = dict(
            include_face=include_face, include_hands=include_hands, face_70=face_70, kpt_thr=kpt_thr
        )
        self.n_frames = 0

    def add(self, result: PoseResult, name: str) -> Path:
        path = self.folder / f"{name}_keypoints.json"
        atomic_write_json(path, result.to_openpose(**self.options))
        self.n_frames += 1
        return path

    def close(self) -> None:
        pass


class VideoWriter(_Closing):
    """Annotated frames into a video file (``cv2.VideoWriter``, fourcc ``mp4v`` by default).

    Frames go to a hidden temp file in the target's folder; ``close()`` releases the encoder and renames it to
    ``path``, so the target appears only complete. The encoder is opened with the first frame's size; later
    frames of another size are resized to it.
    """

    def __init__(self, path: str | Path, fps: float = 30.0, fourcc: str = "mp4v") -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.fourcc = fourcc
        self._writer: cv2.VideoWriter | None = None
        self._tmp: Path | None = None
        self._size: tuple[int, int] | None = None
        self.n_frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            h, w = frame.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".partial{self.path.suffix}",
                                       dir=self.path.parent)  # fmt: skip
            os.close(fd)
            self._tmp = Path(tmp)
            self._writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                self._tmp.unlink(missing_ok=True)
                raise RuntimeError(f"{self.path}: OpenCV cannot open a {self.fourcc!r} video writer for {w}x{h}")
            self._size = (w, h)
        assert self._size is not None
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.n_frames += 1

    def close(self) -> None:
        """Finish the file and move it into place (nothing is written when no frame was given)."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.release()
        assert self._tmp is not None
        try:
            os.chmod(self._tmp, file_mode())  # mkstemp made it 0o600; a video is an ordinary file
            os.replace(self._tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an image atomically; the format follows the extension of ``path``."""

    def _write(tmp: str) -> None:
        if not cv2.imwrite(tmp, image):
            raise OSError(f"{path}: OpenCV could not encode the image")

    atomic_write_with(path, _write)
