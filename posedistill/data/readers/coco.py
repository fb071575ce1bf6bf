"""COCO-format keypoint files -> :class:`Instance` records.

One reader for every dataset that ships COCO-style JSON: COCO-17, COCO-WholeBody-133 (and UBody, which uses its
format), Halpe-136, CrowdPose-14, AI Challenger-14, OCHuman-17, MHP-16, ExLPose-14, PoseTrack18-17, mmpose's
JHMDB json and the synthetic video files. The file is ``{"images": [...], "annotations": [...],
"categories": [...]}``; each annotation has ``image_id``, flat ``keypoints`` ``[x, y, v] * K`` and usually
``bbox`` (x, y, w, h), ``area``, ``iscrowd``, ``num_keypoints``.

Conventions:

- Coordinates are 0-based pixels as in the file, except for layouts whose COCO conversions keep MATLAB's 1-based
  pixels (JHMDB, as mmpose's ``JhmdbDataset`` treats them): there 1 is subtracted from keypoints and box.
- Visibility ``v`` is kept (0 unlabelled, 1 occluded, 2 visible); fractional scores (some COCO-WholeBody hands)
  become 1. Unlabelled keypoints get (0, 0).
- Every annotation becomes an Instance, crowd regions included (``iscrowd=True``, with their ``segmentation`` in
  ``extra``): the evaluator needs them as ignore regions. :func:`training_instances` keeps the trainable ones.
- COCO-WholeBody annotations are stitched into 133 points: body 17 (``keypoints``), ``foot_kpts`` 6,
  ``face_kpts`` 68, ``lefthand_kpts`` 21, ``righthand_kpts`` 21. The ``*_valid`` flags and ``face_box`` /
  ``lefthand_box`` / ``righthand_box`` go to ``extra``. Reading such a file with ``layout="coco"`` takes the body.
- A box comes from ``bbox``; else from ``center`` / ``scale`` (MPII-TRB style, square of side scale x 200); else
  from the labelled keypoints (:data:`~posedistill.data.readers.common.JOINT_BOX_PADDING`).
- Video fields: ``video_id`` (or PoseTrack's ``vid_id``), ``frame_id`` and ``track_id``. With ``video_id``,
  ``frame_id`` is the frame index; PoseTrack and mmpose's JHMDB pack ``<video><4-digit frame>`` into ``frame_id``
  (with ``vid_id``), so the frame index is its last four digits (minus 1 for 1-based JHMDB). An explicit
  ``frame_index`` wins over both.
- ``keypoint_scores`` (K numbers, posedistill's pseudo labels: the teacher's confidence per keypoint) becomes
  ``Instance.keypoint_weights``, which training multiplies into the target weights.
- PoseTrack's ``bbox_head`` (x, y, w, h) becomes ``head_box`` (x1, y1, x2, y2); ``ignore_regions_x/y`` become
  ``extra["ignore_regions"]``, a list of (N, 2) polygons shared by the image's instances.

The layout is found by :func:`detect_coco_layout` unless given.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posedistill.data.instance import Instance
from posedistill.data.readers.common import (
    box_from_keypoints,
    coco_visibility,
    find_image_root,
    finish_instance,
    load_json,
    numbers,
    require,
)
from posedistill.data.readers.imagesize import image_size as read_image_size
from posedistill.errors import PoseDataError
from posedistill.layouts import LAYOUTS, Layout, get_layout

# COCO-WholeBody part fields, in the order they follow the 17 body keypoints.
WHOLEBODY_PARTS: tuple[tuple[str, int], ...] = (
    ("foot_kpts", 6),
    ("face_kpts", 68),
    ("lefthand_kpts", 21),
    ("righthand_kpts", 21),
)
WHOLEBODY_EXTRA_FIELDS = (
    "face_box",
    "lefthand_box",
    "righthand_box",
    "face_valid",
    "lefthand_valid",
    "righthand_valid",
    "foot_valid",
)
# Layouts whose COCO-style conversions carry MATLAB's 1-based pixel coordinates.
ONE_BASED_LAYOUTS = frozenset({"jhmdb"})
# When several layouts describe the same keypoints (same count, names up to aliases, sigmas and flips), the
# first of them in this order is taken unless the file name names another (e.g. "test_ochuman.json").
PREFERRED_LAYOUTS = ("coco", "coco_wholebody", "halpe", "mpii", "crowdpose", "aic", "lsp", "jhmdb", "posetrack18")
# Different spellings of one joint across datasets (after lower-casing and turning spaces and dashes into "_").
_NAME_ALIASES = {"top_head": "head_top", "head": "head_top", "upper_neck": "neck"}


def _norm_name(name: str) -> str:
    n = re.sub(r"[\s\-]+", "_", str(name).strip().lower())
    return _NAME_ALIASES.get(n, n)


def _same_keypoints(a: Layout, b: Layout) -> bool:
    names_a = [_norm_name(n) for n in a.keypoint_names]
    names_b = [_norm_name(n) for n in b.keypoint_names]
    return names_a == names_b and a.sigmas == b.sigmas and a.flip_indices == b.flip_indices


def _keypoint_count(data: dict, path: str | Path) -> int:
    """K from the annotations (COCO-WholeBody parts included); all annotations must agree."""
    counts: dict[int, Any] = {}
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not isinstance(ann.get("keypoints"), list):
            continue  # reported with its record when the annotation is read
        n = len(ann["keypoints"])
        if n % 3:
            raise PoseDataError(
                path,
                f"'keypoints' has {n} numbers, not a multiple of 3 ([x, y, v] per keypoint)",
                record=f"annotation id={ann.get('id')} (#{i})",
                field="keypoints",
            )
        k = n // 3 + sum(len(ann[f]) // 3 for f, _ in WHOLEBODY_PARTS if isinstance(ann.get(f), list))
        counts.setdefault(k, ann.get("id", f"#{i}"))
    if not counts:
        cats = data.get("categories") or []
        names = cats[0].get("keypoints") if cats and isinstance(cats[0], dict) else None
        if names:
            return len(names)
        raise PoseDataError(
            path,
            "no annotation has 'keypoints' and the categories name none: cannot tell the "
            "keypoint layout; pass layout=...",
        )
    if len(counts) > 1:
        detail = ", ".join(f"{k} (annotation id={a})" for k, a in counts.items())
        raise PoseDataError(path, f"annotations disagree on the number of keypoints: {detail}", field="keypoints")
    return next(iter(counts))


def detect_coco_layout(data: dict, path: str | Path = "<json>") -> str:
    """Name of the layout of a parsed COCO-style file.

    1. Candidates: the layouts with the file's keypoint count K (COCO-WholeBody parts count).
    2. If the first category names its keypoints, only candidates whose names agree (case, spaces, dashes and a
       few aliases such as head / top_head / head_top aside) stay; names that match no candidate are an error.
    3. If several stay, a layout named in the file name wins (``test_crowdpose.json`` -> crowdpose; digits in
       layout names are ignored, so ``posetrack_val.json`` -> posetrack18).
    4. If several still stay and the file names no keypoints, 17 points are COCO's.
    5. If several still stay and they describe the same keypoints (names, OKS sigmas, flips), the first in
       :data:`PREFERRED_LAYOUTS` is taken (COCO over OCHuman, MPII over MHP, CrowdPose over ExLPose).
    6. Otherwise the error lists the candidates: pass ``layout=`` explicitly.
    """
    k = _keypoint_count(data, path)
    candidates = [lay for lay in LAYOUTS.values() if lay.num_keypoints == k]
    if not candidates:
        known = ", ".join(f"{n} ({lay.num_keypoints})" for n, lay in sorted(LAYOUTS.items()))
        raise PoseDataError(
            path,
            f"no known layout has {k} keypoints (known: {known}); pass layout=... with a layout of that size",
            field="keypoints",
        )
    cats = data.get("categories") or []
    names = cats[0].get("keypoints") if cats and isinstance(cats[0], dict) else None
    if names and len(names) == k:
        wanted = [_norm_name(n) for n in names]
        named = [lay for lay in candidates if [_norm_name(n) for n in lay.keypoint_names] == wanted]
        if not named:
            raise PoseDataError(
                path,
                f"the category's {k} keypoint names {list(names)} match none of the {k}-keypoint layouts "
                f"({', '.join(lay.name for lay in candidates)}); pass layout=... to read the file anyway",
                field="categories",
            )
        candidates = named
    if len(candidates) > 1:
        stem = Path(str(path)).stem.lower()
        hinted = [lay for lay in candidates if lay.name.rstrip("0123456789") in stem]
        if hinted:
            # The longest name wins ("coco_wholebody" over "coco" in "coco_wholebody_val.json").
            candidates = [max(hinted, key=lambda lay: len(lay.name))]
    if len(candidates) > 1 and not names and any(lay.name == "coco" for lay in candidates):
        candidates = [get_layout("coco")]  # 17 unnamed points: COCO's, by far the most common
    if len(candidates) > 1 and all(_same_keypoints(candidates[0], lay) for lay in candidates[1:]):
        ranked = sorted(
            candidates, key=lambda lay: PREFERRED_LAYOUTS.index(lay.name) if lay.name in PREFERRED_LAYOUTS else 99
        )
        candidates = ranked[:1]
    if len(candidates) > 1:
        raise PoseDataError(
            path,
            f"{k} keypoints fit several layouts ({', '.join(lay.name for lay in candidates)}) and the file's "
            "categories do not tell them apart; pass layout=...",
            field="keypoints",
        )
    return candidates[0].name


def _xywh_to_xyxy(box: np.ndarray) -> np.ndarray:
    return np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]], dtype=np.float32)


def _frame_index(img: dict, one_based: bool) -> int | None:
    if "frame_index" in img:
        return int(img["frame_index"])
    if "frame_id" not in img:
        return None
    if "video_id" in img:
        return int(img["frame_id"])
    if "vid_id" in img:
        return int(img["frame_id"]) % 10000 - int(one_based)
    return None


def _ignore_regions(img: dict) -> list[np.ndarray] | None:
    xs, ys = img.get("ignore_regions_x"), img.get("ignore_regions_y")
    if not xs or not ys:
        return None
    return [np.stack([np.asarray(x, np.float32), np.asarray(y, np.float32)], axis=1) for x, y in zip(xs, ys)]


def coco_instances(
    data: Any,
    path: str | Path,
    image_root: str | Path | None = None,
    layout: str | None = None,
    one_based: bool | None = None,
) -> list[Instance]:
    """Instances from an already parsed COCO-style file (see the module docstring); ``path`` names it in errors
    and locates the images when ``image_root`` is None (:func:`~posedistill.data.readers.common.find_image_root`).
    ``one_based`` overrides the layout's default (True for JHMDB)."""
    if isinstance(data, list):
        first = data[0] if data and isinstance(data[0], dict) else {}
        if "joints" in first:
            hint = "an MPII-style list of records; use read_mpii"
        elif "score" in first and "bbox" in first:
            hint = "a list of detection results; use read_coco_detections"
        else:
            hint = "a JSON list"
        raise PoseDataError(path, f"expected a COCO-style object with 'images' and 'annotations', found {hint}")
    if not isinstance(data, dict):
        raise PoseDataError(path, f"expected a COCO-style JSON object, found {type(data).__name__}")
    for key in ("images", "annotations"):
        if not isinstance(require(data, key, path, "top level", "a COCO keypoint file"), list):
            raise PoseDataError(path, f"{key!r} must be a list", record="top level", field=key)

    images: dict[Any, dict] = {}
    for i, img in enumerate(data["images"]):
        rec = f"image #{i}"
        img_id = require(img, "id", path, rec)
        require(img, "file_name", path, f"image id={img_id}")
        if img_id in images:
            raise PoseDataError(path, f"duplicate image id {img_id!r}", record=rec, field="id")
        images[img_id] = img

    layout = layout or detect_coco_layout(data, path)
    lay = get_layout(layout)
    k = lay.num_keypoints
    if one_based is None:
        one_based = layout in ONE_BASED_LAYOUTS
    shift = 1.0 if one_based else 0.0
    root = (
        Path(image_root)
        if image_root is not None
        else find_image_root(path, (img["file_name"] for img in data["images"]))
    )

    sizes: dict[Any, tuple[int, int]] = {}
    regions: dict[Any, list[np.ndarray] | None] = {}
    out: list[Instance] = []
    for i, ann in enumerate(data["annotations"]):
        rec = f"annotation id={ann.get('id') if isinstance(ann, dict) else None} (#{i})"
        img_id = require(ann, "image_id", path, rec)
        if img_id not in images:
            raise PoseDataError(path, f"image_id {img_id!r} is not in 'images'", record=rec, field="image_id")
        img = images[img_id]
        rec = f"annotation id={ann.get('id')} (#{i}, image {img['file_name']})"
        raw = numbers(require(ann, "keypoints", path, rec, f"[x, y, v] * {k}"), path, rec, "keypoints")
        parts = [raw]
        if k == 133 and raw.size == 17 * 3:  # COCO-WholeBody: body in 'keypoints', the rest in part fields
            for field, n in WHOLEBODY_PARTS:
                parts.append(
                    numbers(require(ann, field, path, rec, f"COCO-WholeBody, {n} x 3 numbers"), path, rec, field, n * 3)
                )
        elif raw.size == 133 * 3 and k == 17 and layout in ("coco", "ochuman"):
            parts = [raw[: 17 * 3]]  # a stitched whole-body file read as its body
        flat = np.concatenate(parts)
        if flat.size != 3 * k:
            raise PoseDataError(
                path,
                f"expected {3 * k} numbers ([x, y, v] x {k} for layout {layout!r}), found {flat.size}",
                record=rec,
                field="keypoints",
            )
        flat = flat.reshape(k, 3)
        vis = coco_visibility(flat[:, 2])
        weights = _keypoint_scores(ann, k, path, rec) if "keypoint_scores" in ann else None
        kp = flat[:, :2] - shift

        size = sizes.get(img_id)
        if size is None:
            w, h = int(img.get("width") or 0), int(img.get("height") or 0)
            size = (w, h) if w > 0 and h > 0 else read_image_size(root / img["file_name"])
            sizes[img_id] = size

        extra: dict[str, Any] = {}
        if "bbox" in ann:
            bbox = numbers(ann["bbox"], path, rec, "bbox", 4).copy()
            bbox[:2] -= shift
        elif "center" in ann and "scale" in ann:
            c = numbers(ann["center"], path, rec, "center", 2) - shift
            s = float(numbers(ann["scale"], path, rec, "scale", 1)[0]) * 200.0
            bbox = np.array([c[0] - s / 2, c[1] - s / 2, s, s])
        else:
            bbox = box_from_keypoints(kp, vis, size)
        if not np.isfinite(bbox).all():
            raise PoseDataError(path, f"bbox {bbox.tolist()} is not finite", record=rec, field="bbox")
        for key in ("center", "scale", "num_keypoints", "num_joints"):
            if key in ann:
                extra[key] = ann[key]
        for key in WHOLEBODY_EXTRA_FIELDS:
            if key in ann:
                extra[key] = np.asarray(ann[key], np.float32) if key.endswith("_box") else bool(ann[key])
        if "crowdIndex" in img:
            extra["crowd_index"] = float(img["crowdIndex"])
        iscrowd = bool(ann.get("iscrowd", 0))
        if iscrowd and "segmentation" in ann:
            extra["segmentation"] = ann["segmentation"]
        if img_id not in regions:
            regions[img_id] = _ignore_regions(img)
        if regions[img_id] is not None:
            extra["ignore_regions"] = regions[img_id]
        if "is_labeled" in img:
            extra["is_labeled"] = bool(img["is_labeled"])

        head_box = None
        if "bbox_head" in ann:
            head_box = _xywh_to_xyxy(numbers(ann["bbox_head"], path, rec, "bbox_head", 4) - [shift, shift, 0, 0])
        area = float(ann["area"]) if ann.get("area") is not None else float(bbox[2] * bbox[3])
        video = img.get("video_id", img.get("vid_id"))
        track = ann.get("track_id")
        if track is not None:
            try:
                track = int(track)
            except (TypeError, ValueError):
                raise PoseDataError(
                    path, f"track_id {track!r} is not an integer", record=rec, field="track_id"
                ) from None
        out.append(
            finish_instance(
                path,
                rec,
                root / img["file_name"],
                bbox,
                kp,
                vis,
                layout,
                image_size=size,
                image_id=img_id,
                instance_id=ann.get("id", i),
                iscrowd=iscrowd,
                area=area,
                head_box=head_box,
                video_id=video,
                frame_index=_frame_index(img, one_based),
                track_id=track,
                keypoint_weights=weights,
                extra=extra,
            )
        )
    return out


