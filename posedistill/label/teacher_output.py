"""What every pseudo-label teacher returns, and the map of a pose model's layout onto COCO-WholeBody-133.

Shared by the single teachers (:mod:`posedistill.label.teachers`) and the ensemble
(:mod:`posedistill.label.ensemble`); numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from posedistill.label.mediapipe_map import NUM_WHOLEBODY
from posedistill.layouts import get_mapping

WHOLEBODY = "coco_wholebody"


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
