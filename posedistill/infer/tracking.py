"""Stable person ids across video frames.

Each frame's people are matched to the live tracks by similarity: box IoU, keypoint OKS, or their mean. Tracks
carry a constant-velocity estimate of their box centre, so the comparison is made against where a track should be
now (this keeps ids through crossings, where two boxes overlap as much as they overlapped their own past). Matching
runs in two rounds, as ByteTrack does for its score tiers: first against the tracks seen in the previous frame,
then the leftover people against lost tracks (unseen for up to ``max_age`` frames), so that a long-lost track never
takes a person away from a track that was there a moment ago. Each round is an optimal assignment
(``scipy.optimize.linear_sum_assignment``) or greedy, pairs below ``min_similarity`` are refused, and every
unmatched person starts a new track.

Ids come from a counter that only increases: an id is never reused while its track lives, nor later in the same
video (``reset()`` between videos starts again at ``first_id``). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from posedistill.layouts import get_layout

if TYPE_CHECKING:
    from posedistill.infer.results import PoseResult

Metric = Literal["iou", "oks", "iou_oks"]
Matcher = Literal["hungarian", "greedy"]
_DEFAULT_SIGMA = 0.08  # for layouts without OKS sigmas (roughly COCO's limb sigmas)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M) (continuous-area convention, no +1)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def pose_oks(
    kpts_a: np.ndarray,
    scores_a: np.ndarray,
    kpts_b: np.ndarray,
    scores_b: np.ndarray,
    areas_b: np.ndarray,
    sigmas: np.ndarray,
    kpt_thr: float,
) -> np.ndarray:
    """OKS between poses (N, K, 2) and (M, K, 2) -> (N, M), over keypoints scoring >= ``kpt_thr`` in both, with
    the object scale from ``areas_b`` (M,) (box areas, px^2). 0 where no keypoint is valid in both."""
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # (K,)
    d2 = ((kpts_a[:, None].astype(np.float64) - kpts_b[None].astype(np.float64)) ** 2).sum(-1)  # (N, M, K)
    e = d2 / (2.0 * var[None, None] * np.maximum(areas_b, 1.0)[None, :, None])
    valid = (scores_a[:, None] >= kpt_thr) & (scores_b[None] >= kpt_thr)
    n_valid = valid.sum(-1)
    total = (np.exp(-e) * valid).sum(-1)
    return np.where(n_valid > 0, total / np.maximum(n_valid, 1), 0.0)


def assign(similarity: np.ndarray, min_similarity: float, matcher: Matcher = "hungarian") -> list[tuple[int, int]]:
    """(row, col) pairs maximising the total similarity (Hungarian) or picked best-first (greedy); pairs below
    ``min_similarity`` are never returned."""
    if similarity.size == 0:
        return []
    if matcher == "hungarian":
        from scipy.optimize import linear_sum_assignment  # imported here: scipy.optimize takes ~0.5 s to import

        # refused pairs get a cost no accepted pair can beat, then are dropped
        cost = np.where(similarity >= min_similarity, -similarity, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if similarity[r, c] >= min_similarity]
    if matcher == "greedy":
        pairs = []
        used_r: set[int] = set()
        used_c: set[int] = set()
        order = np.argsort(-similarity, axis=None, kind="stable")
        for flat in order:
            r, c = divmod(int(flat), similarity.shape[1])
            if similarity[r, c] < min_similarity:
                break
            if r in used_r or c in used_c:
                continue
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
        return pairs
    raise ValueError(f"unknown matcher {matcher!r}; expected 'hungarian' or 'greedy'")


@dataclass
class Track:
    """One tracked person. ``velocity`` is the box-centre motion in pixels per frame."""

    track_id: int
    box: np.ndarray  # (4,) last matched box, xyxy
    keypoints: np.ndarray | None  # (K, 2) last matched keypoints
    scores: np.ndarray | None  # (K,)
    last_frame: int
    hits: int = 1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def shift(self, frame: int) -> np.ndarray:
        """(2,) predicted displacement of the centre since the last match, at frame ``frame``."""
        return self.velocity * (frame - self.last_frame)


class PoseTracker:
    """Give each person a stable track id.

    Args:
        metric: ``"iou"`` (boxes), ``"oks"`` (keypoints) or ``"iou_oks"`` (their mean; IoU alone when no keypoints
            are given).
        min_similarity: pairs less similar than this are never matched.
        max_age: frames a lost track is remembered for re-identification; older tracks end.
        matcher: ``"hungarian"`` (optimal assignment) or ``"greedy"`` (best pair first).
        kpt_thr: keypoints scoring below this are ignored by OKS.
        sigmas: OKS sigmas (K,); default: the layout's, else 0.08 for every keypoint.
        use_velocity: predict each track's box by its constant-velocity motion before comparing.
        min_box_score: people whose box score is below this get no track (id -1) and start none.
        first_id: the first id handed out after construction or ``reset()``.

    ``update(boxes, keypoints, scores, box_scores)`` returns the (N,) int64 ids of one frame's people;
    ``__call__(result)`` does the same for a :class:`PoseResult` and returns it with ``track_ids`` filled.
    """

    def __init__(
        self,
        metric: Metric = "iou_oks",
        min_similarity: float = 0.3,
        max_age: int = 30,
        matcher: Matcher = "hungarian",
        kpt_thr: float = 0.3,
        sigmas: np.ndarray | None = None,
        use_velocity: bool = True,
        min_box_score: float = 0.0,
        first_id: int = 1,
    ) -> None:
        if metric not in ("iou", "oks", "iou_oks"):
            raise ValueError(f"unknown tracking metric {metric!r}; expected 'iou', 'oks' or 'iou_oks'")
        if matcher not in ("hungarian", "greedy"):
            raise ValueError(f"unknown matcher {matcher!r}; expected 'hungarian' or 'greedy'")
        self.metric = metric
        self.min_similarity = float(min_similarity)
        self.max_age = int(max_age)
        self.matcher: Matcher = matcher
        self.kpt_thr = float(kpt_thr)
        self.sigmas = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        self.use_velocity = use_velocity
        self.min_box_score = float(min_box_score)
        self.first_id = int(first_id)
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at ``first_id`` (call between videos)."""
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = self.first_id

    @property
    def live_ids(self) -> list[int]:
        """Ids of the tracks alive now (seen within ``max_age`` frames)."""
        return [t.track_id for t in self.tracks]

    def _new_id(self) -> int:
        tid = self._next_id
        self._next_id += 1
        return tid

    def _similarity(
        self,
        tracks: list[Track],
        boxes: np.ndarray,
        keypoints: np.ndarray | None,
        scores: np.ndarray | None,
        sigmas: np.ndarray | None,
    ) -> np.ndarray:
        """(T, N) similarity of the tracks (at their predicted position) to this frame's people."""
        shifts = np.stack([t.shift(self.frame) if self.use_velocity else np.zeros(2) for t in tracks])
        t_boxes = np.stack([t.box for t in tracks]) + np.tile(shifts, 2)
        iou = box_iou(t_boxes, boxes)
        if self.metric == "iou" or keypoints is None or scores is None:
            return iou
        have_kpts = np.array([t.keypoints is not None for t in tracks])
        oks = np.zeros_like(iou)
        if have_kpts.any():
            idx = np.flatnonzero(have_kpts)
            t_k = np.stack([tracks[i].keypoints + shifts[i] for i in idx])  # type: ignore[operator]
            t_s = np.stack([tracks[i].scores for i in idx])  # type: ignore[misc]
            wh = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
            oks[idx] = pose_oks(t_k, t_s, keypoints, scores, wh[:, 0] * wh[:, 1], sigmas, self.kpt_thr)  # type: ignore[arg-type]
        if self.metric == "oks":
            # tracks without keypoints can still be matched by their box
            return np.where(have_kpts[:, None], oks, iou)
        return np.where(have_kpts[:, None], 0.5 * (iou + oks), iou)

    def update(
        self,
        boxes: np.ndarray,
        keypoints: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        box_scores: np.ndarray | None = None,
        layout: str | None = None,
    ) -> np.ndarray:
        """Advance one frame. boxes (N, 4) xyxy, keypoints (N, K, 2), scores (N, K), box_scores (N,) -> ids (N,)
        int64 (-1 for people below ``min_box_score``)."""
        self.frame += 1
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = len(boxes)
        if keypoints is not None:
            keypoints = np.asarray(keypoints, dtype=np.float64)
            if keypoints.ndim != 3:  # (N, K, 2) as it is: reshape(0, -1, 2) fails on frames without people
                keypoints = keypoints.reshape(n, -1, 2)
            scores = np.ones(keypoints.shape[:2]) if scores is None else np.asarray(scores, dtype=np.float64)
        sigmas = self.sigmas
        if sigmas is None and keypoints is not None:
            lay_sigmas = get_layout(layout).sigmas if layout is not None else None
            sigmas = np.asarray(lay_sigmas) if lay_sigmas is not None else np.full(keypoints.shape[1], _DEFAULT_SIGMA)
        ids = np.full(n, -1, dtype=np.int64)
        eligible = np.ones(n, dtype=bool)
        if box_scores is not None:
            eligible &= np.asarray(box_scores, dtype=np.float64).reshape(-1) >= self.min_box_score

        # drop tracks that are too old, then match in two rounds: recent tracks first, then lost ones
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame <= self.max_age]
        recent = [t for t in self.tracks if t.last_frame == self.frame - 1]
        lost = [t for t in self.tracks if t.last_frame < self.frame - 1]
        free = np.flatnonzero(eligible)
        for group in (recent, lost):
            if not group or free.size == 0:
                continue
            sim = self._similarity(
                group,
                boxes[free],
                None if keypoints is None else keypoints[free],
                None if scores is None else scores[free],
                sigmas,
            )
            matched = set()
            for r, c in assign(sim, self.min_similarity, self.matcher):
                det = int(free[c])
                self._refresh(group[r], boxes[det], keypoints, scores, det)
                ids[det] = group[r].track_id
                matched.add(c)
            free = np.asarray([d for j, d in enumerate(free) if j not in matched], dtype=np.int64)

        for det in free:
            track = Track(
                track_id=self._new_id(),
                box=boxes[det].copy(),
                keypoints=None if keypoints is None else keypoints[det].copy(),
                scores=None if scores is None else scores[det].copy(),  # type: ignore[index]
                last_frame=self.frame,
            )
            self.tracks.append(track)
            ids[det] = track.track_id
        return ids

    def _refresh(
        self, track: Track, box: np.ndarray, keypoints: np.ndarray | None, scores: np.ndarray | None, det: int
    ) -> None:
        gap = self.frame - track.last_frame
        motion = (0.5 * (box[:2] + box[2:]) - 0.5 * (track.box[:2] + track.box[2:])) / max(gap, 1)
        # the first measured motion is taken as is, later ones are averaged with the estimate to damp jitter
        track.velocity = motion if track.hits == 1 else 0.5 * (track.velocity + motion)
        track.box = box.copy()
        if keypoints is not None and scores is not None:
            track.keypoints = keypoints[det].copy()
            track.scores = scores[det].copy()
        track.last_frame = self.frame
        track.hits += 1

    def __call__(self, result: PoseResult) -> PoseResult:
        """Fill ``result.track_ids`` (in place) for the next frame and return ``result``."""
        result.track_ids = self.update(
            result.boxes, result.keypoints, result.scores, result.box_scores, layout=result.layout
        )
        return result
