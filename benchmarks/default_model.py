"""The shipped default model, one command: pseudo-label real photos with the teacher ensemble, train a whole-body
student on them, evaluate it next to its teachers, MediaPipe and the previous default, and ship it.

    .venv/bin/python benchmarks/default_model.py --ship            # make default-model (2 CPU cores)
    .venv/bin/python benchmarks/default_model.py --gpu --ship      # make default-model GPU=1 (one CUDA GPU)

Steps (every product lands in ``--work-dir``, default ``work_dirs/default_model``; a finished step is reused, and
an interrupted training run resumes from its last checkpoint):

1. **Labels** (``posedistill label``, run by the Python of the MediaPipe environment, ``--mp-python``): the
   training pool is LSPet images 1–2500 (``lspet/``), 3001–7000 (``lspet_more/``) and the people of
   ``coco_dev/coco_mini_train``, labelled by the ensemble :data:`ENSEMBLE`: PP-TinyPose 256×192 with flip test for
   the body, MediaPipe Holistic for feet, face and hands, the dataset's ground truth wherever it has a label (on
   LSPet only its visible joints, :data:`ENSEMBLE_LSP`: its occluded ones are guesses, often outside the image); the
   teachers' confidences become per-keypoint training weights. MediaPipe also labels the evaluation people (face
   and hand agreement). Each file is cached with a fingerprint of its teachers, its source and its images
   (``*.fingerprint.json``); a mismatch relabels. Jobs run in parallel, one per core. ``coco_dev/julito`` and
   LSPet 2501–3000 never enter the pool: they are the evaluation sets.
2. **Pool**: the pool's files merged into ``pool.json`` (COCO-WholeBody, ids renumbered).
3. **Backbone**: RTMDet-nano's CSPNeXt read out of the shipped detector (``models/rtmdet-nano_person``), its
   BatchNorm restored on 64 pool crops (:mod:`posedistill.models.rtmdet_backbone`).
4. **Stage 1**: ``rtmpose-nano`` (the RTMPose SimCC head on that backbone) on the pool with the pseudo-label loss
   (``configs/default_model/student.yaml``). **Stage 2**: DWPose's head-aware self-KD
   (``configs/default_model/student_s2.yaml``). The logit-KD term on PP-TinyPose's soft targets is not used: the
   teacher's forward costs 50 ms per crop with flip test on one core, three times the student's training step
   (docs/benchmarks.md, default model), and its arg-max is already in the labels.
5. **Evaluation**, the same people and boxes for every model, no flip test for ours (as deployed):

   - ``coco_dev/julito`` (165 people, not in the pool): COCO-17 AP with the ground-truth boxes and with the default
     detector's boxes (``predict --boxes detect``: score > 0.1, NMS 0.65);
   - LSPet 2501–3000: PCK@0.2 over the 12 limb joints LSP shares with COCO-WholeBody, and the agreement with
     MediaPipe on the face and each hand (share of its labelled points within 0.2 × its part box);
   - ms per person: onnxruntime at 2 threads, batch 1 (crop + network + decode) for ours, MediaPipe Holistic on
     the same crops in its environment;
   - rows for PP-TinyPose 256×192 +flip (the body teacher), MediaPipe Holistic, the previous default model (when
     its folder is still there) and the mean-pose baseline.

6. Writes ``benchmarks/results/default_model.json`` (rows ``{dataset, model, method, seed, metric, value, boxes,
   eval_set}`` and the settings) and ``.png``, five real photos (the first five of julito, fixed before any
   training) with the shipped model's skeletons (``docs/default_model_samples.jpg``), and with ``--ship`` the better
   of stage 1 and stage 2 (julito AP with GT boxes) to ``models/rtmpose-nano_wholebody/`` with its model card.

``--ablation`` trains the variants of :data:`ABLATION` (input size at an equal budget of CPU time) for the short
table in docs/benchmarks.md. ``--smoke`` checks the whole path on a few images in minutes (combine with ``--gpu
--set train.device=cpu --set train.amp=none`` to test the GPU recipe's code path on a CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # ncnn's spinning threads distort timings on shared cores

import bench_cascade as cascade  # noqa: E402
import bench_teachers as teachers  # noqa: E402

from posedistill.eval.baseline import NAME as BASELINE  # noqa: E402
from posedistill.eval.baseline import row_warnings  # noqa: E402
from posedistill.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, atomic_write_with  # noqa: E402

SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
WEIGHTS = SHARED / "weights"
CONFIGS = ROOT / "configs" / "default_model"
RESULTS = ROOT / "benchmarks" / "results" / "default_model.json"
SAMPLES = ROOT / "docs" / "default_model_samples.jpg"
SHIP_NAME = "rtmpose-nano_wholebody"
SHIP_DIR = ROOT / "models" / SHIP_NAME
PREVIOUS_DEFAULT = ROOT / "models" / "rtmpose-t_wholebody-cascade" / "model.onnx"
DETECTOR_ONNX = ROOT / "models" / "rtmdet-nano_person" / "model.onnx"
PP_TINYPOSE = WEIGHTS / "pp-tinypose_256x192_ncnn.param"
ENSEMBLE = "body=pp-tinypose:flip,feet+face+hands=mediapipe,gt"
# LSPet's occluded joints are guesses, often outside the image: only its visible ones override the teachers there
ENSEMBLE_LSP = "body=pp-tinypose:flip,feet+face+hands=mediapipe,gt:visible"
JULITO = DATA / "coco_dev" / "julito" / "person_keypoints.json"
LSPET_EVAL = (2501, 3000)  # 1-based image numbers, inclusive
SAMPLE_COUNT = 5


@dataclasses.dataclass(frozen=True)
class LabelJob:
    """One ``posedistill label`` run: ``source`` (an annotation file), an optional 0-based ``indices`` slice of it,
    the teacher spec, and whether its people join the training pool."""

    name: str
    source: Path
    indices: tuple[int, int] | None
    teacher: str
    pool: bool


def label_jobs(smoke: bool) -> list[LabelJob]:
    lsp, more, coco = DATA / "lspet" / "joints.mat", DATA / "lspet_more" / "joints.mat", DATA / "coco_dev"
    if smoke:
        return [LabelJob("pool_lspet_0-24", lsp, (0, 24), ENSEMBLE_LSP, True),
                LabelJob("pool_lspet_3000-3024", more, (3000, 3024), ENSEMBLE_LSP, True),
                LabelJob("eval_mediapipe_lspet_2500-2520", lsp, (2500, 2520), "mediapipe", False)]  # fmt: skip
    return [
        LabelJob("pool_lspet_0-2500", lsp, (0, 2500), ENSEMBLE_LSP, True),
        LabelJob("pool_lspet_3000-3800", more, (3000, 3800), ENSEMBLE_LSP, True),
        LabelJob("pool_lspet_3800-7000", more, (3800, 7000), ENSEMBLE_LSP, True),
        LabelJob("pool_coco_mini_train", coco / "coco_mini_train" / "person_keypoints.json", None, ENSEMBLE, True),
        LabelJob("eval_mediapipe_lspet_2500-3000", lsp, (2500, 3000), "mediapipe", False),
        LabelJob("eval_mediapipe_julito", JULITO, None, "mediapipe", False),
    ]


# ---------------------------------------------------------------------------------------------- 1-2. labels, pool


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def job_images(job: LabelJob) -> list[Path]:
    """The image files a job labels, in order."""
    from posedistill.data.readers import read_dataset

    if job.source.suffix == ".mat":
        from posedistill.data.readers.lsp import read_lsp

        a, b = job.indices or (0, None)
        people = read_lsp(job.source, indices=range(a + 1, b + 1) if b is not None else None)
    else:
        people = read_dataset(job.source, format="coco", layout="coco")
        if job.indices:
            people = people[job.indices[0] : job.indices[1]]
    return [Path(p) for p in dict.fromkeys(inst.image_path for inst in people)]


def fingerprint(job: LabelJob, mediapipe_version: str) -> dict[str, Any]:
    """What a label file depends on: the teachers' files and versions, the label code, the source and its images."""
    uses = job.teacher.replace("=", ",").replace("+", ",").split(",")
    teachers_used: dict[str, str] = {}
    if "pp-tinypose:flip" in uses or "pp-tinypose" in uses:
        for f in (
            PP_TINYPOSE,
            PP_TINYPOSE.with_suffix(".bin"),
            ROOT / "models" / "sidecars" / "pp-tinypose_256x192_ncnn.json",
        ):
            teachers_used[f.name] = _sha256(f)
    if "mediapipe" in uses:
        teachers_used["mediapipe"] = mediapipe_version
    code = hashlib.sha256()
    for f in sorted((ROOT / "posedistill" / "label").glob("*.py")):
        code.update(f.read_bytes())
    images = hashlib.sha256()
    files = job_images(job)
    for f in files:
        images.update(f.name.encode() + hashlib.sha256(f.read_bytes()).digest())
    return {"teacher": job.teacher, "teachers": teachers_used, "label_code": code.hexdigest(),
            "source": str(job.source), "source_sha256": _sha256(job.source), "indices": job.indices,
            "images": len(files), "images_sha256": images.hexdigest()}  # fmt: skip


