"""SimCC codec: keypoints as two 1-D classifications over sub-pixel bins (RTMPose).

Follows mmpose 1.3.2 ``SimCCLabel`` in Gaussian mode (``docs/rtmpose-dwpose.md`` §3): the x axis of a ``w``-pixel
crop is split into ``Wx = round(w·r)`` bins (``r`` = split ratio, 2 for RTMPose) and a keypoint at crop pixel
``x`` becomes the row ``exp(−(i − μ)² / 2σ²)`` over bins ``i``, with ``μ = round_half_even(x·r)``. The y axis
likewise. Decoding takes the argmax bin of each axis divided by ``r``; the score is the smaller of the two axis
maxima of the raw logits.

numpy only: the torch-free runtime decodes with the same code that trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _pair(value: float | Sequence[float], what: str) -> np.ndarray:
    """A scalar or a pair as a float64 array of shape (2,)."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{what} must be a positive number or a pair of positive numbers, got {value!r}")
    return arr


def _check_keypoints(keypoints: Any, visibility: Any) -> tuple[np.ndarray, np.ndarray]:
    """(…, K, ≥2) keypoints and (…, K) visibility as arrays; visibility defaults to all ones."""
    kp = np.asarray(keypoints)
    if kp.ndim < 2 or kp.shape[-1] < 2:
        raise ValueError(f"keypoints must have shape (N, K, 2) or (K, 2), got {kp.shape}")
    kp = kp[..., :2]
    if not np.issubdtype(kp.dtype, np.floating):
        kp = kp.astype(np.float32)
    vis = np.ones(kp.shape[:-1], dtype=np.float32) if visibility is None else np.asarray(visibility)
    if vis.shape != kp.shape[:-1]:
        raise ValueError(f"visibility must have shape {kp.shape[:-1]} to match keypoints {kp.shape}, got {vis.shape}")
    return kp, vis


