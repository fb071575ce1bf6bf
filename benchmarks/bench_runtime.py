"""Runtime benchmark: RTMPose-t and -s body-17 and RTMPose-t whole-body-133 at 256×192 under onnxruntime and
PyTorch eager, with the machine's sgemm speed, the FLOP floor, the batching gain and end-to-end frames; then
float32 against int8 (``posedistill export --int8``) side by side: speed, end-to-end frames and accuracy.

    .venv/bin/python benchmarks/bench_runtime.py                 # 50 warm-up + 200 timed runs per case
    .venv/bin/python benchmarks/bench_runtime.py --iters 50      # quicker
    .venv/bin/python benchmarks/bench_runtime.py --sections int8 --models models/rtmpose-nano_wholebody \\
        rtmpose-t --study                                        # int8 only (the other results are kept)

**runtime** section: each model runs through ``posedistill bench`` (see ``posedistill/commands/bench.py`` for what
is measured) with random weights (timing does not depend on them); one table per model, then the two goals:
RTMPose-t under onnxruntime within 1.5× of its FLOP floor, and one batch-8 call at least 2× the throughput of a
batch-1 loop over the same ONNX (rtmlib's way).

**int8** section, for each of ``--models`` (a checkpoint folder such as ``models/<name>`` or any checkpoint, an
``.onnx`` file written by ``posedistill export``, or a model name such as ``rtmpose-t``: body-17 at 256×192 with
random weights, for timing): the float32 export and its int8 quantization (:mod:`posedistill.infer.quantize`,
the defaults of ``posedistill export --int8``, calibrated on ``--calib-count`` ground-truth person boxes of LSPet
images 1–2500, which no evaluation below uses), compared in one run:

- ms per crop at batch 1 and 8 (one ``session.run``, ``--threads`` onnxruntime threads, default 2), fp32 and int8
  interleaved round by round;
- the end-to-end frame: the default person detector (``models/rtmdet-nano_person``) on a 640×480 photo, then
  ``PoseEstimator`` on 1 and 8 person boxes of it (crop, normalise, model, decode, map back);
- accuracy, no flip test, ground-truth boxes: COCO-17 body AP on coco_dev (julito + coco_mini_train; whole-body
  models are scored on their first 17 points) and PCK@0.2 (box-normalised) on LSPet 2501–3000 over the 12 limb
  joints LSP shares with COCO; and the int8 keypoints' agreement with the float32 ones (mean distance / box size,
  share within 0.05 of the box) on the same people;
- ``--study``: the same accuracy and batch-1 / 8 speed for a grid of settings (activation / weight types,
  ``reduce_range``, which nodes stay float32), the measurement behind the defaults.

Also the CPU model and its int8-relevant instruction sets (AVX2, AVX-512F, AVX-512 VNNI, AVX-VNNI from
``/proc/cpuinfo``). Writes ``benchmarks/results/runtime.json`` atomically: ``models`` and ``goals`` (runtime), ``int8``
(int8); a run of one section keeps the other's results from the existing file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posedistill.commands.bench import bench, cpu_isa, format_report, matmul_gflops, summarize, time_cases  # noqa: E402
from posedistill.fileio import atomic_write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "runtime.json"

# (label, model name, K, input (w, h))
MODELS: list[tuple[str, str, int, tuple[int, int]]] = [
    ("rtmpose-t body 256x192", "rtmpose-t", 17, (192, 256)),
    ("rtmpose-s body 256x192", "rtmpose-s", 17, (192, 256)),
    ("rtmpose-t wholebody 256x192", "rtmpose-t", 133, (192, 256)),
]

FLOOR_GOAL = 1.5
BATCH_GOAL = 2.0

SHARED = ROOT.parent / "shared" / "data"
LSPET = SHARED / "lspet" / "joints.mat"
COCO_DEV = SHARED / "coco_dev"
COCO_DEV_FOLDERS = ("julito", "coco_mini_train")
CALIB_IMAGES = (1, 2500)  # LSPet training images: calibration never sees an evaluated person
EVAL_LSPET = (2501, 3000)
INT8_MODELS = ["models/rtmpose-nano_wholebody", "rtmpose-t"]
FRAME = (640, 480)
AGREE_THR = 0.05
BLOCKS = 4  # timing blocks per precision (time_blocks)
# --study: (activations, weights, reduce_range) with the default nodes in float32, then each choice of float32
# nodes with the default types (posedistill.infer.quantize's defaults: uint8 / int8, reduce_range, "tail")
STUDY_TYPES = [("uint8", "int8", True), ("uint8", "int8", False), ("int8", "int8", False)]
STUDY_KEEP = ["none", "outputs", "tail", "head"]


# ------------------------------------------------------------------------------------------------ runtime section


def runtime_section(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results = []
    for label, name, k, size in MODELS:
        print(f"=== {label}", flush=True)
        res = bench(name, args.batches, args.warmup, args.iters, list(args.backends), threads=args.threads,
                    num_keypoints=k, input_size=size, persons=[1, 8])  # fmt: skip
        res["label"] = label
        print(format_report(res), flush=True)
        print(flush=True)
        results.append(res)

    t = results[0]
    ort1 = next((r for r in t["model_latency"] if r["backend"] == "onnxruntime" and r["batch"] == 1), None)
    ort8 = next((r for r in t["model_latency"] if r["backend"] == "onnxruntime" and r["batch"] == 8
                 and r["mode"] == "one call"), None)  # fmt: skip
    goals = {
        "floor_goal": FLOOR_GOAL,
        "rtmpose_t_ort_batch1_x_floor": None if ort1 is None else ort1.get("x_floor"),
        "rtmpose_t_ort_batch1_x_floor_best": None if ort1 is None else ort1.get("x_floor_best"),
        "rtmpose_t_ort_batch8_x_floor": None if ort8 is None else ort8.get("x_floor"),
        "rtmpose_t_ort_batch8_x_floor_best": None if ort8 is None else ort8.get("x_floor_best"),
        "batching_goal": BATCH_GOAL,
        "rtmpose_t_batching_gain": t["batching_gain"],
        "rtmpose_t_batching_gain_best_runs": t["batching_gain_best_runs"],
        "rtmpose_t_batching_gain_sharded": t["batching_gain_sharded"],
    }
    print("goals (RTMPose-t body 256x192, onnxruntime):")
    for key in ("rtmpose_t_ort_batch1_x_floor", "rtmpose_t_ort_batch1_x_floor_best", "rtmpose_t_ort_batch8_x_floor",
                "rtmpose_t_ort_batch8_x_floor_best"):  # fmt: skip
        v = goals[key]
        if v is not None:
            print(f"  {key}: {v:.2f} x FLOP floor ({'met' if v <= FLOOR_GOAL else 'not met'}, goal <= {FLOOR_GOAL})")
    if t["batching_gain"] is not None:
        g = t["batching_gain"]
        print(f"  batching gain, 8 crops: {g:.2f}x at the median ({'met' if g >= BATCH_GOAL else 'not met'}, goal >= "
              f"{BATCH_GOAL}); {t['batching_gain_best_runs']:.2f}x on the best runs")  # fmt: skip
    return results, goals


# ------------------------------------------------------------------------------------------------ int8: data


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def lspet_calibration_json(out: Path, first: int, last: int) -> Path:
    """A COCO json of the LSPet ground-truth person boxes of images ``first``..``last`` (absolute file names), the
    ``--calib`` source of the int8 exports here."""
    from posedistill.data.readers.lsp import read_lsp

    instances = read_lsp(LSPET, indices=range(first, last + 1))
    doc = {
        "images": [{"id": i, "file_name": str(Path(inst.image_path).resolve())} for i, inst in enumerate(instances)],
        "annotations": [
            {"id": i, "image_id": i, "bbox": [float(v) for v in inst.bbox], "iscrowd": 0}
            for i, inst in enumerate(instances)
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    out.write_text(json.dumps(doc))
    return out


@dataclasses.dataclass
class EvalSets:
    """coco_dev people (COCO-17) and LSPet 2501–3000 people with their LSP joints mapped to COCO-17 (the 12
    limb joints; the rest unlabelled)."""

    coco_dev: list[Any]
    lspet: list[Any]


def eval_sets() -> EvalSets:
    from posedistill.data.readers import read_dataset
    from posedistill.data.readers.lsp import read_lsp
    from posedistill.layouts import get_mapping

    coco = []
    for folder in COCO_DEV_FOLDERS:
        for inst in read_dataset(COCO_DEV / folder / "person_keypoints.json", format="coco", layout="coco"):
            coco.append(dataclasses.replace(inst, image_id=f"{folder}/{inst.image_id}",
                                            instance_id=f"{folder}/{inst.instance_id}"))  # fmt: skip
    m = get_mapping("lsp", "coco")
    lsp = []
    for inst in read_lsp(LSPET, indices=range(EVAL_LSPET[0], EVAL_LSPET[1] + 1)):
        kp, vis, _ = m.apply(inst.keypoints, inst.visibility)
        lsp.append(dataclasses.replace(inst, keypoints=kp.astype(np.float32), visibility=vis.astype(np.float32),
                                       layout="coco"))  # fmt: skip
    return EvalSets(coco, lsp)


@dataclasses.dataclass
class Crops:
    """All scored people of an evaluation set as model inputs (one preprocessing, shared by fp32 and int8)."""

    inputs: np.ndarray  # (N, 3, h, w)
    centers: np.ndarray  # (N, 2)
    scales: np.ndarray  # (N, 2)
    rows: np.ndarray  # (N,) index into the instance list


def make_crops(instances: list[Any], info: Any) -> Crops:
    from posedistill.data.image_io import read_image
    from posedistill.infer.preprocess import preprocess

    by_image: dict[str, list[int]] = {}
    for i, inst in enumerate(instances):
        if not inst.iscrowd and inst.bbox[2] > 0 and inst.bbox[3] > 0:
            by_image.setdefault(inst.image_path, []).append(i)
    parts, rows = [], []
    for path, idx in by_image.items():
        boxes = np.array([instances[i].bbox for i in idx], np.float32)
        boxes[:, 2:] += boxes[:, :2]
        parts.append(preprocess(read_image(path), boxes, info.input_size, info.mean, info.std, to_rgb=info.to_rgb,
                                padding=info.padding, udp=info.udp))  # fmt: skip
        rows += idx
    return Crops(np.concatenate([p.inputs for p in parts]), np.concatenate([p.centers for p in parts]),
                 np.concatenate([p.scales for p in parts]), np.asarray(rows))  # fmt: skip


def predict(est: Any, crops: Crops, n: int) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 keypoints (n, 17, 2) in image pixels and scores (n, 17) of a PoseEstimator on ``crops``."""
    from posedistill.commands.predict import to_coco17
    from posedistill.infer.preprocess import keypoints_to_image

    kps, scs = [], []
    for s in range(0, len(crops.inputs), 8):
        kp, sc = est.infer_crops(crops.inputs[s : s + 8])
        kps.append(keypoints_to_image(kp, crops.centers[s : s + 8], crops.scales[s : s + 8], est.input_size,
                                      est.info.udp))  # fmt: skip
        scs.append(sc)
    kp17, sc17 = to_coco17(np.concatenate(kps), np.concatenate(scs), est.layout)
    out_kp, out_sc = np.zeros((n, 17, 2), np.float32), np.zeros((n, 17), np.float32)
    out_kp[crops.rows], out_sc[crops.rows] = kp17, sc17
    return out_kp, out_sc


