"""Keypoint smoothing for video: a causal One-Euro filter for live use, a zero-phase Savitzky–Golay filter for
files.

**One-Euro** (Casiez, Roussel & Vogel, CHI 2012) is a first-order low-pass filter whose cutoff rises with speed:
slow motion is smoothed hard (jitter gone), fast motion follows with little lag. With ``dt`` the time since the
previous sample and ``alpha(fc) = 1 / (1 + 1 / (2·pi·fc·dt))``:

    dx_hat = alpha(d_cutoff) · (x − x_hat_prev) / dt + (1 − alpha(d_cutoff)) · dx_hat_prev
    fc     = min_cutoff + beta · |dx_hat|
    x_hat  = alpha(fc) · x + (1 − alpha(fc)) · x_hat_prev

``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` (per pixel/second) how fast the cutoff opens with speed,
``d_cutoff`` (Hz) smooths the speed estimate. Here the speed of a keypoint is the norm of its 2-D velocity, so the
filter treats x and y alike. Frequencies come from timestamps (seconds), or from ``fps`` when none are given.

:class:`PoseSmoother` runs one filter state per track id, vectorised over the people × keypoints of a frame;
keypoints scoring below ``kpt_thr`` are passed through and leave the state untouched; the state of a track is
dropped once it has been absent for ``max_age`` frames. Untracked people (id −1) are not smoothed.

Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from posedistill.infer.results import PoseResult


def _alpha(cutoff: np.ndarray | float, dt: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * np.asarray(cutoff) * dt))


def one_euro_step(
    x: np.ndarray,
    x_prev: np.ndarray,
    dx_prev: np.ndarray,
    dt: np.ndarray,
    min_cutoff: float,
    beta: float,
    d_cutoff: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One One-Euro update on arrays (..., D) with dt (...,) seconds -> (x_hat, dx_hat), both (..., D).

    The speed that opens the cutoff is the norm of ``dx_hat`` over the last axis."""
    dt_ = np.maximum(dt, 1e-6)[..., None]
    a_d = _alpha(d_cutoff, dt_)
    dx_hat = a_d * (x - x_prev) / dt_ + (1.0 - a_d) * dx_prev
    cutoff = min_cutoff + beta * np.linalg.norm(dx_hat, axis=-1, keepdims=True)
    a = _alpha(cutoff, dt_)
    return a * x + (1.0 - a) * x_prev, dx_hat


class OneEuroFilter:
    """One-Euro filter over arrays of a fixed shape (..., D); each element keeps its own state and time.

    ``f(x, t, valid=None)``: x (..., D), t seconds (or None: one ``1 / fps`` step after the previous call), valid
    (...,) bool mask of the samples to take (others are returned unchanged and keep their state). The first valid
    sample of an element is returned as is.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0, fps: float = 30.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0 or fps <= 0:
            raise ValueError("One-Euro needs min_cutoff > 0, d_cutoff > 0, beta >= 0 and fps > 0")
        self.min_cutoff, self.beta, self.d_cutoff, self.fps = float(min_cutoff), float(beta), float(d_cutoff), fps
        self.reset()

    def reset(self) -> None:
        self.x_prev: np.ndarray | None = None
        self.dx_prev: np.ndarray | None = None
        self.t_prev: np.ndarray | None = None  # (...,) time of each element's last accepted sample, nan = never
        self._t_last: float | None = None

    def __call__(self, x: np.ndarray, t: float | None = None, valid: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if t is None:
            t = 0.0 if self._t_last is None else self._t_last + 1.0 / self.fps
        self._t_last = float(t)
        valid = np.ones(x.shape[:-1], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if self.x_prev is None or self.x_prev.shape != x.shape:
            self.x_prev = x.copy()
            self.dx_prev = np.zeros_like(x)
            self.t_prev = np.where(valid, t, np.nan)
            return x.copy()
        assert self.dx_prev is not None and self.t_prev is not None
        out, self.x_prev, self.dx_prev, self.t_prev = _masked_step(
            x, self.x_prev, self.dx_prev, self.t_prev, float(t), valid, self.min_cutoff, self.beta, self.d_cutoff
        )
        return out


def _masked_step(
    x: np.ndarray,
    x_prev: np.ndarray,
    dx_prev: np.ndarray,
    t_prev: np.ndarray,
    t: float,
    valid: np.ndarray,
    min_cutoff: float,
    beta: float,
    d_cutoff: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Filter the valid samples; elements seen for the first time start from their sample; invalid samples pass
    through and keep the old state. Returns (output, x_prev, dx_prev, t_prev) updated."""
    first = valid & np.isnan(t_prev)
    step = valid & ~first
    dt = np.where(step, t - np.nan_to_num(t_prev), 1.0)
    x_hat, dx_hat = one_euro_step(x, x_prev, dx_prev, dt, min_cutoff, beta, d_cutoff)
    out = np.where(step[..., None], x_hat, x)
    new_x = np.where(valid[..., None], out, x_prev)
    new_dx = np.where(step[..., None], dx_hat, np.where(first[..., None], 0.0, dx_prev))
    new_t = np.where(valid, t, t_prev)
    return out, new_x, new_dx, new_t


@dataclass
class _TrackState:
    x: np.ndarray  # (K, 2) filtered keypoints
    dx: np.ndarray  # (K, 2) filtered velocity, px/s
    t: np.ndarray  # (K,) time of the last accepted sample per keypoint (nan = never)
    last_frame: int


