"""Collapse check: do the model's predictions still depend on the image?

A pose network that has collapsed to the mean pose outputs (almost) the same keypoints in the crop for every
person: its predictions' spread across a batch falls to ~0 while the targets' spread does not. The trainer measures
the ratio once per epoch on the epoch's last batch and warns when it falls below :data:`COLLAPSE_RATIO`.
"""

from __future__ import annotations

import numpy as np

# Predictions spread less than this fraction of the ground truth's spread across a batch: the model ignores the
# image. A trained model sits near 1; a collapsed one near 0 (the demo's collapsed RTMPose-t measured ~0.05).
COLLAPSE_RATIO = 0.25


def batch_spread(keypoints: np.ndarray, mask: np.ndarray, input_size: tuple[int, int]) -> float:
    """Mean over joints of the std over the batch of the crop keypoints, as a fraction of the input size.

    keypoints (B, K, 2) crop pixels; mask (B, K) bool, joints to include; input_size (w, h). Joints labelled in
    fewer than two samples are left out; returns nan when no joint qualifies.
    """
    kp = np.asarray(keypoints, np.float64) / np.asarray(input_size, np.float64)
    mask = np.asarray(mask, bool)
    stds = []
    for k in range(kp.shape[1]):
        sel = kp[mask[:, k], k]
        if len(sel) >= 2:
            stds.append(sel.std(axis=0).mean())
    return float(np.mean(stds)) if stds else float("nan")


def spread_ratio(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, input_size: tuple[int, int]) -> float:
    """:func:`batch_spread` of the predictions over that of the targets, on the same joints (nan if undefined)."""
    t = batch_spread(target, mask, input_size)
    if not np.isfinite(t) or t <= 0:
        return float("nan")
    return batch_spread(pred, mask, input_size) / t
