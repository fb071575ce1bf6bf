"""Top-down training / validation samples as a torch Dataset, and a deterministic DataLoader around it.

One sample = one person: read the image, box -> centre/scale (×1.25), augment (training), affine crop to the
model input, BGR -> RGB and ImageNet normalisation into a float32 3×h×w tensor, and the codec's targets.

Reproducibility: the randomness of sample ``index`` in epoch ``e`` comes only from
``sample_rng(seed, e, index)``, so the same seed gives the same bytes in any worker layout; the shuffling
order comes from ``(seed, epoch)`` (``EpochSampler``; torch's ``DistributedSampler`` in DDP). Call
``set_epoch(loader, epoch)`` before iterating each epoch (workers are re-created each epoch, so dataset
attributes set in the main process reach them).

OpenCV threads: OpenCV's multi-threaded ``warpAffine`` / ``blur`` / ``medianBlur`` split the image into stripes
whose boundaries depend on the thread count and on scheduling, and their output differs by a grey level at a few
pixels between splits. So every sample is built with OpenCV at one thread, in whichever process builds it:
DataLoader workers are set to one thread once (``single_thread_opencv``, in the parent before a fork and in
``worker_init`` for spawned workers), and ``TopDownDataset.__getitem__`` runs under ``one_opencv_thread()``,
which in the main process (``num_workers=0``) drops OpenCV to one thread for the duration of the sample and then
restores the caller's setting, so inference code in the same process keeps its threads. The price is nothing
measurable: a crop is small, and switching the count costs well under a millisecond.

Bad images: in training, a missing / truncated / corrupt image is replaced by another sample drawn
deterministically; the file is marked bad in shared memory (no worker reads it again) and logged once; the
replacement is counted in a shared counter (``dataset.skipped``, correct with any ``num_workers``, fork or
spawn) and in the sample's ``skipped`` meta field. In validation a bad image raises ``PoseDataError``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import random
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from torch.utils.data.distributed import DistributedSampler

from posedistill.data.augment import AugConfig, augment_box, augment_crop, new_sample, sample_rng
from posedistill.data.image_io import read_image
from posedistill.data.instance import Instance
from posedistill.data.transforms import topdown_affine
from posedistill.errors import PoseDataError
from posedistill.layouts import Layout, get_layout

log = logging.getLogger(__name__)

# ImageNet statistics in RGB order on 0-255 pixels, as RTMPose's data preprocessor uses them.
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)
# Keys under which a codec returns per-keypoint weights; multiplied by the instance's target weights.
WEIGHT_KEYS = ("weights", "keypoint_weights", "target_weight", "target_weights")


class Codec(Protocol):
    def encode(self, keypoints: np.ndarray, visibility: np.ndarray) -> dict[str, np.ndarray]: ...


def normalise_lut(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(3, 256) float32 table: (v - mean_c) / std_c for every uint8 value, bit-identical to computing it."""
    m = np.asarray(mean, dtype=np.float32)[:, None]
    s = np.asarray(std, dtype=np.float32)[:, None]
    return (np.arange(256, dtype=np.float32)[None, :] - m) / s


def to_input_tensor(crop_bgr: np.ndarray, lut: np.ndarray) -> torch.Tensor:
    """(h, w, 3) BGR uint8 -> (3, h, w) float32 RGB, normalised with the (3, 256) table of ``normalise_lut``."""
    out = np.empty((3, *crop_bgr.shape[:2]), dtype=np.float32)
    for c in range(3):  # output channel c (R, G, B) reads BGR channel 2 - c
        np.take(lut[c], crop_bgr[:, :, 2 - c], out=out[c])
    return torch.from_numpy(out)