def accuracy(est: Any, sets: EvalSets, crops: dict[str, Crops]) -> dict[str, Any]:
    """coco_dev body AP and LSPet PCK@0.2 of ``est``, plus the raw COCO-17 predictions (for the agreement)."""
    from posedistill.eval.evaluate import evaluate_predictions

    kp_c, sc_c = predict(est, crops["coco_dev"], len(sets.coco_dev))
    kp_l, sc_l = predict(est, crops["lspet"], len(sets.lspet))
    ap = evaluate_predictions(sets.coco_dev, kp_c, sc_c, "coco", metric="coco", input_size=est.input_size)
    pck = evaluate_predictions(sets.lspet, kp_l, sc_l, "coco", metric="pck")
    return {"coco_dev_ap": float(ap["AP"]), "coco_dev_ap50": float(ap["AP50"]), "lspet_pck": float(pck["pck@0.2"]),
            "_kp": np.concatenate([kp_c[crops["coco_dev"].rows], kp_l[crops["lspet"].rows]]),
            "_box": np.concatenate([_box_sizes(sets.coco_dev, crops["coco_dev"].rows),
                                    _box_sizes(sets.lspet, crops["lspet"].rows)])}  # fmt: skip


def _box_sizes(instances: list[Any], rows: np.ndarray) -> np.ndarray:
    return np.array([max(float(instances[i].bbox[2]), float(instances[i].bbox[3])) for i in rows])


