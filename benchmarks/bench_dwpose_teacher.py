"""DWPose gains with a real teacher: does stage 1 from PP-TinyPose beat training without KD, and does stage 2 add to
stage 1? Three seeds per row, every row kept. ``make bench-dwpose``.

The experiment (configs in ``configs/dwpose/lspet-body_*.yaml``; every run is a ``posedistill train`` / ``distill``
subprocess with one torch thread, ``--jobs`` of them at a time):

- **Data.** LSPet images 1–2500 with their ground truth mapped to COCO-17 (the 12 limb joints; LSP has no face
  points, and only the joints LSPet marks *visible* are labels: its occluded ones are guesses, docs/label.md).
  Evaluation: PCK@0.2 over the 12 limb joints on LSPet 2501–3000, and COCO-17 AP with ground-truth boxes on
  ``coco_dev/julito`` (photos unlike LSPet). Both with flip test.
- **Student.** ``rtmpose-nano`` (RTMDet-nano's CSPNeXt, started from the shipped detector's weights: from random
  weights nothing learns at this budget, docs/learning.md) at 128×96, COCO-17, :data:`EPOCHS` epochs.
- **Rows** per seed: ``no-kd`` (the GT loss alone); ``dwpose-s1`` (the same plus DWPose's logit KD from the frozen
  PP-TinyPose 256×192, ``(1 − e/E)·KDLoss``: its heatmaps turned into SimCC soft targets over the student's bins,
  every keypoint, :mod:`posedistill.distill.runtime_teacher`); ``dwpose-s2`` (stage 2, head-aware self-KD on that
  seed's stage-1 model, the config's settings) and the stage-2 variants of :data:`STAGE2`, the small ablation
  that picked those settings. The teacher row is PP-TinyPose itself on the same people (no flip test: the
  KD teacher runs without it), and the mean-pose baseline row places LSPet 1–2500's mean pose in each box.

``--data pool`` trains on the default model's pseudo-labelled pool instead (``work_dirs/default_model/pool.json``
from ``make default-model``: LSPet 1–2500 and 3001–7000 and coco_mini_train, body labelled by PP-TinyPose with flip
test and LSPet's visible ground truth, read as its 17 body points with the teachers' confidences as weights), 4
epochs, the default stage 2 only; output ``*_pool.json``. There the labels already are the teacher's arg-max, so
stage 1 adds only the shape of its distributions.

Output: ``benchmarks/results/dwpose_pptinypose.json`` (rows ``{dataset, method, seed, metric, value, teacher,
train_seconds, eval_set}``, values are fractions) and ``.png`` (every seed as a dot, the mean as a bar). Finished
runs are reused and an interrupted one resumes from its last checkpoint, so a second call only re-evaluates; each
checkpoint's scores are cached in ``eval_cache.json`` (keyed by its weights' modification time).

    .venv/bin/python benchmarks/bench_dwpose_teacher.py [--seeds 0 1 2] [--jobs 2] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # ncnn's spinning threads starve the other job's core

import bench_cascade as cascade  # noqa: E402
import bench_teachers as teachers  # noqa: E402

from posedistill.eval.baseline import NAME as BASELINE  # noqa: E402
from posedistill.fileio import atomic_write_json  # noqa: E402

CONFIGS = ROOT / "configs" / "dwpose"
RESULTS = ROOT / "benchmarks" / "results" / "dwpose_pptinypose.json"
DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "work_dirs" / "bench_dwpose_teacher"
JULITO = DATA / "coco_dev" / "julito" / "person_keypoints.json"
TEACHER = "pp-tinypose"  # the shipped name of ../shared/weights/pp-tinypose_256x192_ncnn.param
TEACHER_NAME = "PP-TinyPose 256x192 (ncnn, no flip)"
TRAIN, EVAL = (1, 2500), (2501, 3000)  # LSPet image numbers, inclusive
EPOCHS = 10
POOL = ROOT / "work_dirs" / "default_model" / "pool.json"  # benchmarks/default_model.py, steps 1-2
# --data pool: the default model's pseudo-labelled pool, read as its 17 body points; 2.7x LSPet's people, so fewer
# epochs for a similar CPU budget, and the repository's default stage 2 only (the ablation runs on LSPet)
POOL_SETS = ["data.train.0.layout=coco", "train.epochs=4", "schedule.cosine_begin_epoch=1", "train.aug_switch_epoch=3"]
INPUT_SIZE = (96, 128)  # (w, h)
# stage-2 variants (name -> config overrides) on each seed's stage-1 model; "dwpose-s2" is the repository default
# (the ablation chose it: at DWPose's 1/5 of stage 1, 2 epochs here, a fresh head stays furthest short of the
# stage-1 head; docs/benchmarks.md)
STAGE2: dict[str, list[str]] = {
    "dwpose-s2": [],  # epoch_ratio 0.5 (the config's): 5 epochs
    "s2-2-epochs": ["method.args.epoch_ratio=0.2"],  # DWPose's ratio
    "s2-head-from-s1": ["method.args.init_head_from_teacher=true", "method.args.epoch_ratio=0.2"],
    "s2-lr-0.25x": ["optim.lr=2.5e-4", "method.args.epoch_ratio=0.2"],
}
LOGS: list[str] = []


def log(msg: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    LOGS.append(line)
    print(line, flush=True)


# ---------------------------------------------------------------------------------------------- data


def write_train_labels(out: Path, first: int, last: int) -> Path:
    """LSPet ``first``..``last`` as a COCO-17 keypoint file: the LSP joints mapped to COCO (12 limb joints), only the
    visible ones labelled (visibility 2), the box LSP's (from all 14 joints)."""
    from posedistill.data.readers.lsp import read_lsp
    from posedistill.layouts import COCO_NAMES, map_keypoints

    if out.is_file():
        return out
    images, anns = [], []
    for i, inst in enumerate(read_lsp(cascade.LSPET, indices=range(first, last + 1))):
        kp, vis, _ = map_keypoints(inst.keypoints, inst.visibility, "lsp", "coco")
        keep = vis >= 2
        kps = np.concatenate([np.where(keep[:, None], kp, 0.0), np.where(keep, 2.0, 0.0)[:, None]], axis=1)
        w, h = inst.image_size
        file_name = str(Path(inst.image_path).resolve())
        images.append({"id": i + 1, "file_name": file_name, "width": int(w), "height": int(h)})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "num_keypoints": int(keep.sum()),
                     "bbox": [round(float(v), 2) for v in inst.bbox], "area": float(inst.bbox[2] * inst.bbox[3]),
                     "keypoints": [round(float(v), 2) for v in kps.reshape(-1)]})  # fmt: skip
    cats = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_NAMES), "skeleton": []}]
    atomic_write_json(out, {"images": images, "annotations": anns, "categories": cats})
    log(f"train labels: {len(anns)} people of LSPet {first}-{last} -> {out}")
    return out


