"""COCO keypoint AP / AR (OKS) on pycocotools, with the numbers of xtcocotools, the evaluator MMPose uses.

pycocotools runs the matching and the precision/recall accumulation. :class:`PartCOCOeval` feeds it, for one
keypoint part at a time, the ground truth and the detections exactly as xtcocotools' ``COCOeval(..., sigmas,
use_area)`` sees them; these are the places where xtcocotools differs from pycocotools:

- a GT is ignored when it is a crowd region or when **its part** has no labelled point (v > 0), counted from the
  keypoints themselves rather than read from ``num_keypoints`` (the CrowdPose protocol reads ``num_keypoints``);
- a detection whose part has no point with score > 0 is dropped before matching (only for that part);
- a detection is ranked by ``<part>_score`` when the results carry one, else by ``score`` (the body part always
  uses ``score``);
- with ``use_area=False`` (CrowdPose, AI Challenger, ExLPose in MMPose) the OKS scale and the area ranges use
  0.53 * box w * h instead of the GT ``area``;
- matched-id bookkeeping starts at -1 instead of 0, so a GT annotation with id 0 can be matched (here the GT
  records get private ids 1..N, which gives the same result with pycocotools' bookkeeping).

The sigmas are float32, as MMPose's ``dataset_meta['sigmas']`` that it hands to xtcocotools (the OKS variances
are then computed in float32 too).

COCO-WholeBody: six evaluations (body, foot, face, lefthand, righthand, wholebody), each with the layout's
sigmas sliced to the part and the person's GT ``area`` as the scale, results and GT read from the five fields
``keypoints``/``foot_kpts``/``face_kpts``/``lefthand_kpts``/``righthand_kpts``. Other layouts with ``parts``
(Halpe-136) are sliced the same way from their single ``keypoints`` field.

CrowdPose (``crowd`` protocol, as xtcocotools' iouType ``keypoints_crowd``): stats AP, AP50, AP75, AR, AR50,
AR75 over all areas, and AP_easy / AP_medium / AP_hard: the mean of the precision array (its -1 entries
included, rounded to 4 decimals, as xtcocotools does) re-evaluated on the images whose ``crowdIndex`` is
< 0.2, in [0.2, 0.8) and >= 0.8. They are left out when the GT images carry no ``crowdIndex``.

Deviations from xtcocotools, all on inputs it would crash on: a GT without ``iscrowd`` counts as not crowd, empty
results give AP 0, and malformed files raise :class:`PoseDataError` naming the file, the record and the field.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posedistill.errors import PoseDataError
from posedistill.fileio import atomic_write_json
from posedistill.layouts import Layout, get_layout

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
CROWD_STAT_NAMES = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")

# COCO-WholeBody stores its 133 points in five fields, in this order.
WHOLEBODY_FIELDS: tuple[tuple[str, int], ...] = (
    ("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21),
)  # fmt: skip

# CrowdPose's crowd-index bins (xtcocotools get_type_result(first=0.2, second=0.8)).
CROWD_INDEX_BINS = (0.2, 0.8)


@dataclass(frozen=True)
class Protocol:
    """How a dataset is scored.

    use_area: OKS scale and area ranges from the GT ``area`` (else 0.53 * box area).
    crowd: CrowdPose rules (GT ignored by ``num_keypoints``, crowd-index stats).
    """

    use_area: bool = True
    crowd: bool = False


# MMPose 1.3.2 evaluator settings per dataset; every other layout uses the COCO defaults. PoseTrack18 is scored
# by MMPose with its own mAP metric; its COCO-style files have no 'area', so OKS AP here uses the box (our choice).
PROTOCOLS: dict[str, Protocol] = {
    "crowdpose": Protocol(use_area=False, crowd=True),
    "aic": Protocol(use_area=False),
    "exlpose": Protocol(use_area=False),
    "posetrack18": Protocol(use_area=False),
}


def protocol_for(layout: str | Layout) -> Protocol:
    name = layout if isinstance(layout, str) else layout.name
    return PROTOCOLS.get(name, Protocol())


def keypoint_fields(layout: Layout) -> tuple[tuple[str, int], ...]:
    """(json field, number of keypoints) in storage order; one ``keypoints`` field except for COCO-WholeBody."""
    if layout.name == "coco_wholebody":
        return WHOLEBODY_FIELDS
    return (("keypoints", layout.num_keypoints),)


def eval_parts(layout: Layout) -> dict[str, slice]:
    """Parts that are scored: the layout's ``parts``, plus ``all`` when none of them covers every keypoint."""
    k = layout.num_keypoints
    parts = dict(layout.parts)
    if main_part(layout) is None:
        parts["all"] = slice(0, k)
    return parts


