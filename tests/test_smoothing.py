"""One-Euro (causal, per track) and Savitzky–Golay (offline) smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from posedistill.infer.results import PoseResult
from posedistill.infer.smoothing import OneEuroFilter, PoseSmoother, savgol_smooth, smooth_results_offline

FPS = 30.0


def _frame(points: dict[int, np.ndarray], scores: dict[int, np.ndarray] | None = None) -> PoseResult:
    """A COCO result with one person per track id; ``points[tid]`` is (17, 2)."""
    tids = sorted(points)
    kpts = np.stack([points[t] for t in tids]).astype(np.float32) if tids else np.zeros((0, 17, 2), np.float32)
    sc = np.stack([scores[t] if scores else np.ones(17) for t in tids]) if tids else np.zeros((0, 17))
    boxes = np.tile([0, 0, 10, 10], (len(tids), 1))
    return PoseResult(kpts, sc, boxes, np.ones(len(tids)), np.array(tids, np.int64), "coco", (480, 640))


def _settle_frames(series: np.ndarray, target: float, tol: float) -> int:
    """Frames after which the series stays within tol of target."""
    off = np.abs(series - target) > tol
    return int(np.flatnonzero(off)[-1] + 1) if off.any() else 0


def test_one_euro_reduces_jitter_of_a_still_point() -> None:
    rng = np.random.default_rng(0)
    raw = 100 + rng.normal(0, 2.0, size=(300, 2))
    f = OneEuroFilter(min_cutoff=1.0, beta=0.01, fps=FPS)
    out = np.stack([f(x) for x in raw])
    assert out[30:].var(axis=0).max() < 0.25 * raw[30:].var(axis=0).min()  # measured ~0.1-0.13
    assert np.abs(out[30:].mean(axis=0) - 100).max() < 0.5  # no bias


def test_one_euro_follows_a_step_with_bounded_lag() -> None:
    raw = np.zeros((60, 1, 2))
    raw[20:] = 100.0
    adaptive = OneEuroFilter(min_cutoff=1.0, beta=0.01, fps=FPS)
    fixed = OneEuroFilter(min_cutoff=1.0, beta=0.0, fps=FPS)  # a plain 1 Hz low-pass
    a = np.stack([adaptive(x) for x in raw])[:, 0, 0]
    b = np.stack([fixed(x) for x in raw])[:, 0, 0]
    lag_a = _settle_frames(a[20:], 100, 5.0)
    lag_b = _settle_frames(b[20:], 100, 5.0)
    assert lag_a <= 6  # within 5 px of the new position 6 frames (0.2 s) after the jump
    assert lag_b > 2 * lag_a  # the speed term is what makes it fast
    assert (np.diff(a) >= -1e-9).all() and a.max() <= 100 + 1e-6  # no overshoot


def test_one_euro_timestamps_match_fps_and_gaps_count() -> None:
    rng = np.random.default_rng(1)
    raw = rng.normal(0, 1, size=(20, 3, 2))
    by_fps = OneEuroFilter(fps=FPS)
    by_time = OneEuroFilter(fps=5.0)  # ignored when timestamps are given
    np.testing.assert_allclose(
        np.stack([by_fps(x) for x in raw]), np.stack([by_time(x, t=i / FPS) for i, x in enumerate(raw)])
    )
    # after a long gap the filter trusts the new sample more than after one frame
    f1, f2 = OneEuroFilter(beta=0.0), OneEuroFilter(beta=0.0)
    f1(np.zeros((1, 2)), t=0.0)
    f2(np.zeros((1, 2)), t=0.0)
    assert f1(np.full((1, 2), 10.0), t=1 / FPS)[0, 0] < f2(np.full((1, 2), 10.0), t=2.0)[0, 0]


def test_one_euro_masked_samples_pass_through_and_keep_state() -> None:
    f = OneEuroFilter(beta=0.0)
    f(np.zeros((2, 2)), t=0.0)
    out = f(np.full((2, 2), 50.0), t=1 / FPS, valid=np.array([True, False]))
    assert 0 < out[0, 0] < 50 and out[1, 0] == 50.0  # invalid: returned raw
    assert f.x_prev is not None and f.x_prev[1, 0] == 0.0  # state untouched
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)


def test_pose_smoother_smooths_each_track_independently() -> None:
    rng = np.random.default_rng(2)
    still = np.full((17, 2), 200.0)
    alone, together = PoseSmoother(fps=FPS), PoseSmoother(fps=FPS)
    for t in range(40):
        noisy = 300 + rng.normal(0, 3.0, size=(17, 2))
        a = alone(_frame({1: still + (t % 2)}))
        b = together(_frame({1: still + (t % 2), 2: noisy}) if t % 7 else _frame({1: still + (t % 2)}))
        np.testing.assert_array_equal(a.keypoints[0], b.keypoints[0])  # track 2 never leaks into track 1
    assert set(together.states) == {1, 2}


def test_pose_smoother_reduces_jitter_and_keeps_inputs() -> None:
    rng = np.random.default_rng(3)
    sm = PoseSmoother(fps=FPS)
    raw, out = [], []
    for _ in range(90):
        r = _frame({5: 150 + rng.normal(0, 2.0, size=(17, 2))})
        before = r.keypoints.copy()
        s = sm(r)
        np.testing.assert_array_equal(r.keypoints, before)  # returns a copy
        raw.append(r.keypoints[0])
        out.append(s.keypoints[0])
    assert np.var(out[20:], axis=0).mean() < 0.2 * np.var(raw[20:], axis=0).mean()


def test_pose_smoother_low_scores_untracked_and_ended_tracks() -> None:
    sm = PoseSmoother(fps=FPS, kpt_thr=0.3, max_age=2)
    pts = np.zeros((17, 2))
    sm(_frame({1: pts}))
    scores = np.ones(17)
    scores[0] = 0.1
    r = sm(_frame({1: pts + 40}, {1: scores}))
    assert r.keypoints[0, 0, 0] == 40.0  # low-score point passed through
    assert 0 < r.keypoints[0, 1, 0] < 40  # others smoothed
    assert sm.states[1].x[0, 0] == 0.0  # ... and the low one left the state alone
    untracked = _frame({1: pts + 7})
    untracked.track_ids[:] = -1
    np.testing.assert_array_equal(sm(untracked).keypoints, untracked.keypoints)
    for _ in range(3):
        sm(_frame({}))
    assert 1 not in sm.states  # dropped once absent for more than max_age frames
    sm.reset()
    assert sm.states == {}


def test_savgol_smooths_noise_keeps_trends_and_is_zero_phase() -> None:
    rng = np.random.default_rng(4)
    t = np.arange(100, dtype=np.float64)
    line = np.stack([3.0 * t + 5, -2.0 * t], axis=1)[:, None, :]  # (T, 1, 2)
    np.testing.assert_allclose(savgol_smooth(line, window=9, polyorder=2), line, atol=1e-9)
    noisy = 50 + rng.normal(0, 2.0, size=(100, 1, 2))
    assert savgol_smooth(noisy, window=15).var() < 0.3 * noisy.var()
    wave = np.stack([np.sin(2 * np.pi * t / 50)] * 2, axis=1)[:, None, :] * 20
    smoothed = savgol_smooth(wave + rng.normal(0, 0.5, wave.shape), window=11, polyorder=3)
    assert np.argmax(smoothed[:50, 0, 0]) == np.argmax(wave[:50, 0, 0])  # no lag: the peak stays put


def test_savgol_low_scores_and_short_sequences() -> None:
    t = np.arange(30, dtype=np.float64)
    kpts = np.stack([t, t], axis=1)[:, None, :].repeat(2, axis=1)  # (30, 2, 2) straight lines
    kpts[10, 0] = [500, 500]  # an outlier with a low score
    scores = np.ones((30, 2))
    scores[10, 0] = 0.0
    out = savgol_smooth(kpts, scores, window=7, polyorder=2, kpt_thr=0.3)
    assert out[10, 0].tolist() == [500, 500]  # returned unchanged
    np.testing.assert_allclose(out[9, 0], [9, 9], atol=1e-6)  # neighbours not dragged by the outlier
    short = np.random.default_rng(0).normal(size=(2, 3, 2))
    np.testing.assert_array_equal(savgol_smooth(short, window=9, polyorder=2), short)
    assert savgol_smooth(np.zeros((5, 1, 2), np.float32), window=9).dtype == np.float32


def test_offline_smoothing_per_track_splits_at_gaps() -> None:
    rng = np.random.default_rng(5)
    results = []
    for f in range(40):
        people = {1: 100 + rng.normal(0, 2, (17, 2))}
        if f < 15 or f >= 20:  # track 2 has a gap
            people[2] = 300 + rng.normal(0, 2, (17, 2))
        results.append(_frame(people))
    out = smooth_results_offline(results, window=9, polyorder=2)
    assert len(out) == 40 and out[0] is not results[0]
    k1_raw = np.stack([r.keypoints[0] for r in results])
    k1 = np.stack([r.keypoints[0] for r in out])
    assert k1.var(axis=0).mean() < 0.5 * k1_raw.var(axis=0).mean()
    # the gap splits track 2: its first run only uses frames 0..14
    run = np.stack([results[f].keypoints[1] for f in range(15)])
    np.testing.assert_allclose(out[3].keypoints[1], savgol_smooth(run, np.ones((15, 17)), 9, 2)[3], atol=1e-4)
