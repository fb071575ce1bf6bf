"""PoseTracker on synthetic moving people: crossings, disappear / reappear, id reuse, matching rules."""

from __future__ import annotations

import numpy as np
import pytest

from posedistill.infer.results import PoseResult
from posedistill.infer.tracking import PoseTracker, assign, box_iou, pose_oks

W, H = 40.0, 80.0  # person box size


def _box(cx: float, cy: float) -> np.ndarray:
    return np.array([cx - W / 2, cy - H / 2, cx + W / 2, cy + H / 2])


def _pose(cx: float, cy: float, variant: int) -> np.ndarray:
    """17 keypoints inside the box; ``variant`` changes the pose (arms up / down) for OKS."""
    rng = np.random.default_rng(variant)
    rel = rng.uniform(-0.45, 0.45, size=(17, 2)) * [W, H]
    return np.array([cx, cy]) + rel


def _run(tracker: PoseTracker, frames: list[dict[str, tuple[float, float]]], with_kpts: bool = False, seed: int = 0):
    """frames: per frame {gt name: centre}; people are shuffled each frame. Returns per frame {gt name: id}."""
    rng = np.random.default_rng(seed)
    out = []
    names_variant = {}
    for people in frames:
        names = list(people)
        rng.shuffle(names)
        boxes = np.array([_box(*people[n]) for n in names]).reshape(-1, 4)
        kpts = None
        if with_kpts:
            for n in names:
                names_variant.setdefault(n, len(names_variant))
            kpts = np.array([_pose(*people[n], names_variant[n]) for n in names]).reshape(-1, 17, 2)
        ids = tracker.update(boxes, kpts, None if kpts is None else np.ones(kpts.shape[:2]), layout="coco")
        out.append(dict(zip(names, ids.tolist())))
    return out


def _ids_of(assigned: list[dict[str, int]], name: str) -> set[int]:
    return {f[name] for f in assigned if name in f}


def test_box_iou_and_oks_basics() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])
    k = np.random.default_rng(0).uniform(0, 50, (1, 17, 2))
    s = np.ones((1, 17))
    sig = np.full(17, 0.05)
    assert pose_oks(k, s, k, s, np.array([2500.0]), sig, 0.3)[0, 0] == pytest.approx(1.0)
    assert pose_oks(k, s, k + 30, s, np.array([2500.0]), sig, 0.3)[0, 0] < 0.1
    assert pose_oks(k, s * 0, k, s, np.array([2500.0]), sig, 0.3)[0, 0] == 0.0  # no common valid point


def test_hungarian_beats_greedy_on_a_conflict() -> None:
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(assign(sim, 0.3, "hungarian")) == [(0, 1), (1, 0)]  # total 1.65
    assert assign(sim, 0.3, "greedy") == [(0, 0)]  # (1, 1) is below the threshold
    assert assign(np.array([[0.2]]), 0.3) == []
    assert assign(np.zeros((0, 3)), 0.3) == []


@pytest.mark.parametrize("metric", ["iou", "iou_oks"])
def test_crossing_people_keep_their_ids(metric: str) -> None:
    # A walks right, B walks left along almost the same line: their boxes overlap heavily mid-way
    frames = [{"A": (20 + 7 * t, 100), "B": (230 - 7 * t, 106)} for t in range(32)]
    assigned = _run(PoseTracker(metric=metric), frames, with_kpts=metric != "iou")
    assert len(_ids_of(assigned, "A")) == 1 and len(_ids_of(assigned, "B")) == 1
    assert _ids_of(assigned, "A") != _ids_of(assigned, "B")


def test_crossing_needs_motion_prediction() -> None:
    """Without the velocity model, IoU with the previous position swaps ids at the crossing (the test scenario is
    hard enough to tell the two apart)."""
    frames = [{"A": (20 + 14 * t, 100), "B": (230 - 14 * t, 100)} for t in range(16)]
    with_motion = _run(PoseTracker(metric="iou"), frames)
    without = _run(PoseTracker(metric="iou", use_velocity=False), frames)
    assert len(_ids_of(with_motion, "A")) == 1
    assert len(_ids_of(without, "A")) > 1 or _ids_of(without, "A") == _ids_of(with_motion, "B")


def test_oks_separates_overlapping_people_with_different_poses() -> None:
    # two people standing in the same box, listed in random order: only their keypoints tell them apart
    frames = [{"A": (100, 100), "B": (100, 100)} for _ in range(10)]
    assigned = _run(PoseTracker(metric="oks"), frames, with_kpts=True, seed=3)
    assert len(_ids_of(assigned, "A")) == 1 and len(_ids_of(assigned, "B")) == 1


