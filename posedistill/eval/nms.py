"""Instance rescoring and OKS non-maximum suppression, as MMPose's CocoMetric applies them before COCO evaluation."""

from __future__ import annotations

import numpy as np


def rescore_instances(box_scores: np.ndarray, keypoint_scores: np.ndarray, thr: float = 0.2) -> np.ndarray:
    """Instance score = box score x mean of the keypoint scores above ``thr`` (0 when none is).

    box_scores (N,), keypoint_scores (N, K) -> (N,) float64. MMPose's ``score_mode='bbox_keypoint'``; GT boxes
    have box score 1.
    """
    box = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    kps = np.asarray(keypoint_scores, dtype=np.float64)
    if kps.ndim != 2 or kps.shape[0] != box.shape[0]:
        raise ValueError(f"expected box_scores (N,) and keypoint_scores (N, K); got {box.shape} and {kps.shape}")
    valid = kps > thr
    count = valid.sum(axis=1)
    total = np.where(valid, kps, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return box * mean


def oks_iou(
    ref: np.ndarray,
    others: np.ndarray,
    ref_area: float,
    areas: np.ndarray,
    sigmas: np.ndarray,
    ref_scores: np.ndarray | None = None,
    other_scores: np.ndarray | None = None,
    vis_thr: float | None = None,
) -> np.ndarray:
    """OKS between one pose and others, with the mean of the two areas as the scale (MMPose ``oks_iou``).

    ref (K, 2), others (M, K, 2), areas (M,), sigmas (K,) -> (M,) float32. With ``vis_thr``, only keypoints
    whose score is above it in both poses count (0 when none does); otherwise all keypoints count.
    """
    ref = np.asarray(ref, dtype=np.float64)
    others = np.asarray(others, dtype=np.float64).reshape(-1, *ref.shape)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    sig = np.asarray(sigmas)
    var = (sig * 2) ** 2 if sig.dtype.kind == "f" else (sig.astype(np.float64) * 2) ** 2  # float32 as MMPose's
    dx = others[:, :, 0] - ref[:, 0]
    dy = others[:, :, 1] - ref[:, 1]
    e = (dx**2 + dy**2) / var / ((ref_area + areas[:, None]) / 2 + np.spacing(1)) / 2
    sim = np.exp(-e)
    if vis_thr is None:
        return (sim.sum(axis=1) / sim.shape[1]).astype(np.float32)
    if ref_scores is None or other_scores is None:
        raise ValueError("vis_thr needs ref_scores and other_scores")
    use = (np.asarray(ref_scores) > vis_thr)[None, :] & (np.asarray(other_scores).reshape(sim.shape) > vis_thr)
    n = use.sum(axis=1)
    total = np.where(use, sim, 0.0).sum(axis=1)
    return np.divide(total, n, out=np.zeros_like(total), where=n > 0).astype(np.float32)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray,
    thr: float = 0.9,
    keypoint_scores: np.ndarray | None = None,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Greedy OKS-NMS over the poses of one image (MMPose ``oks_nms``).

    keypoints (N, K, 2), scores (N,) instance scores, areas (N,) OKS scales (MMPose: the product of the padded
    box scale), sigmas (K,). Visits poses by decreasing score, keeps one and drops the rest whose OKS with it is
    above ``thr``. Returns the kept indices (M,) int64 in the order they were kept.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    ar = np.asarray(areas, dtype=np.float64).reshape(-1)
    if len(sc) == 0:
        return np.zeros(0, dtype=np.int64)
    if kp.ndim != 3 or kp.shape[0] != len(sc) or ar.shape != sc.shape:
        shapes = f"{kp.shape}, {sc.shape}, {ar.shape}"
        raise ValueError(f"expected keypoints (N, K, 2), scores (N,), areas (N,); got {shapes}")
    ks = None if keypoint_scores is None else np.asarray(keypoint_scores, dtype=np.float64)
    order = sc.argsort()[::-1]  # MMPose's order, ties included
    keep = []
    while len(order) > 0:
        i, rest = order[0], order[1:]
        keep.append(i)
        ovr = oks_iou(
            kp[i], kp[rest], ar[i], ar[rest], sigmas,
            None if ks is None else ks[i], None if ks is None else ks[rest], vis_thr,
        )  # fmt: skip
        order = rest[ovr <= thr]
    return np.asarray(keep, dtype=np.int64)
