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
        [--data medium clean one_person no_clutter]

``--data`` picks the synthetic data: ``medium`` (the demo's when the collapse was reported) or a preset that
removes one kind of pixel difficulty (clutter, other people, or both plus noise and blur) while keeping medium's
poses, so the mean-pose baseline stays about the same.
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
RTMDET_ONNX = ROOT.parent / "shared" / "weights" / "rtmdet-nano_person.onnx"
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
    "no_aug": {
        "data.aug": "{flip_prob: 0.5, half_body_prob: 0.0, shift_prob: 0.0, scale_prob: 0.0, rotate_prob: 0.0, "
        "hue_delta: 0, saturation_delta: 0, value_delta: 0, blur_prob: 0.0, median_blur_prob: 0.0, dropout_prob: 0.0}"
    },
    "lr_1e-3": {"optim.lr": 1.0e-3},
    "lr_4e-3": {"optim.lr": 4.0e-3},
    # RTMPose's 4e-3 at batch 256 scaled linearly to batch 32 is 5e-4
    "lr_5e-4": {"optim.lr": 5.0e-4},
    "lr_2e-4": {"optim.lr": 2.0e-4},
    # the reported recipe for four times the steps (its cosine decay stretched to match)
    "budget_x4": {"steps_factor": 4},
    # RTMPose's own input size: a 8x6 last feature map instead of 4x3 (sigmas of the 256x192 configs)
    "input_256x192": {"model.input_size": "[192, 256]", "codec.sigma": "[4.9, 5.66]"},
    "batch_16": {"train.batch_size": 16},
    "sigma_x2": {"codec.sigma": "[4.9, 5.66]"},
    "grad_clip": {"train.grad_clip": 1.0},
    "wd_0.05": {"optim.weight_decay": 0.05},
    # easy poses first: the easy preset's people added to the training set (same steps), or the model trained on
    # the easy preset (`--data easy --variants reported`, run first) as the starting weights
    "mix_easy": {"extra_train": "easy"},
    "init_easy": {"init_from": "easy/reported"},
    # RTMPose's head on RTMDet-nano's backbone (depthwise CSPNeXt 0.33 / 0.25): from random weights, and from the
    # person detector's trained weights (posedistill.models.rtmdet_backbone), the only trained CSPNeXt we have
    "nano_scratch": {"model.name": "rtmpose-nano"},
    "nano_rtmdet": {"model.name": "rtmpose-nano", "init_rtmdet": True},
    "nano_rtmdet_x4": {"model.name": "rtmpose-nano", "init_rtmdet": True, "steps_factor": 4},
    "nano_rtmdet_x4_lr1e-3": {"model.name": "rtmpose-nano", "init_rtmdet": True, "steps_factor": 4, "optim.lr": 1e-3},
}


# Data presets: the demo's synthetic data when the collapse was reported, then one kind of difficulty removed at a
# time (overrides of posedistill.data.synthetic.make_config("medium", ...)). Poses, rotations and scales stay
# medium's in every preset, so the mean-pose baseline stays low: only how hard the pixels are to read changes.
NO_CLUTTER = {"distractors": (0, 0), "occluder_prob": 0.0, "shapes": (0, 3), "texture": 0.15,
              "background_contrast": 0.25}  # fmt: skip
ONE_PERSON = {"people": (1, 1), "overlap_prob": 0.0}
DATA: dict[str, dict[str, Any]] = {
    "medium": {},
    "easy": {"difficulty": "easy"},  # the easy preset whole: easy poses and easy pixels
    "one_person": ONE_PERSON,
    "no_clutter": NO_CLUTTER,
    "clean": {**ONE_PERSON, **NO_CLUTTER, "truncation_prob": 0.0, "blur_prob": 0.0, "noise_std": 1.5,
              "lighting": 0.1, "jpeg_quality": (90, 95), "clothing_pattern_prob": 0.3},
}  # fmt: skip


def _generate(data_dir: Path, preset: str) -> dict[str, Path]:
    from posedistill.data.synthetic import generate_dataset, make_config

    overrides = {"people": (1, 2), **DATA[preset]}
    difficulty = overrides.pop("difficulty", "medium")
    sets = {"train": dict(num_images=1200, seed=0), "val": dict(num_images=150, seed=1000)}
    out = {}
    for name, kw in sets.items():
        out[name] = data_dir / name / "annotations.json"
        if not out[name].is_file():
            cfg = make_config(difficulty, size=(160, 160), **overrides)
            generate_dataset(data_dir / name, config=cfg, **kw)
    return out


