"""The real-image distillation cascade, one command: MediaPipe Holistic → a whole-body teacher → DWPose into a
whole-body RTMPose-t, evaluated against MediaPipe itself.

Steps (every product lands in ``--work-dir``, default ``work_dirs/cascade``; a finished step is reused):

1. **Label** LSPet images 1–3000 and the people of ``../shared/data/coco_dev`` with MediaPipe Holistic
   (``posedistill label ... --teacher mediapipe``, run by the Python of the environment that has the
   ``mediapipe`` extra: ``--mp-python``, default ``.venv-mediapipe/bin/python``, see ``docs/label.md``). Each
   person is labelled in a crop around its ground-truth box.
2. **Merge**: the labels of images 1–2500 with the LSP ground truth, which replaces MediaPipe's 12 limb joints
   (shoulders, elbows, wrists, hips, knees, ankles; weight 1) where it exists; nose, eyes, ears, feet, face and
   hands stay MediaPipe's, weighted by its confidence. Images MediaPipe found nobody in keep their ground truth.
   → ``train_labels.json`` (COCO-WholeBody).
3. **Teacher**: whole-body RTMPose-s on those labels (``configs/cascade/teacher_rtmpose-s.yaml``).
4. **DWPose** stage 1 into RTMPose-t (``configs/cascade/dwpose_s-t_s1.yaml``) and stage 2
   (``configs/cascade/dwpose_t-t_s2.yaml``).
5. **Evaluate** every model and MediaPipe, with the same person boxes, no flip test (as deployed):

   - LSPet 2501–3000: PCK@0.2 (box-normalised) over the 12 limb joints LSP shares with COCO-WholeBody (LSP's neck
     and head top have no COCO-WholeBody counterpart), and the agreement with MediaPipe on the face and each hand:
     the share of the points MediaPipe labelled that a model puts within 0.2 × the longer side of MediaPipe's
     part box (people whose part MediaPipe labelled);
   - coco_dev (julito + coco_mini_train, 249 people with ground-truth boxes): COCO-17 OKS AP;
   - CPU latency per person: onnxruntime (2 threads, batch 1, crop + model + decode, ``PoseEstimator``) for our
     models, ``MediaPipeTeacher`` (Holistic on the same crop) for MediaPipe; median over ``--latency-runs``;
   - the mean-pose baseline (``posedistill.eval.baseline``): the mean box-relative pose of the 133 points of
     ``train_labels.json`` placed in every box, the same accuracy metrics (no latency); a model that does not beat
     it by ``MARGIN`` gets a warning. ``--baseline-only`` (re)computes its rows in an existing ``--out`` file; without
     the work dir's labels only its LSPet PCK (the limbs of ``train_labels.json`` are LSPet 1-2500's ground truth).

6. Write ``benchmarks/results/cascade.json`` (rows ``{dataset, model, method, seed, metric, value,
   train_seconds, eval_set}``, method ``mediapipe`` / ``teacher`` / ``dwpose-s1`` / ``dwpose-s2`` /
   ``mean-pose baseline``),
   ``benchmarks/results/cascade.png``, and with ``--ship`` (no longer the default model's source: that is
   ``benchmarks/default_model.py``) the final student to
   ``models/rtmpose-t_wholebody-cascade/`` (ONNX with float16 weights + the fp16 safetensors checkpoint).

    .venv/bin/python benchmarks/bench_cascade.py [--ship] [--mp-python PATH] [--smoke]

``--smoke`` runs every step on a few images for one epoch (a pipeline check, minutes). Sized for 2 CPU cores
(128×96 crops, teacher 20 epochs, students 15 + 3); on a GPU raise the sizes with ``--set`` as the configs say.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_dwpose import STALLED, epoch_seconds, run_watched  # noqa: E402

from posedistill.eval.baseline import NAME as BASELINE  # noqa: E402
from posedistill.eval.baseline import row_warnings  # noqa: E402
from posedistill.fileio import atomic_write_json, atomic_write_text, atomic_write_with  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
LSPET = SHARED / "lspet" / "joints.mat"
COCO_DEV = SHARED / "coco_dev"
COCO_DEV_FOLDERS = ("julito", "coco_mini_train")
CONFIGS = ROOT / "configs" / "cascade"
RESULTS = ROOT / "benchmarks" / "results"
SHIP_DIR = ROOT / "models" / "rtmpose-t_wholebody-cascade"
TRAIN_IMAGES, TOTAL_IMAGES = 2500, 3000
# COCO-WholeBody parts compared with MediaPipe (slices of the 133 points)
PARTS = {"face": slice(23, 91), "lefthand": slice(91, 112), "righthand": slice(112, 133)}
MODELS = (  # method, config, work dir name, network
    ("teacher", "teacher_rtmpose-s.yaml", "teacher", "rtmpose-s"),
    ("dwpose-s1", "dwpose_s-t_s1.yaml", "student_s1", "rtmpose-t"),
    ("dwpose-s2", "dwpose_t-t_s2.yaml", "student_s2", "rtmpose-t"),
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------- 1. labels


def mediapipe_label(mp_python: Path, source: Path, out: Path, extra: list[str]) -> None:
    """``posedistill label SOURCE --teacher mediapipe`` in the mediapipe environment (skipped when done)."""
    if out.is_file():
        return
    if not mp_python.is_file():
        raise SystemExit(
            f"bench_cascade: {mp_python} not found: the MediaPipe teacher needs its own environment (numpy < 2), "
            "see docs/label.md (make mediapipe-env), or pass --mp-python"
        )
    args = [str(mp_python), "-m", "posedistill", "label", str(source), "--teacher", "mediapipe", "--out", str(out),
            *extra]  # fmt: skip
    log(" ".join(args[1:]))
    subprocess.run(args, cwd=ROOT, check=True)


def image_size(path: str) -> tuple[int, int]:
    from posedistill.data.image_io import read_image

    h, w = read_image(path).shape[:2]
    return w, h


def lsp_in_wholebody() -> tuple[np.ndarray, np.ndarray]:
    """(coco indices j, lsp indices i) of the 12 limb joints both layouts have: wholebody point j = LSP joint i."""
    from posedistill.layouts import get_mapping

    m = get_mapping("lsp", "coco")  # the first 17 of the 133 points are COCO-17
    j = np.flatnonzero(m.defined_mask)
    return j, np.asarray(m.src_index, dtype=np.int64)[j]


def lsp_stem(path: str) -> str:
    return Path(path).stem


def read_labels(path: Path) -> tuple[dict[Any, dict], list[dict]]:
    data = json.loads(path.read_text())
    return {im["id"]: im for im in data["images"]}, data["annotations"]


def wholebody_arrays(ann: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A COCO-WholeBody annotation → keypoints (133, 2), visibility (133,), scores (133,)."""
    from posedistill.label.coco_writer import PART_SLICES

    kp = np.zeros((133, 2), np.float64)
    vis = np.zeros(133, np.float64)
    for field, sl in PART_SLICES:
        flat = np.asarray(ann[field], np.float64).reshape(-1, 3)
        kp[sl], vis[sl] = flat[:, :2], flat[:, 2]
    scores = np.asarray(ann.get("keypoint_scores", (vis > 0).astype(float)), np.float64)
    return kp, vis, scores