def agreement(ref: dict[str, Any], got: dict[str, Any]) -> dict[str, float]:
    """int8 against float32 keypoints (COCO-17, every evaluated person): mean distance / box size and the share
    of points within ``AGREE_THR`` of the box size."""
    d = np.linalg.norm(got["_kp"] - ref["_kp"], axis=-1) / ref["_box"][:, None]
    return {"mean_dist_over_box": float(d.mean()), f"within_{AGREE_THR:g}_box": float((d <= AGREE_THR).mean())}


def public(acc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in acc.items() if not k.startswith("_")}


# ------------------------------------------------------------------------------------------------ int8: timing


def time_blocks(
    groups: dict[str, list[tuple[dict[str, Any], Any]]], warmup: int, iters: int, blocks: int = BLOCKS
) -> list[dict[str, Any]]:
    """Time each group's cases (``(label, fn)``; a group = one precision, i.e. one onnxruntime session) in
    ``blocks`` blocks per group, the groups alternating block by block (ABAB..., the order flipped every block).

    Not round by round: an onnxruntime session's idle threads keep spinning for a while after each call and take
    the cores from a call of another session (measured: interleaving the float32 and int8 sessions call by call
    made both 2-3× slower on 2 cores). Each block starts with ``max(3, warmup // blocks)`` untimed calls per case,
    during which the previous session's threads go quiet; ``iters`` timed runs per case in all."""
    times: dict[tuple[str, int], list[float]] = {}
    names = list(groups)
    for blk in range(blocks):
        order = names if blk % 2 == 0 else names[::-1]
        for name in order:
            cases = groups[name]
            n = iters // blocks + (1 if blk < iters % blocks else 0)
            res = time_cases([fn for _, fn in cases], max(3, warmup // blocks), n)
            for k, t in enumerate(res):
                times.setdefault((name, k), []).extend(t)
    return [{**groups[name][k][0], "_t": t} for (name, k), t in times.items()]


def time_models(models: dict[str, Any], batches: list[int], warmup: int, iters: int, w: int, h: int) -> list[dict]:
    """ms per call and per crop (median and best run) of each model at each batch (:func:`time_blocks`)."""
    rng = np.random.default_rng(0)
    xs = {b: rng.standard_normal((b, 3, h, w)).astype(np.float32) for b in batches}
    groups = {
        name: [({"precision": name, "batch": b}, lambda m=m, x=xs[b]: m.run(x)) for b in batches]
        for name, m in models.items()
    }
    rows = []
    for r in time_blocks(groups, warmup, iters):
        t = r.pop("_t")
        s = summarize(t, r["batch"])
        rows.append({**r, **s, "ms_per_crop": s["median_ms"] / r["batch"],
                     "best_ms_per_crop": s["min_ms"] / r["batch"]})  # fmt: skip
    return sorted(rows, key=lambda r: (r["batch"], r["precision"]))


def e2e_frame() -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """A 640×480 photo (the first julito image, resized) and person boxes for 1 and 8 people on it."""
    import cv2

    from posedistill.data.image_io import read_image

    doc = json.loads((COCO_DEV / "julito" / "person_keypoints.json").read_text())
    image = read_image(COCO_DEV / "julito" / "images" / doc["images"][0]["file_name"])
    frame = cv2.resize(image, FRAME, interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    boxes = {}
    for n in (1, 8):
        x1, y1 = rng.uniform(0, 400, n), rng.uniform(0, 200, n)
        boxes[n] = np.stack([x1, y1, x1 + rng.uniform(80, 240, n), y1 + rng.uniform(150, 280, n)], 1).astype(np.float32)
    return frame, boxes


def time_e2e(ests: dict[str, Any], detector: Any, warmup: int, iters: int) -> list[dict]:
    """Detector on the frame + PoseEstimator on 1 and 8 boxes, per precision (:func:`time_blocks`); and the
    detector alone."""
    frame, boxes = e2e_frame()
    groups = {
        name: [({"precision": name, "persons": n}, lambda est=est, b=b: (detector(frame), est(frame, boxes=b)))
               for n, b in boxes.items()]
        for name, est in ests.items()
    }  # fmt: skip
    groups["detector only"] = [({"precision": "detector only", "persons": 0}, lambda: detector(frame))]
    rows = []
    for r in time_blocks(groups, warmup, iters):
        t = r.pop("_t")
        rows.append({**r, **summarize(t, 1)})
    return rows


# ------------------------------------------------------------------------------------------------ int8 section


def int8_model(spec: str, args: argparse.Namespace, calib: Path, sets: EvalSets | None, tmp: Path) -> dict[str, Any]:
    from posedistill.commands.bench import prepare
    from posedistill.infer import PoseEstimator
    from posedistill.infer.defaults import load_detector
    from posedistill.infer.onnx_model import OnnxPoseModel
    from posedistill.infer.quantize import quantize_with_calibration

    work = tmp / Path(spec).name
    work.mkdir(parents=True, exist_ok=True)
    prep = prepare(spec, 17, (192, 256), work)
    fp32 = Path(prep["onnx"])
    trained = Path(spec).exists()
    log(f"{spec}: quantizing {fp32.name} ({args.calib_count} LSPet crops)")
    t0 = time.perf_counter()
    int8 = quantize_with_calibration(fp32, work / "model_int8.onnx", calib, args.calib_count)
    quant_s = time.perf_counter() - t0
    models = {"fp32": OnnxPoseModel(fp32, threads=args.threads), "int8": OnnxPoseModel(int8, threads=args.threads)}
    info = models["fp32"].info
    w, h = info.input_size
    res: dict[str, Any] = {
        "model": spec,
        "weights": "trained" if trained else "random (timing only; accuracy not meaningful)",
        "layout": info.layout, "num_keypoints": info.num_keypoints, "input_size": [w, h], "kind": info.kind,
        "file_mb": {"fp32": fp32.stat().st_size / 1e6, "int8": int8.stat().st_size / 1e6},
        "int8_metadata": {k: v for k, v in models["int8"].info.metadata["int8"].items() if k != "fp32_nodes"},
        "calibration": f"LSPet images {CALIB_IMAGES[0]}-{CALIB_IMAGES[1]}, ground-truth boxes (a temporary COCO json)",
        "fp32_nodes": models["int8"].info.metadata["int8"]["fp32_nodes"],
        "quantize_s": quant_s,
    }  # fmt: skip
    log(f"{spec}: timing batch {args.batches}")
    res["latency"] = time_models(models, args.batches, args.warmup, args.iters, w, h)
    ests = {k: PoseEstimator(m, detector=None) for k, m in models.items()}
    det = load_detector("default", threads=args.threads, progress=False)
    log(f"{spec}: end-to-end frames")
    res["end_to_end"] = time_e2e(ests, det, max(1, args.warmup // 5), max(1, args.iters // 2))
    if sets is not None:
        log(f"{spec}: accuracy (coco_dev, LSPet {EVAL_LSPET[0]}-{EVAL_LSPET[1]})")
        crops = {"coco_dev": make_crops(sets.coco_dev, info), "lspet": make_crops(sets.lspet, info)}
        acc = {k: accuracy(e, sets, crops) for k, e in ests.items()}
        res["accuracy"] = {k: public(v) for k, v in acc.items()}
        res["accuracy"]["delta"] = {k: acc["int8"][k] - acc["fp32"][k] for k in public(acc["fp32"])}
        res["accuracy"]["agreement"] = agreement(acc["fp32"], acc["int8"])
        if args.study and trained:
            res["study"] = study(fp32, calib, args, crops, sets, acc["fp32"], work)
    return res


def study(
    fp32: Path,
    calib: Path,
    args: argparse.Namespace,
    crops: dict[str, Crops],
    sets: EvalSets,
    ref: dict[str, Any],
    work: Path,
) -> list[dict[str, Any]]:
    """Accuracy and speed (against the float32 file, interleaved) of each setting (one quantization each)."""
    from posedistill.infer import PoseEstimator
    from posedistill.infer.onnx_model import OnnxPoseModel
    from posedistill.infer.quantize import DEFAULT_KEEP_FP32, calibration_boxes, calibration_crops, quantize_onnx

    base = OnnxPoseModel(fp32, threads=args.threads)
    cal = calibration_boxes(calib, args.calib_count)
    x = calibration_crops(cal, base.info, args.calib_count)
    grid = [(*t, DEFAULT_KEEP_FP32) for t in STUDY_TYPES]
    grid += [(*STUDY_TYPES[0], keep) for keep in STUDY_KEEP if keep != DEFAULT_KEEP_FP32]
    rows = []
    for act, wt, rr, keep in grid:
        out = work / f"study_{act}_{wt}_{int(rr)}_{keep}.onnx"
        quantize_onnx(fp32, out, x, keep_fp32=keep, activation_type=act, weight_type=wt, reduce_range=rr,
                      calibration=cal.describe())  # fmt: skip
        m = OnnxPoseModel(out, threads=args.threads)
        acc = accuracy(PoseEstimator(m, detector=None), sets, crops)
        w, h = m.info.input_size
        lat = time_models({"fp32": base, "int8": m}, args.batches, max(1, args.warmup // 2), args.iters, w, h)
        row = {"activations": act, "weights": wt, "reduce_range": rr, "keep_fp32": keep,
               "fp32_nodes": len(m.info.metadata["int8"]["fp32_nodes"]), **public(acc),
               "delta_ap": acc["coco_dev_ap"] - ref["coco_dev_ap"],
               "delta_pck": acc["lspet_pck"] - ref["lspet_pck"], **agreement(ref, acc),
               "ms_per_crop": {f"{r['precision']}_b{r['batch']}": r["ms_per_crop"] for r in lat},
               "best_ms_per_crop": {f"{r['precision']}_b{r['batch']}": r["best_ms_per_crop"] for r in lat}}  # fmt: skip
        speed = " ".join(f"{k} {v:.2f}" for k, v in row["ms_per_crop"].items())
        log(f"  {act}/{wt} reduce_range={rr} keep={keep}: AP {row['coco_dev_ap']:.3f} PCK {row['lspet_pck']:.3f} "
            f"agree {row[f'within_{AGREE_THR:g}_box']:.3f} ms/crop {speed}")  # fmt: skip
        rows.append(row)
    return rows


def int8_section(args: argparse.Namespace) -> dict[str, Any]:
    from posedistill.infer.onnx_model import available_cores

    isa = cpu_isa()
    sets = None
    if not args.no_accuracy:
        if LSPET.is_file() and COCO_DEV.is_dir():
            sets = eval_sets()
        else:
            print(f"note: no {LSPET} or {COCO_DEV}: timing only (the accuracy rows need the shared data)")
    # the machine's float32 matmul speed now (it is not the same from one day to the next on a shared VM)
    sgemm = matmul_gflops(args.threads)["best"]
    out: dict[str, Any] = {
        "machine": {**isa, "cores": available_cores(), "threads": args.threads, "sgemm_gflops": sgemm},
        "settings": {
            "warmup": args.warmup,
            "iters": args.iters,
            "batches": args.batches,
            "threads": args.threads,
            "calibration": f"LSPet images {CALIB_IMAGES[0]}-{CALIB_IMAGES[1]}, ground-truth boxes, "
            f"{args.calib_count} crops evenly spaced",
            "frame": list(FRAME),
            "eval": f"coco_dev ({' + '.join(COCO_DEV_FOLDERS)}) body AP, GT boxes; LSPet "
            f"{EVAL_LSPET[0]}-{EVAL_LSPET[1]} PCK@0.2 over 12 limb joints; no flip test",
        },
        "models": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        calib = lspet_calibration_json(Path(tmp) / "calib_lspet.json", *CALIB_IMAGES)
        m = out["machine"]
        print(f"machine: {m['cpu']}, {m['cores']} cores, {args.threads} onnxruntime threads; avx2 {m['avx2']}, "
              f"avx512f {m['avx512f']}, avx512_vnni {m['avx512_vnni']}, avx_vnni {m['avx_vnni']} (VNNI: {m['vnni']}); "
              f"sgemm {m['sgemm_gflops'] or 0:.0f} GFLOP/s", flush=True)  # fmt: skip
        for spec in args.models:
            res = int8_model(spec, args, calib, sets, Path(tmp))
            print(format_int8(res), flush=True)
            out["models"].append(res)
    return out


def format_int8(res: dict[str, Any]) -> str:
    lines = [f"--- {res['model']} ({res['kind']}, {res['layout']}, {res['input_size'][0]}x{res['input_size'][1]}, "
             f"{res['weights']}); file {res['file_mb']['fp32']:.1f} -> {res['file_mb']['int8']:.1f} MB; "
             f"float32 nodes: {len(res['fp32_nodes'])}"
             + (f" ({res['fp32_nodes'][0]} ... {res['fp32_nodes'][-1]})" if res["fp32_nodes"] else "")]  # fmt: skip
    lines.append(f"{'precision':9s} {'batch':>5s} {'median ms':>10s} {'p90 ms':>8s} {'ms/crop':>8s} {'best/crop':>9s}")
    for r in res["latency"]:
        lines.append(f"{r['precision']:9s} {r['batch']:5d} {r['median_ms']:10.2f} {r['p90_ms']:8.2f} "
                     f"{r['ms_per_crop']:8.2f} {r['best_ms_per_crop']:9.2f}")  # fmt: skip
    lines.append(f"{'end to end':13s} {'persons':>7s} {'median ms':>10s} {'p90 ms':>8s}")
    for r in res["end_to_end"]:
        lines.append(f"{r['precision']:13s} {r['persons']:7d} {r['median_ms']:10.2f} {r['p90_ms']:8.2f}")
    acc = res.get("accuracy")
    if acc:
        for k in ("fp32", "int8", "delta"):
            a = acc[k]
            lines.append(f"{k:6s} coco_dev AP {a['coco_dev_ap']:+.3f}  LSPet PCK@0.2 {a['lspet_pck']:+.3f}")
        g = acc["agreement"]
        lines.append(f"int8 vs fp32 keypoints: mean distance {g['mean_dist_over_box']:.4f} x box, "
                     f"{g[f'within_{AGREE_THR:g}_box']:.3f} within {AGREE_THR} x box")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--backends", nargs="+", default=["ort", "torch"], choices=("ort", "torch"))
    ap.add_argument("--threads", type=int, help="threads per backend (default: all cores; int8 section: 2)")
    ap.add_argument("--sections", nargs="+", default=["runtime", "int8"], choices=("runtime", "int8"))
    ap.add_argument(
        "--models",
        nargs="+",
        default=INT8_MODELS,
        help="int8 section: checkpoint folders / .onnx exports / model names (default: %(default)s)",
    )
    ap.add_argument("--calib-count", type=int, default=300, help="int8 calibration crops (default 300)")
    ap.add_argument("--study", action="store_true", help="int8 section: the settings grid on trained models")
    ap.add_argument("--no-accuracy", action="store_true", help="int8 section: timing only")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    doc: dict[str, Any] = {}
    if args.out.is_file():  # a run of one section keeps the other's results
        doc = json.loads(args.out.read_text())
    if "runtime" in args.sections:
        doc["models"], doc["goals"] = runtime_section(args)
    if "int8" in args.sections and not LSPET.is_file():  # its calibration crops are LSPet people
        print(f"note: skipping the int8 section: it calibrates on {LSPET}, which is not here")
    elif "int8" in args.sections:
        args.threads = args.threads or 2
        doc["int8"] = int8_section(args)
    atomic_write_json(args.out, doc, indent=1)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