def _keypoint_scores(ann: dict, k: int, path: str | Path, rec: str) -> np.ndarray:
    """(K,) float32 per-keypoint weights from an annotation's ``keypoint_scores`` (K numbers in [0, 1], e.g. a
    pseudo-label teacher's confidence); the body's 17 of 133 when a whole-body file is read as COCO-17."""
    scores = numbers(ann["keypoint_scores"], path, rec, "keypoint_scores")
    if scores.size == 133 and k == 17:
        scores = scores[:17]
    if scores.size != k:
        raise PoseDataError(
            path, f"'keypoint_scores' has {scores.size} numbers, expected one per keypoint ({k})",
            record=rec, field="keypoint_scores",
        )  # fmt: skip
    if not np.isfinite(scores).all() or (scores < 0).any():
        raise PoseDataError(
            path, "'keypoint_scores' must be finite and >= 0 (per-keypoint training weights)",
            record=rec, field="keypoint_scores",
        )  # fmt: skip
    return scores.astype(np.float32)


def read_coco(ann_file: str | Path, image_root: str | Path | None = None, layout: str | None = None) -> list[Instance]:
    """Read a COCO-style keypoint file into one :class:`Instance` per annotation (crowd regions included).

    Args:
        ann_file: the JSON file.
        image_root: folder the images' ``file_name`` are relative to; by default the first of the annotation
            file's folder, its ``images/`` subfolder, its parent, ... where the images exist (see
            :func:`~posedistill.data.readers.common.find_image_root`).
        layout: layout name; detected from the keypoint count, the category's keypoint names and the file name
            when None (:func:`detect_coco_layout`).
    """
    return coco_instances(load_json(ann_file), ann_file, image_root=image_root, layout=layout)


def training_instances(instances: Sequence[Instance]) -> list[Instance]:
    """The instances a top-down trainer uses, as mmpose filters them.

    Dropped: crowd regions, instances without a labelled keypoint, and boxes that are empty once clipped to the
    image (mmpose clips x1, y1, x2, y2 to [0, W-1] x [0, H-1]). Kept instances are copies with the clipped box
    when the image size is known; the input list is not changed.
    """
    out = []
    for inst in instances:
        if inst.iscrowd or inst.num_labelled == 0:
            continue
        x, y, w, h = (float(v) for v in inst.bbox)
        img_w, img_h = inst.image_size
        if img_w > 0 and img_h > 0:
            x1, y1 = np.clip(x, 0, img_w - 1), np.clip(y, 0, img_h - 1)
            x2, y2 = np.clip(x + w, 0, img_w - 1), np.clip(y + h, 0, img_h - 1)
            x, y, w, h = x1, y1, x2 - x1, y2 - y1
        if w <= 0 or h <= 0:
            continue
        out.append(dataclasses.replace(inst, bbox=np.array([x, y, w, h], dtype=np.float32)))
    return out