# ---------------------------------------------------------------------------------------------- runs


def base_sets(seed: int, labels: Path, smoke: bool, data: str) -> list[str]:
    sets = [f"train.seed={seed}", f"data.train.0.path={labels}"]
    if data == "pool":
        sets += POOL_SETS + (["data.train.0.indices='0:64'"] if smoke else [])
    if smoke:
        sets += ["train.epochs=1", "schedule.warmup_iters=5", "train.aug_switch_epoch=100"]
    return sets


def train(command: str, config: str, wd: Path, sets: list[str]) -> float:
    return cascade.run_training(command, CONFIGS / config, wd, sets, f"bench_dwpose_teacher: {wd.name}")


def run_all(
    work: Path, seeds: list[int], jobs: int, smoke: bool, data: str = "lspet", pool: Path = POOL
) -> dict[tuple[str, int], dict[str, Any]]:
    """Train every run (``jobs`` at a time, one thread each); {(method, seed): {"ckpt", "seconds"}}."""
    if data == "pool":
        if not pool.is_file():
            raise SystemExit(f"{pool}: no pseudo-labelled pool; `make default-model` (its label and pool steps) "
                             "writes it, or give --pool")  # fmt: skip
        labels = pool
    else:
        labels = write_train_labels(work / "lspet_train_coco17.json", *(TRAIN if not smoke else (1, 64)))
    os.environ["OMP_NUM_THREADS"] = "1"
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        s1: dict[int, Future] = {}
        for seed in seeds:  # the long stage-1 runs first, so that the short ones fill the gaps
            wd = work / f"dwpose-s1_seed{seed}"
            s1[seed] = pool.submit(train, "distill", "lspet-body_dwpose_pptinypose-nano_s1.yaml", wd,
                                   base_sets(seed, labels, smoke, data))  # fmt: skip
            runs[("dwpose-s1", seed)] = {"ckpt": wd / "last", "future": s1[seed]}
        for seed in seeds:
            wd = work / f"no-kd_seed{seed}"
            f = pool.submit(train, "train", "lspet-body_nokd_rtmpose-nano.yaml", wd,
                            base_sets(seed, labels, smoke, data))  # fmt: skip
            runs[("no-kd", seed)] = {"ckpt": wd / "last", "future": f}

        def stage2(seed: int, name: str, extra: list[str]) -> float:
            s1[seed].result()
            teacher = work / f"dwpose-s1_seed{seed}" / "last"
            sets = [*base_sets(seed, labels, smoke, data), f"method.args.teacher={teacher}", *extra]
            return train("distill", "lspet-body_dwpose_nano-nano_s2.yaml", work / f"{name}_seed{seed}", sets)

        for seed in seeds:
            for name, extra in STAGE2.items() if data == "lspet" else [("dwpose-s2", [])]:
                runs[(name, seed)] = {"ckpt": work / f"{name}_seed{seed}" / "last",
                                      "future": pool.submit(stage2, seed, name, extra)}  # fmt: skip
        for r in runs.values():
            r["seconds"] = r.pop("future").result()
    return runs


