"""The mean-pose baseline: the trivial model every trained model must beat.

It looks at no pixels. From the training people it learns one pose: each joint's mean position relative to the
person box (x and y as fractions of the box's width and height, averaged over the instances where the joint is
labelled). At evaluation it places that pose in every ground-truth box. A network that scores no better than this
has learned where joints usually sit in a box, not where they are in the image (a collapse to the mean pose).

::

    pose = fit_mean_pose(train_instances)              # (K, 2) box-relative
    kp = place_mean_pose(pose, val_instances)          # (N, K, 2) image pixels
    result = evaluate_predictions(val_instances, kp, scores, layout, metric="pck")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from posedistill.data.instance import Instance

# A model whose score is not at least this far above the baseline's (in the metric's own units, fractions) is
# reported as not beating it: within noise of a model that ignores the image.
MARGIN = 0.02


def fit_mean_pose(instances: Sequence[Instance]) -> np.ndarray:
    """(K, 2) float64 mean box-relative position of each joint (0.5, 0.5 where a joint is never labelled)."""
    sel = [inst for inst in instances if not inst.iscrowd and inst.bbox[2] > 0 and inst.bbox[3] > 0]
    if not sel:
        raise ValueError("the mean-pose baseline needs at least one non-crowd instance with a box")
    boxes = np.stack([inst.bbox for inst in sel]).astype(np.float64)  # (N, 4) x, y, w, h
    kp = np.stack([inst.keypoints for inst in sel]).astype(np.float64)  # (N, K, 2)
    mask = np.stack([inst.visibility > 0 for inst in sel])  # (N, K)
    rel = (kp - boxes[:, None, :2]) / boxes[:, None, 2:]
    counts = mask.sum(axis=0)  # (K,)
    sums = np.where(mask[..., None], rel, 0.0).sum(axis=0)
    return np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], 0.5)


def place_mean_pose(pose: np.ndarray, instances: Sequence[Instance]) -> np.ndarray:
    """(N, K, 2) float32: ``pose`` (K, 2) box-relative, placed in each instance's box, in image pixels."""
    if not instances:
        return np.zeros((0, len(pose), 2), np.float32)
    boxes = np.stack([inst.bbox for inst in instances]).astype(np.float64)
    return (boxes[:, None, :2] + pose[None] * boxes[:, None, 2:]).astype(np.float32)


def evaluate_mean_pose(
    train_instances: Sequence[Instance],
    val_instances: Sequence[Instance],
    layout: str,
    metric: str = "auto",
    **metric_args: Any,
) -> dict[str, Any]:
    """``evaluate_predictions`` of the mean pose of ``train_instances`` placed in the boxes of ``val_instances``.

    Every keypoint gets score 1 (the baseline has no confidence to offer), so COCO AP ranks it like a model that
    is sure of everything.
    """
    from posedistill.eval.evaluate import evaluate_predictions

    kp = place_mean_pose(fit_mean_pose(train_instances), val_instances)
    scores = np.ones(kp.shape[:2], np.float32)
    return evaluate_predictions(val_instances, kp, scores, layout, metric=metric, **metric_args)


def beats_baseline(model: dict[str, Any], baseline: dict[str, Any], key: str, margin: float = MARGIN) -> bool:
    """Whether ``model[key]`` is at least ``margin`` above ``baseline[key]`` (a missing value does not beat)."""
    m, b = model.get(key), baseline.get(key)
    if not isinstance(m, (int, float)) or not isinstance(b, (int, float)):
        return False
    return float(m) >= float(b) + margin
