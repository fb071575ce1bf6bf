"""Training throughput (images/s) of RTMPose-t / -s on this CPU, posedistill side by side with mmpose 1.3.2.

For each model, on LSPet (``../shared/data/lspet``, 14 joints), input 256x192, batch 32, AdamW (lr 4e-3, no
weight decay on norms and biases), ``--workers`` DataLoader workers, ``torch.set_num_threads(--threads)``:

- **end to end**: the full RTMPose stage-1 training pipeline (read JPEG, flip, half-body, box jitter, affine
  crop, HSV, blur, median blur, coarse dropout, SimCC targets) through the DataLoader, then forward +
  KLDiscretLoss + backward + AdamW step; images/s over ``--iters`` iterations after ``--warmup`` (worker
  start-up falls in the warm-up). posedistill's step is the trainer's (``posedistill.engine.trainer``):
  ``SupervisedMethod`` losses, ``zero_grad``, ``backward``, ``step`` on ``build_optimizer``'s AdamW.
- **model step**: the same step on one batch already in memory (no data loading): the compute of the model,
  loss and optimizer alone.

Right after each posedistill model, the same measurement runs for mmpose in its side environment
(``benchmarks/mmpose_train_step.py`` under ``--mmpose-python``, default ``/tmp/mmenv/bin/python`` when it exists;
``benchmarks/mmpose_side_env.md`` says how to build it), interleaved so that both see about the same machine
load. Without the side environment posedistill is reported alone, and the JSON says why.

    .venv/bin/python benchmarks/bench_train.py                    # t and s, a few minutes on 2 idle cores
    .venv/bin/python benchmarks/bench_train.py --rounds 3         # best of 3 alternating rounds (shared machine)
    .venv/bin/python benchmarks/bench_train.py --models t --iters 10 --no-mmpose

Prints a table and writes ``benchmarks/results/train_throughput.json`` atomically. On a shared machine
wall-clock numbers fall with the load of other processes, badly so with 2 torch threads on 2 oversubscribed cores
(one thread waits for the other at every parallel region). So every number carries how many CPUs other processes
used meanwhile (from /proc/stat), and ``--rounds N`` alternates the two libraries N times and keeps each one's
fastest round (all rounds stay in the JSON, as do CPU-seconds per image of the process and its workers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posedistill.codecs import build_codec  # noqa: E402
from posedistill.data.augment import AugConfig  # noqa: E402
from posedistill.data.loader import TopDownDataset, build_loader, set_epoch  # noqa: E402
from posedistill.data.readers.lsp import read_lsp  # noqa: E402
from posedistill.distill.supervised import SupervisedMethod  # noqa: E402
from posedistill.engine.optim import build_optimizer  # noqa: E402
from posedistill.fileio import atomic_write_json  # noqa: E402
from posedistill.models.builder import build_model  # noqa: E402

INPUT_SIZE = (192, 256)  # (w, h)
CODEC = {"type": "simcc", "input_size": list(INPUT_SIZE), "sigma": [4.9, 5.66]}  # RTMPose 256x192
LR = 4e-3  # RTMPose's base_lr; the value does not change the cost of a step
DEFAULT_MMPOSE_PYTHON = Path("/tmp/mmenv/bin/python")
RESULTS = ROOT / "benchmarks" / "results" / "train_throughput.json"
SIDE_SCRIPT = ROOT / "benchmarks" / "mmpose_train_step.py"
PARTS = ("end_to_end", "model_step")
MEASURES = [(p, m) for p in PARTS for m in ("images_per_s", "images_per_cpu_s")]
LIBS = ("posedistill", "mmpose")
UNDER_LOAD = 0.25  # CPUs used by other processes during a run above which the results are flagged as under load


def cpu_seconds() -> float:
    """CPU time (user + system) of this process, of its finished children and of its live children (the
    DataLoader workers), read from /proc: on a shared machine, images per CPU-second moves less with the load of
    other processes than images per wall-clock second."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    me, tick = os.getpid(), os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == me:  # fields after the name: state, ppid, ..., utime (12), stime (13)
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_busy_seconds() -> float:
    """CPU-seconds all processes of the machine have spent busy (not idle / iowait), from /proc/stat; minus
    :func:`cpu_seconds` over a window, it says how much the rest of a shared machine was running meanwhile."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def batches(loader: torch.utils.data.DataLoader):
    """Endless iterator over the loader, one epoch after another."""
    epoch = 0
    while True:
        set_epoch(loader, epoch)
        yield from loader
        epoch += 1


def run_posedistill(size: str, instances: list, args: argparse.Namespace) -> dict[str, Any]:
    """End-to-end and model-only images/s of posedistill's training step for ``rtmpose-{size}``."""
    torch.manual_seed(args.seed)
    codec = build_codec(CODEC)
    model = build_model(f"rtmpose-{size}", num_keypoints=14, input_size=INPUT_SIZE)
    method = SupervisedMethod(model, codec, "lsp")
    method.train()
    optimizer = build_optimizer(method.trainable_modules(), "adamw", lr=LR, weight_decay=0.0)
    dataset = TopDownDataset(instances, codec, INPUT_SIZE, train=True, aug=AugConfig(), seed=args.seed)
    loader = build_loader(dataset, args.batch_size, shuffle=True, num_workers=args.workers, seed=args.seed,
                          drop_last=True)  # fmt: skip

    def step(batch: dict[str, Any]) -> None:  # as Trainer.train_epoch, without AMP / clipping / EMA / logging
        losses = method(batch, 0)
        loss = sum(v.float() for v in losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    load_before = os.getloadavg()
    it = batches(loader)
    data_wait, iter_s = 0.0, []
    t0, c0, m0 = time.perf_counter(), cpu_seconds(), machine_busy_seconds()
    batch: dict[str, Any] = {}
    for i in range(args.warmup + args.iters):
        if i == args.warmup:
            data_wait, t0, c0, m0 = 0.0, time.perf_counter(), cpu_seconds(), machine_busy_seconds()
        ta = time.perf_counter()
        batch = next(it)
        data_wait += time.perf_counter() - ta
        step(batch)
        if i >= args.warmup:
            iter_s.append(time.perf_counter() - ta)
    elapsed, cpu, busy = time.perf_counter() - t0, cpu_seconds() - c0, machine_busy_seconds() - m0
    it.close()  # the workers stop before the model-only measurement (and before mmpose's run)
    del it, loader

    for _ in range(args.warmup):
        step(batch)
    t, c, m = time.perf_counter(), cpu_seconds(), machine_busy_seconds()
    for _ in range(args.step_iters):
        step(batch)
    wall, cpu_step, busy_step = time.perf_counter() - t, cpu_seconds() - c, machine_busy_seconds() - m
    step_s, step_cpu = wall / args.step_iters, cpu_step / args.step_iters
    load_after = os.getloadavg()
    return {
        "model": f"rtmpose-{size}",
        "params": sum(p.numel() for p in model.parameters()),
        "end_to_end": {
            "images_per_s": args.iters * args.batch_size / elapsed,
            "seconds": elapsed,
            "cpu_seconds": cpu,
            "images_per_cpu_s": args.iters * args.batch_size / cpu,
            "other_processes_cores": max(busy - cpu, 0.0) / elapsed,
            "images_per_s_median_iter": args.batch_size / statistics.median(iter_s),
            "data_wait_s": data_wait,
            "iters": args.iters,
            "warmup": args.warmup,
        },
        "model_step": {
            "images_per_s": args.batch_size / step_s,
            "step_s": step_s,
            "images_per_cpu_s": args.batch_size / step_cpu,
            "other_processes_cores": max(busy_step - cpu_step, 0.0) / wall,
            "iters": args.step_iters,
        },
        "skipped_images": dataset.skipped,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def run_mmpose(python: Path, size: str, args: argparse.Namespace) -> dict[str, Any]:
    """mmpose's numbers for ``rtmpose-{size}`` from the side environment; ``{"error": ...}`` when it fails."""
    cmd = [
        str(python), str(SIDE_SCRIPT), "--models", size, "--data", str(args.data),
        "--batch-size", str(args.batch_size), "--iters", str(args.iters), "--warmup", str(args.warmup),
        "--step-iters", str(args.step_iters), "--workers", str(args.workers), "--threads", str(args.threads),
        "--seed", str(args.seed),
    ]  # fmt: skip
    # the side environment must not see this venv's packages
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=args.mmpose_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.mmpose_timeout} s: {' '.join(cmd)}"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        return {"error": f"exit status {proc.returncode}: {' '.join(cmd)}", "stderr_tail": tail}
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": f"no JSON on the last line of stdout: {lines[-1][:200]!r}"}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def best_of(rounds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per part (end to end, model step), the round with the most images/s: the one least slowed by other
    processes, as ``timeit`` keeps the fastest repeat. ``None`` when there is no round (mmpose unavailable)."""
    if not rounds:
        return None
    best = {k: v for k, v in rounds[0].items() if k not in PARTS}
    for part in PARTS:
        i = max(range(len(rounds)), key=lambda j: rounds[j][part]["images_per_s"])
        best[part] = {**rounds[i][part], "round": i}
    return best


def cell(run: dict[str, Any] | None, part: str) -> str:
    """``images/s [CPUs used by other processes meanwhile]``."""
    if run is None:
        return "-"
    return f"{run[part]['images_per_s']:.1f} [{run[part]['other_processes_cores']:.1f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "lspet")
    ap.add_argument("--models", nargs="+", choices=["t", "s"], default=["t", "s"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--iters", type=int, default=20, help="timed iterations, end to end")
    ap.add_argument("--warmup", type=int, default=3, help="untimed iterations before each measurement")
    ap.add_argument("--step-iters", type=int, default=10, help="timed iterations of the model-only step")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate posedistill / mmpose this many times per "
        "model and report each one's fastest round (for a machine shared with other work)",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the training process")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--mmpose-python",
        type=Path,
        default=None,
        help=f"python of the mmpose side environment (default: {DEFAULT_MMPOSE_PYTHON} if it exists)",
    )
    ap.add_argument("--no-mmpose", action="store_true", help="measure posedistill alone")
    ap.add_argument("--mmpose-timeout", type=int, default=1800, help="seconds allowed to one mmpose subprocess")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)  # fmt: skip
    if not (args.data / "joints.mat").exists():
        print(f"bench_train: {args.data / 'joints.mat'} not found (pass --data)", file=sys.stderr)
        return 1
    if min(args.iters, args.step_iters, args.rounds, args.batch_size) < 1 or args.warmup < 0:
        print("bench_train: --iters, --step-iters, --rounds and --batch-size must be >= 1", file=sys.stderr)
        return 2

    mmpose_python: Path | None = None
    mmpose_note = ""
    if args.no_mmpose:
        mmpose_note = "not run (--no-mmpose)"
    else:
        candidate = args.mmpose_python or DEFAULT_MMPOSE_PYTHON
        if candidate.exists():
            mmpose_python = candidate
        else:
            mmpose_note = f"unavailable: no side environment at {candidate} (see benchmarks/mmpose_side_env.md)"

    torch.set_num_threads(args.threads)
    instances = read_lsp(args.data / "joints.mat")
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {s: {lib: [] for lib in LIBS} for s in args.models}
    mmpose_env: dict[str, Any] = {}
    for r in range(args.rounds):
        for size in args.models:
            print(f"round {r + 1}/{args.rounds}: posedistill rtmpose-{size} ...", flush=True)
            rounds[size]["posedistill"].append(run_posedistill(size, instances, args))
            if mmpose_python is None:
                continue
            print(f"round {r + 1}/{args.rounds}: mmpose rtmpose-{size} ({mmpose_python}) ...", flush=True)
            out = run_mmpose(mmpose_python, size, args)
            if "error" in out:  # report posedistill alone from here on
                mmpose_note = f"failed: {out['error']}"
                print(f"  mmpose {mmpose_note}", file=sys.stderr)
                for line in out.get("stderr_tail", []):
                    print(f"  | {line}", file=sys.stderr)
                mmpose_python = None
                rounds = {k: {**v, "mmpose": []} for k, v in rounds.items()}
            else:
                rounds[size]["mmpose"].append(out["runs"][0])
                mmpose_env = {k: out[k] for k in ("versions", "optional_transforms")}

    rows: list[dict[str, Any]] = []
    for size in args.models:
        best = {lib: best_of(rounds[size][lib]) for lib in LIBS}
        rows.append({
            "model": f"rtmpose-{size}",
            "batch_size": args.batch_size,
            **best,
            "ratios": {
                f"{part}.{metric}": ratio(best["posedistill"][part][metric],
                                          best["mmpose"][part][metric] if best["mmpose"] else None)
                for part, metric in MEASURES
            },
            "all_rounds": rounds[size],
        })  # fmt: skip

    others = [r[lib][part]["other_processes_cores"] for r in rows for lib in LIBS if r[lib] for part in PARTS]
    under_load = max(others) >= UNDER_LOAD
    print(f"\nLSPet ({len(instances)} people), input 256x192, batch {args.batch_size}, {args.workers} workers, "
          f"{args.threads} torch threads, AdamW; {args.iters} timed iterations after {args.warmup} warm-up "
          f"(model step: {args.step_iters}); best of {args.rounds} round(s)")  # fmt: skip
    if mmpose_note:
        print(f"mmpose: {mmpose_note}")
    print(f"\nimages/s [CPUs used by other processes meanwhile, of {os.cpu_count()}]")
    dashes = "-" * 13
    groups = f"{'':<18}{f'{dashes} end to end {dashes}':^38}{'':4}{f'{dashes} model step {dashes}':^38}"
    print(groups.rstrip())
    print(f"{'model':<12}{'batch':>6}{'posedistill':>15}{'mmpose':>15}{'ratio':>8}{'':4}"
          f"{'posedistill':>15}{'mmpose':>15}{'ratio':>8}")  # fmt: skip
    for r in rows:
        line = f"{r['model']:<12}{r['batch_size']:>6}"
        for part, gap in (("end_to_end", ""), ("model_step", " " * 4)):
            line += f"{gap}{cell(r['posedistill'], part):>15}{cell(r['mmpose'], part):>15}"
            q = r["ratios"][f"{part}.images_per_s"]
            line += f"{'-' if q is None else format(q, '.2f'):>8}"
        print(line)
    print("ratio = posedistill / mmpose (above 1: posedistill faster)")
    if under_load:
        print(f"measured under load: other processes used up to {max(others):.1f} of the {os.cpu_count()} CPUs "
              "during these runs; wall-clock numbers on a shared machine understate both libraries")  # fmt: skip

    atomic_write_json(
        args.out,
        {
            "benchmark": "train_throughput",
            "dataset": "lspet",
            "num_instances": len(instances),
            "num_keypoints": 14,
            "input_hw": [INPUT_SIZE[1], INPUT_SIZE[0]],
            "batch_size": args.batch_size,
            "iters": args.iters,
            "warmup": args.warmup,
            "step_iters": args.step_iters,
            "rounds": args.rounds,
            "workers": args.workers,
            "threads": args.threads,
            "optimizer": {"type": "AdamW", "lr": LR, "weight_decay": 0.0},
            "augmentation": "RTMPose stage 1 (posedistill AugConfig(); mmpose train_pipeline of the config file)",
            "rows": rows,
            "mmpose": {"python": str(mmpose_python) if mmpose_python else None, "note": mmpose_note, **mmpose_env},
            "machine": {
                "cpus": os.cpu_count(),
                "measured_under_load": under_load,
                "other_processes_cores_max": max(others),
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
