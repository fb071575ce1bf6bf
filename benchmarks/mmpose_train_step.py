"""mmpose 1.3.2's RTMPose training step on LSPet, for the side-by-side numbers of ``bench_train.py``.

Runs **inside the mmpose side environment** (see ``benchmarks/mmpose_side_env.md``), not in the project's
``.venv``: it imports mmpose, mmengine, mmcv-lite, mmdet and albumentations, never posedistill's torch code.
``bench_train.py`` calls it in a subprocess; it can also be run by hand::

    /tmp/mmenv/bin/python benchmarks/mmpose_train_step.py --models t s --batch-size 32 --iters 20

What is measured, per model (RTMPose-t / -s, the COCO 256x192 config files shipped in mmpose's ``.mim/configs``,
with ``out_channels`` 14 for LSP):

- ``end_to_end``: ``model.train_step(batch, optim_wrapper)`` (data preprocessor, forward, KLDiscretLoss,
  backward, AdamW step with the config's ``paramwise_cfg``) fed by a torch ``DataLoader`` (``--workers`` workers,
  ``pseudo_collate``, mmengine's ``DefaultSampler`` and ``worker_init_fn``) over the config's full training
  pipeline: LoadImage, GetBBoxCenterScale, RandomFlip, RandomHalfBody, RandomBBoxTransform, TopdownAffine,
  mmdet.YOLOXHSVRandomAug, Albumentation (Blur, MedianBlur, CoarseDropout), GenerateTarget(SimCCLabel),
  PackPoseInputs. Images/s over ``--iters`` iterations after ``--warmup`` (worker start-up is in the warm-up).
- ``model_step``: the same step on one batch held in memory, already through the data preprocessor:
  forward + loss + backward + AdamW step only.

The people are LSPet's, read by posedistill's torch-free reader (``posedistill.data.readers.lsp``; numpy and
scipy only) so that both libraries crop the very same boxes; the reading happens before any timing.

Two things differ from a stock mmpose install, both documented in ``mmpose_side_env.md``:

- ``mmcv.ops`` (mmcv's compiled CUDA/C++ ops) is not installed: mmcv-lite is the pure-Python build of mmcv 2.1.0.
  A stand-in module is registered for ``mmcv.ops`` before mmpose is imported; any op taken from it raises when
  it is constructed. RTMPose's backbone, head, loss, codec and transforms construct none of them (mmpose and
  mmdet import some at module level for EDPose, DEKR and mmdet's mask structures).
- SyncBN in the config is reverted to BatchNorm with mmengine's ``revert_sync_batchnorm``, which is what
  mmengine's ``Runner`` does itself outside distributed training; the backbone's ``init_cfg`` (a download of
  pretrained weights) is dropped: both libraries train from random weights here.

Prints one JSON object on the last line of stdout (``bench_train.py`` reads it and writes the results file).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import os
import platform
import statistics
import sys
import time
import types
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "t": "body_2d_keypoint/rtmpose/coco/rtmpose-t_8xb256-420e_coco-256x192.py",
    "s": "body_2d_keypoint/rtmpose/coco/rtmpose-s_8xb256-420e_coco-256x192.py",
}


# --------------------------------------------------------------------------------------------- mmcv.ops
class _CompiledOpMissing:
    """Stands for any class or function of ``mmcv.ops``: importing it works, using it raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "mmcv.ops is not available: the side environment has mmcv-lite (no compiled ops); see "
            "benchmarks/mmpose_side_env.md"
        )


class _MmcvOpsStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of ``mmcv.ops`` and its submodules with empty modules whose attributes are
    :class:`_CompiledOpMissing`, instead of mmcv-lite's ``mmcv/ops`` package, which loads ``mmcv._ext``."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name == "mmcv.ops" or name.startswith("mmcv.ops."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def __getattr__(attr: str) -> Any:
            if attr.startswith("__"):
                raise AttributeError(attr)
            return _CompiledOpMissing

        module.__getattr__ = __getattr__  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install_mmcv_ops_stand_in() -> None:
    if not any(isinstance(f, _MmcvOpsStandIn) for f in sys.meta_path):
        sys.meta_path.insert(0, _MmcvOpsStandIn())


# ---------------------------------------------------------------------------------------------- data
def lsp_metainfo() -> dict[str, Any]:
    """mmpose ``metainfo`` for the 14 LSP joints, built from posedistill's ``lsp`` layout (pure data)."""
    from posedistill.layouts import get_layout

    layout = get_layout("lsp")
    names = layout.keypoint_names
    upper = set(layout.upper_body_ids)
    keypoint_info = {
        i: {
            "name": name,
            "id": i,
            "color": [255, 128, 0],
            "type": "upper" if i in upper else "lower",
            "swap": names[layout.flip_indices[i]] if layout.flip_indices[i] != i else "",
        }
        for i, name in enumerate(names)
    }
    skeleton_info = {
        i: {"link": (names[a], names[b]), "id": i, "color": [0, 255, 0]} for i, (a, b) in enumerate(layout.links)
    }
    return {
        "dataset_name": "lspet",
        "keypoint_info": keypoint_info,
        "skeleton_info": skeleton_info,
        "joint_weights": list(layout.joint_weights) if layout.joint_weights else [1.0] * len(names),
        # OKS sigmas are used by evaluation only; LSP defines none and training does not read them
        "sigmas": list(layout.sigmas) if layout.sigmas else [],
    }


