"""The one record every dataset reader produces: one annotated person in one image (or video frame)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from posedistill.errors import PoseDataError
from posedistill.layouts import get_layout

# Visibility convention (COCO's): 0 = not labelled, 1 = labelled but occluded, 2 = labelled and visible.
# Sources with a binary "visible" flag map it onto 1/2 when the joint is still labelled (LSP, MPII), and onto
# 0 when the flag means "not annotated". Training uses ``visibility > 0`` as the target weight.
UNLABELLED, OCCLUDED, VISIBLE = 0, 1, 2


@dataclass
class Instance:
    """One person.

    Coordinates are 0-based image pixels (x right, y down), the COCO / OpenCV convention; readers of
    MATLAB-origin files subtract 1.

    Attributes:
        image_path: absolute or dataset-relative path of the image (or frame) file.
        bbox: (4,) float32 person box, x, y, w, h.
        keypoints: (K, 2) float32 x, y. Unlabelled joints hold 0 (never NaN).
        visibility: (K,) float32 in {0, 1, 2}, see the module constants.
        layout: name of the keypoint layout (``posedistill.layouts``), K must match it.
        image_size: (width, height) of the image, or (0, 0) when the source does not say and it was not read.
        image_id: id of the image within its dataset (COCO ``image_id``; the file stem elsewhere).
        instance_id: annotation id (COCO ``id``) or the index of the person in the image.
        iscrowd: COCO crowd region; never a training sample, handled as an ignore region in evaluation.
        area: segmentation area (COCO), else box area; the OKS scale.
        keypoint_weights: optional (K,) float32 extra per-keypoint weights (e.g. a pseudo-label teacher's
            confidence); ``None`` means 1 wherever visibility > 0.
        head_box: optional (4,) float32 x1, y1, x2, y2 head rectangle (MPII / PoseTrack PCKh).
        video_id, frame_index, track_id: video sources only (``None`` for images).
        extra: source-specific fields kept for writers and evaluation (e.g. COCO-WholeBody face/hand boxes and
            ``*_valid`` flags, the MPII ``center``/``scale``).
    """

    image_path: str
    bbox: np.ndarray
    keypoints: np.ndarray
    visibility: np.ndarray
    layout: str
    image_size: tuple[int, int] = (0, 0)
    image_id: int | str = 0
    instance_id: int | str = 0
    iscrowd: bool = False
    area: float = 0.0
    keypoint_weights: np.ndarray | None = None
    head_box: np.ndarray | None = None
    video_id: int | str | None = None
    frame_index: int | None = None
    track_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_labelled(self) -> int:
        return int((self.visibility > 0).sum())

    def validate(self, source: str | None = None) -> Instance:
        """Check shapes, dtypes and finiteness; raise :class:`PoseDataError` naming the source and record."""
        record = f"image {self.image_id!r} instance {self.instance_id!r}"
        k = get_layout(self.layout).num_keypoints
        src = source or self.image_path
        if self.keypoints.shape != (k, 2):
            raise PoseDataError(
                src, f"keypoints have shape {self.keypoints.shape}, expected ({k}, 2) for layout "
                f"{self.layout!r}", record=record, field="keypoints",
            )  # fmt: skip
        if self.visibility.shape != (k,):
            raise PoseDataError(
                src, f"visibility has shape {self.visibility.shape}, expected ({k},)",
                record=record, field="visibility",
            )  # fmt: skip
        if self.bbox.shape != (4,):
            raise PoseDataError(src, f"bbox has shape {self.bbox.shape}, expected (4,)", record=record, field="bbox")
        if not np.isfinite(self.bbox).all():
            raise PoseDataError(src, f"bbox {self.bbox.tolist()} is not finite", record=record, field="bbox")
        labelled = self.visibility > 0
        if not np.isfinite(self.keypoints[labelled]).all():
            bad = np.nonzero(labelled & ~np.isfinite(self.keypoints).all(1))[0].tolist()
            raise PoseDataError(
                src, f"labelled keypoints {bad} have NaN/inf coordinates", record=record, field="keypoints"
            )
        if self.keypoint_weights is not None and self.keypoint_weights.shape != (k,):
            raise PoseDataError(
                src, f"keypoint_weights have shape {self.keypoint_weights.shape}, expected ({k},)",
                record=record, field="keypoint_weights",
            )  # fmt: skip
        return self

    def target_weights(self) -> np.ndarray:
        """(K,) float32 training weight: (visibility > 0) times the optional per-keypoint weights."""
        w = (self.visibility > 0).astype(np.float32)
        if self.keypoint_weights is not None:
            w = w * self.keypoint_weights.astype(np.float32)
        return w


def make_instance(
    image_path: str,
    bbox: Any,
    keypoints: Any,
    visibility: Any,
    layout: str,
    **kwargs: Any,
) -> Instance:
    """Build an Instance with the canonical dtypes (float32 arrays) and NaN-free unlabelled joints."""
    kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, 2)
    vis = np.asarray(visibility, dtype=np.float32).reshape(-1)
    kp = np.where((vis > 0)[:, None], kp, np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.float32)
    for key in ("keypoint_weights", "head_box"):
        if kwargs.get(key) is not None:
            kwargs[key] = np.asarray(kwargs[key], dtype=np.float32)
    return Instance(
        image_path=str(image_path),
        bbox=np.asarray(bbox, dtype=np.float32).reshape(-1),
        keypoints=kp,
        visibility=vis,
        layout=layout,
        **kwargs,
    )