MISSING_MP = (
    "the MediaPipe teacher needs its own environment (numpy < 2): `make mediapipe-env` (docs/label.md), or pass "
    "--mp-python"
)


def mediapipe_version(mp_python: Path) -> str | None:
    """MediaPipe's version in the environment of ``mp_python``; None when there is none (labels carried to a machine
    without it are then checked on everything but that version)."""
    if not mp_python.is_file():
        return None
    out = subprocess.run([str(mp_python), "-c", "import mediapipe; print(mediapipe.__version__)"], check=True,
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip()


def make_labels(jobs: list[LabelJob], folder: Path, mp_python: Path, cores: int) -> dict[str, Path]:
    """Run the label jobs whose file is missing or stale, ``cores`` at a time, each pinned to one core."""
    folder.mkdir(parents=True, exist_ok=True)
    version = mediapipe_version(mp_python)
    todo, files = [], {}
    for job in jobs:
        out, fp_file = folder / f"{job.name}.json", folder / f"{job.name}.fingerprint.json"
        files[job.name] = out
        fp = fingerprint(job, version or "")
        if version is None and fp_file.is_file():  # no MediaPipe here: trust the version the file was made with
            stored = json.loads(fp_file.read_text()).get("teachers", {})
            if "mediapipe" in fp["teachers"] and "mediapipe" in stored:
                fp["teachers"]["mediapipe"] = stored["mediapipe"]
        if out.is_file() and fp_file.is_file() and json.loads(fp_file.read_text()) == json.loads(json.dumps(fp)):
            continue
        todo.append((job, out, fp_file, fp))
    if todo and version is None:
        raise SystemExit(f"default_model: {mp_python} not found and {todo[0][1]} is missing or stale: {MISSING_MP}")
    running: list[tuple[subprocess.Popen, LabelJob, Path, Path, dict, int]] = []
    free = list(range(cores))
    while todo or running:
        while todo and free:
            job, out, fp_file, fp = todo.pop(0)
            core = free.pop(0)
            args = [str(mp_python), "-m", "posedistill", "label", str(job.source), "--teacher", job.teacher,
                    "--out", str(out), "--quiet"]  # fmt: skip
            if job.indices:
                args += ["--indices", f"{job.indices[0]}:{job.indices[1]}"]
            if hasattr(os, "sched_setaffinity") and cores > 1:
                args = ["taskset", "-c", str(core), *args]
            log(f"label {job.name}: {' '.join(args)}")
            with open(folder / f"{job.name}.log", "w") as logf:  # the child keeps its own copy of the descriptor
                proc = subprocess.Popen(args, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
            running.append((proc, job, out, fp_file, fp, core))
        time.sleep(1.0)
        for item in list(running):
            proc, job, out, fp_file, fp, core = item
            if proc.poll() is None:
                continue
            running.remove(item)
            free.append(core)
            if proc.returncode != 0:
                for p, *_ in running:
                    p.terminate()
                tail = (folder / f"{job.name}.log").read_text()[-2000:]
                raise SystemExit(f"default_model: labelling {job.name} failed (rc {proc.returncode}):\n{tail}")
            atomic_write_json(fp_file, fp, indent=1)
            log(f"  labelled {job.name}")
    return files


def merge_pool(files: list[Path], out: Path, held_out: set[Path]) -> dict[str, int]:
    """Concatenate COCO-WholeBody label files (image and annotation ids renumbered); refuses any held-out image."""
    images, anns, categories = [], [], None
    for f in files:
        data = json.loads(f.read_text())
        categories = categories or data["categories"]
        new_id = {}
        for im in data["images"]:
            if Path(im["file_name"]).resolve() in held_out:
                raise SystemExit(f"default_model: {f} labels {im['file_name']}, an evaluation image")
            new_id[im["id"]] = len(images) + 1
            images.append({**im, "id": new_id[im["id"]]})
        for a in data["annotations"]:
            anns.append({**a, "id": len(anns) + 1, "image_id": new_id[a["image_id"]]})
    info = {"description": f"default-model pool: {', '.join(f.stem for f in files)}; teachers {ENSEMBLE_LSP} "
            f"(LSPet), {ENSEMBLE} (COCO)"}  # fmt: skip
    atomic_write_json(out, {"info": info, "images": images, "annotations": anns, "categories": categories})
    return {"images": len(images), "people": len(anns)}


def held_out_images() -> set[Path]:
    from posedistill.data.readers.lsp import read_lsp

    lsp = read_lsp(DATA / "lspet" / "joints.mat", indices=range(LSPET_EVAL[0], LSPET_EVAL[1] + 1))
    julito = json.loads(JULITO.read_text())["images"]
    return {Path(i.image_path).resolve() for i in lsp} | {
        (JULITO.parent / "images" / im["file_name"]).resolve() for im in julito
    }


# ---------------------------------------------------------------------------------------------- 3-4. training


def pretrained_backbone(pool: Path, input_size: tuple[int, int], out: Path) -> Path:
    from posedistill.models.rtmdet_backbone import calibration_crops, write_rtmdet_pretrained

    if not out.is_file():
        write_rtmdet_pretrained(out, DETECTOR_ONNX, calibration_crops(pool, input_size))
        log(f"backbone from {DETECTOR_ONNX.relative_to(ROOT)} -> {out}")
    return out


def train(config: Path, wd: Path, sets: list[str], distill: bool) -> float:
    """One training run in a subprocess, resumed when interrupted; returns its training seconds (reused when done)."""
    return cascade.run_training("distill" if distill else "train", config, wd, sets, f"default_model: {wd.name}")


def recipe_sets(gpu: bool, smoke: bool) -> tuple[list[str], tuple[int, int]]:
    """Config overrides of the CPU or GPU recipe and its input size (w, h)."""
    if gpu:
        # the published 256x192 whole-body input, a batch a GPU fills, AMP, every core loading
        size = (192, 256)
        sets = ["train.device=cuda", "train.amp=bf16", f"train.num_workers={os.cpu_count() or 8}",
                "model.input_size=[192,256]", "codec.sigma=[4.9,5.66]", "train.batch_size=128", "optim.lr=2e-3",
                "train.epochs=30", "train.aug_switch_epoch=26"]  # fmt: skip
    else:
        size = (144, 192)  # configs/default_model/student.yaml
        sets = []
    if smoke:
        sets += ["train.epochs=1", "schedule.warmup_iters=5", "train.aug_switch_epoch=100", "train.batch_size=16"]
    return sets, size


# input size at a similar budget of CPU time (192x144 costs 1.5x the time per step of 128x96 here: 0.69 vs 0.45 s)
ABLATION: dict[str, tuple[tuple[int, int], list[str]]] = {
    "128x96_4ep": ((96, 128), ["train.epochs=4", "train.aug_switch_epoch=100", "schedule.cosine_begin_epoch=1"]),
    "192x144_2ep": ((144, 192), ["model.input_size=[144,192]", "codec.sigma=[3.68,4.24]", "train.epochs=2",
                                 "train.aug_switch_epoch=100", "schedule.cosine_begin_epoch=1"]),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------- 5. evaluation


def export_onnx(ckpt: Path, out: Path) -> Path:
    from posedistill.infer.export import export_checkpoint

    if not out.is_file() or out.stat().st_mtime < (ckpt / "weights.safetensors").stat().st_mtime:
        export_checkpoint(ckpt, out, dynamic_batch=True)
    return out


def julito_rows(models: dict[str, str], mp_python: Path | None, threads: int) -> list[dict[str, Any]]:
    """COCO-17 AP on julito with GT boxes and the default detector's evaluation boxes, per model spec."""
    gt = teachers.read_ground_truth(JULITO)
    images = teachers.ImageCache()
    _, _, det_boxes = teachers.evaluate_detector(DETECTOR_ONNX, gt, threads, images)
    rows = []
    eval_set = f"julito COCO-17 ({gt.num_boxes} people)"
    for method, spec in models.items():
        flip = spec.endswith(":flip")
        res = teachers.run_teacher(spec.removesuffix(":flip"), flip, gt, det_boxes, threads, images)
        for boxes in ("gt", "detect"):
            rows.append(_row("julito", method, "AP", res[boxes]["AP"], eval_set, boxes=boxes))
        log(f"  {method:<24} julito AP {res['gt']['AP']:.3f} (GT boxes) {res['detect']['AP']:.3f} (detector)")
    if mp_python is not None:
        mp = teachers.run_mediapipe(mp_python, gt, threads)
        if isinstance(mp, str):
            log(f"  mediapipe skipped: {mp}")
        else:
            for boxes in ("gt", "detect"):
                rows.append(_row("julito", "mediapipe", "AP", mp[boxes]["AP"], eval_set, boxes=boxes))
            log(f"  {'mediapipe':<24} julito AP {mp['gt']['AP']:.3f} (GT boxes) {mp['detect']['AP']:.3f} (detector)")
    for r in teachers.baseline_rows(DATA / "coco_dev", "julito"):
        if r["metric"] == "AP":
            rows.append(_row("julito", BASELINE, "AP", r["value"], eval_set, boxes="gt", fitted_on=r["fitted_on"]))
    return rows


def _row(dataset: str, method: str, metric: str, value: float, eval_set: str, **extra: Any) -> dict[str, Any]:
    return {"dataset": dataset, "method": method, "seed": 0, "metric": metric, "value": float(value),
            "eval_set": eval_set, **extra}  # fmt: skip


def lspet_rows(models: dict[str, str], mp_labels: Path, threads: int) -> list[dict[str, Any]]:
    """PCK@0.2 (12 limbs) on LSPet 2501–3000 and face / hand agreement with MediaPipe, per model spec."""
    from posedistill.infer import PoseEstimator

    lsp_set = cascade.lspet_eval_set(mp_labels, *LSPET_EVAL)
    name = f"{lsp_set.name}, 12 limb joints"
    rows = [_row("lspet", "mediapipe", "pck@0.2", cascade.lsp_pck(lsp_set, lsp_set.mp_keypoints, lsp_set.mp_scores),
                 name)]  # fmt: skip
    for method, spec in models.items():
        flip = spec.endswith(":flip")
        est = PoseEstimator(spec.removesuffix(":flip"), detector=None, flip_test=flip, threads=threads, progress=False)
        kp, sc = cascade.predict(_WholeBody(est), lsp_set.instances)
        pck = cascade.lsp_pck(lsp_set, kp, sc)
        rows.append(_row("lspet", method, "pck@0.2", pck, name))
        if (sc[:, 23:] > 0).any():  # whole-body models only
            for part, v in cascade.part_agreement(lsp_set, kp).items():
                rows.append(_row("lspet", method, f"{part}_agree@0.2", v, f"{lsp_set.name}, MediaPipe's {part}"))
        log(f"  {method:<24} LSPet PCK@0.2 {pck:.3f}")
    kp, n = cascade.lsp_limbs_mean_pose(lsp_set.instances, 2500)
    rows.append(_row("lspet", BASELINE, "pck@0.2", cascade.lsp_pck(lsp_set, kp, np.ones(kp.shape[:2])), name,
                     fitted_on=f"the 12 limb joints of the {n} people of LSPet 1-2500"))  # fmt: skip
    return rows


class _WholeBody:
    """A PoseEstimator whose results are mapped onto the 133 COCO-WholeBody points (zeros where it has none)."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> Any:
        from posedistill.label.teacher_output import to_wholebody

        res = self.estimator(image, boxes=boxes)
        if res.keypoints.shape[1] == 133:
            return res
        kp, sc, _ = to_wholebody(res.keypoints, res.scores, res.layout)
        return SimpleNamespace(keypoints=kp, scores=sc)


def latency_rows(onnx: dict[str, Path], mp_python: Path | None, runs: int) -> list[dict[str, Any]]:
    from posedistill.data.readers.lsp import read_lsp

    insts = read_lsp(DATA / "lspet" / "joints.mat", indices=range(LSPET_EVAL[0], LSPET_EVAL[0] + 20))
    what = "CPU, 2 threads, batch 1, median over LSPet crops"
    rows = [_row("lspet", m, "ms_per_person", cascade.latency_ours(f, insts, runs), what) for m, f in onnx.items()]
    if mp_python is not None:
        rows.append(_row("lspet", "mediapipe", "ms_per_person", cascade.latency_mediapipe(mp_python, runs), what))
    for r in rows:
        log(f"  {r['method']:<24} {r['value']:.2f} ms / person")
    return rows


# ---------------------------------------------------------------------------------------------- 6. outputs


def draw_samples(onnx: Path, out: Path, count: int = SAMPLE_COUNT, height: int = 360) -> Path:
    """The first ``count`` julito photos (fixed before training) with the model's skeletons, found by the default
    detector as ``posedistill infer`` finds them, side by side at ``height`` px."""
    import cv2

    from posedistill.data.image_io import read_image
    from posedistill.infer import PoseEstimator
    from posedistill.infer.draw import draw_result

    est = PoseEstimator(str(onnx), threads=2)
    files = [JULITO.parent / "images" / im["file_name"] for im in json.loads(JULITO.read_text())["images"][:count]]
    panels = []
    for f in files:
        image = read_image(f)
        drawn = draw_result(image, est(image))
        panels.append(cv2.resize(drawn, (round(drawn.shape[1] * height / drawn.shape[0]), height),
                                 interpolation=cv2.INTER_AREA))  # fmt: skip
    montage = np.concatenate(panels, axis=1)
    ok, jpeg = cv2.imencode(".jpg", montage, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {out}")
    atomic_write_bytes(out, jpeg.tobytes())
    return out


def table(rows: list[dict[str, Any]]) -> str:
    cols = [("julito", "AP", "gt", "julito AP, GT boxes"), ("julito", "AP", "detect", "julito AP, detector"),
            ("lspet", "pck@0.2", None, "LSPet PCK@0.2"), ("lspet", "face_agree@0.2", None, "face agree"),
            ("lspet", "lefthand_agree@0.2", None, "left hand"), ("lspet", "righthand_agree@0.2", None, "right hand"),
            ("lspet", "ms_per_person", None, "ms / person")]  # fmt: skip
    methods = list(dict.fromkeys(r["method"] for r in rows if r.get("section") != "ablation"))
    lines = ["| model | " + " | ".join(c[3] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in methods:
        cells = []
        for ds, metric, boxes, _ in cols:
            r = next((r for r in rows if (r["dataset"], r["metric"], r["method"]) == (ds, metric, m)
                      and r.get("boxes") in (boxes, None) and r.get("section") != "ablation"), None)  # fmt: skip
            cells.append("–" if r is None else f"{r['value']:.1f}" if metric == "ms_per_person"
                         else f"{100 * r['value']:.1f}")  # fmt: skip
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = [r for r in rows if r.get("section") != "ablation"]
    methods = list(dict.fromkeys(r["method"] for r in main))

    def value(m: str, ds: str, metric: str, boxes: str | None = None) -> float:
        return next((r["value"] for r in main if (r["method"], r["dataset"], r["metric"]) == (m, ds, metric)
                     and r.get("boxes") in (boxes, None)), np.nan)  # fmt: skip

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (ds, metric, boxes, title) in zip(
        axes[:2],
        (
            ("julito", "AP", "gt", "julito: COCO-17 AP, GT boxes"),
            ("lspet", "pck@0.2", None, "LSPet 2501-3000: PCK@0.2"),
        ),
    ):
        vals = [value(m, ds, metric, boxes) for m in methods]
        ax.bar(range(len(methods)), vals, color=["tab:red" if m == BASELINE else "tab:blue" for m in methods])
        ax.set_xticks(range(len(methods)), methods, rotation=25, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1)
    ax = axes[2]
    for m in methods:
        ms, ap = value(m, "lspet", "ms_per_person"), value(m, "julito", "AP", "gt")
        if not np.isnan(ms):
            ax.scatter([ms], [ap], s=40, label=m)
    ax.set_xscale("log")
    ax.set_xlabel("CPU ms per person (2 threads, log)")
    ax.set_ylabel("julito AP (GT boxes)")
    ax.legend(fontsize=7)
    ax.set_title("accuracy vs CPU time", fontsize=9)
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=110, format="png"))


def model_card(rows: list[dict[str, Any]], meta: dict[str, Any], shipped: str, command: str, seconds: float) -> str:
    w, h = meta["input_size"]
    return f"""# {SHIP_NAME}

The default model of `posedistill infer` and `PoseEstimator()`: a whole-body (COCO-WholeBody, 133 keypoints)
RTMPose SimCC head on RTMDet-nano's CSPNeXt backbone (`rtmpose-nano`), {h}×{w} input, distilled from black-box
teachers on real photos by `{command}` (`benchmarks/default_model.py`, {seconds / 60:.0f} minutes of training).
Shipped: {shipped}.

- `model.onnx`: the runtime's file (float16 weights, float32 compute; rtmlib / mmdeploy I/O contract with the
  posedistill metadata); `weights.safetensors` + `meta.json`: the same weights as a posedistill checkpoint.
- Input: a person crop, {h}×{w}, RGB normalised with mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375),
  box padding 1.25. Output: SimCC x / y logits, decoded to 133 keypoints and scores. Points no training person
  had a label for ({meta.get("untrained_keypoints")}: the small toes, which MediaPipe has no landmark for) are
  untrained; the runtime scores them 0 (`untrained_keypoints` in the metadata).

## How it was made

1. The backbone starts from the trained weights of the shipped person detector, RTMDet-nano (OpenMMLab,
   Apache-2.0), read out of its ONNX file (from random weights this network stays on the mean pose at a CPU
   budget: docs/learning.md).
2. Pseudo-labels: `posedistill label --teacher "{ENSEMBLE_LSP}"` on LSPet,
   with `gt` instead of `gt:visible` on COCO: PP-TinyPose 256×192 with flip test (PaddleDetection, Apache-2.0)
   for the 17 body points, MediaPipe Holistic 0.10.21 (Apache-2.0) for feet, face and hands, and the datasets'
   own annotations wherever they are reliable (LSPet's visible limb joints, COCO's body points); each point
   weighted by its teacher's confidence.
   Training people: LSPet images 1–2500 and 3001–7000, and the 167 people of coco_dev/coco_mini_train (COCO
   train2017 photos).
3. Stage 1: supervised on the pseudo-labels (SimCC KL loss). Stage 2: DWPose's head-aware self-KD. The better of
   the two on julito (GT boxes) is shipped.

## Results (no flip test; the same people and boxes for every model)

{table(rows)}

julito: 165 hand-annotated people in photos of Basque pelota players, none in the training pool; COCO-17 OKS AP
with the ground-truth boxes and with the default detector's boxes. LSPet: images 2501–3000 (held out), PCK@0.2
over the 12 limb joints; face / hand agreement: share of MediaPipe's labelled points within 0.2 × its part box.
ms / person: one crop, 2 CPU threads. Rows: `benchmarks/results/default_model.json`; protocol and the input-size
ablation: `docs/benchmarks.md` (default model).

## Data and licences

The weights are derived from research-only data (LSPet; COCO images under their Flickr terms): use them for
research and evaluation, and retrain on data you may use otherwise (`make default-model` with your own pool).
The teachers' weights are Apache-2.0 (PP-TinyPose, MediaPipe, RTMDet).

## Limits

Trained for minutes on small sports photos (LSPet people are about 150 px tall, their faces about 15 px): body
limbs are the strong part; faces and hands follow MediaPipe only roughly. It is far below the published
DWPose-t, trained on COCO-WholeBody and UBody on GPUs.
"""


def never_labelled(pool: Path) -> list[int]:
    """The COCO-WholeBody points no person of ``pool`` has a label for (the small toes: MediaPipe has no landmark
    for them); the shipped model's runtime scores them 0 instead of reporting an untrained output."""
    labelled = np.zeros(133, bool)
    for ann in json.loads(pool.read_text())["annotations"]:
        labelled |= cascade.wholebody_arrays(ann)[1] > 0
    return [int(i) for i in np.flatnonzero(~labelled)]


def ship(ckpt: Path, rows: list[dict[str, Any]], shipped: str, command: str, seconds: float, pool: Path) -> None:
    """The model as float16: ``model.onnx`` + ``weights.safetensors`` / ``meta.json`` + the model card."""
    from safetensors.torch import load_file, save_file

    from posedistill.infer.export import export_checkpoint

    SHIP_DIR.mkdir(parents=True, exist_ok=True)
    weights = {k: (v.half() if v.is_floating_point() else v).contiguous()
               for k, v in load_file(str(ckpt / "weights.safetensors")).items()}  # fmt: skip
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["weights_dtype"] = "float16"
    meta.pop("pretrained", None)
    meta["untrained_keypoints"] = never_labelled(pool)
    atomic_write_with(SHIP_DIR / "weights.safetensors", lambda p: save_file(weights, p, metadata={"format": "pt"}))
    atomic_write_json(SHIP_DIR / "meta.json", meta, indent=1)
    export_checkpoint(SHIP_DIR, SHIP_DIR / "model.onnx", dynamic_batch=True, fp16_weights=True)
    atomic_write_text(SHIP_DIR / "README.md", model_card(rows, meta, shipped, command, seconds))
    log(f"shipped {SHIP_DIR}: " + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB"
                                             for p in sorted(SHIP_DIR.iterdir()) if p.is_file()))  # fmt: skip


