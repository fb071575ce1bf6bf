"""``posedistill demo``: the main job on its built-in default, end to end on a fresh machine, no download.

1. generate synthetic whole-body people (COCO-WholeBody, 133 keypoints) for training, validation and samples, and
   read the trained CSPNeXt backbone out of the shipped RTMDet-nano person detector
   (:mod:`posedistill.models.rtmdet_backbone`): RTMPose trained from random weights stays on the mean pose at
   this budget (``docs/learning.md``), as it does in mmpose;
2. train an RTMPose teacher on that backbone (``rtmpose-nano``: RTMPose's SimCC head on RTMDet-nano's backbone);
3. DWPose-distil a student of the same size from the same starting weights: stage 1 (feature + logit
   distillation) then stage 2 (head-aware self-KD);
4. evaluate teacher and student (whole-body COCO AP per part) and count their parameters and FLOPs;
5. export the student to ONNX;
6. run ``posedistill infer`` (onnxruntime, no torch) on sample images;
7. write a report folder: ``report.md`` with the table, ``curves.png`` with the training curves, and the sample
   images with their predicted skeletons.

Every step is an ordinary ``posedistill`` command with the configs in ``configs/demo/``; the demo only chains them
and sets the paths, so each step can be re-run by hand. Re-running the demo reuses finished steps (``--fresh`` to
start over).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HELP = "run the main job: synthetic data -> teacher -> DWPose student -> evaluate -> ONNX -> infer -> report"

REPO = Path(__file__).resolve().parents[2]
PARTS = ("wholebody", "body", "foot", "face", "lefthand", "righthand")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--images", type=int, default=1200, help="synthetic training images (default 1200)")
    parser.add_argument("--val-images", type=int, default=150, help="synthetic validation images (default 150)")
    parser.add_argument("--epochs", type=int, default=32,
                        help="teacher and stage-1 epochs (default 32; stage 2: a quarter)")  # fmt: skip
    parser.add_argument("--size", type=int, default=160, help="side of the synthetic images in pixels (default 160)")
    parser.add_argument("--difficulty", default="medium", choices=("easy", "medium", "hard"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="delete the output folder first")


def _check_options(args: argparse.Namespace) -> None:
    """Values that would fail minutes into the run fail now (UsageError), before anything is written."""
    from posedistill.commands._common import check_range
    from posedistill.data.synthetic import make_config
    from posedistill.errors import UsageError
    from posedistill.fileio import check_writable_output

    check_range(args.images, "--images", 1)
    check_range(args.val_images, "--val-images", 1)
    check_range(args.epochs, "--epochs", 1)
    try:
        make_config(args.difficulty, size=(args.size, args.size))
    except ValueError as e:
        raise UsageError(f"--size {args.size}: {e}") from None
    check_writable_output(args.out, "dir", "--out")


def _step(title: str) -> float:
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def _run(argv: list[str], commands: list[str]) -> None:
    from posedistill.cli import main

    line = "posedistill " + " ".join(argv)
    commands.append(line)
    print("$ " + line, flush=True)
    code = main(argv)
    if code:
        raise SystemExit(f"posedistill demo: step failed (exit {code}): posedistill {' '.join(argv)}")


def _done(ckpt: Path) -> bool:
    """A finished run (not merely a ``last`` written after some epoch: an interrupted run resumes instead)."""
    from posedistill.engine.checkpoint import is_finished

    return is_finished(ckpt)


class _Timings:
    """Wall seconds per step, kept in ``<out>/timings.json`` so that a re-run that reuses a trained model reports
    the time that model took when it was trained, marked as reused, instead of the ~0 s of skipping it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.previous: dict[str, float] = {}
        if path.is_file():
            try:
                self.previous = {k: float(v) for k, v in json.loads(path.read_text())["seconds"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                self.previous = {}  # unreadable: times of this run only
        self.seconds: dict[str, float] = {}
        self.reused: set[str] = set()

    def record(self, step: str, seconds: float, reused: bool = False) -> None:
        if reused and step in self.previous:
            seconds = self.previous[step]
        if reused:
            self.reused.add(step)
        self.seconds[step] = seconds
        from posedistill.fileio import atomic_write_json

        atomic_write_json(self.path, {"seconds": {**self.previous, **self.seconds}, "reused": sorted(self.reused)})

    def line(self) -> str:
        parts = [f"{k} {v:.0f}" + (" (reused from an earlier run)" if k in self.reused else "")
                 for k, v in self.seconds.items()]  # fmt: skip
        return ", ".join(parts) + f"; total {sum(self.seconds.values()):.0f}"


def run(args: argparse.Namespace) -> int:
    configs = REPO / "configs" / "demo"
    if not configs.is_dir():
        print(f"posedistill demo: error: {configs} not found; run the demo from a posedistill source checkout",
              file=sys.stderr)  # fmt: skip
        return 2
    _check_options(args)
    out = Path(args.out).resolve()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    timings = _Timings(out / "timings.json")
    commands: list[str] = []

    # 1. data ---------------------------------------------------------------------------------------------------
    from posedistill.data.synthetic import generate_dataset

    t0 = _step("1/7 synthetic whole-body data")
    size = (args.size, args.size)
    sets = {
        "train": dict(num_images=args.images, people=(1, 2), seed=args.seed),
        "val": dict(num_images=args.val_images, people=(1, 2), seed=args.seed + 1000),
        # drawn in the report whatever the models do: fixed here, before any training (one person: frame = box)
        "samples": dict(num_images=6, people=(1, 1), seed=args.seed + 2000),
    }
    ann: dict[str, Path] = {}
    reused = True
    for name, kw in sets.items():
        ann[name] = out / "data" / name / "annotations.json"
        if ann[name].is_file():
            print(f"reusing {ann[name]}")
            continue
        reused = False
        generate_dataset(out / "data" / name, size=size, difficulty=args.difficulty,
                         preview=name == "train", **kw)  # fmt: skip
    pretrained = out / "pretrained" / "rtmdet-nano_backbone.safetensors"
    if not pretrained.is_file():
        reused = False
        from posedistill.infer.defaults import default_detector
        from posedistill.models.rtmdet_backbone import calibration_crops, write_rtmdet_pretrained

        print(f"backbone: {default_detector()} -> {pretrained}")
        write_rtmdet_pretrained(pretrained, default_detector(), calibration_crops(ann["train"], INPUT_SIZE))
    timings.record("data", time.perf_counter() - t0, reused)

    data_sets = [f"data.train.0.path={ann['train']}", f"data.val.0.path={ann['val']}"]

    def sets_for(epochs: int, seed: int = args.seed) -> list[str]:
        out_sets = []
        for s in [*data_sets, f"train.epochs={epochs}", f"train.aug_switch_epoch={max(1, epochs - 1)}",
                  f"schedule.cosine_begin_epoch={max(1, epochs // 2)}", f"train.seed={seed}"]:  # fmt: skip
            out_sets += ["--set", s]
        return out_sets

    # 2. teacher ------------------------------------------------------------------------------------------------
    teacher = out / "teacher"
    t0 = _step("2/7 train the RTMPose teacher on RTMDet-nano's backbone")
    reused = _done(teacher / "last")
    if not reused:
        _run(["train", str(configs / "teacher.yaml"), "--work-dir", str(teacher), *sets_for(args.epochs),
              "--set", f"model.pretrained={pretrained}", "--resume"], commands)  # fmt: skip
    timings.record("teacher", time.perf_counter() - t0, reused)

    # 3. DWPose stage 1 + 2 -------------------------------------------------------------------------------------
    s1, s2 = out / "student_s1", out / "student_s2"
    t0 = _step("3/7 DWPose: distil the student (stage 1, then stage 2)")
    reused = _done(s2 / "last")
    if not reused:
        s2_epochs = max(1, args.epochs // 4)
        then_sets = [*data_sets, f"train.epochs={s2_epochs}", f"train.seed={args.seed}"]
        _run([
            "distill", str(configs / "student_s1.yaml"), "--work-dir", str(s1),
            "--teacher", str(teacher / "last"), *sets_for(args.epochs), "--set", f"model.pretrained={pretrained}",
            "--then", str(configs / "student_s2.yaml"), "--then-work-dir", str(s2),
            *[a for s in then_sets for a in ("--set-then", s)], "--resume",
        ], commands)  # fmt: skip
    timings.record("student", time.perf_counter() - t0, reused)

    # 4. evaluate -----------------------------------------------------------------------------------------------
    t0 = _step("4/7 evaluate teacher and student on the validation images, next to the mean-pose baseline")
    models = {"teacher (RTMPose-nano)": (configs / "teacher.yaml", teacher / "last"),
              "student (RTMPose-nano, DWPose s1+s2)": (configs / "student_s2.yaml", s2 / "last")}  # fmt: skip
    metrics: dict[str, dict[str, Any]] = {}
    for name, (cfg, ckpt) in models.items():
        metrics[name] = {}
        # COCO OKS AP per part, and PCK@0.2 of all 133 points: at this size the OKS tolerances (a few pixels for
        # face and hand points) keep the face and hand AP low while PCK shows how far the models got
        for metric, suffix in (("coco", ""), ("pck", "_pck")):
            dest = out / "eval" / f"{ckpt.parent.name}{suffix}.json"
            _run(["eval", str(cfg), "--checkpoint", str(ckpt), "--out", str(dest), "--no-flip-test",
                  "--set", f"eval.metric={metric}", *[a for s in data_sets for a in ("--set", s)]],
                 commands)  # fmt: skip
            metrics[name].update(json.loads(dest.read_text())["metrics"])
    baseline = _mean_pose_baseline(ann["train"], ann["val"])
    verdicts = _verdicts(metrics, baseline)
    for name, verdict in verdicts.items():
        if not verdict["beats"]:
            print(f"warning: {name} does not beat the mean-pose baseline ({verdict['text']}): it has not learned to "
                  "look at the image", file=sys.stderr)  # fmt: skip
    timings.record("eval", time.perf_counter() - t0)

    # 5. export -------------------------------------------------------------------------------------------------
    t0 = _step("5/7 export the student to ONNX")
    onnx_path = out / "student.onnx"
    _run(["export", str(s2 / "last"), "--format", "onnx", "--out", str(onnx_path), "--dynamic-batch"], commands)
    timings.record("export", time.perf_counter() - t0)

    # 6. infer --------------------------------------------------------------------------------------------------
    t0 = _step("6/7 posedistill infer on the sample images (onnxruntime)")
    report = out / "report"
    pred_dir = report / "predictions"
    _run(["infer", str(ann["samples"].parent / "images"), "--model", str(onnx_path), "--out", str(pred_dir),
          "--json", str(report / "predictions.json"), "--format", "coco", "--kpt-thr", str(SAMPLE_KPT_THR),
          "--detector", "none"], commands)  # fmt: skip
    timings.record("infer", time.perf_counter() - t0)

    # 7. report -------------------------------------------------------------------------------------------------
    t0 = _step("7/7 report")
    complexity = _complexity({name: ckpt for name, (_, ckpt) in models.items()})
    _plot_curves({"teacher": teacher, "student stage 1": s1}, {"student stage 2": s2}, report / "curves.png")
    samples = _sample_panels(ann["samples"], report / "predictions.json", report / "samples")
    timings.record("report", time.perf_counter() - t0)
    md = _report_md(args, metrics, baseline, verdicts, complexity, timings, commands, samples, out)
    from posedistill.fileio import atomic_write_text

    atomic_write_text(report / "report.md", md)
    print(md)
    print(f"\nreport: {report / 'report.md'}")
    return 0


# the models' input (w, h), as configs/demo/teacher.yaml sets it; the backbone's BN statistics are taken at it
INPUT_SIZE = (96, 128)
# keypoints drawn on the sample images: the scores of a model trained for minutes are lower than a converged one's
SAMPLE_KPT_THR = 0.3


def _mean_pose_baseline(train_ann: Path, val_ann: Path) -> dict[str, Any]:
    """The mean-pose baseline's COCO and PCK metrics on the validation people (see posedistill.eval.baseline)."""
    from posedistill.data.readers import read_dataset
    from posedistill.eval.baseline import evaluate_mean_pose

    train = read_dataset(train_ann, layout="coco_wholebody")
    val = read_dataset(val_ann, layout="coco_wholebody")
    return {**evaluate_mean_pose(train, val, "coco_wholebody", metric="coco"),
            **evaluate_mean_pose(train, val, "coco_wholebody", metric="pck")}  # fmt: skip


def _verdicts(metrics: dict[str, dict[str, Any]], baseline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per model: does it beat the baseline on PCK@0.2 and body AP (by MARGIN), and by how much, in words."""
    from posedistill.eval.baseline import beats_baseline

    out = {}
    for name, m in metrics.items():
        beats = beats_baseline(m, baseline, "pck@0.2") and beats_baseline(m, baseline, "body/AP")
        d_pck = 100 * (float(m.get("pck@0.2", 0.0)) - float(baseline.get("pck@0.2", 0.0)))
        d_ap = 100 * (float(m.get("body/AP", 0.0)) - float(baseline.get("body/AP", 0.0)))
        out[name] = {"beats": beats, "pck_points": d_pck, "body_ap_points": d_ap,
                     "text": f"PCK@0.2 {d_pck:+.1f} points, body AP {d_ap:+.1f} points"}  # fmt: skip
    return out


def _complexity(ckpts: dict[str, Path]) -> dict[str, tuple[float, float]]:
    """name -> (params M, GFLOPs) of each checkpoint's model at its input size."""
    from posedistill.engine.checkpoint import load_model_from_checkpoint
    from posedistill.models.complexity import count_flops, count_params

    out = {}
    for name, ckpt in ckpts.items():
        model, _ = load_model_from_checkpoint(ckpt, device="cpu")
        w, h = model.build_args["input_size"]
        out[name] = (count_params(model) / 1e6, count_flops(model, (1, 3, h, w)) / 1e9)
    return out


def _train_rows(work_dir: Path) -> list[dict[str, Any]]:
    log = work_dir / "metrics.jsonl"
    if not log.is_file():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("type") == "train"]


def _plot_curves(supervised: dict[str, Path], self_kd: dict[str, Path], path: Path) -> None:
    """Training loss per iteration: the supervised runs (teacher, stage 1) on one axis, stage 2's self-KD loss,
    a different quantity (KL to the stage-1 model's own outputs), on its own axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posedistill.fileio import atomic_write_with

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, runs, title in ((ax1, supervised, "teacher and stage 1: keypoint loss (+ distillation terms)"),
                            (ax2, self_kd, "stage 2: head-aware self-KD loss (KL to the stage-1 model)")):  # fmt: skip
        for name, work_dir in runs.items():
            rows = _train_rows(work_dir)
            if rows:
                ax.plot([r["global_iter"] for r in rows], [r["loss"] for r in rows], label=name, lw=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def _sample_panels(samples_ann: Path, predictions: Path, out_dir: Path) -> list[tuple[str, int]]:
    """For each sample image: the student's skeleton (keypoints with score ≥ SAMPLE_KPT_THR) next to the ground
    truth, written to ``out_dir``; returns (file name, keypoints drawn) per image, in file-name order."""
    import cv2
    import numpy as np

    from posedistill.data.readers import read_dataset
    from posedistill.infer.draw import draw_mmpose

    truth = read_dataset(samples_ann, layout="coco_wholebody")
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for r in json.loads(predictions.read_text()):
        by_image.setdefault(r["image_id"], []).append(r)
    out_dir.mkdir(parents=True, exist_ok=True)
    panels = []
    for inst in sorted(truth, key=lambda i: str(i.image_path)):
        image = cv2.imread(str(inst.image_path))
        if image is None:
            continue
        preds = by_image.get(inst.image_id, [])
        # COCO-WholeBody results split the 133 points by part; concatenated in this order they are the layout's
        parts = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")
        pred_kp = np.array([np.concatenate([p[k] for k in parts]) for p in preds], np.float32).reshape(-1, 133, 3)
        drawn = int((pred_kp[..., 2] >= SAMPLE_KPT_THR).sum())
        left = draw_mmpose(image.copy(), pred_kp[..., :2], pred_kp[..., 2], "coco_wholebody", SAMPLE_KPT_THR)
        vis = (inst.visibility > 0).astype(np.float32)
        right = draw_mmpose(image.copy(), inst.keypoints[None], vis[None], "coco_wholebody", 0.5)
        panel = cv2.resize(np.hstack([left, right]), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        name = Path(str(inst.image_path)).stem + ".png"
        from posedistill.fileio import atomic_write_with

        atomic_write_with(out_dir / name, lambda p, img=panel: cv2.imencode(".png", img)[1].tofile(str(p)))
        panels.append((name, drawn))
    return panels


def _report_md(
    args: argparse.Namespace,
    metrics: dict[str, dict[str, Any]],
    baseline: dict[str, Any],
    verdicts: dict[str, dict[str, Any]],
    complexity: dict[str, tuple[float, float]],
    timings: _Timings,
    commands: list[str],
    samples: list[tuple[str, int]],
    out: Path,
) -> str:
    def ap(m: dict[str, Any], part: str) -> str:
        v = m.get("AP") if part == "wholebody" else m.get(f"{part}/AP")
        return "–" if v is None else f"{100 * v:.1f}"

    def pck(m: dict[str, Any]) -> str:
        return "–" if m.get("pck@0.2") is None else f"{100 * m['pck@0.2']:.1f}"

    lines = [
        "# posedistill demo report",
        "",
        f"Synthetic whole-body people ({args.difficulty}, {args.size}×{args.size} px): {args.images} training and "
        f"{args.val_images} validation images. Both models are RTMPose's SimCC head on the CSPNeXt backbone of the "
        "shipped RTMDet-nano person detector, whose trained weights they start from (from random weights RTMPose "
        "stays on the mean pose at this budget: docs/learning.md); trained on this machine, "
        f"{args.epochs} epoch{'s' * (args.epochs != 1)} (teacher, stage 1) and {max(1, args.epochs // 4)} (stage 2). "
        "On the validation people "
        "with ground-truth boxes, no flip test: PCK@0.2 (%) of all 133 points normalised by the box, and "
        "COCO-WholeBody OKS AP (%) per part. The mean-pose baseline places the training people's mean pose in each "
        "box without looking at the image; a model that does not beat it has learned nothing about the image.",
        "",
        "| model | params (M) | GFLOPs | PCK@0.2 | " + " | ".join(f"{p} AP" for p in PARTS) + " |",
        "|---|---|---|---|" + "---|" * len(PARTS),
        f"| mean-pose baseline (no pixels) | 0 | 0 | {pck(baseline)} | "
        + " | ".join(ap(baseline, p) for p in PARTS)
        + " |",
    ]
    for name, m in metrics.items():
        params, gflops = complexity[name]
        lines.append(f"| {name} | {params:.2f} | {gflops:.3f} | {pck(m)} | " + " | ".join(ap(m, p) for p in PARTS)
                     + " |")  # fmt: skip
    lines.append("")
    for name, v in verdicts.items():
        word = "beats" if v["beats"] else "**does not beat**"
        lines.append(f"- {name} {word} the mean-pose baseline: {v['text']}.")
    lines += [
        "",
        "Wall time per step (s): " + timings.line() + ".",
        "",
        "![training curves](curves.png)",
        "",
        f"The {len(samples)} sample images were generated before any training (the `samples` set, seed "
        f"{args.seed + 2000}, one person each) and are shown whatever the result. Left: the exported student "
        f"(onnxruntime, the whole image as the person box, keypoints with score ≥ {SAMPLE_KPT_THR}); right: the "
        "ground truth.",
        "",
    ]
    for name, drawn in samples:
        lines.append(f"![{name}](samples/{name})  ")
        lines.append(f"{name}: {drawn} of 133 keypoints drawn")
        lines.append("")
    lines += ["The commands this run executed (a step whose model already existed was reused, not re-run):", "",
              "```"]  # fmt: skip
    lines += [c.replace(str(out), str(args.out)) for c in commands] or ["(none: every step was reused)"]
    lines += ["```", "", f"Everything is in `{out}`."]
    return "\n".join(lines) + "\n"
