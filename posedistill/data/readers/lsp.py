"""Leeds Sports Pose (LSP) and LSP Extended (LSPet) ``joints.mat`` -> :class:`Instance` records (``lsp`` layout).

Both files hold one person per image, 14 joints in the order right ankle, right knee, right hip, left hip, left
knee, left ankle, right wrist, right elbow, right shoulder, left shoulder, left elbow, left wrist, neck, head top,
in MATLAB's 1-based pixels (1 is subtracted). The two releases differ in shape and flag meaning, told apart by
the shape:

- LSPet (10,000 images ``im00001.jpg``...): ``joints`` is 14 x 3 x N, rows x, y, flag with **1 = visible**,
  0 = occluded.
- LSP (2,000 images ``im0001.jpg``...): ``joints`` is 3 x 14 x N, with the flag the other way round
  (**0 = visible**, 1 = occluded).

Every joint is annotated, so visible joints get visibility 2 and occluded ones 1; occluded joints may lie outside
the image and are kept there. The person box is the joints' extent grown by
:data:`~posedistill.data.readers.common.JOINT_BOX_PADDING` and clipped to the image. Image sizes are read from the
image headers (milliseconds for thousands of files); missing images give (0, 0) and an unclipped box.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from posedistill.data.instance import Instance
from posedistill.data.readers.common import box_from_keypoints, finish_instance, load_mat
from posedistill.data.readers.imagesize import image_size
from posedistill.errors import PoseDataError

NUM_JOINTS = 14


def lsp_joints(mat_file: str | Path) -> tuple[np.ndarray, str]:
    """(N, 14, 3) x, y (1-based, as stored), visible flag (1 visible, 0 occluded) and the release ("lspet" or
    "lsp") from a ``joints.mat``."""
    mat = load_mat(mat_file)
    if "joints" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise PoseDataError(mat_file, f"no variable 'joints' (found {found}); expected LSP/LSPet joints.mat")
    j = np.asarray(mat["joints"])
    if j.ndim == 2:  # a single image saved without the third dimension
        j = j[..., None]
    if j.ndim != 3 or not np.issubdtype(j.dtype, np.number):
        raise PoseDataError(
            mat_file,
            f"'joints' is a {j.ndim}-d {j.dtype} array, expected 14 x 3 x N (LSPet) or 3 x 14 x N (LSP) numbers",
            field="joints",
        )
    if j.shape[:2] == (NUM_JOINTS, 3):
        return np.transpose(j, (2, 0, 1)).astype(np.float64), "lspet"
    if j.shape[:2] == (3, NUM_JOINTS):
        j = np.transpose(j, (2, 1, 0)).astype(np.float64)
        j[..., 2] = 1.0 - j[..., 2]  # LSP's flag is 1 for occluded
        return j, "lsp"
    raise PoseDataError(
        mat_file, f"'joints' has shape {j.shape}, expected 14 x 3 x N (LSPet) or 3 x 14 x N (LSP)", field="joints"
    )


def read_lsp(
    mat_file: str | Path, image_root: str | Path | None = None, indices: Iterable[int] | None = None
) -> list[Instance]:
    """Read LSP / LSPet ``joints.mat`` (see the module docstring).

    Args:
        mat_file: the ``joints.mat`` file.
        image_root: folder of ``im00001.jpg``...; by default ``images/`` next to the .mat file if it exists,
            else the .mat file's folder.
        indices: 1-based image numbers to read (e.g. ``range(1, 1001)`` for LSP's training half); all by default.

    Returns:
        One Instance per image: ``image_id`` = file stem (``"im00001"``), ``instance_id`` 0.
    """
    mat_file = Path(mat_file)
    joints, release = lsp_joints(mat_file)
    n = joints.shape[0]
    if image_root is None:
        image_root = mat_file.parent / "images" if (mat_file.parent / "images").is_dir() else mat_file.parent
    root = Path(image_root)
    digits = 5 if release == "lspet" else 4
    if not (root / f"im{1:0{digits}d}.jpg").exists() and (root / f"im{1:0{9 - digits}d}.jpg").exists():
        digits = 9 - digits  # the other release's naming (4 <-> 5 digits)
    numbers = list(range(1, n + 1)) if indices is None else [int(i) for i in indices]
    out = []
    for num in numbers:
        if not 1 <= num <= n:
            raise PoseDataError(
                mat_file, f"image number {num} is out of range: the file has images 1..{n}", field="indices"
            )
        name = f"im{num:0{digits}d}.jpg"
        rec = f"image {name} (#{num})"
        j = joints[num - 1]
        kp = j[:, :2] - 1.0
        vis = np.where(j[:, 2] > 0.5, 2.0, 1.0)
        path = root / name
        size = image_size(path)
        out.append(
            finish_instance(
                mat_file,
                rec,
                path,
                box_from_keypoints(kp, vis, size),
                kp,
                vis,
                "lsp",
                image_size=size,
                image_id=Path(name).stem,
                instance_id=0,
                extra={"lsp_release": release},
            )
        )
    return out
