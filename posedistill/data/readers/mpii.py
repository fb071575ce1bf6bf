"""MPII Human Pose, in the JSON form mmpose and HRNet use -> :class:`Instance` records (``mpii`` layout).

The file is a list of records ``{"image": "005808361.jpg", "joints": [[x, y]] * 16, "joints_vis": [0/1] * 16,
"center": [x, y], "scale": s}``. MPII's annotations are MATLAB-made, so ``joints`` and ``center`` are 1-based
pixels: 1 is subtracted from both (HRNet and mmpose 0.x do the same for the joints; mmpose 1.x shifts only the
centre and compensates in its PCKh metric). ``joints_vis`` says whether the joint is annotated (missing joints
hold -1, -1), not whether it is occluded, so annotated joints get visibility 2 and missing ones 0.

The person box is mmpose's: ``scale`` x 200 px is the person's height, the centre is moved down by 15 / 200 of it
(``center[1] += 0.075 * size``, "to avoid cropping limbs") before the 1-based shift, and the box is the square of
that side around it. The raw ``center`` and ``scale`` are kept in ``extra``.

Head boxes (for PCKh) are not in the JSON: pass the ground-truth ``gt_valid.mat`` as ``headbox_file``; its
``headboxes_src`` (2 x 2 x N, rows = top-left / bottom-right corners, 1-based) must list the records in order and
becomes ``head_box`` (x1, y1, x2, y2, 0-based).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posedistill.data.instance import VISIBLE, Instance
from posedistill.data.readers.common import (
    find_image_root,
    finish_instance,
    load_json,
    load_mat,
    numbers,
    require,
)
from posedistill.data.readers.imagesize import image_size
from posedistill.errors import PoseDataError
from posedistill.layouts import get_layout

PIXEL_STD = 200.0  # MPII's scale unit: scale x 200 px = person height
CENTER_SHIFT = 15.0  # mmpose moves the centre down by 15 / 200 of the person size


def _headboxes(headbox_file: str | Path, count: int) -> np.ndarray:
    """(N, 4) x1, y1, x2, y2 (0-based) from ``headboxes_src`` (2, 2, N)."""
    mat = load_mat(headbox_file)
    if "headboxes_src" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise PoseDataError(headbox_file, f"no variable 'headboxes_src' (found {found}); expected MPII's gt_valid.mat")
    boxes = np.asarray(mat["headboxes_src"], dtype=np.float64)
    if boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
        raise PoseDataError(
            headbox_file, f"'headboxes_src' has shape {boxes.shape}, expected (2, 2, N)", field="headboxes_src"
        )
    if boxes.shape[2] != count:
        raise PoseDataError(
            headbox_file,
            f"'headboxes_src' has {boxes.shape[2]} boxes but the JSON has {count} "
            "records; they must correspond one to one",
            field="headboxes_src",
        )
    return np.transpose(boxes, (2, 0, 1)).reshape(count, 4) - 1.0


def mpii_instances(
    records: object,
    path: str | Path,
    image_root: str | Path | None = None,
    headbox_file: str | Path | None = None,
) -> list[Instance]:
    """Instances from an already parsed MPII JSON list (see the module docstring)."""
    if not isinstance(records, list):
        raise PoseDataError(path, f"expected a list of MPII records, found a JSON {type(records).__name__}")
    k = get_layout("mpii").num_keypoints
    root = (
        Path(image_root)
        if image_root is not None
        else find_image_root(path, (r.get("image", "") for r in records if isinstance(r, dict)))
    )
    heads = _headboxes(headbox_file, len(records)) if headbox_file is not None else None
    sizes: dict[str, tuple[int, int]] = {}
    per_image: dict[str, int] = {}
    out = []
    for i, r in enumerate(records):
        rec = f"record #{i}"
        name = require(r, "image", path, rec, "image file name")
        rec = f"record #{i} (image {name})"
        joints = numbers(require(r, "joints", path, rec, f"{k} x [x, y]"), path, rec, "joints", 2 * k).reshape(k, 2)
        flags = numbers(require(r, "joints_vis", path, rec, f"{k} flags"), path, rec, "joints_vis", k)
        center = numbers(require(r, "center", path, rec, "[x, y]"), path, rec, "center", 2)
        scale = float(numbers(require(r, "scale", path, rec, "person height / 200"), path, rec, "scale", 1)[0])

        vis = np.where(flags > 0, float(VISIBLE), 0.0)
        kp = joints - 1.0
        size = scale * PIXEL_STD
        c = center.copy()
        if c[0] != -1:
            c[1] += CENTER_SHIFT / PIXEL_STD * size
        c -= 1.0
        bbox = np.array([c[0] - size / 2, c[1] - size / 2, size, size])
        if name not in sizes:
            sizes[name] = image_size(root / name)
        stem = Path(name).stem
        person = per_image.get(name, 0)
        per_image[name] = person + 1
        out.append(
            finish_instance(
                path,
                rec,
                root / name,
                bbox,
                kp,
                vis,
                "mpii",
                image_size=sizes[name],
                image_id=int(stem) if stem.isdigit() else stem,
                instance_id=person,
                area=float(size * size),
                head_box=None if heads is None else heads[i],
                extra={"center": center.tolist(), "scale": scale, "record_index": i},
            )
        )
    return out


def read_mpii(
    json_file: str | Path, image_root: str | Path | None = None, headbox_file: str | Path | None = None
) -> list[Instance]:
    """Read an mmpose/HRNet-style MPII JSON file (see the module docstring).

    Args:
        json_file: ``mpii_train.json`` / ``mpii_val.json`` (a list of records).
        image_root: folder of the images; by default the JSON's folder or its ``images/`` subfolder (wherever
            the images are, see :func:`~posedistill.data.readers.common.find_image_root`).
        headbox_file: optional ``gt_valid.mat`` with ``headboxes_src`` for PCKh head boxes.
    """
    return mpii_instances(load_json(json_file), json_file, image_root=image_root, headbox_file=headbox_file)
