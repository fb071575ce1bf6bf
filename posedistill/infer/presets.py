"""rtmlib-style one-liners: ``Wholebody()`` and ``Body()`` = YOLOX person detector + RTMPose / DWPose model.

::

    from posedistill.infer import Wholebody
    wholebody = Wholebody(mode="balanced")          # downloads DWPose-m + YOLOX-m once (~/.cache/posedistill)
    keypoints, scores = wholebody(image_bgr)        # (N, 133, 2) image pixels, (N, 133), as rtmlib returns them
    result = wholebody.predict(image_bgr)           # the full PoseResult (boxes, box scores, to_coco(), plot())

``det`` / ``pose`` replace the preset files with any path, URL or mmdeploy SDK zip (or a checkpoint for
``pose``). ``to_openpose=True`` returns keypoints in rtmlib's OpenPose order: the OpenPose-18 body (neck = mean of
the shoulders, scored by the lower shoulder score) followed, for whole-body models, by the 116 foot, face and hand
points in COCO-WholeBody order (134 in all).

The presets point at the official OpenMMLab ONNX releases listed by rtmlib and mmpose's RTMPose project page
(``docs/rtmpose-dwpose.md`` §9–10); their licences and data terms are those of the upstream weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from posedistill.infer.estimator import PoseEstimator
from posedistill.infer.results import PoseResult, openpose18

_SDK = "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
YOLOX_TINY = _SDK + "yolox_tiny_8xb8-300e_humanart-6f3252f9.zip"  # 416×416
YOLOX_M = _SDK + "yolox_m_8xb8-300e_humanart-c2c7a14a.zip"  # 640×640
YOLOX_X = _SDK + "yolox_x_8xb8-300e_humanart-a39d44ed.zip"  # 640×640


@dataclass(frozen=True)
class Preset:
    """A detector and a pose model (paths or URLs)."""

    det: str
    pose: str


WHOLEBODY_MODES: dict[str, Preset] = {
    # DWPose-t / -m / -l (COCO-WholeBody + UBody, 133 keypoints): whole AP 48.5 / 60.6 / 66.5
    "lightweight": Preset(YOLOX_TINY, _SDK + "rtmpose-t_simcc-ucoco_dw-ucoco_270e-256x192-dcf277bf_20230728.zip"),
    "balanced": Preset(YOLOX_M, _SDK + "rtmpose-m_simcc-ucoco_dw-ucoco_270e-256x192-c8b76419_20230728.zip"),
    "performance": Preset(YOLOX_X, _SDK + "rtmpose-l_simcc-ucoco_dw-ucoco_270e-384x288-2438fd99_20230728.zip"),
}

BODY_MODES: dict[str, Preset] = {
    # RTMPose-s / -m / -x trained on Body7 (COCO-17 keypoints): COCO AP 69.7 / 74.9 / 78.8
    "lightweight": Preset(YOLOX_TINY, _SDK + "rtmpose-s_simcc-body7_pt-body7_420e-256x192-acd4a1ef_20230504.zip"),
    "balanced": Preset(YOLOX_M, _SDK + "rtmpose-m_simcc-body7_pt-body7_420e-256x192-e48f03d0_20230504.zip"),
    "performance": Preset(YOLOX_X, _SDK + "rtmpose-x_simcc-body7_pt-body7_700e-384x288-71d7b7e9_20230629.zip"),
}


def to_openpose_arrays(keypoints: np.ndarray, scores: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2), (N, K) → rtmlib's OpenPose order: OpenPose-18 body, then (whole-body layouts) keypoints 17…
    in their own order: (N, 18, 2) for body layouts, (N, 134, 2) for COCO-WholeBody."""
    body_k, body_s = openpose18(keypoints, scores, layout)
    if layout != "coco_wholebody":
        return body_k, body_s
    return (
        np.concatenate([body_k, keypoints[:, 17:]], axis=1).astype(np.float32),
        np.concatenate([body_s, scores[:, 17:]], axis=1).astype(np.float32),
    )


class _Solution:
    MODES: ClassVar[dict[str, Preset]] = {}

    def __init__(
        self,
        det: str | Path | Any | None = None,
        pose: str | Path | Any | None = None,
        mode: str = "balanced",
        to_openpose: bool = False,
        backend: str = "onnxruntime",
        device: str = "cpu",
        flip_test: bool = False,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        det_score_thr: float = 0.3,
    ) -> None:
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {sorted(self.MODES)}, got {mode!r}")
        if backend not in ("onnxruntime", "torch"):
            raise ValueError(f"backend {backend!r} is not supported; use 'onnxruntime' (or 'torch' for checkpoints)")
        preset = self.MODES[mode]
        self.to_openpose = bool(to_openpose)
        self.estimator = PoseEstimator(
            preset.pose if pose is None else pose,
            detector=preset.det if det is None else det,
            flip_test=flip_test, device=device, threads=threads, cache_dir=cache_dir, progress=progress,
            det_score_thr=det_score_thr,
        )  # fmt: skip

    def predict(self, image: np.ndarray, boxes: np.ndarray | None = None, frame_id: int | None = None) -> PoseResult:
        """The full :class:`PoseResult` of ``image`` (BGR uint8)."""
        return self.estimator(image, boxes=boxes, frame_id=frame_id)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """rtmlib's interface: ``(keypoints (N, K, 2) image pixels, scores (N, K))``."""
        res = self.predict(image)
        if self.to_openpose:
            return to_openpose_arrays(res.keypoints, res.scores, res.layout)
        return res.keypoints, res.scores


class Wholebody(_Solution):
    """YOLOX + DWPose (133 COCO-WholeBody keypoints); modes lightweight / balanced / performance."""

    MODES: ClassVar[dict[str, Preset]] = WHOLEBODY_MODES


class Body(_Solution):
    """YOLOX + RTMPose (17 COCO keypoints); modes lightweight / balanced / performance."""

    MODES: ClassVar[dict[str, Preset]] = BODY_MODES
