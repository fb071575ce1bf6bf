"""Score a model's predictions on a dataset's :class:`Instance` records: COCO OKS AP, PCK or PCKh.

This is what ``posedistill eval`` calls. The COCO path follows MMPose's CocoMetric: instance score = box score x
mean keypoint score above 0.2, OKS-NMS per image at 0.9 (area = product of the padded box scale), then the COCO
evaluation of :mod:`posedistill.eval.coco` against the GT file or the GT rebuilt from the instances.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posedistill.data.instance import Instance
from posedistill.eval.coco import coco_eval, keypoint_fields, main_part, protocol_for, results_to_coco
from posedistill.eval.nms import oks_nms, rescore_instances
from posedistill.eval.pck import bbox_norm, epe, head_norm, mpii_pckh, pck, torso_norm
from posedistill.layouts import get_layout

# Layouts scored with PCK even where MMPose defines sigmas (used there only for NMS).
PCK_LAYOUTS = frozenset({"lsp", "mpii", "jhmdb", "penn_action", "mediapipe_pose"})


def choose_metric(instances: Sequence[Instance], layout: str) -> str:
    """``auto``: PCKh when every instance has a head box, COCO AP for layouts with OKS sigmas (except the PCK
    datasets of :data:`PCK_LAYOUTS`), PCK otherwise."""
    if instances and all(inst.head_box is not None for inst in instances):
        return "pckh"
    lay = get_layout(layout)
    if lay.sigmas is not None and lay.name not in PCK_LAYOUTS:
        return "coco"
    return "pck"


def padded_box_areas(
    bboxes: np.ndarray, padding: float = 1.25, input_size: tuple[int, int] | None = None
) -> np.ndarray:
    """(N, 4) x, y, w, h -> (N,) area of the top-down crop box: w, h times ``padding``, then (with
    ``input_size`` = (w, h) of the model input) widened or heightened to its aspect ratio, as MMPose's
    ``bbox_scales`` after GetBBoxCenterScale and TopdownAffine."""
    b = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    w, h = b[:, 2] * padding, b[:, 3] * padding
    if input_size is not None:
        aspect = input_size[0] / input_size[1]
        w, h = np.where(w > h * aspect, w, h * aspect), np.where(w > h * aspect, w / aspect, h)
    return w * h


def _coco_ids(values: Sequence[Any]) -> dict[Any, Any]:
    """Original id -> COCO id: kept when all are ints, else 1..n in order of appearance."""
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return {v: int(v) for v in values}
    return {v: i for i, v in enumerate(dict.fromkeys(values), start=1)}


def build_coco_gt(instances: Sequence[Instance], layout: str) -> dict:
    """COCO keypoint ground truth from instance records (crowd instances become crowd regions).

    Keypoints get their visibility as v (an int where it is integral); ``area`` is the instance's, or the box
    area when it is 0; ``num_keypoints`` is ``extra['num_keypoints']`` when the reader kept it (CrowdPose counts
    only visible points), else the number of labelled points; images carry ``extra['crowd_index']`` as
    ``crowdIndex``. Image and annotation ids are kept when they are unique ints, else renumbered from 1.
    """
    lay = get_layout(layout)
    fields = keypoint_fields(lay)
    img_map = _coco_ids([inst.image_id for inst in instances])
    ann_ids = [inst.instance_id for inst in instances]
    unique = len(set(ann_ids)) == len(ann_ids) and all(isinstance(a, (int, np.integer)) for a in ann_ids)
    images: dict[Any, dict] = {}
    annotations = []
    for n, inst in enumerate(instances):
        if inst.layout != lay.name:
            raise ValueError(f"instance {n} has layout {inst.layout!r}, expected {lay.name!r}")
        img_id = img_map[inst.image_id]
        if img_id not in images:
            images[img_id] = {"id": img_id, "width": int(inst.image_size[0]), "height": int(inst.image_size[1])}
            if "crowd_index" in inst.extra:
                images[img_id]["crowdIndex"] = float(inst.extra["crowd_index"])
        triplets = np.concatenate([inst.keypoints.astype(np.float64), inst.visibility[:, None].astype(np.float64)], 1)
        x, y, w, h = (float(v) for v in inst.bbox)
        ann: dict[str, Any] = {
            "id": int(ann_ids[n]) if unique else n + 1,
            "image_id": img_id,
            "category_id": 1,
            "bbox": [x, y, w, h],
            "area": float(inst.area) if inst.area > 0 else w * h,
            "iscrowd": int(bool(inst.iscrowd)),
            "num_keypoints": int(inst.extra.get("num_keypoints", inst.num_labelled)),
        }
        start = 0
        for name, count in fields:
            flat = triplets[start : start + count].ravel()
            # v stays a float where it is one (COCO-WholeBody hand points carry confidences like 0.37)
            ann[name] = [float(v) if i % 3 < 2 or v != int(v) else int(v) for i, v in enumerate(flat)]
            start += count
        annotations.append(ann)
    return {
        "images": list(images.values()),
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }


def _flatten_coco(stats: dict[str, dict[str, float]], layout: str) -> dict[str, Any]:
    lay = get_layout(layout)
    main = main_part(lay) or "all"
    out: dict[str, Any] = dict(stats[main])
    for part, row in stats.items():
        for name, value in row.items():
            out[f"{part}/{name}"] = value
    return out


def _evaluate_coco(
    instances: Sequence[Instance],
    keypoints: np.ndarray,
    scores: np.ndarray,
    layout: str,
    gt_file: str | Path | None,
    bbox_scores: np.ndarray | None,
    areas: np.ndarray | None,
    input_size: tuple[int, int] | None,
    nms_thr: float | None,
    keypoint_score_thr: float,
) -> dict[str, Any]:
    lay = get_layout(layout)
    sigmas = lay.sigmas_array().astype(np.float32)  # MMPose's dataset_meta holds them as float32
    keep_rows = np.array([not inst.iscrowd for inst in instances], dtype=bool)
    if bbox_scores is None:
        bbox_scores = np.array([float(inst.extra.get("bbox_score", 1.0)) for inst in instances])
    if areas is None:
        areas = padded_box_areas(np.stack([inst.bbox for inst in instances]), input_size=input_size)
    inst_scores = rescore_instances(bbox_scores, scores, keypoint_score_thr)

    gt = build_coco_gt(instances, layout) if gt_file is None else gt_file
    img_map = _coco_ids([inst.image_id for inst in instances]) if gt_file is None else None
    by_image: dict[Any, list[int]] = defaultdict(list)
    for n in np.nonzero(keep_rows)[0]:
        by_image[instances[n].image_id].append(int(n))
    rows: list[int] = []
    for idx in by_image.values():
        idx_arr = np.asarray(idx)
        if nms_thr is None:
            rows += idx
        else:
            kept = oks_nms(keypoints[idx_arr], inst_scores[idx_arr], areas[idx_arr], sigmas, nms_thr)
            rows += idx_arr[kept].tolist()
    rows_arr = np.asarray(rows, dtype=np.int64)
    image_ids = [img_map[instances[n].image_id] if img_map else instances[n].image_id for n in rows]
    results = results_to_coco(image_ids, keypoints[rows_arr], scores[rows_arr], inst_scores[rows_arr], layout)
    stats = coco_eval(gt, results, layout)
    out = _flatten_coco(stats, layout)
    out["num_results"] = len(results)
    out["protocol"] = "crowdpose" if protocol_for(lay).crowd else "coco"
    return out


def _per_joint(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def evaluate_predictions(
    instances: Sequence[Instance],
    keypoints: np.ndarray,
    scores: np.ndarray,
    layout: str,
    metric: str = "auto",
    gt_file: str | Path | None = None,
    alpha: float | None = None,
    *,
    bbox_scores: np.ndarray | None = None,
    areas: np.ndarray | None = None,
    input_size: tuple[int, int] | None = None,
    nms_thr: float | None = 0.9,
    keypoint_score_thr: float = 0.2,
) -> dict[str, Any]:
    """Score predictions for ``instances`` (one row per instance, same order).

    Args:
        instances: the dataset's records (layout ``layout``); crowd instances are GT-only (their rows are not
            scored as predictions).
        keypoints: (N, K, 2) predicted keypoints in image pixels; scores: (N, K) keypoint scores.
        metric: ``coco``, ``pck``, ``pckh`` or ``auto`` (:func:`choose_metric`).
        gt_file: COCO ground-truth file to score against (its image ids must be the instances' image ids);
            by default the GT is rebuilt from the instances (:func:`build_coco_gt`).
        alpha: PCK threshold (default 0.2 for PCK, 0.5 for PCKh).
        bbox_scores: (N,) detector scores (default ``extra['bbox_score']`` or 1, i.e. GT boxes).
        areas: (N,) OKS-NMS scales (default :func:`padded_box_areas` of the instance boxes, aspect-fixed to
            ``input_size`` = (w, h) when given). ``nms_thr=None`` disables the NMS.

    Returns a flat JSON-friendly dict; all accuracies are fractions in [0, 1] (-1: nothing to score):

    - ``coco``: ``AP``, ``AP50``, ``AP75``, ``APm``, ``APl``, ``AR``, ``AR50``, ``AR75``, ``ARm``, ``ARl`` of the
      part covering all keypoints (``body``, or ``wholebody`` for COCO-WholeBody), ``<part>/<stat>`` for every
      part (COCO-WholeBody: body, foot, face, lefthand, righthand, wholebody); CrowdPose gives AP, AP50, AP75,
      AR, AR50, AR75, AP_easy, AP_medium, AP_hard instead. Also ``num_results`` (after NMS) and ``protocol``.
    - ``pck``: ``pck@A`` (PCK@alpha, box normaliser max(w, h)), ``pck@A/per_joint`` (K values, -1 for a joint
      without labelled samples), ``tpck@A`` and ``tpck@A/per_joint`` (torso normaliser, layouts with left
      shoulder and right hip), ``epe`` (mean pixel error over labelled joints).
    - ``pckh``: ``pckh@A`` and ``pckh@A/per_joint`` (head normaliser 0.6 x head-box diagonal); for the MPII layout
      also MPII's table: ``pckh@A`` is then MPII's "Mean" (pelvis and thorax excluded), plus ``pckh@0.1`` and
      ``pckh@A/<group>`` for head, shoulder, elbow, wrist, hip, knee, ankle.

    Every metric also reports ``metric`` (the one used) and ``num_instances`` (non-crowd instances scored).
    """
    lay = get_layout(layout)
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    n, k = len(instances), lay.num_keypoints
    if kp.shape != (n, k, 2) or sc.shape != (n, k):
        raise ValueError(f"expected keypoints ({n}, {k}, 2) and scores ({n}, {k}); got {kp.shape} and {sc.shape}")
    if n == 0:
        raise ValueError("no instances to evaluate")
    if metric == "auto":
        metric = choose_metric(instances, layout)
    if metric not in ("coco", "pck", "pckh"):
        raise ValueError(f"unknown metric {metric!r}; expected coco, pck, pckh or auto")
    scored = [i for i, inst in enumerate(instances) if not inst.iscrowd]
    base = {"metric": metric, "num_instances": len(scored)}
    if metric == "coco":
        return base | _evaluate_coco(
            instances, kp, sc, layout, gt_file, bbox_scores, areas, input_size, nms_thr, keypoint_score_thr
        )

    idx = np.asarray(scored, dtype=np.int64)
    sel = [instances[i] for i in scored]
    gt = np.stack([inst.keypoints for inst in sel]).astype(np.float64) if sel else np.zeros((0, k, 2))
    mask = np.stack([inst.visibility > 0 for inst in sel]) if sel else np.zeros((0, k), bool)
    pred = kp[idx]
    out: dict[str, Any] = dict(base)
    if metric == "pck":
        a = 0.2 if alpha is None else alpha
        boxes = np.stack([inst.bbox for inst in sel]) if sel else np.zeros((0, 4))
        per_joint, mean, _ = pck(pred, gt, mask, bbox_norm(boxes), a)
        out[f"pck@{a:g}"] = mean
        out[f"pck@{a:g}/per_joint"] = _per_joint(per_joint)
        if "left_shoulder" in lay.keypoint_names and "right_hip" in lay.keypoint_names:
            per_joint, mean, _ = pck(pred, gt, mask, torso_norm(gt, layout, pred), a)
            out[f"tpck@{a:g}"] = mean
            out[f"tpck@{a:g}/per_joint"] = _per_joint(per_joint)
        out["epe"] = epe(pred, gt, mask)
        return out

    a = 0.5 if alpha is None else alpha
    missing = [i for i, inst in zip(scored, sel) if inst.head_box is None]
    if missing:
        raise ValueError(f"PCKh needs head boxes; instances {missing[:10]} have none")
    heads = np.stack([inst.head_box for inst in sel]) if sel else np.zeros((0, 4))
    if lay.name == "mpii":
        table = mpii_pckh(pred, gt, mask, heads, a)
        out[f"pckh@{a:g}"] = table["pckh"]
        out["pckh@0.1"] = table["pckh@0.1"]
        for group in ("head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
            out[f"pckh@{a:g}/{group}"] = table[group]
        out[f"pckh@{a:g}/per_joint"] = table["per_joint"]
    else:
        per_joint, mean, _ = pck(pred, gt, mask, head_norm(heads), a)
        out[f"pckh@{a:g}"] = mean
        out[f"pckh@{a:g}/per_joint"] = _per_joint(per_joint)
    out["epe"] = epe(pred, gt, mask)
    return out
