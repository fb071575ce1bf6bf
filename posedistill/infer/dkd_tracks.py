"""Pieces shared by the two online DKD runners, the PyTorch
:class:`~posedistill.infer.video_estimator.VideoPoseEstimator` and the ONNX
:class:`~posedistill.infer.dkd_estimator.OnnxVideoPoseEstimator`: the per-person output :class:`TrackPose`, the
:class:`EstimatorStats` counters, and the track bookkeeping helpers. Torch-free.

A low module both runners import, so ``video_estimator`` does not import ``dkd_estimator`` (which builds on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class TrackPose:
    """One person in one frame: keypoints (K, 2) in image pixels, scores (K,) (heatmap maxima), the box it was
    cropped from, and whether the initializer produced it. Shared by the torch and ONNX runners."""

    track_id: Any
    keypoints: np.ndarray
    scores: np.ndarray
    bbox: np.ndarray
    initialised: bool


@dataclass
class EstimatorStats:
    person_frames: int = 0
    initialised: int = 0  # tracks started or re-initialised on schedule
    redone: int = 0  # steps redone by the initializer after a confidence drop
    frames: int = 0


def drop_lost_tracks(states: dict[Any, Any], seen: set[Any], frame: int, max_missing: int) -> None:
    """Forget (in place) the tracks absent from ``frame`` whose last update is more than ``max_missing`` frames
    old; shared by the torch and ONNX runners (their states have a ``last_frame``)."""
    for tid in [t for t, st in states.items() if t not in seen and frame - st.last_frame > max_missing]:
        del states[tid]


def track_boxes(boxes_or_tracks: Any) -> list[tuple[Any, np.ndarray]]:
    """(track id, box) pairs from a {track_id: box} mapping or an (N, 4) array (id = row); shared by the torch
    (:class:`~posedistill.infer.video_estimator.VideoPoseEstimator`) and ONNX runners."""
    if isinstance(boxes_or_tracks, Mapping):
        items = list(boxes_or_tracks.items())
    else:
        arr = np.asarray(boxes_or_tracks, dtype=np.float64)
        if arr.size == 0:
            return []
        if arr.ndim != 2 or arr.shape[1] < 4:
            raise ValueError(f"boxes must be (N, 4) (or a {{track_id: box}} mapping), got {arr.shape}")
        items = list(enumerate(arr[:, :4]))
    out = []
    for tid, box in items:
        b = np.asarray(box, dtype=np.float64).reshape(-1)[:4]
        if b.size != 4 or not np.isfinite(b).all():
            raise ValueError(f"track {tid!r}: the box must be 4 finite numbers, got {box!r}")
        out.append((tid, b))
    return out
