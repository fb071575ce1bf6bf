"""Keypoint index sets shared by the result converters and the drawing code: the OpenPose-18 body built from
COCO-17, the COCO-WholeBody face / hand ranges, and layout conversions to both. Torch-free and OpenCV-free.

It sits below :mod:`posedistill.infer.results` and :mod:`posedistill.infer.draw`, which both import it (``results``
draws through ``draw``, so these pieces cannot live in either without an import cycle).
"""

from __future__ import annotations

import numpy as np

from posedistill.layouts import get_mapping

# OpenPose-18 body order built from COCO-17 indices; -1 is the neck (mean of the shoulders).
# nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist, r-hip, r-knee, r-ankle,
# l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear
OPENPOSE18_FROM_COCO: tuple[int, ...] = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
OPENPOSE18_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
# COCO-WholeBody ranges (face 68 iBUG points, hands in OpenPose's own hand order: root, thumb..pinky x 4)
WB_FACE = slice(23, 91)
WB_LHAND = slice(91, 112)
WB_RHAND = slice(112, 133)


def to_layout(keypoints: np.ndarray, scores: np.ndarray, src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    """Re-express (N, K, 2) keypoints and (N, K) scores of layout ``src`` in layout ``dst``; joints ``src`` lacks get
    coordinates 0 and score 0. Raises KeyError when no mapping exists."""
    kpts, sc, _ = get_mapping(src, dst).apply(keypoints, scores)
    return kpts, sc


def openpose18(keypoints: np.ndarray, scores: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2), (N, K) in ``layout`` -> OpenPose-18 body (N, 18, 2), (N, 18).

    The neck is the mean of the two shoulders; its score is the lower of the two shoulder scores (a design choice:
    the neck is only as certain as its least certain shoulder; peers differ, some take the product).
    """
    kpts, sc = to_layout(keypoints, scores, layout, "coco") if layout != "coco" else (keypoints, scores)
    idx = np.asarray(OPENPOSE18_FROM_COCO)
    safe = np.where(idx < 0, 0, idx)
    out_k = kpts[:, safe].astype(np.float32).copy()
    out_s = sc[:, safe].astype(np.float32).copy()
    out_k[:, 1] = 0.5 * (kpts[:, 5] + kpts[:, 6])
    out_s[:, 1] = np.minimum(sc[:, 5], sc[:, 6])
    return out_k, out_s


def to_wholebody(keypoints: np.ndarray, scores: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The same people in COCO-WholeBody-133, or None when ``layout`` has no face/hands to map."""
    if layout == "coco_wholebody":
        return keypoints, scores
    try:
        return to_layout(keypoints, scores, layout, "coco_wholebody")
    except KeyError:
        return None
