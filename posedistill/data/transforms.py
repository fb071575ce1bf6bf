"""Top-down geometry: box -> (centre, scale), the affine crop into the model input, and the way back.

Conventions follow MMPose 1.3.2 (``mmpose/structures/bbox/transforms.py`` and ``TopdownAffine``), so crops and
decoded keypoints match it bit for bit where the maths allows:

- ``center`` (2,) is the box centre (x, y) in image pixels; ``scale`` (2,) is the padded box size (w, h) in image
  pixels (not MMPose 0.x's "scale × 200").
- ``output_size`` / ``input_size`` is always (w, h), like OpenCV.
- The plain warp maps ``center`` to (w/2, h/2) and uses only ``scale[0]`` (the width): ``scale`` must have the
  model's aspect ratio (``fix_aspect_ratio``) for x and y to share a zoom. Rotation ``rot`` is in degrees.
- UDP (unbiased data processing) maps ``center`` to ((w-1)/2, (h-1)/2) with per-axis zoom (w-1)/scale_w.
  As in MMPose, its rotation turns the other way from the plain warp's; both are handled by the inverses here.

NumPy and OpenCV only: the torch-free runtime uses the same functions to map decoded keypoints back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

ArrayLike = np.ndarray | tuple | list


def bbox_xywh_to_cs(bbox: ArrayLike, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Box(es) (..., 4) as x, y, w, h -> centre (..., 2) and scale (..., 2) = (w, h) · padding."""
    bbox = np.asarray(bbox, dtype=np.float32)
    xy, wh = bbox[..., :2], bbox[..., 2:4]
    return xy + wh * 0.5, wh * padding


