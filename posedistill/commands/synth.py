"""``posedistill synth``: write a synthetic COCO-WholeBody dataset (images and / or videos)."""

from __future__ import annotations

import argparse
import json
import time

HELP = "generate synthetic whole-body images / videos with exact COCO-WholeBody labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (images/, annotations.json, videos/, videos.json)")
    parser.add_argument("--images", type=int, default=0, metavar="N", help="number of still images (default 0)")
    parser.add_argument("--videos", type=int, default=0, metavar="M", help="number of video clips (default 0)")
    parser.add_argument("--frames", type=int, default=32, metavar="T", help="frames per clip (default 32)")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"), help="image size")
    parser.add_argument(
        "--people",
        type=int,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="people per image (default: the difficulty's: easy 1 1, medium 1 3, hard 2 4)",
    )
    parser.add_argument("--difficulty", choices=("easy", "medium", "hard"), default="medium")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes (output identical for any number)")
    parser.add_argument("--preview", action="store_true", help="also write preview.png contact sheet(s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from posedistill.commands._common import check_range
    from posedistill.data.synthetic import generate_dataset, generate_videos, make_config
    from posedistill.errors import UsageError
    from posedistill.fileio import check_writable_output

    if args.images <= 0 and args.videos <= 0:
        raise UsageError("nothing to do: give --images N and/or --videos M")
    if args.videos > 0:
        check_range(args.frames, "--frames", 1)
    check_range(args.workers, "--workers", 1)
    try:
        cfg = make_config(args.difficulty, size=tuple(args.size), people=tuple(args.people) if args.people else None)
    except ValueError as e:
        raise UsageError(f"--size / --people: {e}") from None
    check_writable_output(args.out, "dir", "--out")
    outputs = []
    if args.images > 0:
        t = time.perf_counter()
        path = generate_dataset(args.out, args.images, seed=args.seed, preview=args.preview, workers=args.workers,
                                config=cfg, progress=not args.quiet)  # fmt: skip
        outputs.append(("images", args.images, path, time.perf_counter() - t))
    if args.videos > 0:
        t = time.perf_counter()
        path = generate_videos(args.out, args.videos, args.frames, seed=args.seed, preview=args.preview,
                               workers=args.workers, config=cfg, progress=not args.quiet)  # fmt: skip
        outputs.append(("frames", args.videos * args.frames, path, time.perf_counter() - t))
    for what, n, path, dt in outputs:
        with open(path, encoding="utf-8") as f:
            stats = json.load(f)["info"]["stats"]
        a = stats["all"]
        print(f"{path}: {n} {what} in {dt:.1f}s ({n / max(dt, 1e-9):.0f}/s), {stats['people']} people; keypoints "
              f"visible {a['visible']:.1%}, occluded {a['occluded']:.1%}, outside {a['outside']:.1%}, "
              f"unlabelled {a['unlabelled']:.1%}")  # fmt: skip
    return 0
