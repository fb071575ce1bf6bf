"""Validation: predict every instance of a top-down dataset, map the keypoints back to image pixels, score them.

The method decodes on the crop (``Method.predict``); :func:`posedistill.data.transforms.crop_to_image` undoes the
crop with the dataset's centre / aspect-fixed scale (``p / input_size · scale + center − scale / 2``), and
``posedistill.eval.evaluate_predictions`` computes COCO AP (per whole-body part when the layout has parts) or PCK.
Under DDP each process predicts every ``world``-th instance; rank 0 gathers and scores, and every rank gets the
metrics back.

An item whose image cannot be read (missing, truncated, corrupt: ``PoseDataError``) is skipped with a warning, as
training skips bad images: its people are left out of the scoring (``num_skipped`` / ``skipped_instances`` in the
result), so one bad validation image costs neither the evaluation nor a training run's checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from posedistill.data.loader import collate
from posedistill.data.transforms import crop_to_image
from posedistill.engine import distributed as dist_utils
from posedistill.errors import PoseDataError

log = logging.getLogger(__name__)

_BAD = "unreadable_index"  # marker key of an item whose image could not be read
_warned: set[str] = set()  # one warning per bad image and process, not one per validation


class SkipUnreadable(Dataset):
    """``dataset``'s items; one whose image cannot be read (``PoseDataError``) becomes a marker
    ``{"unreadable_index": i, "error": message}`` instead of ending the loop (in a DataLoader worker the error
    would end the whole evaluation). :func:`collate_skipping` sorts the markers out of the batch."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self.dataset[index]
        except PoseDataError as e:
            return {_BAD: int(index), "error": str(e)}


