"""Does mmpose 1.3.2's own RTMPose-t, trained from random weights on the synthetic whole-body data, also collapse?

``benchmarks/diagnose_learning.py`` found that posedistill's RTMPose-t (133 keypoints, 128x96 input, random init)
trained for 448 steps on ``work_dirs/diagnose_learning/data`` stays on the mean-pose plateau: it predicts almost
the same box-relative pose for every person and scores below the mean-pose baseline. This script trains mmpose's
model under the same budget, to tell a posedistill bug from a property of the recipe:

- model: mmpose's ``rtmpose-t_8xb256-420e_coco-256x192.py`` config, with 133 outputs, input 96x128 (w, h), head
  ``in_featuremap_size`` (3, 4), SimCC codec sigma (2.45, 2.83), split ratio 2, ``normalize=False``, the config's
  KLDiscretLoss (target weights, beta 10, label softmax), no flip test. Built as ``mmpose_train_step.py`` builds
  it (its ``mmcv.ops`` stand-in, SyncBN reverted to BatchNorm, no pretrained backbone);
- data: mmpose's ``CocoWholeBodyDataset`` over the training annotations (one sample per person, GT boxes), with
  the pipeline LoadImage, GetBBoxCenterScale, RandomFlip(horizontal), TopdownAffine, GenerateTarget(SimCCLabel),
  PackPoseInputs: flips only;
- optimisation: AdamW lr 2e-3, weight decay 0 (the config's ``paramwise_cfg``), batch 32, shuffled with seed 0,
  last partial batch dropped; LR factor linear from 1e-3 to 1 over the first 60 steps, constant until half the
  steps (224 of 448), then cosine down to 0.05 at the last step; ``model.train_step`` per step, loss logged;
- evaluation: ``model.eval()``, prediction for every validation person (GT boxes, annotation-list order), then
  scored **in the project's venv** with posedistill's own code: PCK@0.2 (133 points), COCO-WholeBody body AP, the
  mean-pose baseline, and the prediction spread ratio (std across people of the box-relative predictions over that
  of the ground truth, :func:`posedistill.engine.collapse.spread_ratio`; ~1 for a trained model, ~0 collapsed).

Runs inside the mmpose side environment (``benchmarks/mmpose_side_env.md``); the scoring step is this same file run
with ``--score`` by the project's ``.venv`` python, in a subprocess. From the repository root::

    OMP_NUM_THREADS=2 /tmp/mmenv/bin/python benchmarks/mmpose_learning_check.py [--steps 448] [--threads 2]
        [--out benchmarks/results/mmpose_learning_check.json] [--work-dir /tmp/mmpose_learning_check]

Writes ``--out`` (versions, settings, loss per step, PCK@0.2, body AP, baseline, spread ratio, wall time) and, in
``--work-dir``, the validation predictions (``val_predictions.json``) and the trained weights (``model.pth``).

Two changes to mmpose's stock behaviour, both needed to read this data and neither touching training:
``CocoWholeBodyDataset.parse_data_info`` reads ``ann['segmentation']``, which the synthetic annotations lack (a
``None`` is supplied), and for prediction the validation set keeps every person, also the one without labelled
joints that mmpose's top-down filter would drop, so that the rows match posedistill's reader one to one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from mmpose_train_step import CONFIGS, batches, install_mmcv_ops_stand_in  # noqa: E402

DATA = ROOT / "work_dirs" / "diagnose_learning" / "data"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
NUM_KEYPOINTS = 133
INPUT_SIZE = (96, 128)  # (w, h)
FEATUREMAP_SIZE = (INPUT_SIZE[0] // 32, INPUT_SIZE[1] // 32)
SIGMA = (2.45, 2.83)
SPLIT_RATIO = 2.0
LR = 2.0e-3
WEIGHT_DECAY = 0.0
BATCH_SIZE = 32
WARMUP_STEPS = 60
WARMUP_START_FACTOR = 1.0e-3
ETA_MIN_FACTOR = 0.05
SEED = 0
DEFAULT_STEPS = 448
# posedistill's numbers for this setting (benchmarks/results/learning_diagnosis.json, docs/learning.md)
POSEDISTILL_REFERENCE = {
    "pck@0.2": 0.606,
    "baseline_pck@0.2": 0.692,
    "body_AP": 0.0,
    "loss_first10": 0.83,
    "loss_last10": 0.77,
    "pred_spread_range": [0.003, 0.23],
}


# ----------------------------------------------------------------------------------------------- schedule
def lr_factor(step: int, total: int) -> float:
    """LR multiplier at 0-based ``step`` of ``total``: linear warm-up, constant, cosine over the second half."""
    factor = 1.0
    if step < WARMUP_STEPS:
        factor *= WARMUP_START_FACTOR + (1.0 - WARMUP_START_FACTOR) * step / WARMUP_STEPS
    cosine_begin = total // 2
    if step >= cosine_begin:
        t = (step - cosine_begin) / max(total - cosine_begin, 1)
        factor *= ETA_MIN_FACTOR + (1.0 - ETA_MIN_FACTOR) * 0.5 * (1.0 + math.cos(math.pi * t))
    return factor


# ------------------------------------------------------------------------------------------------- mmpose
def codec_cfg() -> dict[str, Any]:
    return {
        "type": "SimCCLabel",
        "input_size": INPUT_SIZE,
        "sigma": SIGMA,
        "simcc_split_ratio": SPLIT_RATIO,
        "normalize": False,
        "use_dark": False,
    }


def mmpose_file(relative: str) -> str:
    """Path of a file shipped in mmpose's ``.mim`` folder (its configs)."""
    import mmpose

    return os.path.join(os.path.dirname(mmpose.__file__), ".mim", relative)