class TopDownDataset(Dataset):
    """Person crops with targets.

    Args:
        instances: the people (one sample each); all must share one layout.
        codec: ``encode(keypoints (K, 2) crop pixels, visibility (K,) in {0, 1}) -> dict of arrays`` (SimCC or
            heatmap); every entry is passed through as a tensor, its weights (``weights`` or ``keypoint_weights``)
            multiplied by the instance's ``target_weights()`` (permuted with the flip).
        input_size: model input (w, h), e.g. (192, 256).
        train: augment and skip bad images (True) or crop only and raise on bad images (False).
        aug: augmentation recipe when training (``None``: ``AugConfig()``, RTMPose stage 1).
        seed: base seed of all randomness.
        layout: the keypoint layout (name or object); default: the instances' own.
        image_root: prefix for relative ``image_path`` values.
        padding: box padding for centre/scale.
        udp: use the UDP warp instead of MMPose's default one.
        mean, std: RGB normalisation on 0-255 values.
        max_retries: replacement draws before giving up when images keep failing (training).

    Each item is a dict: ``image`` (3, h, w) float32 tensor, the codec's targets as tensors, ``keypoints``
    (K, 2) float32 tensor in crop pixels, ``visibility`` (K,) float32 tensor (after flip), and meta values:
    ``center``, ``scale`` (2,) float32 arrays (aspect-fixed, what decoding needs), ``rotation`` (float),
    ``bbox`` (4,) float32 xywh, ``flip`` (bool), ``image_id``, ``instance_id``, ``image_path``, ``index`` (the
    instance actually used), ``skipped`` (bad images replaced to produce this item).
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        codec: Codec,
        input_size: tuple[int, int],
        train: bool,
        aug: AugConfig | None = None,
        seed: int = 0,
        layout: Layout | str | None = None,
        image_root: str | Path | None = None,
        padding: float = 1.25,
        udp: bool = False,
        mean: Sequence[float] = MEAN_RGB,
        std: Sequence[float] = STD_RGB,
        max_retries: int = 64,
    ) -> None:
        if len(instances) == 0:
            raise ValueError("TopDownDataset needs at least one instance")
        self.instances = list(instances)
        self.codec = codec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.train = bool(train)
        self.aug = (aug or AugConfig()) if train else None
        self.seed = int(seed)
        self.epoch = 0
        self.padding = float(padding)
        self.udp = bool(udp)
        self.max_retries = int(max_retries)
        self.image_root = None if image_root is None else Path(image_root)
        names = sorted({inst.layout for inst in self.instances})
        if layout is None:
            if len(names) > 1:
                raise ValueError(f"instances mix layouts {names}; build one dataset per layout")
            layout = names[0]
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        k = self.layout.num_keypoints
        for i, inst in enumerate(self.instances):
            if inst.keypoints.shape != (k, 2):
                raise PoseDataError(
                    inst.image_path, f"keypoints have shape {inst.keypoints.shape}, expected ({k}, 2) for layout "
                    f"{self.layout.name!r}", record=f"instance {i} (id {inst.instance_id!r})", field="keypoints",
                )  # fmt: skip
        self._lut = normalise_lut(mean, std)
        # Bad-image bookkeeping in shared memory, so that it is right with DataLoader workers (fork or spawn).
        paths = [str(inst.image_path) for inst in self.instances]
        self._image_files, self._image_of = np.unique(np.asarray(paths), return_inverse=True)
        self._bad = mp.RawArray("b", len(self._image_files))
        # a lock from the spawn context can be inherited (fork) and pickled (spawn); a fork-context one only inherited
        self._skipped = mp.get_context("spawn").Value("q", 0)

    # ------------------------------------------------------------------------------------------ state
    def __len__(self) -> int:
        return len(self.instances)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the augmentation for ``epoch`` (call before each epoch's iteration)."""
        self.epoch = int(epoch)

    def set_aug(self, aug: AugConfig) -> None:
        """Switch the augmentation recipe (RTMPose's stage 2), effective from the next iteration of the loader."""
        if not self.train:
            raise ValueError("set_aug on a validation dataset: validation does not augment")
        self.aug = aug

    @property
    def skipped(self) -> int:
        """How many times a bad image was replaced, in all processes (main and workers) together."""
        return int(self._skipped.value)

    @property
    def bad_images(self) -> list[str]:
        """Image files found bad so far, by any process."""
        flags = np.frombuffer(self._bad, dtype=np.int8)
        return [self._resolve(str(self._image_files[i])) for i in np.flatnonzero(flags)]

    def image_path(self, index: int) -> str:
        return self._resolve(self.instances[index].image_path)

    def _resolve(self, p: str) -> str:
        return str(self.image_root / p) if self.image_root is not None and not os.path.isabs(p) else p

    # ---------------------------------------------------------------------------------------- samples
    def _read(self, index: int) -> np.ndarray:
        """Read the image of instance ``index``; in training, a known-bad image fails without touching the disk."""
        path = self.image_path(index)
        if self.train and self._bad[self._image_of[index]]:
            raise PoseDataError(path, "image marked bad earlier in this run")
        return read_image(path)

    def _mark_bad(self, index: int, err: PoseDataError) -> None:
        with self._skipped.get_lock():
            self._skipped.value += 1
        img = self._image_of[index]
        if not self._bad[img]:
            self._bad[img] = 1
            log.warning("skipping a bad training image (replaced by another sample): %s", err)

    def __getitem__(self, index: int) -> dict[str, Any]:
        with one_opencv_thread():  # the same pixels in any process and worker layout (see the module docstring)
            return self._get(int(index))

    def _get(self, index: int) -> dict[str, Any]:
        if not self.train:
            return self._build(index, read_image(self.image_path(index)), None, skipped=0)
        i, rng = index, sample_rng(self.seed, self.epoch, index)
        for attempt in range(self.max_retries + 1):
            try:
                image = self._read(i)
            except PoseDataError as err:
                self._mark_bad(i, err)
                rng = sample_rng(self.seed, self.epoch, index, attempt + 1)
                i = int(rng.integers(len(self.instances)))
                continue
            return self._build(i, image, rng, skipped=attempt)
        raise PoseDataError(
            self.image_path(index), f"{self.max_retries + 1} images in a row were unreadable while drawing "
            f"replacements for sample {index}; see the warnings above",
        )  # fmt: skip

    def _build(self, index: int, image: np.ndarray, rng: np.random.Generator | None, skipped: int) -> dict[str, Any]:
        inst = self.instances[index]
        sample = new_sample(
            image, inst.keypoints, inst.visibility, inst.bbox, self.layout, self.padding, inst.target_weights()
        )
        aug = self.aug if rng is not None else None
        if aug is not None:
            augment_box(sample, aug, rng)
        crop = topdown_affine(
            sample["image"], sample["keypoints"], sample["center"], sample["scale"], sample["rotation"],
            self.input_size, self.udp,
        )  # fmt: skip
        pixels = crop.image if aug is None else augment_crop(crop.image, aug, rng)
        visible = (sample["visibility"] > 0).astype(np.float32)
        targets = self.codec.encode(crop.keypoints, visible)
        out: dict[str, Any] = {"image": to_input_tensor(pixels, self._lut)}
        for key, value in targets.items():
            value = np.asarray(value)
            if key in WEIGHT_KEYS:
                value = value * sample["weights"].reshape((1,) * (value.ndim - 1) + (-1,))
            out[key] = torch.from_numpy(np.ascontiguousarray(value))
        if not any(key in targets for key in WEIGHT_KEYS):
            out["weights"] = torch.from_numpy(sample["weights"] * visible)
        out["keypoints"] = torch.from_numpy(np.ascontiguousarray(crop.keypoints, dtype=np.float32))
        out["visibility"] = torch.from_numpy(np.ascontiguousarray(sample["visibility"], dtype=np.float32))
        out.update(
            center=crop.center,
            scale=crop.scale,
            rotation=crop.rotation,
            bbox=np.asarray(inst.bbox, dtype=np.float32),
            flip=bool(sample["flip"]),
            image_id=inst.image_id,
            instance_id=inst.instance_id,
            image_path=self.image_path(index),
            index=index,
            skipped=skipped,
        )
        return out


