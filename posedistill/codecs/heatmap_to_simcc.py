"""Heatmaps → SimCC distributions: soft targets of a heatmap teacher for a SimCC student (numpy only).

A top-down heatmap teacher (PP-TinyPose, HRNet, ...) says where a keypoint is with a K×H×W map at stride s; a SimCC
student (RTMPose) predicts one distribution over x bins and one over y bins, at ``split_ratio`` r bins per input
pixel. To distil one into the other, each heatmap becomes a pair of 1-D distributions over the student's bins:

1. **a distribution**: negative values are clipped to 0 and each map is divided by its sum (a map with no positive
   value becomes uniform and is flagged invalid);
2. **marginals**: the sums over rows (→ x, length W) and over columns (→ y, length H);
3. **resampling onto the bins**: heatmap pixel i sits at input coordinate ``i·s`` (mmpose's non-UDP convention,
   :class:`~posedistill.codecs.heatmap.HeatmapCodec`'s decode: ``keypoint = index · stride``; UDP: ``s = (input −
   1)/(heatmap − 1)``), SimCC bin j at input coordinate ``j / r`` (:class:`~posedistill.codecs.simcc.SimCCCodec`'s
   decode). Bin j reads the marginal at heatmap coordinate ``t = j/(r·s)`` by linear interpolation, i.e. each
   heatmap pixel's mass is spread as a hat of half-width one heatmap pixel (s·r bins) around its input position;
   the row is then normalised to sum 1.

The hat spreading keeps the position: a heatmap peak at pixel i gives a SimCC peak at bin ``i·s·r`` (an integer
bin for the usual s = 4, r = 2), so the SimCC argmax decodes to the heatmap argmax, and the mean of each
distribution equals the marginal's mean (except where a hat is cut at the crop border). A delta heatmap becomes a
triangle of half-width s·r bins: the teacher's own resolution.

:func:`simcc_logits` turns the probabilities into logits for a loss that applies ``softmax(β·logits)`` to its
targets (DWPose's ``KDLoss``): ``log(p)/β``, so that the softmax gives back p.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def heatmap_distributions(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(…, K, H, W) heatmaps → non-negative maps that sum to 1 per keypoint, and the valid mask (…, K).

    Maps with no positive value become uniform (and are invalid)."""
    hm = np.maximum(np.asarray(heatmaps, dtype=np.float64), 0.0)
    if hm.ndim < 3:
        raise ValueError(f"heatmaps must be (..., K, H, W), got shape {hm.shape}")
    total = hm.sum(axis=(-2, -1), keepdims=True)
    valid = total[..., 0, 0] > 0
    h, w = hm.shape[-2:]
    uniform = np.full_like(hm, 1.0 / (h * w))
    return np.where(total > 0, hm / np.where(total > 0, total, 1.0), uniform), valid


def resampling_matrix(num_pixels: int, num_bins: int, stride: float, split_ratio: float) -> np.ndarray:
    """(num_pixels, num_bins) weights that spread heatmap pixel i (at input ``i·stride``) as a hat of half-width one
    heatmap pixel over SimCC bins j (at input ``j / split_ratio``): ``max(0, 1 − |j/(split_ratio·stride) − i|)``."""
    if stride <= 0 or split_ratio <= 0:
        raise ValueError(f"stride and split_ratio must be positive, got {stride}, {split_ratio}")
    t = np.arange(num_bins, dtype=np.float64) / (split_ratio * stride)  # bin centres in heatmap pixels
    return np.maximum(0.0, 1.0 - np.abs(t[None, :] - np.arange(num_pixels, dtype=np.float64)[:, None]))


def _resample(marginal: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    out = marginal @ matrix
    total = out.sum(axis=-1, keepdims=True)
    n = matrix.shape[1]
    # a marginal whose mass lies entirely beyond the bins (cannot happen for crops of the student's size): uniform
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / n)


def heatmaps_to_simcc(
    heatmaps: np.ndarray,
    input_size: tuple[int, int],
    split_ratio: float = 2.0,
    stride: float | Sequence[float] | None = None,
    udp: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmaps → SimCC probabilities over the student's bins.

    Args:
        heatmaps: (…, K, H, W) teacher heatmaps (any scale; negatives are clipped).
        input_size: (w, h) of the student's crop in pixels: the bins are ``round(w·r)`` and ``round(h·r)``, as in
            :class:`~posedistill.codecs.simcc.SimCCCodec`.
        split_ratio: r, SimCC bins per input pixel (2 for RTMPose).
        stride: input pixels per heatmap pixel, one value or (sx, sy), **in the student's input pixels** (a
            teacher at another input size: its stride × student size / teacher size). Default: ``input / heatmap``
            (non-UDP), or ``(input − 1)/(heatmap − 1)`` with ``udp``.
        udp: the default stride's convention.

    Returns:
        px (…, K, round(w·r)) and py (…, K, round(h·r)) float32, each row summing to 1; valid (…, K) bool, False
        where a map had no positive value (its rows are uniform).
    """
    hm, valid = heatmap_distributions(heatmaps)
    h, w = hm.shape[-2:]
    in_w, in_h = int(input_size[0]), int(input_size[1])
    if stride is None:
        stride = ((in_w - 1) / (w - 1), (in_h - 1) / (h - 1)) if udp else (in_w / w, in_h / h)
    sx, sy = (float(stride), float(stride)) if np.isscalar(stride) else (float(stride[0]), float(stride[1]))
    bins_x, bins_y = int(np.around(in_w * split_ratio)), int(np.around(in_h * split_ratio))
    px = _resample(hm.sum(axis=-2), resampling_matrix(w, bins_x, sx, split_ratio))
    py = _resample(hm.sum(axis=-1), resampling_matrix(h, bins_y, sy, split_ratio))
    px[~valid], py[~valid] = 1.0 / bins_x, 1.0 / bins_y  # no information: exactly uniform over the bins
    return px.astype(np.float32), py.astype(np.float32), valid


def simcc_logits(probs: np.ndarray, beta: float = 1.0, floor: float = 1e-8) -> np.ndarray:
    """Logits whose ``softmax(β·logits)`` is ``probs`` (renormalised after flooring at ``floor``): ``log(p)/β``.

    Log-probabilities are valid logits; dividing by β undoes the temperature that DWPose's ``KDLoss`` applies to
    the teacher's logits. The floor keeps every logit finite (−18.4/β for 1e-8)."""
    if beta <= 0 or floor <= 0:
        raise ValueError(f"beta and floor must be positive, got {beta}, {floor}")
    p = np.maximum(np.asarray(probs, dtype=np.float64), floor)
    p /= p.sum(axis=-1, keepdims=True)
    return (np.log(p) / beta).astype(np.float32)