# ---------------------------------------------------------------------------------------------- 2. merge


def merge_ground_truth(labels: Path, out: Path, count: int) -> dict[str, int]:
    """MediaPipe's labels of LSPet images 1..count with the LSP ground truth for the limbs (see the module doc)."""
    from posedistill.data.readers.lsp import read_lsp
    from posedistill.label.coco_writer import wholebody_annotation, wholebody_categories

    images, anns = read_labels(labels)
    by_stem = {lsp_stem(images[a["image_id"]]["file_name"]): a for a in anns}
    wb_idx, lsp_idx = lsp_in_wholebody()
    gt_defined = np.zeros(133, bool)
    gt_defined[wb_idx] = True
    gt = read_lsp(LSPET, indices=range(1, count + 1))
    out_images, out_anns, counts = [], [], {"people": 0, "with_mediapipe": 0, "gt_only": 0}
    for i, inst in enumerate(gt):
        gt_kp, gt_lab = np.zeros((133, 2)), np.zeros(133, bool)
        gt_kp[wb_idx], gt_lab[wb_idx] = inst.keypoints[lsp_idx], inst.visibility[lsp_idx] > 0
        ann = by_stem.get(Path(inst.image_path).stem)
        if ann is not None:
            kp, vis, scores = wholebody_arrays(ann)
            labelled = vis > 0
            counts["with_mediapipe"] += 1
        else:
            kp, scores, labelled = np.zeros((133, 2)), np.zeros(133), np.zeros(133, bool)
            counts["gt_only"] += 1
        # ground truth wins where it is defined: labelled points take its position, weight 1; points LSP marks
        # unlabelled are unlabelled here too (MediaPipe's guess would contradict the annotation)
        kp = np.where(gt_defined[:, None], gt_kp, kp)
        scores = np.where(gt_defined, 1.0, scores)
        labelled = np.where(gt_defined, gt_lab, labelled)
        if not labelled.any():
            continue
        w, h = inst.image_size
        if not w or not h:
            w, h = image_size(inst.image_path)
        image_id = i + 1
        out_images.append({"id": image_id, "file_name": str(Path(inst.image_path).resolve()), "width": int(w),
                           "height": int(h)})  # fmt: skip
        out_anns.append(wholebody_annotation(len(out_anns) + 1, image_id, inst.bbox, kp, scores, labelled))
        counts["people"] += 1
    data = {"info": {"description": f"LSPet 1-{count}: MediaPipe Holistic labels + LSP ground-truth limbs"},
            "images": out_images, "annotations": out_anns, "categories": wholebody_categories()}  # fmt: skip
    atomic_write_json(out, data)
    return counts


