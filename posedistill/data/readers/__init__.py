"""Dataset readers: annotation files -> lists of :class:`~posedistill.data.instance.Instance` records.

One module per format, each a plain function (numpy / scipy / json / OpenCV only, no torch):

========================  ===============================================================  =====================
function                  reads                                                            layout
========================  ===============================================================  =====================
``read_coco``             COCO-style JSON: COCO, COCO-WholeBody, UBody, Halpe, CrowdPose,  detected / given
                          AIC, OCHuman, MHP, ExLPose, mmpose's JHMDB, synthetic video
``read_posetrack18``      PoseTrack18 JSON (labelled frames, tracks, ignore regions)        posetrack18
``read_mpii``             mmpose/HRNet MPII JSON list (+ optional ``gt_valid.mat`` heads)   mpii
``read_lsp``              LSP / LSPet ``joints.mat``                                        lsp
``read_jhmdb_clip``       JHMDB ``joint_positions.mat`` (one clip)                          jhmdb
``read_bonn_posetrack``   Bonn PoseTrack ``annolist_*.mat``                                 mpii
``read_penn_action``      Penn Action ``labels/<id>.mat`` (one clip)                        penn_action
``read_coco_detections``  COCO detection results (boxes per image, not Instances)          -
========================  ===============================================================  =====================

:func:`read_dataset` picks the reader from ``format`` or from the file itself; :func:`training_instances` keeps
what a top-down trainer uses (no crowd, at least one labelled joint, a non-empty box). All coordinates come out
0-based (MATLAB-made files have 1 subtracted); visibility is 0 unlabelled / 1 occluded / 2 visible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posedistill.data.instance import Instance
from posedistill.data.readers.bonn import read_bonn_posetrack
from posedistill.data.readers.coco import coco_instances, detect_coco_layout, read_coco, training_instances
from posedistill.data.readers.common import load_json, mat_variables
from posedistill.data.readers.detections import read_coco_detections
from posedistill.data.readers.jhmdb import read_jhmdb_clip
from posedistill.data.readers.lsp import read_lsp
from posedistill.data.readers.mpii import mpii_instances, read_mpii
from posedistill.data.readers.penn_action import read_penn_action
from posedistill.data.readers.posetrack import posetrack_instances, read_posetrack18
from posedistill.errors import PoseDataError

__all__ = [
    "FORMATS",
    "detect_coco_layout",
    "detect_format",
    "read_bonn_posetrack",
    "read_coco",
    "read_coco_detections",
    "read_dataset",
    "read_jhmdb_clip",
    "read_lsp",
    "read_mpii",
    "read_penn_action",
    "read_posetrack18",
    "training_instances",
]

# format name -> the layout it always produces (None: detected or given)
FORMATS: dict[str, str | None] = {
    "coco": None,
    "posetrack18": "posetrack18",
    "mpii": "mpii",
    "lsp": "lsp",
    "jhmdb": "jhmdb",
    "bonn": "mpii",
    "penn_action": "penn_action",
}


def _is_posetrack(data: object) -> bool:
    """PoseTrack files carry per-frame ignore regions or head boxes next to ``vid_id``."""
    if not isinstance(data, dict):
        return False
    images = data.get("images") or []
    anns = data.get("annotations") or []
    video = any(isinstance(im, dict) and "vid_id" in im for im in images[:50])
    marks = any(isinstance(im, dict) and "ignore_regions_x" in im for im in images[:50]) or any(
        isinstance(a, dict) and "bbox_head" in a for a in anns[:50]
    )
    return video and marks


def detect_format(path: str | Path) -> str:
    """The reader format of a file or folder, from its extension and content (variable names for .mat files,
    structure for JSON). Folders: a JHMDB clip (``joint_positions.mat``), an LSP folder (``joints.mat``) or a
    Bonn folder (one ``annolist*.mat``)."""
    path = Path(path)
    if path.is_dir():
        if (path / "joint_positions.mat").is_file():
            return "jhmdb"
        if (path / "joints.mat").is_file():
            return "lsp"
        if len(list(path.glob("annolist*.mat"))) == 1:
            return "bonn"
        raise PoseDataError(
            path,
            "cannot tell the dataset format of this folder (expected joint_positions.mat, "
            "joints.mat or one annolist*.mat); pass an annotation file or format=...",
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = load_json(path)
        if isinstance(data, list) and data and isinstance(data[0], dict) and "joints" in data[0]:
            return "mpii"
        return "posetrack18" if _is_posetrack(data) else "coco"
    if suffix == ".mat":
        names = set(mat_variables(path))
        if "pos_img" in names:
            return "jhmdb"
        if "joints" in names:
            return "lsp"
        if "annolist" in names:
            return "bonn"
        if {"x", "y", "visibility"} <= names:
            return "penn_action"
        raise PoseDataError(
            path,
            f"cannot tell the dataset format from the variables {sorted(names)} (expected "
            "pos_img, joints, annolist or x/y/visibility); pass format=...",
        )
    raise PoseDataError(
        path,
        f"cannot tell the dataset format of a {suffix or 'suffix-less'} file; expected .json or "
        ".mat, or pass format=...",
    )


def read_dataset(
    path: str | Path,
    *,
    format: str | None = None,
    layout: str | None = None,
    image_root: str | Path | None = None,
    **options: Any,
) -> list[Instance]:
    """Read any supported annotation file (or JHMDB / LSP / Bonn folder) into Instances.

    Args:
        path: annotation file or folder.
        format: one of :data:`FORMATS`; detected by :func:`detect_format` when None.
        layout: for COCO-style files, the layout to read (detected when None); for the other formats it must be
            None or the layout the format produces.
        image_root: folder the image paths are relative to (the frames folder for JHMDB and Penn Action); each
            reader's default otherwise.
        **options: passed to the reader: ``headbox_file`` (mpii), ``indices`` (lsp), ``video`` (bonn).
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown dataset format {format!r}; known: {', '.join(FORMATS)}")
    data = None
    if format is None:
        if path.suffix.lower() == ".json" and path.is_file():
            data = load_json(path)  # parse once, for detection and reading
            is_mpii = isinstance(data, list) and data and isinstance(data[0], dict) and "joints" in data[0]
            format = "mpii" if is_mpii else "posetrack18" if _is_posetrack(data) else "coco"
        else:
            format = detect_format(path)
    fixed = FORMATS[format]
    if fixed is not None and layout is not None and layout != fixed and format != "posetrack18":
        raise PoseDataError(path, f"format {format!r} always gives layout {fixed!r}, not {layout!r}")
    if format in ("coco", "posetrack18"):
        data = load_json(path) if data is None else data
        if format == "coco":
            return coco_instances(data, path, image_root=image_root, layout=layout, **options)
        return posetrack_instances(data, path, image_root=image_root, layout=layout or "posetrack18", **options)
    if format == "mpii":
        return mpii_instances(load_json(path) if data is None else data, path, image_root=image_root, **options)
    if format == "lsp":
        return read_lsp(path / "joints.mat" if path.is_dir() else path, image_root=image_root, **options)
    if format == "jhmdb":
        return read_jhmdb_clip(path, frames_dir=image_root, **options)
    if format == "bonn":
        if path.is_dir():
            path = next(path.glob("annolist*.mat"))
        return read_bonn_posetrack(path, image_root=image_root, **options)
    return read_penn_action(path, frames_dir=image_root, **options)
