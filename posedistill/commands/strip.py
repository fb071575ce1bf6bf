"""``posedistill strip CKPT OUT [--which student|teacher|two_stage] [--layout L]``.

Writes a plain deployable checkpoint folder (``weights.safetensors`` + ``meta.json``): the model's weights only,
no teacher, no FeaLoss align conv, no optimizer / EMA / RNG state, so that ``eval``, ``export`` and ``infer``
take it like any other checkpoint. The inputs:

- a posedistill checkpoint folder (e.g. ``work_dirs/<dwpose run>/last``): its ``meta.json`` rebuilds the model;
  only the model's own tensors are kept and ``state.pt`` is left behind;
- an official mmpose / DWPose ``.pth``, distiller checkpoints included: ``--which student`` (stage 1's model),
  ``teacher``, or ``two_stage`` (stage 2's model: ``teacher.backbone`` + ``student.head``, what DWPose's
  ``pth_transfer.py --two_dis`` writes). The layout comes from ``--layout`` or the keypoint count, the codec
  from the input size.

The written checkpoint is reloaded and run on a random crop against the source model; the command fails unless
the outputs are identical.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "write a plain student checkpoint (no teacher, align conv or training state) for eval / export / infer"

# meta.json keys that save_checkpoint writes itself
_OWN_KEYS = ("format", "version", "model", "created", "torch", "training_state")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="checkpoint folder, or an mmpose / DWPose .pth")
    parser.add_argument("out", metavar="OUT", help="checkpoint folder to write (a checkpoint there is replaced)")
    parser.add_argument("--which", default="student", choices=("student", "teacher", "two_stage"),
                        help="model inside a DWPose distiller .pth (default student)")  # fmt: skip
    parser.add_argument("--layout", help="keypoint layout of a .pth (default: from the keypoint count)")


def simcc_sigma(input_size: tuple[int, int]) -> list[float]:
    """RTMPose's SimCC σ (bins) for an input size (w, h): (4.9, 5.66) at 192×256, (6, 6.93) at 288×384, else
    the 192×256 values scaled with the size (σ matters for training targets only; decoding ignores it)."""
    w, h = input_size
    if (w, h) == (288, 384):
        return [6.0, 6.93]
    return [round(4.9 * w / 192, 4), round(5.66 * h / 256, 4)]


def _pth_meta(meta: dict[str, Any], layout_name: str | None, source: str) -> dict[str, Any]:
    from posedistill.data.loader import MEAN_RGB, STD_RGB
    from posedistill.engine.checkpoint import CheckpointError
    from posedistill.layouts import get_layout

    name = layout_name or meta.get("layout")
    if not name:
        raise CheckpointError(f"{source}: cannot tell the layout from the keypoint count; pass --layout")
    layout = get_layout(name)
    k = int(meta["model"]["build_args"]["num_keypoints"])
    if layout.num_keypoints != k:
        raise CheckpointError(f"{source}: the model has {k} keypoints, layout {name!r} has {layout.num_keypoints}")
    w, h = (int(v) for v in meta["input_size"])
    return {
        "layout": layout.name,
        "num_keypoints": k,
        "input_size": [w, h],
        "codec": {"type": "simcc", "sigma": simcc_sigma((w, h)), "split_ratio": 2.0, "input_size": [w, h]},
        "flip_indices": list(layout.flip_indices),
        "mean": list(MEAN_RGB),
        "std": list(STD_RGB),
        "method": "mmpose",
    }


def strip_checkpoint(
    src: str | Path, out: str | Path, which: str = "student", layout: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """Write the plain checkpoint of ``src`` to ``out``; returns (folder, a summary). Raises ``CheckpointError``."""
    import torch

    from posedistill.engine.checkpoint import (
        CheckpointError,
        build_model_from_meta,
        is_mmpose_checkpoint,
        load_model_from_checkpoint,
        load_weights,
        read_meta,
        resolve_checkpoint,
        save_checkpoint,
    )

    if is_mmpose_checkpoint(src):
        model, meta = load_model_from_checkpoint(src, which=which, layout=layout)
        new_meta = _pth_meta(meta, layout, str(src))
        dropped: list[str] = []
    else:
        meta = read_meta(src)
        model = build_model_from_meta(meta)
        state = load_weights(src)
        own = model.state_dict()
        dropped = sorted(k for k in state if k not in own)  # e.g. teacher.* / align.* of a whole-method save
        missing = sorted(k for k in own if k not in state)
        if missing:
            raise CheckpointError(f"{resolve_checkpoint(src)}: weights lack {len(missing)} tensors of the model, "
                                  f"e.g. {missing[:3]}")  # fmt: skip
        model.load_state_dict({k: state[k] for k in own}, strict=True)
        model.eval()
        new_meta = {k: v for k, v in meta.items() if k not in _OWN_KEYS}
    new_meta["stripped_from"] = str(src)
    if which != "student" and is_mmpose_checkpoint(src):
        new_meta["stripped_which"] = which
    folder = save_checkpoint(out, model, new_meta)

    # the written checkpoint must give exactly the source model's outputs
    reloaded, _ = load_model_from_checkpoint(folder)
    w, h = (int(v) for v in model.build_args["input_size"])
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(x), reloaded(x)
    pairs = list(zip(a, b)) if isinstance(a, tuple) else [(a, b)]
    if not all(torch.equal(u, v) for u, v in pairs):
        raise CheckpointError(f"{folder}: the stripped checkpoint does not reproduce {src}'s outputs")
    n_params = sum(p.numel() for p in model.parameters())
    src_size = sum(f.stat().st_size for f in Path(src).rglob("*") if f.is_file()) if Path(src).is_dir() else (
        Path(src).stat().st_size)  # fmt: skip
    out_size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    return folder, {"model": model.build_args, "params": n_params, "dropped": dropped, "source_bytes": src_size,
                    "bytes": out_size}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from posedistill.commands._common import check_checkpoint_output, check_layout
    from posedistill.engine.checkpoint import CheckpointError
    from posedistill.errors import PoseDataError

    check_layout(args.layout)
    check_checkpoint_output(args.out, "OUT")
    try:
        folder, info = strip_checkpoint(args.checkpoint, args.out, args.which, args.layout)
    except (CheckpointError, PoseDataError, FileNotFoundError, KeyError) as e:
        print(f"posedistill strip: error: {e}", file=sys.stderr)
        return 2
    extra = f"; dropped {len(info['dropped'])} tensors not in the model" if info["dropped"] else ""
    print(f"wrote {folder}: {info['model']['name']} ({info['params'] / 1e6:.2f} M parameters), "
          f"{info['bytes'] / 1e6:.1f} MB from {info['source_bytes'] / 1e6:.1f} MB{extra}; outputs verified "
          "identical")  # fmt: skip
    return 0