class PoseSmoother:
    """One-Euro smoothing of tracked keypoints, one state per track id.

    ``smoother(result, timestamp=None) -> PoseResult`` returns a copy of ``result`` with smoothed keypoints.
    ``timestamp`` is in seconds (a video's frame time); without it frames are taken ``1 / fps`` apart. Parameters
    are in pixels and seconds: ``min_cutoff`` Hz at rest, ``beta`` per pixel/second, ``d_cutoff`` Hz.
    """

    def __init__(
        self,
        min_cutoff: float = 1.0,
        beta: float = 0.01,
        d_cutoff: float = 1.0,
        fps: float = 30.0,
        kpt_thr: float = 0.3,
        max_age: int = 30,
    ) -> None:
        OneEuroFilter(min_cutoff, beta, d_cutoff, fps)  # validates the parameters
        self.min_cutoff, self.beta, self.d_cutoff, self.fps = float(min_cutoff), float(beta), float(d_cutoff), fps
        self.kpt_thr = float(kpt_thr)
        self.max_age = int(max_age)
        self.reset()

    def reset(self) -> None:
        """Forget every track (call between videos)."""
        self.states: dict[int, _TrackState] = {}
        self.frame = -1
        self._t_last: float | None = None

    def drop(self, track_id: int) -> None:
        """Forget one track (e.g. when the tracker ends it)."""
        self.states.pop(int(track_id), None)

    def __call__(self, result: PoseResult, timestamp: float | None = None) -> PoseResult:
        self.frame += 1
        t = timestamp if timestamp is not None else (0.0 if self._t_last is None else self._t_last + 1.0 / self.fps)
        self._t_last = float(t)
        out = result.copy()
        rows = [i for i, tid in enumerate(result.track_ids) if tid >= 0]
        if rows:
            rows_a = np.asarray(rows)
            x = result.keypoints[rows_a].astype(np.float64)  # (M, K, 2)
            valid = result.scores[rows_a] >= self.kpt_thr  # (M, K)
            k = x.shape[1]
            prev = [self.states.get(int(result.track_ids[i])) for i in rows]
            x_prev = np.stack([s.x if s is not None else np.zeros((k, 2)) for s in prev])
            dx_prev = np.stack([s.dx if s is not None else np.zeros((k, 2)) for s in prev])
            t_prev = np.stack([s.t if s is not None else np.full(k, np.nan) for s in prev])
            smoothed, new_x, new_dx, new_t = _masked_step(
                x, x_prev, dx_prev, t_prev, float(t), valid, self.min_cutoff, self.beta, self.d_cutoff
            )
            out.keypoints[rows_a] = smoothed.astype(np.float32)
            for j, i in enumerate(rows):
                self.states[int(result.track_ids[i])] = _TrackState(new_x[j], new_dx[j], new_t[j], self.frame)
        # a track absent for more than max_age frames has ended: drop its state
        for tid in [tid for tid, s in self.states.items() if self.frame - s.last_frame > self.max_age]:
            del self.states[tid]
        return out


# ------------------------------------------------------------------------------------------------ offline


def savgol_smooth(
    keypoints: np.ndarray,
    scores: np.ndarray | None = None,
    window: int = 9,
    polyorder: int = 2,
    kpt_thr: float = 0.3,
) -> np.ndarray:
    """Zero-phase Savitzky–Golay smoothing of one person's keypoint trajectory, for files (needs the future).

    keypoints (T, K, 2) -> (T, K, 2). Samples scoring below ``kpt_thr`` are bridged by linear interpolation
    in time for the fit and returned unchanged; a keypoint with fewer valid samples than ``polyorder + 2`` is
    left as is. The window is shrunk (kept odd) for short sequences.
    """
    from scipy.signal import savgol_filter  # imported here: scipy.signal takes ~0.5 s to import

    kpts = np.asarray(keypoints, dtype=np.float64)
    t_len = kpts.shape[0]
    out = kpts.copy()
    win = min(int(window), t_len if t_len % 2 == 1 else t_len - 1)
    if win <= polyorder:
        return out.astype(np.asarray(keypoints).dtype)
    valid = np.ones(kpts.shape[:2], dtype=bool) if scores is None else np.asarray(scores) >= kpt_thr
    frames = np.arange(t_len)
    for k in range(kpts.shape[1]):
        v = valid[:, k]
        if v.sum() < polyorder + 2:
            continue
        series = np.stack([np.interp(frames, frames[v], kpts[v, k, c]) for c in range(2)], axis=1)
        fitted = savgol_filter(series, win, polyorder, axis=0, mode="interp")
        out[v, k] = fitted[v]
    return out.astype(np.asarray(keypoints).dtype)


def smooth_results_offline(
    results: Sequence[PoseResult], window: int = 9, polyorder: int = 2, kpt_thr: float = 0.3
) -> list[PoseResult]:
    """Savitzky–Golay smoothing of a whole video's results, per track id over each run of consecutive frames in
    which the track is present (a gap splits the trajectory). Untracked people are left as they are. Returns new
    results; the inputs are not modified."""
    out = [r.copy() for r in results]
    runs: dict[int, list[list[tuple[int, int]]]] = {}  # track id -> runs of (frame index, row)
    for f, r in enumerate(results):
        for row, tid in enumerate(r.track_ids.tolist()):
            if tid < 0:
                continue
            track_runs = runs.setdefault(tid, [])
            if track_runs and track_runs[-1][-1][0] == f - 1:
                track_runs[-1].append((f, row))
            else:
                track_runs.append([(f, row)])
    for track_runs in runs.values():
        for run in track_runs:
            kpts = np.stack([results[f].keypoints[row] for f, row in run])
            scores = np.stack([results[f].scores[row] for f, row in run])
            smoothed = savgol_smooth(kpts, scores, window, polyorder, kpt_thr)
            for (f, row), k in zip(run, smoothed):
                out[f].keypoints[row] = k
    return out
