"""Online DKD video pose estimation: ``VideoPoseEstimator.step(frame, boxes_or_tracks)`` frame after frame.

Per track the estimator keeps the previous frame's encoder features and heatmaps (:class:`TrackState`). On each
frame it crops every given person (top-down, the box ×1.25, the training crop), then, batched over the people:

- a track without state, or due for re-initialisation (``reinit_every`` frames since its last initialisation),
  runs the pose initializer (plus the encoder, for the next frame's kernels);
- every other track runs the DKD step (encoder, distillator, matching) from its state; a step whose heatmap
  confidence (mean of the joints' maxima) falls below ``min_confidence`` is redone by the initializer.

The heatmaps are decoded with the codec (numpy, as the runtime does) and mapped back to image pixels. A track
absent from a frame keeps its state for ``max_missing`` frames (default 0: dropped at once, re-initialised when
it comes back). :meth:`VideoPoseEstimator.reset` forgets everything: call it between videos (``step(...,
new_video=True)`` does it first). ``stats`` counts person-frames, initialisations and redone steps, what
:func:`posedistill.eval.video.dkd_run_flops` needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from posedistill.codecs import HeatmapCodec
from posedistill.data.loader import MEAN_RGB, STD_RGB, normalise_lut, to_input_tensor
from posedistill.data.transforms import bbox_xywh_to_cs, crop_to_image, topdown_affine
from posedistill.infer.dkd_tracks import EstimatorStats, TrackPose, drop_lost_tracks, track_boxes
from posedistill.models.dkd import DKDNet, build_dkd, heatmap_confidence

Box = Sequence[float] | np.ndarray


@dataclass
class TrackState:
    """What DKD carries from one frame of a track to the next."""

    features: Tensor  # C×h×w encoder features of the last frame
    heatmaps: Tensor  # K×h×w heatmaps of the last frame
    since_init: int  # frames since the last (re)initialisation (0 on that frame)
    last_frame: int  # frame counter of the last update


def crop_person(
    image: np.ndarray, box: Box, input_size: tuple[int, int], lut: np.ndarray, padding: float = 1.25,
    udp: bool = False,
) -> tuple[Tensor, np.ndarray, np.ndarray]:  # fmt: skip
    """The top-down crop of one person as training makes it (box x, y, w, h ×``padding``, aspect fixed to the
    input, no rotation): (3×h×w normalised RGB tensor, centre (2,), aspect-fixed scale (2,)); ``lut`` from
    :func:`posedistill.data.loader.normalise_lut`."""
    center, scale = bbox_xywh_to_cs(np.asarray(box, dtype=np.float32), padding)
    crop = topdown_affine(image, None, center, scale, 0.0, input_size, udp)
    return to_input_tensor(crop.image, lut), crop.center, crop.scale


class VideoPoseEstimator:
    """Online DKD over the people of a video (see the module docstring).

    Args:
        net: the DKD network (put in eval mode here).
        codec: heatmap codec of the network's heatmaps (decode only).
        input_size: crop (w, h); default ``net.build_args["input_size"]``.
        reinit_every, min_confidence: re-initialisation policy; -1 (default) takes the network's settings,
            None disables.
        max_missing: frames a track may be absent and keep its state.
        box_format: ``xywh`` or ``xyxy`` for the boxes given to :meth:`step`.
        device, padding, udp, mean, std: model device and top-down crop settings (as training).
    """

    def __init__(
        self,
        net: DKDNet,
        codec: HeatmapCodec,
        input_size: tuple[int, int] | None = None,
        reinit_every: int | None = -1,
        min_confidence: float | None = -1.0,
        max_missing: int = 0,
        box_format: str = "xywh",
        device: str | torch.device = "cpu",
        padding: float = 1.25,
        udp: bool = False,
        mean: Sequence[float] = MEAN_RGB,
        std: Sequence[float] = STD_RGB,
    ) -> None:
        if box_format not in ("xywh", "xyxy"):
            raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}")
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.codec = codec
        size = input_size or getattr(net, "build_args", {}).get("input_size") or codec.input_size
        self.input_size = (int(size[0]), int(size[1]))
        self.reinit_every = net.reinit_every if reinit_every == -1 else reinit_every
        self.min_confidence = net.min_confidence if min_confidence == -1.0 else min_confidence
        if self.reinit_every is not None and self.reinit_every < 1:
            raise ValueError(f"reinit_every must be >= 1 or None, got {self.reinit_every}")
        self.max_missing = int(max_missing)
        self.box_format = box_format
        self.padding, self.udp = float(padding), bool(udp)
        self._lut = normalise_lut(mean, std)
        self.states: dict[Any, TrackState] = {}
        self.frame = 0
        self.stats = EstimatorStats()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", **kw: Any) -> VideoPoseEstimator:
        """Rebuild the network and codec from a DKD training checkpoint folder (``weights.safetensors`` +
        ``meta.json`` written by ``posedistill train`` with ``method.type: dkd``)."""
        from posedistill.codecs import build_codec
        from posedistill.engine.checkpoint import CheckpointError, load_weights, read_meta

        meta = read_meta(path)
        args = dict(meta["model"]["build_args"])
        if args.get("name") != "dkd":
            raise CheckpointError(f"{path}: not a DKD checkpoint (model {args.get('name')!r})")
        net = build_dkd(**args)
        net.load_state_dict(load_weights(path), strict=True)
        codec = build_codec(dict(meta["codec"]))
        if not isinstance(codec, HeatmapCodec):
            raise CheckpointError(f"{path}: DKD needs a heatmap codec, the checkpoint has {meta['codec']}")
        return cls(net, codec, device=device, **kw)

    def reset(self) -> None:
        """Forget every track (call between videos)."""
        self.states.clear()
        self.frame = 0

    def _crop(self, image: np.ndarray, box: np.ndarray) -> tuple[Tensor, np.ndarray, np.ndarray]:
        if self.box_format == "xyxy":
            box = np.array([box[0], box[1], box[2] - box[0], box[3] - box[1]])
        return crop_person(image, box, self.input_size, self._lut, self.padding, self.udp)

    @torch.no_grad()
    def step(self, frame: np.ndarray, boxes_or_tracks: Any, new_video: bool = False) -> list[TrackPose]:
        """Estimate the poses of the given people in ``frame`` ((H, W, 3) BGR uint8).

        ``boxes_or_tracks``: ``{track_id: box}`` or an (N, 4) array of boxes (track id = row index). Returns one
        :class:`TrackPose` per person, in the given order."""
        if new_video:
            self.reset()
        people = track_boxes(boxes_or_tracks)
        self.stats.frames += 1
        out: list[TrackPose] = []
        if people:
            crops = [self._crop(frame, box) for _, box in people]
            images = torch.stack([c[0] for c in crops]).to(self.device)
            due = []
            for tid, _ in people:
                st = self.states.get(tid)
                fresh = st is None or self.frame - st.last_frame > self.max_missing + 1
                periodic = st is not None and self.reinit_every is not None and st.since_init + 1 >= self.reinit_every
                due.append(fresh or periodic)
            due_t = torch.tensor(due, dtype=torch.bool)
            heatmaps = features = None
            tracked = [i for i, d in enumerate(due) if not d]
            if tracked:
                prev_f = torch.stack([self.states[people[i][0]].features for i in tracked])
                prev_h = torch.stack([self.states[people[i][0]].heatmaps for i in tracked])
                step_h, step_f = self.net.step(images[tracked], prev_f, prev_h)
                n = len(people)
                heatmaps = step_h.new_zeros((n, *step_h.shape[1:]))
                features = step_f.new_zeros((n, *step_f.shape[1:]))
                heatmaps[tracked], features[tracked] = step_h, step_f
                if self.min_confidence is not None:
                    low = heatmap_confidence(step_h) < self.min_confidence
                    for j in torch.nonzero(low).flatten().tolist():
                        due_t[tracked[j]] = True
                        self.stats.redone += 1
            self.stats.initialised += sum(due)
            init_idx = torch.nonzero(due_t).flatten().tolist()
            if init_idx:
                init_h, init_f = self.net.initial(images[init_idx])
                if heatmaps is None:
                    heatmaps = init_h.new_zeros((len(people), *init_h.shape[1:]))
                    features = init_f.new_zeros((len(people), *init_f.shape[1:]))
                heatmaps[init_idx], features[init_idx] = init_h, init_f
            kp_crop, scores = self.codec.decode(heatmaps.float().cpu().numpy())
            centers = np.stack([c[1] for c in crops])
            scales = np.stack([c[2] for c in crops])
            kp_img = crop_to_image(kp_crop, centers, scales, self.input_size, udp=self.udp)
            for i, (tid, box) in enumerate(people):
                was = self.states.get(tid)
                since = 0 if bool(due_t[i]) else was.since_init + 1
                self.states[tid] = TrackState(features[i], heatmaps[i], since, self.frame)
                out.append(TrackPose(tid, kp_img[i], scores[i], box.astype(np.float32), bool(due_t[i])))
            self.stats.person_frames += len(people)
        drop_lost_tracks(self.states, {tid for tid, _ in people}, self.frame, self.max_missing)
        self.frame += 1
        return out


def predict_records(
    estimator: VideoPoseEstimator, instances: Sequence[Any], read: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the estimator over video records (:class:`~posedistill.data.instance.Instance`, any number of videos
    and tracks) in frame order with their own boxes, resetting between videos.

    Returns keypoints (N, K, 2) image pixels, scores (N, K) and initialised (N,) bool, aligned with ``instances``.
    ``read(path) -> BGR image`` defaults to :func:`posedistill.data.image_io.read_image`."""
    from collections import defaultdict

    from posedistill.data.image_io import read_image

    read = read or read_image
    frames: dict[Any, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, inst in enumerate(instances):
        frames[str(inst.video_id)][int(inst.frame_index)].append(i)
    k = estimator.net.num_keypoints
    keypoints = np.zeros((len(instances), k, 2), np.float32)
    scores = np.zeros((len(instances), k), np.float32)
    initialised = np.zeros(len(instances), bool)
    for video in frames:
        estimator.reset()
        last = None
        for t in sorted(frames[video]):
            rows = frames[video][t]
            if last is not None and t - last > 1:  # missing frames: the tracks restart
                estimator.reset()
            last = t
            image = read(instances[rows[0]].image_path)
            poses = estimator.step(image, {str(instances[r].track_id): instances[r].bbox for r in rows})
            for r, pose in zip(rows, poses):
                keypoints[r], scores[r], initialised[r] = pose.keypoints, pose.scores, pose.initialised
    estimator.reset()
    return keypoints, scores, initialised
