"""The models that ``PoseEstimator()`` and ``posedistill infer`` use when none is given, shipped in the
repository's ``models/`` folder so that both work offline out of the box:

- the pose model: the whole-body ``rtmpose-nano`` (RTMPose head on RTMDet-nano's backbone) that
  ``make default-model`` (``benchmarks/default_model.py``) distilled from PP-TinyPose and MediaPipe Holistic on real
  photos (model card: ``models/rtmpose-nano_wholebody/README.md``). The folder holds the ONNX file the torch-free
  runtime loads (float16 weights, float32 compute) and the same weights as a posedistill checkpoint
  (``weights.safetensors`` + ``meta.json``) for ``eval``, fine-tuning and re-export. ``$POSEDISTILL_DEFAULT_MODEL``
  points elsewhere (a file, URL or checkpoint).
- the person detector: RTMDet-nano (OpenMMLab, mmdeploy export; model card and measured numbers:
  ``models/rtmdet-nano_person/README.md``), run with mmpose's demo thresholds (score 0.3, NMS 0.3).
  ``$POSEDISTILL_DEFAULT_DETECTOR`` points elsewhere (an ONNX file, detector folder or URL).

:func:`load_detector` turns a ``--detector`` value (``default`` | ``none`` | a path) into a detector.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from posedistill.errors import PoseDataError
from posedistill.infer.named_models import NAMED_MODELS as NAMED_MODELS  # shipped models by name, re-exported
from posedistill.infer.named_models import named_model as named_model

if TYPE_CHECKING:
    from posedistill.infer.detector import PersonDetector

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL_NAME = "rtmpose-nano_wholebody"
DEFAULT_MODEL_DIR = MODELS_DIR / DEFAULT_MODEL_NAME
DEFAULT_ONNX = "model.onnx"
DEFAULT_DETECTOR_NAME = "rtmdet-nano_person"
DEFAULT_DETECTOR_DIR = MODELS_DIR / DEFAULT_DETECTOR_NAME
NO_DETECTOR = ("none", "whole-image")


def _shipped_file(env: str, path: Path, field: str, missing: str) -> str:
    """``$env`` when set, else ``path`` when it exists; a :class:`PoseDataError` naming the file otherwise."""
    override = os.environ.get(env)
    if override:
        return override
    if not path.is_file():
        raise PoseDataError(str(path), missing, field=field)
    return str(path)


def default_model() -> str:
    """Path (or URL) of the default pose model; raises :class:`PoseDataError` naming the file when it is missing."""
    return _shipped_file(
        "POSEDISTILL_DEFAULT_MODEL", DEFAULT_MODEL_DIR / DEFAULT_ONNX, "model",
        "the default model is missing (it ships with a source checkout of posedistill); pass a model explicitly (an "
        ".onnx file, URL or checkpoint) or set POSEDISTILL_DEFAULT_MODEL",
    )  # fmt: skip


def default_detector() -> str:
    """Path (or URL) of the default person detector's ONNX file; raises :class:`PoseDataError` naming the file when
    it is missing."""
    return _shipped_file(
        "POSEDISTILL_DEFAULT_DETECTOR", DEFAULT_DETECTOR_DIR / DEFAULT_ONNX, "detector",
        "the default person detector is missing (it ships with a source checkout of posedistill); pass a detector "
        "explicitly (an .onnx file or URL), give the person boxes, use no detector (--detector none: the whole image "
        "is one person) or set POSEDISTILL_DEFAULT_DETECTOR",
    )  # fmt: skip


def load_detector(
    spec: str | Path | None = "default",
    threads: int | None = None,
    providers: list[str] | None = None,
    progress: bool = True,
    score_thr: float | None = None,
    nms_thr: float | None = None,
) -> PersonDetector | None:
    """A ``--detector`` value → a :class:`~posedistill.infer.detector.PersonDetector`: ``default`` (the shipped
    one), an ONNX file / detector folder / URL / SDK zip; ``none`` (or None) → None, i.e. the whole image is one
    person. ``score_thr`` / ``nms_thr`` None keep the detector's defaults (0.3 / 0.3, mmpose's demo)."""
    if spec is None or str(spec).lower() in NO_DETECTOR:
        return None
    from posedistill.infer.detector import NMS_THR, SCORE_THR, PersonDetector

    path = default_detector() if str(spec).lower() == "default" else spec
    return PersonDetector(
        path, score_thr=SCORE_THR if score_thr is None else score_thr, nms_thr=NMS_THR if nms_thr is None else nms_thr,
        threads=threads, providers=providers, progress=progress,
    )  # fmt: skip
