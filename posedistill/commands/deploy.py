"""``posedistill deploy CKPT OUT [--branch N|best|best-any] [--config CONFIG] [--set k=v] [--device D]``.

Turns one branch of an OKDHP training checkpoint (the whole multi-branch network: trunk, every branch, the FAU)
into a plain single-branch checkpoint — ``weights.safetensors`` + ``meta.json`` whose model rebuilds with
``build_model(**build_args)`` — that ``eval``, ``export`` and ``infer`` take like any other. The FAU and the other
branches are dropped; the weights are copied unchanged, so the deployed model computes exactly what that branch
computed inside the network.

Choosing the branch:

- ``N``: branch N.
- ``best`` (default): the branch with the best validation metric (the trainer's ``best_metric`` rule: COCO AP,
  else PCKh / PCK) among the branches with branch 0's architecture. In the balanced setting that is every branch
  (the official code's choice); in the unbalanced one, where the auxiliary branches are deeper or wider than the
  deployment target, only branch 0 and its twins.
- ``best-any``: the same among every deployable branch.

The metrics are computed here, on the ``data.val`` sources of the checkpoint's stored config (or of ``--config``),
with each candidate deployed first, so the number printed is the deployed model's own. They go into the new
checkpoint's ``meta.json`` (``okdhp.branch_metrics``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "turn one branch of an OKDHP multi-branch checkpoint into a plain single-branch checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="OKDHP training checkpoint folder (e.g. work_dirs/x/best)")
    parser.add_argument("out", metavar="OUT", help="folder of the plain checkpoint to write")
    parser.add_argument(
        "--branch", default="best", metavar="N|best|best-any",
        help="branch index, or pick by validation metric: best (among branch 0's architecture, default) or best-any",
    )  # fmt: skip
    parser.add_argument("--config", help="YAML whose data.val is used to pick the best branch (default: the config "
                        "stored in the checkpoint)")  # fmt: skip
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key for the validation, e.g. --set eval.batch_size=64")  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda or cuda:N for the validation (default: train.device)")
    parser.add_argument(
        "--flip-test", action=argparse.BooleanOptionalAction, default=None,
        help="flip test when scoring branches (default: eval.flip_test of the config)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from posedistill.engine.checkpoint import CheckpointError
    from posedistill.engine.config import ConfigError
    from posedistill.errors import PoseDataError

    try:
        return _deploy(args)
    except (ConfigError, PoseDataError, CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"posedistill deploy: error: {e}", file=sys.stderr)
        return 2


def load_multibranch(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """(network in eval mode, meta) of an OKDHP checkpoint; CheckpointError for anything else."""
    from posedistill.engine.checkpoint import CheckpointError, load_weights, read_meta, resolve_checkpoint
    from posedistill.models.multibranch import build_multibranch

    meta = read_meta(path)
    build_args = dict(meta.get("model", {}).get("build_args", {}))
    if build_args.get("name") != "multibranch":
        raise CheckpointError(
            f"{resolve_checkpoint(path)}: not a multi-branch (OKDHP) checkpoint: its model is "
            f"{build_args.get('name')!r}; it is already a plain checkpoint"
        )
    net = build_multibranch(**build_args)
    missing, unexpected = net.load_state_dict(load_weights(path), strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{resolve_checkpoint(path)}: weights do not fit the multi-branch network: missing {sorted(missing)[:5]},"
            f" unexpected {sorted(unexpected)[:5]}"
        )
    return net.eval(), meta


def _set_key(data: dict[str, Any], key: str, value: Any) -> None:
    node: Any = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value


def _val_config(args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    from posedistill.engine.checkpoint import resolve_checkpoint
    from posedistill.engine.config import ConfigError, config_from_dict, load_config, parse_override

    if args.config:
        cfg = load_config(args.config, args.overrides)
    else:
        if not isinstance(meta.get("config"), dict):
            raise ConfigError(f"{args.checkpoint}: the checkpoint stores no config; pass --config CONFIG")
        data = dict(meta["config"])
        for text in args.overrides:
            key, value = parse_override(text)
            try:
                _set_key(data, key, value)
            except (KeyError, IndexError, ValueError, TypeError):
                raise ConfigError(f"--set {text}: no such key in the stored config") from None
        cfg = config_from_dict(data, str(resolve_checkpoint(args.checkpoint) / "meta.json"))
    if args.device:
        cfg.train.device = args.device
    return cfg


def metric_key(metrics: dict[str, float], wanted: str = "auto") -> str:
    """The metric that picks the best branch: ``wanted`` or, for auto, COCO AP, else PCKh@ / PCK@ (trainer rule)."""
    if wanted != "auto":
        if wanted not in metrics:
            raise ValueError(f"best_metric {wanted!r} is not among the validation metrics {sorted(metrics)}")
        return wanted
    for prefix in ("AP", "pckh@", "pck@"):
        for k in metrics:
            if (k == prefix or (prefix.endswith("@") and k.startswith(prefix))) and "/" not in k:
                return k
    raise ValueError(f"no AP / PCK metric among {sorted(metrics)}; set train.best_metric")


def score_branches(net: Any, branches: list[int], cfg: Any, flip_test: bool | None = None) -> dict[int, dict]:
    """Validation metrics of each deployed branch on ``cfg``'s ``data.val``."""
    from posedistill.distill.supervised import SupervisedMethod
    from posedistill.engine import distributed as dist_utils
    from posedistill.engine.builders import build_codec_from_config, build_val_data
    from posedistill.engine.config import ConfigError
    from posedistill.engine.evaluation import check_metric, evaluate, scalar_metrics

    device = dist_utils.resolve_device(cfg.train.device)
    codec = build_codec_from_config(cfg)
    val = build_val_data(cfg, codec)
    if val is None:
        raise ConfigError(f"{getattr(cfg, 'source', '<config>')}: key 'data.val': no validation source to pick the "
                          "best branch with; pass --branch N or --config CONFIG")  # fmt: skip
    check_metric(cfg.eval.metric, val.instances, getattr(cfg, "source", "<config>"))
    flip = cfg.eval.flip_test if flip_test is None else flip_test
    out = {}
    for b in branches:
        method = SupervisedMethod(net.branch_model(b).eval(), codec, cfg.data.layout).to(device)
        result, _, _ = evaluate(
            method, val.dataset, cfg.data.layout, batch_size=cfg.eval.batch_size or cfg.train.batch_size,
            device=device, num_workers=cfg.train.num_workers, flip_test=flip, metric=cfg.eval.metric,
            metric_args={**val.metric_args, **cfg.eval.args}, instances=val.instances, rows=val.rows,
        )  # fmt: skip
        out[b] = scalar_metrics(result)
    return out