# ---------------------------------------------------------------------------------------------- 3-4. training


def train(method: str, config: str, wd: Path, sets: list[str], teacher: Path | None) -> float:
    """Train one model of the cascade in a subprocess (resuming an interrupted run); returns its wall time in
    seconds."""
    command = "train" if method == "teacher" else "distill"
    sets = [*sets, *([f"method.args.teacher={teacher}"] if teacher else [])]
    return run_training(command, CONFIGS / config, wd, sets, f"bench_cascade: {method}")


def run_training(command: str, config: Path, wd: Path, sets: list[str], what: str) -> float:
    """``posedistill COMMAND CONFIG --work-dir WD --set ...`` in a subprocess, resumed when ``WD`` holds an
    interrupted run; returns its training seconds. A finished run (``WD/run.json``) is not run again."""
    info_file = wd / "run.json"
    if info_file.is_file():
        return float(json.loads(info_file.read_text())["seconds"])
    args = [sys.executable, "-m", "posedistill", command, str(config), "--work-dir", str(wd)]
    for s in sets:
        args += ["--set", s]
    resumed = (wd / "last" / "meta.json").is_file()
    if resumed:
        args.append("--resume")
    wd.mkdir(parents=True, exist_ok=True)
    log(" ".join(args[2:]))
    t0 = time.perf_counter()
    rc = run_watched(args, dict(os.environ), wd / "train.log", [wd / "train.log", wd / "metrics.jsonl"], 1800)
    seconds = time.perf_counter() - t0
    if rc != 0:
        why = "stalled" if rc == STALLED else f"rc {rc}"
        raise SystemExit(f"{what} failed ({why}); log {wd / 'train.log'}:\n"
                         f"{(wd / 'train.log').read_text()[-3000:]}")  # fmt: skip
    if resumed:
        seconds = epoch_seconds(wd / "metrics.jsonl")
    atomic_write_json(info_file, {"seconds": round(seconds, 1), "command": args[2:], "resumed": resumed}, indent=1)
    log(f"  {what.split(': ')[-1]} done in {seconds:.0f} s")
    return seconds


# ---------------------------------------------------------------------------------------------- 5. evaluation


@dataclasses.dataclass
class EvalSet:
    """People to evaluate on: Instances (their own layout) and MediaPipe's 133 points for each (zeros, unlabelled,
    where it gave nothing)."""

    name: str
    instances: list[Any]
    mp_keypoints: np.ndarray  # (N, 133, 2)
    mp_scores: np.ndarray  # (N, 133); 0 where unlabelled
    mp_labelled: np.ndarray  # (N, 133) bool


def _mediapipe_for(instances: list[Any], anns: list[dict], key: Any) -> tuple[np.ndarray, ...]:
    n = len(instances)
    kps, scs, labs = np.zeros((n, 133, 2)), np.zeros((n, 133)), np.zeros((n, 133), bool)
    by_key = {key(a): a for a in anns}
    for i, inst in enumerate(instances):
        a = by_key.get(key(inst))
        if a is not None:
            kp, vis, sc = wholebody_arrays(a)
            kps[i], scs[i], labs[i] = kp, np.where(vis > 0, sc, 0.0), vis > 0
    return kps, scs, labs


def lspet_eval_set(labels: Path, first: int, last: int) -> EvalSet:
    from posedistill.data.readers.lsp import read_lsp

    instances = read_lsp(LSPET, indices=range(first, last + 1))
    images, anns = read_labels(labels)
    for a in anns:
        a["_stem"] = lsp_stem(images[a["image_id"]]["file_name"])
    kps, scs, labs = _mediapipe_for(instances, anns, lambda x: x["_stem"] if isinstance(x, dict)
                                    else Path(x.image_path).stem)  # fmt: skip
    return EvalSet(f"lspet {first}-{last}", instances, kps, scs, labs)


def coco_dev_eval_set(work: Path) -> EvalSet:
    from posedistill.data.readers import read_dataset

    instances, kps, scs, labs = [], [], [], []
    for folder in COCO_DEV_FOLDERS:
        insts = read_dataset(COCO_DEV / folder / "person_keypoints.json", format="coco", layout="coco")
        _, anns = read_labels(work / f"mediapipe_coco_dev_{folder}.json")
        k, s, lab = _mediapipe_for(insts, anns, lambda x: x["source_id"] if isinstance(x, dict)
                                   else x.instance_id)  # fmt: skip
        for inst in insts:
            instances.append(dataclasses.replace(inst, image_id=f"{folder}/{inst.image_id}",
                                                 instance_id=f"{folder}/{inst.instance_id}"))  # fmt: skip
        kps.append(k)
        scs.append(s)
        labs.append(lab)
    return EvalSet("coco_dev", instances, np.concatenate(kps), np.concatenate(scs), np.concatenate(labs))