def build_model() -> tuple[Any, Any, Any]:
    """(model, optim_wrapper, config) from mmpose's RTMPose-t COCO config, changed as the module docstring says."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmpose.registry import MODELS

    cfg = Config.fromfile(mmpose_file(os.path.join("configs", CONFIGS["t"])))
    cfg.model.backbone.pop("init_cfg", None)  # pretrained download: train from random weights
    head = cfg.model.head
    head.out_channels = NUM_KEYPOINTS
    head.input_size = INPUT_SIZE
    head.in_featuremap_size = FEATUREMAP_SIZE
    head.simcc_split_ratio = SPLIT_RATIO
    head.decoder = codec_cfg()
    expected_loss = {"type": "KLDiscretLoss", "use_target_weight": True, "beta": 10.0, "label_softmax": True}
    if dict(head.loss) != expected_loss:
        raise RuntimeError(f"the config's loss changed: {dict(head.loss)}")
    cfg.model.test_cfg = {"flip_test": False}
    cfg.optim_wrapper.optimizer.lr = LR
    cfg.optim_wrapper.optimizer.weight_decay = WEIGHT_DECAY
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim_wrapper, cfg


def train_pipeline() -> list[dict[str, Any]]:
    return [
        {"type": "LoadImage"},
        {"type": "GetBBoxCenterScale"},
        {"type": "RandomFlip", "direction": "horizontal"},
        {"type": "TopdownAffine", "input_size": INPUT_SIZE},
        {"type": "GenerateTarget", "encoder": codec_cfg()},
        {"type": "PackPoseInputs"},
    ]


def val_pipeline() -> list[dict[str, Any]]:
    return [
        {"type": "LoadImage"},
        {"type": "GetBBoxCenterScale"},
        {"type": "TopdownAffine", "input_size": INPUT_SIZE},
        {"type": "PackPoseInputs"},
    ]


def build_dataset(split: str, pipeline: list[dict[str, Any]], test_mode: bool) -> Any:
    """mmpose's ``CocoWholeBodyDataset`` over ``DATA/<split>/annotations.json`` (GT boxes, top-down)."""
    from mmpose.datasets import CocoWholeBodyDataset

    class SyntheticWholeBody(CocoWholeBodyDataset):
        """CocoWholeBodyDataset that tolerates annotations without ``segmentation`` and, in test mode, keeps every
        person (stock mmpose drops those without labelled joints) in annotation-file order."""

        def parse_data_info(self, raw_data_info: dict) -> dict | None:
            ann = raw_data_info["raw_ann_info"]
            if "segmentation" not in ann:
                raw_data_info = {**raw_data_info, "raw_ann_info": {**ann, "segmentation": None}}
            return super().parse_data_info(raw_data_info)

        def _get_topdown_data_infos(self, instance_list: list[dict]) -> list[dict]:
            if not self.test_mode:
                return super()._get_topdown_data_infos(instance_list)
            order = {ann["id"]: i for i, ann in enumerate(self.coco.dataset["annotations"])}
            return sorted(instance_list, key=lambda info: order[info["id"]])

    return SyntheticWholeBody(
        data_root=str(DATA / split),
        ann_file="annotations.json",
        data_prefix={"img": ""},
        data_mode="topdown",
        metainfo={"from_file": mmpose_file("configs/_base_/datasets/coco_wholebody.py")},
        pipeline=pipeline,
        test_mode=test_mode,
    )


