"""Black-box pseudo-label teachers: an image and person boxes in, COCO-WholeBody-133 keypoints out.

Every teacher has ``name`` (for the log and the output's ``info``) and is called as
``teacher(image_bgr, boxes_xyxy) -> TeacherOutput`` with keypoints (N, 133, 2) in 0-based image pixels, scores
(N, 133) in [0, 1] and labelled (N, 133) bool, one row per box in the order given. Points a teacher does not
give are unlabelled (``labelled`` False, keypoint (0, 0), score 0), and so are points outside the image.

- :class:`PoseModelTeacher`: a posedistill checkpoint folder / mmpose ``.pth`` (needs torch) or an ONNX pose model
  in the rtmlib contract, run top-down on each box by :class:`posedistill.infer.PoseEstimator`; its layout is
  mapped onto COCO-WholeBody (a body-only layout fills the 17 body points, or those it has).
- :class:`MediaPipeTeacher`: MediaPipe Holistic on a crop around each box (the ``mediapipe`` extra, in its own
  environment: see ``docs/label.md``).

:func:`load_teacher` picks one from the ``--teacher`` argument. Torch-free unless the teacher is a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from posedistill.label.mediapipe_map import NUM_WHOLEBODY, holistic_to_wholebody
from posedistill.layouts import get_layout, get_mapping

WHOLEBODY = "coco_wholebody"
# Padding of the MediaPipe crop around a person box: the top-down models' (mmpose's) 1.25.
CROP_PADDING = 1.25
MEDIAPIPE_INSTALL_HELP = (
    "MediaPipe is not installed in this environment. It needs numpy<2, so give it an environment of its own: "
    "python3 -m venv /work/mpenv && /work/mpenv/bin/pip install -e '.[mediapipe]' (from the posedistill "
    "checkout; or pip install 'posedistill[mediapipe]'), then run /work/mpenv/bin/posedistill label ... "
    "(see docs/label.md)"
)
TEACHER_HELP = (
    "'mediapipe' (MediaPipe Holistic, the mediapipe extra), a posedistill checkpoint folder (with meta.json) or an "
    "mmpose .pth file (needs torch), or an ONNX pose model (.onnx file or URL) in the rtmlib contract"
)


@dataclass
class TeacherOutput:
    """Pseudo labels for the N boxes of one image.

    keypoints: (N, 133, 2) float32, 0-based image pixels, (0, 0) where unlabelled
    scores:    (N, 133) float32 in [0, 1], the teacher's confidence, 0 where unlabelled
    labelled:  (N, 133) bool
    """

    keypoints: np.ndarray
    scores: np.ndarray
    labelled: np.ndarray

    @classmethod
    def empty(cls, n: int = 0) -> TeacherOutput:
        return cls(
            np.zeros((n, NUM_WHOLEBODY, 2), np.float32),
            np.zeros((n, NUM_WHOLEBODY), np.float32),
            np.zeros((n, NUM_WHOLEBODY), bool),
        )


class Teacher(Protocol):
    name: str

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> TeacherOutput: ...


def inside_image(keypoints: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(..., 2) 0-based pixel coordinates -> (...) bool: within the image's pixels, [-0.5, W - 0.5) x
    [-0.5, H - 0.5), and finite."""
    w, h = image_size
    x, y = keypoints[..., 0], keypoints[..., 1]
    return np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)


