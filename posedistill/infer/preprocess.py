"""Top-down pre- and post-processing for inference, equal to mmpose's test pipeline (numpy + OpenCV, no torch).

mmpose 1.3.2 runs, per person box (``docs/rtmpose-dwpose.md`` §3, §6):

1. ``GetBBoxCenterScale``: xyxy box → centre = box centre, scale = box size × 1.25 (float32);
2. ``TopdownAffine``: grow the short side so that scale has the model's w/h aspect, then warp the **BGR uint8**
   image into the (w, h) crop (bilinear, constant 0 border);
3. ``PoseDataPreprocessor``: uint8 → float32, BGR → RGB, ``(x − mean) / std``;
4. decode the model output to crop pixels and map back: ``p / input_size · scale + centre − scale / 2``.

All boxes of a frame become one (N, 3, h, w) batch so that the model runs once per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from posedistill.data.transforms import bbox_xyxy_to_cs, crop_to_image, fix_aspect_ratio, warp_image, warp_matrix

# ImageNet statistics in RGB order on 0-255 pixels (RTMPose / DWPose / mmdeploy pipeline.json)
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)
BBOX_PADDING = 1.25


@dataclass
class TopdownBatch:
    """Model inputs for the N person boxes of one image.

    Attributes:
        inputs: (N, 3, h, w) float32 normalised crops (RGB unless ``to_rgb=False``).
        centers: (N, 2) float32 box centres in image pixels.
        scales: (N, 2) float32 padded, aspect-fixed box sizes (w, h) in image pixels.
        input_size: model input (w, h).
    """

    inputs: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    input_size: tuple[int, int]


def normalise_lut(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(3, 256) float32 table with ``(v − mean_c) / std_c`` for every uint8 value v: a gather through it gives
    bit for bit the float32 arithmetic of mmpose's data preprocessor, at a fraction of the cost."""
    m = np.asarray(mean, dtype=np.float32)[:, None]
    s = np.asarray(std, dtype=np.float32)[:, None]
    return (np.arange(256, dtype=np.float32)[None, :] - m) / s


def boxes_to_center_scale(
    boxes_xyxy: np.ndarray, input_size: tuple[int, int], padding: float = BBOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) xyxy boxes → centres (N, 2) and aspect-fixed scales (N, 2) for a (w, h) model input."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    centers, scales = bbox_xyxy_to_cs(boxes, padding=padding)
    return centers.astype(np.float32), fix_aspect_ratio(scales, input_size[0] / input_size[1])


def crop_batch(
    image: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    input_size: tuple[int, int],
    udp: bool = False,
) -> np.ndarray:
    """Warp each (centre, scale) box of ``image`` (H, W, 3) uint8 into an (h, w) crop → (N, h, w, 3) uint8.

    The warp runs on the uint8 image, as mmpose's ``TopdownAffine`` does (OpenCV rounds the bilinear result)."""
    w, h = int(input_size[0]), int(input_size[1])
    out = np.empty((len(centers), h, w, image.shape[2] if image.ndim == 3 else 1), dtype=image.dtype)
    for i, (c, s) in enumerate(zip(centers, scales)):
        crop = warp_image(image, warp_matrix(c, s, 0.0, (w, h), udp), (w, h))
        out[i] = crop.reshape(h, w, -1)
    return out


def normalise_batch(crops: np.ndarray, lut: np.ndarray, to_rgb: bool = True) -> np.ndarray:
    """(N, h, w, 3) uint8 BGR crops → (N, 3, h, w) float32, channels swapped to RGB when ``to_rgb`` and
    normalised through ``lut`` (:func:`normalise_lut`, whose rows are in the output channel order)."""
    n, h, w, _ = crops.shape
    out = np.empty((n, 3, h, w), dtype=np.float32)
    for c in range(3):
        src = 2 - c if to_rgb else c
        np.take(lut[c], crops[..., src], out=out[:, c])
    return out


def preprocess(
    image: np.ndarray,
    boxes_xyxy: np.ndarray,
    input_size: tuple[int, int],
    mean: Sequence[float] = MEAN_RGB,
    std: Sequence[float] = STD_RGB,
    to_rgb: bool = True,
    padding: float = BBOX_PADDING,
    udp: bool = False,
    lut: np.ndarray | None = None,
) -> TopdownBatch:
    """mmpose's top-down test pipeline for all boxes of one image.

    Args:
        image: (H, W, 3) uint8 BGR image (OpenCV order).
        boxes_xyxy: (N, 4) person boxes x1, y1, x2, y2 in image pixels.
        input_size: model input (w, h).
        mean, std: per-channel statistics in the model's channel order (RGB when ``to_rgb``).
        to_rgb: swap BGR → RGB before normalising (every RTMPose / DWPose model).
        padding: box enlargement (1.25 in every RTMPose config).
        udp: UDP warp (mmpose's UDP heatmap models) instead of the plain one.
        lut: a precomputed :func:`normalise_lut` of ``mean`` / ``std`` (saves a few µs per call).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 BGR image, got shape {image.shape} dtype {image.dtype}")
    centers, scales = boxes_to_center_scale(boxes_xyxy, input_size, padding)
    crops = crop_batch(image, centers, scales, input_size, udp)
    inputs = normalise_batch(crops, normalise_lut(mean, std) if lut is None else lut, to_rgb)
    return TopdownBatch(inputs=inputs, centers=centers, scales=scales, input_size=(int(input_size[0]),
                        int(input_size[1])))  # fmt: skip


def keypoints_to_image(
    keypoints_crop: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    input_size: tuple[int, int],
    udp: bool = False,
) -> np.ndarray:
    """(N, K, 2) crop-pixel keypoints → (N, K, 2) float32 image pixels, the inverse of the crop (mmpose's
    ``p / input_size · scale + centre − scale / 2``; UDP: ``p / (input_size − 1) · …``)."""
    kp = np.asarray(keypoints_crop, dtype=np.float32)
    if kp.shape[0] == 0:
        return kp.reshape(0, *kp.shape[1:]).astype(np.float32)
    return crop_to_image(kp, centers, scales, input_size, udp=udp)