def predict(estimator: Any, instances: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 133, 2), (N, 133) of a whole-body PoseEstimator on each instance's box (one call per image)."""
    from posedistill.data.image_io import read_image

    n = len(instances)
    kps, scs = np.zeros((n, 133, 2)), np.zeros((n, 133))
    by_image: dict[str, list[int]] = {}
    for i, inst in enumerate(instances):
        if not inst.iscrowd and inst.bbox[2] > 0 and inst.bbox[3] > 0:
            by_image.setdefault(inst.image_path, []).append(i)
    for path, rows in by_image.items():
        image = read_image(path)
        boxes = np.array([instances[i].bbox for i in rows], np.float32)
        boxes[:, 2:] += boxes[:, :2]
        res = estimator(image, boxes=boxes)
        kps[rows], scs[rows] = res.keypoints, res.scores
    return kps, scs


def lsp_pck(eval_set: EvalSet, kp133: np.ndarray, sc133: np.ndarray) -> float:
    """PCK@0.2 over the 12 limb joints (ground-truth visibility of neck and head top set to 0)."""
    from posedistill.eval.evaluate import evaluate_predictions

    wb_idx, lsp_idx = lsp_in_wholebody()
    n = len(kp133)
    kp14, sc14, defined = np.zeros((n, 14, 2)), np.zeros((n, 14)), np.zeros(14, bool)
    kp14[:, lsp_idx], sc14[:, lsp_idx], defined[lsp_idx] = kp133[:, wb_idx], sc133[:, wb_idx], True
    instances = [dataclasses.replace(i, visibility=np.where(defined, i.visibility, 0).astype(i.visibility.dtype))
                 for i in eval_set.instances]  # fmt: skip
    return float(evaluate_predictions(instances, kp14, sc14, "lsp", metric="pck")["pck@0.2"])


def part_agreement(eval_set: EvalSet, kp133: np.ndarray, thr: float = 0.2) -> dict[str, float]:
    """Share of MediaPipe's labelled face / hand points a model puts within ``thr`` × the part box's longer side."""
    out = {}
    for part, sl in PARTS.items():
        hits = total = 0
        for i in range(len(eval_set.instances)):
            lab = eval_set.mp_labelled[i, sl]
            if not lab.any():
                continue
            ref = eval_set.mp_keypoints[i, sl][lab]
            size = max(float(np.ptp(ref[:, 0])), float(np.ptp(ref[:, 1])), 1.0)
            d = np.linalg.norm(kp133[i, sl][lab] - ref, axis=1)
            hits += int((d <= thr * size).sum())
            total += int(lab.sum())
        out[part] = hits / total if total else float("nan")
    return out


def coco_ap(eval_set: EvalSet, kp133: np.ndarray, sc133: np.ndarray) -> dict[str, float]:
    from posedistill.eval.evaluate import evaluate_predictions

    res = evaluate_predictions(eval_set.instances, kp133[:, :17], sc133[:, :17], "coco", metric="coco",
                               input_size=(192, 256))  # fmt: skip
    return {"AP": float(res["AP"]), "AP50": float(res["AP50"]), "AR": float(res["AR"])}


def mean_pose_predictions(train_labels: Path, instances: list[Any]) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """((N, 133, 2), (N, 133)) of the mean-pose baseline fitted on the people of ``train_labels`` (COCO-WholeBody)
    placed in the boxes of ``instances``, and the number of people it was fitted on."""
    from posedistill.data.readers import read_dataset, training_instances
    from posedistill.eval.baseline import fit_mean_pose, place_mean_pose

    train = training_instances(read_dataset(train_labels, format="coco", layout="coco_wholebody"))
    kp = place_mean_pose(fit_mean_pose(train), instances).astype(np.float64)
    return (kp, np.ones(kp.shape[:2])), len(train)


def lsp_limbs_mean_pose(instances: list[Any], count: int = TRAIN_IMAGES) -> tuple[np.ndarray, int]:
    """(N, 133, 2) with the 12 limb joints of the mean pose of the LSP ground truth of LSPet 1..count (the limbs of
    ``train_labels.json``, which :func:`merge_ground_truth` takes from there) placed in the boxes of
    ``instances``; the other points zero. Also the number of people it was fitted on."""
    from posedistill.data.readers import training_instances
    from posedistill.data.readers.lsp import read_lsp
    from posedistill.eval.baseline import fit_mean_pose, place_mean_pose

    train = training_instances(read_lsp(LSPET, indices=range(1, count + 1)))
    wb_idx, lsp_idx = lsp_in_wholebody()
    kp = np.zeros((len(instances), 133, 2))
    kp[:, wb_idx] = place_mean_pose(fit_mean_pose(train), instances)[:, lsp_idx]
    return kp, len(train)