def main_part(layout: Layout) -> str | None:
    """The part covering every keypoint (``body`` for single-part layouts, ``wholebody`` for COCO-WholeBody)."""
    k = layout.num_keypoints
    for name, s in layout.parts.items():
        if s.indices(k) == (0, k, 1):
            return name
    return None if layout.parts else "body"


def _score_key(part: str, single_part: bool) -> str:
    # xtcocotools: iouType keypoints_<part> ranks by '<part>_score' when present; the body part uses 'score'.
    return "score" if single_part or part == "body" else f"{part}_score"


# ---------------------------------------------------------------------------------------------- loading


def _load_json(path: str | Path, what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise PoseDataError(p, f"{what} file not found")
    try:
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PoseDataError(p, f"{what} file is not valid JSON: {e}") from None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _keypoint_array(rec: dict, fields: Sequence[tuple[str, int]], src: str, record: str) -> np.ndarray:
    """Concatenate the keypoint fields of one record into a (K, 3) float64 array, checking lengths."""
    out = []
    for name, k in fields:
        if name not in rec:
            raise PoseDataError(src, f"missing keypoint field (expected {3 * k} numbers)", record=record, field=name)
        v = rec[name]
        seq = isinstance(v, (list, tuple, np.ndarray))
        if not seq or len(v) != 3 * k:
            got = f"{len(v)} values" if seq else type(v).__name__
            raise PoseDataError(
                src, f"expected a list of {3 * k} numbers ({k} keypoints x [x, y, v]), got {got}",
                record=record, field=name,
            )  # fmt: skip
        try:
            out.append(np.asarray(v, dtype=np.float64).reshape(k, 3))
        except (TypeError, ValueError):
            raise PoseDataError(src, "keypoints must be numbers", record=record, field=name) from None
    return np.concatenate(out, axis=0)


@dataclass
class _GroundTruth:
    coco: COCO  # pycocotools index over images / categories / annotations
    kpts: dict[Any, np.ndarray]  # annotation id -> (K, 3)
    anns: dict[Any, dict]  # annotation id -> the fields the evaluation reads
    crowd_index: dict[Any, float] | None  # image id -> CrowdPose crowdIndex


def _load_gt(gt: str | Path | dict, layout: Layout, protocol: Protocol) -> _GroundTruth:
    src = str(gt) if not isinstance(gt, dict) else "<ground-truth dict>"
    data = _load_json(gt, "ground-truth") if not isinstance(gt, dict) else gt
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise PoseDataError(src, f"expected a COCO object with images/annotations/categories, got {kind}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise PoseDataError(src, f"missing or invalid {key!r} list (COCO ground-truth format)", field=key)
    fields = keypoint_fields(layout)
    images = []
    crowd_index: dict[Any, float] | None = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img:
            raise PoseDataError(src, "image entry without an 'id'", record=f"images[{i}]", field="id")
        images.append({"id": img["id"]})
        if crowd_index is not None and _is_number(img.get("crowdIndex")):
            crowd_index[img["id"]] = float(img["crowdIndex"])
        else:
            crowd_index = None
    image_ids = {img["id"] for img in images}
    categories = []
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat:
            raise PoseDataError(src, "category entry without an 'id'", record=f"categories[{i}]", field="id")
        categories.append({"id": cat["id"]})

    anns, kpts, slim = [], {}, {}
    for i, ann in enumerate(data["annotations"]):
        record = f"annotations[{i}]" + (f" (id={ann.get('id')!r})" if isinstance(ann, dict) else "")
        if not isinstance(ann, dict):
            raise PoseDataError(src, "annotation is not an object", record=record)
        for key in ("id", "image_id", "category_id", "bbox"):
            if key not in ann:
                raise PoseDataError(src, "missing required field", record=record, field=key)
        if ann["id"] in kpts:
            raise PoseDataError(src, f"duplicate annotation id {ann['id']!r}", record=record, field="id")
        if ann["image_id"] not in image_ids:
            problem = f"image_id {ann['image_id']!r} is not in 'images'"
            raise PoseDataError(src, problem, record=record, field="image_id")
        bbox = ann["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_is_number(b) for b in bbox):
            raise PoseDataError(src, f"expected [x, y, w, h], got {bbox!r}", record=record, field="bbox")
        if protocol.use_area and not _is_number(ann.get("area")):
            raise PoseDataError(
                src, "missing 'area' (the OKS scale); score without it with use_area=False (--no-use-area)",
                record=record, field="area",
            )  # fmt: skip
        if protocol.crowd and not _is_number(ann.get("num_keypoints")):
            problem = "the CrowdPose protocol needs 'num_keypoints'"
            raise PoseDataError(src, problem, record=record, field="num_keypoints")
        kpts[ann["id"]] = _keypoint_array(ann, fields, src, record)
        if protocol.use_area:
            area = float(ann["area"])
        else:  # xtcocotools: bbox[2] * bbox[3] * 0.53 for the area ranges, bbox[3] * bbox[2] * 0.53 for OKS (equal)
            area = bbox[2] * bbox[3] * 0.53
        slim[ann["id"]] = {
            "image_id": ann["image_id"],
            "category_id": ann["category_id"],
            "iscrowd": int(bool(ann.get("iscrowd", 0))),
            "bbox": [float(b) for b in bbox],
            "area": area,
            "num_keypoints": ann.get("num_keypoints"),
        }
        anns.append({"id": ann["id"], "image_id": ann["image_id"], "category_id": ann["category_id"]})

    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return _GroundTruth(coco=coco, kpts=kpts, anns=slim, crowd_index=crowd_index or None)


@dataclass
class _Results:
    kpts: np.ndarray  # (D, K, 3)
    image_ids: list
    category_ids: list
    scores: list[dict[str, float]]  # per result: score key -> value
    areas: list[float]  # as pycocotools' loadRes computes them


def _load_results(results: str | Path | list, layout: Layout, image_ids: set) -> _Results:
    src = str(results) if not isinstance(results, list) else "<results list>"
    data = _load_json(results, "results") if not isinstance(results, list) else results
    if not isinstance(data, list):
        raise PoseDataError(src, f"expected a JSON list of result objects, got {type(data).__name__}")
    fields = keypoint_fields(layout)
    k = layout.num_keypoints
    score_keys = ["score"] + [f"{p}_score" for p in layout.parts if p != "body"]
    # loadRes: results with a box get area = w * h, otherwise the extent of their 'keypoints' field.
    first_box = data[0].get("bbox") if data and isinstance(data[0], dict) else None
    use_bbox = first_box is not None and len(first_box) > 0
    kpts = np.zeros((len(data), k, 3), dtype=np.float64)
    out = _Results(kpts=kpts, image_ids=[], category_ids=[], scores=[], areas=[])
    for i, r in enumerate(data):
        record = f"result #{i}" + (f" (image_id={r.get('image_id')!r})" if isinstance(r, dict) else "")
        if not isinstance(r, dict):
            raise PoseDataError(src, "result is not an object", record=record)
        for key in ("image_id", "category_id", "score"):
            if key not in r:
                raise PoseDataError(src, "missing required field", record=record, field=key)
        if r["image_id"] not in image_ids:
            raise PoseDataError(src, f"image_id {r['image_id']!r} is not in the ground truth", record=record,
                                field="image_id")  # fmt: skip
        scores = {}
        for key in score_keys:
            if key in r:
                if not _is_number(r[key]):
                    raise PoseDataError(src, f"expected a number, got {r[key]!r}", record=record, field=key)
                scores[key] = float(r[key])
        kpts[i] = _keypoint_array(r, fields, src, record)
        if use_bbox:
            bb = r.get("bbox")
            if not isinstance(bb, (list, tuple)) or len(bb) != 4 or not all(_is_number(b) for b in bb):
                raise PoseDataError(src, "the first result has a bbox, so every result needs [x, y, w, h]",
                                    record=record, field="bbox")  # fmt: skip
            area = bb[2] * bb[3]
        else:
            x, y = r["keypoints"][0::3], r["keypoints"][1::3]
            area = (np.max(x) - np.min(x)) * (np.max(y) - np.min(y))
        out.image_ids.append(r["image_id"])
        out.category_ids.append(r["category_id"])
        out.scores.append(scores)
        out.areas.append(area)
    return out


# ------------------------------------------------------------------------------------------- evaluation


class PartCOCOeval(COCOeval):
    """pycocotools' COCOeval for one keypoint part, preparing GT and detections by xtcocotools' rules.

    ``gt_records``: annotation id -> {"id" (>= 1), image_id, category_id, iscrowd, ignore, area, bbox, kpts (k, 3)};
    ``dt_records``: {"id" (>= 1), image_id, category_id, score, area, kpts (k, 3)}, already without the
    detections xtcocotools drops. :meth:`computeOks` is vectorised over detections with the same arithmetic.
    """

    def __init__(self, coco_gt: COCO, gt_records: dict, dt_records: list[dict], sigmas: np.ndarray) -> None:
        super().__init__(coco_gt, None, iouType="keypoints")
        self.params.kpt_oks_sigmas = np.asarray(sigmas)
        self._gt_records = gt_records
        self._dt_records = dt_records

    def _prepare(self) -> None:
        p = self.params
        self._gts = defaultdict(list)
        self._dts = defaultdict(list)
        for ann_id in self.cocoGt.getAnnIds(imgIds=p.imgIds, catIds=p.catIds):
            g = self._gt_records[ann_id]
            self._gts[g["image_id"], g["category_id"]].append(g)
        imgs, cats = set(p.imgIds), set(p.catIds)
        for d in self._dt_records:
            if (not imgs or d["image_id"] in imgs) and (not cats or d["category_id"] in cats):
                self._dts[d["image_id"], d["category_id"]].append(d)
        self.evalImgs = defaultdict(list)
        self.eval = {}

    def computeOks(self, imgId: Any, catId: Any) -> np.ndarray | list:  # pycocotools' name
        p = self.params
        gts = self._gts[imgId, catId]
        dts = self._dts[imgId, catId]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")
        dts = [dts[i] for i in order[: p.maxDets[-1]]]
        if len(gts) == 0 or len(dts) == 0:
            return []
        var = (p.kpt_oks_sigmas * 2) ** 2
        d = np.stack([dt["kpts"] for dt in dts])
        xd, yd = d[:, :, 0], d[:, :, 1]
        ious = np.zeros((len(dts), len(gts)))
        for j, gt in enumerate(gts):
            g = gt["kpts"]
            visible = g[:, 2] > 0
            if visible.any():
                dx, dy = xd - g[:, 0], yd - g[:, 1]
            else:  # no labelled point: distance to the GT box grown by its size on every side
                x, y, w, h = gt["bbox"]
                x0, x1, y0, y1 = x - w, x + w * 2, y - h, y + h * 2
                dx = np.maximum(0, x0 - xd) + np.maximum(0, xd - x1)
                dy = np.maximum(0, y0 - yd) + np.maximum(0, yd - y1)
            e = (dx**2 + dy**2) / var / (gt["area"] + np.spacing(1)) / 2
            if visible.any():
                e = e[:, visible]
            ious[:, j] = np.sum(np.exp(-e), axis=1) / e.shape[1]
        return ious

    def run(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self.evaluate()
            self.accumulate()

    def stat(self, ap: bool, iou_thr: float | None = None, area: str = "all", max_dets: int = 20) -> float:
        """One summary number as pycocotools' ``summarize`` computes it (-1 when there is nothing to score)."""
        p = self.params
        a = [i for i, lbl in enumerate(p.areaRngLbl) if lbl == area]
        m = [i for i, md in enumerate(p.maxDets) if md == max_dets]
        s = self.eval["precision"] if ap else self.eval["recall"]
        if iou_thr is not None:
            s = s[np.where(iou_thr == p.iouThrs)[0]]
        s = s[:, :, :, a, m] if ap else s[:, :, a, m]
        valid = s[s > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    def keypoint_stats(self) -> dict[str, float]:
        return {
            "AP": self.stat(True),
            "AP50": self.stat(True, 0.5),
            "AP75": self.stat(True, 0.75),
            "APm": self.stat(True, area="medium"),
            "APl": self.stat(True, area="large"),
            "AR": self.stat(False),
            "AR50": self.stat(False, 0.5),
            "AR75": self.stat(False, 0.75),
            "ARm": self.stat(False, area="medium"),
            "ARl": self.stat(False, area="large"),
        }

    def crowd_stats(self, crowd_index: dict[Any, float] | None) -> dict[str, float]:
        out = {
            "AP": self.stat(True),
            "AP50": self.stat(True, 0.5),
            "AP75": self.stat(True, 0.75),
            "AR": self.stat(False),
            "AR50": self.stat(False, 0.5),
            "AR75": self.stat(False, 0.75),
        }
        if crowd_index is None:
            return out
        lo, hi = CROWD_INDEX_BINS
        bins: dict[str, list] = {"AP_easy": [], "AP_medium": [], "AP_hard": []}
        for img_id, ci in crowd_index.items():
            bins["AP_easy" if ci < lo else "AP_medium" if ci < hi else "AP_hard"].append(img_id)
        for name, ids in bins.items():
            self.params.imgIds = ids
            self.run()
            out[name] = float(round(np.mean(self.eval["precision"][:, :, :, 0, :]), 4))
        return out


def _part_records(
    gt: _GroundTruth, res: _Results, part: slice, score_key: str, protocol: Protocol
) -> tuple[dict, list[dict]]:
    gts = {}
    for seq, (ann_id, a) in enumerate(gt.anns.items(), start=1):
        kp = gt.kpts[ann_id][part]
        labelled = a["num_keypoints"] if protocol.crowd else int(np.count_nonzero(kp[:, 2] > 0))
        gts[ann_id] = {
            "id": seq,
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "iscrowd": a["iscrowd"],
            "ignore": bool(a["iscrowd"]) or labelled == 0,
            "area": a["area"],
            "bbox": a["bbox"],
            "kpts": kp,
        }
    dts = []
    for i in range(len(res.image_ids)):
        kp = res.kpts[i, part]
        if not np.any(kp[:, 2] > 0):
            continue  # xtcocotools drops detections without a positive score in the part
        scores = res.scores[i]
        dts.append({
            "id": i + 1,
            "image_id": res.image_ids[i],
            "category_id": res.category_ids[i],
            "score": scores.get(score_key, scores["score"]),
            "area": res.areas[i],
            "kpts": kp,
        })  # fmt: skip
    return gts, dts


def coco_eval(
    gt: str | Path | dict,
    results: str | Path | list,
    layout: str,
    *,
    use_area: bool | None = None,
    crowd: bool | None = None,
) -> dict[str, dict[str, float]]:
    """COCO keypoint AP/AR of ``results`` against ``gt``, per part.

    Args:
        gt: a COCO keypoint ground-truth file or the loaded dict (images, annotations, categories).
        results: a COCO results file or list: ``{"image_id", "category_id", "keypoints": [x, y, score] * K,
            "score"}`` (COCO-WholeBody: the 133 points split into ``keypoints``/``foot_kpts``/``face_kpts``/
            ``lefthand_kpts``/``righthand_kpts``; optional ``<part>_score``).
        layout: keypoint layout name; gives the sigmas, the parts and the protocol (:data:`PROTOCOLS`).
        use_area, crowd: override the layout's protocol.

    Returns:
        part name -> {stat -> value}: parts as :func:`eval_parts` (``body`` for single-part layouts; body, foot,
        face, lefthand, righthand, wholebody for COCO-WholeBody), stats :data:`STAT_NAMES` (AP@[.5:.95], AP@.5,
        AP@.75, AP medium, AP large, and the same for AR, maxDets 20), or :data:`CROWD_STAT_NAMES` under the crowd
        protocol. Fractions in [0, 1]; -1 where nothing can be scored (e.g. no GT in an area range).
    """
    lay = get_layout(layout)
    if lay.sigmas is None:
        raise ValueError(f"layout {layout!r} defines no OKS sigmas; it cannot be scored with COCO OKS AP")
    base = protocol_for(lay)
    protocol = Protocol(
        use_area=base.use_area if use_area is None else use_area, crowd=base.crowd if crowd is None else crowd
    )
    truth = _load_gt(gt, lay, protocol)
    res = _load_results(results, lay, set(truth.coco.getImgIds()))
    sigmas = lay.sigmas_array().astype(np.float32)  # as MMPose hands them to xtcocotools
    parts = eval_parts(lay)
    single = len(parts) == 1
    out = {}
    for name, part in parts.items():
        gts, dts = _part_records(truth, res, part, _score_key(name, single), protocol)
        ev = PartCOCOeval(truth.coco, gts, dts, sigmas[part])
        ev.run()
        out[name] = ev.crowd_stats(truth.crowd_index) if protocol.crowd else ev.keypoint_stats()
    return out


# ---------------------------------------------------------------------------------------------- writing


def _json_id(x: Any) -> Any:
    if isinstance(x, (np.integer, int)) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, np.generic):
        return x.item()
    return x


def results_to_coco(
    image_ids: Sequence[Any],
    keypoints: np.ndarray,
    scores: np.ndarray,
    instance_scores: np.ndarray,
    layout: str,
    category_id: int = 1,
) -> list[dict]:
    """Predictions as COCO keypoint results (COCO-WholeBody: split into its five fields).

    image_ids (N,), keypoints (N, K, 2) image pixels, scores (N, K) keypoint scores, instance_scores (N,).
    """
    lay = get_layout(layout)
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    inst = np.asarray(instance_scores, dtype=np.float64).reshape(-1)
    n, k = len(image_ids), lay.num_keypoints
    if kp.shape != (n, k, 2) or sc.shape != (n, k) or inst.shape != (n,):
        raise ValueError(
            f"expected keypoints ({n}, {k}, 2), scores ({n}, {k}) and instance scores ({n},) for layout "
            f"{layout!r}; got {kp.shape}, {sc.shape}, {inst.shape}"
        )
    bad = ~(np.isfinite(kp).all(axis=(1, 2)) & np.isfinite(sc).all(axis=1) & np.isfinite(inst))
    if bad.any():
        raise ValueError(f"predictions {np.nonzero(bad)[0][:10].tolist()} contain NaN or inf")
    fields = keypoint_fields(lay)
    triplets = np.concatenate([kp, sc[:, :, None]], axis=2)
    out = []
    for i in range(n):
        rec: dict[str, Any] = {"image_id": _json_id(image_ids[i]), "category_id": category_id}
        start = 0
        for name, count in fields:
            rec[name] = triplets[i, start : start + count].reshape(-1).tolist()
            start += count
        rec["score"] = float(inst[i])
        out.append(rec)
    return out


def write_coco_results(
    path: str | Path,
    image_ids: Sequence[Any],
    keypoints: np.ndarray,
    scores: np.ndarray,
    instance_scores: np.ndarray,
    layout: str,
) -> list[dict]:
    """Write :func:`results_to_coco` to ``path`` (atomically) and return the records."""
    records = results_to_coco(image_ids, keypoints, scores, instance_scores, layout)
    atomic_write_json(path, records)
    return records


def format_table(stats: dict[str, dict[str, float]]) -> str:
    """Parts x stats as an aligned text table (values with 3 decimals)."""
    names = list(next(iter(stats.values())).keys()) if stats else []
    width = max([len(p) for p in stats] + [4])
    head = f"{'part':<{width}}  " + "  ".join(f"{n:>9}" for n in names)
    lines = [head, "-" * len(head)]
    for part, row in stats.items():
        vals = "  ".join(f"{row[n]:>9.3f}" if not math.isnan(row[n]) else f"{'nan':>9}" for n in names)
        lines.append(f"{part:<{width}}  {vals}")
    return "\n".join(lines)
