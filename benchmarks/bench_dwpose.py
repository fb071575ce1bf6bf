"""DWPose gains table: teacher, RTMPose-t without KD, + stage 1, + stage 1 + 2, on synthetic whole-body data and
on LSPet, several seeds each, with the wall time of every run.

Per dataset (configs in ``configs/dwpose/``; every run is a ``posedistill train`` / ``distill`` subprocess):

1. the teacher, RTMPose-m, trained for twice the students' epochs (``<ds>_teacher_rtmpose-m.yaml``, seed 0 unless
   ``--teacher-seeds``), shared by every student;
2. per seed: ``baseline`` RTMPose-t without KD; ``dwpose-s1`` the same recipe plus DWPose stage 1 from the teacher;
   ``dwpose-s2`` stage 2 on that seed's stage-1 model (1/5 of the epochs).

Every final (``last``) checkpoint is then evaluated with flip test:

- ``synthetic``: COCO AP of the whole body and of the body part on the generated validation images (difficulty
  ``medium`` in the configs, ``easy`` in the quick profile; per-part numbers in ``details``);
- ``lspet``: PCK@0.2 on images 2501-3000, and COCO AP on ``../shared/data/coco_dev`` (julito + coco_mini_train,
  ground-truth boxes): the 14 LSP joints are mapped to COCO-17 (``posedistill.layouts.get_mapping``) and the
  OKS AP is computed over the 12 limb joints both layouts share (nose, eyes and ears left out of the GT).

Every evaluation set also gets a ``mean-pose baseline`` row (``posedistill.eval.baseline``): the mean box-relative
pose of the dataset's training people (synthetic train images; LSPet 1-2500, mapped to COCO-17 for coco_dev as the
LSP models' predictions are), placed in every evaluated box and scored the same way; a run that does not beat it
by ``MARGIN`` gets a warning. ``--baseline-only`` adds those rows to an existing ``--out`` file without any model
(annotations only, plus generating the synthetic data when it is missing).

Profiles. ``--quick`` (default, CPU): 128×96 input (SimCC σ halved), batch 32, students 15 epochs, teacher 30,
stage 2 3 epochs, 800 + 150 synthetic images at difficulty ``easy``, one torch thread per run, and for every run
alike: peak learning rate 2e-3, grad-clip 1.0 and mild augmentation (see ``_SHORT``). ``--full`` (GPU): the
configs as written (256×192, LSPet students 80 epochs / teacher 160, synthetic ``medium`` 40 / 80 epochs on
2000 + 300 images). ``--smoke``: a pipeline check in minutes.

Output: ``benchmarks/results/dwpose.json``, a list of rows ``{dataset, model, method, seed, metric, value,
train_seconds, eval_set, details}`` (values are fractions; ``train_seconds`` is the wall time of that run alone,
so stage 1 + 2 costs the sum of the two rows), ``benchmarks/results/dwpose.png`` (mean ± spread) and, with
``--cache-experiment``, ``benchmarks/results/dwpose_cache.json``: the same stage-1 (1 epoch) and stage-2 runs
without the teacher cache, with a cold cache, and again with the warm cache.

``--teacher-model rtmpose-t`` trains the teacher run with another network (same recipe and epochs: a teacher of
the student's size trained twice as long), for when the RTMPose-m teacher cannot be trained well in the budget
(docs/dwpose.md §5); give it a ``--work-dir`` and ``--out`` of its own (the baseline runs can be symlinked in).

Runs whose ``last`` checkpoint is complete are reused, an interrupted one resumes from it (``--force``
retrains); ``--report`` only re-evaluates and rewrites the outputs. Datasets and seeds can run in parallel
(``--datasets lspet --seeds 0`` and ``--datasets lspet --seeds 1`` in two shells, then ``--report``).

    .venv/bin/python benchmarks/bench_dwpose.py [--quick | --full] [--datasets lspet synthetic] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posedistill.eval.baseline import NAME as BASELINE  # noqa: E402
from posedistill.eval.baseline import row_warnings  # noqa: E402
from posedistill.fileio import atomic_write_json  # noqa: E402

CONFIGS = ROOT / "configs" / "dwpose"
DATASETS = ("synthetic", "lspet")
METHODS = ("teacher", "baseline", "dwpose-s1", "dwpose-s2")
COCO_DEV = ROOT.parent / "shared" / "data" / "coco_dev"
LSPET = ROOT.parent / "shared" / "data" / "lspet" / "joints.mat"
LSPET_TRAIN, LSPET_VAL = range(1, 2501), range(2501, 3001)  # 1-based image numbers


@dataclasses.dataclass
class Profile:
    name: str
    epochs: int | None  # students; None: the configs' own
    teacher_epochs: int | None
    input_size: tuple[int, int] | None = None  # (w, h)
    sigma: tuple[float, float] | None = None
    warmup_iters: int | None = None
    synthetic_images: tuple[int, int] | None = None  # train, val
    synthetic_difficulty: str | None = None  # None: the configs' ("medium")
    threads: int | None = None
    extra: tuple[str, ...] = ()  # --set overrides of every run
    aug_switch: bool = True  # stage-2 augmentation in the last epoch (with ``epochs``)


_CPU = ("train.num_workers=1", "train.device=cpu", "train.batch_size=32")
# Short runs from scratch: what the quick profile changes for every run alike (teacher, baseline, stage 1, stage 2),
# each one measured to help within a CPU budget (docs/dwpose.md §5): a lower peak learning rate and grad-clip 1.0
# (at 4e-3 RTMPose-t's loss spikes during the first epochs), and RTMPose's milder stage-2 augmentation without
# coarse dropout, half-body crops or blur, throughout (the runs are far from overfitting).
_SHORT = (
    "optim.lr=2.0e-3",
    "train.grad_clip=1.0",
    "data.aug.dropout_prob=0.0",
    "data.aug.half_body_prob=0.0",
    "data.aug.rotate_factor=30",
    "data.aug.shift_factor=0.0",
    "data.aug.scale_range=[0.75, 1.25]",
    "data.aug.blur_prob=0.0",
    "data.aug.median_blur_prob=0.0",
)
PROFILES = {
    # sized for 2 CPU cores shared with other jobs (about 1.5 hours with the two datasets in parallel at a load of 2)
    "quick": Profile("quick", epochs=15, teacher_epochs=30, input_size=(96, 128), sigma=(2.45, 2.83), warmup_iters=100,
                     synthetic_images=(800, 150), synthetic_difficulty="easy", threads=1, extra=(*_CPU, *_SHORT),
                     aug_switch=False),
    "full": Profile("full", None, None),
    # a pipeline check in a few minutes, not an experiment
    "smoke": Profile("smoke", epochs=1, teacher_epochs=1, input_size=(48, 64), sigma=(1.2, 1.4), warmup_iters=10,
                     synthetic_images=(60, 20), threads=1, extra=_CPU),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------- runs


def config_path(dataset: str, method: str) -> Path:
    name = {
        "teacher": "teacher_rtmpose-m",
        "baseline": "baseline_rtmpose-t",
        "dwpose-s1": "dwpose_m-t_s1",
        "dwpose-s2": "dwpose_t-t_s2",
    }[method]
    return CONFIGS / f"{dataset}_{name}.yaml"


def synthetic_root(work: Path, profile: Profile) -> Path | None:
    if not profile.synthetic_images:
        return None
    return work / f"synthetic_data_{profile.synthetic_difficulty or 'medium'}"


def overrides(dataset: str, method: str, seed: int, profile: Profile, work: Path, teacher: Path | None) -> list[str]:
    """``--set`` arguments of one run."""
    out = [f"train.seed={seed}", "train.progress=false", "train.tensorboard=false", "train.log_interval=20",
           "train.checkpoint_interval=100000", "data.val=[]", *profile.extra]  # fmt: skip
    if profile.input_size:
        out += [f"model.input_size=[{profile.input_size[0]}, {profile.input_size[1]}]",
                f"codec.sigma=[{profile.sigma[0]}, {profile.sigma[1]}]"]  # fmt: skip
    if profile.epochs and method != "dwpose-s2":  # stage 2 takes 1/5 of its stage-1 run's epochs
        e = profile.teacher_epochs if method == "teacher" else profile.epochs
        switch = e - 1 if profile.aug_switch else "null"
        out += [f"train.epochs={e}", f"schedule.cosine_begin_epoch={e // 2}", f"train.aug_switch_epoch={switch}"]
    if profile.warmup_iters is not None:
        out.append(f"schedule.warmup_iters={profile.warmup_iters if method != 'dwpose-s2' else 20}")
    root = synthetic_root(work, profile)
    if dataset == "synthetic" and root is not None:
        out += [f"data.train.0.path={root / 'train' / 'annotations.json'}",
                f"data.train.0.synthetic.num_images={profile.synthetic_images[0]}"]  # fmt: skip
        if profile.synthetic_difficulty:
            out.append(f"data.train.0.synthetic.difficulty={profile.synthetic_difficulty}")
    if teacher is not None:
        out.append(f"method.args.teacher={teacher}")
    return out


def run_dir(work: Path, dataset: str, method: str, seed: int) -> Path:
    return work / dataset / f"{method}_seed{seed}"


def is_complete(wd: Path) -> bool:
    meta, info = wd / "last" / "meta.json", wd / "run.json"
    if not (meta.is_file() and info.is_file()):
        return False
    m = json.loads(meta.read_text())
    return int(m.get("epoch", -1)) == int(m["config"]["train"]["epochs"])


STALL_SECONDS = 1800  # no log line for this long: the run is stuck (see run_watched)
STALLED = -1000


def run_watched(args: list[str], env: dict[str, str], log_path: Path, watch: list[Path], stall: float) -> int:
    """Run ``args`` with output to ``log_path``; kill it (its whole process group) when none of ``watch`` has
    changed for ``stall`` seconds and return :data:`STALLED`. Once, on this shared machine, a training process hung
    with its DataLoader worker blocked from the start (futex wait, no CPU time); a retry is cheaper than hours."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        last = time.time()
        while True:
            try:
                return proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            newest = max((p.stat().st_mtime for p in watch if p.exists()), default=0.0)
            last = max(last, newest)
            if time.time() - last > stall:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return STALLED