def collate_skipping(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`posedistill.data.loader.collate` of the readable samples, plus ``unreadable_index``: the
    (index, error) of the others (a batch may hold no readable sample at all: then no ``image``)."""
    good = [s for s in samples if _BAD not in s]
    out = collate(good) if good else {}
    out[_BAD] = [(s[_BAD], s["error"]) for s in samples if _BAD in s]
    return out


def check_metric(metric: str, instances: Sequence[Any], where: str) -> None:
    """Fail before predicting, not after, when ``metric`` cannot score ``instances`` (``ConfigError`` naming
    ``eval.metric``)."""
    from posedistill.engine.config import ConfigError

    scored = [inst for inst in instances if not getattr(inst, "iscrowd", False)]
    if metric == "pckh" and any(getattr(inst, "head_box", None) is None for inst in scored):
        raise ConfigError(f"{where}: key 'eval.metric': pckh needs a head box for every validation instance and "
                          "these have none; expected pck, coco or auto")  # fmt: skip


def batch_to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors to ``device`` (non-blocking); everything else unchanged."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def predict_dataset(
    method: Any,
    dataset: Any,
    batch_size: int,
    device: torch.device,
    num_workers: int = 0,
    flip_test: bool = False,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
    skipped: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N, K, 2) in image pixels and scores (N, K) for every item of ``dataset`` (all ranks).

    Items whose image cannot be read get zeros, a warning, and their index appended to ``skipped`` (when given).
    """
    rank, world = dist_utils.get_rank(), dist_utils.get_world_size()
    n = len(dataset)
    mine = list(range(rank, n, world))
    loader = DataLoader(
        Subset(SkipUnreadable(dataset), mine),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_skipping,
        generator=torch.Generator().manual_seed(0),  # leaves the global RNG untouched (exact resume)
    )
    was_training = method.training
    method.eval()
    kps, scs, idx = [], [], []
    bad: list[int] = []
    iterator = loader
    if progress and rank == 0:
        from tqdm import tqdm

        iterator = tqdm(loader, desc="val", leave=False, dynamic_ncols=True)
    try:
        for batch in iterator:
            for i, error in batch.pop(_BAD):
                bad.append(int(i))
                if error not in _warned:
                    _warned.add(error)
                    log.warning("skipping an unreadable validation image (its people are not scored): %s", error)
            if "image" not in batch:
                continue
            batch = batch_to_device(batch, device)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                kp_crop, scores = method.predict(batch, flip_test=flip_test)
            kp_crop = np.asarray(kp_crop, dtype=np.float32)
            kp_img = crop_to_image(
                kp_crop, np.asarray(batch["center"]), np.asarray(batch["scale"]), dataset.input_size,
                udp=bool(getattr(dataset, "udp", False)),
            )  # fmt: skip
            kps.append(kp_img)
            scs.append(np.asarray(scores, dtype=np.float32))
            idx.extend(int(i) for i in batch["index"])
    finally:
        method.train(was_training)
    k = kps[0].shape[1] if kps else 0
    local = (
        np.asarray(idx, dtype=np.int64),
        np.concatenate(kps) if kps else np.zeros((0, k, 2), np.float32),
        np.concatenate(scs) if scs else np.zeros((0, k), np.float32),
        bad,
    )
    parts = dist_utils.all_gather_objects(local)
    k = max(p[1].shape[1] for p in parts if len(p[0])) if any(len(p[0]) for p in parts) else 0
    if k == 0 and n > 0:
        raise PoseDataError(None, f"none of the {n} validation items could be read (see the warnings)")
    keypoints = np.zeros((n, k, 2), np.float32)
    scores = np.zeros((n, k), np.float32)
    for i, kp, sc, unreadable in parts:
        keypoints[i] = kp
        scores[i] = sc
        if skipped is not None:
            skipped.extend(unreadable)
    return keypoints, scores


def evaluate(
    method: Any,
    dataset: Any,
    layout: Any,
    batch_size: int,
    device: torch.device,
    num_workers: int = 0,
    flip_test: bool = False,
    metric: str = "auto",
    metric_args: dict[str, Any] | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
    instances: list | None = None,
    rows: np.ndarray | None = None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Predict ``dataset`` and score the predictions; returns (result, keypoints, scores) with one row per
    evaluated instance.

    ``instances`` (default ``dataset.instances``) are what is scored; ``rows[i]`` is the instance of dataset item
    ``i`` (default: the same index). Instances without an item (crowd regions, boxes that cannot be cropped) get
    zero keypoints and scores. ``result`` is ``evaluate_predictions``'s dict (plus ``eval_time`` in s), computed
    on rank 0 and broadcast to every rank. Instances whose image could not be read are left out of the scoring
    (their rows stay zero) and listed in ``result["skipped_instances"]``, counted in ``result["num_skipped"]``.
    """
    from posedistill.eval.evaluate import evaluate_predictions

    t0 = time.perf_counter()
    instances = list(dataset.instances) if instances is None else list(instances)
    bad_items: list[int] = []
    kp_items, sc_items = predict_dataset(
        method, dataset, batch_size, device, num_workers, flip_test, autocast_dtype, progress, skipped=bad_items
    )
    rows = np.arange(len(dataset)) if rows is None else np.asarray(rows, dtype=np.int64)
    layout_name = layout if isinstance(layout, str) else layout.name
    k = kp_items.shape[1]
    keypoints = np.zeros((len(instances), k, 2), np.float32)
    scores = np.zeros((len(instances), k), np.float32)
    keypoints[rows] = kp_items
    scores[rows] = sc_items
    result: dict[str, Any] | None = None
    if dist_utils.is_main_process():
        args = {"input_size": tuple(dataset.input_size), **(metric_args or {})}
        keep = np.ones(len(instances), dtype=bool)
        keep[rows[bad_items]] = False
        scored = [inst for inst, kept in zip(instances, keep) if kept]
        result = evaluate_predictions(scored, keypoints[keep], scores[keep], layout_name, metric=metric, **args)
        if bad_items:
            result["num_skipped"] = len(bad_items)
            result["skipped_instances"] = sorted(int(i) for i in rows[bad_items])
        result["eval_time"] = time.perf_counter() - t0
    result = dist_utils.broadcast_object(result)
    return result, keypoints, scores


def scalar_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of an evaluation result (per-joint lists and labels left out)."""
    return {
        k: float(v)
        for k, v in result.items()
        if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
    }
