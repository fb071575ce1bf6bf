"""Runtime benchmark: RTMPose-t and -s body-17 and RTMPose-t whole-body-133 at 256×192 under onnxruntime and
PyTorch eager, with the machine's sgemm speed, the FLOP floor, the batching gain and end-to-end frames.

    .venv/bin/python benchmarks/bench_runtime.py                 # 50 warm-up + 200 timed runs per case
    .venv/bin/python benchmarks/bench_runtime.py --iters 50      # quicker

Each model runs through ``posedistill bench`` (see ``posedistill/commands/bench.py`` for what is measured) with
random weights (timing does not depend on them). Writes ``benchmarks/results/runtime.json`` atomically and prints
one table per model, then the two goals: RTMPose-t under onnxruntime within 1.5× of its FLOP floor, and one
batch-8 call at least 2× the throughput of a batch-1 loop over the same ONNX (rtmlib's way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posedistill.commands.bench import bench, format_report
from posedistill.fileio import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "runtime.json"

# (label, model name, K, input (w, h))
MODELS: list[tuple[str, str, int, tuple[int, int]]] = [
    ("rtmpose-t body 256x192", "rtmpose-t", 17, (192, 256)),
    ("rtmpose-s body 256x192", "rtmpose-s", 17, (192, 256)),
    ("rtmpose-t wholebody 256x192", "rtmpose-t", 133, (192, 256)),
]

FLOOR_GOAL = 1.5
BATCH_GOAL = 2.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--backends", nargs="+", default=["ort", "torch"], choices=("ort", "torch"))
    ap.add_argument("--threads", type=int, help="threads per backend (default: all cores)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    results = []
    for label, name, k, size in MODELS:
        print(f"=== {label}", flush=True)
        res = bench(name, args.batches, args.warmup, args.iters, list(args.backends), threads=args.threads,
                    num_keypoints=k, input_size=size, persons=[1, 8])  # fmt: skip
        res["label"] = label
        print(format_report(res), flush=True)
        print(flush=True)
        results.append(res)

    t = results[0]
    ort1 = next((r for r in t["model_latency"] if r["backend"] == "onnxruntime" and r["batch"] == 1), None)
    ort8 = next((r for r in t["model_latency"] if r["backend"] == "onnxruntime" and r["batch"] == 8
                 and r["mode"] == "one call"), None)  # fmt: skip
    goals = {
        "floor_goal": FLOOR_GOAL,
        "rtmpose_t_ort_batch1_x_floor": None if ort1 is None else ort1.get("x_floor"),
        "rtmpose_t_ort_batch1_x_floor_best": None if ort1 is None else ort1.get("x_floor_best"),
        "rtmpose_t_ort_batch8_x_floor": None if ort8 is None else ort8.get("x_floor"),
        "rtmpose_t_ort_batch8_x_floor_best": None if ort8 is None else ort8.get("x_floor_best"),
        "batching_goal": BATCH_GOAL,
        "rtmpose_t_batching_gain": t["batching_gain"],
        "rtmpose_t_batching_gain_best_runs": t["batching_gain_best_runs"],
        "rtmpose_t_batching_gain_sharded": t["batching_gain_sharded"],
    }
    print("goals (RTMPose-t body 256x192, onnxruntime):")
    for key in ("rtmpose_t_ort_batch1_x_floor", "rtmpose_t_ort_batch1_x_floor_best", "rtmpose_t_ort_batch8_x_floor",
                "rtmpose_t_ort_batch8_x_floor_best"):  # fmt: skip
        v = goals[key]
        if v is not None:
            print(f"  {key}: {v:.2f} x FLOP floor ({'met' if v <= FLOOR_GOAL else 'not met'}, goal <= {FLOOR_GOAL})")
    if t["batching_gain"] is not None:
        g = t["batching_gain"]
        print(f"  batching gain, 8 crops: {g:.2f}x at the median ({'met' if g >= BATCH_GOAL else 'not met'}, goal >= "
              f"{BATCH_GOAL}); {t['batching_gain_best_runs']:.2f}x on the best runs")  # fmt: skip
    atomic_write_json(args.out, {"models": results, "goals": goals}, indent=1)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
