"""Input images of the runtime estimators: :func:`as_bgr` turns what a caller may pass into (H, W, 3) uint8 BGR.

A low module (numpy; OpenCV only for conversions) shared by :mod:`posedistill.infer.estimator` and
:mod:`posedistill.infer.dkd_estimator`, so neither has to import the other.
"""

from __future__ import annotations

import numpy as np


def as_bgr(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR as it is; grey (H, W) / (H, W, 1) and BGRA (H, W, 4) uint8 images are converted."""
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) BGR image, got shape {image.shape}")
    return image
