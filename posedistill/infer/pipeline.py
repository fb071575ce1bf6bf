"""The frame loop: detector -> pose estimator -> tracker -> smoother -> writers.

:class:`PosePipeline` processes one frame at a time and keeps the state a video needs (tracks, filters, the
previous frame's people). The pose estimator and the detector are plain objects with these call signatures, so any
implementation (``posedistill.infer.estimator.PoseEstimator``, ``posedistill.infer.detector.PersonDetector``, a
test double) fits:

- ``estimator(image_bgr, boxes=None | (N, 4) xyxy float32) -> PoseResult``; ``boxes=None`` means "find the people
  yourself" (the estimator's own detector, or the whole image as one person when it has none). An optional
  ``estimator.layout`` (name) lets the pipeline return empty results without calling the model when there is
  nobody. An optional ``estimator.reset()`` is called at the start of every video: this is
  the extension point for temporal models (DKD runs in its temporal mode and keeps per-clip state there); one with
  ``estimator.temporal = True`` is called on frames without people too, so that its tracks age.
- ``detector(image_bgr) -> (boxes (N, 4) xyxy, scores (N,))``.

With ``det_every = n > 1`` the detector runs on every n-th frame only (and whenever nobody is being followed); on
the frames between, each person's box comes from their keypoints in the previous frame (the extent of the points
scoring >= ``kpt_thr``, grown by ``box_expand``), as rtmlib's and MMDeploy's pose trackers do.

:func:`run` drives a pipeline over a :class:`~posedistill.infer.sources.Source` with a progress bar and writes the
annotated images / video and the JSON outputs; every writer is closed on the way out, also on Ctrl-C or SIGTERM
(see :func:`sigterm_as_keyboard_interrupt`), so the outputs hold the frames done. Torch-free.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from posedistill.infer.results import PoseResult
from posedistill.infer.smoothing import PoseSmoother
from posedistill.infer.sources import Frame, Source
from posedistill.infer.tracking import PoseTracker
from posedistill.infer.writers import JsonResultWriter, OpenPoseWriter, VideoWriter, write_image


def _layout_name(estimator: Any) -> str | None:
    layout = getattr(estimator, "layout", None)
    if layout is None:
        return None
    return layout if isinstance(layout, str) else getattr(layout, "name", None)


def boxes_from_keypoints(
    result: PoseResult, kpt_thr: float = 0.3, expand: float = 1.25, min_points: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Person boxes from keypoints: the extent of each person's points scoring >= ``kpt_thr``, grown ``expand``
    times about its centre and clipped to the image. People with fewer than ``min_points`` such points, or whose
    box is degenerate, are left out.

    Returns boxes (M, 4) xyxy float32, their box scores (M,) and the rows (M,) of ``result`` they come from."""
    h, w = result.image_shape
    boxes, rows = [], []
    for i in range(len(result)):
        valid = result.scores[i] >= kpt_thr
        if valid.sum() < min_points:
            continue
        pts = result.keypoints[i, valid]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        center, half = (lo + hi) / 2, (hi - lo) / 2 * expand
        x1, y1 = np.maximum(center - half, 0)
        x2, y2 = np.minimum(center + half, [w - 1, h - 1])
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        boxes.append([x1, y1, x2, y2])
        rows.append(i)
    rows_a = np.asarray(rows, dtype=np.int64)
    return np.asarray(boxes, np.float32).reshape(-1, 4), result.box_scores[rows_a], rows_a


