"""The mean-pose baseline: the trivial model every trained model must beat.

It looks at no pixels. From the training people it learns one pose: each joint's mean position relative to the
person box (x and y as fractions of the box's width and height, averaged over the instances where the joint is
labelled). At evaluation it places that pose in every ground-truth box. A network that scores no better than this
has learned where joints usually sit in a box, not where they are in the image (a collapse to the mean pose).

::

    pose = fit_mean_pose(train_instances)              # (K, 2) box-relative
    kp = place_mean_pose(pose, val_instances)          # (N, K, 2) image pixels
    result = evaluate_predictions(val_instances, kp, scores, layout, metric="pck")

Every evaluation table prints it as a row (``posedistill eval``, the benchmarks); :func:`headline_key` picks the
number a model is judged by, :func:`baseline_warning` / :func:`row_warnings` say when a model does not beat it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from posedistill.data.instance import Instance

# A model whose score is not at least this far above the baseline's (in the metric's own units, fractions) is
# reported as not beating it: within noise of a model that ignores the image.
MARGIN = 0.02
# the name of its row in every table and results file
NAME = "mean-pose baseline"
# entries of an evaluation result that are not accuracies (left out of the printed baseline row)
_NOT_ACCURACY = ("num_instances", "num_results", "num_skipped", "eval_time", "epe")


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


def headline_key(result: Mapping[str, Any]) -> str | None:
    """The number an evaluation result is judged by, as the trainer picks its best checkpoint by default: COCO AP
    (of the part covering all keypoints), else PCKh, else PCK at the configured threshold; None when it has none."""
    for prefix in ("AP", "pckh@", "pck@"):
        for key, value in result.items():
            if "/" in key or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if key == prefix or (prefix.endswith("@") and key.startswith(prefix)):
                return key
    return None


def format_baseline(result: Mapping[str, Any], label: str = NAME) -> str:
    """``label: AP 0.0123  AP50 0.0456 ...``: the headline accuracies of a baseline result on one line (per-part,
    per-joint values, counts, times and the pixel error left out)."""
    cells = [
        f"{key} {float(value):.4f}"
        for key, value in result.items()
        if "/" not in key and key not in _NOT_ACCURACY and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ]  # fmt: skip
    return f"{label}: " + "  ".join(cells)


def baseline_warning(
    model: Mapping[str, Any],
    baseline: Mapping[str, Any],
    key: str | None = None,
    name: str = "the model",
    margin: float = MARGIN,
) -> str | None:
    """The ``warning: ...`` line when ``model`` does not beat ``baseline`` by ``margin`` on ``key`` (default
    :func:`headline_key` of ``model``); None when it does, or when there is no such number to compare."""
    key = key or headline_key(model)
    if key is None or not isinstance(baseline.get(key), (int, float)):
        return None
    if beats_baseline(dict(model), dict(baseline), key, margin):
        return None
    m = model.get(key)
    shown = f"{float(m):.4f}" if isinstance(m, (int, float)) else "missing"
    return (
        f"warning: {name} does not beat the {NAME} on {key}: {shown} vs {float(baseline[key]):.4f} (needs "
        f"+{margin:g}): it may have collapsed to the mean pose"
    )


def row_warnings(
    rows: Iterable[Mapping[str, Any]],
    group: Sequence[str] = ("dataset", "metric", "eval_set"),
    label: Sequence[str] = ("method", "seed"),
    margin: float = MARGIN,
    name_key: str = "method",
) -> list[str]:
    """Warnings for the benchmark rows (dicts with ``metric``, ``value``, ``name_key`` and the ``group`` keys) that
    do not beat the baseline row (``name_key`` = :data:`NAME`) of their group, one per row; groups without one are
    not judged. ``label``: the keys that name a row in its warning."""
    rows = list(rows)
    base = {tuple(r.get(k) for k in group): r for r in rows if r.get(name_key) == NAME}
    out = []
    for r in rows:
        b = base.get(tuple(r.get(k) for k in group))
        if b is None or r is b:
            continue
        name = " ".join(f"{k} {r[k]}" if k == "seed" else str(r[k]) for k in label if r.get(k) is not None)
        where = ", ".join(str(r[k]) for k in group if r.get(k) is not None and k != "metric")
        line = baseline_warning({r["metric"]: r["value"]}, {r["metric"]: b["value"]}, r["metric"],
                                f"{name} ({where})", margin)  # fmt: skip
        if line:
            out.append(line)
    return out
