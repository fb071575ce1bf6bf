"""DKD in the runtime: a video pose model that keeps per-person state from frame to frame.

:class:`DKDPoseEstimator` is a pose estimator for :class:`~posedistill.infer.pipeline.PosePipeline` (``est(image,
boxes=None | (N, 4) xyxy) -> PoseResult``, ``layout``, ``reset()``) around an online DKD runner: the PyTorch
:class:`~posedistill.infer.video_estimator.VideoPoseEstimator` (a DKD training checkpoint, :meth:`from_checkpoint`)
or the torch-free :class:`OnnxVideoPoseEstimator` (the two graphs of ``posedistill export``, :meth:`from_onnx`).

DKD follows each person with kernels distilled from that person's previous frame, so every box of a frame needs a
stable key. :class:`BoxAssociator` gives it: the boxes of the frame are matched to the last boxes of the tracks the
runner still holds by IoU (Hungarian assignment, or greedy), pairs below ``iou_threshold`` are refused, and an
unmatched box starts a new track (its first frame runs the pose initializer). A track missing from a frame is
dropped, or kept for ``max_missing`` frames, by the runner's own policy; its key is forgotten with it. The keys are
the result's ``track_ids`` (a pipeline tracker, when there is one, overwrites them with its own).

With no boxes and no detector the whole frame is one person. :meth:`DKDPoseEstimator.reset` (called by the
pipeline at every new video) forgets every track.

::

    from posedistill.infer.dkd_estimator import DKDPoseEstimator
    est = DKDPoseEstimator.from_checkpoint("work_dirs/dkd_synthetic-video/best")   # or .from_onnx("dkd.onnx")
    for frame in video:
        res = est(frame, boxes_xyxy)      # PoseResult: keypoints (N, K, 2) image pixels, scores, track ids

The module itself is torch-free; only :meth:`DKDPoseEstimator.from_checkpoint` imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# dkd_files / dkd_tracks / image_input hold what estimator.py and video_estimator.py share with this module
# (no import cycle); the names stay importable from here.
from posedistill.infer.dkd_files import dkd_onnx_role as dkd_onnx_role
from posedistill.infer.dkd_files import is_dkd_checkpoint as is_dkd_checkpoint
from posedistill.infer.dkd_tracks import EstimatorStats, TrackPose, drop_lost_tracks, track_boxes
from posedistill.infer.image_input import as_bgr
from posedistill.infer.results import PoseResult

Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
MATCH_METHODS = ("hungarian", "greedy")


# ------------------------------------------------------------------------------------------------ association
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) and (M, 4) xyxy boxes → (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


class BoxAssociator:
    """Stable integer keys for the boxes of consecutive frames, by IoU with each live track's last box.

    Args:
        iou_threshold: a box continues a track only if their IoU is at least this.
        method: ``hungarian`` (``scipy.optimize.linear_sum_assignment`` on the IoU matrix: the largest total IoU)
            or ``greedy`` (the best remaining pair first).
    """

    def __init__(self, iou_threshold: float = 0.3, method: str = "hungarian") -> None:
        if method not in MATCH_METHODS:
            raise ValueError(f"method must be one of {MATCH_METHODS}, got {method!r}")
        if not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
        self.iou_threshold = float(iou_threshold)
        self.method = method
        self.boxes: dict[int, np.ndarray] = {}  # key -> last xyxy box
        self.next_key = 0

    def reset(self) -> None:
        self.boxes.clear()
        self.next_key = 0

    def _pairs(self, iou: np.ndarray) -> list[tuple[int, int]]:
        """(row, column) pairs of the assignment on ``iou`` (N, M), all at least the threshold."""
        if iou.size == 0:
            return []
        if self.method == "hungarian":
            from scipy.optimize import linear_sum_assignment  # imported here: scipy.optimize takes ~0.5 s

            rows, cols = linear_sum_assignment(-iou)
            pairs = list(zip(rows.tolist(), cols.tolist()))
        else:
            order = np.argsort(-iou, axis=None, kind="stable")
            used_r: set[int] = set()
            used_c: set[int] = set()
            pairs = []
            for flat in order.tolist():
                r, c = divmod(flat, iou.shape[1])
                if r not in used_r and c not in used_c:
                    pairs.append((r, c))
                    used_r.add(r)
                    used_c.add(c)
        return [(r, c) for r, c in pairs if iou[r, c] >= self.iou_threshold]

    def assign(self, boxes: np.ndarray) -> np.ndarray:
        """Keys (N,) int64 for (N, 4) xyxy ``boxes``: the matched track's key, or a new one. Stores the boxes as
        the tracks' last boxes."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        keys = np.full(len(boxes), -1, np.int64)
        old = list(self.boxes)
        if old and len(boxes):
            iou = box_iou(boxes, np.stack([self.boxes[k] for k in old]))
            for r, c in self._pairs(iou):
                keys[r] = old[c]
        for i in np.flatnonzero(keys < 0):
            keys[i] = self.next_key
            self.next_key += 1
        for key, box in zip(keys.tolist(), boxes):
            self.boxes[key] = box.copy()
        return keys

    def keep(self, keys: Iterable[Any]) -> None:
        """Forget every track whose key is not in ``keys`` (the tracks the runner still holds)."""
        alive = set(keys)
        for key in [k for k in self.boxes if k not in alive]:
            del self.boxes[key]


