"""posedistill.infer: the inference runtime (numpy + OpenCV + onnxruntime; torch only for checkpoints and export).

::

    from posedistill.infer import PoseEstimator, Wholebody
    est = PoseEstimator()                 # the shipped whole-body RTMPose-t + RTMDet-nano person detector (models/)
    est = PoseEstimator("model.onnx", detector="yolox_m.zip")
    res = est(image_bgr)                  # PoseResult: keypoints (N, K, 2) image pixels, scores, boxes, track ids

Names are imported lazily on first use (PEP 562), so ``import posedistill.infer`` is cheap and never imports
torch; only ``export_onnx`` / ``export_checkpoint`` (the ``train`` extra) and ``VideoPoseEstimator`` do
(``DKDPoseEstimator`` only in ``from_checkpoint``).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module under posedistill.infer
_EXPORTS: dict[str, str] = {
    "PoseEstimator": "estimator",
    "PoseModel": "estimator",
    "TorchPoseModel": "estimator",
    "load_pose_model": "estimator",
    "OnnxPoseModel": "onnx_model",
    "PoseModelInfo": "onnx_model",
    "ModelContractError": "onnx_model",
    "YOLOXDetector": "detector",
    "PersonDetector": "detector",
    "resolve_model": "hub",
    "ModelDownloadError": "hub",
    "Wholebody": "presets",
    "Body": "presets",
    "PoseResult": "results",
    "PoseTracker": "tracking",
    "PoseSmoother": "smoothing",
    "OneEuroFilter": "smoothing",
    "open_source": "sources",
    "draw_result": "draw",
    "PosePipeline": "pipeline",
    "OutputOptions": "pipeline",
    "JsonResultWriter": "writers",
    "OpenPoseWriter": "writers",
    "VideoWriter": "writers",
    "savgol_smooth": "smoothing",
    "smooth_results_offline": "smoothing",
    "VideoPoseEstimator": "video_estimator",
    "DKDPoseEstimator": "dkd_estimator",
    "OnnxVideoPoseEstimator": "dkd_estimator",
    "default_model": "defaults",
    "DEFAULT_MODEL_DIR": "defaults",
    "default_detector": "defaults",
    "load_detector": "defaults",
    "export_onnx": "export",
    "export_checkpoint": "export",
    "export_dkd_onnx": "export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'posedistill.infer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"posedistill.infer.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