def _run_variant(name: str, overrides: dict[str, Any], data: dict[str, Path], work: Path, steps: int,
                 force: bool, preset: str, root: Path) -> dict[str, Any]:  # fmt: skip
    run_dir = work / name
    steps *= int(overrides.get("steps_factor", 1))
    special = ("steps_factor", "extra_train", "init_from", "init_rtmdet")
    cfg = {**REPORTED, **{k: v for k, v in overrides.items() if k not in special}}
    train_sets = [data["train"]]
    if "extra_train" in overrides:
        extra = overrides["extra_train"]
        train_sets.append(_generate(root / extra / "data", extra)["train"])
    if "init_from" in overrides:
        init = root / overrides["init_from"] / "last" / "weights.safetensors"
        if not init.is_file():
            raise SystemExit(f"{name}: {init} not found; train it first (--data easy --variants reported)")
        cfg["model.pretrained"] = init
    if overrides.get("init_rtmdet"):
        from posedistill.models.rtmdet_backbone import calibration_crops, write_rtmdet_pretrained

        init = run_dir / "rtmdet-nano_backbone.safetensors"
        if not init.is_file():
            size = tuple(json.loads(str(cfg.get("model.input_size", "[96, 128]"))))
            write_rtmdet_pretrained(init, RTMDET_ONNX, calibration_crops(data["train"], size))  # type: ignore[arg-type]
        cfg["model.pretrained"] = init
    batch = int(cfg["train.batch_size"])
    # one sample per person, not per image
    people = sum(len(json.loads(p.read_text())["annotations"]) for p in train_sets)
    iters_per_epoch = -(-people // batch)  # the loader keeps the last partial batch
    epochs = max(1, round(steps / iters_per_epoch))
    sets = {
        **cfg,
        "data.train": "[" + ", ".join(f"{{format: coco, path: '{p}'}}" for p in train_sets) + "]",
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
                        *[a for k, v in cfg.items() if k.startswith(("model.", "codec."))
                          for a in ("--set", f"{k}={v}")]],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    coco = json.loads(coco_out.read_text())["metrics"]
    return {
        "data": preset,
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


def _plot(rows: list[dict[str, Any]], baselines: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posedistill.fileio import atomic_write_with

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.get_cmap("tab20").colors
    for i, r in enumerate(rows):
        if r["curve"]:
            it, loss = zip(*r["curve"])
            ax1.plot(it, loss, label=f"{r['data']} / {r['variant']}", lw=1, color=colours[i % len(colours)])
    ax1.set_ylim(0.3, 1.3)  # the warm-up spikes (up to 4.3) are cut off so that the plateaus can be read
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("training loss (axis cut at 1.3)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    names = [f"{r['data']} / {r['variant']}" for r in rows]
    ax2.barh(names, [100 * (r["pck@0.2"] or 0) for r in rows], color="tab:blue", label="model")
    ax2.scatter([100 * baselines[r["data"]]["pck@0.2"] for r in rows], names, marker="|", s=300, color="tab:red",
                zorder=3, label="mean-pose baseline of that data")  # fmt: skip
    ax2.set_xlabel("PCK@0.2, all 133 points (%)")
    ax2.invert_yaxis()
    ax2.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument(
        "--steps",
        type=int,
        default=448,
        help="optimizer steps per run (default 448: the demo's 8 epochs of 1,794 people at batch 32)",
    )
    ap.add_argument("--work-dir", default="work_dirs/diagnose_learning")
    ap.add_argument("--out", default="benchmarks/results/learning_diagnosis.json")
    ap.add_argument("--plot", default="docs/learning_curves.png")
    ap.add_argument(
        "--data",
        nargs="+",
        default=["medium"],
        choices=list(DATA),
        help="data presets to train on (default: medium, the demo's data when the collapse was reported)",
    )
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    from posedistill.fileio import atomic_write_text

    work = Path(args.work_dir)
    out_path = Path(args.out)
    for preset in args.data:
        # the reported data keeps its old paths, so finished runs are reused
        pwork = work if preset == "medium" else work / preset
        data = _generate(pwork / "data", preset)
        baseline = _baseline(data)
        print(f"[{preset}] mean-pose baseline: PCK@0.2 {100 * baseline['pck@0.2']:.1f}, "
              f"body AP {100 * baseline['body_AP']:.1f}", flush=True)  # fmt: skip
        for name in args.variants:
            r = _run_variant(name, VARIANTS[name], data, pwork, args.steps, args.force, preset, work)
            print(
                f"[{preset}] {name:12s} steps {r['steps']:4d}  PCK {100 * r['pck@0.2']:5.1f}  "
                f"body AP {100 * r['body_AP']:5.1f}  loss {r['loss_first10']:.3f} -> {r['loss_last10']:.3f}  "
                f"{r['train_seconds']:.0f} s",
                flush=True,
            )
            # re-read just before writing: several presets may run as parallel processes
            old = json.loads(out_path.read_text()) if out_path.is_file() else {}
            baselines = old.get("baselines", {"medium": old["baseline"]} if "baseline" in old else {})
            baselines[preset] = baseline
            rows = {(x.get("data", "medium"), x["variant"]): x for x in old.get("rows", [])}
            rows[(preset, name)] = r
            ordered = [
                rows[k] for k in sorted(rows, key=lambda k: (list(DATA).index(k[0]), list(VARIANTS).index(k[1])))
            ]
            for x in ordered:
                x.setdefault("data", "medium")
            atomic_write_text(out_path, json.dumps({"baselines": baselines, "rows": ordered}, indent=1) + "\n")
            _plot(ordered, baselines, Path(args.plot))


if __name__ == "__main__":
    main()
