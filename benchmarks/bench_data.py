"""Training data throughput: JPEG decode, RTMPose augmentation, affine crop to 256×192, SimCC targets.

Measures, on LSPet (``../shared/data/lspet``):

1. the cost of each stage in one process (ms / sample, OpenCV on one thread), and
2. samples/s of the whole pipeline through ``build_loader`` with N workers (default 2), batch 64, training mode,
   in steady state (after the first batch, so worker start-up is excluded) and end to end.

Prints a table and writes ``benchmarks/results/data_throughput.json``. The load average before and after is
recorded: on a shared machine, numbers taken under load understate the pipeline.

    .venv/bin/python benchmarks/bench_data.py [--workers 2] [--batch-size 64] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from posedistill.codecs.simcc import SimCCCodec
from posedistill.data.augment import AugConfig, augment_box, augment_crop, new_sample, sample_rng
from posedistill.data.image_io import read_image
from posedistill.data.loader import TopDownDataset, build_loader, normalise_lut, set_epoch, to_input_tensor
from posedistill.data.readers.lsp import read_lsp
from posedistill.data.transforms import topdown_affine
from posedistill.fileio import atomic_write_json
from posedistill.layouts import get_layout

ROOT = Path(__file__).resolve().parents[1]

INPUT_SIZE = (192, 256)  # (w, h)
SIGMA = (4.9, 5.66)  # RTMPose 256×192


def stage_profile(instances, n: int) -> dict[str, float]:
    """Mean ms / sample of each stage, one process, OpenCV on one thread."""
    cv2.setNumThreads(1)
    layout = get_layout(instances[0].layout)
    codec = SimCCCodec(INPUT_SIZE, SIGMA)
    cfg = AugConfig()
    lut = normalise_lut((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    times = dict.fromkeys(["read+decode", "flip/half-body/jitter", "affine crop", "hsv/blur/dropout", "normalise",
                           "simcc encode"], 0.0)  # fmt: skip
    for i in range(n):
        inst = instances[i % len(instances)]
        rng = sample_rng(0, 0, i)
        t0 = time.perf_counter()
        img = read_image(inst.image_path)
        t1 = time.perf_counter()
        s = augment_box(new_sample(img, inst.keypoints, inst.visibility, inst.bbox, layout), cfg, rng)
        t2 = time.perf_counter()
        crop = topdown_affine(s["image"], s["keypoints"], s["center"], s["scale"], s["rotation"], INPUT_SIZE)
        t3 = time.perf_counter()
        pixels = augment_crop(crop.image, cfg, rng)
        t4 = time.perf_counter()
        to_input_tensor(pixels, lut)
        t5 = time.perf_counter()
        codec.encode(crop.keypoints, (s["visibility"] > 0).astype(np.float32))
        t6 = time.perf_counter()
        for key, a, b in zip(times, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6)):
            times[key] += b - a
    out = {k: v / n * 1e3 for k, v in times.items()}
    out["total"] = sum(out.values())
    return out


def loader_throughput(instances, workers: int, batch_size: int, epochs: int) -> dict[str, float]:
    ds = TopDownDataset(instances, SimCCCodec(INPUT_SIZE, SIGMA), INPUT_SIZE, train=True, aug=AugConfig(), seed=0)
    loader = build_loader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, seed=0, drop_last=True)
    total = steady = 0
    t_start = time.perf_counter()
    t_first = None
    for epoch in range(epochs):
        set_epoch(loader, epoch)
        for batch in loader:
            n = batch["image"].shape[0]
            total += n
            if t_first is None:
                t_first = time.perf_counter()
            else:
                steady += n
    t_end = time.perf_counter()
    return {
        "samples": total,
        "seconds": t_end - t_start,
        "samples_per_s_end_to_end": total / (t_end - t_start),
        "samples_per_s_steady": steady / (t_end - t_first) if t_first and t_end > t_first else float("nan"),
        "first_batch_s": (t_first or t_end) - t_start,
        "skipped": ds.skipped,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "lspet")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1, help="passes over LSPet's 3,000 people")
    ap.add_argument("--profile-samples", type=int, default=500)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "data_throughput.json")
    args = ap.parse_args(argv)
    if not (args.data / "joints.mat").exists():
        print(f"bench_data: {args.data / 'joints.mat'} not found (pass --data)", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    instances = read_lsp(args.data / "joints.mat")
    load_before = os.getloadavg()
    stages = stage_profile(instances, args.profile_samples)
    loader = loader_throughput(instances, args.workers, args.batch_size, args.epochs)
    load_after = os.getloadavg()

    print(f"LSPet, {len(instances)} people, input {INPUT_SIZE[1]}x{INPUT_SIZE[0]} (h x w), SimCC targets")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} CPUs\n")
    print(f"{'stage (1 process, 1 thread)':<34}{'ms / sample':>12}")
    for k, v in stages.items():
        print(f"{k:<34}{v:>12.3f}")
    print(f"{'-> one core could do':<34}{1e3 / stages['total']:>10.0f}/s\n")
    print(f"{'DataLoader':<34}{'samples/s':>12}")
    print(f"{f'{args.workers} workers, batch {args.batch_size}, steady':<34}{loader['samples_per_s_steady']:>12.0f}")
    print(f"{'  end to end (incl. start-up)':<34}{loader['samples_per_s_end_to_end']:>12.0f}")
    print(f"{'  first batch after':<34}{loader['first_batch_s']:>11.2f}s")

    atomic_write_json(
        args.out,
        {
            "benchmark": "data_throughput",
            "dataset": "lspet",
            "num_instances": len(instances),
            "input_size_wh": list(INPUT_SIZE),
            "codec": {"type": "simcc", "sigma": list(SIGMA), "split_ratio": 2.0},
            "augmentation": "RTMPose stage 1 (AugConfig())",
            "workers": args.workers,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "stage_ms_per_sample": {k: round(v, 4) for k, v in stages.items()},
            "single_core_samples_per_s": round(1e3 / stages["total"], 1),
            "loader": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in loader.items()},
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in load_after],
                "python": platform.python_version(),
                "torch": torch.__version__,
                "opencv": cv2.__version__,
                "numpy": np.__version__,
            },
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        indent=2,
    )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