def bbox_xyxy_to_cs(bbox: ArrayLike, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Box(es) (..., 4) as x1, y1, x2, y2 -> centre (..., 2) and scale (..., 2) = (x2 - x1, y2 - y1) · padding."""
    bbox = np.asarray(bbox, dtype=np.float32)
    p1, p2 = bbox[..., :2], bbox[..., 2:4]
    return (p1 + p2) * 0.5, (p2 - p1) * padding


def bbox_cs_to_xyxy(center: ArrayLike, scale: ArrayLike, padding: float = 1.0) -> np.ndarray:
    """Inverse of ``bbox_xyxy_to_cs``: (..., 2) centre and scale -> (..., 4) x1, y1, x2, y2 (scale / padding)."""
    center = np.asarray(center, dtype=np.float32)
    wh = np.asarray(scale, dtype=np.float32) / padding
    return np.concatenate([center - wh * 0.5, center + wh * 0.5], axis=-1)


def fix_aspect_ratio(scale: ArrayLike, aspect_ratio: float) -> np.ndarray:
    """Grow the short side of scale(s) (..., 2) = (w, h) so that w / h == aspect_ratio (MMPose's rule).

    ``w > h · ratio`` keeps w and sets h = w / ratio; otherwise keeps h and sets w = h · ratio.
    """
    scale = np.asarray(scale, dtype=np.float32)
    w, h = scale[..., :1], scale[..., 1:2]
    return np.where(w > h * aspect_ratio, np.concatenate([w, w / aspect_ratio], -1),
                    np.concatenate([h * aspect_ratio, h], -1)).astype(np.float32)  # fmt: skip


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The point that makes (a, b, c) a right angle at b: a - b turned 90° anticlockwise, added to b."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=d.dtype)


def get_warp_matrix(
    center: ArrayLike,
    scale: ArrayLike,
    rot: float,
    output_size: tuple[int, int],
    shift: tuple[float, float] = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """(2, 3) float64 affine matrix taking the box (centre, scale, rotated by ``rot``°) onto the output (w, h).

    MMPose's three-point construction: the centre goes to the output centre, the point half a box width above
    the centre (turned by ``rot``) goes to half an output width above it, and a third point completes the right
    angle. ``shift`` moves the source centre by ``shift · scale``. ``inv=True`` gives the output -> image map.
    The points are float32 as in MMPose, so the matrix matches its values exactly.
    """
    center = np.asarray(center, dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    src_w = float(scale[0])
    dst_w, dst_h = float(output_size[0]), float(output_size[1])
    r = math.radians(rot)
    sn, cs = math.sin(r), math.cos(r)
    # (0, -src_w/2) rotated by rot: (sin·src_w/2, -cos·src_w/2)
    src_dir = np.array([src_w * 0.5 * sn, -src_w * 0.5 * cs])
    src = np.zeros((3, 2), dtype=np.float32)
    offset = scale * np.asarray(shift, dtype=np.float64)
    src[0] = center + offset
    src[1] = center + src_dir + offset
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = (dst_w * 0.5, dst_h * 0.5)
    dst[1] = (dst_w * 0.5, dst_h * 0.5 - dst_w * 0.5)
    dst[2] = _third_point(dst[0], dst[1])
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


def get_udp_warp_matrix(center: ArrayLike, scale: ArrayLike, rot: float, output_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) float32 UDP matrix: image -> output with zoom (size - 1) / scale per axis (MMPose's formula).

    p_out = diag(sx, sy) · R(rot) · (p - center) + (size - 1) / 2 with R(a) = [[cos a, -sin a], [sin a, cos a]].
    """
    cx, cy = (float(v) for v in center)
    sw, sh = (float(v) for v in scale)
    r = math.radians(rot)
    sn, cs = math.sin(r), math.cos(r)
    sx = (output_size[0] - 1) / sw
    sy = (output_size[1] - 1) / sh
    m = np.zeros((2, 3), dtype=np.float32)
    m[0] = (cs * sx, -sn * sx, sx * (-cx * cs + cy * sn + 0.5 * sw))
    m[1] = (sn * sy, cs * sy, sy * (-cx * sn - cy * cs + 0.5 * sh))
    return m


def warp_matrix(
    center: ArrayLike, scale: ArrayLike, rot: float, output_size: tuple[int, int], udp: bool = False
) -> np.ndarray:
    """The image -> crop matrix of either convention."""
    if udp:
        return get_udp_warp_matrix(center, scale, rot, output_size)
    return get_warp_matrix(center, scale, rot, output_size)


def warp_image(
    img: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int], border_value: float = 0
) -> np.ndarray:
    """Affine-warp ``img`` (H, W[, C]) into an (h, w[, C]) crop: bilinear, constant border (MMPose's warp)."""
    return cv2.warpAffine(
        img, matrix, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=border_value,
    )  # fmt: skip


def warp_points(points: ArrayLike, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points (..., 2).

    float32 points go through ``cv2.transform`` as in MMPose's ``TopdownAffine`` (same float32 results, bit for
    bit); anything else is computed and returned in float64.
    """
    pts = np.asarray(points)
    if pts.dtype == np.float32 and pts.size:
        return cv2.transform(pts.reshape(-1, 1, 2), np.asarray(matrix)).reshape(pts.shape)
    m = np.asarray(matrix, dtype=np.float64)
    return pts.astype(np.float64) @ m[:, :2].T + m[:, 2]


def image_to_crop(
    points: ArrayLike, center: ArrayLike, scale: ArrayLike, output_size: tuple[int, int], rot: float = 0.0,
    udp: bool = False,
) -> np.ndarray:  # fmt: skip
    """Image pixels (..., 2) -> crop pixels, the forward map of ``topdown_affine`` (aspect-fixed ``scale``)."""
    return warp_points(points, warp_matrix(center, scale, rot, output_size, udp))


def crop_to_image(
    points_crop: ArrayLike,
    center: ArrayLike,
    scale: ArrayLike,
    output_size: tuple[int, int],
    udp: bool = False,
    rot: float = 0.0,
) -> np.ndarray:
    """Crop / model-input pixels (..., 2) -> image pixels (float32); centre and scale broadcast as (..., 2).

    Plain: ``p / size · scale + center - scale / 2`` (MMPose's decode, the exact inverse of ``get_warp_matrix``
    for an aspect-fixed ``scale``). UDP: ``p / (size - 1) · scale + center - scale / 2``. A non-zero ``rot``
    (training crops) turns the offset from the centre back before adding it.
    """
    p = np.asarray(points_crop, dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if center.ndim < p.ndim:  # one box per leading index of p: (N, 2) boxes for (N, K, 2) points
        center, scale = center[..., None, :], scale[..., None, :]
    size = np.asarray(output_size, dtype=np.float64)
    # UDP rotates image -> crop by +rot and the plain warp by -rot: undo with the opposite turn
    off = (p / (size - 1.0) - 0.5) * scale if udp else (p / size - 0.5) * scale
    if rot:
        r = math.radians(-rot if udp else rot)
        sn, cs = math.sin(r), math.cos(r)
        off = np.stack([cs * off[..., 0] - sn * off[..., 1], sn * off[..., 0] + cs * off[..., 1]], axis=-1)
    c = center
    return (off + c).astype(np.float32)


@dataclass
class TopDownCrop:
    """Result of :func:`topdown_affine`.

    Attributes:
        image: (h, w, C) uint8 crop.
        keypoints: (K, 2) float32 keypoints in crop pixels (``None`` when none were given).
        center: (2,) float32 box centre used.
        scale: (2,) float32 aspect-fixed box size used (what decoding needs).
        rotation: degrees.
        matrix: (2, 3) image -> crop matrix.
    """

    image: np.ndarray
    keypoints: np.ndarray | None
    center: np.ndarray
    scale: np.ndarray
    rotation: float
    matrix: np.ndarray


def topdown_affine(
    img: np.ndarray,
    keypoints: ArrayLike | None,
    center: ArrayLike,
    scale: ArrayLike,
    rot: float,
    output_size: tuple[int, int],
    udp: bool = False,
) -> TopDownCrop:
    """MMPose's ``TopdownAffine``: fix the box aspect to w/h, warp image and keypoints (K, 2) into (w, h)."""
    w, h = int(output_size[0]), int(output_size[1])
    center = np.asarray(center, dtype=np.float32)
    scale = fix_aspect_ratio(scale, w / h)
    m = warp_matrix(center, scale, rot, (w, h), udp)
    crop = warp_image(img, m, (w, h))
    kp = None if keypoints is None else warp_points(keypoints, m)
    return TopDownCrop(image=crop, keypoints=kp, center=center, scale=scale, rotation=float(rot), matrix=m)
