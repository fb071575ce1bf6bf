"""``posedistill demo``: the main job on its built-in default, end to end on a fresh machine, no download.

1. generate synthetic whole-body people (COCO-WholeBody, 133 keypoints) for training, validation and samples;
2. train a small RTMPose-s teacher on them;
3. DWPose-distil an RTMPose-t student: stage 1 (feature + logit distillation) then stage 2 (head-aware self-KD);
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
    parser.add_argument("--epochs", type=int, default=8, help="teacher and stage-1 epochs (stage 2: a quarter)")
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


def _run(argv: list[str]) -> None:
    from posedistill.cli import main

    print("$ posedistill " + " ".join(argv), flush=True)
    code = main(argv)
    if code:
        raise SystemExit(f"posedistill demo: step failed (exit {code}): posedistill {' '.join(argv)}")


def _done(ckpt: Path) -> bool:
    return (ckpt / "weights.safetensors").is_file() and (ckpt / "meta.json").is_file()


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
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. data ---------------------------------------------------------------------------------------------------
    from posedistill.data.synthetic import generate_dataset

    t0 = _step("1/7 synthetic whole-body data")
    size = (args.size, args.size)
    sets = {
        "train": dict(num_images=args.images, people=(1, 2), seed=args.seed),
        "val": dict(num_images=args.val_images, people=(1, 2), seed=args.seed + 1000),
        "samples": dict(num_images=6, people=(1, 1), seed=args.seed + 2000),  # one person: the frame is the box
    }
    ann: dict[str, Path] = {}
    for name, kw in sets.items():
        ann[name] = out / "data" / name / "annotations.json"
        if ann[name].is_file():
            print(f"reusing {ann[name]}")
            continue
        generate_dataset(out / "data" / name, size=size, difficulty=args.difficulty,
                         preview=name == "train", **kw)  # fmt: skip
    timings["data"] = time.perf_counter() - t0

    data_sets = [f"data.train.0.path={ann['train']}", f"data.val.0.path={ann['val']}"]

    def sets_for(epochs: int, seed: int = args.seed) -> list[str]:
        out_sets = []
        for s in [*data_sets, f"train.epochs={epochs}", f"train.aug_switch_epoch={max(1, epochs - 1)}",
                  f"schedule.cosine_begin_epoch={max(1, epochs // 2)}", f"train.seed={seed}"]:  # fmt: skip
            out_sets += ["--set", s]
        return out_sets

    # 2. teacher ------------------------------------------------------------------------------------------------
    teacher = out / "teacher"
    t0 = _step("2/7 train the RTMPose-s teacher")
    if not _done(teacher / "last"):
        _run(["train", str(configs / "teacher.yaml"), "--work-dir", str(teacher), *sets_for(args.epochs)])
    timings["teacher"] = time.perf_counter() - t0

    # 3. DWPose stage 1 + 2 -------------------------------------------------------------------------------------
    s1, s2 = out / "student_s1", out / "student_s2"
    t0 = _step("3/7 DWPose: distil the RTMPose-t student (stage 1, then stage 2)")
    if not _done(s2 / "last"):
        s2_epochs = max(1, args.epochs // 4)
        then_sets = [*data_sets, f"train.epochs={s2_epochs}", f"train.seed={args.seed}"]
        _run([
            "distill", str(configs / "student_s1.yaml"), "--work-dir", str(s1),
            "--teacher", str(teacher / "last"), *sets_for(args.epochs),
            "--then", str(configs / "student_s2.yaml"), "--then-work-dir", str(s2),
            *[a for s in then_sets for a in ("--set-then", s)],
        ])  # fmt: skip
    timings["student"] = time.perf_counter() - t0

    # 4. evaluate -----------------------------------------------------------------------------------------------
    t0 = _step("4/7 evaluate teacher and student on the validation images")
    models = {"teacher (RTMPose-s)": (configs / "teacher.yaml", teacher / "last"),
              "student (RTMPose-t, DWPose s1+s2)": (configs / "student_s2.yaml", s2 / "last")}  # fmt: skip
    metrics: dict[str, dict[str, Any]] = {}
    for name, (cfg, ckpt) in models.items():
        metrics[name] = {}
        # COCO OKS AP per part, and PCK@0.2 of all 133 points: at this size the OKS tolerances (a few pixels for
        # face and hand points) leave AP near 0 while PCK shows how far the models got
        for metric, suffix in (("coco", ""), ("pck", "_pck")):
            dest = out / "eval" / f"{ckpt.parent.name}{suffix}.json"
            _run(["eval", str(cfg), "--checkpoint", str(ckpt), "--out", str(dest), "--no-flip-test",
                  "--set", f"eval.metric={metric}", *[a for s in data_sets for a in ("--set", s)]])  # fmt: skip
            metrics[name].update(json.loads(dest.read_text())["metrics"])
    timings["eval"] = time.perf_counter() - t0

    # 5. export -------------------------------------------------------------------------------------------------
    t0 = _step("5/7 export the student to ONNX")
    onnx_path = out / "student.onnx"
    _run(["export", str(s2 / "last"), "--format", "onnx", "--out", str(onnx_path), "--dynamic-batch"])
    timings["export"] = time.perf_counter() - t0

    # 6. infer --------------------------------------------------------------------------------------------------
    t0 = _step("6/7 posedistill infer on sample images (onnxruntime)")
    report = out / "report"
    pred_dir = report / "predictions"
    _run(["infer", str(ann["samples"].parent / "images"), "--model", str(onnx_path), "--out", str(pred_dir),
          "--json", str(report / "predictions.json"), "--format", "coco", "--kpt-thr", "0.3"])  # fmt: skip
    timings["infer"] = time.perf_counter() - t0

    # 7. report -------------------------------------------------------------------------------------------------
    t0 = _step("7/7 report")
    complexity = _complexity({name: ckpt for name, (_, ckpt) in models.items()})
    _plot_curves({"teacher": teacher, "student stage 1": s1, "student stage 2": s2}, report / "curves.png")
    timings["report"] = time.perf_counter() - t0
    md = _report_md(args, metrics, complexity, timings, time.perf_counter() - t_start, out, pred_dir)
    from posedistill.fileio import atomic_write_text

    atomic_write_text(report / "report.md", md)
    print(md)
    print(f"\nreport: {report / 'report.md'}")
    return 0


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


def _plot_curves(runs: dict[str, Path], path: Path) -> None:
    """Training loss per iteration of every run (from its metrics.jsonl)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posedistill.fileio import atomic_write_with

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, work_dir in runs.items():
        log = work_dir / "metrics.jsonl"
        if not log.is_file():
            continue
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get("type") == "train"]
        if rows:
            ax.plot([r["global_iter"] for r in rows], [r["loss"] for r in rows], label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (sum of terms)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def _report_md(
    args: argparse.Namespace,
    metrics: dict[str, dict[str, Any]],
    complexity: dict[str, tuple[float, float]],
    timings: dict[str, float],
    total: float,
    out: Path,
    pred_dir: Path,
) -> str:
    def ap(m: dict[str, Any], part: str) -> str:
        v = m.get("AP") if part == "wholebody" else m.get(f"{part}/AP")
        return "–" if v is None else f"{100 * v:.1f}"

    lines = [
        "# posedistill demo report",
        "",
        f"Synthetic whole-body people ({args.difficulty}, {args.size}×{args.size} px): {args.images} training and "
        f"{args.val_images} validation images; models at 128×96 input, {args.epochs} epochs (teacher, stage 1) and "
        f"{max(1, args.epochs // 4)} (stage 2). On the validation people with ground-truth boxes, no flip test: "
        "COCO-WholeBody OKS AP (%) per part, and PCK@0.2 (%) of all 133 points normalised by the box. These are "
        "minutes of CPU training from random weights: PCK shows what they learned; OKS AP, whose tolerance for a face "
        "or hand point is a few pixels here, stays near 0 until much longer training.",
        "",
        "| model | params (M) | GFLOPs | PCK@0.2 | " + " | ".join(f"{p} AP" for p in PARTS) + " |",
        "|---|---|---|---|" + "---|" * len(PARTS),
    ]
    for name, m in metrics.items():
        params, gflops = complexity[name]
        pck = "–" if m.get("pck@0.2") is None else f"{100 * m['pck@0.2']:.1f}"
        lines.append(f"| {name} | {params:.2f} | {gflops:.3f} | {pck} | " + " | ".join(ap(m, p) for p in PARTS)
                     + " |")  # fmt: skip
    lines += [
        "",
        "Wall time per step (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) + f"; total {total:.0f}.",
        "",
        "![training curves](curves.png)",
        "",
        "Sample predictions of the exported student (onnxruntime, keypoints with score ≥ 0.3):",
        "",
    ]
    for img in sorted(pred_dir.glob("*.jpg"))[:6]:
        lines.append(f"![{img.name}](predictions/{img.name})")
    lines += ["", f"Everything is in `{out}`; every step is a `posedistill` command printed above (`$ ...`)."]
    return "\n".join(lines) + "\n"
