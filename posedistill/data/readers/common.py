"""Pieces every reader shares: loading files with errors that name them, COCO-style visibility, boxes from joints,
finding the image folder, and building a checked :class:`Instance`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from posedistill.data.instance import UNLABELLED, Instance, make_instance
from posedistill.errors import PoseDataError

# Boxes derived from joints (LSP, JHMDB, Bonn, Penn Action without a box) are the labelled joints' extent grown
# by this factor about its centre. Joints sit inside the body (head top, ankles and wrists are not the body's
# outline), so the tight extent is smaller than a COCO person box; 1.2 brings it close to one (the JHMDB boxes
# mmpose ships, which come from the puppet masks, are 1.2-1.4x the joint extent). The top-down crop then adds
# its own 1.25 padding, as for COCO boxes.
JOINT_BOX_PADDING = 1.2


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; a syntax error becomes a :class:`PoseDataError` with the line and column."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise PoseDataError(path, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise PoseDataError(path, f"not a UTF-8 text file ({e.reason} at byte {e.start})") from None


def load_mat(path: str | Path, **kwargs: Any) -> dict[str, Any]:
    """``scipy.io.loadmat`` with unreadable files (truncated, not MATLAB, v7.3/HDF5) as :class:`PoseDataError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return scipy.io.loadmat(path, **kwargs)
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise PoseDataError(path, f"unsupported MATLAB file: {e}") from None
    except Exception as e:  # scipy raises many types (MatReadError, OSError, ValueError, zlib.error) on bad files
        raise PoseDataError(path, f"cannot read the MATLAB file ({type(e).__name__}: {e})") from None


def mat_variables(path: str | Path) -> list[str]:
    """Names of the variables in a .mat file, read from its header only (cheap for large files)."""
    try:
        return [name for name, _, _ in scipy.io.whosmat(path)]
    except NotImplementedError as e:
        raise PoseDataError(path, f"unsupported MATLAB file: {e}") from None
    except FileNotFoundError:
        raise
    except Exception as e:
        raise PoseDataError(path, f"cannot read the MATLAB file ({type(e).__name__}: {e})") from None


def require(entry: Mapping[str, Any], key: str, path: str | Path, record: str, expected: str = "") -> Any:
    """``entry[key]``, or a :class:`PoseDataError` naming the file, the record and the missing field."""
    if not isinstance(entry, Mapping):
        raise PoseDataError(path, f"expected a JSON object, found {type(entry).__name__}", record=record)
    if key not in entry:
        what = f"missing required field {key!r}" + (f" ({expected})" if expected else "")
        raise PoseDataError(path, what, record=record, field=key)
    return entry[key]


def numbers(value: Any, path: str | Path, record: str, field: str, length: int | None = None) -> np.ndarray:
    """A flat float64 array from a JSON list of numbers, checking its length when given."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise PoseDataError(
            path, f"expected a list of numbers, found {str(value)[:80]}", record=record, field=field
        ) from None
    if length is not None and arr.size != length:
        raise PoseDataError(path, f"expected {length} numbers, found {arr.size}", record=record, field=field)
    return arr


def coco_visibility(v: np.ndarray) -> np.ndarray:
    """COCO ``v`` -> {0, 1, 2}: integers 0/1/2 are kept; v >= 2 is visible; other positive values (the confidence
    scores some COCO-WholeBody hands carry instead of a flag) count as labelled (1); v <= 0 is unlabelled."""
    v = np.nan_to_num(np.asarray(v, dtype=np.float64), nan=0.0)
    return np.where(v >= 2, 2.0, np.where(v > 0, 1.0, 0.0)).astype(np.float32)


def check_keypoints(kp: np.ndarray, vis: np.ndarray, path: str | Path, record: str) -> None:
    """Labelled keypoints must have finite coordinates."""
    bad = np.nonzero((vis > 0) & ~np.isfinite(kp).all(axis=1))[0]
    if bad.size:
        raise PoseDataError(
            path,
            f"labelled keypoints {bad.tolist()} have NaN/inf coordinates "
            f"({kp[bad[0]].tolist()} for keypoint {int(bad[0])})",
            record=record,
            field="keypoints",
        )


def clip_box(bbox: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Clip an x, y, w, h box to [0, W] x [0, H]; unchanged when the size is unknown or the result would be empty."""
    w_img, h_img = image_size
    if w_img <= 0 or h_img <= 0:
        return bbox
    x1, y1 = np.clip(bbox[0], 0, w_img), np.clip(bbox[1], 0, h_img)
    x2, y2 = np.clip(bbox[0] + bbox[2], 0, w_img), np.clip(bbox[1] + bbox[3], 0, h_img)
    if x2 <= x1 or y2 <= y1:
        return bbox
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def box_from_points(
    points: np.ndarray, image_size: tuple[int, int] = (0, 0), padding: float = JOINT_BOX_PADDING
) -> np.ndarray:
    """(4,) x, y, w, h: the extent of ``points`` (N, 2) grown by ``padding`` about its centre, clipped to the
    image when its size is known. No points gives an all-zero box (training drops it)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    points = points[np.isfinite(points).all(axis=1)]
    if points.shape[0] == 0:
        return np.zeros(4)
    lo, hi = points.min(axis=0), points.max(axis=0)
    center, size = (lo + hi) / 2, (hi - lo) * padding
    return clip_box(np.concatenate([center - size / 2, size]), image_size)


def box_from_keypoints(
    kp: np.ndarray, vis: np.ndarray, image_size: tuple[int, int] = (0, 0), padding: float = JOINT_BOX_PADDING
) -> np.ndarray:
    """Box around the labelled keypoints (see :func:`box_from_points`)."""
    return box_from_points(kp[vis > 0], image_size, padding)


def find_image_root(ann_path: str | Path, file_names: Iterable[str]) -> Path:
    """Folder that the annotation's image paths are relative to, when the caller gives none.

    Tried in order, for the annotation file's folder, its parent and its grandparent: the folder itself, its
    ``images/`` subfolder, and a subfolder named after the file's last ``_`` token (COCO's
    ``annotations/person_keypoints_val2017.json`` -> ``val2017/``). The first folder in which one of the first
    few images exists wins; if none does, the annotation file's own folder.
    """
    ann_path = Path(ann_path).resolve()
    names = [n for _, n in zip(range(5), file_names)]
    split = ann_path.stem.rsplit("_", 1)[-1]
    folders = [ann_path.parent, *list(ann_path.parents)[1:3]]
    for folder in folders:
        for cand in (folder, folder / "images", folder / split):
            if any((cand / n).is_file() for n in names):
                return cand
    return ann_path.parent


def finish_instance(
    path: str | Path,
    record: str,
    image_path: str | Path,
    bbox: Any,
    keypoints: np.ndarray,
    visibility: np.ndarray,
    layout: str,
    **kwargs: Any,
) -> Instance:
    """Check the labelled coordinates, zero the unlabelled ones and build a validated :class:`Instance`
    (``area`` defaults to the box area)."""
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visibility, dtype=np.float32).reshape(-1)
    if kp.shape[0] == vis.shape[0]:
        check_keypoints(kp, vis, path, record)
        kp = np.where((vis > UNLABELLED)[:, None], kp, 0.0)
    bbox = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if "area" not in kwargs and bbox.shape == (4,):
        kwargs["area"] = float(bbox[2] * bbox[3])
    inst = make_instance(image_path, bbox, kp, vis, layout, **kwargs)
    return inst.validate(source=str(path))