# ---------------------------------------------------------------------------------------------- evaluation


def eval_sets(smoke: bool) -> tuple[Any, Any]:
    from posedistill.data.readers.lsp import read_lsp

    first, last = EVAL if not smoke else (EVAL[0], EVAL[0] + 19)
    instances = read_lsp(cascade.LSPET, indices=range(first, last + 1))
    n = len(instances)
    lsp = cascade.EvalSet(f"lspet {first}-{last}", instances, np.zeros((n, 133, 2)), np.zeros((n, 133)),
                          np.zeros((n, 133), bool))  # fmt: skip
    return lsp, teachers.read_ground_truth(JULITO)


def evaluate(spec: str, flip: bool, lsp: Any, julito: Any, images: Any) -> dict[str, float]:
    """LSPet PCK@0.2 (12 limb joints) and julito COCO-17 AP (GT boxes) of a model spec."""
    from posedistill.infer import PoseEstimator
    from posedistill.label.teacher_output import to_wholebody

    est = PoseEstimator(spec, detector=None, flip_test=flip, threads=2, progress=False)

    def wholebody(image: np.ndarray, boxes: np.ndarray) -> Any:
        res = est(image, boxes=boxes)
        kp, sc, _ = to_wholebody(res.keypoints, res.scores, res.layout)
        return SimpleNamespace(keypoints=kp, scores=sc)

    kp, sc = cascade.predict(wholebody, lsp.instances)
    model = teachers.load_keypoint_model(spec, flip=flip, threads=2, progress=False)
    run = teachers.predict_coco(julito, model, "gt", None, progress=False, read=images)
    return {"pck@0.2": cascade.lsp_pck(lsp, kp, sc), "AP": teachers.keypoint_metrics(julito.path, run.records)["AP"]}


