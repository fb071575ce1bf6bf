"""Video clips for temporal models (DKD): T consecutive frames of one tracked person, as a torch Dataset.

Any reader's video records work (``video_id``, ``frame_index``, ``track_id`` set): the synthetic video generator's
``videos.json`` (``read_coco``), PoseTrack18, JHMDB / Sub-JHMDB clips, Penn Action label files and Bonn PoseTrack.
:func:`group_tracks` sorts the records of each (video, track) by frame and cuts a track where frames are missing
(more than ``max_gap`` apart, so PoseTrack's every-4th-frame validation labels need ``max_gap=4``). A clip is a
window of ``T`` records of one track (:func:`clip_windows`).

:class:`ClipDataset` has two modes:

- ``clips`` (training): every window of T frames (``stride`` apart). One augmentation is drawn per clip and applied
  to every frame (same flip, scale and rotation factors relative to each frame's own box, same colour jitter and
  the same dropout hole; no half-body crop), so the motion inside the clip stays real. Each frame is cropped from
  its own box, as a tracker would give it. Item: ``image`` T×3×h×w, the codec's ``heatmaps`` T×K×H×W and
  ``weights`` T×K, ``keypoints`` T×K×2 (crop pixels), ``visibility`` T×K, ``frame_center`` / ``frame_scale`` T×2,
  ``index`` (T,) record indices.
- ``frames`` (validation through the engine): one item per record t, holding the frames of its segment up to t:
  frames s..t with s the start of t's segment of length T (segments start at the track's first frame), padded
  to T by repeating frame t. A causal model run from frame s then gives frame t's prediction at ``position``
  t − s: exactly the online result with re-initialisation every T frames. ``center`` / ``scale`` / ``index`` are
  frame t's, so the engine's validation maps the keypoints back and scores them like any top-down dataset.

Dataset helpers (numpy only): :func:`read_jhmdb_splits` (the ``<action>_test_split<n>.txt`` files of JHMDB and
Sub-JHMDB), :func:`read_sub_jhmdb`, :func:`read_penn_action_split`, :func:`map_instances` (another layout, e.g.
JHMDB → COCO), :func:`read_clip_source` (a config source, generating synthetic videos when asked).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from posedistill.data.augment import AugConfig, augment_crop, new_sample, random_bbox_transform, random_flip, sample_rng
from posedistill.data.image_io import read_image
from posedistill.data.instance import Instance
from posedistill.data.loader import MEAN_RGB, STD_RGB, WEIGHT_KEYS, normalise_lut, one_opencv_thread, to_input_tensor
from posedistill.data.transforms import topdown_affine
from posedistill.errors import PoseDataError
from posedistill.layouts import Layout, get_layout, get_mapping

log = logging.getLogger(__name__)

CLIP_MODES = ("clips", "frames")


# ------------------------------------------------------------------------------------------------ tracks
def group_tracks(instances: Sequence[Instance], max_gap: int = 1) -> list[list[int]]:
    """Indices of ``instances`` per track, each sorted by frame: records sharing (video_id, track_id), cut where
    consecutive frames are more than ``max_gap`` apart. Records without ``frame_index`` are rejected; a missing
    ``track_id`` counts as one person per video; a repeated (video, track, frame) is an error."""
    if max_gap < 1:
        raise ValueError(f"max_gap must be >= 1, got {max_gap}")
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, inst in enumerate(instances):
        if inst.frame_index is None:
            raise PoseDataError(inst.image_path, "video clips need frame_index on every record",
                                record=f"instance {i} (id {inst.instance_id!r})", field="frame_index")  # fmt: skip
        groups[(str(inst.video_id), str(inst.track_id))].append(i)
    tracks = []
    for (video, track), idx in groups.items():
        idx.sort(key=lambda i: int(instances[i].frame_index))
        run = [idx[0]]
        for prev, cur in zip(idx, idx[1:]):
            gap = int(instances[cur].frame_index) - int(instances[prev].frame_index)
            if gap == 0:
                raise PoseDataError(instances[cur].image_path, f"video {video} track {track} has two records for "
                                    f"frame {instances[cur].frame_index}", field="track_id")  # fmt: skip
            if gap > max_gap:
                tracks.append(run)
                run = []
            run.append(cur)
        tracks.append(run)
    return tracks


def clip_windows(tracks: Sequence[Sequence[int]], length: int, stride: int = 1) -> list[list[int]]:
    """Every window of ``length`` consecutive records of a track, starting ``stride`` records apart."""
    if length < 1 or stride < 1:
        raise ValueError(f"clip length and stride must be >= 1, got {length}, {stride}")
    return [list(t[s : s + length]) for t in tracks for s in range(0, len(t) - length + 1, stride)]


def segment_prefixes(tracks: Sequence[Sequence[int]], length: int) -> list[tuple[list[int], int]]:
    """For every record of every track: (the records of its segment up to it, its position); segments of
    ``length`` records start at the track's first record."""
    out = []
    for t in tracks:
        for pos, _ in enumerate(t):
            start = pos - pos % length
            out.append((list(t[start : pos + 1]), pos - start))
    return out