# -------------------------------------------------------------------------------------------------- train
def train(model: Any, optim_wrapper: Any, dataset: Any, steps: int, workers: int) -> dict[str, list[float]]:
    """``steps`` calls of ``model.train_step``; per-step loss, SimCC accuracy and LR."""
    import torch
    from mmengine.dataset import DefaultSampler, pseudo_collate, worker_init_fn

    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=BATCH_SIZE,
        sampler=DefaultSampler(dataset, shuffle=True, seed=SEED),
        num_workers=workers,
        collate_fn=pseudo_collate,
        worker_init_fn=partial(worker_init_fn, num_workers=workers, rank=0, seed=SEED) if workers else None,
        drop_last=True,
    )
    log: dict[str, list[float]] = {"loss": [], "acc_pose": [], "lr": []}
    model.train()
    it = batches(loader)
    t0 = time.perf_counter()
    for step in range(steps):
        lr = LR * lr_factor(step, steps)
        for group in optim_wrapper.optimizer.param_groups:
            group["lr"] = lr
        log_vars = model.train_step(next(it), optim_wrapper)
        loss = float(log_vars["loss"].detach())
        if not math.isfinite(loss):
            raise FloatingPointError(f"step {step + 1}: loss is {loss}")
        log["loss"].append(loss)
        log["acc_pose"].append(float(log_vars.get("acc_pose", float("nan"))))
        log["lr"].append(lr)
        elapsed = time.perf_counter() - t0
        print(
            f"step {step + 1}/{steps} (epoch {step // len(loader) + 1}) loss {loss:.4f} "
            f"acc_pose {log['acc_pose'][-1]:.3f} lr {lr:.2e} [{elapsed:.0f} s, "
            f"{elapsed / (step + 1):.2f} s/step]",
            flush=True,
        )
    it.close()
    return log


def predict(model: Any, dataset: Any) -> dict[str, Any]:
    """Keypoints (image pixels) and scores of every person of ``dataset``, in its order, with their ids."""
    import torch
    from mmengine.dataset import pseudo_collate

    model.eval()
    out: dict[str, Any] = {"annotation_ids": [], "image_ids": [], "keypoints": [], "keypoint_scores": []}
    with torch.no_grad():
        for start in range(0, len(dataset), BATCH_SIZE):
            batch = pseudo_collate([dataset[i] for i in range(start, min(start + BATCH_SIZE, len(dataset)))])
            for sample in model.test_step(batch):
                out["annotation_ids"].append(sample.metainfo["id"])
                out["image_ids"].append(sample.metainfo["img_id"])
                out["keypoints"].append(sample.pred_instances.keypoints[0].round(3).tolist())
                out["keypoint_scores"].append(sample.pred_instances.keypoint_scores[0].round(4).tolist())
    return out


