"""``posedistill export CKPT --format onnx --out model.onnx [--dynamic-batch] [--opset N]``.

Writes an ONNX file with the I/O contract of the official RTMPose / DWPose ONNX files (input ``input`` N×3×H×W,
outputs ``simcc_x`` / ``simcc_y``, or ``heatmaps`` for heatmap models) and the layout, input size and codec
embedded as metadata, so ``posedistill infer`` and ``PoseEstimator`` run it without torch. Then checks it:
onnxruntime against PyTorch on a random batch (max difference relative to the largest PyTorch output).

``--int8 --calib IMAGES_OR_COCO_JSON [--calib-count 300]`` writes a statically quantized int8 file instead
(:mod:`posedistill.infer.quantize`: QDQ, uint8 activations, per-channel 7-bit int8 weights, the SimCC head's
non-convolutional tail in float32), calibrated on ``--calib-count`` person crops made with the runtime's own
top-down preprocessing: the ground-truth person boxes of a COCO json, or the default detector's boxes on a folder
of images (the whole image where it finds nobody). Same I/O contract and metadata as the float32 file, plus an
``int8`` entry; checked against PyTorch in float32 first, then int8 against float32 on the calibration crops.

A DKD video checkpoint (``method.type: dkd``) exports as two graphs: ``--out`` runs an initialisation frame
(``input`` → ``heatmaps``, ``features``) and ``<out stem>_step.onnx`` a tracked frame (``input``, ``prev_features``,
``prev_heatmaps`` → ``heatmaps``, ``features``); both are checked.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

HELP = "export a checkpoint (posedistill folder or mmpose .pth) to ONNX for the torch-free runtime"

CALIB_COUNT = 300  # posedistill.infer.quantize.CALIB_COUNT, without importing onnxruntime for --help
PARITY_TOLERANCE = 1e-4
FP16_PARITY_TOLERANCE = 1e-3
# the opsets torch's TorchScript exporter writes (torch.onnx._constants.ONNX_MIN_OPSET / ONNX_MAX_OPSET of torch
# 2.13; checked against the installed torch in run()): below 7 it stops midway with an ONNX ValidationError
MIN_OPSET, MAX_OPSET = 7, 23


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="checkpoint folder (e.g. work_dirs/x/best) or mmpose .pth")
    parser.add_argument("--format", default="onnx", choices=("onnx",), help="export format (onnx)")
    parser.add_argument("--out", required=True, metavar="MODEL.onnx", help="file to write")
    parser.add_argument("--dynamic-batch", action="store_true",
                        help="symbolic batch axis, so all person crops of a frame run in one call")  # fmt: skip
    parser.add_argument("--opset", type=int, default=17,
                        help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default 17)")  # fmt: skip
    parser.add_argument("--layout", help="keypoint layout when the checkpoint does not say (e.g. halpe26)")
    parser.add_argument("--which", default="student", choices=("student", "teacher", "two_stage"),
                        help="model inside a DWPose distiller .pth (default student)")  # fmt: skip
    parser.add_argument(
        "--fp16-weights",
        action="store_true",
        help="store the weights as float16 (half the file; computed in float32 at run time)",
    )
    parser.add_argument("--int8", action="store_true",
                        help="static int8 quantization (QDQ, for CPUs; needs --calib); not for DKD models")  # fmt: skip
    parser.add_argument("--calib", metavar="IMAGES_OR_COCO_JSON",
                        help="--int8 calibration data: a COCO json (its ground-truth person boxes) or a folder of "
                        "images (the default detector's person boxes)")  # fmt: skip
    parser.add_argument("--calib-count", type=int, default=None, metavar="N",
                        help=f"--int8 calibration crops, spread over --calib (default {CALIB_COUNT})")  # fmt: skip
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch parity check")


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("posedistill export: error: exporting needs torch; pip install 'posedistill[train]'", file=sys.stderr)
        return 2
    from posedistill.commands._common import check_layout
    from posedistill.engine.checkpoint import CheckpointError, load_model_from_checkpoint
    from posedistill.errors import PoseDataError
    from posedistill.fileio import check_writable_output
    from posedistill.infer.export import export_onnx, is_dkd_model

    _check_opset(args.opset)
    _check_int8_options(args)
    check_layout(args.layout)
    check_writable_output(args.out, "file", "--out")
    calib = None
    try:
        if args.int8:  # the calibration boxes before the model: a bad --calib fails in a second
            from posedistill.infer.quantize import calibration_boxes

            calib = calibration_boxes(args.calib, args.calib_count or CALIB_COUNT)
        model, meta = load_model_from_checkpoint(args.checkpoint, which=args.which, layout=args.layout)
        if is_dkd_model(model):
            if args.int8:
                raise ValueError(f"{args.checkpoint} is a DKD video checkpoint (two graphs with state between "
                                 "frames); --int8 quantizes single-graph pose models only: export it without "
                                 "--int8")  # fmt: skip
            return _export_dkd(args, model, meta)
        with tempfile.TemporaryDirectory(prefix="posedistill-export-") as tmp:
            target = Path(tmp) / "fp32.onnx" if args.int8 else args.out
            out = export_onnx(model, target, meta=meta, layout=args.layout, dynamic_batch=args.dynamic_batch,
                              opset=args.opset, fp16_weights=args.fp16_weights)  # fmt: skip
            if not args.int8:
                print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, opset {args.opset}, "
                      f"batch {'dynamic' if args.dynamic_batch else 1})")  # fmt: skip
                return _check_parity(args, model, out)
            status = _check_parity(args, model, out)
            if status:
                return status
            return _quantize(args, out, calib)
    except (CheckpointError, PoseDataError, ValueError, KeyError) as e:
        print(f"posedistill export: error: {e}", file=sys.stderr)
        return 2


def _check_parity(args: argparse.Namespace, model: Any, out: Path) -> int:
    """onnxruntime against PyTorch on a random batch (unless ``--no-check``): 0, or 1 past the tolerance."""
    import numpy as np

    if args.no_check:
        return 0
    from posedistill.infer.export import parity
    from posedistill.infer.onnx_model import OnnxPoseModel

    info = OnnxPoseModel(out).info
    w, h = info.input_size
    x = np.random.default_rng(0).standard_normal((2 if args.dynamic_batch else 1, 3, h, w)).astype(np.float32)
    if args.fp16_weights:  # compare with the same weights: PyTorch's rounded to float16 and back
        model = model.half().float()
    res = parity(model, out, x)
    worst = max(v for k, v in res.items() if k.startswith("rel_"))
    print(f"layout {info.layout}, K {info.num_keypoints}, input {w}x{h}, outputs {', '.join(info.output_names)}")
    print("parity onnxruntime vs PyTorch: " + ", ".join(f"{k} {v:.2e}" for k, v in res.items()))
    # float16 weights: the graph rounds the convolutions with their batch norms folded in, PyTorch each separately
    tolerance = FP16_PARITY_TOLERANCE if args.fp16_weights else PARITY_TOLERANCE
    if worst > tolerance:
        print(f"posedistill export: error: relative difference {worst:.2e} exceeds {tolerance:.0e}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _check_int8_options(args: argparse.Namespace) -> None:
    """--int8 needs --calib and a float32 graph; --calib / --calib-count mean nothing without --int8 (UsageError
    before the model loads)."""
    from posedistill.errors import UsageError

    if not args.int8:
        if args.calib is not None or args.calib_count is not None:
            raise UsageError("--calib / --calib-count set the int8 calibration: add --int8")
        return
    if args.calib is None:
        raise UsageError("--int8 needs calibration data: --calib IMAGES_DIR or --calib COCO.json (person boxes)")
    if args.fp16_weights:
        raise UsageError("--int8 and --fp16-weights exclude each other: the int8 file stores int8 weights")
    if args.calib_count is not None and args.calib_count < 1:
        raise UsageError(f"--calib-count {args.calib_count}: expected at least 1 crop")


def _quantize(args: argparse.Namespace, fp32: Path, calib: Any) -> int:
    """Quantize the checked float32 file ``fp32`` to ``--out``, then compare the two on the calibration crops."""
    from posedistill.infer.onnx_model import OnnxPoseModel
    from posedistill.infer.quantize import argmax_agreement, calibration_crops, quantize_onnx

    ref = OnnxPoseModel(fp32)
    count = args.calib_count or CALIB_COUNT
    crops = calibration_crops(calib, ref.info, count)
    out = quantize_onnx(fp32, args.out, crops, calibration=calib.describe())
    q = OnnxPoseModel(out)
    meta = q.info.metadata["int8"]
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, int8 QDQ, opset {q.info.metadata['opset']}, batch "
          f"{'dynamic' if args.dynamic_batch else 1}); calibrated on {len(crops)} crops of {args.calib} "
          f"({calib.boxes_from} boxes)")  # fmt: skip
    print(f"float32 nodes: {', '.join(meta['fp32_nodes']) or 'none'}")
    agree = argmax_agreement(ref.run(crops), q.run(crops), ref.info.kind)
    print(f"int8 vs float32 on the calibration crops: argmax within 1 bin for {agree['agree']:.1%} of the "
          f"keypoints (mean offset {agree['mean_offset']:.2f} bins)")  # fmt: skip
    return 0


def _check_opset(opset: int) -> None:
    """The opset must be one the installed torch exports (UsageError before the model loads)."""
    from posedistill.errors import UsageError

    low, high = MIN_OPSET, MAX_OPSET
    try:  # a private module: the numbers above when it moves
        from torch.onnx import _constants

        low, high = int(_constants.ONNX_MIN_OPSET), int(_constants.ONNX_MAX_OPSET)
    except (ImportError, AttributeError):
        pass
    if not low <= opset <= high:
        raise UsageError(f"--opset {opset}: expected an ONNX opset from {low} to {high} (default 17)")


def _export_dkd(args: argparse.Namespace, net: Any, meta: dict[str, Any]) -> int:
    """A DKD checkpoint: both graphs, then the parity of both (errors of the export itself propagate to
    :func:`run`)."""
    import numpy as np

    from posedistill.fileio import check_writable_output
    from posedistill.infer.export import dkd_parity, dkd_step_path, export_dkd_onnx

    check_writable_output(dkd_step_path(args.out), "file", "--out (its tracked-frame graph)")
    init_path, step_path = export_dkd_onnx(
        net, args.out, meta=meta, layout=args.layout, dynamic_batch=args.dynamic_batch, opset=args.opset,
        fp16_weights=args.fp16_weights,
    )  # fmt: skip
    batch = "dynamic" if args.dynamic_batch else 1
    for what, path in (("initialisation frame", init_path), ("tracked frame", step_path)):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, DKD {what}, opset {args.opset}, batch {batch})")
    if args.no_check:
        return 0
    w, h = (int(v) for v in net.build_args["input_size"])
    x = np.random.default_rng(0).standard_normal((2 if args.dynamic_batch else 1, 3, h, w)).astype(np.float32)
    if args.fp16_weights:  # compare with the same weights: PyTorch's rounded to float16 and back
        net = net.half().float()
    res = dkd_parity(net, init_path, step_path, x)
    worst = max(v for k, v in res.items() if k.startswith("rel_"))
    print("parity onnxruntime vs PyTorch: " + ", ".join(f"{k} {v:.2e}" for k, v in res.items()))
    tolerance = FP16_PARITY_TOLERANCE if args.fp16_weights else PARITY_TOLERANCE
    if worst > tolerance:
        print(f"posedistill export: error: relative difference {worst:.2e} exceeds {tolerance:.0e}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
