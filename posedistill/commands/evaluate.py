"""``posedistill eval CONFIG --checkpoint CKPT [--dump results.json] [--flip-test]``.

Evaluates a checkpoint (a posedistill checkpoint folder, or an official mmpose / DWPose ``.pth``) on the config's
``data.val`` sources: COCO AP for COCO-style data (per part for COCO-WholeBody), PCK for LSP / MPII-style / JHMDB
(PCKh when the instances carry head boxes). Prints the headline numbers (and the per-part table of COCO-WholeBody)
and writes every number to a JSON file, the per-joint values included (printed too with ``--per-joint``).

Next to the model's numbers it prints those of the mean-pose baseline (``posedistill.eval.baseline``: the mean
box-relative pose of the ``data.train`` people placed in every evaluated box, scored with the same metric on the
same people), stores them under ``baseline`` in the JSON file, and warns (stderr) when the model does not beat it
on the headline metric (COCO AP, else PCKh / PCK) by ``MARGIN``. Skipped, with a note, when ``data.train`` cannot
be read (a synthetic source is not generated for it) or with ``--no-baseline``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "evaluate a checkpoint on the validation data of a config (COCO AP, whole-body parts, PCK)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="YAML recipe whose data.val sources are evaluated")
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="checkpoint folder (e.g. work_dirs/x/best) or an mmpose / DWPose .pth")  # fmt: skip
    parser.add_argument("--dump", metavar="RESULTS.json", help="also write the predictions as COCO keypoint results")
    parser.add_argument(
        "--flip-test", action=argparse.BooleanOptionalAction, default=None,
        help="average with the horizontally flipped crop (default: eval.flip_test of the config)",
    )  # fmt: skip
    parser.add_argument("--out", metavar="METRICS.json",
                        help="where the metrics go (default: <work dir>/eval/<checkpoint name>.json)")  # fmt: skip
    parser.add_argument("--which", default="student", choices=("student", "teacher", "two_stage"),
                        help="model inside a DWPose distiller .pth (default student)")  # fmt: skip
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set eval.batch_size=64; repeatable")  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: train.device of the config)")
    parser.add_argument("--work-dir", help="default folder of the metrics file (see --out)")
    parser.add_argument("--per-joint", action="store_true",
                        help="also print the per-joint tables (PCK metrics; always in the JSON file)")  # fmt: skip
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not fit and score the mean-pose baseline (data.train) next to the model")  # fmt: skip


def format_result(result: dict[str, Any], layout_name: str, per_joint: bool = True) -> str:
    """A readable table: COCO stats per part, or PCK per joint (``per_joint``; else nothing)."""
    from posedistill.layouts import get_layout

    if result.get("metric") == "coco":
        from posedistill.eval.coco import format_table

        parts: dict[str, dict[str, float]] = {}
        for key, value in result.items():
            if "/" in key and isinstance(value, (int, float)):
                part, stat = key.split("/", 1)
                parts.setdefault(part, {})[stat] = float(value)
        return format_table(parts) if parts else ""
    if not per_joint:
        return ""
    layout = get_layout(layout_name)
    lines = []
    for key, value in result.items():
        if key.endswith("/per_joint"):
            name = key[: -len("/per_joint")]
            lines.append(f"{'joint':<20} {name:>10}")
            lines.append("-" * 31)
            for joint, v in zip(layout.keypoint_names, value):
                lines.append(f"{joint:<20} {v:>10.4f}" if v >= 0 else f"{joint:<20} {'-':>10}")
            lines.append(f"{'mean':<20} {result[name]:>10.4f}")
            lines.append("")
    return "\n".join(lines).rstrip()


def run(args: argparse.Namespace) -> int:
    from posedistill.engine.checkpoint import CheckpointError
    from posedistill.engine.config import ConfigError, load_config
    from posedistill.errors import PoseDataError

    try:
        cfg = load_config(args.config, args.overrides)
        if args.device:
            cfg.train.device = args.device
        return _evaluate(cfg, args)
    except (ConfigError, PoseDataError, CheckpointError, FileNotFoundError) as e:
        print(f"posedistill eval: error: {e}", file=sys.stderr)
        return 2


def mean_pose_baseline(cfg: Any, instances: list, metric: str, metric_args: dict[str, Any]) -> dict[str, Any] | None:
    """The mean-pose baseline of ``cfg``'s ``data.train`` people scored on ``instances`` (``metric`` and
    ``metric_args`` as the model was): ``{metrics, key, margin, fitted_on, num_train_instances}``; None, with a
    note, when the training data cannot be read. A missing synthetic source is not generated for it."""
    from posedistill.data.readers import training_instances
    from posedistill.engine.builders import read_sources
    from posedistill.engine.config import ConfigError
    from posedistill.errors import PoseDataError
    from posedistill.eval.baseline import MARGIN, evaluate_mean_pose, headline_key

    def skip(why: str) -> None:
        print(f"note: the mean-pose baseline is skipped: {why}")

    if not cfg.data.train:
        return skip("the config has no data.train source to fit it on")
    missing = [str(src.path) for src in cfg.data.train if not Path(src.path).exists()]
    if missing:
        return skip(f"data.train source {missing[0]} not found")
    try:
        train = training_instances(read_sources(cfg, "train"))
        metrics = evaluate_mean_pose(train, instances, cfg.data.layout, metric=metric, **metric_args)
    except (ConfigError, PoseDataError, OSError, ValueError) as e:
        return skip(f"data.train: {e}")
    fitted_on = [str(src.path) + (f" [{src.indices}]" if src.indices is not None else "") for src in cfg.data.train]
    return {"metrics": metrics, "key": headline_key(metrics), "margin": MARGIN, "fitted_on": fitted_on,
            "num_train_instances": len(train)}  # fmt: skip


def _metrics_path(cfg: Any, args: argparse.Namespace) -> Path:
    """--out, else <work dir>/eval/<checkpoint name>.json."""
    if args.out:
        return Path(args.out)
    ckpt_name = Path(args.checkpoint).stem if Path(args.checkpoint).is_file() else Path(args.checkpoint).name
    work_dir = Path(args.work_dir or cfg.work_dir or Path("work_dirs") / Path(args.config).stem)
    return work_dir / "eval" / f"{ckpt_name}.json"


def _evaluate(cfg: Any, args: argparse.Namespace) -> int:
    import numpy as np

    from posedistill.distill.supervised import SupervisedMethod
    from posedistill.engine import distributed as dist_utils
    from posedistill.engine.builders import build_codec_from_config, build_val_data
    from posedistill.engine.checkpoint import load_model_from_checkpoint
    from posedistill.engine.config import ConfigError
    from posedistill.engine.evaluation import check_metric, evaluate
    from posedistill.eval.baseline import NAME as BASELINE_NAME
    from posedistill.eval.baseline import baseline_warning, beats_baseline, format_baseline
    from posedistill.fileio import atomic_write_json, check_writable_output

    where = getattr(cfg, "source", args.config)
    try:
        device = dist_utils.resolve_device(cfg.train.device)
    except ValueError as e:
        raise ConfigError(f"{getattr(cfg, 'source', '<config>')}: key 'train.device' (or --device): {e}") from None
    out = _metrics_path(cfg, args)
    # the outputs are checked before the model loads and the evaluation runs
    check_writable_output(out, "file", "--out" if args.out else "the metrics file (--out)")
    if args.dump:
        check_writable_output(args.dump, "file", "--dump")
    model, meta = load_model_from_checkpoint(args.checkpoint, device=device, which=args.which)
    ckpt_size = [int(v) for v in model.build_args["input_size"]]
    if list(cfg.input_size) != ckpt_size:
        print(f"note: the checkpoint's input size {ckpt_size} (w, h) replaces model.input_size {list(cfg.input_size)}")
        cfg.model.input_size = ckpt_size
        if meta.get("codec"):  # the codec's other sizes (heatmap_size, sigma) belong to that input size too
            cfg.codec = {k: v for k, v in meta["codec"].items() if k != "input_size"}
    layout = cfg.data.layout
    if meta.get("layout") and meta["layout"] != layout:
        raise ConfigError(f"{where}: key 'data.layout' is {layout!r} but the checkpoint was trained on "
                          f"{meta['layout']!r}")  # fmt: skip
    if meta.get("codec") and meta["codec"].get("type") != cfg.codec.get("type"):
        raise ConfigError(f"{where}: key 'codec.type' is {cfg.codec.get('type')!r} but the checkpoint uses "
                          f"{meta['codec'].get('type')!r}")  # fmt: skip
    codec = build_codec_from_config(cfg)
    val = build_val_data(cfg, codec)
    if val is None:
        raise ConfigError(f"{where}: key 'data.val': no validation source to evaluate on")
    check_metric(cfg.eval.metric, val.instances, where)
    method = SupervisedMethod(model, codec, layout).to(device)
    flip = cfg.eval.flip_test if args.flip_test is None else args.flip_test
    print(f"evaluating {args.checkpoint} on {len(val.dataset)} instances ({layout}, flip test {flip})")
    metric_args = {**val.metric_args, **cfg.eval.args}
    result, keypoints, scores = evaluate(
        method, val.dataset, layout, batch_size=cfg.eval.batch_size or cfg.train.batch_size, device=device,
        num_workers=cfg.train.num_workers, flip_test=flip, metric=cfg.eval.metric, metric_args=metric_args,
        progress=True, instances=val.instances, rows=val.rows,
    )  # fmt: skip
    baseline = None
    if args.no_baseline:
        print("note: the mean-pose baseline is skipped (--no-baseline)")
    else:  # the same people as the model (unreadable images left out), metric and metric arguments
        skipped = set(result.get("skipped_instances", []))
        scored = [inst for i, inst in enumerate(val.instances) if i not in skipped]
        args_used = {"input_size": tuple(val.dataset.input_size), **metric_args}  # as evaluate() scores
        baseline = mean_pose_baseline(cfg, scored, result["metric"], args_used)
    table = format_result(result, layout, per_joint=args.per_joint)
    if table:
        print(table)
    if baseline and table and sum(k.endswith("/AP") for k in baseline["metrics"]) > 1:  # COCO-WholeBody parts
        print(f"\n{BASELINE_NAME}, per part:")
        print(format_result(baseline["metrics"], layout, per_joint=False))
    headline = {k: v for k, v in result.items() if "/" not in k and isinstance(v, (int, float, str))}
    print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in headline.items()))
    if baseline:
        print(format_baseline(baseline["metrics"], f"{BASELINE_NAME} ({baseline['num_train_instances']} "
                                                   "training people)"))  # fmt: skip
        key = baseline["key"]
        baseline["beaten"] = beats_baseline(result, baseline["metrics"], key, baseline["margin"]) if key else None
        warning = baseline_warning(result, baseline["metrics"], key, str(args.checkpoint), baseline["margin"])
        if warning:
            print(warning, file=sys.stderr)

    payload = {
        "config": str(args.config), "checkpoint": str(args.checkpoint), "flip_test": flip, "layout": layout,
        "num_instances": len(val.dataset), "metrics": result, "baseline": baseline,
    }  # fmt: skip
    atomic_write_json(out, payload, indent=2)
    print(f"metrics written to {out}")
    if args.dump:
        from posedistill.eval.coco import write_coco_results
        from posedistill.eval.nms import rescore_instances

        skipped = set(result.get("skipped_instances", []))  # unreadable images: no prediction to dump
        rows = np.asarray([r for r in val.rows if int(r) not in skipped], dtype=np.int64)
        insts = [val.instances[i] for i in rows]
        box_scores = np.array([float(inst.extra.get("bbox_score", 1.0)) for inst in insts])
        inst_scores = rescore_instances(box_scores, scores[rows], 0.2)
        write_coco_results(args.dump, [inst.image_id for inst in insts], keypoints[rows], scores[rows], inst_scores,
                           layout)  # fmt: skip
        print(f"predictions written to {args.dump}")
    return 0
