"""Gaussian heatmap codec: MSRA (SimpleBaseline / HRNet), DARK and UDP variants.

Conventions follow mmpose 1.3.2 (``MSRAHeatmap``, ``UDPHeatmap`` in Gaussian mode and their refinements), with
``stride`` the input-to-heatmap scale:

- **MSRA**: stride = input / heatmap; heatmap pixel p sits at input coordinate p·stride. The Gaussian is centred on
  the quantised point μ = trunc(x/stride + 0.5) and cut to the square |p − μ| ≤ 3σ.
- **DARK** (``unbiased=True`` without UDP): the Gaussian is centred on the sub-pixel point over the whole map, and
  decoding refines the argmax with a second-order Taylor step on the log of the blurred heatmap.
- **UDP** (``udp=True``): stride = (input − 1) / (heatmap − 1), so the first and last pixels of both grids line up;
  the Gaussian is centred on the sub-pixel point but cut to the 3σ square around its quantised centre. mmpose's
  ``UDPHeatmap`` always decodes with DARK-UDP, i.e. ``HeatmapCodec(..., udp=True, unbiased=True)``.

Without ``unbiased`` the argmax moves a quarter pixel towards the higher neighbour (the classic refinement).

Deviations from mmpose, all deliberate: heatmaps are per instance (N, K, H, W) rather than one max-merged map;
UDP decoding maps back with the encoder's stride (input − 1)/(heatmap − 1) (mmpose multiplies by
input/(heatmap − 1), up to a pixel off at the far edge); the 3σ window is |p − μ| ≤ 3σ, identical to mmpose for
integer 3σ; keypoints whose score is ≤ 0 decode to −1, as in the SimCC codec.

numpy (+ OpenCV for the blur kernel) only: the torch-free runtime uses the same decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from posedistill.codecs.simcc import _check_keypoints, keypoint_weights

# Per-axis Gaussian factors below this are set to 0: any product of two kept factors is then a normal float32
# (> 1.18e-38), and subnormal arithmetic, many times slower, never happens. The change is < 1e-19 absolute.
_NEGLIGIBLE = 1.1e-19


def dark_blur_kernel_size(sigma: float) -> int:
    """The odd OpenCV kernel size whose implied σ (0.3·((k − 1)/2 − 1) + 0.8) is closest to ``sigma``.

    This is the size DARK pairs with the training σ: 11 for σ = 2 (mmpose's default), 17 for σ = 3, 7 for σ = 1.5.
    """
    half = max(1, round((sigma - 0.8) / 0.3 + 1))
    return 2 * half + 1


def gaussian_blur(heatmaps: np.ndarray, kernel_size: int) -> np.ndarray:
    """Blur each (H, W) map with an OpenCV Gaussian kernel of ``kernel_size``, zero padding outside the map, then
    rescale it so its maximum is unchanged (DARK's modulation step; mmpose ``gaussian_blur``).

    Args:
        heatmaps: (M, H, W) float.
        kernel_size: odd kernel size; σ follows OpenCV's rule for σ = 0.

    Returns:
        (M, H, W) float32, a new array.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"blur kernel size must be odd, got {kernel_size}")
    hm = np.asarray(heatmaps, dtype=np.float32)
    m, h, w = hm.shape
    if m == 0:
        return hm.copy()
    k = cv2.getGaussianKernel(kernel_size, 0).astype(np.float32)
    b = kernel_size // 2
    # Stack the maps into one tall image with b zero rows between them and filter it once with a zero border:
    # the kernel then never reaches a neighbouring map, and each map gets exactly OpenCV's blur of the map
    # zero-padded by b (what mmpose computes map by map).
    tall = np.pad(hm, ((0, 0), (b, b), (0, 0))).reshape(m * (h + 2 * b), w)
    out = cv2.sepFilter2D(tall, -1, k, k, borderType=cv2.BORDER_CONSTANT).reshape(m, h + 2 * b, w)[:, b : b + h]
    orig_max = hm.reshape(m, -1).max(axis=1)
    new_max = out.reshape(m, -1).max(axis=1)
    ratio = np.divide(orig_max, new_max, out=np.ones_like(orig_max), where=new_max != 0)
    return (out * ratio[:, None, None]).astype(np.float32)


def _refine_quarter(locs: np.ndarray, hm: np.ndarray) -> np.ndarray:
    """Move the integer argmax 0.25 px towards the higher neighbour on each axis, with mmpose's
    ``refine_keypoints`` bounds (x move: 1 < x < W − 1 and y > 0; y move: 1 < y < H − 1 and x > 0).
    locs (M, 2) float, hm (M, H, W)."""
    m, h, w = hm.shape
    x = locs[:, 0].astype(np.int64)
    y = locs[:, 1].astype(np.int64)
    i = np.arange(m)
    ok_x = (x > 1) & (x < w - 1) & (y > 0) & (y < h)
    ok_y = (y > 1) & (y < h - 1) & (x > 0) & (x < w)
    xc, yc = np.clip(x, 1, w - 2), np.clip(y, 1, h - 2)
    dx = np.where(ok_x, hm[i, np.clip(y, 0, h - 1), xc + 1] - hm[i, np.clip(y, 0, h - 1), xc - 1], 0.0)
    dy = np.where(ok_y, hm[i, yc + 1, np.clip(x, 0, w - 1)] - hm[i, yc - 1, np.clip(x, 0, w - 1)], 0.0)
    return locs + 0.25 * np.stack([np.sign(dx), np.sign(dy)], axis=-1)


def _refine_dark(locs: np.ndarray, hm: np.ndarray, kernel_size: int) -> np.ndarray:
    """DARK: Newton step on log(blurred heatmap) at the argmax (mmpose ``refine_keypoints_dark``).

    Second derivatives use a two-pixel stencil; points within two pixels of the border are left as they are.
    """
    m, h, w = hm.shape
    blurred = gaussian_blur(hm, kernel_size)
    x = locs[:, 0].astype(np.int64)
    y = locs[:, 1].astype(np.int64)
    ok = (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2)
    xc, yc, i = np.clip(x, 2, w - 3), np.clip(y, 2, h - 3), np.arange(m)

    def at(dy: int, dx: int) -> np.ndarray:  # log only at the stencil points, in float32 as mmpose
        return np.log(np.maximum(blurred[i, yc + dy, xc + dx], np.float32(1e-10))).astype(np.float64)

    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    hyy = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = hxx * hyy - hxy**2
    ok &= det != 0
    det = np.where(ok, det, 1.0)
    # offset = −H⁻¹·g with the closed-form 2×2 inverse
    off_x = -(hyy * gx - hxy * gy) / det
    off_y = -(hxx * gy - hxy * gx) / det
    return locs + np.where(ok[:, None], np.stack([off_x, off_y], axis=-1), 0.0)


def _refine_dark_udp(locs: np.ndarray, hm: np.ndarray, kernel_size: int) -> np.ndarray:
    """DARK for UDP (mmpose ``refine_keypoints_dark_udp``): heatmap clipped to [1e-3, 50] before the log,
    one-pixel stencils on an edge-padded map, Hessian regularised by float32 eps·I; applies at every point."""
    m, h, w = hm.shape
    blurred = gaussian_blur(hm, kernel_size)
    x = np.clip(locs[:, 0].astype(np.int64), 0, w - 1)
    y = np.clip(locs[:, 1].astype(np.int64), 0, h - 1)
    i = np.arange(m)

    def at(dy: int, dx: int) -> np.ndarray:  # clipping the indices is the edge padding
        v = blurred[i, np.clip(y + dy, 0, h - 1), np.clip(x + dx, 0, w - 1)]
        return np.log(np.clip(v, np.float32(1e-3), np.float32(50.0))).astype(np.float64)

    c = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = at(0, 1) - 2 * c + at(0, -1) + np.finfo(np.float32).eps
    hyy = at(1, 0) - 2 * c + at(-1, 0) + np.finfo(np.float32).eps
    hxy = 0.5 * (at(1, 1) - at(0, 1) - at(1, 0) + 2 * c - at(0, -1) - at(-1, 0) + at(-1, -1))
    det = hxx * hyy - hxy**2
    ok = det != 0
    det = np.where(ok, det, 1.0)
    off_x = -(hyy * gx - hxy * gy) / det
    off_y = -(hxx * gy - hxy * gx) / det
    return locs + np.where(ok[:, None], np.stack([off_x, off_y], axis=-1), 0.0)


class HeatmapCodec:
    """Encode keypoints to Gaussian heatmaps and decode heatmaps to keypoints.

    Args:
        input_size: crop size (w, h) in pixels.
        heatmap_size: heatmap size (W, H), usually input / 4.
        sigma: Gaussian σ in heatmap pixels.
        unbiased: DARK: sub-pixel Gaussian centres (MSRA) and Taylor-refined decoding.
        udp: UDP coordinate convention and Gaussians (see the module docstring).
        blur_kernel_size: DARK's modulation kernel; default :func:`dark_blur_kernel_size` of σ (11 for σ = 2).
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        sigma: float = 2.0,
        unbiased: bool = False,
        udp: bool = False,
        blur_kernel_size: int | None = None,
    ) -> None:
        if len(input_size) != 2 or len(heatmap_size) != 2 or min(*input_size, *heatmap_size) <= 1:
            raise ValueError(f"input_size and heatmap_size must be (w, h) pairs > 1, got {input_size}, {heatmap_size}")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = float(sigma)
        self.unbiased = bool(unbiased)
        self.udp = bool(udp)
        self.blur_kernel_size = int(blur_kernel_size or dark_blur_kernel_size(self.sigma))
        if self.blur_kernel_size % 2 != 1:
            raise ValueError(f"blur_kernel_size must be odd, got {self.blur_kernel_size}")
        inp, hm = np.asarray(self.input_size, np.float64), np.asarray(self.heatmap_size, np.float64)
        # input pixels per heatmap pixel, (x, y)
        self.stride = (inp - 1) / (hm - 1) if self.udp else inp / hm

    def __repr__(self) -> str:
        return (
            f"HeatmapCodec(input_size={self.input_size}, heatmap_size={self.heatmap_size}, sigma={self.sigma}, "
            f"unbiased={self.unbiased}, udp={self.udp}, blur_kernel_size={self.blur_kernel_size})"
        )

    def encode(self, keypoints: np.ndarray, visibility: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints in crop pixels → heatmaps.

        Args:
            keypoints: (N, K, 2) or (K, 2) float, crop pixel coordinates (x, y).
            visibility: (N, K) or (K,); labelled where ≥ 0.5. Defaults to all labelled.

        Returns:
            dict with ``heatmaps`` (N, K, H, W) float32 (peak 1) and ``weights`` (N, K) float32; leading N absent
            for (K, 2) input. Unlabelled keypoints and keypoints whose 3σ square misses the map get an all-zero
            map and weight 0.
        """
        kp, vis = _check_keypoints(keypoints, visibility)
        p = kp.astype(np.float64) / self.stride  # heatmap coordinates; non-finite points are dropped below
        r = 3 * self.sigma
        size = np.asarray(self.heatmap_size)
        sub_pixel = self.udp or self.unbiased
        windowed = self.udp or not self.unbiased
        # quantised centre as mmpose computes it (truncation toward zero); DARK tests the window at the true point
        mu = np.trunc(np.nan_to_num(p) + 0.5) if windowed else p
        outside = np.any(mu - r >= size, axis=-1) | np.any(mu + r + 1 < 0, axis=-1) | ~np.all(np.isfinite(p), axis=-1)
        keep = (vis >= 0.5) & ~outside
        centre = p if sub_pixel else mu

        axes = []
        for a in range(2):
            grid = np.arange(self.heatmap_size[a], dtype=np.float64)
            g = np.exp(-((grid - centre[..., a, None]) ** 2) / (2 * self.sigma**2))
            g[g < _NEGLIGIBLE] = 0.0
            if windowed:
                g = np.where(np.abs(grid - mu[..., a, None]) <= r, g, 0.0)
            g[~keep] = 0.0
            axes.append(g.astype(np.float32))
        # a 2-D Gaussian on a square window is the outer product of two 1-D ones
        heatmaps = axes[1][..., :, None] * axes[0][..., None, :]
        return {"heatmaps": heatmaps, "weights": keypoint_weights(vis, keep)}

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps → keypoints in crop pixels and scores.

        Args:
            heatmaps: (N, K, H, W) or (K, H, W).

        Returns:
            keypoints (N, K, 2) float32 in crop pixels, −1 where the score is ≤ 0; scores (N, K) float32, the
            heatmap maxima. Leading shape follows the input.
        """
        hm = np.asarray(heatmaps, dtype=np.float32)
        w, h = self.heatmap_size
        if hm.ndim < 3 or hm.shape[-2:] != (h, w):
            raise ValueError(f"heatmaps must be (N, K, {h}, {w}) or (K, {h}, {w}), got {hm.shape}")
        lead = hm.shape[:-2]
        flat = hm.reshape(-1, h, w)
        if flat.size == 0:
            return np.zeros((*lead, 2), np.float32), np.zeros(lead, np.float32)
        idx = flat.reshape(len(flat), h * w).argmax(axis=1)
        scores = flat.reshape(len(flat), h * w).max(axis=1)
        locs = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
        if self.unbiased:
            refine = _refine_dark_udp if self.udp else _refine_dark
            locs = refine(locs, flat, self.blur_kernel_size)
        else:
            locs = _refine_quarter(locs, flat)
        keypoints = (locs * self.stride).astype(np.float32)
        keypoints[scores <= 0] = -1.0
        return keypoints.reshape(*lead, 2), scores.astype(np.float32).reshape(lead)


def flip_heatmaps(heatmaps: Any, flip_indices: Sequence[int], shift: bool = False) -> Any:
    """Map heatmaps of a horizontally flipped crop back to the unflipped crop (flip test).

    Channels are re-indexed with ``flip_indices`` and the width reversed. ``shift=True`` then moves the map one
    pixel right (column 0 kept), the HRNet/mmpose correction for MSRA heatmaps, whose pixel grid is not symmetric
    under the flip; UDP heatmaps need no shift.

    Args:
        heatmaps: (…, K, H, W) numpy array or torch tensor.
        flip_indices: K ints, the keypoint permutation of the layout.

    Returns:
        the same kind and shape; numpy results are contiguous copies.
    """
    idx = [int(i) for i in flip_indices]
    if len(idx) != heatmaps.shape[-3]:
        raise ValueError(f"flip_indices has {len(idx)} entries but the heatmaps have K = {heatmaps.shape[-3]}")
    out = heatmaps[..., idx, :, :]
    # torch tensors have .flip/.clone; numpy arrays have neither
    out = out.flip(-1) if hasattr(out, "flip") else np.ascontiguousarray(out[..., ::-1])
    if shift:
        shifted = out.clone() if hasattr(out, "clone") else out.copy()
        shifted[..., 1:] = out[..., :-1]
        out = shifted
    return out