def lspet_data_list(data_root: Path) -> list[dict[str, Any]]:
    """mmpose top-down data infos (one person each, bbox xyxy) for every LSPet image."""
    import numpy as np

    from posedistill.data.readers.lsp import read_lsp

    out = []
    for i, inst in enumerate(read_lsp(data_root / "joints.mat")):
        x, y, w, h = (float(v) for v in inst.bbox)
        vis = np.minimum(1, inst.visibility).astype(np.float32)  # what mmpose's coco parser keeps
        out.append({
            "img_id": i,
            "img_path": str(inst.image_path),
            "bbox": np.array([[x, y, x + w, y + h]], dtype=np.float32),
            "bbox_score": np.ones(1, dtype=np.float32),
            "num_keypoints": int((vis > 0).sum()),
            "keypoints": inst.keypoints[None].astype(np.float32),
            "keypoints_visible": vis[None],
            "area": np.array([w * h], dtype=np.float32),
            "iscrowd": 0,
            "segmentation": None,
            "id": i,
            "category_id": 1,
        })  # fmt: skip
    return out


def build_dataset(data_root: Path, pipeline: list[dict]) -> Any:
    from mmpose.datasets.datasets.base import BaseCocoStyleDataset

    class LSPetDataset(BaseCocoStyleDataset):
        """mmpose's COCO-style top-down dataset with its annotation list taken from LSPet's joints.mat."""

        METAINFO = lsp_metainfo()

        def load_data_list(self) -> list[dict]:
            return lspet_data_list(data_root)

    return LSPetDataset(data_mode="topdown", pipeline=pipeline, test_mode=False)


def pipeline_report(pipeline: list[dict]) -> list[str]:
    return [p["type"] for p in pipeline]


def check_optional_transforms() -> dict[str, str]:
    """Which optional augmentations of the RTMPose pipeline can run here (mmdet's HSV, albumentations)."""
    found = {}
    try:
        import mmdet
        import mmdet.datasets.transforms  # registers YOLOXHSVRandomAug

        found["mmdet.YOLOXHSVRandomAug"] = f"mmdet {mmdet.__version__}"
    except Exception as e:  # any import failure means: skip the transform and say so
        found["mmdet.YOLOXHSVRandomAug"] = f"unavailable ({type(e).__name__}: {e})"
    try:
        import albumentations

        found["Albumentation"] = f"albumentations {albumentations.__version__}"
    except Exception as e:
        found["Albumentation"] = f"unavailable ({type(e).__name__}: {e})"
    return found


# --------------------------------------------------------------------------------------------- model
def build(size: str, num_keypoints: int) -> tuple[Any, Any, list[dict]]:
    """(model, optim_wrapper, train pipeline) from mmpose's own RTMPose config file."""
    import mmpose
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmpose.registry import MODELS

    cfg = Config.fromfile(os.path.join(os.path.dirname(mmpose.__file__), ".mim", "configs", CONFIGS[size]))
    cfg.model.backbone.pop("init_cfg", None)  # pretrained download; both libraries start from random weights
    cfg.model.head.out_channels = num_keypoints
    model = revert_sync_batchnorm(MODELS.build(cfg.model))  # what mmengine's Runner does when not distributed
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim_wrapper, list(cfg.train_pipeline)


