"""Why does whole-body RTMPose trained from scratch collapse to the mean pose? One change at a time, fixed budget.

Every variant trains RTMPose-t (133 keypoints, 128×96 input) from random weights on the demo's synthetic data
(``posedistill demo``'s sets: 160×160 images, 1–2 people, difficulty ``medium``) for the same number of optimizer
steps, starting from ``configs/demo/teacher.yaml`` as it was when the collapse was reported (``--set`` overrides
below), and changes one thing. Each run is then scored on the demo's validation people with ground-truth boxes:
PCK@0.2 of all 133 points (box-normalised) and COCO-WholeBody body AP, next to the mean-pose baseline
(:mod:`posedistill.eval.baseline`: the training set's mean box-relative pose placed in each box, no pixels).

Output: ``benchmarks/results/learning_diagnosis.json`` (one row per variant: overrides, steps, final PCK, body
AP, loss at the start / end, wall time) and ``docs/learning_curves.png`` (training loss per step, PCK per
variant). Finished runs (with a validation record) are reused and interrupted ones resume (``--force`` retrains).

    .venv/bin/python benchmarks/diagnose_learning.py [--variants reported mild_aug ...] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The recipe of configs/demo/teacher.yaml when the collapse was reported (run with model rtmpose-t).
REPORTED = {
    "model.name": "rtmpose-t",
    "optim.lr": 2.0e-3,
    "optim.weight_decay": 0.0,
    "train.batch_size": 32,
    "schedule.warmup_iters": 60,
    "data.aug": "{}",
    "codec.sigma": "[2.45, 2.83]",
    "train.grad_clip": "null",
}
# RTMPose's stage-2 augmentation without its coarse dropout: flips, ±25 % scale, ±30° rotation, colour jitter.
MILD_AUG = "{rotate_factor: 30.0, shift_prob: 0.0, half_body_prob: 0.0, dropout_prob: 0.0, blur_prob: 0.0, median_blur_prob: 0.0, scale_range: [0.75, 1.25]}"  # noqa: E501
VARIANTS: dict[str, dict[str, Any]] = {
    "reported": {},
    "mild_aug": {"data.aug": MILD_AUG},
    "no_aug": {"data.aug": "{flip_prob: 0.5, half_body_prob: 0.0, shift_prob: 0.0, scale_prob: 0.0, rotate_prob: 0.0, hue_delta: 0, saturation_delta: 0, value_delta: 0, blur_prob: 0.0, median_blur_prob: 0.0, dropout_prob: 0.0}"},  # noqa: E501
    "lr_1e-3": {"optim.lr": 1.0e-3},
    "lr_4e-3": {"optim.lr": 4.0e-3},
    "batch_16": {"train.batch_size": 16},
    "sigma_x2": {"codec.sigma": "[4.9, 5.66]"},
    "grad_clip": {"train.grad_clip": 1.0},
    "wd_0.05": {"optim.weight_decay": 0.05},
}


def _generate(data_dir: Path) -> dict[str, Path]:
    from posedistill.data.synthetic import generate_dataset

    sets = {"train": dict(num_images=1200, seed=0), "val": dict(num_images=150, seed=1000)}
    out = {}
    for name, kw in sets.items():
        out[name] = data_dir / name / "annotations.json"
        if not out[name].is_file():
            generate_dataset(data_dir / name, size=(160, 160), difficulty="medium", people=(1, 2), **kw)
    return out


def _run_variant(name: str, overrides: dict[str, Any], data: dict[str, Path], work: Path, steps: int,
                 force: bool) -> dict[str, Any]:  # fmt: skip
    run_dir = work / name
    cfg = {**REPORTED, **overrides}
    batch = int(cfg["train.batch_size"])
    people = len(json.loads(data["train"].read_text())["annotations"])  # one sample per person, not per image
    iters_per_epoch = -(-people // batch)  # the loader keeps the last partial batch
    epochs = max(1, round(steps / iters_per_epoch))
    sets = {
        **cfg,
        "data.train.0.path": data["train"],
        "data.val.0.path": data["val"],
        "train.epochs": epochs,
        "train.aug_switch_epoch": epochs + 1,  # one augmentation for the whole budget
        "schedule.cosine_begin_epoch": max(1, epochs // 2),
        "train.val_interval": epochs,
        "train.checkpoint_interval": epochs,
        "train.log_interval": 5,
        "eval.metric": "pck",
    }
    argv = [sys.executable, "-m", "posedistill", "train", str(ROOT / "configs/demo/teacher.yaml"),
            "--work-dir", str(run_dir)]  # fmt: skip
    for k, v in sets.items():
        argv += ["--set", f"{k}={v}"]
    t0 = time.perf_counter()
    log = run_dir / "metrics.jsonl"
    finished = log.is_file() and any('"type": "val"' in line for line in log.read_text().splitlines())
    if force or not finished:
        # an interrupted run continues from its last checkpoint (exact resume)
        resume = [] if force or not (run_dir / "last").is_dir() else ["--resume"]
        subprocess.run(argv + resume, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if r["type"] == "train"]
    val = [r for r in rows if r["type"] == "val"]
    coco_out = run_dir / "eval_coco.json"
    if force or not finished or not coco_out.is_file():
        subprocess.run([sys.executable, "-m", "posedistill", "eval", str(ROOT / "configs/demo/teacher.yaml"),
                        "--checkpoint", str(run_dir / "last"), "--out", str(coco_out), "--no-flip-test",
                        "--set", f"data.val.0.path={data['val']}", "--set", "eval.metric=coco",
                        "--set", f"model.name={cfg['model.name']}"],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    coco = json.loads(coco_out.read_text())["metrics"]
    return {
        "variant": name,
        "overrides": {k: str(v) for k, v in overrides.items()},
        "steps": train[-1]["global_iter"] if train else 0,
        "epochs": epochs,
        "pck@0.2": val[-1]["pck@0.2"] if val else None,
        "body_AP": coco.get("body/AP"),
        "wholebody_AP": coco.get("AP"),
        "loss_first10": sum(r["loss"] for r in train[:10]) / max(1, len(train[:10])),
        "loss_last10": sum(r["loss"] for r in train[-10:]) / max(1, len(train[-10:])),
        "train_seconds": round(wall, 1),
        "curve": [(r["global_iter"], r["loss"]) for r in train],
    }


def _baseline(data: dict[str, Path]) -> dict[str, float]:
    from posedistill.data.readers import read_dataset
    from posedistill.eval.baseline import evaluate_mean_pose

    train = read_dataset(data["train"], layout="coco_wholebody")
    val = read_dataset(data["val"], layout="coco_wholebody")
    pck = evaluate_mean_pose(train, val, "coco_wholebody", metric="pck")
    coco = evaluate_mean_pose(train, val, "coco_wholebody", metric="coco")
    return {"pck@0.2": pck["pck@0.2"], "body_AP": coco["body/AP"], "wholebody_AP": coco["AP"]}


def _plot(rows: list[dict[str, Any]], baseline: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posedistill.fileio import atomic_write_with

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        if r["curve"]:
            it, loss = zip(*r["curve"])
            ax1.plot(it, loss, label=r["variant"], lw=1)
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("training loss")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    names = [r["variant"] for r in rows]
    ax2.barh(names, [100 * (r["pck@0.2"] or 0) for r in rows], color="tab:blue")
    ax2.axvline(100 * baseline["pck@0.2"], color="tab:red", ls="--", label="mean-pose baseline")
    ax2.set_xlabel("PCK@0.2, all 133 points (%)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=448,
                    help="optimizer steps per run (default 448: the demo's 8 epochs of 1,794 people at batch 32)")
    ap.add_argument("--work-dir", default="work_dirs/diagnose_learning")
    ap.add_argument("--out", default="benchmarks/results/learning_diagnosis.json")
    ap.add_argument("--plot", default="docs/learning_curves.png")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    work = Path(args.work_dir)
    data = _generate(work / "data")
    baseline = _baseline(data)
    print(f"mean-pose baseline: PCK@0.2 {100 * baseline['pck@0.2']:.1f}, body AP {100 * baseline['body_AP']:.1f}")
    out_path = Path(args.out)
    old = json.loads(out_path.read_text())["rows"] if out_path.is_file() else []
    rows = {r["variant"]: r for r in old}
    for name in args.variants:
        r = _run_variant(name, VARIANTS[name], data, work, args.steps, args.force)
        rows[name] = r
        print(f"{name:12s} steps {r['steps']:4d}  PCK {100 * r['pck@0.2']:5.1f}  body AP {100 * r['body_AP']:5.1f}  "
              f"loss {r['loss_first10']:.3f} -> {r['loss_last10']:.3f}  {r['train_seconds']:.0f} s", flush=True)
        from posedistill.fileio import atomic_write_text

        ordered = [rows[n] for n in VARIANTS if n in rows]
        atomic_write_text(out_path, json.dumps({"baseline": baseline, "rows": ordered}, indent=1) + "\n")
        _plot(ordered, baseline, Path(args.plot))


if __name__ == "__main__":
    main()