# -------------------------------------------------------------------------------------- score (project venv)
def score(pred_path: Path) -> dict[str, Any]:
    """posedistill's metrics of the predictions in ``pred_path``; runs in the project's venv."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from posedistill.data.readers import read_dataset
    from posedistill.engine.collapse import spread_ratio
    from posedistill.eval.baseline import evaluate_mean_pose
    from posedistill.eval.evaluate import evaluate_predictions

    layout = "coco_wholebody"
    pred = json.loads(pred_path.read_text())
    train_instances = read_dataset(DATA / "train" / "annotations.json", layout=layout)
    val = read_dataset(DATA / "val" / "annotations.json", layout=layout)
    ids = [(inst.image_id, inst.instance_id) for inst in val]
    if ids != list(zip(pred["image_ids"], pred["annotation_ids"])):
        raise ValueError("the predictions' (image_id, annotation id) rows do not match posedistill's val instances")

    kp = np.asarray(pred["keypoints"], np.float32)
    ones = np.ones(kp.shape[:2], np.float32)
    pck = evaluate_predictions(val, kp, ones, layout, metric="pck")
    coco = evaluate_predictions(val, kp, ones, layout, metric="coco")
    base_pck = evaluate_mean_pose(train_instances, val, layout, metric="pck")
    base_coco = evaluate_mean_pose(train_instances, val, layout, metric="coco")

    boxes = np.stack([inst.bbox for inst in val]).astype(np.float64)
    gt = np.stack([inst.keypoints for inst in val]).astype(np.float64)
    vis = np.stack([inst.visibility for inst in val])

    def rel(points: np.ndarray) -> np.ndarray:
        return (points - boxes[:, None, :2]) / boxes[:, None, 2:]

    def per_joint_ratio(mask: np.ndarray) -> float:
        ratios = []
        for k in range(kp.shape[1]):
            m = mask[:, k]
            if m.sum() >= 2:
                g = rel(gt)[m, k].std(axis=0).mean()
                if g > 0:
                    ratios.append(rel(kp.astype(np.float64))[m, k].std(axis=0).mean() / g)
        return float(np.mean(ratios)) if ratios else float("nan")

    spread = {}
    for name, mask in (("labelled", vis > 0), ("visible", vis >= 2)):
        spread[name] = spread_ratio(rel(kp.astype(np.float64)), rel(gt), mask, (1.0, 1.0))
        spread[f"{name}_per_joint_mean"] = per_joint_ratio(mask)
    return {
        "num_val_instances": len(val),
        "num_train_instances": len(train_instances),
        "pck@0.2": pck["pck@0.2"],
        "tpck@0.2": pck.get("tpck@0.2"),
        "epe": pck.get("epe"),
        "body_AP": coco["body/AP"],
        "wholebody_AP": coco.get("wholebody/AP"),
        "baseline_pck@0.2": base_pck["pck@0.2"],
        "baseline_body_AP": base_coco["body/AP"],
        "spread_ratio": spread["labelled"],
        "spread": spread,
    }


def run_score(pred_path: Path) -> dict[str, Any]:
    """:func:`score` in a subprocess of the project's venv python; its JSON is the last line of its stdout."""
    proc = subprocess.run(
        [str(PROJECT_PYTHON), str(Path(__file__).resolve()), "--score", str(pred_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scoring failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------- output
def write_json_atomic(path: Path, data: Any, indent: int | None = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=indent)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def versions() -> dict[str, str]:
    import cv2
    import mmcv
    import mmdet
    import mmengine
    import mmpose
    import numpy as np
    import torch

    return {
        "python": platform.python_version(),
        "mmpose": mmpose.__version__,
        "mmengine": mmengine.__version__,
        "mmcv": f"{mmcv.__version__} (mmcv-lite, mmcv.ops stand-in)",
        "mmdet": mmdet.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }


def settings(steps: int, args: argparse.Namespace, steps_per_epoch: int, num_train: int) -> dict[str, Any]:
    return {
        "model": f"rtmpose-t (mmpose config {CONFIGS['t']}), random init, SyncBN reverted to BatchNorm",
        "num_keypoints": NUM_KEYPOINTS,
        "input_size_wh": list(INPUT_SIZE),
        "in_featuremap_size": list(FEATUREMAP_SIZE),
        "codec": codec_cfg(),
        "loss": "KLDiscretLoss(use_target_weight=True, beta=10, label_softmax=True): mean over bins, x target "
        "weight, summed over N*K and x/y, / K; the same reduction as posedistill's, so the values compare directly",
        "optimizer": {"type": "AdamW", "lr": LR, "weight_decay": WEIGHT_DECAY, "paramwise_cfg": "config's"},
        "batch_size": BATCH_SIZE,
        "steps": steps,
        "steps_per_epoch": steps_per_epoch,
        "epochs": steps / steps_per_epoch,
        "schedule": {
            "warmup_steps": WARMUP_STEPS,
            "warmup_start_factor": WARMUP_START_FACTOR,
            "cosine_begin_step": steps // 2,
            "cosine_end_step": steps,
            "eta_min_factor": ETA_MIN_FACTOR,
        },
        "seed": SEED,
        "shuffle": True,
        "drop_last": True,
        "train_pipeline": [p["type"] for p in train_pipeline()],
        "val_pipeline": [p["type"] for p in val_pipeline()],
        "flip_test": False,
        "ema": False,
        "train_data": str((DATA / "train" / "annotations.json").relative_to(ROOT)),
        "val_data": str((DATA / "val" / "annotations.json").relative_to(ROOT)),
        "num_train_samples": num_train,
        "threads": args.threads,
        "workers": args.workers,
    }


def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    install_mmcv_ops_stand_in()
    import mmpose.codecs  # registers SimCCLabel
    import mmpose.datasets  # registers CocoWholeBodyDataset and the transforms
    import mmpose.models  # registers TopdownPoseEstimator, RTMCCHead, KLDiscretLoss
    import numpy as np
    import torch
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmengine.utils.dl_utils import set_multi_processing

    MMLogger.get_instance("mmengine", log_level="WARNING")
    init_default_scope("mmpose")
    set_multi_processing(mp_start_method="fork", opencv_num_threads=0, distributed=False)
    torch.set_num_threads(args.threads)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)

    model, optim_wrapper, _ = build_model()
    train_set = build_dataset("train", train_pipeline(), test_mode=False)
    val_set = build_dataset("val", val_pipeline(), test_mode=True)
    steps_per_epoch = len(train_set) // BATCH_SIZE
    print(
        f"mmpose {mmpose.__version__}: rtmpose-t, {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{len(train_set)} training people ({steps_per_epoch} steps/epoch), {len(val_set)} validation people; "
        f"{args.steps} steps, {args.threads} threads",
        flush=True,
    )

    t0 = time.perf_counter()
    log = train(model, optim_wrapper, train_set, args.steps, args.workers)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = predict(model, val_set)
    predict_s = time.perf_counter() - t0
    args.work_dir.mkdir(parents=True, exist_ok=True)
    pred_path = args.work_dir / "val_predictions.json"
    write_json_atomic(pred_path, pred, indent=None)
    torch.save(model.state_dict(), args.work_dir / "model.pth")
    print(f"trained in {train_s:.0f} s; {len(pred['keypoints'])} validation predictions -> {pred_path}", flush=True)

    loss = log["loss"]
    result: dict[str, Any] = {
        "question": "does mmpose's RTMPose-t, trained from random weights on the synthetic whole-body data for "
        "posedistill's budget, also stay on the mean-pose plateau?",
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} {sys.executable} " + " ".join(sys.argv),
        "versions": versions(),
        "settings": settings(args.steps, args, steps_per_epoch, len(train_set)),
        "loss_first10": mean(loss[:10]),
        "loss_last10": mean(loss[-10:]),
        "acc_pose_first10": mean(log["acc_pose"][:10]),
        "acc_pose_last10": mean(log["acc_pose"][-10:]),
        "predictions_file": str(pred_path),
        "posedistill_reference": POSEDISTILL_REFERENCE,
    }
    try:
        metrics = run_score(pred_path)
        result.update(metrics)
        result["beats_baseline"] = metrics["pck@0.2"] > metrics["baseline_pck@0.2"]
        print(
            f"PCK@0.2 {metrics['pck@0.2']:.4f} (mean-pose baseline {metrics['baseline_pck@0.2']:.4f}), body AP "
            f"{metrics['body_AP']:.4f}, spread ratio {metrics['spread_ratio']:.3f}; loss first10 "
            f"{result['loss_first10']:.3f} -> last10 {result['loss_last10']:.3f}",
            flush=True,
        )
    except Exception as e:  # keep the training record even when scoring fails
        result["score_error"] = f"{type(e).__name__}: {e}"
        print(f"scoring failed: {result['score_error']}", file=sys.stderr, flush=True)
    result["train_seconds"] = round(train_s, 1)
    result["predict_seconds"] = round(predict_s, 1)
    result["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result["loss_per_step"] = [round(v, 5) for v in loss]
    result["acc_pose_per_step"] = [round(v, 4) for v in log["acc_pose"]]
    result["lr_per_step"] = [float(f"{v:.6g}") for v in log["lr"]]
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}", flush=True)
    return 0 if "score_error" not in result else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps (default 448)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: load in the main process)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "mmpose_learning_check.json")
    ap.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "mmpose_learning_check")
    ap.add_argument("--score", type=Path, metavar="PREDICTIONS", help="only score a predictions file (project venv)")
    args = ap.parse_args(argv)
    if args.score is not None:
        print(json.dumps(score(args.score)))
        return 0
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
