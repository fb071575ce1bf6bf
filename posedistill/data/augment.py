"""RTMPose's training augmentation, as plain seeded functions on a sample dict.

The recipe (MMPose 1.3.2 RTMPose configs; ``docs/rtmpose-dwpose.md`` §6), in order:

    box -> centre/scale (×1.25) | random_flip | random_half_body | random_bbox_transform
    | topdown affine crop (``transforms.topdown_affine``) | hsv_augment | random_blur | random_median_blur
    | coarse_dropout

A sample is a dict:

    image       (H, W, 3) uint8 BGR, the full image
    keypoints   (K, 2) float32 image pixels
    visibility  (K,) float32, 0 = unlabelled (COCO convention)
    weights     (K,) float32 per-keypoint training weights (permuted with the keypoints on flip)
    center      (2,) float32 box centre;  scale (2,) float32 padded box size (w, h);  rotation float, degrees
    flip_indices, upper_body_ids, lower_body_ids   int arrays from the layout
    flip        bool, whether the sample was mirrored

Every random draw comes from the ``numpy.random.Generator`` passed in, so a sample seeded from
(seed, epoch, index) is the same in any process and any DataLoader worker. Where MMPose draws from the global
NumPy / ``random`` state we draw the same quantities, in the same order, from the generator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
from scipy.special import ndtr, ndtri

from posedistill.data.transforms import bbox_xywh_to_cs
from posedistill.layouts import Layout

Sample = dict[str, Any]

_TRUNC_LO, _TRUNC_HI = float(ndtr(-1.0)), float(ndtr(1.0))


@dataclass(frozen=True)
class AugConfig:
    """Training augmentation parameters; the defaults are RTMPose's COCO / COCO-WholeBody stage 1.

    UBody / wholebody-x recipes use ``scale_range=(0.5, 1.5), rotate_factor=90``. ``stage2()`` is the recipe of
    the last epochs (RTMPose switches at epoch ``max_epochs - 30``).
    """

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_total: int = 9
    half_body_min_upper: int = 2
    half_body_min_lower: int = 3
    half_body_padding: float = 1.5
    half_body_upper_prob: float = 0.7
    shift_factor: float = 0.16
    shift_prob: float = 0.3
    scale_range: tuple[float, float] = (0.6, 1.4)
    scale_prob: float = 1.0
    rotate_factor: float = 80.0
    rotate_prob: float = 0.6
    hue_delta: int = 5
    saturation_delta: int = 30
    value_delta: int = 30
    blur_prob: float = 0.1
    blur_limit: int = 7
    median_blur_prob: float = 0.1
    median_blur_limit: int = 7
    dropout_prob: float = 1.0
    dropout_height: tuple[float, float] = (0.2, 0.4)
    dropout_width: tuple[float, float] = (0.2, 0.4)

    def stage2(self) -> AugConfig:
        """The late-training recipe: no shift, scale [0.75, 1.25], rotation ±60°, coarse dropout p 0.5."""
        return replace(self, shift_factor=0.0, scale_range=(0.75, 1.25), rotate_factor=60.0, dropout_prob=0.5)


def sample_rng(seed: int, epoch: int, index: int, attempt: int = 0) -> np.random.Generator:
    """The generator of one sample: independent streams for every (seed, epoch, index, attempt)."""
    return np.random.default_rng([int(seed), int(epoch), int(index), int(attempt)])


def truncnorm(rng: np.random.Generator, size: int | tuple[int, ...] = ()) -> np.ndarray:
    """Standard normal truncated to [-1, 1] (scipy's ``truncnorm(-1, 1)``), by inverting the CDF; float32."""
    return ndtri(rng.uniform(_TRUNC_LO, _TRUNC_HI, size)).astype(np.float32)


def new_sample(
    image: np.ndarray,
    keypoints: np.ndarray,
    visibility: np.ndarray,
    bbox_xywh: np.ndarray,
    layout: Layout,
    padding: float = 1.25,
    weights: np.ndarray | None = None,
) -> Sample:
    """A sample dict for one person: centre and scale from the box (×``padding``), no rotation, not flipped."""
    center, scale = bbox_xywh_to_cs(bbox_xywh, padding)
    vis = np.asarray(visibility, dtype=np.float32)
    return {
        "image": image,
        "keypoints": np.asarray(keypoints, dtype=np.float32),
        "visibility": vis,
        "weights": (vis > 0).astype(np.float32) if weights is None else np.asarray(weights, dtype=np.float32),
        "center": center,
        "scale": scale,
        "rotation": 0.0,
        "flip_indices": np.asarray(layout.flip_indices, dtype=np.intp),
        "upper_body_ids": np.asarray(layout.upper_body_ids, dtype=np.intp),
        "lower_body_ids": np.asarray(layout.lower_body_ids, dtype=np.intp),
        "flip": False,
    }


# ------------------------------------------------------------------------------------------ geometry (box)
def random_flip(sample: Sample, rng: np.random.Generator, prob: float = 0.5) -> Sample:
    """Mirror image, keypoints (x' = W - 1 - x, left/right swapped by ``flip_indices``) and the box centre."""
    if not rng.random() < prob:
        return sample
    img = sample["image"]
    w = img.shape[1]
    idx = sample["flip_indices"]
    kp = sample["keypoints"][idx].copy()
    kp[:, 0] = (w - 1) - kp[:, 0]
    center = np.array(sample["center"], dtype=np.float32, copy=True)
    center[0] = (w - 1) - center[0]
    sample.update(
        image=cv2.flip(img, 1),
        keypoints=kp,
        visibility=sample["visibility"][idx],
        weights=sample["weights"][idx],
        center=center,
        flip=not sample["flip"],
    )
    return sample


def random_half_body(
    sample: Sample,
    rng: np.random.Generator,
    prob: float = 0.3,
    min_total: int = 9,
    min_upper: int = 2,
    min_lower: int = 3,
    padding: float = 1.5,
    upper_prob: float = 0.7,
) -> Sample:
    """Zoom on the upper or the lower body (MMPose ``RandomHalfBody``, RTMPose thresholds).

    Needs ``min_total`` labelled keypoints; with probability ``prob`` it picks the labelled upper-body points
    (preferred with ``upper_prob``) or lower-body points, falling back to the half that has enough of them. The
    new box is centred on the points' mean with scale = their extent × ``padding``. A half whose points span
    less than a pixel (coincident annotations) leaves the box unchanged rather than producing a zero box.
    """
    labelled = sample["visibility"] > 0
    if labelled.sum() < min_total or rng.random() > prob:
        return sample
    upper = sample["upper_body_ids"][labelled[sample["upper_body_ids"]]]
    lower = sample["lower_body_ids"][labelled[sample["lower_body_ids"]]]
    prefer_upper = rng.random() < upper_prob
    upper_ok, lower_ok = len(upper) >= min_upper, len(lower) >= min_lower
    if not upper_ok and not lower_ok:
        return sample
    ids = upper if upper_ok and (prefer_upper or not lower_ok) else lower
    pts = sample["keypoints"][ids]
    scale = ((pts.max(0) - pts.min(0)) * padding).astype(np.float32)
    if scale.max() < 1.0:
        return sample
    sample["center"] = pts.mean(0).astype(np.float32)
    sample["scale"] = scale
    return sample


def random_bbox_transform(
    sample: Sample,
    rng: np.random.Generator,
    shift_factor: float = 0.16,
    shift_prob: float = 0.3,
    scale_range: tuple[float, float] = (0.6, 1.4),
    scale_prob: float = 1.0,
    rotate_factor: float = 80.0,
    rotate_prob: float = 0.6,
) -> Sample:
    """Jitter the box (MMPose ``RandomBBoxTransform``), every factor v ~ truncnorm(-1, 1):

    centre += v2 · shift_factor · scale (p ``shift_prob``); scale ×= mid + v · half_range (p ``scale_prob``);
    rotation = v · rotate_factor degrees (p ``rotate_prob``). The shift uses the box before the aspect fix, as
    MMPose does.
    """
    offset = truncnorm(rng, 2) * shift_factor
    do_shift = rng.random() < shift_prob
    lo, hi = scale_range
    factor = truncnorm(rng) * ((hi - lo) * 0.5) + (hi + lo) * 0.5
    do_scale = rng.random() < scale_prob
    rot = truncnorm(rng) * rotate_factor
    do_rot = rng.random() < rotate_prob
    scale = np.asarray(sample["scale"], dtype=np.float32)
    if do_shift:
        sample["center"] = (np.asarray(sample["center"], dtype=np.float32) + offset * scale).astype(np.float32)
    if do_scale:
        sample["scale"] = (scale * factor).astype(np.float32)
    sample["rotation"] = float(rot) if do_rot else 0.0
    return sample


def augment_box(sample: Sample, cfg: AugConfig, rng: np.random.Generator) -> Sample:
    """Flip, half body and box jitter: everything that happens before the crop."""
    random_flip(sample, rng, cfg.flip_prob)
    random_half_body(
        sample, rng, cfg.half_body_prob, cfg.half_body_min_total, cfg.half_body_min_upper,
        cfg.half_body_min_lower, cfg.half_body_padding, cfg.half_body_upper_prob,
    )  # fmt: skip
    random_bbox_transform(
        sample, rng, cfg.shift_factor, cfg.shift_prob, tuple(cfg.scale_range), cfg.scale_prob,
        cfg.rotate_factor, cfg.rotate_prob,
    )  # fmt: skip
    return sample


# ------------------------------------------------------------------------------------------- pixels (crop)
def hsv_augment(
    image: np.ndarray, rng: np.random.Generator, hue_delta: int = 5, saturation_delta: int = 30, value_delta: int = 30
) -> np.ndarray:
    """YOLOX / MMDetection ``YOLOXHSVRandomAug`` on a BGR uint8 image; returns a new image.

    Gains g ~ U(-1, 1) · (hue, sat, val) deltas, each zeroed with probability 1/2, truncated to integers; then
    H = (H + gh) mod 180, S and V clipped to [0, 255] in OpenCV's 8-bit HSV. Done with one lookup table,
    which gives the same bytes as MMDetection's int16 arithmetic. The BGR -> HSV -> BGR round trip happens
    even for zero gains, as there.
    """
    gains = rng.uniform(-1.0, 1.0, 3) * np.array([hue_delta, saturation_delta, value_delta], dtype=np.float64)
    gains = (gains * rng.integers(0, 2, 3)).astype(np.int16)
    ramp = np.arange(256, dtype=np.int16)
    lut = np.stack(
        [(ramp + gains[0]) % 180, np.clip(ramp + gains[1], 0, 255), np.clip(ramp + gains[2], 0, 255)], axis=-1
    ).astype(np.uint8)[None]  # (1, 256, 3): one table per channel
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    return cv2.cvtColor(cv2.LUT(hsv, lut), cv2.COLOR_HSV2BGR)


def _odd_kernel(rng: np.random.Generator, limit: int) -> int:
    """Albumentations' kernel draw: an odd size in [3, limit]."""
    return int(rng.choice(np.arange(3, max(3, limit) + 1, 2)))


def random_blur(image: np.ndarray, rng: np.random.Generator, prob: float = 0.1, blur_limit: int = 7) -> np.ndarray:
    """Albumentations ``Blur``: box filter with an odd kernel in [3, blur_limit], with probability ``prob``."""
    if not rng.random() < prob:
        return image
    k = _odd_kernel(rng, blur_limit)
    return cv2.blur(image, (k, k))


def random_median_blur(
    image: np.ndarray, rng: np.random.Generator, prob: float = 0.1, blur_limit: int = 7
) -> np.ndarray:
    """Albumentations ``MedianBlur``: median filter with an odd kernel in [3, blur_limit], with probability ``prob``."""
    if not rng.random() < prob:
        return image
    return cv2.medianBlur(image, _odd_kernel(rng, blur_limit))


def coarse_dropout(
    image: np.ndarray,
    rng: np.random.Generator,
    prob: float = 1.0,
    height_range: tuple[float, float] = (0.2, 0.4),
    width_range: tuple[float, float] = (0.2, 0.4),
    fill: int = 0,
) -> np.ndarray:
    """Albumentations ``CoarseDropout`` with one hole: int(H · U(h_lo, h_hi)) × int(W · U(w_lo, w_hi)) pixels at
    a uniformly drawn position (inclusive ranges) filled with ``fill``. Writes into ``image`` and returns it."""
    if not rng.random() < prob:
        return image
    h, w = image.shape[:2]
    hole_h = int(h * rng.uniform(*height_range))
    hole_w = int(w * rng.uniform(*width_range))
    y1 = int(rng.integers(0, h - hole_h, endpoint=True))
    x1 = int(rng.integers(0, w - hole_w, endpoint=True))
    image[y1 : y1 + hole_h, x1 : x1 + hole_w] = fill
    return image


def augment_crop(image: np.ndarray, cfg: AugConfig, rng: np.random.Generator) -> np.ndarray:
    """HSV jitter, blur, median blur and coarse dropout on the (h, w, 3) crop, in MMPose's order."""
    image = hsv_augment(image, rng, cfg.hue_delta, cfg.saturation_delta, cfg.value_delta)
    image = random_blur(image, rng, cfg.blur_prob, cfg.blur_limit)
    image = random_median_blur(image, rng, cfg.median_blur_prob, cfg.median_blur_limit)
    return coarse_dropout(image, rng, cfg.dropout_prob, tuple(cfg.dropout_height), tuple(cfg.dropout_width))