# ---------------------------------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work-dir", type=Path, default=ROOT / "work_dirs" / "default_model")
    p.add_argument("--mp-python", type=Path, default=ROOT / ".venv-mediapipe" / "bin" / "python",
                   help="Python of the environment with the mediapipe extra (make mediapipe-env)")  # fmt: skip
    p.add_argument("--gpu", action="store_true", help="the GPU recipe: 256x192, AMP, bigger batches, every core")
    p.add_argument("--smoke", action="store_true", help="the whole path on a few images, one epoch (minutes)")
    p.add_argument("--ablation", action="store_true", help="train and evaluate the input-size ablation only")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="K=V",
                   help="config override for every training run")  # fmt: skip
    p.add_argument("--cores", type=int, default=min(2, os.cpu_count() or 1), help="parallel label jobs")
    p.add_argument("--latency-runs", type=int, default=200)
    p.add_argument("--ship", action="store_true", help=f"write the model to {SHIP_DIR.relative_to(ROOT)}")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    work = args.work_dir.resolve()
    t_start = time.perf_counter()

    # 1-2. labels and pool
    jobs = label_jobs(args.smoke)
    files = make_labels(jobs, work / "labels", args.mp_python, args.cores)
    pool = work / "pool.json"
    pool_files = [files[j.name] for j in jobs if j.pool]
    stamp = work / "pool.sources.json"
    sources = {f.name: _sha256(f) for f in pool_files}
    if not pool.is_file() or not stamp.is_file() or json.loads(stamp.read_text()) != sources:
        counts = merge_pool(pool_files, pool, held_out_images())
        atomic_write_json(stamp, sources, indent=1)
        log(f"pool: {counts['images']} images, {counts['people']} people -> {pool}")
    mp_lsp = files[next(j.name for j in jobs if not j.pool and j.source.suffix == ".mat")]

    recipe, size = recipe_sets(args.gpu, args.smoke)
    threads = 2
    if args.ablation:
        rows = []
        for name, (vsize, vsets) in ABLATION.items():
            backbone = pretrained_backbone(pool, vsize, work / "pretrained" / f"rtmdet-nano_{vsize[0]}x{vsize[1]}"
                                           ".safetensors")  # fmt: skip
            sets = [f"data.train.0.path={pool}", f"model.pretrained={backbone}", *vsets, *args.sets]
            secs = train(CONFIGS / "student.yaml", work / "ablation" / name, sets, False)
            onnx = export_onnx(work / "ablation" / name / "last", work / "ablation" / f"{name}.onnx")
            for r in julito_rows({name: str(onnx)}, None, threads) + lspet_rows({name: str(onnx)}, mp_lsp, threads):
                if r["method"] == name:
                    rows.append({**r, "section": "ablation", "train_seconds": secs})
        old = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": []}
        old["rows"] = [r for r in old["rows"] if r.get("section") != "ablation"] + rows
        if not args.smoke:
            atomic_write_json(args.out, old, indent=1)
        for r in rows:
            print(f"{r['method']:<14} {r['dataset']:<7} {r['metric']:<20} {r.get('boxes') or '':<7} "
                  f"{r['value']:.3f}  ({r['train_seconds']:.0f} s)")  # fmt: skip
        return 0

    # 3-4. backbone, stage 1, stage 2
    backbone = pretrained_backbone(pool, size, work / "pretrained" / f"rtmdet-nano_{size[0]}x{size[1]}.safetensors")
    sets = [f"data.train.0.path={pool}", f"model.pretrained={backbone}", *recipe, *args.sets]
    s1, s2 = work / "student_s1", work / "student_s2"
    seconds = {"stage 1": train(CONFIGS / "student.yaml", s1, sets, False)}
    seconds["stage 2"] = train(CONFIGS / "student_s2.yaml", s2, [*sets, f"method.args.teacher={s1 / 'last'}"], True)

    # 5. evaluation
    onnx = {"ours stage 1": export_onnx(s1 / "last", work / "student_s1.onnx"),
            "ours stage 2": export_onnx(s2 / "last", work / "student_s2.onnx")}  # fmt: skip
    specs = {m: str(f) for m, f in onnx.items()}
    if not args.smoke:  # the smoke run checks our path only; the reference rows cost minutes
        specs["pp-tinypose 256x192 +flip"] = f"{PP_TINYPOSE}:flip"
    if not args.smoke and PREVIOUS_DEFAULT.is_file():
        specs["previous default (cascade)"] = str(PREVIOUS_DEFAULT)
        onnx_prev = {"previous default (cascade)": PREVIOUS_DEFAULT}
    else:
        onnx_prev = {}
    mp = None if args.smoke or not args.mp_python.is_file() else args.mp_python
    rows = julito_rows(specs, mp, threads) + lspet_rows(specs, mp_lsp, threads)
    rows += latency_rows({**onnx, **onnx_prev}, mp, 20 if args.smoke else args.latency_runs)
    for line in row_warnings(
        [r for r in rows if r["metric"] in ("AP", "pck@0.2")], group=("dataset", "metric", "boxes"), label=("method",)
    ):
        print(line, file=sys.stderr)
    ap = {m: next(r["value"] for r in rows if (r["method"], r["metric"], r.get("boxes")) == (m, "AP", "gt"))
          for m in onnx}  # fmt: skip
    shipped = max(onnx, key=lambda m: ap[m])
    print(table(rows))

    settings = {"recipe": "gpu" if args.gpu else "cpu", "sets": sets,
                "teachers": {"lspet": ENSEMBLE_LSP, "coco": ENSEMBLE}, "train_seconds": seconds, "shipped": shipped,
                "threads": threads, "cpu": teachers.cpu_name(),
                "total_seconds": round(time.perf_counter() - t_start, 1)}  # fmt: skip
    if args.smoke:
        log(f"smoke run done in {time.perf_counter() - t_start:.0f} s (nothing written outside {work})")
        return 0
    old = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": []}
    ablation = [r for r in old.get("rows", []) if r.get("section") == "ablation"]
    atomic_write_json(args.out, {"settings": settings, "rows": rows + ablation}, indent=1)
    plot(rows, args.out.with_suffix(".png"))
    best = s1 if shipped == "ours stage 1" else s2
    draw_samples(onnx[shipped], SAMPLES)
    log(f"wrote {args.out}, {args.out.with_suffix('.png')}, {SAMPLES}")
    if args.ship:
        command = "make default-model GPU=1" if args.gpu else "make default-model"
        ship(best / "last", rows, f"{shipped} (julito AP {ap[shipped]:.3f} with GT boxes)", command,
             sum(seconds.values()), pool)  # fmt: skip
    log(f"default model done in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
