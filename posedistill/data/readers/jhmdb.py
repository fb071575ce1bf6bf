"""One JHMDB clip's ``joint_positions.mat`` -> one :class:`Instance` per frame (``jhmdb`` layout).

``pos_img`` is 2 x 15 x T: x, y of 15 joints (neck, belly, head, right shoulder, left shoulder, right hip, left
hip, right elbow, left elbow, right knee, left knee, right wrist, left wrist, right ankle, left ankle) in MATLAB's
1-based pixels; 1 is subtracted. The file has no visibility flags: the puppet model places every joint, so all
are labelled visible (2), except joints outside the frame (x outside [0, W-1] or y outside [0, H-1] after the
shift), which are marked unlabelled (0) because no annotator saw them. The frame size is read from the first
frame's header, or JHMDB's 320 x 240 when the frames are not there.

Per frame: ``video_id`` = the clip's folder name, ``frame_index`` = t (0-based; the frame file is
``f"{t + 1:05d}.png"``), ``track_id`` 0, ``image_id`` = ``"<clip>/<frame file stem>"``, box = the in-frame joints'
extent grown by :data:`~posedistill.data.readers.common.JOINT_BOX_PADDING`, clipped to the frame.
mmpose's COCO-style JHMDB files (``Sub1_train.json``) are read by :func:`~posedistill.data.readers.coco.read_coco`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posedistill.data.instance import Instance
from posedistill.data.readers.common import box_from_keypoints, finish_instance, load_mat
from posedistill.data.readers.imagesize import image_size
from posedistill.errors import PoseDataError

JHMDB_FRAME_SIZE = (320, 240)  # every JHMDB clip is 320 x 240
NUM_JOINTS = 15


def read_jhmdb_clip(clip_dir_or_mat: str | Path, frames_dir: str | Path | None = None) -> list[Instance]:
    """Read one JHMDB clip (see the module docstring).

    Args:
        clip_dir_or_mat: the clip's folder holding ``joint_positions.mat``, or the .mat file itself.
        frames_dir: folder of the frames ``00001.png``...; by default ``frames/`` next to the .mat file if it
            exists, else the .mat file's folder (JHMDB itself keeps them in ``Rename_Images/<action>/<clip>/``:
            pass that folder).
    """
    path = Path(clip_dir_or_mat)
    mat_file = path / "joint_positions.mat" if path.is_dir() else path
    clip_dir = mat_file.parent
    mat = load_mat(mat_file)
    if "pos_img" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise PoseDataError(mat_file, f"no variable 'pos_img' (found {found}); expected a JHMDB joint_positions.mat")
    pos = np.asarray(mat["pos_img"])
    if pos.ndim == 2:
        pos = pos[..., None]
    if pos.ndim != 3 or pos.shape[:2] != (2, NUM_JOINTS) or not np.issubdtype(pos.dtype, np.number):
        raise PoseDataError(
            mat_file,
            f"'pos_img' has shape {pos.shape} ({pos.dtype}), expected 2 x {NUM_JOINTS} x T numbers",
            field="pos_img",
        )
    if frames_dir is None:
        frames_dir = clip_dir / "frames" if (clip_dir / "frames").is_dir() else clip_dir
    frames_dir = Path(frames_dir)
    video = clip_dir.name
    size = image_size(frames_dir / "00001.png")
    if size == (0, 0):
        size = JHMDB_FRAME_SIZE
    w, h = size
    out = []
    for t in range(pos.shape[2]):
        name = f"{t + 1:05d}.png"
        rec = f"frame {t} ({name})"
        kp = pos[:, :, t].T.astype(np.float64) - 1.0
        if not np.isfinite(kp).all():
            bad = np.nonzero(~np.isfinite(kp).all(axis=1))[0].tolist()
            raise PoseDataError(mat_file, f"joints {bad} have NaN/inf coordinates", record=rec, field="pos_img")
        inside = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
        vis = np.where(inside, 2.0, 0.0)
        out.append(
            finish_instance(
                mat_file,
                rec,
                frames_dir / name,
                box_from_keypoints(kp, vis, size),
                kp,
                vis,
                "jhmdb",
                image_size=size,
                image_id=f"{video}/{Path(name).stem}",
                instance_id=0,
                video_id=video,
                frame_index=t,
                track_id=0,
            )
        )
    return out
