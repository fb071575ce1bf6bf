"""Bonn multi-person PoseTrack (Iqbal et al., CVPR 2017) ``annolist_*.mat`` -> :class:`Instance` records.

Loaded as ``loadmat(path, struct_as_record=False, squeeze_me=True)["annolist"]``, the file has one entry per
video with ``name`` (e.g. ``"060470979"``), ``num_frames``, ``num_persons`` and ``annopoints``, a persons x
frames array. Each cell is either empty (the person is not in that frame) or a struct with ``head_rect``
(x1, y1, x2, y2) and ``point``, a list of ``x, y, id, is_visible`` (and ``is_truncated``) with MPII joint ids
(0 r_ankle, 1 r_knee, 2 r_hip, 3 l_hip, 4 l_knee, 5 l_ankle, 8 upper neck, 9 head top, 10 r_wrist, 11 r_elbow,
12 r_shoulder, 13 l_shoulder, 14 l_elbow, 15 l_wrist; pelvis 6 and thorax 7 are never annotated).

Instances use the ``mpii`` layout: joint ``id`` goes to keypoint ``id``; ``is_visible`` 1 -> visibility 2,
0 -> 1 (annotated but occluded); absent ids -> 0. Coordinates and head rectangles are 1-based (MATLAB) and get
1 subtracted. ``track_id`` is the person's row in ``annopoints`` (the file has no other track id), ``video_id``
the video name, ``frame_index`` the 0-based column, the frame file ``f"{t + 1:05d}.jpg"``. The box is the extent
of the labelled joints and the head rectangle, grown by
:data:`~posedistill.data.readers.common.JOINT_BOX_PADDING` and clipped to the frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posedistill.data.instance import Instance
from posedistill.data.readers.common import box_from_points, finish_instance, load_mat
from posedistill.data.readers.imagesize import image_size
from posedistill.errors import PoseDataError
from posedistill.layouts import get_layout


def _as_list(value: Any) -> list:
    """squeeze_me turns one-element MATLAB arrays into scalars: always give a list."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _scalar(value: Any, default: float) -> float:
    arr = np.asarray(value, dtype=np.float64).ravel()
    return float(arr[0]) if arr.size else default


def _grid(entry: Any, path: Path, rec: str) -> np.ndarray:
    """``annopoints`` as a (persons, frames) object array, whatever squeeze_me did to it."""
    ap = entry.annopoints
    p, t = int(_scalar(entry.num_persons, 0)), int(_scalar(entry.num_frames, 0))
    cells = np.asarray(ap, dtype=object) if isinstance(ap, np.ndarray) else np.array([ap], dtype=object)
    if cells.size == 0 and p * t == 0:
        return np.empty((p, t), dtype=object)
    if cells.ndim == 2 and cells.shape == (p, t):
        return cells
    if cells.size != p * t:
        raise PoseDataError(
            path,
            f"'annopoints' has {cells.size} cells, expected num_persons x num_frames = {p} x {t}",
            record=rec,
            field="annopoints",
        )
    return cells.reshape(p, t)


def bonn_videos(annolist_mat: str | Path) -> list[str]:
    """Names of the videos in an annolist file."""
    return [str(e.name) for e in _load(Path(annolist_mat))]


def _load(path: Path) -> list:
    mat = load_mat(path, struct_as_record=False, squeeze_me=True)
    if "annolist" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise PoseDataError(path, f"no variable 'annolist' (found {found}); expected a Bonn PoseTrack annolist .mat")
    entries = _as_list(mat["annolist"])
    for i, e in enumerate(entries):
        missing = [f for f in ("name", "annopoints", "num_frames", "num_persons") if not hasattr(e, f)]
        if missing:
            raise PoseDataError(
                path,
                f"missing fields {missing} (expected a per-video struct with name, num_frames, "
                "num_persons, annopoints)",
                record=f"annolist entry #{i}",
            )
    return entries


def read_bonn_posetrack(
    annolist_mat: str | Path, video: str | None = None, image_root: str | Path | None = None
) -> list[Instance]:
    """Read the Bonn PoseTrack ground truth (see the module docstring).

    Args:
        annolist_mat: ``annolist_test.mat`` (or the train file).
        video: name of one video (``"060470979"``); all videos when None.
        image_root: folder of the frames. By default ``frames/`` next to the .mat file if it exists, else the
            .mat file's folder. A video's frames are in ``image_root/<video name>/`` if that folder exists;
            otherwise directly in ``image_root`` when only one video is read or the .mat file's folder is named
            after the video (``bonn_060470979/``, one extracted video); otherwise ``image_root/<video name>/``.

    Returns:
        One Instance per (person, frame) cell that is annotated, ordered by video, frame, person.
    """
    path = Path(annolist_mat)
    entries = _load(path)
    if video is not None:
        chosen = [e for e in entries if str(e.name) == str(video)]
        if not chosen:
            names = [str(e.name) for e in entries]
            raise PoseDataError(path, f"no video named {video!r}; the file has {len(names)}: {', '.join(names[:40])}")
        entries = chosen
    if image_root is None:
        image_root = path.parent / "frames" if (path.parent / "frames").is_dir() else path.parent
    root = Path(image_root)
    k = get_layout("mpii").num_keypoints
    out = []
    for entry in entries:
        name = str(entry.name)
        grid = _grid(entry, path, f"video {name}")
        own_folder = len(entries) == 1 or path.parent.name.endswith(name)
        frames_dir = root if own_folder and not (root / name).is_dir() else root / name
        size = image_size(frames_dir / "00001.jpg")
        for t in range(grid.shape[1]):
            frame = f"{t + 1:05d}.jpg"
            for p in range(grid.shape[0]):
                cell = grid[p, t]
                if not hasattr(cell, "point"):
                    continue  # empty cell: the person is not in this frame
                rec = f"video {name} frame {t} ({frame}) person {p}"
                kp = np.zeros((k, 2))
                vis = np.zeros(k)
                for q in _as_list(cell.point):
                    if not all(hasattr(q, f) for f in ("x", "y", "id")):
                        raise PoseDataError(path, "a point lacks x, y or id", record=rec, field="point")
                    j = int(_scalar(q.id, -1))
                    if not 0 <= j < k:
                        raise PoseDataError(
                            path, f"joint id {j} outside 0..{k - 1} (MPII ids)", record=rec, field="point.id"
                        )
                    kp[j] = (_scalar(q.x, np.nan) - 1.0, _scalar(q.y, np.nan) - 1.0)
                    vis[j] = 2.0 if _scalar(getattr(q, "is_visible", 1), 1.0) > 0 else 1.0
                head = np.asarray(getattr(cell, "head_rect", []), dtype=np.float64).ravel()
                head_box = head - 1.0 if head.size == 4 and np.isfinite(head).all() else None
                corners = head_box.reshape(2, 2) if head_box is not None else np.empty((0, 2))
                # Non-finite labelled joints are reported by finish_instance; keep them out of the box here.
                box = box_from_points(np.concatenate([kp[vis > 0], corners]), size)
                out.append(
                    finish_instance(
                        path,
                        rec,
                        frames_dir / frame,
                        box,
                        kp,
                        vis,
                        "mpii",
                        image_size=size,
                        image_id=f"{name}/{frame[:-4]}",
                        instance_id=p,
                        head_box=head_box,
                        video_id=name,
                        frame_index=t,
                        track_id=p,
                    )
                )
    return out
