"""``posedistill distill CONFIG [--stage 1|2] [--teacher CKPT] [--then STAGE2_CONFIG] [--set k=v ...]``.

Runs a distillation recipe (``method.type: dwpose``, or any other distillation method) with the same trainer,
checkpoints and options as ``posedistill train``. DWPose in one go::

    posedistill distill configs/dwpose/dwpose_l-t_coco-wholebody-256x192_s1.yaml \\
        --then configs/dwpose/dwpose_t-t_coco-wholebody-256x192_s2.yaml

trains stage 1, then stage 2 with the stage-1 run's ``last`` checkpoint as its teacher; the stage-2 ``best`` /
``last`` checkpoints are the deployable model (teacher backbone + new head). ``posedistill strip`` turns any of
them into a plain checkpoint without training state.
"""

from __future__ import annotations

import argparse
import sys

HELP = "distil a student from a teacher (DWPose stage 1 / 2) from a YAML config; works under torchrun"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="YAML recipe with method.type: dwpose")
    parser.add_argument("--stage", type=int, choices=(1, 2), help="override method.args.stage")
    parser.add_argument("--teacher", metavar="CKPT", help="override method.args.teacher (checkpoint folder or .pth)")
    parser.add_argument(
        "--then", metavar="STAGE2_CONFIG",
        help="after this (stage-1) run, run STAGE2_CONFIG with this run's 'last' checkpoint as its teacher",
    )  # fmt: skip
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key of CONFIG (YAML-typed value), e.g. --set train.epochs=10; repeatable",
    )  # fmt: skip
    parser.add_argument("--set-then", dest="then_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key of STAGE2_CONFIG; repeatable")  # fmt: skip
    parser.add_argument("--work-dir", help="checkpoints and logs of CONFIG (default: work_dir of the config, else "
                        "work_dirs/<config name>)")  # fmt: skip
    parser.add_argument("--then-work-dir", help="work dir of STAGE2_CONFIG (default as for CONFIG)")
    parser.add_argument(
        "--resume", nargs="?", const=True, default=None, metavar="CKPT",
        help="continue CONFIG's run exactly: from CKPT, or without a value from <work-dir>/last when it exists; "
        "with --then, STAGE2_CONFIG's run also continues from its work dir's last checkpoint when there is one",
    )  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: train.device of the config)")


def _load(path: str, overrides: list[str], stage: int | None, teacher: str | None, device: str | None):
    from posedistill.engine.config import ConfigError, load_config

    cfg = load_config(path, overrides)
    # set directly rather than through --set, so that a path is never re-typed as YAML
    if stage is not None:
        cfg.method.args = {**cfg.method.args, "stage": stage}
    if teacher is not None:
        cfg.method.args = {**cfg.method.args, "teacher": str(teacher)}
    if cfg.method.type == "supervised":
        raise ConfigError(f"{path}: key 'method.type': 'supervised' is not a distillation method; use "
                          "posedistill train, or set method.type: dwpose")  # fmt: skip
    if device:
        cfg.train.device = device
    return cfg


def run(args: argparse.Namespace) -> int:
    from posedistill.commands.train import _train, check_work_dir, work_dir_for
    from posedistill.engine import distributed as dist_utils
    from posedistill.engine.checkpoint import CheckpointError
    from posedistill.engine.config import ConfigError
    from posedistill.errors import PoseDataError

    try:
        cfg = _load(args.config, args.overrides, args.stage, args.teacher, args.device)
        work_dir = work_dir_for(cfg, args.config, args.work_dir)
        check_work_dir(work_dir, "--work-dir" if args.work_dir else None)
        if args.then:  # read the second config now, so that a typo fails before hours of stage 1
            stage1 = (work_dir / "last").as_posix()
            then_cfg = _load(args.then, args.then_overrides, None, None, args.device)
            then_option = "--then-work-dir" if args.then_work_dir else None
            check_work_dir(work_dir_for(then_cfg, args.then, args.then_work_dir), then_option)
        rc = _train(cfg, work_dir, args.resume)
        if rc != 0 or not args.then:
            return rc
        cfg2 = _load(args.then, args.then_overrides, None, stage1, args.device)
        if dist_utils.is_main_process():
            print(f"stage 2: {args.then} with teacher {stage1}", flush=True)
        # a resumed chain also resumes an interrupted stage 2 (a finished one is left as it is)
        return _train(cfg2, work_dir_for(cfg2, args.then, args.then_work_dir), True if args.resume else None)
    except (ConfigError, PoseDataError, CheckpointError, FileNotFoundError) as e:
        print(f"posedistill distill: error: {e}", file=sys.stderr)
        return 2
