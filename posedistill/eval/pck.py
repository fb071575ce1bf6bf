"""PCK, PCKh (MPII), AUC and EPE, numerically as MMPose's ``keypoint_eval.py`` and ``keypoint_2d_metrics.py``.

A keypoint counts as correct when its distance to the GT, divided by the instance's normaliser, is below the
threshold ``alpha``. Normalisers:

- :func:`bbox_norm`: max(w, h) of the person box (MMPose ``PCKAccuracy(norm_item='bbox')``, LSP / JHMDB PCK);
- :func:`torso_norm`: distance between the left shoulder and the right hip (MMPose's JHMDB ``torso`` item,
  keypoints 4 and 5 of JHMDB-15), falling back to the predicted torso when the GT one is shorter than 1 px;
- :func:`head_norm`: 0.6 x the diagonal of the head box (MPII's ``SC_BIAS``; PCKh).

Distances are stored as float32 before the comparison, as in MMPose. One deviation: MMPose masks an instance
out only when its normaliser is exactly 0 and silently replaces a negative one by 1e6 (every joint then counts
as correct); here any normaliser <= 0 or not finite masks the instance out.
"""

from __future__ import annotations

import numpy as np

from posedistill.layouts import get_layout

# MPII-16 joint groups (right, left) as MMPose's MpiiPCKAccuracy reports them; pelvis (6) and thorax (7) are left
# out of the mean.
MPII_GROUPS: dict[str, tuple[int, ...]] = {
    "head": (9,),
    "shoulder": (12, 13),
    "elbow": (11, 14),
    "wrist": (10, 15),
    "hip": (2, 3),
    "knee": (1, 4),
    "ankle": (0, 5),
}
MPII_EXCLUDED = (6, 7)