def _deploy(args: argparse.Namespace) -> int:
    from posedistill.commands._common import check_checkpoint_output
    from posedistill.engine.checkpoint import resolve_checkpoint, save_checkpoint
    from posedistill.engine.trainer import LOWER_IS_BETTER

    check_checkpoint_output(args.out, "OUT")
    net, meta = load_multibranch(args.checkpoint)
    n = net.num_branches
    deployable = [b for b in range(n) if net.deployable[b]]
    branch_metrics: dict[int, dict] = {}
    key = None
    if args.branch in ("best", "best-any"):
        candidates = [b for b in deployable if args.branch == "best-any" or net.branch_specs[b] == net.branch_specs[0]]
        if not candidates:
            raise ValueError(f"{args.checkpoint}: no deployable branch; reasons: {net.not_deployable_reason}")
        if len(candidates) == 1:
            branch, selection = candidates[0], f"{args.branch}: the only candidate"
        else:
            cfg = _val_config(args, meta)
            print(f"scoring branches {candidates} on the validation data of {getattr(cfg, 'source', '<config>')}")
            branch_metrics = score_branches(net, candidates, cfg, args.flip_test)
            key = metric_key(branch_metrics[candidates[0]], cfg.train.best_metric)
            lower = key.split("/")[-1].lower() in LOWER_IS_BETTER
            values = {b: m[key] for b, m in branch_metrics.items()}
            branch = (min if lower else max)(values, key=values.__getitem__)
            for b, v in values.items():
                print(f"  branch {b}: {key} {v:.4f}{'  <- deployed' if b == branch else ''}")
            selection = f"{args.branch} by {key}"
    else:
        try:
            branch = int(args.branch)
        except ValueError:
            raise ValueError(f"--branch must be an integer, best or best-any, got {args.branch!r}") from None
        if not 0 <= branch < n:
            raise ValueError(f"--branch {branch}: the checkpoint has branches 0..{n - 1}")
        selection = "given"
    model = net.branch_model(branch).eval()

    spec = dict(net.branch_specs[branch])
    config = dict(meta.get("config") or {})
    if config:
        config["model"] = {
            **config.get("model", {}), "name": spec.pop("name"), "args": spec, "pretrained": None,
        }  # fmt: skip
        config["method"] = {"type": "supervised", "args": {}}
    new_meta = {k: v for k, v in meta.items() if k not in ("format", "version", "model", "created", "torch",
                                                            "training_state", "config")}  # fmt: skip
    new_meta["metrics"] = branch_metrics.get(branch, {})
    new_meta["config"] = config
    new_meta["okdhp"] = {
        "source": str(resolve_checkpoint(args.checkpoint)),
        "branch": branch,
        "selection": selection,
        "metric": key,
        "branch_metrics": {str(b): m for b, m in branch_metrics.items()},
        "num_branches": n,
        "branch_specs": net.branch_specs,
        "training_metrics": meta.get("metrics", {}),
    }
    path = save_checkpoint(args.out, model, new_meta)
    params = sum(p.numel() for p in model.parameters())
    print(f"deployed branch {branch} ({model.build_args['name']}, {params / 1e6:.2f} M params) to {path}")
    return 0