def warn_unbeaten(rows: list[dict[str, Any]]) -> None:
    """One warning (stderr) per model and accuracy metric that does not beat the mean-pose baseline."""
    for line in row_warnings([r for r in rows if r["metric"] in ("pck@0.2", "AP")], group=("dataset", "metric"),
                             label=("method",)):  # fmt: skip
        print(line, file=sys.stderr)


def update_baseline(out: Path, work: Path, n_train: int, n_total: int) -> int:
    """Replace the baseline rows of the results file ``out`` by freshly computed ones (no model). Without the work
    dir's MediaPipe labels and ``train_labels.json`` only the LSPet PCK row (limbs from the LSP ground truth)."""
    rows = [r for r in json.loads(out.read_text()) if r["method"] != BASELINE]
    train_labels, lsp_labels = work / "train_labels.json", work / "mediapipe_lspet.json"
    coco_labels = [work / f"mediapipe_coco_dev_{f}.json" for f in COCO_DEV_FOLDERS]
    if train_labels.is_file() and lsp_labels.is_file() and all(f.is_file() for f in coco_labels):
        base = baseline_rows(train_labels, lspet_eval_set(lsp_labels, n_train + 1, n_total), coco_dev_eval_set(work))
    else:
        from posedistill.data.readers.lsp import read_lsp

        print(f"note: {train_labels} or the MediaPipe labels next to it are missing: only the LSPet PCK row, with the "
              "limbs of LSPet's ground truth (coco_dev AP and the face / hand agreement need them)")  # fmt: skip
        instances = read_lsp(LSPET, indices=range(n_train + 1, n_total + 1))
        kp, n = lsp_limbs_mean_pose(instances, n_train)
        n_eval = len(instances)  # no MediaPipe labels: none needed for the PCK
        lsp_set = EvalSet(f"lspet {n_train + 1}-{n_total}", instances, np.zeros((n_eval, 133, 2)),
                          np.zeros((n_eval, 133)), np.zeros((n_eval, 133), bool))  # fmt: skip
        base = [_baseline_row("lspet", "pck@0.2", lsp_pck(lsp_set, kp, np.ones(kp.shape[:2])),
                              f"{lsp_set.name}, 12 limb joints", f"the 12 limb joints of the {n} people of LSPet 1-"
                              f"{n_train} (LSP ground truth)")]  # fmt: skip
    for r in base:
        print(f"{r['dataset']} {r['metric']}: {BASELINE} {100 * r['value']:.1f} ({r['eval_set']})")
    rows += base
    atomic_write_json(out, rows, indent=1)
    warn_unbeaten(rows)
    print(results_table(rows))
    print(f"wrote the {BASELINE} rows into {out}")
    return 0


def _baseline_row(dataset: str, metric: str, value: float, eval_set: str, fitted: str) -> dict[str, Any]:
    return {"dataset": dataset, "model": BASELINE, "method": BASELINE, "seed": 0, "metric": metric,
            "value": float(value), "train_seconds": None, "eval_set": eval_set, "fitted_on": fitted}  # fmt: skip


def baseline_rows(train_labels: Path, lsp_set: EvalSet, coco_set: EvalSet) -> list[dict[str, Any]]:
    """The mean-pose baseline's rows: the metrics of the evaluation step, latency left out."""
    (lk, ls), n = mean_pose_predictions(train_labels, lsp_set.instances)
    (ck, cs), _ = mean_pose_predictions(train_labels, coco_set.instances)
    fitted = f"the {n} people of {train_labels.name} (LSPet 1-{TRAIN_IMAGES})"
    rows = [_baseline_row("lspet", "pck@0.2", lsp_pck(lsp_set, lk, ls), f"{lsp_set.name}, 12 limb joints", fitted)]
    for part, v in part_agreement(lsp_set, lk).items():
        rows.append(_baseline_row("lspet", f"{part}_agree@0.2", v, f"{lsp_set.name}, MediaPipe's labelled {part} "
                                  "points", fitted))  # fmt: skip
    rows.append(_baseline_row("coco_dev", "AP", coco_ap(coco_set, ck, cs)["AP"], f"coco_dev COCO-17, GT boxes "
                              f"({len(coco_set.instances)} people)", fitted))  # fmt: skip
    return rows


