"""Model sizes and CPU latency: params and FLOPs (MACs) per model next to the published numbers, and PyTorch
eager inference latency (median / p90 over timed runs after warm-up) at batch 1 and 8.

    .venv/bin/python benchmarks/bench_models.py              # full run, a few minutes on 2 cores
    .venv/bin/python benchmarks/bench_models.py --no-latency # sizes only (seconds)

Writes ``benchmarks/results/models.json`` (atomically) and prints a table. FLOPs are counted the way mmpose's
``get_flops.py`` (mmengine) counts them: see ``posedistill/models/complexity.py``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posedistill.commands.bench import cpu_name
from posedistill.fileio import atomic_write_json
from posedistill.models import build_model, count_flops, count_params

RESULTS = Path(__file__).resolve().parent / "results" / "models.json"

# (label, model name, K, input (w, h), published GFLOPs, published params M); published = docs/rtmpose-dwpose.md §9,
# docs/okdhp-dkd.md A.3 (hourglass: conv MACs only, K = 16), mmpose model zoo (SimpleBaseline-res50)
SIZE_ROWS: list[tuple[str, str, int, tuple[int, int], float | None, float | None]] = [
    ("rtmpose-t body", "rtmpose-t", 17, (192, 256), 0.359, 3.337),
    ("rtmpose-s body", "rtmpose-s", 17, (192, 256), 0.682, 5.473),
    ("rtmpose-m body", "rtmpose-m", 17, (192, 256), 1.929, 13.588),
    ("rtmpose-l body", "rtmpose-l", 17, (192, 256), 4.160, 27.660),
    ("rtmpose-t wholebody", "rtmpose-t", 133, (192, 256), 0.552, 5.520),
    ("rtmpose-s wholebody", "rtmpose-s", 133, (192, 256), 0.910, 8.384),
    ("rtmpose-m wholebody", "rtmpose-m", 133, (192, 256), 2.227, 17.953),
    ("rtmpose-l wholebody", "rtmpose-l", 133, (192, 256), 4.528, 33.481),
    ("rtmpose-l wholebody 384", "rtmpose-l", 133, (288, 384), 10.078, 33.611),
    ("rtmpose-x wholebody 384", "rtmpose-x", 133, (288, 384), 18.1, None),
    ("simplebaseline-res18 body", "simplebaseline-res18", 17, (192, 256), None, None),
    ("simplebaseline-res50 body", "simplebaseline-res50", 17, (192, 256), 5.46, 34.0),
    ("cspnext-t-heatmap body", "cspnext-t-heatmap", 17, (192, 256), None, None),
    ("cspnext-m-heatmap body", "cspnext-m-heatmap", 17, (192, 256), None, None),
    ("hourglass-2stack mpii", "hourglass-2stack", 16, (256, 256), 8.99, None),
    ("hourglass-4stack mpii", "hourglass-4stack", 16, (256, 256), 15.36, 13.02),
    ("hourglass-8stack mpii", "hourglass-8stack", 16, (256, 256), 28.09, 25.59),
]

LATENCY_ROWS: list[tuple[str, str, int, tuple[int, int]]] = [
    ("rtmpose-t body", "rtmpose-t", 17, (192, 256)),
    ("rtmpose-s body", "rtmpose-s", 17, (192, 256)),
    ("rtmpose-m body", "rtmpose-m", 17, (192, 256)),
    ("rtmpose-l body", "rtmpose-l", 17, (192, 256)),
    ("rtmpose-l wholebody", "rtmpose-l", 133, (192, 256)),
]


def sizes() -> list[dict]:
    rows = []
    for label, name, k, (w, h), pub_gflops, pub_params in SIZE_ROWS:
        with torch.device("meta"):  # counting needs shapes only
            model = build_model(name, k, (w, h))
        hourglass = name.startswith("hourglass")
        rows.append(
            {
                "model": label,
                "name": name,
                "num_keypoints": k,
                "input_hw": [h, w],
                "params_m": count_params(model) / 1e6,
                "gflops": count_flops(model, (1, 3, h, w)) / 1e9,
                "gflops_conv_only": count_flops(model, (1, 3, h, w), mmengine_compatible=False) / 1e9,
                "published_gflops": pub_gflops,
                "published_gflops_counts": "conv MACs only" if hourglass else "mmengine MACs",
                "published_params_m": pub_params,
            }
        )
    return rows


@torch.no_grad()
def latencies(
    cases: list[tuple[torch.nn.Module, tuple[int, ...]]], warmup: int, min_runs: int, budget_s: float
) -> list[dict]:
    """Time every case in interleaved rounds (one run of each per round) so that load from other processes on a
    shared machine spreads over all cases instead of hitting one; ``min_ms`` is the least disturbed run."""
    inputs = [torch.randn(shape) for _, shape in cases]
    for (model, _), x in zip(cases, inputs):
        for _ in range(warmup):
            model(x)
    times: list[list[float]] = [[] for _ in cases]
    start = time.perf_counter()
    while len(times[0]) < min_runs or time.perf_counter() - start < budget_s:
        for (model, _), x, t in zip(cases, inputs, times):
            t0 = time.perf_counter()
            model(x)
            t.append((time.perf_counter() - t0) * 1e3)
    out = []
    for t in times:
        t.sort()
        p90 = t[min(len(t) - 1, round(0.9 * (len(t) - 1)))]
        out.append({"median_ms": statistics.median(t), "p90_ms": p90, "min_ms": t[0], "runs": len(t)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-latency", action="store_true", help="sizes only")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least hurt by other load)")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds of timed rounds at batch 1 (x sqrt(batch))")
    ap.add_argument("--min-runs", type=int, default=10, help="timed runs per case at least")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    size_rows = sizes()
    print(f"{'model':28s} {'params M':>9s} {'pub':>7s} {'GFLOPs':>8s} {'pub':>7s} {'conv-only':>9s}")
    for r in size_rows:
        pp = "-" if r["published_params_m"] is None else f"{r['published_params_m']:.3f}"
        pg = "-" if r["published_gflops"] is None else f"{r['published_gflops']:.3f}"
        print(
            f"{r['model']:28s} {r['params_m']:9.3f} {pp:>7s} {r['gflops']:8.3f} {pg:>7s} {r['gflops_conv_only']:9.3f}"
        )

    lat_rows: list[dict] = []
    if not args.no_latency:
        print(f"\nPyTorch eager CPU latency ({cpu_name()}, {args.threads} threads), ms")
        print(f"{'model':28s} {'batch':>5s} {'median':>8s} {'p90':>8s} {'min':>8s} {'ms/img':>7s} {'runs':>5s}")
        for b in args.batches:
            cases, meta = [], []
            for label, name, k, (w, h) in LATENCY_ROWS:
                torch.manual_seed(0)
                cases.append((build_model(name, k, (w, h)).eval(), (b, 3, h, w)))
                meta.append({"model": label, "name": name, "num_keypoints": k, "input_hw": [h, w], "batch": b})
            for m, r in zip(meta, latencies(cases, warmup=3, min_runs=args.min_runs, budget_s=args.budget * b**0.5)):
                r.update(m)
                lat_rows.append(r)
                print(
                    f"{r['model']:28s} {b:5d} {r['median_ms']:8.2f} {r['p90_ms']:8.2f} {r['min_ms']:8.2f} "
                    f"{r['median_ms'] / b:7.2f} {r['runs']:5d}"
                )

    atomic_write_json(
        args.out,
        {
            "sizes": size_rows,
            "latency": lat_rows,
            "machine": {
                "cpu": cpu_name(),
                "threads": args.threads,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "notes": "FLOPs = MACs as mmengine counts them (conv/linear/matmul MACs + 2 per BN element + pooling); "
            "latency = PyTorch eager, float32, no flip test, median / p90 / min of timed runs after warm-up, cases "
            "interleaved round by round",
        },
        indent=1,
    )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