# ------------------------------------------------------------------------------------------------ the adapter
class DKDPoseEstimator:
    """A DKD video runner as a pipeline pose estimator (see the module docstring).

    Args:
        runner: ``step(frame, {key: box}) -> [pose with .keypoints (K, 2), .scores (K,), .initialised]`` in the
            given order, ``reset()``, ``states`` (the keys it still holds) and ``box_format`` (``xywh`` or
            ``xyxy``): a :class:`~posedistill.infer.video_estimator.VideoPoseEstimator` or an
            :class:`OnnxVideoPoseEstimator`.
        layout: keypoint layout name of the model.
        detector: ``image -> (boxes (N, 4) xyxy, scores (N,))`` used when a call gives no boxes; None: the
            whole frame is one person.
        iou_threshold, match: the :class:`BoxAssociator` settings.
    """

    def __init__(
        self,
        runner: Any,
        layout: str,
        detector: Detector | None = None,
        iou_threshold: float = 0.3,
        match: str = "hungarian",
    ) -> None:
        from posedistill.layouts import get_layout

        self.runner = runner
        self._layout = get_layout(layout).name
        self.detector = detector
        self.associator = BoxAssociator(iou_threshold, match)
        self.last_initialised = np.zeros(0, bool)  # (N,) of the last call: which people the initializer ran on

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "cpu",
        layout: str | None = None,
        detector: Detector | None = None,
        iou_threshold: float = 0.3,
        match: str = "hungarian",
        **runner_kw: Any,
    ) -> DKDPoseEstimator:
        """From a DKD training checkpoint folder (PyTorch); ``runner_kw`` go to
        :meth:`VideoPoseEstimator.from_checkpoint` (``reinit_every``, ``min_confidence``, ``max_missing``, …)."""
        from posedistill.engine.checkpoint import read_meta
        from posedistill.infer.onnx_model import resolve_layout
        from posedistill.infer.video_estimator import VideoPoseEstimator

        runner = VideoPoseEstimator.from_checkpoint(path, device=device, **runner_kw)
        k = int(runner.net.num_keypoints)
        name, _ = resolve_layout(str(path), k, layout or read_meta(path).get("layout"))
        return cls(runner, name, detector, iou_threshold, match)

    @classmethod
    def from_onnx(
        cls,
        path: str | Path,
        layout: str | None = None,
        detector: Detector | None = None,
        iou_threshold: float = 0.3,
        match: str = "hungarian",
        **runner_kw: Any,
    ) -> DKDPoseEstimator:
        """From the two graphs of ``posedistill export`` (either file; torch-free); ``runner_kw`` go to
        :class:`OnnxVideoPoseEstimator`."""
        runner = OnnxVideoPoseEstimator(path, layout=layout, **runner_kw)
        return cls(runner, runner.layout, detector, iou_threshold, match)

    @property
    def layout(self) -> str:
        return self._layout

    temporal = True  # PosePipeline calls it on frames without people too (tracks must age)

    def reset(self) -> None:
        """Forget every track and key (a new video)."""
        self.runner.reset()
        self.associator.reset()
        self.last_initialised = np.zeros(0, bool)

    def __call__(
        self,
        image: np.ndarray,
        boxes: np.ndarray | Sequence[Sequence[float]] | None = None,
        box_scores: np.ndarray | Sequence[float] | None = None,
        frame_id: int | None = None,
    ) -> PoseResult:
        """Poses of the people in ``image`` ((H, W, 3) uint8 BGR), one DKD frame of each person's track.

        ``boxes``: (N, 4) xyxy; None: the detector's, or the whole frame. Returns keypoints (N, K, 2) in image
        pixels, scores (N, K) (heatmap maxima), the boxes and the track keys as ``track_ids``."""
        image = as_bgr(image)
        h, w = image.shape[:2]
        if boxes is None and self.detector is not None:
            boxes, box_scores = self.detector(image)
        if boxes is None:
            boxes_arr = np.array([[0, 0, w, h]], np.float32)
        else:
            boxes_arr = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores_arr = (
            np.ones(len(boxes_arr), np.float32) if box_scores is None
            else np.asarray(box_scores, np.float32).reshape(-1)
        )  # fmt: skip
        if len(scores_arr) != len(boxes_arr):
            raise ValueError(f"{len(boxes_arr)} boxes but {len(scores_arr)} box scores")
        keys = self.associator.assign(boxes_arr)
        given = boxes_arr.astype(np.float64)
        if self.runner.box_format == "xywh":
            given = np.concatenate([given[:, :2], given[:, 2:] - given[:, :2]], axis=1)
        poses = self.runner.step(image, {int(key): box for key, box in zip(keys.tolist(), given)})
        self.associator.keep(self.runner.states)
        self.last_initialised = np.array([p.initialised for p in poses], bool)
        if not poses:  # the runner still advanced: tracks absent from this frame follow its policy
            return PoseResult.empty(self._layout, (h, w), frame_id)
        return PoseResult(
            keypoints=np.stack([p.keypoints for p in poses]),
            scores=np.stack([p.scores for p in poses]),
            boxes=boxes_arr,
            box_scores=scores_arr,
            track_ids=keys,
            layout=self._layout,
            image_shape=(h, w),
            frame_id=frame_id,
        )