def latency_ours(onnx: Path, instances: list[Any], runs: int) -> float:
    """Median ms per person: PoseEstimator (onnxruntime, 2 threads) on one person box of a real image."""
    from posedistill.data.image_io import read_image
    from posedistill.infer import PoseEstimator

    est = PoseEstimator(str(onnx), threads=2)
    samples = [(read_image(i.image_path), np.array([[*i.bbox[:2], *(i.bbox[:2] + i.bbox[2:])]], np.float32))
               for i in instances[:20]]  # fmt: skip
    for image, box in samples:
        est(image, boxes=box)
    times = []
    for r in range(runs):
        image, box = samples[r % len(samples)]
        t0 = time.perf_counter()
        est(image, boxes=box)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


_MP_LATENCY = """
import json, statistics, sys, time
import numpy as np
from posedistill.data.image_io import read_image
from posedistill.data.readers.lsp import read_lsp
from posedistill.label.teachers import MediaPipeTeacher
insts = read_lsp(sys.argv[1], indices=range(2501, 2521))
samples = [(read_image(i.image_path), np.array([[*i.bbox[:2], *(i.bbox[:2] + i.bbox[2:])]], np.float32))
           for i in insts]
teacher = MediaPipeTeacher()
for image, box in samples:
    teacher(image, box)
times = []
for r in range(int(sys.argv[2])):
    image, box = samples[r % len(samples)]
    t0 = time.perf_counter()
    teacher(image, box)
    times.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"median_ms": statistics.median(times)}))
"""


def latency_mediapipe(mp_python: Path, runs: int) -> float:
    out = subprocess.run([str(mp_python), "-c", _MP_LATENCY, str(LSPET), str(runs)], cwd=ROOT, check=True,
                         capture_output=True, text=True)  # fmt: skip
    return float(json.loads(out.stdout.strip().splitlines()[-1])["median_ms"])


def export(ckpt: Path, out: Path, fp16: bool = False) -> Path:
    from posedistill.infer.export import export_checkpoint

    if not out.is_file():
        export_checkpoint(ckpt, out, dynamic_batch=True, fp16_weights=fp16)
    return out


