"""Black-box pseudo-label teachers: an image and person boxes in, COCO-WholeBody-133 keypoints out.

Every teacher has ``name`` (for the log and the output's ``info``) and is called as
``teacher(image_bgr, boxes_xyxy) -> TeacherOutput`` with keypoints (N, 133, 2) in 0-based image pixels, scores
(N, 133) in [0, 1] and labelled (N, 133) bool, one row per box in the order given. Points a teacher does not
give are unlabelled (``labelled`` False, keypoint (0, 0), score 0), and so are points outside the image.

- :class:`PoseModelTeacher`: a posedistill checkpoint folder / mmpose ``.pth`` (needs torch), an ONNX pose model
  (rtmlib SimCC contract, or a heatmap model), an ncnn ``.param`` / ``.bin`` with its sidecar, or a shipped model
  by name (``pp-tinypose``), run top-down on each box by :class:`posedistill.infer.PoseEstimator`; its layout is
  mapped onto COCO-WholeBody (a body-only layout fills the 17 body points, or those it has).
- :class:`MediaPipeTeacher`: MediaPipe Holistic on a crop around each box (the ``mediapipe`` extra, in its own
  environment: see ``docs/label.md``).
- :class:`~posedistill.label.ensemble.EnsembleTeacher`: each body part from the teacher best at it, ground truth
  first where the dataset has it (``body=pp-tinypose:flip,feet+face+hands=mediapipe,gt``).

:func:`load_teacher` picks one from the ``--teacher`` argument: a name or path, optionally followed by ``:flip``
(that teacher's flip test), or an ensemble spec (a string with ``part=teacher`` entries, or a YAML / JSON file).
Torch-free unless the teacher is a checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posedistill.label.mediapipe_map import holistic_to_wholebody
from posedistill.label.teacher_output import WHOLEBODY, Teacher, TeacherOutput, inside_image, to_wholebody
from posedistill.layouts import get_layout

__all__ = [
    "WHOLEBODY",
    "MediaPipeTeacher",
    "PoseModelTeacher",
    "Teacher",
    "TeacherOutput",
    "inside_image",
    "load_single_teacher",
    "load_teacher",
    "split_options",
    "to_wholebody",
]
# Padding of the MediaPipe crop around a person box: the top-down models' (mmpose's) 1.25.
CROP_PADDING = 1.25
MEDIAPIPE_INSTALL_HELP = (
    "MediaPipe is not installed in this environment. It needs numpy<2, so it gets an environment of its own: "
    "run `make mediapipe-env` in the posedistill checkout (it creates .venv-mediapipe), then "
    ".venv-mediapipe/bin/posedistill label ... (outside a checkout: pip install 'posedistill[mediapipe]' in a "
    "separate virtual environment; see docs/label.md)"
)
TEACHER_HELP = (
    "'mediapipe' (MediaPipe Holistic, the mediapipe extra), a shipped model's name (pp-tinypose), a posedistill "
    "checkpoint folder (with meta.json) or an mmpose .pth file (needs torch), an ONNX pose model (.onnx file or URL, "
    "SimCC or heatmap), an ncnn .param / .bin with its sidecar, each optionally followed by ':flip'; or an ensemble "
    "'body=pp-tinypose:flip,feet+face+hands=mediapipe,gt' (or a .yaml / .json file with one; docs/label.md)"
)
MEDIAPIPE_NAMES = ("mediapipe", "mediapipe-holistic", "holistic")
# ``spec:option`` suffixes of a single teacher
OPTIONS = ("flip",)
MODEL_SUFFIXES = (".onnx", ".zip", ".param", ".bin")


class PoseModelTeacher:
    """A posedistill / mmpose checkpoint, an ONNX or ncnn pose model, top-down on the given boxes.

    Args:
        model: checkpoint folder, ``.pth`` file, ``.onnx`` file or URL, ncnn ``.param`` / ``.bin``, or a shipped
            model's name (see :func:`posedistill.infer.load_pose_model`).
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
        flip = ", flip test" if flip_test else ""
        self.name = f"{Path(str(model)).name} ({self.layout}, {int(self.defined.sum())} of 133 points{flip})"

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


def split_options(spec: str) -> tuple[str, dict[str, bool]]:
    """``"pp-tinypose:flip"`` → (``"pp-tinypose"``, ``{"flip": True}``): trailing ``:option`` suffixes among
    :data:`OPTIONS` are options, anything else is part of the name (URLs and paths keep their colons)."""
    options: dict[str, bool] = {}
    model = spec.strip()
    while ":" in model:
        head, tail = model.rsplit(":", 1)
        if tail.strip().lower() not in OPTIONS:
            break
        options[tail.strip().lower()] = True
        model = head.strip()
    return model, options


def is_model_spec(model: str) -> bool:
    """A model file, URL or shipped name that :class:`PoseModelTeacher` runs."""
    from posedistill.infer.estimator import is_checkpoint
    from posedistill.infer.named_models import NAMED_MODELS

    path = Path(model)
    if "://" in model or model.lower() in NAMED_MODELS:
        return True
    return is_checkpoint(path) or (path.is_file() and path.suffix.lower() in MODEL_SUFFIXES)


def load_single_teacher(
    spec: str, threads: int | None = 1, flip_test: bool = False, layout: str | None = None
) -> Teacher:
    """One teacher (no ensemble): ``mediapipe`` or a model (:func:`is_model_spec`), optionally ``:flip``."""
    model, options = split_options(spec)
    if model.lower() in MEDIAPIPE_NAMES:
        if options:
            raise ValueError(f"--teacher {spec}: MediaPipe takes no options (':flip' is for pose models)")
        return MediaPipeTeacher()
    if is_model_spec(model):
        return PoseModelTeacher(model, threads=threads, flip_test=flip_test or options.get("flip", False),
                                layout=layout)  # fmt: skip
    path = Path(model)
    if path.exists():
        what = "a folder without meta.json" if path.is_dir() else f"a {path.suffix or 'suffix-less'} file"
        raise ValueError(f"--teacher {spec}: {what} is not a teacher; expected {TEACHER_HELP}")
    raise ValueError(f"--teacher {spec}: no such file or folder, and not a teacher name; expected {TEACHER_HELP}")


def load_teacher(spec: str, threads: int | None = 1, flip_test: bool = False, layout: str | None = None) -> Teacher:
    """The teacher named by ``spec``: ``mediapipe``; a shipped model's name (``pp-tinypose``); a checkpoint
    (folder with meta.json or ``.pth`` / ``.pt`` / ``.safetensors`` file); an ONNX model (``.onnx`` file, ``.zip``
    mmdeploy SDK or URL); an ncnn ``.param`` / ``.bin``; each optionally followed by ``:flip``. Or an ensemble by
    part (:mod:`posedistill.label.ensemble`): a spec string with ``part=teacher`` entries, or a ``.yaml`` / ``.yml``
    / ``.json`` file holding one. ``flip_test`` and ``layout`` apply to every pose-model teacher. Raises ValueError
    naming what is expected for anything else, ImportError when mediapipe (or torch, for a checkpoint, or ncnn) is
    missing."""
    from posedistill.label.ensemble import is_ensemble_spec, load_ensemble

    if is_ensemble_spec(spec):
        return load_ensemble(spec, lambda s: load_single_teacher(s, threads, flip_test, layout))
    return load_single_teacher(spec, threads, flip_test, layout)