class PosePipeline:
    """Detector + pose estimator + tracker + smoother, one frame per call.

    Args:
        estimator: ``estimator(image_bgr, boxes) -> PoseResult`` (see the module docstring).
        detector: ``detector(image_bgr) -> (boxes, scores)``; None: the estimator is called with ``boxes=None``
            and decides (its own detector, or the whole image as one person).
        det_every: run the detector every n-th frame; boxes follow the keypoints in between.
        tracker: gives stable ids (None: ids stay -1).
        smoother: One-Euro smoothing per track id (needs a tracker).
        kpt_thr: score threshold for boxes from keypoints.
        box_expand: growth of the keypoint extent into a box.
        min_box_score: detections scoring below this are dropped.
    """

    def __init__(
        self,
        estimator: Any,
        detector: Any | None = None,
        det_every: int = 1,
        tracker: PoseTracker | None = None,
        smoother: PoseSmoother | None = None,
        kpt_thr: float = 0.3,
        box_expand: float = 1.25,
        min_box_score: float = 0.0,
    ) -> None:
        if det_every < 1:
            raise ValueError(f"det_every must be >= 1, got {det_every}")
        if smoother is not None and tracker is None:
            raise ValueError("smoothing keeps one filter per track id: give a tracker too")
        self.estimator = estimator
        self.detector = detector
        self.det_every = int(det_every)
        self.tracker = tracker
        self.smoother = smoother
        self.kpt_thr = float(kpt_thr)
        self.box_expand = float(box_expand)
        self.min_box_score = float(min_box_score)
        self.layout = _layout_name(estimator)
        self.reset()

    def reset(self) -> None:
        """Start a new video: forget tracks, filter states, the previous frame and the estimator's temporal state."""
        self._frame = 0
        self._since_detection = 0
        self._previous: PoseResult | None = None
        if self.tracker is not None:
            self.tracker.reset()
        if self.smoother is not None:
            self.smoother.reset()
        reset = getattr(self.estimator, "reset", None)
        if callable(reset):
            reset()

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Boxes and scores for this frame (None, None when there is no detector)."""
        if self.detector is None:
            return None, None
        reuse = self._previous is not None and len(self._previous) > 0 and self._since_detection < self.det_every
        if reuse:
            assert self._previous is not None
            boxes, scores, _ = boxes_from_keypoints(self._previous, self.kpt_thr, self.box_expand)
            if len(boxes):
                self._since_detection += 1
                return boxes, scores
        boxes, scores = self.detector(image)
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        keep = scores >= self.min_box_score
        self._since_detection = 1
        return boxes[keep], scores[keep]

    def __call__(self, image: np.ndarray, frame_id: int | None = None, timestamp: float | None = None) -> PoseResult:
        """Poses of one frame: image (H, W, 3) uint8 BGR; ``timestamp`` in seconds (for smoothing)."""
        boxes, box_scores = self._detect(image)
        # nobody: skip the model, unless it is temporal (DKD), whose per-track state must see the empty frame
        if (
            boxes is not None
            and len(boxes) == 0
            and self.layout is not None
            and not getattr(self.estimator, "temporal", False)
        ):
            result = PoseResult.empty(self.layout, image.shape[:2])
        else:
            result = self.estimator(image, boxes)
            if not isinstance(result, PoseResult):
                raise TypeError(f"the estimator must return a PoseResult, got {type(result).__name__}")
            if box_scores is not None and len(box_scores) == len(result):
                result.box_scores = box_scores.astype(np.float32)
        result.frame_id = self._frame if frame_id is None else int(frame_id)
        self._frame += 1
        if self.tracker is not None:
            self.tracker(result)
        if self.smoother is not None:
            result = self.smoother(result, timestamp)
        self._previous = result
        return result

    def stream(self, source: Source, max_frames: int | None = None) -> Iterator[tuple[Frame, PoseResult]]:
        """(frame, result) for each frame of ``source``, after a :meth:`reset` (each source is a new video)."""
        self.reset()
        for frame in source:
            if max_frames is not None and frame.frame_id >= max_frames:
                break
            yield frame, self(frame.image, frame_id=frame.frame_id, timestamp=frame.timestamp)


# ------------------------------------------------------------------------------------------ outputs and runs


@dataclass
class OutputOptions:
    """What :func:`run` writes.

    out_dir: annotated images (``<name>.jpg``) and videos (``<source name>.mp4``) go here (None: none are drawn).
    json_path: the JSON file (coco / mmpose) or folder (openpose); None: no JSON.
    json_format: ``"mmpose"``, ``"coco"`` or ``"openpose"``.
    image_ids: COCO ``image_id`` per image file name (``139.jpg``), e.g. from a ground-truth file's ``images``
        (:func:`image_ids_from_coco`); a frame whose file is not in it is an error (an id guessed from its name
        could belong to another image). Without it, ids come from numeric file stems, else the frame index.
    The drawing options are those of :meth:`PoseResult.plot`; ``include_face`` / ``include_hands`` / ``face_70``
    also apply to the OpenPose JSON data.
    """

    out_dir: Path | None = None
    json_path: Path | None = None
    json_format: Literal["mmpose", "coco", "openpose"] = "mmpose"
    kpt_thr: float = 0.3
    skeleton: Literal["mmpose", "openpose"] = "mmpose"
    black_background: bool = False
    include_face: bool = True
    include_hands: bool = True
    face_70: bool = False
    flush_every: int | None = None
    flush_interval: float = 2.0
    image_ids: dict[str, int] | None = None


def image_ids_from_coco(path: str | Path) -> dict[str, int]:
    """{file name: image id} from the ``images`` of a COCO annotation file (``file_name`` without its folders,
    extension kept: ``x.jpg`` and ``x.png`` are different images), so that COCO results written for its images
    carry the right ``image_id``."""
    import json

    from posedistill.errors import PoseDataError

    try:
        with open(path, encoding="utf-8") as f:
            images = json.load(f)["images"]
        return {Path(im["file_name"]).name: im["id"] for im in images}
    except (OSError, ValueError) as e:
        raise PoseDataError(path, f"cannot read a COCO annotation file: {e}") from None
    except (KeyError, TypeError) as e:
        raise PoseDataError(path, "expected a COCO file with images [{file_name, id}, ...]", field=str(e)) from None


@dataclass
class RunSummary:
    frames: int = 0
    people: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    outputs: dict[str, Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # unreadable images of a folder / glob, left out


def run(
    pipeline: PosePipeline,
    source: Source,
    options: OutputOptions,
    max_frames: int | None = None,
    progress: bool = True,
    on_frame: Any | None = None,
) -> RunSummary:
    """Run ``pipeline`` over ``source`` and write what ``options`` asks for; returns a :class:`RunSummary`.

    ``on_frame(frame, result)`` is called after each frame. KeyboardInterrupt (Ctrl-C, or SIGTERM under
    :func:`sigterm_as_keyboard_interrupt`) stops the run: the outputs are closed with the frames done and the
    summary says ``interrupted``; other exceptions close the outputs the same way and propagate, except that an
    error before the first frame writes no JSON at all (an empty file would pass for a result).
    """
    from tqdm import tqdm

    summary = RunSummary()
    writers: list[Any] = []
    json_writer: JsonResultWriter | OpenPoseWriter | None = None
    if options.json_path is not None:
        if options.json_format == "openpose":
            json_writer = OpenPoseWriter(
                options.json_path, options.include_face, options.include_hands, options.face_70, kpt_thr=None
            )
        else:
            json_writer = JsonResultWriter(
                options.json_path, options.json_format, pipeline.layout, options.flush_every, options.flush_interval
            )
        writers.append(json_writer)
        summary.outputs["json"] = Path(options.json_path)
    video: VideoWriter | None = None
    if options.out_dir is not None and source.is_video:
        video = VideoWriter(Path(options.out_dir) / f"{source.name}.mp4", fps=source.fps or 30.0)
        writers.append(video)
        summary.outputs["video"] = video.path
    elif options.out_dir is not None:
        summary.outputs["images"] = Path(options.out_dir)

    total = len(source) or None
    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    bar = tqdm(total=total, unit="frame", desc=source.name, disable=not progress, dynamic_ncols=True)
    paths = getattr(source, "paths", None)
    start = time.perf_counter()
    failed = False
    try:
        for frame, result in pipeline.stream(source, max_frames):
            image_id = None
            if options.image_ids is not None and json_writer is not None:
                image_id = _given_image_id(options.image_ids, frame, paths)
            # the picture first, then the JSON: a frame whose drawing or writing fails is in neither output
            if options.out_dir is not None:
                drawn = result.plot(
                    frame.image,
                    kpt_thr=options.kpt_thr,
                    skeleton=options.skeleton,
                    black_background=options.black_background,
                    include_face=options.include_face,
                    include_hands=options.include_hands,
                )
                if video is not None:
                    video.write(drawn)
                else:
                    write_image(Path(options.out_dir) / f"{frame.name}.jpg", drawn)
            if isinstance(json_writer, OpenPoseWriter):
                json_writer.add(result, frame.name)
            elif json_writer is not None:
                json_writer.add(result, name=frame.name, image_id=image_id)
            summary.frames += 1
            summary.people += len(result)
            if on_frame is not None:
                on_frame(frame, result)
            bar.update(1)
        # a video's frame count is the container's estimate: the bar ends at the frames there were
        if not bar.disable and bar.total is not None and bar.n != bar.total:
            bar.total = bar.n
            bar.refresh()
    except KeyboardInterrupt:
        summary.interrupted = True
    except BaseException:
        failed = True
        raise
    finally:
        summary.seconds = time.perf_counter() - start
        summary.skipped = list(getattr(source, "skipped", []))
        bar.close()
        source.close()
        errors = []
        for w in writers:
            try:
                if failed and summary.frames == 0 and hasattr(w, "discard"):
                    w.discard()
                else:
                    w.close()
            except Exception as e:  # close every writer even if one fails
                errors.append(e)
        if errors and not failed:
            raise errors[0]
    return summary


def _given_image_id(image_ids: dict[str, Any], frame: Frame, paths: list | None) -> Any:
    """The ``image_id`` of ``frame`` in ``image_ids`` (by its file name); never guessed from the name."""
    from posedistill.errors import PoseDataError

    name = Path(paths[frame.frame_id]).name if paths is not None else frame.name
    if name not in image_ids:
        raise PoseDataError(name, "not among the images of the --image-ids file; its results would get another "
                            "image's id")  # fmt: skip
    return image_ids[name]


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread, so ``finally`` blocks run and the
    writers finish their files (the default SIGTERM action kills the process on the spot). A no-op outside the main
    thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