def test_disappear_and_reappear_within_max_age() -> None:
    frames = []
    for t in range(30):
        people = {"B": (300, 100)}
        if not 10 <= t < 15:  # A is hidden for 5 frames while walking on
            people["A"] = (20 + 5 * t, 100)
        frames.append(people)
    assigned = _run(PoseTracker(max_age=30), frames)
    assert len(_ids_of(assigned, "A")) == 1  # re-identified after the gap
    short = _run(PoseTracker(max_age=3), frames)
    before, after = short[9]["A"], short[15]["A"]
    assert before != after and after > max(max(f.values()) for f in short[:15])  # a fresh id, never a reused one


def test_ids_are_never_reused() -> None:
    """People come and go on a grid of far-apart places, each jittering a little: every id belongs to exactly one
    person, and each new id is larger than all earlier ones. (A place is not reused until a lost track there has
    ended: someone appearing where another person just vanished would rightly be re-identified as them.)"""
    rng = np.random.default_rng(1)
    max_age = 5
    live: dict[str, tuple[float, float]] = {}
    home: dict[str, tuple[int, int]] = {}
    vacated: dict[tuple[int, int], int] = {}  # cell -> frame it was left
    frames, counter = [], 0
    for t in range(120):
        if t % 3 == 0 and len(live) < 6:  # births at a free grid cell
            busy = set(home.values()) | {c for c, f in vacated.items() if t - f <= max_age + 1}
            cells = sorted({(x, y) for x in range(4) for y in range(3)} - busy)
            if cells:
                cell = cells[rng.integers(len(cells))]
                name = f"p{counter}"
                live[name], home[name] = (cell[0] * 150 + 60.0, cell[1] * 150 + 60.0), cell
                counter += 1
        for name in list(live):
            if rng.random() < 0.04:  # deaths
                del live[name]
                vacated[home.pop(name)] = t
        live = {n: (x + rng.normal(0, 1.5), y + rng.normal(0, 1.5)) for n, (x, y) in live.items()}
        frames.append(dict(live))
    tracker = PoseTracker(max_age=max_age)
    assigned = _run(tracker, frames)
    owner: dict[int, str] = {}
    first_seen: dict[int, int] = {}
    for t, f in enumerate(assigned):
        assert len(set(f.values())) == len(f)  # unique within a frame
        for name, tid in f.items():
            assert owner.setdefault(tid, name) == name  # one person per id, ever
            first_seen.setdefault(tid, t)
    appeared = {n for f in frames for n in f}
    assert len(owner) == len(appeared) >= 20  # one id per person, every person tracked throughout
    order = [first_seen[tid] for tid in sorted(first_seen)]
    assert order == sorted(order)  # ids handed out in increasing order


def test_reset_restarts_ids_and_forgets_tracks() -> None:
    tracker = PoseTracker(first_id=1)
    ids = tracker.update(np.array([_box(50, 50), _box(200, 50)]))
    assert sorted(ids.tolist()) == [1, 2] and sorted(tracker.live_ids) == [1, 2]
    tracker.reset()
    assert tracker.live_ids == []
    assert tracker.update(np.array([_box(200, 50)])).tolist() == [1]


def test_tracks_end_after_max_age() -> None:
    tracker = PoseTracker(max_age=2)
    tracker.update(np.array([_box(50, 50)]))
    for _ in range(3):
        tracker.update(np.zeros((0, 4)))
    assert tracker.live_ids == []


def test_low_score_boxes_get_no_track() -> None:
    tracker = PoseTracker(min_box_score=0.5)
    ids = tracker.update(np.array([_box(50, 50), _box(200, 50)]), box_scores=np.array([0.9, 0.2]))
    assert ids[0] >= 1 and ids[1] == -1


def test_call_fills_pose_result_track_ids() -> None:
    tracker = PoseTracker()
    for t in range(3):
        kpts = np.stack([_pose(50 + 3 * t, 60, 0), _pose(200, 60, 1)]).astype(np.float32)
        r = PoseResult(kpts, np.ones((2, 17)), np.stack([_box(50 + 3 * t, 60), _box(200, 60)]), np.ones(2),
                       np.full(2, -1), "coco", (200, 300))  # fmt: skip
        out = tracker(r)
        assert out is r and out.track_ids.tolist() == [1, 2]


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="metric"):
        PoseTracker(metric="euclid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="matcher"):
        PoseTracker(matcher="auction")  # type: ignore[arg-type]
