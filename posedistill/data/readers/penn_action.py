"""Penn Action label files (``labels/0001.mat``) -> one :class:`Instance` per frame (``penn_action`` layout).

Each file describes one clip with one person: ``x``, ``y`` (T x 13), ``visibility`` (T x 13, 1 visible /
0 not), ``bbox`` (T x 4, x1, y1, x2, y2), ``nframes``, ``dimensions`` ([height, width, frames]), ``action``,
``pose`` (the camera view) and ``train`` (1 training / -1 test). Joints: head, left/right shoulder, elbow, wrist,
hip, knee, ankle. The labels were made in MATLAB, so coordinates and boxes are taken as 1-based pixels and get 1
subtracted. Every joint has a position (the annotators placed hidden ones too), so ``visibility`` 1 -> 2 and
0 -> 1 (labelled, occluded; 0 if it has no finite position). Some files carry fewer ``bbox`` rows than frames;
those frames get the box of their joints (:data:`~posedistill.data.readers.common.JOINT_BOX_PADDING`).

Per frame: ``video_id`` = the file stem (``"0001"``), ``frame_index`` t (0-based; the frame file is
``frames/<id>/f"{t + 1:06d}.jpg"``), ``track_id`` 0, ``image_id`` ``"<id>/<frame stem>"``; ``extra`` holds
``action``, ``pose`` and ``train`` (bool).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posedistill.data.instance import Instance
from posedistill.data.readers.common import box_from_keypoints, finish_instance, load_mat
from posedistill.errors import PoseDataError

NUM_JOINTS = 13


def _text(value: Any) -> str:
    arr = np.asarray(value).ravel()
    return str(arr[0]) if arr.size else ""


def read_penn_action(label_mat: str | Path, frames_dir: str | Path | None = None) -> list[Instance]:
    """Read one Penn Action label file (see the module docstring).

    Args:
        label_mat: ``Penn_Action/labels/<id>.mat``.
        frames_dir: folder of the clip's frames; by default ``Penn_Action/frames/<id>/`` (two levels up from the
            label file, then ``frames/<id>``).
    """
    path = Path(label_mat)
    mat = load_mat(path)
    for key in ("x", "y", "visibility"):
        if key not in mat:
            found = sorted(k for k in mat if not k.startswith("__"))
            raise PoseDataError(
                path, f"missing variable {key!r} (found {found}); expected a Penn Action label file", field=key
            )
    x, y, v = (np.asarray(mat[k], dtype=np.float64) for k in ("x", "y", "visibility"))
    if x.ndim != 2 or x.shape[1] != NUM_JOINTS or y.shape != x.shape or v.shape != x.shape:
        raise PoseDataError(
            path,
            f"'x', 'y', 'visibility' have shapes {x.shape}, {y.shape}, {v.shape}; expected T x {NUM_JOINTS} each",
            field="x",
        )
    t_count = x.shape[0]
    if "nframes" in mat and int(np.asarray(mat["nframes"]).ravel()[0]) != t_count:
        raise PoseDataError(
            path,
            f"'nframes' is {int(np.asarray(mat['nframes']).ravel()[0])} but 'x' has {t_count} rows",
            field="nframes",
        )
    boxes = np.asarray(mat.get("bbox", np.zeros((0, 4))), dtype=np.float64).reshape(-1, 4)
    size = (0, 0)
    if "dimensions" in mat:
        dims = np.asarray(mat["dimensions"]).ravel()
        if dims.size >= 2:
            size = (int(dims[1]), int(dims[0]))  # stored as [height, width, frames]
    clip = path.stem
    if frames_dir is None:
        frames_dir = path.parent.parent / "frames" / clip
    frames_dir = Path(frames_dir)
    extra = {
        "action": _text(mat.get("action", "")),
        "pose": _text(mat.get("pose", "")),
        "train": bool(np.asarray(mat["train"]).ravel()[0] == 1) if "train" in mat else None,
    }
    out = []
    for t in range(t_count):
        frame = f"{t + 1:06d}.jpg"
        rec = f"frame {t} ({frame})"
        kp = np.stack([x[t], y[t]], axis=1) - 1.0
        finite = np.isfinite(kp).all(axis=1)
        vis = np.where(v[t] > 0, 2.0, np.where(finite, 1.0, 0.0))  # a hidden joint without a position: unlabelled
        if t < boxes.shape[0]:
            x1, y1, x2, y2 = boxes[t] - 1.0
            bbox = np.array([x1, y1, x2 - x1, y2 - y1])
            if not np.isfinite(bbox).all():
                raise PoseDataError(path, f"bbox {boxes[t].tolist()} is not finite", record=rec, field="bbox")
        else:
            bbox = box_from_keypoints(kp, vis, size)
        out.append(
            finish_instance(
                path,
                rec,
                frames_dir / frame,
                bbox,
                kp,
                vis,
                "penn_action",
                image_size=size,
                image_id=f"{clip}/{frame[:-4]}",
                instance_id=0,
                video_id=clip,
                frame_index=t,
                track_id=0,
                extra=dict(extra),
            )
        )
    return out