def to_wholebody(keypoints: np.ndarray, scores: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, K, 2), (N, K) of ``layout`` -> (N, 133, 2), (N, 133) and the defined mask (133,) bool.

    Layouts with a mapping onto COCO-WholeBody (itself, Halpe-136, MediaPipe pose) use it; the others go through
    COCO-17 (COCO, OCHuman, CrowdPose, MPII, LSP, ...: the body points they share), leaving feet, face and hands
    undefined. Raises ValueError naming the layouts that work when there is no way."""
    try:
        return get_mapping(layout, WHOLEBODY).apply(keypoints, scores)
    except KeyError:
        pass
    try:
        body_kp, body_sc, body_def = get_mapping(layout, "coco").apply(keypoints, scores)
    except KeyError:
        raise ValueError(
            f"the teacher's keypoint layout {layout!r} maps neither onto COCO-WholeBody nor onto COCO-17 "
            "(posedistill.layouts.MAPPINGS); use a teacher with one of those layouts"
        ) from None
    n = keypoints.shape[0]
    kp = np.zeros((n, NUM_WHOLEBODY, 2), keypoints.dtype)
    sc = np.zeros((n, NUM_WHOLEBODY), scores.dtype)
    defined = np.zeros(NUM_WHOLEBODY, bool)
    kp[:, :17], sc[:, :17], defined[:17] = body_kp, body_sc, body_def
    return kp, sc, defined


class PoseModelTeacher:
    """A posedistill / mmpose checkpoint or an ONNX pose model, top-down on the given boxes.

    Args:
        model: checkpoint folder, ``.pth`` file, ``.onnx`` file or URL (see :func:`posedistill.infer.load_pose_model`).
        threads: onnxruntime intra-op threads (1 by default: labelling is a background job).
        flip_test: average each crop with its mirror image.
        layout: the model's layout when the file does not say.

    Scores are the model's keypoint scores (SimCC maxima / heatmap peaks), clipped to [0, 1].
    """

    def __init__(
        self, model: str | Path, threads: int | None = 1, flip_test: bool = False, layout: str | None = None
    ) -> None:
        from posedistill.infer.estimator import PoseEstimator

        self.estimator = PoseEstimator(model, layout=layout, flip_test=flip_test, threads=threads, progress=False)
        self.layout = self.estimator.layout
        # fail now, not after the first image, when the layout cannot be expressed in COCO-WholeBody
        k = get_layout(self.layout).num_keypoints
        _, _, self.defined = to_wholebody(np.zeros((1, k, 2), np.float32), np.zeros((1, k), np.float32), self.layout)
        self.name = f"{Path(str(model)).name} ({self.layout}, {int(self.defined.sum())} of 133 points)"

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> TeacherOutput:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return TeacherOutput.empty()
        kp, sc = self.estimator.predict(image, boxes)
        kp, sc, defined = to_wholebody(kp, sc, self.layout)
        h, w = image.shape[:2]
        labelled = defined[None, :] & inside_image(kp, (w, h))
        return TeacherOutput(
            keypoints=np.where(labelled[..., None], kp, 0.0).astype(np.float32),
            scores=np.where(labelled, np.clip(sc, 0.0, 1.0), 0.0).astype(np.float32),
            labelled=labelled,
        )


def import_mediapipe() -> Any:
    """``import mediapipe``, or an ImportError that says how to install it in its own environment."""
    try:
        import mediapipe
    except ImportError:
        raise ImportError(MEDIAPIPE_INSTALL_HELP) from None
    return mediapipe


def crop_box(box_xyxy: np.ndarray, image_size: tuple[int, int], padding: float = CROP_PADDING) -> tuple[int, ...]:
    """The integer crop (x1, y1, x2, y2), x2 / y2 excluded, around ``box_xyxy`` grown by ``padding`` about its
    centre (width and height each; the aspect ratio is kept) and clipped to the image. Empty boxes give an empty
    crop (x2 <= x1 or y2 <= y1)."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw, hh = (x2 - x1) * padding / 2, (y2 - y1) * padding / 2
    w, h = image_size
    left, top = max(0, int(np.floor(cx - hw))), max(0, int(np.floor(cy - hh)))
    right, bottom = min(w, int(np.ceil(cx + hw))), min(h, int(np.ceil(cy + hh)))
    return left, top, right, bottom


class MediaPipeTeacher:
    """MediaPipe Holistic (``model_complexity=1``, ``static_image_mode=True``), once per person box.

    Holistic finds one person per call, so each box is labelled on its own crop: the box grown by
    :data:`CROP_PADDING` (as top-down models crop), clipped to the image, given at its own resolution (MediaPipe
    resizes internally). ``whole image`` is the box (0, 0, W, H). The conversion to COCO-WholeBody is
    :func:`posedistill.label.mediapipe_map.holistic_to_wholebody`.

    Args:
        padding: crop padding around each box.
        holistic: a ready ``Holistic``-like object with ``process(rgb) -> result`` (tests); made here when None.
    """

    name = "mediapipe-holistic (model_complexity=1)"

    def __init__(self, padding: float = CROP_PADDING, holistic: Any = None) -> None:
        self.padding = float(padding)
        if holistic is None:
            mp = import_mediapipe()
            holistic = mp.solutions.holistic.Holistic(
                static_image_mode=True, model_complexity=1, refine_face_landmarks=False
            )
            self.name = f"mediapipe-holistic {getattr(mp, '__version__', '?')} (model_complexity=1)"
        self.holistic = holistic

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> TeacherOutput:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        h, w = image.shape[:2]
        out = TeacherOutput.empty(len(boxes))
        for i, box in enumerate(boxes):
            left, top, right, bottom = crop_box(box, (w, h), self.padding)
            if right - left < 2 or bottom - top < 2:
                continue
            rgb = np.ascontiguousarray(image[top:bottom, left:right, ::-1])
            result = self.holistic.process(rgb)
            kp, sc, lab = holistic_to_wholebody(result, (left, top, right - left, bottom - top), (w, h))
            out.keypoints[i], out.scores[i], out.labelled[i] = kp, sc, lab
        return out

    def close(self) -> None:
        close = getattr(self.holistic, "close", None)
        if close is not None:
            close()


def load_teacher(spec: str, threads: int | None = 1, flip_test: bool = False, layout: str | None = None) -> Teacher:
    """The teacher named by ``spec``: ``mediapipe``, a checkpoint (folder with meta.json or ``.pth`` / ``.pt`` /
    ``.safetensors`` file), or an ONNX model (``.onnx`` file, ``.zip`` mmdeploy SDK or URL). Raises ValueError
    naming what is expected for anything else, ImportError when mediapipe (or torch, for a checkpoint) is
    missing."""
    from posedistill.infer.estimator import is_checkpoint

    if spec.lower() in ("mediapipe", "mediapipe-holistic", "holistic"):
        return MediaPipeTeacher()
    path = Path(spec)
    is_url = "://" in spec
    if is_url or is_checkpoint(path) or (path.is_file() and path.suffix.lower() in (".onnx", ".zip")):
        return PoseModelTeacher(spec, threads=threads, flip_test=flip_test, layout=layout)
    if path.exists():
        what = "a folder without meta.json" if path.is_dir() else f"a {path.suffix or 'suffix-less'} file"
        raise ValueError(f"--teacher {spec}: {what} is not a teacher; expected {TEACHER_HELP}")
    raise ValueError(f"--teacher {spec}: no such file or folder, and not a teacher name; expected {TEACHER_HELP}")
