"""``posedistill coco-eval GT.json RESULTS.json --layout LAYOUT [--json]``: COCO keypoint AP/AR of a results file."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "COCO keypoint AP/AR (OKS) of a results file, per part (COCO-WholeBody: body, foot, face, hands, wholebody)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gt", metavar="GT.json", help="COCO keypoint ground truth (images, annotations, categories)")
    parser.add_argument(
        "results", metavar="RESULTS.json",
        help='COCO results: [{"image_id", "category_id", "keypoints": [x, y, score] * K, "score"}, ...]',
    )  # fmt: skip
    parser.add_argument(
        "--layout", default="coco",
        help="keypoint layout: sigmas, parts and protocol (coco, coco_wholebody, crowdpose, aic, ...; default coco)",
    )  # fmt: skip
    area = parser.add_mutually_exclusive_group()
    area.add_argument("--use-area", dest="use_area", action="store_true", default=None,
                      help="OKS scale from the GT 'area' (the default except for crowdpose, aic, exlpose)")  # fmt: skip
    area.add_argument("--no-use-area", dest="use_area", action="store_false",
                      help="OKS scale 0.53 x box area, as MMPose for GT without 'area'")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object: part -> {stat -> value}")


def run(args: argparse.Namespace) -> int:
    from posedistill.errors import PoseDataError
    from posedistill.eval.coco import coco_eval, format_table

    try:
        stats = coco_eval(args.gt, args.results, args.layout, use_area=args.use_area)
    except (PoseDataError, KeyError, ValueError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"posedistill coco-eval: error: {message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"{args.results} vs {args.gt} ({args.layout}; maxDets 20, -1 = nothing to score)")
        print(format_table(stats))
    return 0