def _as_arrays(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    mask = np.asarray(mask).astype(bool)
    if pred.ndim != 3 or pred.shape != gt.shape or mask.shape != pred.shape[:2]:
        shapes = f"{pred.shape}, {gt.shape}, {mask.shape}"
        raise ValueError(f"expected pred (N, K, D), gt (N, K, D), mask (N, K); got {shapes}")
    return pred, gt, mask


def normalized_distances(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """(N, K) float32 distance / normaliser; -1 where the joint is masked out or the normaliser is invalid.

    pred, gt (N, K, D); mask (N, K) bool; norm (N,) one value per instance or (N, D) one per axis.
    """
    pred, gt, mask = _as_arrays(pred, gt, mask)
    n, _, dims = pred.shape
    norm = np.asarray(norm, dtype=np.float64)
    if norm.ndim == 1:
        norm = np.repeat(norm[:, None], dims, axis=1)
    if norm.shape != (n, dims):
        raise ValueError(f"expected norm ({n},) or ({n}, {dims}); got {norm.shape}")
    ok_rows = (np.isfinite(norm) & (norm > 0)).all(axis=1)
    valid = mask & ok_rows[:, None]
    safe = np.where(ok_rows[:, None], norm, 1.0)
    out = np.full(mask.shape, -1, dtype=np.float32)
    out[valid] = np.linalg.norm(((pred - gt) / safe[:, None, :])[valid], axis=-1)
    return out


def pck(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm: np.ndarray, alpha: float = 0.2
) -> tuple[np.ndarray, float, int]:
    """PCK@alpha as MMPose's ``keypoint_pck_accuracy``.

    pred, gt (N, K, 2); mask (N, K) bool (labelled joints); norm (N,) or (N, 2).
    Returns per_joint (K,) float64 accuracy in [0, 1], -1 for a joint with no valid sample; mean over the joints
    that have samples (0 when none); count, the number of such joints.
    """
    dist = normalized_distances(pred, gt, mask, norm)
    valid = dist != -1
    n_valid = valid.sum(axis=0)
    correct = ((dist < alpha) & valid).sum(axis=0)
    per_joint = np.where(n_valid > 0, correct / np.maximum(n_valid, 1), -1.0)
    scored = per_joint[per_joint >= 0]
    return per_joint, float(scored.mean()) if scored.size else 0.0, int(scored.size)


def bbox_norm(bboxes: np.ndarray) -> np.ndarray:
    """(N, 4) x, y, w, h boxes -> (N,) max(w, h)."""
    b = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    return np.maximum(b[:, 2], b[:, 3])


def torso_norm(gt: np.ndarray, layout: str, pred: np.ndarray | None = None) -> np.ndarray:
    """(N, K, 2) GT keypoints -> (N,) left-shoulder-to-right-hip distance; where it is < 1 px, the predicted
    one (when ``pred`` is given), as MMPose's JHMDB torso item."""
    lay = get_layout(layout)
    a, b = lay.index("left_shoulder"), lay.index("right_hip")
    g = np.asarray(gt, dtype=np.float64)
    size = np.linalg.norm(g[:, a] - g[:, b], axis=-1)
    if pred is not None:
        p = np.asarray(pred, dtype=np.float64)
        size = np.where(size < 1, np.linalg.norm(p[:, a] - p[:, b], axis=-1), size)
    return size


def head_norm(head_boxes: np.ndarray, factor: float = 0.6) -> np.ndarray:
    """(N, 4) x1, y1, x2, y2 head rectangles -> (N,) factor x diagonal (MPII PCKh head size)."""
    h = np.asarray(head_boxes, dtype=np.float64).reshape(-1, 4)
    return factor * np.linalg.norm(h[:, 2:] - h[:, :2], axis=-1)


def mpii_pckh(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, head_boxes: np.ndarray, thr: float = 0.5
) -> dict[str, float | list[float]]:
    """MPII PCKh as MMPose's ``MpiiPCKAccuracy`` (fractions, not percent).

    pred, gt (N, 16, 2) in MPII joint order; mask (N, 16); head_boxes (N, 4) x1, y1, x2, y2.
    Returns ``pckh`` (PCKh@thr averaged over the joints weighted by their number of labelled samples, pelvis and
    thorax excluded: MPII's "Mean"), ``pckh@0.1`` (same at 0.1), per-group values ``head``, ``shoulder``,
    ``elbow``, ``wrist``, ``hip``, ``knee``, ``ankle`` (mean of the right and left joint; a side without samples is
    left out, -1 when neither has any; MMPose averages the -1 in), ``per_joint`` (16 values, -1 without samples)
    and ``count`` (labelled samples per joint).
    """
    pred, gt, mask = _as_arrays(pred, gt, mask)
    if pred.shape[1] != 16:
        raise ValueError(f"mpii_pckh needs the 16 MPII joints, got {pred.shape[1]}")
    norm = head_norm(head_boxes)
    per_joint, _, _ = pck(pred, gt, mask, norm, thr)
    at_01, _, _ = pck(pred, gt, mask, norm, 0.1)
    count = mask.sum(axis=0).astype(np.float64)
    count[list(MPII_EXCLUDED)] = 0
    ratio = count / count.sum() if count.sum() > 0 else count
    out: dict[str, float | list[float]] = {
        "pckh": float(np.sum(np.where(ratio > 0, per_joint, 0) * ratio)),
        "pckh@0.1": float(np.sum(np.where(ratio > 0, at_01, 0) * ratio)),
    }
    for name, ids in MPII_GROUPS.items():
        vals = [per_joint[i] for i in ids if per_joint[i] >= 0]
        out[name] = float(np.mean(vals)) if vals else -1.0
    out["per_joint"] = per_joint.tolist()
    out["count"] = mask.sum(axis=0).astype(int).tolist()
    return out


def auc(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm_factor: float = 30.0, num_thrs: int = 20) -> float:
    """Area under the PCK curve for thresholds 0, 1/num_thrs, ..., (num_thrs-1)/num_thrs of a fixed pixel
    normaliser (MMPose ``keypoint_auc``; 30 px is its hand-dataset default)."""
    pred, gt, mask = _as_arrays(pred, gt, mask)
    norm = np.full(pred.shape[0], float(norm_factor))
    return float(sum(pck(pred, gt, mask, norm, i / num_thrs)[1] for i in range(num_thrs)) / num_thrs)


def epe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Mean end-point error in pixels over the masked joints (0 when there are none), as MMPose ``keypoint_epe``."""
    dist = normalized_distances(pred, gt, mask, np.ones(np.asarray(pred).shape[0]))
    valid = dist[dist != -1]
    return float(valid.sum() / max(1, valid.size))
