"""COCO detection-result files (person boxes for detected-box evaluation) -> boxes per image.

The file is a JSON list ``[{"image_id": 785, "category_id": 1, "bbox": [x, y, w, h], "score": 0.99}, ...]``, as
mmpose's ``COCO_val2017_detections_AP_H_56_person.json``. These are not keypoint annotations, so they give boxes,
not :class:`~posedistill.data.instance.Instance` records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posedistill.data.readers.common import load_json, numbers, require
from posedistill.errors import PoseDataError


def read_coco_detections(
    json_file: str | Path, category_id: int | None = 1, min_score: float = 0.0
) -> dict[int | str, np.ndarray]:
    """Person boxes per image: ``{image_id: (N, 5) float32 x, y, w, h, score}``, highest score first.

    Args:
        json_file: the detection-result JSON list.
        category_id: keep only this category (1 = person in COCO); None keeps all.
        min_score: drop boxes scoring below this.
    """
    data = load_json(json_file)
    if not isinstance(data, list):
        raise PoseDataError(json_file, f"expected a JSON list of detections, found a JSON {type(data).__name__}")
    per_image: dict[int | str, list[np.ndarray]] = {}
    for i, det in enumerate(data):
        rec = f"detection #{i}"
        img_id = require(det, "image_id", path=json_file, record=rec)
        if category_id is not None and det.get("category_id", category_id) != category_id:
            continue
        box = numbers(require(det, "bbox", json_file, rec, "[x, y, w, h]"), json_file, rec, "bbox", 4)
        score = float(numbers(require(det, "score", json_file, rec), json_file, rec, "score", 1)[0])
        if not (np.isfinite(box).all() and np.isfinite(score)):
            raise PoseDataError(json_file, f"non-finite box {box.tolist()} or score {score}", record=rec)
        if score >= min_score:
            per_image.setdefault(img_id, []).append(np.append(box, score))
    out = {}
    for img_id, rows in per_image.items():
        arr = np.asarray(rows, dtype=np.float32)
        out[img_id] = arr[np.argsort(-arr[:, 4], kind="stable")]
    return out
