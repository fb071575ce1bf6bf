"""``posedistill infer SOURCE [--model M] [--detector D] [--out DIR] [--json FILE] [--format coco|mmpose|openpose] ...``

Runs the torch-free pipeline (person detector, pose model, tracker, One-Euro smoother) on an image, a folder of
images, a glob, a video file, a stream URL or a webcam index (``0``), and writes annotated images / an annotated
video to ``--out`` and the keypoints as JSON (``--json``, format ``--format``). Stop a long run with Ctrl-C (or
SIGTERM): the video and the JSON are finished with the frames done.

A DKD video model (a DKD training checkpoint, or the two graphs of ``posedistill export``) runs in its temporal
mode: :class:`~posedistill.infer.dkd_estimator.DKDPoseEstimator` keeps each person's state from frame to frame
(boxes matched to the previous frame's by IoU, ``--dkd-iou-thr``) and starts a new track with the initializer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "run a pose model on images, a folder, a glob, a video or a webcam; write annotated media and JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="image, folder, glob ('frames/*.jpg', quote it), video file, stream URL or webcam index",
    )
    parser.add_argument(
        "--model",
        metavar="M",
        help="pose model: .onnx file, URL, mmdeploy SDK zip, or a checkpoint (needs torch); default: the shipped "
        "whole-body rtmpose-nano (models/rtmpose-nano_wholebody)",
    )
    parser.add_argument(
        "--detector",
        "--det",
        default="default",
        metavar="D",
        help="person detector: default (the shipped RTMDet-nano, models/rtmdet-nano_person), none (the whole frame "
        "is one person) or an RTMDet / YOLOX .onnx / folder / URL / SDK zip (default: default)",
    )
    parser.add_argument("--det-thr", type=float, default=0.3, help="detector score threshold (default 0.3)")
    parser.add_argument(
        "--det-every",
        type=int,
        default=1,
        metavar="N",
        help="run the detector every N frames; boxes follow the keypoints in between (default 1)",
    )
    parser.add_argument(
        "--out", default="runs/infer", metavar="DIR", help="folder for annotated images / videos (default runs/infer)"
    )
    parser.add_argument("--no-vis", action="store_true", help="do not write annotated images / videos")
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="write keypoints here (a folder for --format openpose); default with --format: "
        "DIR/<source name>.json or DIR/<source name>_openpose/",
    )
    parser.add_argument(
        "--format",
        choices=("mmpose", "coco", "openpose"),
        help="JSON format: mmpose (meta_info + instance_info, default), coco (results list), "
        "openpose (one file per frame)",
    )
    parser.add_argument(
        "--image-ids",
        metavar="GT.json",
        help="--format coco: take each image's image_id from this COCO file (matched by file name), for coco-eval",
    )
    parser.add_argument("--track", action="store_true", help="give people stable track ids across frames")
    parser.add_argument(
        "--smooth",
        choices=("none", "oneeuro"),
        default="none",
        help="One-Euro keypoint smoothing per track (implies --track)",
    )
    parser.add_argument("--min-cutoff", type=float, default=1.0, help="One-Euro cutoff at rest, Hz (default 1.0)")
    parser.add_argument(
        "--beta", type=float, default=0.01, help="One-Euro speed coefficient, per pixel/second (default 0.01)"
    )
    parser.add_argument("--kpt-thr", type=float, default=0.3, help="keypoint score threshold for drawing (0.3)")
    parser.add_argument("--skeleton", choices=("mmpose", "openpose"), default="mmpose", help="drawing style")
    parser.add_argument("--black-background", action="store_true", help="draw on black (ControlNet inputs)")
    parser.add_argument("--no-face", action="store_true", help="leave face points out of drawings and OpenPose JSON")
    parser.add_argument("--no-hands", action="store_true", help="leave hands out of drawings and OpenPose JSON")
    parser.add_argument(
        "--face-70",
        action="store_true",
        help="OpenPose JSON: 70 face points (the 68 plus the eyes as pupils), as OpenPose specifies",
    )
    parser.add_argument("--flip-test", action="store_true", help="average each crop with its mirror (2x slower)")
    parser.add_argument("--layout", help="keypoint layout when the model does not say (e.g. halpe26)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (onnxruntime-gpu) (default cpu)")
    parser.add_argument("--threads", type=int, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--fps", type=float, help="frame rate of an image sequence, or of a video that has none")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (webcams, quick looks)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--dkd-iou-thr",
        type=float,
        default=0.3,
        metavar="T",
        help="DKD models: a box continues the previous frame's track it overlaps by IoU >= T (default 0.3)",
    )
    parser.add_argument(
        "--dkd-reinit-every",
        type=int,
        metavar="N",
        help="DKD models: run the initializer every N frames of a track (0: first frame only; default: the model's)",
    )


def _default_json(args: argparse.Namespace, source_name: str) -> Path | None:
    if args.json:
        return Path(args.json)
    if args.format is None:
        return None
    suffix = "_openpose" if args.format == "openpose" else ".json"
    return Path(args.out) / f"{source_name}{suffix}"


def _check_options(args: argparse.Namespace) -> None:
    """Option values that are wrong whatever the input (UsageError)."""
    from posedistill.commands._common import check_range
    from posedistill.errors import UsageError

    check_range(args.det_every, "--det-every", 1)
    check_range(args.kpt_thr, "--kpt-thr", 0.0, 1.0)
    check_range(args.det_thr, "--det-thr", 0.0, 1.0)
    check_range(args.max_frames, "--max-frames", 1)
    check_range(args.fps, "--fps", 1e-3)
    check_range(args.threads, "--threads", 1)
    if args.image_ids and args.format not in (None, "coco"):
        raise UsageError(f"--image-ids gives COCO image ids: it needs --format coco, not --format {args.format}")
    if args.image_ids and args.format is None:
        raise UsageError("--image-ids gives COCO image ids: add --format coco (and --json FILE)")
    if args.no_vis and args.json is None and args.format is None:
        raise UsageError("--no-vis without --json (or --format) would write nothing; add --json FILE")


def _check_image_ids(source: Any, image_ids: dict[str, Any], gt: str) -> None:
    """Every image of ``source`` must be in the ``--image-ids`` file: an image that is not would get an id that
    belongs to another image (or none), and coco-eval would score it against the wrong people."""
    from posedistill.errors import UsageError

    paths = getattr(source, "paths", None)
    if paths is None:
        raise UsageError(f"--image-ids matches image files by name; SOURCE {source.name!r} is a {source.kind}, "
                         "not images")  # fmt: skip
    missing = [Path(p).name for p in paths if Path(p).name not in image_ids]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise UsageError(
            f"--image-ids {gt}: {len(missing)} of the {len(paths)} images are not in its 'images' ({shown}); "
            "expected every image of SOURCE to be listed (infer only those images, or drop --image-ids)"
        )


def _dkd_estimator(args: argparse.Namespace, providers: list[str] | None) -> Any | None:
    """A :class:`~posedistill.infer.dkd_estimator.DKDPoseEstimator` when ``--model`` is a DKD checkpoint (PyTorch)
    or an exported DKD pair (onnxruntime), else None."""
    from posedistill.infer.dkd_estimator import DKDPoseEstimator, dkd_onnx_role, is_dkd_checkpoint

    if args.model is None:
        return None
    checkpoint = is_dkd_checkpoint(args.model)
    if not checkpoint and dkd_onnx_role(args.model) is None:
        return None
    if args.flip_test:
        raise ValueError("--flip-test is not available for DKD models (the kernels follow one unflipped person)")
    if args.dkd_reinit_every is not None and args.dkd_reinit_every < 0:
        raise ValueError(f"--dkd-reinit-every must be >= 0, got {args.dkd_reinit_every}")
    reinit = -1 if args.dkd_reinit_every is None else (args.dkd_reinit_every or None)
    common = {"layout": args.layout, "iou_threshold": args.dkd_iou_thr, "reinit_every": reinit}
    if checkpoint:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ImportError(
                f"{args.model} is a DKD checkpoint and torch is not installed: export it "
                f"(`posedistill export {args.model} --format onnx --out dkd.onnx`) and pass dkd.onnx"
            ) from None
        return DKDPoseEstimator.from_checkpoint(args.model, device=args.device, **common)
    return DKDPoseEstimator.from_onnx(args.model, threads=args.threads, providers=providers, **common)


def run(args: argparse.Namespace) -> int:
    from posedistill.errors import PoseDataError, UsageError
    from posedistill.fileio import check_writable_output
    from posedistill.infer.pipeline import (
        OutputOptions,
        PosePipeline,
        image_ids_from_coco,
        sigterm_as_keyboard_interrupt,
    )
    from posedistill.infer.pipeline import run as run_pipeline
    from posedistill.infer.smoothing import PoseSmoother
    from posedistill.infer.sources import open_source
    from posedistill.infer.tracking import PoseTracker

    def fail(message: str) -> int:
        print(f"posedistill infer: error: {message}", file=sys.stderr)
        return 2

    _check_options(args)
    smooth = args.smooth == "oneeuro"
    track = args.track or smooth
    if smooth and not args.track and not args.quiet:
        print("posedistill infer: --smooth keeps one filter per person: tracking is on", file=sys.stderr)

    try:
        image_ids = image_ids_from_coco(args.image_ids) if args.image_ids else None
        source = open_source(args.source, fps=args.fps)
    except PoseDataError as e:
        return fail(str(e))
    json_path = _default_json(args, source.name)
    try:
        # every output is checked before the model loads: a bad path costs nothing and leaves nothing behind
        if not args.no_vis:
            check_writable_output(args.out, "dir", "--out")
        if json_path is not None:
            option = "--json" if args.json else "--out"  # the default JSON goes into --out
            check_writable_output(json_path, "dir" if args.format == "openpose" else "file", option)
        if image_ids is not None:
            _check_image_ids(source, image_ids, args.image_ids)
    except (UsageError, PoseDataError) as e:
        source.close()
        return fail(str(e))
    try:
        from posedistill.infer.estimator import PoseEstimator

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if args.device.startswith("cuda") else None
        estimator = _dkd_estimator(args, providers)
        if estimator is None:
            estimator = PoseEstimator(
                args.model,
                detector=None,  # the pipeline runs the detector (--det-every)
                layout=args.layout,
                flip_test=args.flip_test,
                device=args.device,
                threads=args.threads,
                providers=providers,
                progress=not args.quiet,
            )
        from posedistill.infer.defaults import load_detector

        detector = load_detector(
            args.detector, threads=args.threads, providers=providers, progress=not args.quiet, score_thr=args.det_thr
        )
    except (PoseDataError, ValueError, KeyError, ImportError, FileNotFoundError) as e:
        source.close()
        return fail(e.args[0] if isinstance(e, KeyError) and e.args else str(e))

    fps = source.fps or args.fps or 30.0
    pipeline = PosePipeline(
        estimator,
        detector,
        det_every=args.det_every,
        tracker=PoseTracker(kpt_thr=args.kpt_thr) if track else None,
        smoother=PoseSmoother(min_cutoff=args.min_cutoff, beta=args.beta, fps=fps, kpt_thr=args.kpt_thr)
        if smooth
        else None,
        kpt_thr=args.kpt_thr,
    )
    options = OutputOptions(
        out_dir=None if args.no_vis else Path(args.out),
        json_path=json_path,
        json_format=args.format or "mmpose",
        kpt_thr=args.kpt_thr,
        skeleton=args.skeleton,
        black_background=args.black_background,
        include_face=not args.no_face,
        include_hands=not args.no_hands,
        face_70=args.face_70,
        image_ids=image_ids,
    )
    try:
        with sigterm_as_keyboard_interrupt():
            summary = run_pipeline(pipeline, source, options, max_frames=args.max_frames, progress=not args.quiet)
    except PoseDataError as e:
        return fail(str(e))

    per_frame = 1000.0 * summary.seconds / max(summary.frames, 1)
    state = "interrupted after" if summary.interrupted else "done:"
    print(f"{state} {summary.frames} frames, {summary.people} people, {per_frame:.1f} ms/frame")
    if summary.skipped:
        names = ", ".join(Path(p).name for p in summary.skipped[:5]) + (", ..." if len(summary.skipped) > 5 else "")
        print(f"  skipped {len(summary.skipped)} unreadable images (see the warnings): {names}")
    for what, path in summary.outputs.items():
        print(f"  {what}: {path}")
    return 130 if summary.interrupted else 0
