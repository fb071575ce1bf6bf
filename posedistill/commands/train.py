"""``posedistill train CONFIG [--set k=v ...] [--work-dir DIR] [--resume [CKPT]] [--device D]``.

Multi-GPU / multi-process: ``torchrun --nproc_per_node N -m posedistill train CONFIG`` (gloo on CPU, NCCL on
CUDA; ``train.batch_size`` is per process).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "train (or distil) a pose model from a YAML config; works under torchrun"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="YAML recipe, e.g. configs/rtmpose-t_lspet.yaml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key (YAML-typed value), e.g. --set train.epochs=10 --set optim.lr=1e-3; repeatable",
    )  # fmt: skip
    parser.add_argument("--work-dir", help="checkpoints and logs (default: work_dir of the config, else "
                        "work_dirs/<config name>)")  # fmt: skip
    parser.add_argument(
        "--resume", nargs="?", const=True, default=None, metavar="CKPT",
        help="continue a run exactly: from CKPT (a checkpoint folder with state.pt), or without a value from "
        "<work-dir>/last when it exists",
    )  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: train.device of the config)")


def work_dir_for(cfg: object, config_path: str, override: str | None) -> Path:
    return Path(override or getattr(cfg, "work_dir", None) or Path("work_dirs") / Path(config_path).stem)


def check_work_dir(work_dir: Path, option: str | None) -> Path:
    """The run's folder must be writable before the first epoch starts (UsageError naming ``option``, the one
    that gave it, or the config's work dir)."""
    from posedistill.fileio import check_writable_output

    return check_writable_output(work_dir, "dir", option or "work dir")


def run(args: argparse.Namespace) -> int:
    from posedistill.engine.checkpoint import CheckpointError
    from posedistill.engine.config import ConfigError, load_config
    from posedistill.errors import PoseDataError

    try:
        cfg = load_config(args.config, args.overrides)
        if args.device:
            cfg.train.device = args.device
        work_dir = work_dir_for(cfg, args.config, args.work_dir)
        check_work_dir(work_dir, "--work-dir" if args.work_dir else None)
        return _train(cfg, work_dir, args.resume)
    except (ConfigError, PoseDataError, CheckpointError, FileNotFoundError) as e:
        print(f"posedistill train: error: {e}", file=sys.stderr)
        return 2


def _train(cfg: object, work_dir: Path, resume: str | bool | None) -> int:
    from posedistill.engine import distributed as dist_utils
    from posedistill.engine.builders import (
        build_codec_from_config,
        build_method,
        build_train_set,
        build_val_data,
        checkpoint_meta,
    )
    from posedistill.engine.config import ConfigError
    from posedistill.engine.trainer import Trainer, seed_everything

    try:
        device = dist_utils.resolve_device(cfg.train.device)
    except ValueError as e:
        raise ConfigError(f"{getattr(cfg, 'source', '<config>')}: key 'train.device' (or --device): {e}") from None
    dist_utils.init_distributed(device)
    try:
        seed_everything(cfg.train.seed)  # before building: the random init is the same in every process
        method = build_method(cfg)
        codec = build_codec_from_config(cfg)
        # rank 0 reads first (and generates synthetic data when asked), the others after it. A method with its own
        # kind of data (video clips) provides build_train_set(cfg) / build_val_data(cfg).
        if not dist_utils.is_main_process():
            dist_utils.barrier()
        if hasattr(method, "build_train_set"):
            train_set = method.build_train_set(cfg)
        else:
            train_set = build_train_set(cfg, codec)
        val = method.build_val_data(cfg) if hasattr(method, "build_val_data") else build_val_data(cfg, codec)
        if dist_utils.is_main_process():
            dist_utils.barrier()
        meta = checkpoint_meta(cfg)
        untrained = method.untrained_keypoints(train_set)
        if untrained:
            meta["untrained_keypoints"] = untrained  # scored 0 at inference (PoseEstimator)
            if dist_utils.is_main_process():
                print(f"note: keypoints {untrained} get no training signal (no label, no teacher); the checkpoint "
                      "lists them as untrained_keypoints and inference scores them 0", flush=True)  # fmt: skip
        trainer = Trainer(
            cfg, method, train_set, val.dataset if val else None, work_dir=work_dir, layout=cfg.data.layout,
            meta=meta, val_instances=val.instances if val else None, val_rows=val.rows if val else None,
            val_metric_args=val.metric_args if val else None,
        )  # fmt: skip
        result = trainer.fit(resume=resume)
        if dist_utils.is_main_process():
            best = result["best"]
            if best["metric"] is not None:
                print(f"done: best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}; "
                      f"checkpoints in {work_dir}")  # fmt: skip
            else:
                print(f"done: checkpoints in {work_dir}")
    finally:
        dist_utils.cleanup()
    return 0