def train_run(
    dataset: str, method: str, seed: int, profile: Profile, work: Path, teacher: Path | None, force: bool,
    cmd_extra: tuple[str, ...] = (), wd: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train one run in a subprocess (unless already complete); returns its run.json."""
    wd = wd or run_dir(work, dataset, method, seed)
    if not force and is_complete(wd):
        return json.loads((wd / "run.json").read_text())
    command = "train" if method in ("teacher", "baseline") else "distill"
    cfg = config_path(dataset, method)
    args = [sys.executable, "-m", "posedistill", command, str(cfg), "--work-dir", str(wd)]
    for s in [*overrides(dataset, method, seed, profile, work, teacher), *cmd_extra]:
        args += ["--set", s]
    # an interrupted run (its ``last`` checkpoint, written every epoch) goes on from there
    resumed = not force and (wd / "last" / "meta.json").is_file()
    if resumed:
        args.append("--resume")
    env = dict(os.environ)
    if profile.threads:
        env["OMP_NUM_THREADS"] = str(profile.threads)
    wd.mkdir(parents=True, exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {dataset} {method} seed {seed}: {' '.join(args[2:])}", flush=True)
    for attempt in range(2):
        t0 = time.perf_counter()
        rc = run_watched(args, env, wd / "train.log", [wd / "train.log", wd / "metrics.jsonl"], STALL_SECONDS)
        seconds = time.perf_counter() - t0
        if rc != STALLED:
            break
        print(f"    no progress for {STALL_SECONDS} s: killed; {'retrying' if attempt == 0 else 'giving up'}")
    if rc != 0:
        tail = (wd / "train.log").read_text()[-3000:]
        raise RuntimeError(f"{dataset} {method} seed {seed} failed (rc {rc}); log {wd / 'train.log'}:\n{tail}")
    if resumed:  # the wall time of the whole run: the epochs of every attempt, as logged
        seconds = epoch_seconds(wd / "metrics.jsonl")
    info = {"seconds": round(seconds, 1), "command": args[2:], "load_after": os.getloadavg()[0], "resumed": resumed}
    atomic_write_json(wd / "run.json", info, indent=1)
    print(f"    done in {seconds:.0f} s", flush=True)
    return info


def epoch_seconds(metrics: Path) -> float:
    """Sum of the logged ``epoch_time`` of every epoch (the last entry per epoch, so a resumed epoch counts once)."""
    times: dict[int, float] = {}
    for line in metrics.read_text().splitlines():
        m = json.loads(line)
        if m.get("type") == "epoch":
            times[int(m["epoch"])] = float(m["epoch_time"])
    return sum(times.values())


# ---------------------------------------------------------------------------------------------- evaluation


def _croppable(instances: list) -> np.ndarray:
    """Indices of the instances a top-down model predicts (no crowd region, a non-empty box)."""
    return np.asarray([i for i, inst in enumerate(instances) if not inst.iscrowd and inst.bbox[2] > 0
                       and inst.bbox[3] > 0], dtype=np.int64)  # fmt: skip


def _predict_rows(model: Any, layout: str, instances: list, data_layout: str, input_size: tuple[int, int],
                  sigma: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Flip-test predictions (image pixels) of ``model`` (trained on ``layout``) on the croppable instances."""
    import torch

    from posedistill.codecs import SimCCCodec
    from posedistill.data.loader import TopDownDataset
    from posedistill.distill.supervised import SupervisedMethod
    from posedistill.engine.evaluation import predict_dataset

    rows = _croppable(instances)
    codec = SimCCCodec(input_size, sigma)
    dataset = TopDownDataset([instances[i] for i in rows], codec, input_size, train=False, layout=data_layout)
    method = SupervisedMethod(model, codec, layout)
    kp, sc = predict_dataset(method, dataset, 64, torch.device("cpu"), flip_test=True)
    return rows, kp, sc


def synthetic_sources(profile: Profile, work: Path) -> tuple[Any, Any]:
    """The (train, val) sources of the synthetic experiment under ``profile``."""
    from posedistill.engine.config import load_config

    cfg = load_config(config_path("synthetic", "baseline"))
    train, val = cfg.data.train[0], cfg.data.val[0]
    root = synthetic_root(work, profile)
    if root is not None:
        for src, split, n in ((train, "train", profile.synthetic_images[0]), (val, "val", profile.synthetic_images[1])):
            src.path = str(root / split / "annotations.json")
            src.synthetic = {**(src.synthetic or {}), "num_images": n}
            if profile.synthetic_difficulty:
                src.synthetic["difficulty"] = profile.synthetic_difficulty
    return train, val


def prepare_synthetic(profile: Profile, work: Path) -> None:
    """Generate the synthetic images here, once, before any training process starts (instead of in the first
    training process, which then forks its DataLoader workers)."""
    from posedistill.engine.builders import read_source

    for src in synthetic_sources(profile, work):
        read_source(src, "coco_wholebody")


def eval_checkpoint(ckpt: Path, dataset: str, profile: Profile, work: Path) -> list[dict[str, Any]]:
    """[(metric, value, eval_set, details)] of one checkpoint."""
    from posedistill.engine.builders import read_source
    from posedistill.engine.checkpoint import load_model_from_checkpoint

    model, meta = load_model_from_checkpoint(ckpt)
    input_size = tuple(int(v) for v in meta["input_size"])
    sigma = tuple(meta["codec"]["sigma"])
    if dataset == "synthetic":
        instances = read_source(synthetic_sources(profile, work)[1], "coco_wholebody")
        rows, kp, sc = _predict_rows(model, "coco_wholebody", instances, "coco_wholebody", input_size, sigma)
        return synthetic_scores(instances, rows, kp, sc, input_size, profile)

    # LSPet: PCK@0.2 on images 2501-3000
    from posedistill.data.readers.lsp import read_lsp

    instances = read_lsp(LSPET, indices=list(LSPET_VAL))
    rows, kp, sc = _predict_rows(model, "lsp", instances, "lsp", input_size, sigma)
    coco = coco_dev_instances()
    coco_rows, kp14, sc14 = _predict_rows(model, "lsp", coco, "coco", input_size, sigma)
    return [lspet_score(instances, rows, kp, sc), coco_dev_body_ap(coco, coco_rows, kp14, sc14, input_size)]


def synthetic_scores(instances: list, rows: np.ndarray, kp: np.ndarray, sc: np.ndarray, input_size: tuple[int, int],
                     profile: Profile) -> list[dict[str, Any]]:  # fmt: skip
    """Whole-body and body AP of predictions (``kp``, ``sc``) for the ``rows`` of the synthetic val instances."""
    from posedistill.eval.evaluate import evaluate_predictions

    keypoints = np.zeros((len(instances), *kp.shape[1:]), np.float32)
    scores = np.zeros((len(instances), kp.shape[1]), np.float32)
    keypoints[rows], scores[rows] = kp, sc
    res = evaluate_predictions(instances, keypoints, scores, "coco_wholebody", metric="coco",
                               input_size=input_size)  # fmt: skip
    level = profile.synthetic_difficulty or "medium"
    out = []
    for part in ("wholebody", "body"):
        details = {k: float(v) for k, v in res.items() if k.startswith(f"{part}/")}
        out.append({"metric": "AP", "value": float(res[f"{part}/AP"]), "details": details,
                    "eval_set": f"synthetic {level} val ({len(rows)} people), {part}"})  # fmt: skip
    return out


def lspet_score(instances: list, rows: np.ndarray, kp: np.ndarray, sc: np.ndarray) -> dict[str, Any]:
    """PCK@0.2 of predictions for the ``rows`` of LSPet 2501-3000."""
    from posedistill.eval.evaluate import evaluate_predictions

    res = evaluate_predictions([instances[i] for i in rows], kp, sc, "lsp", metric="pck")
    return {"metric": "pck@0.2", "value": float(res["pck@0.2"]), "eval_set": "lspet 2501-3000",
            "details": {"tpck@0.2": float(res["tpck@0.2"]), "epe": float(res["epe"])}}  # fmt: skip


def coco_dev_instances() -> list:
    """The coco_dev people (julito + coco_mini_train, COCO-17), only the 12 limb joints LSP shares labelled."""
    from posedistill.data.readers import read_dataset
    from posedistill.layouts import get_mapping

    defined = get_mapping("lsp", "coco").defined_mask
    instances = []
    for folder in ("julito", "coco_mini_train"):
        for inst in read_dataset(COCO_DEV / folder / "person_keypoints.json", format="coco", layout="coco"):
            vis = np.where(defined, inst.visibility, 0).astype(inst.visibility.dtype)
            extra = {k: v for k, v in inst.extra.items() if k != "num_keypoints"}
            instances.append(dataclasses.replace(inst, visibility=vis, extra=extra,
                                                 image_id=f"{folder}/{inst.image_id}",
                                                 instance_id=f"{folder}/{inst.instance_id}"))  # fmt: skip
    return instances


def coco_dev_body_ap(instances: list, rows: np.ndarray, kp14: np.ndarray, sc14: np.ndarray,
                     input_size: tuple[int, int]) -> dict[str, Any]:  # fmt: skip
    """COCO AP of LSP-14 predictions for the ``rows`` of :func:`coco_dev_instances` (GT boxes), over the 12 limb
    joints LSP shares with COCO-17."""
    from posedistill.eval.evaluate import evaluate_predictions
    from posedistill.layouts import get_mapping

    kp17, sc17, _ = get_mapping("lsp", "coco").apply(kp14, sc14)
    keypoints = np.zeros((len(instances), 17, 2), np.float32)
    scores = np.zeros((len(instances), 17), np.float32)
    keypoints[rows], scores[rows] = kp17, sc17
    res = evaluate_predictions(instances, keypoints, scores, "coco", metric="coco", input_size=input_size)
    scored = sum(1 for i in rows if instances[i].visibility.sum() > 0)
    return {"metric": "AP", "value": float(res["AP"]), "eval_set": f"coco_dev body, 12 limb joints ({scored} people)",
            "details": {"AP50": float(res["AP50"]), "AR": float(res["AR"])}}  # fmt: skip


def baseline_rows(dataset: str, profile: Profile, work: Path) -> list[dict[str, Any]]:
    """The mean-pose baseline's rows of ``dataset``: the mean box-relative pose of the training people placed in
    the boxes :func:`eval_checkpoint` predicts, scored by the same functions (no model; the synthetic data are
    generated when missing)."""
    from posedistill.data.readers import training_instances
    from posedistill.eval.baseline import fit_mean_pose, place_mean_pose

    def mean_pose(instances: list, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kp = place_mean_pose(pose, [instances[i] for i in rows])
        return kp, np.ones(kp.shape[:2], np.float32)

    if dataset == "synthetic":
        from posedistill.engine.builders import read_source

        prepare_synthetic(profile, work)
        train_src, val_src = synthetic_sources(profile, work)
        train = training_instances(read_source(train_src, "coco_wholebody"))
        pose = fit_mean_pose(train)
        instances = read_source(val_src, "coco_wholebody")
        rows = _croppable(instances)
        input_size = profile.input_size or tuple(int(v) for v in _config_input_size(dataset))
        out = synthetic_scores(instances, rows, *mean_pose(instances, rows), input_size, profile)
        level = profile.synthetic_difficulty or "medium"
        fitted = f"the {len(train)} people of the {train_src.synthetic['num_images']} synthetic {level} training images"
    else:
        from posedistill.data.readers.lsp import read_lsp

        train = training_instances(read_lsp(LSPET, indices=list(LSPET_TRAIN)))
        pose = fit_mean_pose(train)
        input_size = profile.input_size or tuple(int(v) for v in _config_input_size(dataset))
        instances = read_lsp(LSPET, indices=list(LSPET_VAL))
        rows = _croppable(instances)
        coco = coco_dev_instances()
        coco_rows = _croppable(coco)
        out = [lspet_score(instances, rows, *mean_pose(instances, rows)),
               coco_dev_body_ap(coco, coco_rows, *mean_pose(coco, coco_rows), input_size)]  # fmt: skip
        fitted = f"the {len(train)} people of LSPet images 1-2500"
    return [{"dataset": dataset, "model": BASELINE, "method": BASELINE, "seed": None, **r, "train_seconds": 0.0,
             "fitted_on": fitted} for r in out]  # fmt: skip


def _config_input_size(dataset: str) -> list[int]:
    from posedistill.engine.config import load_config

    return list(load_config(config_path(dataset, "baseline")).input_size)


# ---------------------------------------------------------------------------------------------- experiment


def run_dataset(dataset: str, profile: Profile, work: Path, seeds: list[int], teacher_seeds: list[int],
                force: bool, teacher_model: str = "rtmpose-m") -> list[dict[str, Any]]:  # fmt: skip
    rows: list[dict[str, Any]] = []

    def record(method: str, model: str, seed: int, wd: Path, info: dict[str, Any]) -> None:
        for r in eval_checkpoint(wd / "last", dataset, profile, work):
            rows.append({"dataset": dataset, "model": model, "method": method, "seed": seed, **r,
                         "train_seconds": info["seconds"]})  # fmt: skip
            print(f"    {dataset} {method} seed {seed}: {r['metric']} {r['value']:.4f} ({r['eval_set']})", flush=True)

    if dataset == "synthetic":
        prepare_synthetic(profile, work)
    teacher_dir = None
    for ts in teacher_seeds:
        wd = run_dir(work, dataset, "teacher", ts)
        extra = (f"model.name={teacher_model}",) if teacher_model != "rtmpose-m" else ()
        record("teacher", teacher_model, ts, wd, train_run(dataset, "teacher", ts, profile, work, None, force, extra))
        teacher_dir = teacher_dir or wd / "last"
    for seed in seeds:
        for method, teacher in (("baseline", None), ("dwpose-s1", teacher_dir),
                                ("dwpose-s2", run_dir(work, dataset, "dwpose-s1", seed) / "last")):  # fmt: skip
            info = train_run(dataset, method, seed, profile, work, teacher, force)
            record(method, "rtmpose-t", seed, run_dir(work, dataset, method, seed), info)
    atomic_write_json(work / dataset / "rows.json", rows, indent=1)
    return rows


def cache_experiment(dataset: str, profile: Profile, work: Path, seed: int) -> dict[str, Any]:
    """Stage 1 (1 epoch) and stage 2 without cache, with a cold cache, with the warm cache; same seed."""
    from safetensors.torch import load_file

    out: dict[str, Any] = {"dataset": dataset, "profile": profile.name, "seed": seed, "runs": []}
    cache_root = work / dataset / "cache_experiment"
    teacher = {"dwpose-s1": run_dir(work, dataset, "teacher", 0) / "last",
               "dwpose-s2": run_dir(work, dataset, "dwpose-s1", seed) / "last"}  # fmt: skip
    for method in ("dwpose-s1", "dwpose-s2"):
        extra = ("train.epochs=1",) if method == "dwpose-s1" else ()
        weights = {}
        for variant in ("none", "cold", "warm"):
            cache = cache_root / f"{method}_cache"
            sets = list(extra) + ([f"method.args.cache_dir={cache}"] if variant != "none" else [])
            wd = cache_root / f"{method}_{variant}"
            info = train_run(dataset, method, seed, profile, work, teacher[method], True, tuple(sets), wd)
            metrics = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
            epochs = [m["epoch_time"] for m in metrics if m.get("type") == "epoch"]
            weights[variant] = load_file(str(wd / "last" / "weights.safetensors"))
            size = sum(f.stat().st_size for f in cache.glob("*")) if cache.exists() else 0
            out["runs"].append({"method": method, "cache": variant, "seconds": info["seconds"],
                                "epoch_seconds": [round(e, 1) for e in epochs], "cache_bytes": size,
                                "load_after": info["load_after"]})  # fmt: skip
            print(f"    cache {method} {variant}: {info['seconds']:.0f} s, epochs {epochs}, cache {size / 1e6:.0f} MB")
        same = all(np.array_equal(weights["none"][k].numpy(), weights["warm"][k].numpy()) for k in weights["none"])
        out[f"{method}_warm_equals_uncached"] = bool(same)
    return out


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    keys = sorted({(r["dataset"], r["metric"], r["eval_set"]) for r in rows})
    for ds, metric, eval_set in keys:
        for method in (BASELINE, *METHODS):
            sel = [
                r
                for r in rows
                if (r["dataset"], r["metric"], r["eval_set"], r["method"]) == (ds, metric, eval_set, method)
            ]
            if not sel:
                continue
            v = np.array([r["value"] for r in sel])
            t = np.array([r["train_seconds"] for r in sel])
            table.append({"dataset": ds, "metric": metric, "eval_set": eval_set, "method": method, "n": len(v),
                          "mean": float(v.mean()), "spread": float(v.max() - v.min()), "std": float(v.std()),
                          "values": v.tolist(), "train_seconds_mean": float(t.mean())})  # fmt: skip
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    print(f"\n{'dataset':<10} {'metric':<8} {'method':<18} {'n':>2} {'mean':>7} {'± spread/2':>10} "
          f"{'train s':>8}  eval set")  # fmt: skip
    for r in table:
        print(f"{r['dataset']:<10} {r['metric']:<8} {r['method']:<18} {r['n']:>2} {r['mean']:>7.4f} "
              f"{r['spread'] / 2:>10.4f} {r['train_seconds_mean']:>8.0f}  {r['eval_set']}")  # fmt: skip
    if any(r["method"] == BASELINE for r in table):
        print(f"({BASELINE}: the mean box-relative pose of the training people in every box, no model)")


def warn_unbeaten(rows: list[dict[str, Any]]) -> None:
    """One warning (stderr) per run that does not beat the mean-pose baseline of its evaluation set."""
    for line in row_warnings(rows, label=("model", "method", "seed")):
        print(line, file=sys.stderr)


def plot(table: list[dict[str, Any]], path: Path, profile: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["dataset"], r["metric"], r["eval_set"]) for r in table})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    colors = {"teacher": "#888888", "baseline": "#4C72B0", "dwpose-s1": "#DD8452", "dwpose-s2": "#55A868"}
    for ax, (ds, metric, eval_set) in zip(axes[0], panels):
        sel = [r for r in table if (r["dataset"], r["metric"], r["eval_set"]) == (ds, metric, eval_set)]
        base = [r["mean"] for r in sel if r["method"] == BASELINE]
        sel = [r for r in sel if r["method"] != BASELINE]
        if base:
            ax.axhline(base[0], color="tab:red", ls="--", lw=1, label=BASELINE)
            ax.legend(fontsize=7)
        x = np.arange(len(sel))
        means = [r["mean"] for r in sel]
        lo = [max(0.0, r["mean"] - min(r["values"])) for r in sel]
        hi = [max(0.0, max(r["values"]) - r["mean"]) for r in sel]
        ax.bar(x, means, yerr=[lo, hi], capsize=4, color=[colors[r["method"]] for r in sel])
        for i, r in enumerate(sel):
            ax.scatter([i] * len(r["values"]), r["values"], color="black", s=8, zorder=3)
        ax.set_xticks(x, [r["method"] for r in sel], rotation=20)
        ax.set_title(f"{ds}: {metric}\n{eval_set}", fontsize=8)
        vals = [v for r in sel for v in r["values"]] + base
        ax.set_ylim(max(0.0, min(vals) - 0.1), min(1.0, max(vals) + 0.05))
    fig.suptitle(f"DWPose gains ({profile} profile): bars = mean, whiskers = min..max over seeds", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    prof = p.add_mutually_exclusive_group()
    prof.add_argument("--quick", dest="profile", action="store_const", const="quick", help="CPU profile (default)")
    prof.add_argument("--full", dest="profile", action="store_const", const="full", help="the configs as written")
    prof.add_argument("--smoke", dest="profile", action="store_const", const="smoke", help="pipeline check (minutes)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--teacher-seeds", nargs="+", type=int, default=[0])
    p.add_argument("--teacher-model", default="rtmpose-m",
                   help="network of the teacher run (its config's recipe, e.g. rtmpose-t: a longer-trained teacher of "
                   "the student's size); use a --work-dir of its own")  # fmt: skip
    p.add_argument("--work-dir", type=Path, default=None, help="default work_dirs/bench_dwpose_<profile>")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dwpose.json")
    p.add_argument("--force", action="store_true", help="retrain runs that are already complete")
    p.add_argument("--report", action="store_true", help="only evaluate finished runs and write the outputs")
    p.add_argument("--cache-experiment", action="store_true",
                   help="also measure the teacher cache on the first dataset (stage 1, 1 epoch; stage 2)")  # fmt: skip
    p.add_argument("--baseline-only", action="store_true",
                   help=f"only (re)compute the {BASELINE} rows of the datasets of the existing --out file")  # fmt: skip
    args = p.parse_args()
    profile = PROFILES[args.profile or "quick"]
    work = (args.work_dir or ROOT / "work_dirs" / f"bench_dwpose_{profile.name}").resolve()
    if args.baseline_only:
        return update_baseline(args.out, profile, work, args.datasets)
    if profile.threads:
        import torch

        torch.set_num_threads(profile.threads)
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    if not args.report:
        for ds in args.datasets:
            run_dataset(ds, profile, work, args.seeds, args.teacher_seeds, args.force, args.teacher_model)
        if args.cache_experiment:
            result = cache_experiment(args.datasets[0], profile, work, args.seeds[0])
            atomic_write_json(args.out.with_name("dwpose_cache.json"), result, indent=1)
    rows: list[dict[str, Any]] = []
    for ds in DATASETS:  # every dataset finished so far, including ones run by another invocation
        f = work / ds / "rows.json"
        if args.report and any(is_complete(run_dir(work, ds, m, s)) for m in METHODS for s in args.seeds):
            rows += run_dataset_report(ds, profile, work, args.seeds, args.teacher_seeds, args.teacher_model)
        elif f.is_file():
            rows += json.loads(f.read_text())
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        rows += baseline_rows(ds, profile, work)
    table = summarise(rows)
    print_table(table)
    warn_unbeaten(rows)
    atomic_write_json(args.out, rows, indent=1)
    atomic_write_json(args.out.with_name("dwpose_summary.json"), {
        "profile": dataclasses.asdict(profile), "table": table, "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()[0],
        "seconds": round(time.perf_counter() - t0, 1),
        "command": f"python benchmarks/bench_dwpose.py --{profile.name} " + " ".join(sys.argv[1:]),
    }, indent=1)  # fmt: skip
    if table:
        plot(table, args.out.with_suffix(".png"), profile.name)
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


def update_baseline(out: Path, profile: Profile, work: Path, datasets: list[str]) -> int:
    """Replace the baseline rows of the results file ``out`` (and of the summary's table next to it, when it is
    ``dwpose.json``) by freshly computed ones, for the datasets of ``datasets`` the file has."""
    rows = [r for r in json.loads(out.read_text()) if r["method"] != BASELINE]
    for ds in [d for d in dict.fromkeys(r["dataset"] for r in rows) if d in datasets]:
        rows += baseline_rows(ds, profile, work)
    table = summarise(rows)
    print_table(table)
    warn_unbeaten(rows)
    atomic_write_json(out, rows, indent=1)
    summary = out.with_name("dwpose_summary.json")
    if out.name == "dwpose.json" and summary.is_file():
        doc = json.loads(summary.read_text())
        doc["table"] = table
        atomic_write_json(summary, doc, indent=1)
    print(f"wrote the {BASELINE} rows into {out}")
    return 0


def run_dataset_report(ds: str, profile: Profile, work: Path, seeds: list[int], teacher_seeds: list[int],
                       teacher_model: str = "rtmpose-m") -> list:  # fmt: skip
    """Rows of the finished runs of ``ds`` (evaluated again), without training anything."""
    rows = []
    runs = [("teacher", teacher_model, s) for s in teacher_seeds]
    runs += [(m, "rtmpose-t", s) for s in seeds for m in METHODS[1:]]
    for method, model, seed in runs:
        wd = run_dir(work, ds, method, seed)
        if not is_complete(wd):
            continue
        info = json.loads((wd / "run.json").read_text())
        for r in eval_checkpoint(wd / "last", ds, profile, work):
            rows.append({"dataset": ds, "model": model, "method": method, "seed": seed, **r,
                         "train_seconds": info["seconds"]})  # fmt: skip
    atomic_write_json(work / ds / "rows.json", rows, indent=1)
    return rows


if __name__ == "__main__":
    sys.exit(main())