# -------------------------------------------------------------------------------------------- timing
def cpu_seconds() -> float:
    """CPU time (user + system) of this process, of its finished children and of its live children (the
    DataLoader workers), read from /proc: on a shared machine, images per CPU-second moves less with the load of
    other processes than images per wall-clock second."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    me, tick = os.getpid(), os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == me:  # fields after the name: state, ppid, ..., utime (12), stime (13)
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_busy_seconds() -> float:
    """CPU-seconds all processes of the machine have spent busy (not idle / iowait), from /proc/stat; minus
    :func:`cpu_seconds` over a window, it says how much the rest of a shared machine was running meanwhile."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def batches(loader: Any):
    """Endless iterator over the loader, one epoch after another."""
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def run_model(size: str, args: argparse.Namespace, available: dict[str, str]) -> dict[str, Any]:
    import torch
    from mmengine.dataset import DefaultSampler, pseudo_collate, worker_init_fn

    model, optim_wrapper, pipeline = build(size, 14)
    skipped = [k for k, v in available.items() if v.startswith("unavailable")]
    pipeline = [p for p in pipeline if p["type"] not in skipped]
    dataset = build_dataset(args.data, pipeline)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=DefaultSampler(dataset, shuffle=True, seed=args.seed),
        num_workers=args.workers,
        collate_fn=pseudo_collate,
        worker_init_fn=partial(worker_init_fn, num_workers=args.workers, rank=0, seed=args.seed)
        if args.workers > 0 else None,
        persistent_workers=False,
        drop_last=True,
    )  # fmt: skip

    # end to end: data loading + train_step
    load_before = os.getloadavg()
    it = batches(loader)
    data_wait, iter_s = 0.0, []
    t0, c0, m0 = time.perf_counter(), cpu_seconds(), machine_busy_seconds()
    batch = None
    for i in range(args.warmup + args.iters):
        if i == args.warmup:
            data_wait, t0, c0, m0 = 0.0, time.perf_counter(), cpu_seconds(), machine_busy_seconds()
        ta = time.perf_counter()
        batch = next(it)
        data_wait += time.perf_counter() - ta
        model.train_step(batch, optim_wrapper)
        if i >= args.warmup:
            iter_s.append(time.perf_counter() - ta)
    elapsed, cpu, busy = time.perf_counter() - t0, cpu_seconds() - c0, machine_busy_seconds() - m0
    it.close()  # shuts the workers down before the model-only measurement
    del it, loader

    # model only: forward + loss + backward + AdamW on one preprocessed batch
    t = time.perf_counter()
    data = model.data_preprocessor(batch, True)
    preprocess_s = time.perf_counter() - t

    def step() -> None:
        with optim_wrapper.optim_context(model):
            losses = model(**data, mode="loss")
        parsed, _ = model.parse_losses(losses)
        optim_wrapper.update_params(parsed)

    for _ in range(args.warmup):
        step()
    t, c, m = time.perf_counter(), cpu_seconds(), machine_busy_seconds()
    for _ in range(args.step_iters):
        step()
    wall, cpu_step, busy_step = time.perf_counter() - t, cpu_seconds() - c, machine_busy_seconds() - m
    step_s, step_cpu = wall / args.step_iters, cpu_step / args.step_iters
    load_after = os.getloadavg()
    images = args.iters * args.batch_size
    return {
        "model": f"rtmpose-{size}",
        "config": CONFIGS[size],
        "params": sum(p.numel() for p in model.parameters()),
        "pipeline": pipeline_report(pipeline),
        "skipped_transforms": skipped,
        "end_to_end": {
            "images_per_s": images / elapsed,
            "seconds": elapsed,
            "cpu_seconds": cpu,
            "images_per_cpu_s": args.iters * args.batch_size / cpu,
            "other_processes_cores": max(busy - cpu, 0.0) / elapsed,
            "images_per_s_median_iter": args.batch_size / statistics.median(iter_s),
            "data_wait_s": data_wait,
            "iters": args.iters,
            "warmup": args.warmup,
        },
        "model_step": {
            "images_per_s": args.batch_size / step_s,
            "step_s": step_s,
            "images_per_cpu_s": args.batch_size / step_cpu,
            "other_processes_cores": max(busy_step - cpu_step, 0.0) / wall,
            "iters": args.step_iters,
            "data_preprocessor_s": preprocess_s,
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "lspet")
    ap.add_argument("--models", nargs="+", choices=sorted(CONFIGS), default=["t", "s"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--iters", type=int, default=20, help="timed iterations (end to end)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--step-iters", type=int, default=10, help="timed iterations of the model-only step")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the main process")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not (args.data / "joints.mat").exists():
        print(f"mmpose_train_step: {args.data / 'joints.mat'} not found (pass --data)", file=sys.stderr)
        return 1

    sys.path.insert(0, str(ROOT))  # posedistill's torch-free LSP reader and layout only
    install_mmcv_ops_stand_in()
    import cv2
    import mmcv
    import mmengine
    import mmpose
    import mmpose.codecs  # registers SimCCLabel
    import mmpose.datasets.transforms  # registers the pipeline's transforms
    import mmpose.models  # registers TopdownPoseEstimator, RTMCCHead, KLDiscretLoss
    import numpy as np
    import torch
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmengine.utils.dl_utils import set_multi_processing

    MMLogger.get_instance("mmengine", log_level="WARNING")  # init_weights logs every parameter otherwise
    init_default_scope("mmpose")
    set_multi_processing(mp_start_method="fork", opencv_num_threads=0, distributed=False)  # the Runner's default
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    available = check_optional_transforms()
    runs = [run_model(size, args, available) for size in args.models]
    result = {
        "library": "mmpose",
        "batch_size": args.batch_size,
        "workers": args.workers,
        "threads": args.threads,
        "input_hw": [256, 192],
        "optional_transforms": available,
        "runs": runs,
        "versions": {
            "python": platform.python_version(),
            "mmpose": mmpose.__version__,
            "mmcv": f"{mmcv.__version__} (mmcv-lite, mmcv.ops stand-in)",
            "mmengine": mmengine.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "opencv": cv2.__version__,
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