# ------------------------------------------------------------------------------------------- loading
def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors (into shared memory inside workers) and NumPy arrays; keep everything else as lists."""
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            out[key] = default_collate(values)
        elif isinstance(first, np.ndarray):
            out[key] = np.stack(values)
        else:
            out[key] = values
    return out


class EpochSampler(Sampler[int]):
    """All indices once per epoch, shuffled by ``(seed, epoch)`` when ``shuffle``; ``set_epoch`` before iterating."""

    def __init__(self, n: int, shuffle: bool, seed: int = 0) -> None:
        self.n, self.shuffle, self.seed, self.epoch = int(n), bool(shuffle), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())


def single_thread_opencv() -> None:
    """Run OpenCV single-threaded in this process: in the parent before DataLoader workers are forked from it, and
    in each worker (:func:`worker_init`; a no-op in forked ones).

    A forked child inherits OpenCV's thread pool in whatever state the parent's pool threads were in (they are not
    copied, their mutexes and condition variables are), and then hangs in ``pthread_cond_destroy`` as soon as it
    touches the pool, ``cv2.setNumThreads(1)`` included (seen with OpenCV 5.0 here, timing dependent). Stopping the
    pool in the parent first means the workers never see one; the workers are the parallelism anyway.
    """
    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


_cv2_lock = threading.Lock()
_cv2_depth = 0  # samples being built in this process right now (threads may build several at once)
_cv2_saved: int | None = None  # the thread count to restore when the last one is done; None: leave it alone


@contextmanager
def one_opencv_thread() -> Iterator[None]:
    """Run OpenCV at one thread inside the block, then restore the caller's thread count.

    What every process that builds training samples runs them under, so that their pixels do not depend on the
    thread count (see the module docstring). Nothing is touched when OpenCV is already at one thread (DataLoader
    workers: a forked worker must not touch the pool it inherited, see :func:`single_thread_opencv`). The count is
    process-wide, so nested and concurrent blocks share one switch: the first one in lowers it, the last one out
    restores it; other threads running OpenCV meanwhile run it single-threaded too (slower, never wrong).
    """
    global _cv2_depth, _cv2_saved
    with _cv2_lock:
        if _cv2_depth == 0:
            n = cv2.getNumThreads()
            _cv2_saved = n if n != 1 else None
            if _cv2_saved is not None:
                cv2.setNumThreads(1)
        _cv2_depth += 1
    try:
        yield
    finally:
        with _cv2_lock:
            _cv2_depth -= 1
            if _cv2_depth == 0 and _cv2_saved is not None:
                cv2.setNumThreads(_cv2_saved)
                _cv2_saved = None


def worker_init(worker_id: int) -> None:
    """One torch and one OpenCV thread per worker (a forked worker is already at one OpenCV thread, see
    :func:`single_thread_opencv`; a spawned one starts at OpenCV's default) and seeded global RNGs."""
    torch.set_num_threads(1)
    single_thread_opencv()
    seed = torch.initial_seed() % 2**32  # DataLoader derives it from its generator and the worker id
    np.random.seed(seed)
    random.seed(seed)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int = 0,
    drop_last: bool = False,
    distributed: bool = False,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    multiprocessing_context: str | None = None,
) -> DataLoader:
    """A DataLoader with a deterministic sampler (``DistributedSampler`` when ``distributed``), ``collate`` and
    ``worker_init``. Workers are not persistent, so ``set_epoch`` / ``set_aug`` on the dataset take effect at
    the next epoch. ``multiprocessing_context`` ("fork", "spawn", "forkserver") defaults to the platform's."""
    if distributed:
        sampler: Sampler[int] = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        sampler = EpochSampler(len(dataset), shuffle, seed)
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        single_thread_opencv()
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = prefetch_factor
        if multiprocessing_context is not None:
            kwargs["multiprocessing_context"] = multiprocessing_context
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=worker_init if num_workers > 0 else None,
        drop_last=drop_last,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
        **kwargs,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell the sampler and the dataset which epoch starts (shuffle order and augmentation seeds)."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