# ------------------------------------------------------------------------------------------------ dataset
class ClipDataset(Dataset):
    """T-frame clips of one tracked person (see the module docstring).

    Args:
        instances: video records of one layout.
        codec: heatmap codec (``encode(keypoints, visibility) -> {"heatmaps", "weights"}``).
        input_size: model input (w, h).
        clip_length: T.
        mode: ``clips`` or ``frames``.
        train: augment (clips mode) and replace clips with unreadable frames (True) or raise (False).
        stride: records between the starts of consecutive clips (clips mode).
        max_gap: largest frame-index step inside a track.
        aug: augmentation recipe when training (``None``: ``AugConfig()``; its half-body settings are not used).
        seed, layout, padding, udp, mean, std: as :class:`posedistill.data.loader.TopDownDataset`.
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        codec: Any,
        input_size: tuple[int, int],
        clip_length: int = 5,
        mode: str = "clips",
        train: bool = True,
        stride: int = 1,
        max_gap: int = 1,
        aug: AugConfig | None = None,
        seed: int = 0,
        layout: Layout | str | None = None,
        padding: float = 1.25,
        udp: bool = False,
        mean: Sequence[float] = MEAN_RGB,
        std: Sequence[float] = STD_RGB,
        max_retries: int = 16,
    ) -> None:
        if mode not in CLIP_MODES:
            raise ValueError(f"mode must be one of {CLIP_MODES}, got {mode!r}")
        if not instances:
            raise ValueError("ClipDataset needs at least one record")
        self.instances = list(instances)
        self.codec = codec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.clip_length = int(clip_length)
        self.mode = mode
        self.train = bool(train)
        self.aug = (aug or AugConfig()) if train else None
        self.seed, self.epoch = int(seed), 0
        self.padding, self.udp, self.max_retries = float(padding), bool(udp), int(max_retries)
        names = sorted({inst.layout for inst in self.instances})
        if layout is None:
            if len(names) > 1:
                raise ValueError(f"records mix layouts {names}; build one dataset per layout")
            layout = names[0]
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.tracks = group_tracks(self.instances, max_gap)
        if mode == "clips":
            self.items: list[tuple[list[int], int]] = [
                (w, len(w) - 1) for w in clip_windows(self.tracks, self.clip_length, stride)
            ]
            if not self.items:
                longest = max(len(t) for t in self.tracks)
                raise ValueError(f"no track has {self.clip_length} consecutive frames (longest: {longest}); "
                                 "lower the clip length or raise max_gap")  # fmt: skip
        else:
            self.items = segment_prefixes(self.tracks, self.clip_length)
        self._lut = normalise_lut(mean, std)
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_aug(self, aug: AugConfig) -> None:
        if not self.train:
            raise ValueError("set_aug on a validation dataset: validation does not augment")
        self.aug = aug

    @property
    def rows(self) -> np.ndarray:
        """The record each item predicts (frames mode: its frame t; clips mode: the clip's last frame)."""
        return np.asarray([frames[pos] for frames, pos in self.items], dtype=np.int64)

    def _frame(self, index: int, image: np.ndarray, seed_key: int | None) -> dict[str, Any]:
        inst = self.instances[index]
        sample = new_sample(image, inst.keypoints, inst.visibility, inst.bbox, self.layout, self.padding,
                            inst.target_weights())  # fmt: skip
        aug = self.aug
        rng = None
        if aug is not None and seed_key is not None:
            # the same stream for every frame of the clip: identical draws, one augmentation per clip
            rng = sample_rng(self.seed, self.epoch, seed_key)
            random_flip(sample, rng, aug.flip_prob)
            random_bbox_transform(sample, rng, aug.shift_factor, aug.shift_prob, tuple(aug.scale_range),
                                  aug.scale_prob, aug.rotate_factor, aug.rotate_prob)  # fmt: skip
        crop = topdown_affine(sample["image"], sample["keypoints"], sample["center"], sample["scale"],
                              sample["rotation"], self.input_size, self.udp)  # fmt: skip
        pixels = crop.image if rng is None else augment_crop(crop.image, aug, rng)
        return {"image": to_input_tensor(pixels, self._lut), "keypoints": crop.keypoints, "sample": sample,
                "center": crop.center, "scale": crop.scale, "rotation": crop.rotation}  # fmt: skip

    def _build(self, item: int) -> dict[str, Any]:
        frames, pos = self.items[item]
        seed_key = item if self.train else None
        built = [self._frame(i, read_image(self.instances[i].image_path), seed_key) for i in frames]
        t_len = self.clip_length
        out: dict[str, Any] = {}
        if self.mode == "clips":
            heatmaps, weights = [], []
            for b in built:
                s = b["sample"]
                visible = (s["visibility"] > 0).astype(np.float32)
                targets = self.codec.encode(b["keypoints"], visible)
                heatmaps.append(targets["heatmaps"])
                key = next((k for k in WEIGHT_KEYS if k in targets), None)
                w = targets[key] if key else visible
                weights.append(np.asarray(w, np.float32) * s["weights"])
            out["heatmaps"] = torch.from_numpy(np.stack(heatmaps))
            out["weights"] = torch.from_numpy(np.stack(weights).astype(np.float32))
        else:  # pad to T with the target frame; everything after ``position`` is ignored by a causal model
            built = built + [built[-1]] * (t_len - len(built))
        out["image"] = torch.stack([b["image"] for b in built])
        out["keypoints"] = torch.from_numpy(np.stack([b["keypoints"] for b in built]).astype(np.float32))
        out["visibility"] = torch.from_numpy(np.stack([b["sample"]["visibility"] for b in built]).astype(np.float32))
        out["frame_center"] = np.stack([b["center"] for b in built]).astype(np.float32)
        out["frame_scale"] = np.stack([b["scale"] for b in built]).astype(np.float32)
        target = built[pos]
        inst = self.instances[frames[pos]]
        out.update(
            position=pos,
            length=len(frames),
            center=target["center"],
            scale=target["scale"],
            rotation=target["rotation"],
            flip=bool(target["sample"]["flip"]),
            bbox=np.asarray(inst.bbox, dtype=np.float32),
            index=frames[pos] if self.mode == "frames" else np.asarray(frames, dtype=np.int64),
            video_id=str(inst.video_id),
            track_id=str(inst.track_id),
        )
        return out

    def __getitem__(self, item: int) -> dict[str, Any]:
        # one OpenCV thread: the same pixels in any process and worker layout (see posedistill.data.loader)
        with one_opencv_thread():
            return self._get(int(item))

    def _get(self, item: int) -> dict[str, Any]:
        if not self.train:
            return self._build(item)
        current = item
        for attempt in range(self.max_retries + 1):
            try:
                return self._build(current)
            except PoseDataError as err:
                if str(err) not in self._warned:
                    self._warned.add(str(err))
                    log.warning("skipping a training clip with an unreadable frame (replaced by another): %s", err)
                current = int(sample_rng(self.seed, self.epoch, item, attempt + 1).integers(len(self.items)))
        raise PoseDataError(self.instances[self.items[item][0][0]].image_path,
                            f"{self.max_retries + 1} clips in a row had unreadable frames")  # fmt: skip


# ------------------------------------------------------------------------------------------------ sources
_SPLIT_FILE = re.compile(r"^(?P<action>.+)_test_split(?P<split>\d+)\.txt$")
SPLIT_IDS = {"train": 1, "test": 2}


def read_jhmdb_splits(split_dir: str | Path, split: int = 1) -> dict[str, dict[str, int]]:
    """The split files of JHMDB (``splits/``) or Sub-JHMDB (``sub_splits/``): ``<action>_test_split<n>.txt``, one
    ``<video>[.avi] <id>`` line per clip, id 1 = train, 2 = test (0 = unused, as in HMDB51).

    Returns ``{action: {video name without .avi: id}}`` for split ``split`` (1, 2 or 3)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: no such split folder (JHMDB's splits/ or sub_splits/)")
    out: dict[str, dict[str, int]] = {}
    for f in sorted(split_dir.iterdir()):
        m = _SPLIT_FILE.match(f.name)
        if not m or int(m.group("split")) != int(split):
            continue
        videos: dict[str, int] = {}
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise PoseDataError(f, f"expected '<video> <0|1|2>', found {line.strip()!r}", record=f"line {n}")
            name = parts[0][:-4] if parts[0].endswith(".avi") else parts[0]
            videos[name] = int(parts[1])
        out[m.group("action")] = videos
    if not out:
        raise PoseDataError(split_dir, f"no <action>_test_split{split}.txt files")
    return out


def read_sub_jhmdb(
    root: str | Path,
    split: int = 1,
    subset: str = "train",
    split_dir: str | Path | None = None,
    frames_root: str | Path | None = None,
) -> list[Instance]:
    """The JHMDB / Sub-JHMDB clips of one split and subset (``train`` or ``test``), read with
    :func:`~posedistill.data.readers.read_jhmdb_clip`.

    JHMDB's layout: ``root/joint_positions/<action>/<video>/joint_positions.mat`` and frames in
    ``root/Rename_Images/<action>/<video>/``; ``split_dir`` defaults to ``root/sub_splits`` (Sub-JHMDB's 316
    full-body clips) when it exists, else ``root/splits``. ``video_id`` becomes ``"<action>/<video>"``."""
    from posedistill.data.readers import read_jhmdb_clip

    if subset not in SPLIT_IDS:
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
    root = Path(root)
    if split_dir is None:
        split_dir = root / "sub_splits" if (root / "sub_splits").is_dir() else root / "splits"
    frames_root = Path(frames_root) if frames_root is not None else root / "Rename_Images"
    out: list[Instance] = []
    for action, videos in read_jhmdb_splits(split_dir, split).items():
        for video, flag in videos.items():
            if flag != SPLIT_IDS[subset]:
                continue
            mat = root / "joint_positions" / action / video / "joint_positions.mat"
            if not mat.is_file():
                raise PoseDataError(mat, f"listed in the {action} split file but missing")
            for inst in read_jhmdb_clip(mat, frames_dir=frames_root / action / video):
                out.append(replace(inst, video_id=f"{action}/{video}", image_id=f"{action}/{inst.image_id}"))
    return out


def read_penn_action_split(root: str | Path, subset: str = "train") -> list[Instance]:
    """Penn Action's clips of one subset (``train``, ``test`` or ``all``, by each label file's ``train`` flag):
    ``root/labels/<id>.mat`` with frames in ``root/frames/<id>/``."""
    from posedistill.data.readers import read_penn_action

    if subset not in ("train", "test", "all"):
        raise ValueError(f"subset must be 'train', 'test' or 'all', got {subset!r}")
    labels = sorted((Path(root) / "labels").glob("*.mat"))
    if not labels:
        raise FileNotFoundError(f"{Path(root) / 'labels'}: no Penn Action label files")
    out: list[Instance] = []
    for f in labels:
        clip = read_penn_action(f, frames_dir=Path(root) / "frames" / f.stem)
        flag = clip[0].extra.get("train") if clip else None
        if subset == "all" or flag is None or flag == (subset == "train"):
            out.extend(clip)
    return out


def map_instances(instances: Sequence[Instance], layout: str) -> list[Instance]:
    """Records re-expressed in ``layout`` (``posedistill.layouts.get_mapping``); joints the source lacks get
    visibility 0, so they are neither trained on nor scored."""
    out = []
    for inst in instances:
        if inst.layout == layout:
            out.append(inst)
            continue
        kp, vis, _ = get_mapping(inst.layout, layout).apply(inst.keypoints, inst.visibility)
        out.append(replace(inst, keypoints=kp.astype(np.float32), visibility=vis.astype(np.float32), layout=layout,
                           keypoint_weights=None))  # fmt: skip
    return out


def read_clip_source(src: Any, layout: str, subset: str, where: str = "<config>", key: str = "data",
                     jhmdb_split: int = 1) -> list[Instance]:  # fmt: skip
    """The records of a config source (``posedistill.engine.config.SourceConfig``) for video training.

    Besides the engine's formats: ``format: sub_jhmdb`` (``path`` = the JHMDB root, split ``jhmdb_split``,
    ``subset`` train / test) and ``format: penn_action_split`` (``path`` = the Penn_Action root). A ``synthetic``
    section with ``num_videos`` generates videos (``generate_videos``: num_videos, frames, size, people,
    difficulty, seed) into the folder of ``path`` (``.../videos.json``) when it does not exist."""
    from posedistill.engine.builders import read_source
    from posedistill.engine.config import ConfigError, parse_indices

    syn = src.synthetic
    if syn is not None and "num_videos" in syn and not Path(src.path).exists():
        from posedistill.data.synthetic import generate_videos

        out_dir = Path(src.path).parent if Path(src.path).suffix else Path(src.path)
        args = {k: tuple(v) if isinstance(v, list) else v for k, v in syn.items()}
        args.setdefault("workers", 2)  # spawned render processes; the output does not depend on their number
        try:
            generate_videos(out_dir, **args)
        except TypeError as e:
            raise ConfigError(f"{where}: key '{key}.synthetic': {e}") from None
    if src.format in ("sub_jhmdb", "penn_action_split"):
        if src.format == "sub_jhmdb":
            records = read_sub_jhmdb(src.path, jhmdb_split, subset, frames_root=src.image_root)
        else:
            records = read_penn_action_split(src.path, subset)
        indices = parse_indices(src.indices)
        if indices is not None:
            records = records[indices] if isinstance(indices, slice) else [records[i] for i in indices]
        return map_instances(records, layout)
    if syn is not None and "num_videos" in syn:
        src = replace(src, synthetic=None)  # generated above; the engine's image generator must not run
    return read_source(src, layout, where, key)
