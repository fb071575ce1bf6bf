"""Pseudo labels -> a COCO-WholeBody annotation file (and a COCO keypoint results file).

The annotation file is what posedistill's COCO reader and the trainers read (format ``coco``, layout
``coco_wholebody``)::

    {"info": {...}, "categories": [{"id": 1, "name": "person", "keypoints": [133 names], "skeleton": [...]}],
     "images": [{"id", "file_name" (absolute path), "width", "height", [video_id, frame_id]}],
     "annotations": [{"id", "image_id", "category_id": 1, "iscrowd": 0,
                      "bbox": [x, y, w, h] (the person box labelled), "area" (w * h),
                      "keypoints": 17 x 3, "foot_kpts": 6 x 3, "face_kpts": 68 x 3,
                      "lefthand_kpts": 21 x 3, "righthand_kpts": 21 x 3,   # [x, y, v], v 2 labelled / 0 not
                      "foot_valid", "face_valid", "lefthand_valid", "righthand_valid",
                      "face_box", "lefthand_box", "righthand_box",            # x, y, w, h; zeros when invalid
                      "num_keypoints" (labelled body points, as COCO-WholeBody counts),
                      "keypoint_scores": 133 floats,                          # the teacher's confidence, 0..1
                      ["source_id": the person's id in the source annotations]}]}

A labelled point has ``v = 2`` (the teacher gives no occlusion flag that means what COCO's 1 means; training
weighs by ``v > 0`` times ``keypoint_scores``). ``*_valid`` is True when the part has a labelled point; a part
box is the extent of its labelled points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posedistill.layouts import get_layout

# COCO-WholeBody's part fields and their slices of the 133 points.
PART_SLICES: tuple[tuple[str, slice], ...] = (
    ("keypoints", slice(0, 17)),
    ("foot_kpts", slice(17, 23)),
    ("face_kpts", slice(23, 91)),
    ("lefthand_kpts", slice(91, 112)),
    ("righthand_kpts", slice(112, 133)),
)
# part -> (valid flag, box field) for the parts COCO-WholeBody flags
PART_FLAGS: dict[str, tuple[str, str | None]] = {
    "foot_kpts": ("foot_valid", None),
    "face_kpts": ("face_valid", "face_box"),
    "lefthand_kpts": ("lefthand_valid", "lefthand_box"),
    "righthand_kpts": ("righthand_valid", "righthand_box"),
}
_DECIMALS = 2  # 1/100 pixel


def _r(values: np.ndarray, decimals: int = _DECIMALS) -> list[float]:
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def wholebody_categories() -> list[dict[str, Any]]:
    """The person category with COCO-WholeBody's 133 keypoint names and its skeleton (1-based, as COCO)."""
    lay = get_layout("coco_wholebody")
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(lay.keypoint_names),
            "skeleton": [[a + 1, b + 1] for a, b in lay.links],
        }
    ]


def points_box(points: np.ndarray) -> list[float]:
    """(n, 2) points -> [x, y, w, h] of their extent; zeros for no points."""
    if len(points) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    lo, hi = points.min(axis=0), points.max(axis=0)
    return _r(np.concatenate([lo, hi - lo]))


def wholebody_annotation(
    ann_id: int,
    image_id: Any,
    bbox_xywh: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    labelled: np.ndarray,
) -> dict[str, Any]:
    """One annotation (see the module docstring) from keypoints (133, 2), scores (133,) and labelled (133,)."""
    kp = np.where(labelled[:, None], keypoints, 0.0)
    vis = np.where(labelled, 2.0, 0.0)
    box = np.asarray(bbox_xywh, dtype=np.float64).reshape(4)
    ann: dict[str, Any] = {
        "id": int(ann_id),
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": _r(box),
        "area": round(float(box[2] * box[3]), 2),
        "num_keypoints": int(labelled[:17].sum()),
    }
    for field, sl in PART_SLICES:
        flat = np.concatenate([kp[sl], vis[sl, None]], axis=1).reshape(-1)
        ann[field] = _r(flat)
        if field in PART_FLAGS:
            valid_key, box_key = PART_FLAGS[field]
            ann[valid_key] = bool(labelled[sl].any())
            if box_key is not None:
                ann[box_key] = points_box(kp[sl][labelled[sl]])
    ann["keypoint_scores"] = _r(np.where(labelled, scores, 0.0), 4)
    return ann


def body_result(
    image_id: Any, bbox_xywh: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, labelled: np.ndarray,
    box_score: float = 1.0, kpt_score_thr: float = 0.2,
) -> dict[str, Any]:  # fmt: skip
    """One COCO keypoint result (body 17 of the 133 points): ``image_id``, ``category_id`` 1, ``keypoints``
    [x, y, score] * 17 (unlabelled points: 0, 0, 0), ``bbox`` and ``score`` = box score x the mean of the body
    scores above ``kpt_score_thr`` (mmpose's CocoMetric rescoring; 0 when none is above)."""
    kp, sc, lab = keypoints[:17], scores[:17], labelled[:17]
    s = np.where(lab, sc, 0.0)
    flat = np.concatenate([np.where(lab[:, None], kp, 0.0), s[:, None]], axis=1).reshape(-1)
    above = s > kpt_score_thr
    mean = float(s[above].mean()) if above.any() else 0.0
    return {
        "image_id": image_id,
        "category_id": 1,
        "keypoints": _r(flat, 3),
        "bbox": _r(np.asarray(bbox_xywh, dtype=np.float64).reshape(4)),
        "score": round(float(box_score) * mean, 6),
    }