def keypoint_weights(visibility: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Encoder weights: the visibility clipped to [0, 1] where the keypoint got a target, else 0.

    mmpose copies its visibility (already ``min(1, v)`` there) and zeroes the dropped keypoints; clipping gives the
    same numbers on those inputs and keeps COCO's v = 2 from doubling a keypoint's weight.
    """
    return np.where(keep, np.clip(visibility, 0.0, 1.0), 0.0).astype(np.float32)


class SimCCCodec:
    """Encode keypoints to SimCC label rows and decode SimCC logits to keypoints.

    Args:
        input_size: crop size (w, h) in pixels. Note the order: width first.
        sigma: Gaussian σ in **bins**, one value or (σx, σy); RTMPose uses (4.9, 5.66) at 256×192.
        split_ratio: bins per pixel (2.0 in every RTMPose config).
        normalize: divide the labels by σ·√(2π) (unit area). RTMPose uses peak-1 labels (False).
        label_smoothing: ε in [0, 1): labelled rows become (1 − ε)·gaussian + ε/W. mmpose only offers smoothing
            for one-hot labels; 0 (the default) reproduces mmpose exactly.
        quantize: centre each Gaussian on the nearest bin (mmpose, the default). False centres it on the exact
            sub-bin position, which together with ``decode(..., refine=True)`` makes the round trip sub-pixel.

    Shapes: ``Wx = round(w·split_ratio)``, ``Wy = round(h·split_ratio)``.
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        sigma: float | tuple[float, float],
        split_ratio: float = 2.0,
        normalize: bool = False,
        label_smoothing: float = 0.0,
        quantize: bool = True,
    ) -> None:
        if len(input_size) != 2 or min(input_size) <= 0:
            raise ValueError(f"input_size must be (w, h) with positive sides, got {input_size!r}")
        if split_ratio <= 0:
            raise ValueError(f"split_ratio must be positive, got {split_ratio}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.sigma = _pair(sigma, "sigma")
        self.split_ratio = float(split_ratio)
        self.normalize = bool(normalize)
        self.label_smoothing = float(label_smoothing)
        self.quantize = bool(quantize)
        # np.around rounds half to even, as mmpose does for the bin counts
        self.num_bins = (
            int(np.around(self.input_size[0] * self.split_ratio)),
            int(np.around(self.input_size[1] * self.split_ratio)),
        )
        # Every labelled row is the same Gaussian shifted to an integer centre, so the rows are gathered from one
        # table of exp(−d²/2σ²) over integer offsets d. Computed in float32 like mmpose 1.3.2: this reproduces its
        # labels bit for bit.
        self._tables: list[tuple[np.ndarray, int]] = []
        for axis in range(2):
            n_bins, s = self.num_bins[axis], float(self.sigma[axis])
            half = n_bins + int(np.ceil(3 * s)) + 2  # covers every offset of a row that keeps its target
            d = np.arange(-half, half + 1, dtype=np.float32)
            table = np.exp(-(d**2) / np.float32(2 * s**2))
            if self.normalize:
                table = (table / (s * np.sqrt(2 * np.pi))).astype(np.float32)
            if self.label_smoothing > 0:
                table = ((1 - self.label_smoothing) * table + self.label_smoothing / n_bins).astype(np.float32)
            self._tables.append((table, half))

    def __repr__(self) -> str:
        return (
            f"SimCCCodec(input_size={self.input_size}, sigma={tuple(float(s) for s in self.sigma)}, "
            f"split_ratio={self.split_ratio}, normalize={self.normalize}, label_smoothing={self.label_smoothing})"
        )

    def encode(self, keypoints: np.ndarray, visibility: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Keypoints in crop pixels → SimCC targets.

        Args:
            keypoints: (N, K, 2) or (K, 2) float, crop pixel coordinates (x, y). Extra trailing columns are ignored.
            visibility: (N, K) or (K,); a keypoint is labelled where visibility ≥ 0.5. Defaults to all labelled.

        Returns:
            dict with ``x_labels`` (N, K, Wx) float32, ``y_labels`` (N, K, Wy) float32 and ``weights`` (N, K)
            float32 (leading N absent for (K, 2) input). Unlabelled keypoints and keypoints whose ±3σ window misses
            the bins entirely get all-zero rows and weight 0.
        """
        kp, vis = _check_keypoints(keypoints, visibility)
        mu = np.rint(kp * self.split_ratio)  # round half to even, like np.around in mmpose
        radius = 3 * self.sigma
        n_bins = np.asarray(self.num_bins)
        left = mu - radius
        right = mu + radius + 1
        outside = np.any(left >= n_bins, axis=-1) | np.any(right < 0, axis=-1) | ~np.all(np.isfinite(mu), axis=-1)
        keep = (vis >= 0.5) & ~outside
        # out-of-range centres only occur in rows that are zeroed below; clip so the int cast stays defined
        mu_int = np.clip(np.nan_to_num(mu), -(2**40), 2**40).astype(np.int64)

        if not self.quantize:
            return self._encode_exact(kp, keep, vis)
        labels = []
        for axis in range(2):
            table, half = self._tables[axis]
            # row for centre mu = table[half − mu : half − mu + W]: one slice of a sliding-window view per keypoint
            windows = np.lib.stride_tricks.sliding_window_view(table, self.num_bins[axis])
            start = np.clip(half - mu_int[..., axis], 0, len(windows) - 1)
            rows = windows[start]
            rows[~keep] = 0.0
            labels.append(rows)
        return {"x_labels": labels[0], "y_labels": labels[1], "weights": keypoint_weights(vis, keep)}

    def _encode_exact(self, kp: np.ndarray, keep: np.ndarray, vis: np.ndarray) -> dict[str, np.ndarray]:
        """Gaussians centred on the unrounded positions kp·split_ratio (``quantize=False``)."""
        labels = []
        for axis in range(2):
            s = float(self.sigma[axis])
            mu = np.nan_to_num(kp[..., axis] * self.split_ratio)[..., None]
            bins = np.arange(self.num_bins[axis], dtype=np.float32)
            rows = np.exp(-((bins - mu) ** 2) / (2 * s**2)).astype(np.float32)
            if self.normalize:
                rows /= np.float32(s * np.sqrt(2 * np.pi))
            if self.label_smoothing > 0:
                rows = (1 - self.label_smoothing) * rows + self.label_smoothing / self.num_bins[axis]
            rows[~keep] = 0.0
            labels.append(rows.astype(np.float32))
        return {"x_labels": labels[0], "y_labels": labels[1], "weights": keypoint_weights(vis, keep)}

    def decode(self, simcc_x: np.ndarray, simcc_y: np.ndarray, refine: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """SimCC logits → keypoints in crop pixels and scores.

        Args:
            simcc_x: (N, K, Wx) or (K, Wx) logits (any number of leading dimensions).
            simcc_y: (N, K, Wy) or (K, Wy) logits with the same leading dimensions.
            refine: sub-bin refinement of the argmax (mmpose ``SimCCLabel(use_dark=True)``: Gaussian-blur each row
                with kernel (20σ − 7) // 3, take logs, one Newton step on the log-profile). Off in every RTMPose
                config, so off by default.

        Returns:
            keypoints (N, K, 2) float32: argmax bin / split_ratio on each axis, −1 where the score is ≤ 0;
            scores (N, K) float32: min(max_x, max_y) of the raw logits. Leading shape follows the input.
        """
        x = np.asarray(simcc_x)
        y = np.asarray(simcc_y)
        if x.ndim < 2 or x.shape[:-1] != y.shape[:-1]:
            raise ValueError(f"simcc_x and simcc_y must be (N, K, W) or (K, W) with equal N, K: {x.shape}, {y.shape}")
        ix = np.argmax(x, axis=-1)
        iy = np.argmax(y, axis=-1)
        max_x = np.take_along_axis(x, ix[..., None], axis=-1)[..., 0]
        max_y = np.take_along_axis(y, iy[..., None], axis=-1)[..., 0]
        scores = np.minimum(max_x, max_y).astype(np.float32)
        locs = [ix.astype(np.float32), iy.astype(np.float32)]
        if refine:
            for axis, (rows, idx) in enumerate(((x, ix), (y, iy))):
                locs[axis] = locs[axis] + _dark_offset_1d(rows, idx, float(self.sigma[axis]))
        keypoints = np.stack(locs, axis=-1).astype(np.float32) / np.float32(self.split_ratio)
        keypoints[scores <= 0] = -1.0
        return keypoints, scores

    @staticmethod
    def flip_simcc(simcc_x: Any, simcc_y: Any, flip_indices: Sequence[int]) -> tuple[Any, Any]:
        """See :func:`flip_simcc`."""
        return flip_simcc(simcc_x, simcc_y, flip_indices)


def _dark_offset_1d(rows: np.ndarray, idx: np.ndarray, sigma: float) -> np.ndarray:
    """Sub-bin offset of each row's maximum by a Newton step on the log of the blurred row (DARK in 1-D).

    rows: (..., W) raw SimCC values; idx: (...) argmax bins. Returns (...) float32 offsets in bins, 0 at the borders
    and where the log-profile is not concave.
    """
    import cv2

    w = rows.shape[-1]
    flat = np.ascontiguousarray(rows.reshape(-1, w), dtype=np.float32)
    k = int((sigma * 20 - 7) // 3)
    k += 1 - k % 2  # odd, as OpenCV requires
    if k > 1:
        peak = flat.max(axis=1, keepdims=True)
        flat = cv2.GaussianBlur(flat, (k, 1), 0, borderType=cv2.BORDER_CONSTANT)
        flat *= peak / np.maximum(flat.max(axis=1, keepdims=True), 1e-12)  # keep each row's maximum, as DARK does
    logs = np.log(np.maximum(flat, 1e-10))
    i = np.clip(idx.reshape(-1), 1, w - 2)
    r = np.arange(len(i))
    f0, fm, fp = logs[r, i], logs[r, i - 1], logs[r, i + 1]
    dx = 0.5 * (fp - fm)
    dxx = fp - 2 * f0 + fm
    ok = (dxx < 0) & (idx.reshape(-1) >= 1) & (idx.reshape(-1) <= w - 2)
    off = np.where(ok, -dx / np.where(ok, dxx, 1.0), 0.0)
    return np.clip(off, -0.5, 0.5).astype(np.float32).reshape(idx.shape)


def flip_simcc(simcc_x: Any, simcc_y: Any, flip_indices: Sequence[int]) -> tuple[Any, Any]:
    """Map SimCC logits of a horizontally flipped crop back to the unflipped crop (flip test).

    Keypoints are re-indexed with ``flip_indices`` (left ↔ right) and the x bins reversed: bin i ↔ bin Wx − 1 − i,
    with no shift (mmpose's convention, ``docs/rtmpose-dwpose.md`` §4). Applying it twice gives the input back.

    Args:
        simcc_x: (…, K, Wx) numpy array or torch tensor.
        simcc_y: (…, K, Wy) of the same kind.
        flip_indices: K ints, the keypoint permutation of the layout.

    Returns:
        (x, y) of the same kind and shapes; numpy results are contiguous copies.
    """
    idx = [int(i) for i in flip_indices]
    if len(idx) != simcc_x.shape[-2] or len(idx) != simcc_y.shape[-2]:
        raise ValueError(
            f"flip_indices has {len(idx)} entries but the logits have K = {simcc_x.shape[-2]} (x), "
            f"{simcc_y.shape[-2]} (y)"
        )
    x = simcc_x[..., idx, :]
    y = simcc_y[..., idx, :]
    if hasattr(x, "flip"):  # torch tensors (numpy arrays have no .flip method)
        return x.flip(-1), y
    return np.ascontiguousarray(x[..., ::-1]), np.ascontiguousarray(y)