# ---------------------------------------------------------------------------------------------- 6. outputs


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = ["mediapipe", "teacher", "dwpose-s1", "dwpose-s2"]
    colors = {"mediapipe": "#888888", "teacher": "#4C72B0", "dwpose-s1": "#DD8452", "dwpose-s2": "#55A868"}

    def value(method: str, dataset: str, metric: str) -> float:
        key = (method, dataset, metric)
        return next((r["value"] for r in rows if (r["method"], r["dataset"], r["metric"]) == key), np.nan)

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = (("lspet", "pck@0.2", "LSPet 2501-3000: PCK@0.2 (12 limbs)"),
              ("coco_dev", "AP", "coco_dev: COCO-17 AP, GT boxes"))  # fmt: skip
    for ax, (dataset, metric, title) in zip(axes[:2], panels):
        vals = [value(m, dataset, metric) for m in methods]
        ax.bar(methods, vals, color=[colors[m] for m in methods])
        base = value(BASELINE, dataset, metric)
        if not np.isnan(base):
            ax.axhline(base, color="tab:red", ls="--", lw=1, label=BASELINE)
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=20)
    ax = axes[2]
    for m in methods:
        ms = value(m, "lspet", "ms_per_person")
        ap = value(m, "coco_dev", "AP")
        ax.scatter([ms], [ap], color=colors[m], s=40, label=m)
    ax.set_xscale("log")
    ax.set_xlabel("CPU ms per person (log)")
    ax.set_ylabel("coco_dev AP")
    ax.set_title("accuracy vs latency", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def results_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per method, the cascade's metrics as columns (percent, ms)."""
    cols = [("lspet", "pck@0.2", "LSPet PCK@0.2 (12 limbs)"), ("coco_dev", "AP", "coco_dev body AP"),
            ("lspet", "face_agree@0.2", "face agree"), ("lspet", "lefthand_agree@0.2", "left hand agree"),
            ("lspet", "righthand_agree@0.2", "right hand agree"),
            ("lspet", "ms_per_person", "CPU ms / person")]  # fmt: skip
    lines = ["| model | " + " | ".join(c[2] for c in cols) + " | train s |", "|---" * (len(cols) + 2) + "|"]
    for method in ("mediapipe", "teacher", "dwpose-s1", "dwpose-s2", BASELINE):
        sel = {(r["dataset"], r["metric"]): r for r in rows if r["method"] == method}
        if not sel:
            continue
        first = next(iter(sel.values()))
        name = BASELINE if method == BASELINE else f"{method} ({first['model']})"
        cells = []
        for ds, metric, _ in cols:
            r = sel.get((ds, metric))
            cells.append("–" if r is None else f"{r['value']:.1f}" if metric == "ms_per_person"
                         else f"{100 * r['value']:.1f}")  # fmt: skip
        secs = first.get("train_seconds")
        train = f"{secs:.0f}" if secs else "–"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {train} |")
    return "\n".join(lines)


def model_card(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    w, h = meta["input_size"]
    return f"""# rtmpose-t_wholebody-cascade

Not the default model (that is `models/rtmpose-nano_wholebody`, from `make default-model`): a whole-body
(COCO-WholeBody, 133 keypoints) RTMPose-t at {h}×{w}, the final student of the real-image cascade
(`make cascade`, `benchmarks/bench_cascade.py`): MediaPipe Holistic pseudo-labels LSPet images 1–2500 (body
limbs replaced by the LSP ground truth) → a whole-body RTMPose-s teacher trained from scratch → DWPose stage 1
and stage 2 into this RTMPose-t. Trained on 2 CPU cores in about an hour, from random initialisation: a
demonstration of the pipeline, not a production model.

- `model.onnx`: the runtime's file (float16 weights, float32 compute; rtmlib / mmdeploy I/O contract with the
  posedistill metadata), `weights.safetensors` + `meta.json`: the same weights as a posedistill checkpoint
  (float16; `eval`, `export`, fine-tuning).
- Input: a person crop, {h}×{w}, RGB normalised with mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375),
  box padding 1.25 (mmpose's top-down pipeline). Output: SimCC x/y logits, decoded to keypoints and scores.

## Results (no flip test, same person boxes for every model)

{results_table(rows)}

LSPet: images 2501–3000, PCK@0.2 normalised by the box, over the 12 limb joints LSP shares with COCO-WholeBody;
face / hand agreement: share of MediaPipe's labelled points a model puts within 0.2 × MediaPipe's part box.
coco_dev: 80 COCO train2017 images + 165 hand-annotated pelota photos, COCO-17 OKS AP with ground-truth boxes.
Latency: one person per call on 2 CPU cores (onnxruntime for posedistill models, MediaPipe Holistic on the same
crop). Numbers and the full protocol: `docs/benchmarks.md` (cascade section), rows in
`benchmarks/results/cascade.json`.

## Data and licences

- Training images: Leeds Sports Pose Extended (LSPet) images 1–2500 — research use; the images are not
  redistributed here. Labels: MediaPipe Holistic 0.10.21 (Apache-2.0) predictions and the LSPet annotations.
- Evaluation: LSPet 2501–3000, COCO train2017 samples (CC BY 4.0 annotations; images under their Flickr terms),
  the julito pelota photos.
- The weights are derived from research-only data: use them for research and evaluation; retrain on data you may
  use for anything else (`make cascade` with your own images: `posedistill label` then the same configs).

## Limits

Trained from scratch on 2,500 small sports images for minutes of CPU time: body limbs are usable on LSPet-like
people, face and hands are barely learned (LSPet faces are about 15 px; MediaPipe labelled 15 % of them), and it
is far below the published DWPose-t (trained on COCO-WholeBody + UBody on GPUs). Replace it with your own
distilled model, or an official RTMPose / DWPose ONNX file (`posedistill infer --model URL`).
"""


def ship(ckpt: Path, rows: list[dict[str, Any]], out_dir: Path) -> None:
    """The final student as float16: ``model.onnx`` (runtime) + ``weights.safetensors`` / ``meta.json``."""
    import torch
    from safetensors.torch import load_file, save_file

    from posedistill.infer.export import export_checkpoint

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {k: (v.half() if v.is_floating_point() else v).contiguous()
               for k, v in load_file(str(ckpt / "weights.safetensors")).items()}  # fmt: skip
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["weights_dtype"] = "float16"
    meta["cascade_metrics"] = {f"{r['dataset']}/{r['metric']}": r["value"] for r in rows if r["method"] == "dwpose-s2"}
    atomic_write_with(out_dir / "weights.safetensors", lambda p: save_file(weights, p, metadata={"format": "pt"}))
    atomic_write_json(out_dir / "meta.json", meta, indent=1)
    export_checkpoint(out_dir, out_dir / "model.onnx", dynamic_batch=True, fp16_weights=True)
    atomic_write_text(out_dir / "README.md", model_card(rows, meta))
    del torch
    log(f"shipped {out_dir}: " + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in
                                             sorted(out_dir.iterdir()) if p.is_file()))  # fmt: skip


# ---------------------------------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work-dir", type=Path, default=ROOT / "work_dirs" / "cascade")
    p.add_argument("--mp-python", type=Path, default=ROOT / ".venv-mediapipe" / "bin" / "python",
                   help="Python of the environment with the mediapipe extra")  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="a pipeline check on a few images (minutes)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="K=V",
                   help="config override for every training run (e.g. train.device=cuda)")  # fmt: skip
    p.add_argument("--latency-runs", type=int, default=200)
    p.add_argument("--ship", action="store_true", help=f"write the final student to {SHIP_DIR.relative_to(ROOT)}")
    p.add_argument("--out", type=Path, default=RESULTS / "cascade.json")
    p.add_argument("--baseline-only", action="store_true",
                   help=f"only (re)compute the {BASELINE} rows of the existing --out file (no model)")  # fmt: skip
    args = p.parse_args()
    work = args.work_dir.resolve()
    n_train, n_total = (40, 60) if args.smoke else (TRAIN_IMAGES, TOTAL_IMAGES)
    if args.baseline_only:
        return update_baseline(args.out, work, n_train, n_total)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    # 1. labels
    mp = args.mp_python
    lsp_labels = work / "mediapipe_lspet.json"
    mediapipe_label(mp, LSPET, lsp_labels, ["--indices", f"0:{n_total}"])
    for folder in COCO_DEV_FOLDERS:
        mediapipe_label(mp, COCO_DEV / folder / "person_keypoints.json", work / f"mediapipe_coco_dev_{folder}.json",
                        ["--results", str(work / f"mediapipe_coco_dev_{folder}_results.json")])  # fmt: skip
    # 2. merge
    train_labels = work / "train_labels.json"
    if not train_labels.is_file():
        counts = merge_ground_truth(lsp_labels, train_labels, n_train)
        log(f"train labels: {counts}")
    # 3-4. teacher, stage 1, stage 2
    sets = [f"data.train.0.path={train_labels}", *args.sets]
    if args.smoke:
        sets += ["train.epochs=1", "schedule.warmup_iters=5"]
    seconds, ckpts = {}, {}
    teacher = None
    for method, config, name, _ in MODELS:
        wd = work / name
        seconds[method] = train(method, config, wd, sets, teacher)
        ckpts[method] = wd / "last"
        teacher = wd / "last"

    # 5. evaluation
    from posedistill.infer import PoseEstimator

    lsp_set = lspet_eval_set(lsp_labels, n_train + 1, n_total)
    coco_set = coco_dev_eval_set(work)
    rows: list[dict[str, Any]] = []

    def add(method: str, network: str, dataset: str, metric: str, value: float, eval_set: str) -> None:
        rows.append({"dataset": dataset, "model": network, "method": method, "seed": 0, "metric": metric,
                     "value": float(value), "train_seconds": seconds.get(method), "eval_set": eval_set})  # fmt: skip
        log(f"  {method:<10} {dataset:<9} {metric:<18} {value:.4f}")

    predictions = {"mediapipe": ((lsp_set.mp_keypoints, lsp_set.mp_scores), (coco_set.mp_keypoints,
                                                                              coco_set.mp_scores))}  # fmt: skip
    onnx = {}
    for method, _, name, _ in MODELS:
        onnx[method] = export(ckpts[method], work / f"{name}.onnx")
        est = PoseEstimator(str(onnx[method]), threads=2)
        predictions[method] = (predict(est, lsp_set.instances), predict(est, coco_set.instances))
    networks = {"mediapipe": "mediapipe-holistic", **{m: n for m, _, _, n in MODELS}}
    for method, ((lk, ls), (ck, cs)) in predictions.items():
        add(method, networks[method], "lspet", "pck@0.2", lsp_pck(lsp_set, lk, ls), f"{lsp_set.name}, 12 limb joints")
        if method != "mediapipe":
            for part, v in part_agreement(lsp_set, lk).items():
                add(method, networks[method], "lspet", f"{part}_agree@0.2", v,
                    f"{lsp_set.name}, MediaPipe's labelled {part} points")  # fmt: skip
        ap = coco_ap(coco_set, ck, cs)
        add(method, networks[method], "coco_dev", "AP", ap["AP"], f"coco_dev COCO-17, GT boxes "
            f"({len(coco_set.instances)} people)")  # fmt: skip
    # latency last, on a machine the training no longer loads
    runs = 20 if args.smoke else args.latency_runs
    lat = {"mediapipe": latency_mediapipe(mp, runs)}
    for method, *_ in MODELS:
        lat[method] = latency_ours(onnx[method], lsp_set.instances, runs)
    for method, ms in lat.items():
        add(method, networks[method], "lspet", "ms_per_person", ms, "CPU, 2 cores, median over LSPet crops")
    rows += baseline_rows(train_labels, lsp_set, coco_set)
    log(f"  {BASELINE}: " + ", ".join(f"{r['dataset']} {r['metric']} {r['value']:.4f}" for r in rows
                                      if r["method"] == BASELINE))  # fmt: skip
    warn_unbeaten(rows)

    if not args.smoke:
        atomic_write_json(args.out, rows, indent=1)
        plot(rows, args.out.with_suffix(".png"))
        log(f"wrote {args.out} and {args.out.with_suffix('.png')}")
        if args.ship:
            ship(ckpts["dwpose-s2"], rows, SHIP_DIR)
    log(f"cascade done in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
