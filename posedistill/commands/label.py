"""``posedistill label SOURCE --teacher T --out labels.json [--boxes GT.json | --whole-image] [--min-score S]``

Pseudo-labels people with a black-box teacher and writes a COCO-WholeBody annotation file that ``train`` /
``distill`` read as it is (format ``coco``, layout ``coco_wholebody``), with the teacher's per-keypoint
confidence in ``keypoint_scores`` (read as ``Instance.keypoint_weights``: training multiplies the target weights
by it). ``--results`` also writes the body keypoints as a COCO results file, for ``posedistill coco-eval``
against the source's ground truth.

SOURCE is an annotation file (COCO json, LSP ``joints.mat``, ...: each person labelled in its box), or an image,
folder, glob or video (each image one person, or the people of ``--boxes`` matched by file name). The teacher is
``mediapipe`` (MediaPipe Holistic, the ``mediapipe`` extra in its own environment), a posedistill checkpoint
(needs torch) or an ONNX pose model. See docs/label.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

HELP = "pseudo-label people with a teacher (MediaPipe, a checkpoint or an ONNX model) into COCO-WholeBody json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="annotation file with person boxes (COCO .json, LSP joints.mat, ...), or an image, folder, glob "
        "('frames/*.jpg', quote it) or video",
    )
    parser.add_argument(
        "--teacher",
        required=True,
        metavar="T",
        help="'mediapipe' (MediaPipe Holistic), a posedistill checkpoint folder / mmpose .pth (needs torch), or an "
        "ONNX pose model (.onnx, URL)",
    )
    parser.add_argument("--out", required=True, metavar="LABELS.json", help="the COCO-WholeBody file to write")
    people = parser.add_mutually_exclusive_group()
    people.add_argument(
        "--boxes",
        metavar="GT.json",
        help="annotation file whose person boxes are labelled in the SOURCE images (matched by file name)",
    )
    people.add_argument(
        "--whole-image", action="store_true", help="each image is one person, even when SOURCE has boxes"
    )
    parser.add_argument(
        "--indices",
        metavar="A:B",
        help="part of the annotation file (0-based, B excluded): for LSP / LSPet the image order, else the "
        "annotation order",
    )
    parser.add_argument("--image-root", metavar="DIR", help="folder the annotation file's image names are relative to")
    parser.add_argument(
        "--min-score",
        type=float,
        default=0.0,
        metavar="S",
        help="points the teacher scores below S are unlabelled (default 0.0: all the teacher gives)",
    )
    parser.add_argument(
        "--results",
        metavar="FILE",
        help="also write the body keypoints as COCO results ([{image_id, category_id, keypoints 17 x 3, score}])",
    )
    parser.add_argument(
        "--frames-dir",
        metavar="DIR",
        help="video SOURCE: where the frames are written as JPEG (default: <out stem>_frames/ next to --out)",
    )
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads for ONNX teachers (default 1)")
    parser.add_argument("--flip-test", action="store_true", help="ONNX / checkpoint teachers: average with the mirror")
    parser.add_argument("--layout", help="ONNX teacher: its keypoint layout when the file does not say")
    parser.add_argument("--indent", type=int, help="indent the JSON (default: compact)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from posedistill.commands._common import check_range
    from posedistill.errors import PoseDataError
    from posedistill.fileio import atomic_write_json, check_writable_output
    from posedistill.label.coco_writer import wholebody_categories
    from posedistill.label.pipeline import (
        PARTS,
        is_annotation_file,
        jobs_from_annotations,
        jobs_from_source,
        label,
        read_people,
    )
    from posedistill.label.teachers import load_teacher

    def fail(message: str) -> int:
        print(f"posedistill label: error: {message}", file=sys.stderr)
        return 2

    out = Path(args.out)
    # every output is checked before any work: labels.json is not written when --results cannot be
    check_writable_output(out, "file", "--out")
    if args.results:
        check_writable_output(args.results, "file", "--results")
    if args.frames_dir:
        check_writable_output(args.frames_dir, "dir", "--frames-dir")
    check_range(args.min_score, "--min-score", 0.0)  # no upper bound: SimCC scores can exceed 1
    check_range(args.threads, "--threads", 1)
    try:
        if is_annotation_file(args.source):
            if args.boxes:
                return fail("--boxes is for image sources; SOURCE is already an annotation file with person boxes")
            jobs = jobs_from_annotations(read_people(args.source, args.indices, args.image_root), args.whole_image)
            total: int | None = len(jobs)
            source = None
        else:
            from posedistill.infer.sources import open_source

            if args.indices:
                return fail("--indices selects part of an annotation file; SOURCE is not one")
            boxes_by_name = None
            if args.boxes:
                boxes_by_name = {}
                for inst in read_people(args.boxes, None, args.image_root):
                    boxes_by_name.setdefault(Path(inst.image_path).name, []).append(inst)
            source = open_source(args.source)
            frames_dir = args.frames_dir or out.with_name(f"{out.stem}_frames")
            if source.is_video:
                check_writable_output(frames_dir, "dir", "--frames-dir" if args.frames_dir else "the frames folder")
            jobs = jobs_from_source(source, boxes_by_name, frames_dir)
            total = len(source) or None
    except (PoseDataError, ValueError, FileNotFoundError) as e:
        return fail(str(e))

    try:
        teacher = load_teacher(args.teacher, threads=args.threads, flip_test=args.flip_test, layout=args.layout)
    except (PoseDataError, ValueError, ImportError, FileNotFoundError, KeyError) as e:
        if source is not None:
            source.close()
        return fail(e.args[0] if isinstance(e, KeyError) and e.args else str(e))

    try:
        result = label(jobs, teacher, min_score=args.min_score, total=total, progress=not args.quiet)
    except PoseDataError as e:
        return fail(str(e))
    finally:
        if source is not None:
            source.close()
        close = getattr(teacher, "close", None)
        if close is not None:
            close()
    if source is not None:  # unreadable images of a folder / glob are skipped by the source, before label() sees them
        result.skipped_images.extend(getattr(source, "skipped", []))

    info = {
        "description": "posedistill pseudo labels",
        "teacher": teacher.name,
        "source": str(Path(args.source).resolve()) if Path(args.source).exists() else str(args.source),
        "min_score": args.min_score,
        "keypoint_scores": "the teacher's per-keypoint confidence in [0, 1] (docs/label.md)",
        "date_created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    data = {
        "info": info,
        "categories": wholebody_categories(),
        "images": result.images,
        "annotations": result.annotations,
    }
    atomic_write_json(out, data, indent=args.indent)
    if args.results:
        atomic_write_json(args.results, result.results, indent=args.indent)

    n_img = len(result.images)
    state = "interrupted after" if result.interrupted else "done:"
    print(
        f"{state} {n_img} images, {result.people} people in {result.seconds:.1f} s "
        f"({n_img / max(result.seconds, 1e-9):.2f} images/s; teacher "
        f"{1000 * result.teacher_seconds / max(result.people, 1):.1f} ms/person)"
    )
    labelled = len(result.annotations)
    coverage = ", ".join(f"{part} {result.part_counts[part]}" for part in PARTS)
    print(f"  labelled people: {labelled} of {result.people} ({coverage}); none: {result.unlabelled_people}")
    if result.skipped_images:
        print(f"  skipped {len(result.skipped_images)} unreadable images (see the warnings)")
    print(f"  labels: {out}")
    if args.results:
        print(f"  results: {args.results} ({len(result.results)} people)")
    return 130 if result.interrupted else 0
