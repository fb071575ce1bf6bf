"""The real pretrained teachers and person detectors on the real COCO-17 photos of ``../shared/data/coco_dev``.

    .venv/bin/python benchmarks/bench_teachers.py          # or: make bench-teachers (about 17 minutes on 2 cores)

Per dataset (``julito`` and ``coco_mini_train``, each scored on its own):

- **detectors** (RTMDet-nano and YOLOX-nano from ``../shared/weights``; the shipped default is a copy of one of
  them): person box AP / AP50 / AR with pycocotools (iouType ``bbox`` against the person annotations, crowd regions
  ignored as COCO does) for three uses of the same network outputs (:func:`detector_settings`): every box the graph
  returns ("all", the detection benchmark's setting), ``posedistill predict --boxes detect`` ("detect": score >
  0.1, NMS 0.65, mmpose's evaluation with detected boxes) and ``posedistill infer`` ("pipeline": score > 0.3, NMS
  0.3, mmpose's demo); and ms per image (letterbox + network + post-processing) at ``--threads`` threads;
- **teachers**: COCO-17 keypoint AP / AP50 / AR (``posedistill.eval.coco``, pycocotools with xtcocotools' rules) of
  PP-TinyPose 256×192 and 128×96 (ncnn, each with and without flip test), MediaPipe Holistic (in its own
  environment, ``make mediapipe-env``; a row says why when it is missing) and the current default model, each with
  the GT person boxes, the "detect" boxes and the "pipeline" boxes of the default detector (``posedistill
  predict``'s functions do the work); ms per person (pose model on the GT boxes: crop, network, decode) and ms per
  image (detector + pose model on the pipeline boxes, what ``posedistill infer`` costs per photo).

- the **mean-pose baseline** (``posedistill.eval.baseline``, GT boxes only): one pose, the mean box-relative pose of
  the people of coco_mini_train (COCO train2017 images: the distribution the teachers were trained on), placed in
  every GT box and scored the same way; on coco_mini_train itself each image's people get the mean pose of the other
  images' people (leave one image out), so no person's own pose is in its prediction. A teacher whose GT-box AP
  does not beat it by ``MARGIN`` gets a warning.

Writes ``benchmarks/results/teachers.json`` (atomically): ``rows`` of {dataset, model, boxes, metric, value} (plus
``reason`` for skipped rows, ``fitted_on`` for the baseline's) and the settings; prints a table.
``--baseline-only`` recomputes the baseline rows of an existing results file (seconds: annotations only).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# ncnn's OpenMP threads spin while they wait: on cores shared with other jobs a 2-thread PP-TinyPose call then takes
# seconds instead of tens of ms. Passive waiting (set before ncnn is loaded) keeps the timings meaningful.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from posedistill.commands.bench import cpu_name  # noqa: E402
from posedistill.commands.predict import (  # noqa: E402
    EVAL_DET_NMS_THR,
    EVAL_DET_THR,
    GroundTruthImages,
    load_keypoint_model,
    predict_coco,
    read_ground_truth,
)
from posedistill.data.image_io import read_image  # noqa: E402
from posedistill.eval.baseline import NAME as BASELINE  # noqa: E402
from posedistill.eval.baseline import row_warnings  # noqa: E402
from posedistill.fileio import atomic_write_json  # noqa: E402
from posedistill.infer.detector import NMS_THR, SCORE_THR  # noqa: E402

SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results" / "teachers.json"
DATASETS = ("julito", "coco_mini_train")
GT_FILE = "person_keypoints.json"
# (label, file under the weights folder)
DETECTORS = (
    ("rtmdet-nano", "rtmdet-nano_person.onnx"),
    ("yolox-nano", "yolox_nano_8xb8-300e_humanart-40f6f0d0.onnx"),
)
# (label, --model value, flip); "{weights}" is the shared weights folder
TEACHERS = (
    ("pp-tinypose-256x192", "{weights}/pp-tinypose_256x192_ncnn.param", False),
    ("pp-tinypose-256x192", "{weights}/pp-tinypose_256x192_ncnn.param", True),
    ("pp-tinypose-128x96", "{weights}/pp-tinypose_128x96_ncnn.param", False),
    ("pp-tinypose-128x96", "{weights}/pp-tinypose_128x96_ncnn.param", True),
    ("default (rtmpose-nano wholebody)", "default", False),
)
MEDIAPIPE = "mediapipe-holistic"
KEYPOINT_METRICS = ("AP", "AP50", "AR")
# gt: the GT person boxes; detect: the default detector as `predict --boxes detect` keeps its boxes (evaluation);
# pipeline: as `posedistill infer` / PoseEstimator() keep them (mmpose's demo)
BOX_MODES = ("gt", "detect", "pipeline")
# the people the mean-pose baseline is fitted on (leaving out the scored image's own people on this dataset itself)
BASELINE_POOL = "coco_mini_train"

Boxes = dict[Any, tuple[np.ndarray, np.ndarray]]  # image id -> boxes (N, 4) xyxy, scores (N,)


# ---------------------------------------------------------------------------------------------- detectors


def detector_settings() -> dict[str, tuple[float, float]]:
    """(score threshold, NMS IoU) per use of a detector: every box the graph returns, ``predict --boxes detect``
    and the ``infer`` pipeline."""
    return {"all": (0.0, 1.0), "detect": (EVAL_DET_THR, EVAL_DET_NMS_THR), "pipeline": (SCORE_THR, NMS_THR)}


def box_ap(gt_file: Path, detections: list[dict[str, Any]]) -> dict[str, float]:
    """Person box AP, AP50 and AR (maxDets 100) of COCO ``detections`` ({image_id, category_id, bbox xywh, score})
    with pycocotools' ``bbox`` evaluation; crowd GT regions are ignored as COCO does. No detections: 0."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not detections:
        return {"AP": 0.0, "AP50": 0.0, "AR": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.params.catIds = [1]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AR": float(ev.stats[8])}


def _coco_boxes(boxes: Boxes) -> list[dict[str, Any]]:
    return [
        {"image_id": image_id, "category_id": 1, "score": float(s),
         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
        for image_id, (bb, ss) in boxes.items()
        for b, s in zip(bb, ss, strict=True)
    ]  # fmt: skip


def evaluate_detector(
    path: Path, gt: GroundTruthImages, threads: int, images: Callable[[Path], np.ndarray] = read_image
) -> tuple[dict[str, dict[str, float]], float, dict[str, Boxes]]:
    """One detector on one dataset: box AP / AP50 / AR and the number of boxes per setting of
    :func:`detector_settings`, the median ms per image of the pipeline detector (letterbox + network +
    post-processing) and the boxes per setting."""
    from posedistill.infer.detector import PersonDetector

    settings = detector_settings()
    det = PersonDetector(path, threads=threads, progress=False)
    boxes: dict[str, Boxes] = {name: {} for name in settings}
    times = []
    for image_id, file in gt.images:
        image = images(file)
        det.score_thr, det.nms_thr = settings["pipeline"]
        det(image)  # warm-up on this image size (first-call allocations)
        t0 = time.perf_counter()
        x, r = det.preprocess(image)
        outputs = det.session.run(det.output_names, {det.input_name: x})
        det.postprocess(outputs, r, image.shape[:2])
        times.append(time.perf_counter() - t0)
        for name, (score_thr, nms_thr) in settings.items():  # the same network outputs, filtered each way
            det.score_thr, det.nms_thr = score_thr, nms_thr
            boxes[name][image_id] = det.postprocess(outputs, r, image.shape[:2])
    stats = {}
    for name, by_image in boxes.items():
        stats[name] = box_ap(gt.path, _coco_boxes(by_image))
        stats[name]["boxes"] = float(sum(len(b) for b, _ in by_image.values()))
    return stats, 1000.0 * float(np.median(times)), boxes


class CachedDetector:
    """Boxes found once, served again image by image (the detector is deterministic; its time is counted once, in
    :func:`evaluate_detector`). ``predict_coco`` visits the images in GT order, one call per image."""

    def __init__(self, gt: GroundTruthImages, boxes: Boxes) -> None:
        self._boxes = [boxes[image_id] for image_id, _ in gt.images]
        self._next = 0

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._boxes[self._next % len(self._boxes)]
        self._next += 1
        return out


class ImageCache:
    """Decoded images by file, so that the passes over a dataset decode each photo once (the julito photos are up
    to 12 megapixels: decoding would otherwise dominate the run; all of coco_dev is about 220 MB decoded)."""

    def __init__(self) -> None:
        self._images: dict[Path, np.ndarray] = {}

    def __call__(self, file: Path) -> np.ndarray:
        if file not in self._images:
            self._images[file] = read_image(file)
        return self._images[file]


# ---------------------------------------------------------------------------------------------- teachers


def keypoint_metrics(gt_file: Path, records: list[dict[str, Any]]) -> dict[str, float]:
    from posedistill.eval.coco import coco_eval

    body = coco_eval(str(gt_file), records, "coco")["body"]
    return {m: float(body[m]) for m in KEYPOINT_METRICS}


def run_teacher(
    spec: str, flip: bool, gt: GroundTruthImages, det_boxes: dict[str, Boxes], threads: int, images: ImageCache
) -> dict[str, dict[str, float]]:
    """{boxes mode: AP / AP50 / AR, ms per person, pose ms per image} of one teacher, in this process."""
    model = load_keypoint_model(spec, flip=flip, threads=threads, progress=False)
    out = {}
    for mode in BOX_MODES:
        detector = None if mode == "gt" else CachedDetector(gt, det_boxes[mode])
        res = predict_coco(gt, model, "gt" if mode == "gt" else "detect", detector, progress=False, read=images)
        row = keypoint_metrics(gt.path, res.records)
        row["ms_per_person"] = 1000.0 * res.pose_s / max(res.people, 1)
        row["pose_ms_per_image"] = 1000.0 * res.pose_s / max(res.images, 1)
        out[mode] = row
    return out


def run_mediapipe(mp_python: Path, gt: GroundTruthImages, threads: int) -> dict[str, dict[str, float]] | str:
    """MediaPipe Holistic through ``posedistill predict`` in its own environment (which runs the default detector
    itself, so its ms per image are measured there); the reason as text when it cannot run."""
    if not mp_python.is_file():
        return f"no MediaPipe environment ({mp_python} not found; `make mediapipe-env` creates it)"
    settings = detector_settings()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in BOX_MODES:
            res_file = Path(tmp) / f"{mode}.json"
            cmd = [str(mp_python), "-m", "posedistill", "predict", str(gt.path), "--model", "mediapipe", "--boxes",
                   "gt" if mode == "gt" else "detect", "--images", str(gt.image_dir), "--threads", str(threads),
                   "--out", str(res_file), "--quiet"]  # fmt: skip
            if mode != "gt":
                cmd += ["--det-thr", str(settings[mode][0]), "--det-nms-thr", str(settings[mode][1])]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                return f"posedistill predict --model mediapipe failed: {proc.stderr.strip().splitlines()[-1:]}"
            row = keypoint_metrics(gt.path, json.loads(res_file.read_text()))
            for key, unit in (("ms_per_person", "ms/person"), ("ms_per_image", "ms/image")):
                m = re.search(rf"([\d.]+) {unit}", proc.stdout)
                if m:
                    row[key] = float(m.group(1))
            out[mode] = row
    return out


# ---------------------------------------------------------------------------------------------- baseline


def mean_pose_baseline(data: Path, dataset: str) -> tuple[dict[str, float], str]:
    """GT-box AP / AP50 / AR of the mean-pose baseline on ``dataset`` (scored against its GT file as the teachers
    are) and what it was fitted on: the people of :data:`BASELINE_POOL`, less the scored image's own people when
    ``dataset`` is that pool (leave one image out)."""
    from posedistill.data.readers import read_dataset, training_instances
    from posedistill.eval.baseline import fit_mean_pose, place_mean_pose
    from posedistill.eval.evaluate import evaluate_predictions

    gt_file = data / dataset / GT_FILE
    val = read_dataset(gt_file, format="coco", layout="coco")
    pool = training_instances(read_dataset(data / BASELINE_POOL / GT_FILE, format="coco", layout="coco"))
    if dataset == BASELINE_POOL:
        kp = np.zeros((len(val), 17, 2), np.float32)
        for image_id in dict.fromkeys(inst.image_id for inst in val):
            rows = [i for i, inst in enumerate(val) if inst.image_id == image_id]
            pose = fit_mean_pose([inst for inst in pool if inst.image_id != image_id])
            kp[rows] = place_mean_pose(pose, [val[i] for i in rows])
        fitted = f"{BASELINE_POOL} people of the other images ({len(pool)} people in all; leave one image out)"
    else:
        kp = place_mean_pose(fit_mean_pose(pool), val)
        fitted = f"the {len(pool)} people of {BASELINE_POOL}"
    scores = np.ones(kp.shape[:2], np.float32)
    res = evaluate_predictions(val, kp, scores, "coco", metric="coco", gt_file=gt_file, input_size=(192, 256))
    return {m: float(res[m]) for m in KEYPOINT_METRICS}, fitted


def baseline_rows(data: Path, dataset: str) -> list[dict[str, Any]]:
    metrics, fitted = mean_pose_baseline(data, dataset)
    return [{"dataset": dataset, "model": BASELINE, "boxes": "gt", "metric": m, "value": v, "fitted_on": fitted}
            for m, v in metrics.items()]  # fmt: skip


def warn_unbeaten(rows: list[dict[str, Any]]) -> None:
    """A warning (stderr) for every teacher whose AP does not beat the baseline's with the same boxes."""
    for line in row_warnings([r for r in rows if r["metric"] == "AP"], group=("dataset", "boxes", "metric"),
                             label=("model",), name_key="model"):  # fmt: skip
        print(line, file=sys.stderr)


def update_baseline(path: Path, data: Path, datasets: list[str]) -> int:
    """Replace the baseline rows of the results file ``path`` by freshly computed ones (no model runs)."""
    doc = json.loads(path.read_text())
    rows = [r for r in doc["rows"] if r["model"] != BASELINE]
    for dataset in datasets:
        rows += baseline_rows(data, dataset)
    doc["rows"] = rows
    atomic_write_json(path, doc, indent=1)
    print(format_tables(rows))
    warn_unbeaten(rows)
    print(f"\nwrote the {BASELINE} rows of {', '.join(datasets)} into {path}")
    return 0


# ---------------------------------------------------------------------------------------------- table


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_tables(rows: list[dict[str, Any]]) -> str:
    """Per dataset: the detectors' box AP, then AP / AP50 / AR and ms of every teacher and box mode (Markdown)."""
    values = {(r["dataset"], r["model"], r["boxes"], r["metric"]): r["value"] for r in rows}
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        models = list(dict.fromkeys(r["model"] for r in rows if r["dataset"] == dataset))
        skipped = {r["model"]: r["reason"] for r in rows if r["dataset"] == dataset and r["metric"] == "skipped"}
        dets = [m for m in models if (dataset, m, "-", "box_AP_all") in values]
        lines += [f"\n{dataset}: person detectors\n",
                  "| detector | box AP | AP50 | AR | AP detect | AP pipeline | AR pipeline | boxes all / detect / "
                  "pipeline | ms / image |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for m in dets:
            v = {k[3]: x for k, x in values.items() if k[:3] == (dataset, m, "-")}
            n = "/".join(f"{v[f'box_boxes_{s}']:.0f}" for s in ("all", "detect", "pipeline"))
            lines.append(f"| {m} | {_fmt(v['box_AP_all'])} | {_fmt(v['box_AP50_all'])} | {_fmt(v['box_AR_all'])} | "
                         f"{_fmt(v['box_AP_detect'])} | {_fmt(v['box_AP_pipeline'])} | {_fmt(v['box_AR_pipeline'])} "
                         f"| {n} | {_fmt(v['ms_per_image'], 1)} |")  # fmt: skip
        lines += [
            f"\n{dataset}: pose teachers (COCO-17 OKS)\n",
            "| model | boxes | AP | AP50 | AR | ms / person | ms / image |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in models:
            if m in dets:
                continue
            if m in skipped:
                lines.append(f"| {m} | - | skipped: {skipped[m]} | | | | |")
                continue
            for b in ("gt",) if m == BASELINE else BOX_MODES:
                cells = [_fmt(values.get((dataset, m, b, k))) for k in KEYPOINT_METRICS]
                cells += [_fmt(values.get((dataset, m, b, k)), 1) for k in ("ms_per_person", "ms_per_image")]
                lines.append(f"| {m} | {b} | " + " | ".join(cells) + " |")
        fitted = next((r["fitted_on"] for r in rows if r["dataset"] == dataset and r["model"] == BASELINE), None)
        if fitted:
            lines.append(f"\n{BASELINE}: one pose, the mean box-relative pose of {fitted}, placed in every GT box")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "coco_dev", help="coco_dev folder")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights", help="shared weights folder")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime / ncnn threads (default 2)")
    parser.add_argument("--mp-python", type=Path, default=ROOT / ".venv-mediapipe" / "bin" / "python",
                        help="python of the MediaPipe environment (make mediapipe-env)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--baseline-only", action="store_true",
                        help=f"only recompute the {BASELINE} rows of the existing --out file (seconds)")  # fmt: skip
    args = parser.parse_args()
    if args.baseline_only:
        return update_baseline(args.out, args.data, args.datasets)

    from posedistill.infer.defaults import default_detector

    rows: list[dict[str, Any]] = []

    def add(dataset: str, model: str, boxes: str, metric: str, value: float | None, **extra: Any) -> None:
        rows.append({"dataset": dataset, "model": model, "boxes": boxes, "metric": metric, "value": value, **extra})

    def skip(dataset: str, model: str, reason: str) -> None:
        print(f"  {model}: skipped: {reason}", file=sys.stderr)
        add(dataset, model, "-", "skipped", None, reason=reason)

    default_det = Path(default_detector()).resolve()
    started, load_start = time.time(), os.getloadavg()[0]
    for dataset in args.datasets:
        gt = read_ground_truth(args.data / dataset / GT_FILE)
        print(f"{dataset}: {len(gt.images)} images, {gt.num_boxes} person boxes", file=sys.stderr)
        images = ImageCache()
        det_boxes, det_ms = None, 0.0
        for label, name in DETECTORS:
            path = args.weights / name
            if not path.is_file():
                skip(dataset, label, f"{path} not found")
                continue
            stats, ms, boxes = evaluate_detector(path, gt, args.threads, images)
            is_default = path.read_bytes() == default_det.read_bytes()
            label += " (default)" if is_default else ""
            for setting, st in stats.items():
                for m, v in st.items():
                    add(dataset, label, "-", f"box_{m}_{setting}", v)
            add(dataset, label, "-", "ms_per_image", ms)
            print(f"  {label}: box AP {stats['all']['AP']:.3f} (detect {stats['detect']['AP']:.3f}, pipeline "
                  f"{stats['pipeline']['AP']:.3f}), {ms:.1f} ms/image", file=sys.stderr)  # fmt: skip
            if is_default:
                det_boxes, det_ms = boxes, ms
        if det_boxes is None:  # the shipped detector is not among the shared files: run it
            _, det_ms, det_boxes = evaluate_detector(default_det, gt, args.threads, images)

        for label, spec, flip in TEACHERS:
            label += " +flip" if flip else ""
            try:
                res = run_teacher(spec.format(weights=args.weights), flip, gt, det_boxes, args.threads, images)
            except Exception as e:  # a teacher that cannot run here is a row saying why, not a failed bench
                skip(dataset, label, f"{type(e).__name__}: {e}")
                continue
            for mode, row in res.items():
                for m in KEYPOINT_METRICS:
                    add(dataset, label, mode, m, row[m])
            add(dataset, label, "gt", "ms_per_person", res["gt"]["ms_per_person"])
            add(dataset, label, "pipeline", "ms_per_image", det_ms + res["pipeline"]["pose_ms_per_image"])
            print(f"  {label}: AP {res['gt']['AP']:.3f} (GT boxes), {res['detect']['AP']:.3f} (detect), "
                  f"{res['pipeline']['AP']:.3f} (pipeline); {res['gt']['ms_per_person']:.1f} ms/person",
                  file=sys.stderr)  # fmt: skip

        mp = run_mediapipe(args.mp_python, gt, args.threads)
        if isinstance(mp, str):
            skip(dataset, MEDIAPIPE, mp)
        else:
            for mode, row in mp.items():
                for m in KEYPOINT_METRICS:
                    add(dataset, MEDIAPIPE, mode, m, row[m])
            if "ms_per_person" in mp["gt"]:
                add(dataset, MEDIAPIPE, "gt", "ms_per_person", mp["gt"]["ms_per_person"])
            if "ms_per_image" in mp["pipeline"]:
                add(dataset, MEDIAPIPE, "pipeline", "ms_per_image", mp["pipeline"]["ms_per_image"])
            print(f"  {MEDIAPIPE}: AP {mp['gt']['AP']:.3f} (GT boxes), {mp['detect']['AP']:.3f} (detect)",
                  file=sys.stderr)  # fmt: skip

        rows += baseline_rows(args.data, dataset)
        print(f"  {BASELINE}: AP {rows[-len(KEYPOINT_METRICS)]['value']:.3f} (GT boxes; {rows[-1]['fitted_on']})",
              file=sys.stderr)  # fmt: skip

    settings = {
        "threads": args.threads, "cpu": cpu_name(), "data": str(args.data), "weights": str(args.weights),
        "default_detector": str(default_det),
        "detector_settings": {k: {"score_thr": v[0], "nms_iou": v[1]} for k, v in detector_settings().items()},
        "instance_score": "box score x mean keypoint score > 0.2; OKS-NMS 0.9 (mmpose CocoMetric)",
        "seconds": round(time.time() - started, 1),
        "load_average_1min_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }  # fmt: skip
    atomic_write_json(args.out, {"settings": settings, "rows": rows}, indent=1)
    print(format_tables(rows))
    warn_unbeaten(rows)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