# ------------------------------------------------------------------------------------------------ ONNX runner
@dataclass
class OnnxTrackState:
    """What DKD carries from one frame of a track to the next (numpy)."""

    features: np.ndarray  # C×h×w
    heatmaps: np.ndarray  # K×h×w
    since_init: int
    last_frame: int


class OnnxVideoPoseEstimator:
    """The online DKD runner of :class:`~posedistill.infer.video_estimator.VideoPoseEstimator` on the two ONNX
    graphs of ``posedistill export`` (onnxruntime, numpy; no torch). Same policy, same ``step`` / ``reset`` /
    ``states`` / ``stats``: a new or due track runs the initialisation graph, the others the step graph from
    their state, and a step whose confidence (mean of the joints' heatmap maxima) is below ``min_confidence``
    is redone by the initialisation graph.

    Args:
        path: either graph of the pair (``x.onnx`` or ``x_step.onnx``).
        layout: layout name when the metadata does not say.
        reinit_every, min_confidence: -1 (default) takes the exported network's settings, None disables.
        max_missing: frames a track may be absent and keep its state.
        box_format: ``xywh`` or ``xyxy`` boxes in :meth:`step`.
        threads, providers: onnxruntime session options.
    """

    def __init__(
        self,
        path: str | Path,
        layout: str | None = None,
        reinit_every: int | None = -1,
        min_confidence: float | None = -1.0,
        max_missing: int = 0,
        box_format: str = "xywh",
        threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        from posedistill.codecs import build_codec
        from posedistill.infer.onnx_model import ModelContractError, inspect_pose_session, make_session, read_metadata
        from posedistill.infer.preprocess import normalise_lut

        if box_format not in ("xywh", "xyxy"):
            raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}")
        p = Path(path)
        session = make_session(p, threads, providers)
        dkd = (read_metadata(session, p) or {}).get("dkd")
        if not isinstance(dkd, dict) or dkd.get("role") not in ("init", "step"):
            raise ModelContractError(p, "not a DKD graph of posedistill export (no 'dkd' metadata)")
        if dkd["role"] == "step":
            init_path, step_path = p.with_name(str(dkd["init_file"])), p
            session = make_session(init_path, threads, providers)
        else:
            init_path, step_path = p, p.with_name(str(dkd["step_file"]))
        self.init_session = session
        self.step_session = make_session(step_path, threads, providers)
        self.info = inspect_pose_session(self.init_session, init_path, layout)
        self.layout = self.info.layout
        self.codec = build_codec(self.info.codec)
        meta = self.info.metadata["dkd"]
        self.reinit_every = meta.get("reinit_every") if reinit_every == -1 else reinit_every
        self.min_confidence = meta.get("min_confidence") if min_confidence == -1.0 else min_confidence
        if self.reinit_every is not None and self.reinit_every < 1:
            raise ValueError(f"reinit_every must be >= 1 or None, got {self.reinit_every}")
        self.batch_size = self.info.batch_size  # None: dynamic
        self.max_missing = int(max_missing)
        self.box_format = box_format
        self._lut = normalise_lut(self.info.mean, self.info.std)
        self.states: dict[Any, OnnxTrackState] = {}
        self.frame = 0
        self.stats = EstimatorStats()

    def reset(self) -> None:
        """Forget every track (call between videos)."""
        self.states.clear()
        self.frame = 0

    def _run(self, session: Any, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(heatmaps, features) of a graph, one call per person for a fixed-batch (batch 1) export."""
        n = len(feeds["input"])
        if self.batch_size is None or n == self.batch_size:
            hm, feats = session.run(["heatmaps", "features"], feeds)
            return hm, feats
        outs = [session.run(["heatmaps", "features"], {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(n)]
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    def step(self, frame: np.ndarray, boxes_or_tracks: Any, new_video: bool = False) -> list[TrackPose]:
        """As :meth:`VideoPoseEstimator.step <posedistill.infer.video_estimator.VideoPoseEstimator.step>`:
        ``{track_id: box}`` or an (N, 4) array (id = row) → one :class:`TrackPose` per person, in order."""
        from posedistill.infer.preprocess import keypoints_to_image, preprocess

        if new_video:
            self.reset()
        people = track_boxes(boxes_or_tracks)
        self.stats.frames += 1
        out: list[TrackPose] = []
        if people:
            xyxy = np.stack([box for _, box in people]).astype(np.float32)
            if self.box_format == "xywh":
                xyxy[:, 2:] += xyxy[:, :2]
            batch = preprocess(frame, xyxy, self.info.input_size, self.info.mean, self.info.std, self.info.to_rgb,
                               self.info.padding, self.info.udp, self._lut)  # fmt: skip
            images = batch.inputs
            due = []
            for tid, _ in people:
                st = self.states.get(tid)
                fresh = st is None or self.frame - st.last_frame > self.max_missing + 1
                periodic = st is not None and self.reinit_every is not None and st.since_init + 1 >= self.reinit_every
                due.append(fresh or periodic)
            self.stats.initialised += sum(due)
            redo = list(due)
            heatmaps: np.ndarray | None = None
            features: np.ndarray | None = None
            tracked = [i for i, d in enumerate(due) if not d]
            if tracked:
                feeds = {
                    "input": images[tracked],
                    "prev_features": np.stack([self.states[people[i][0]].features for i in tracked]),
                    "prev_heatmaps": np.stack([self.states[people[i][0]].heatmaps for i in tracked]),
                }
                step_h, step_f = self._run(self.step_session, feeds)
                heatmaps = np.zeros((len(people), *step_h.shape[1:]), np.float32)
                features = np.zeros((len(people), *step_f.shape[1:]), np.float32)
                heatmaps[tracked], features[tracked] = step_h, step_f
                if self.min_confidence is not None:
                    confidence = step_h.reshape(len(tracked), step_h.shape[1], -1).max(axis=2).mean(axis=1)
                    for j in np.flatnonzero(confidence < self.min_confidence).tolist():
                        redo[tracked[j]] = True
                        self.stats.redone += 1
            init_idx = [i for i, r in enumerate(redo) if r]
            if init_idx:
                init_h, init_f = self._run(self.init_session, {"input": images[init_idx]})
                if heatmaps is None or features is None:
                    heatmaps = np.zeros((len(people), *init_h.shape[1:]), np.float32)
                    features = np.zeros((len(people), *init_f.shape[1:]), np.float32)
                heatmaps[init_idx], features[init_idx] = init_h, init_f
            assert heatmaps is not None and features is not None
            kp_crop, scores = self.codec.decode(heatmaps)
            kp_img = keypoints_to_image(kp_crop, batch.centers, batch.scales, self.info.input_size, self.info.udp)
            for i, (tid, box) in enumerate(people):
                was = self.states.get(tid)
                since = 0 if redo[i] or was is None else was.since_init + 1
                self.states[tid] = OnnxTrackState(features[i], heatmaps[i], since, self.frame)
                out.append(TrackPose(tid, kp_img[i], scores[i], box.astype(np.float32), redo[i]))
            self.stats.person_frames += len(people)
        drop_lost_tracks(self.states, {tid for tid, _ in people}, self.frame, self.max_missing)
        self.frame += 1
        return out
