"""Video pose metrics: PCK normalised by the person box and by the torso (per joint and mean), FLOPs and time per
frame for estimators that do not cost the same on every frame (DKD: a large initializer now and then, a small
step otherwise). NumPy only; the FLOP counts come in as numbers (``posedistill.models.dkd.dkd_flops``).

PCK@α (DKD / LSTM Pose Machines protocol, ``docs/dkd.md``): a labelled joint is correct when its error is below
α × the normaliser of its frame:

- ``bbox``: max(w, h) of the person box ("normalised by person size", the Penn Action numbers DKD reports);
- ``torso``: ‖left shoulder − right hip‖ of the ground truth (:func:`posedistill.eval.pck.torso_norm`, MMPose's
  JHMDB item; falls back to the predicted torso when the GT one is under a pixel).

The mean is over joints that have labelled samples (MMPose's ``keypoint_pck_accuracy``), so joints a dataset does
not annotate (e.g. COCO's eyes in JHMDB records mapped to COCO) do not count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from posedistill.eval.pck import bbox_norm, pck, torso_norm
from posedistill.layouts import get_layout


def video_pck(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    boxes: np.ndarray,
    layout: str,
    alpha: float = 0.2,
) -> dict[str, Any]:
    """PCK@alpha by box and by torso.

    pred, gt (N, K, 2) image pixels of N frame-person records; mask (N, K) labelled joints; boxes (N, 4) x, y, w, h.
    Returns ``pck@A`` and ``pck@A/torso`` (means, fractions), ``pck@A/per_joint`` and ``pck@A/torso/per_joint``
    (``{joint name: value}``, -1 for joints without labelled samples), ``num_records`` and ``num_joints`` (joints
    scored). The torso variant needs ``left_shoulder`` and ``right_hip`` in the layout (else it is absent).
    """
    lay = get_layout(layout)
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[1] != lay.num_keypoints:
        raise ValueError(f"expected pred and gt (N, {lay.num_keypoints}, 2), got {pred.shape} and {gt.shape}")
    names = lay.keypoint_names
    per_joint, mean, count = pck(pred, gt, mask, bbox_norm(boxes), alpha)
    out: dict[str, Any] = {
        f"pck@{alpha:g}": mean,
        f"pck@{alpha:g}/per_joint": {n: float(v) for n, v in zip(names, per_joint)},
        "num_records": len(pred),
        "num_joints": count,
    }
    if "left_shoulder" in names and "right_hip" in names:
        per_joint, mean, _ = pck(pred, gt, mask, torso_norm(gt, layout, pred), alpha)
        out[f"pck@{alpha:g}/torso"] = mean
        out[f"pck@{alpha:g}/torso/per_joint"] = {n: float(v) for n, v in zip(names, per_joint)}
    return out


def instances_pck(instances: Sequence[Any], keypoints: np.ndarray, layout: str, alpha: float = 0.2) -> dict[str, Any]:
    """:func:`video_pck` of predictions (N, K, 2) for N :class:`~posedistill.data.instance.Instance` records."""
    if len(instances) == 0:
        raise ValueError("no records to score")
    gt = np.stack([inst.keypoints for inst in instances])
    mask = np.stack([inst.visibility > 0 for inst in instances])
    boxes = np.stack([inst.bbox for inst in instances])
    return video_pck(keypoints, gt, mask, boxes, layout, alpha)


def flops_per_frame(init_flops: float, step_flops: float, num_init: int, num_frames: int) -> float:
    """Mean FLOPs per frame of a run with ``num_init`` initialised frames (cost ``init_flops`` each) among
    ``num_frames``, the others tracked (``step_flops``)."""
    if num_frames <= 0:
        raise ValueError("num_frames must be positive")
    if not 0 <= num_init <= num_frames:
        raise ValueError(f"num_init must be in 0..{num_frames}, got {num_init}")
    return (num_init * init_flops + (num_frames - num_init) * step_flops) / num_frames


def dkd_run_flops(init_flops: float, step_flops: float, num_frames: int, num_init: int, num_redone: int = 0) -> float:
    """Mean FLOPs per frame of a DKD run: ``num_init`` frames started by the initializer, the rest tracked, of
    which ``num_redone`` were tracked, fell below the confidence floor and were redone by the initializer."""
    base = flops_per_frame(init_flops, step_flops, num_init, num_frames)
    return base + num_redone * init_flops / num_frames


def time_per_frame(
    run_frame: Callable[[int], Any],
    num_frames: int,
    warmup: int = 3,
    repeats: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Milliseconds per frame of ``run_frame(t)`` for t = 0..num_frames-1 (a sequence, so stateful estimators
    see their frames in order): ``warmup`` untimed calls of frame 0 first, then ``repeats`` timed passes.
    Returns ``ms_per_frame`` (mean over all timed frames), ``median_ms`` (median over the passes' per-frame
    means) and ``frames`` (timed)."""
    if num_frames <= 0 or repeats <= 0:
        raise ValueError("num_frames and repeats must be positive")
    for _ in range(warmup):
        run_frame(0)
    passes = []
    for _ in range(repeats):
        t0 = clock()
        for t in range(num_frames):
            run_frame(t)
        passes.append((clock() - t0) * 1000.0 / num_frames)
    return {"ms_per_frame": float(np.mean(passes)), "median_ms": float(np.median(passes)),
            "frames": num_frames * repeats}  # fmt: skip