def rows_for(runs: dict[tuple[str, int], dict[str, Any]], smoke: bool, cache: Path) -> list[dict[str, Any]]:
    lsp, julito = eval_sets(smoke)
    images = teachers.ImageCache()
    names = {"lspet": f"{lsp.name}, 12 limb joints", "julito": f"julito COCO-17, GT boxes ({julito.num_boxes} people)"}
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    rows: list[dict[str, Any]] = []

    def add(method: str, seed: int | None, scores: dict[str, float], seconds: float | None) -> None:
        for dataset, metric in (("lspet", "pck@0.2"), ("julito", "AP")):
            rows.append({"dataset": dataset, "method": method, "seed": seed, "metric": metric,
                         "value": float(scores[metric]), "teacher": TEACHER_NAME if method != "no-kd" else None,
                         "train_seconds": seconds, "eval_set": names[dataset]})  # fmt: skip

    for (method, seed), r in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        key = f"{r['ckpt']}@{(Path(r['ckpt']) / 'weights.safetensors').stat().st_mtime_ns}"
        if key not in done:
            done[key] = evaluate(str(r["ckpt"]), True, lsp, julito, images)
            atomic_write_json(cache, done)
        log(f"  {method:<16} seed {seed}: PCK {done[key]['pck@0.2']:.3f}  julito AP {done[key]['AP']:.3f}")
        add(method, seed, done[key], r["seconds"])
    key = f"teacher:{TEACHER}"
    if key not in done:
        done[key] = evaluate(TEACHER, False, lsp, julito, images)
        atomic_write_json(cache, done)
    add("teacher", None, done[key], None)
    kp, n = cascade.lsp_limbs_mean_pose(lsp.instances, TRAIN[1])
    rows.append({"dataset": "lspet", "method": BASELINE, "seed": None, "metric": "pck@0.2",
                 "value": cascade.lsp_pck(lsp, kp, np.ones(kp.shape[:2])), "teacher": None, "train_seconds": None,
                 "eval_set": names["lspet"], "fitted_on": f"LSPet 1-{TRAIN[1]} ({n} people)"})  # fmt: skip
    for r in teachers.baseline_rows(DATA / "coco_dev", "julito"):
        if r["metric"] == "AP":
            rows.append({"dataset": "julito", "method": BASELINE, "seed": None, "metric": "AP", "value": r["value"],
                         "teacher": None, "train_seconds": None, "eval_set": names["julito"],
                         "fitted_on": r["fitted_on"]})  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------- report


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dataset, method): mean, min, max over seeds, and the paired difference to no-kd / dwpose-s1."""
    out = []
    keyed: dict[tuple[str, str], dict[Any, float]] = {}
    for r in rows:
        keyed.setdefault((r["dataset"], r["method"]), {})[r["seed"]] = r["value"]
    for (dataset, method), by_seed in keyed.items():
        v = np.array(list(by_seed.values()))
        s = {"dataset": dataset, "method": method, "seeds": len(v), "mean": float(v.mean()), "min": float(v.min()),
             "max": float(v.max())}  # fmt: skip
        ref = "no-kd" if method == "dwpose-s1" else "dwpose-s1" if method.startswith(("dwpose-s2", "s2-")) else None
        if ref and (dataset, ref) in keyed:
            d = [by_seed[k] - keyed[(dataset, ref)][k] for k in by_seed if k in keyed[(dataset, ref)]]
            s[f"minus_{ref}"] = {"mean": float(np.mean(d)), "min": float(np.min(d)), "max": float(np.max(d)),
                                 "wins": int(sum(x > 0 for x in d)), "pairs": len(d)}  # fmt: skip
        out.append(s)
    return out


def ordered(methods: Any) -> list[str]:
    """Teacher, mean pose, no-KD, stage 1, stage 2, then the stage-2 variants."""
    first = ["teacher", BASELINE, "no-kd", "dwpose-s1", "dwpose-s2"]
    names = list(dict.fromkeys(methods))
    return [m for m in first if m in names] + [m for m in names if m not in first]


def table(summ: list[dict[str, Any]]) -> str:
    lines = ["| method | seeds | LSPet PCK@0.2 mean (min–max) | Δ vs reference, per seed | julito AP mean (min–max) "
             "| Δ vs reference, per seed |", "|---|---|---|---|---|---|"]  # fmt: skip
    by = {(s["dataset"], s["method"]): s for s in summ}
    for m in ordered(s["method"] for s in summ):
        cells = [m, str(by.get(("lspet", m), {}).get("seeds", ""))]
        for ds in ("lspet", "julito"):
            s = by.get((ds, m))
            if s is None:
                cells += ["–", "–"]
                continue
            cells.append(f"{100 * s['mean']:.1f} ({100 * s['min']:.1f}–{100 * s['max']:.1f})")
            d = next((v for k, v in s.items() if k.startswith("minus_")), None)
            ref = next((k[6:] for k in s if k.startswith("minus_")), "")
            cells.append(f"{100 * d['mean']:+.1f} vs {ref} ({100 * d['min']:+.1f}…{100 * d['max']:+.1f}; "
                         f"better in {d['wins']}/{d['pairs']})" if d else "")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, train_data: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    panels = (
        ("lspet", "pck@0.2", "LSPet 2501-3000 PCK@0.2 (12 limbs)"),
        ("julito", "AP", "julito COCO-17 AP, GT boxes"),
    )
    for ax, (ds, metric, title) in zip(axes, panels, strict=True):
        sel = [r for r in rows if r["dataset"] == ds and r["metric"] == metric]
        methods = ordered(r["method"] for r in sel)
        students = [100 * r["value"] for r in sel if r["method"] not in ("teacher", BASELINE)]
        # the students differ by a point or two: a y axis from just below them (bars under it are labelled)
        low = max(0.0, np.floor(min(students)) - 4) if ds == "lspet" and students else 0.0
        for i, m in enumerate(methods):
            v = [100 * r["value"] for r in sel if r["method"] == m]
            ax.bar(i, np.mean(v), color="#9ecae1" if m not in ("teacher", BASELINE) else "#dddddd")
            ax.scatter(np.full(len(v), i), v, color="k", s=12, zorder=3)
            ax.text(i, max(np.mean(v), low) + 0.1, f"{np.mean(v):.1f}", ha="center", va="bottom", fontsize=7)
        if low > 0:
            ax.set_ylim(low, None)
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"DWPose with the {TEACHER_NAME} teacher, rtmpose-nano 128x96 trained on {train_data}; a dot per seed",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="training runs at a time (one thread each)")
    p.add_argument("--work-dir", type=Path, default=WORK, help="default %(default)s (pool: its pool/ folder)")
    p.add_argument("--data", choices=("lspet", "pool"), default="lspet",
                   help="training data: LSPet 1-2500's visible ground truth, or the default model's pseudo-labelled "
                   "pool (PP-TinyPose body labels; needs work_dirs/default_model/pool.json)")  # fmt: skip
    p.add_argument("--pool", type=Path, default=POOL, help="the pool file of --data pool")
    p.add_argument("--out", type=Path, help=f"default {RESULTS.relative_to(ROOT)} (pool: *_pool.json)")
    p.add_argument("--smoke", action="store_true", help="a pipeline check on 64 images, 1 epoch (not an experiment)")
    args = p.parse_args()
    if args.out is None:
        args.out = RESULTS if args.data == "lspet" else RESULTS.with_name(RESULTS.stem + "_pool.json")
        if args.smoke:
            args.out = args.work_dir / f"smoke_{args.data}.json"
    if args.data == "pool" and args.work_dir == WORK:
        args.work_dir = WORK / "pool"
    args.work_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs = run_all(args.work_dir, args.seeds, args.jobs, args.smoke, args.data, args.pool)
    log(f"training done in {time.perf_counter() - t0:.0f} s; evaluating")
    rows = rows_for(runs, args.smoke, args.work_dir / "eval_cache.json")
    summ = summary(rows)
    print(table(summ))
    train_data = ("LSPet 1-2500, visible ground-truth joints mapped to COCO-17" if args.data == "lspet"
                  else f"{args.pool.name}: the default model's pseudo-labelled pool, 17 body points")  # fmt: skip
    for r in rows:
        r["train_data"] = train_data
    atomic_write_json(args.out, {"rows": rows, "summary": summ, "teacher": TEACHER_NAME, "student": "rtmpose-nano",
                                 "train_data": train_data,
                                 "input_size": list(INPUT_SIZE), "epochs": EPOCHS if args.data == "lspet" else 4,
                                 "seeds": args.seeds,
                                 "smoke": args.smoke}, indent=1)  # fmt: skip
    plot(rows, args.out.with_suffix(".png"), train_data)
    log(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
