"""``posedistill bench MODEL [--batch 1 8] [--warmup 50] [--iters 200] [--backend ort torch] [--json OUT]``.

Measures, for one pose model, side by side in one run:

- params and FLOPs (MACs, as the RTMPose tables count them; needs torch);
- the machine's float32 matmul speed (a 1024³ sgemm: numpy/OpenBLAS and torch, one thread and all threads,
  before the runs; and numpy all threads in a block right after the model runs) and the model's **FLOP floor**: its
  2 × conv/matmul MACs at sgemm speed, the time the arithmetic alone would take. On a shared machine two
  readings are given: the median latency against the floor at the median sgemm speed of that block (same load),
  and the best run against the floor at the best sgemm speed seen;
- model latency (median and p90 over ``--iters`` runs after ``--warmup`` runs) and throughput at each batch
  size, for onnxruntime and PyTorch eager; the cases of one backend run interleaved round by round so that load
  from other processes spreads over all of them;
- the batching gain: one call for 8 crops (one ``session.run``, the runtime's default) against a loop of eight
  batch-1 calls of the same ONNX (rtmlib's way), and the same crops sharded over the cores (``workers``, see
  :class:`~posedistill.infer.onnx_model.OnnxPoseModel`);
- end-to-end frames: ``PoseEstimator`` on a 640×480 frame with 1 and 8 given person boxes (crop, normalise,
  model, decode, map back), batched and as a per-box loop;
- with ``--int8 CALIB``: the same ONNX quantized to int8 (``posedistill export --int8``'s settings, calibrated on
  ``--calib-count`` crops of CALIB, a COCO json or a folder of images), as ``onnxruntime-int8`` rows (one call per
  batch, batched end-to-end frames; timed right after the float32 onnxruntime block); and the CPU's int8-relevant
  instruction sets (AVX2, AVX-512, VNNI) in the machine description.

MODEL is a model name (``rtmpose-t``: built with random weights, ``--num-keypoints`` / ``--input-size``), a
checkpoint, or an ONNX file (the PyTorch rows then rebuild the network from the file's ``build_args`` with random
weights: timing does not depend on the weights). Prints a table and writes JSON (``--json``), atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SGEMM_N = 1024
ONE = "one call"
INT8 = "onnxruntime-int8"
SHARDED = "sharded"
LOOP = "batch-1 loop"
HELP = "latency, throughput, params and FLOPs of a pose model under onnxruntime and PyTorch (+ end-to-end frames)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model name (e.g. rtmpose-t), checkpoint or .onnx file")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed runs per case first (default 50)")
    parser.add_argument("--iters", type=int, default=200, help="timed runs per case (default 200)")
    parser.add_argument("--backend", nargs="+", default=["ort", "torch"], choices=("ort", "torch"),
                        help="backends to time (default ort torch)")  # fmt: skip
    parser.add_argument("--threads", type=int, help="threads for both backends (default: all cores)")
    parser.add_argument("--num-keypoints", type=int, default=17, help="K for a model name (default 17)")
    parser.add_argument("--input-size", type=int, nargs=2, default=[192, 256], metavar=("W", "H"),
                        help="input (w, h) for a model name (default 192 256)")  # fmt: skip
    parser.add_argument("--persons", type=int, nargs="+", default=[1, 8],
                        help="people per frame in the end-to-end rows (default 1 8)")  # fmt: skip
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end frame rows")
    parser.add_argument(
        "--int8",
        metavar="CALIB",
        help="also time the model quantized to int8, calibrated on CALIB (COCO json or image folder)",
    )
    parser.add_argument("--calib-count", type=int, default=300, help="int8 calibration crops (default 300)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")


# ------------------------------------------------------------------------------------------------ timing


def summarize(times_ms: list[float], batch: int = 1) -> dict[str, float]:
    """Median / p90 / mean / min in ms and throughput (items per second at the median)."""
    t = sorted(times_ms)
    p90 = t[min(len(t) - 1, round(0.9 * (len(t) - 1)))]
    med = statistics.median(t)
    return {"median_ms": med, "p90_ms": p90, "mean_ms": statistics.fmean(t), "min_ms": t[0], "runs": len(t),
            "throughput_per_s": batch * 1e3 / med if med > 0 else float("inf")}  # fmt: skip


def time_cases(cases: list[Callable[[], Any]], warmup: int, iters: int) -> list[list[float]]:
    """Run every case ``warmup`` times, then ``iters`` rounds of one timed run of each case (interleaved)."""
    for fn in cases:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in cases]
    for _ in range(iters):
        for fn, t in zip(cases, times):
            t0 = time.perf_counter()
            fn()
            t.append((time.perf_counter() - t0) * 1e3)
    return times


_NUMPY_SGEMM = """
import sys, time
import numpy as np
n, repeats = int(sys.argv[1]), int(sys.argv[2])
a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
b = a.copy()
a @ b
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - t0)
print(2 * n**3 / best / 1e9)
"""


def numpy_sgemm_gflops(threads: int, n: int = 1024, repeats: int = 20) -> float | None:
    """Best numpy (OpenBLAS) float32 n×n×n matmul speed in GFLOP/s with ``threads`` BLAS threads, measured in a
    subprocess (the BLAS thread count is fixed when numpy loads). None if it cannot run."""
    env = {**os.environ, **{k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    try:
        proc = subprocess.run([sys.executable, "-c", _NUMPY_SGEMM, str(n), str(repeats)], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        return float(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def torch_sgemm_gflops(threads: int, n: int = 1024, repeats: int = 20) -> float | None:
    """Best torch float32 n×n×n matmul speed in GFLOP/s with ``threads`` threads; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    finally:
        torch.set_num_threads(old)
    return 2 * n**3 / best / 1e9


def matmul_gflops(threads: int, n: int = 1024, repeats: int = 20) -> dict[str, float | None]:
    """The machine's float32 matmul speed with ``threads`` threads (2n³ FLOP per n×n×n product, best of
    ``repeats``): numpy/OpenBLAS and torch, and ``best`` = the faster of the two (what the FLOP floor uses)."""
    out = {"numpy": numpy_sgemm_gflops(threads, n, repeats), "torch": torch_sgemm_gflops(threads, n, repeats)}
    vals = [v for v in out.values() if v]
    out["best"] = max(vals) if vals else None
    return out


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni")


def cpu_isa() -> dict[str, Any]:
    """The CPU model and the instruction sets that decide int8 speed (``/proc/cpuinfo`` flags; None where the file
    is missing): ``vnni`` is true with AVX-512 VNNI or AVX-VNNI (one instruction for the u8×s8 multiply-add with
    32-bit accumulation; without it onnxruntime's AVX2 kernels go through 16-bit intermediates)."""
    flags: set[str] | None = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    out: dict[str, Any] = {"cpu": cpu_name()}
    out.update({f: None if flags is None else f in flags for f in INT8_FLAGS})
    out["vnni"] = None if flags is None else bool(out["avx512_vnni"] or out["avx_vnni"])
    return out


# ------------------------------------------------------------------------------------------------ the model


def prepare(model: str, num_keypoints: int, input_size: tuple[int, int], workdir: Path) -> dict[str, Any]:
    """The ONNX file (exported to ``workdir`` when needed) and, with torch, the network (random weights for a name
    or a bare ONNX file) plus its params / FLOPs."""
    p = Path(model)
    torch_model = None
    meta: dict[str, Any] = {}
    onnx_path: Path | None = None
    try:
        import torch
    except ImportError:
        torch = None
    if p.suffix == ".onnx" or "://" in model or p.suffix == ".zip":
        from posedistill.infer.hub import resolve_model
        from posedistill.infer.onnx_model import OnnxPoseModel

        onnx_path = resolve_model(model)
        info = OnnxPoseModel(onnx_path, threads=1).info
        args = info.metadata.get("build_args")
        if torch is not None and args:
            from posedistill.models import build_model

            torch_model = build_model(**args).eval()
        meta = {"layout": info.layout, "input_size": list(info.input_size), "codec": info.codec}
    elif p.exists():
        if torch is None:
            raise SystemExit(f"posedistill bench: {model} is a checkpoint; timing it needs torch (posedistill[train])")
        from posedistill.engine.checkpoint import load_model_from_checkpoint

        torch_model, meta = load_model_from_checkpoint(model)
    else:
        if torch is None:
            raise SystemExit(f"posedistill bench: building {model!r} needs torch (posedistill[train])")
        from posedistill.models import build_model

        torch.manual_seed(0)
        torch_model = build_model(model, num_keypoints, input_size).eval()
    if onnx_path is None:
        from posedistill.infer.export import export_onnx

        onnx_path = export_onnx(torch_model, workdir / "model.onnx", meta=meta, dynamic_batch=True)
    out: dict[str, Any] = {"onnx": onnx_path, "torch_model": torch_model, "meta": meta}
    if torch_model is not None:
        from posedistill.models import count_flops, count_params

        w, h = (int(v) for v in torch_model.build_args["input_size"])
        out["params_m"] = count_params(torch_model) / 1e6
        out["gflops"] = count_flops(torch_model, (1, 3, h, w)) / 1e9
        out["gflops_matmul_only"] = count_flops(torch_model, (1, 3, h, w), mmengine_compatible=False) / 1e9
    return out


def bench(
    model: str,
    batches: list[int],
    warmup: int,
    iters: int,
    backends: list[str],
    threads: int | None = None,
    num_keypoints: int = 17,
    input_size: tuple[int, int] = (192, 256),
    persons: list[int] | None = None,
    e2e: bool = True,
    log: Callable[[str], None] = print,
    int8_calib: str | Path | None = None,
    calib_count: int = 300,
) -> dict[str, Any]:
    """Run the whole benchmark for one model; returns the JSON-ready results. ``int8_calib``: also time the ONNX
    quantized to int8 on that calibration source (:func:`posedistill.infer.quantize.quantize_with_calibration`)."""
    import numpy as np

    from posedistill.infer.estimator import PoseEstimator, TorchPoseModel
    from posedistill.infer.onnx_model import OnnxPoseModel, available_cores

    cores = threads or available_cores()
    with tempfile.TemporaryDirectory(prefix="posedistill-bench-") as tmp:
        prep = prepare(model, num_keypoints, tuple(input_size), Path(tmp))  # type: ignore[arg-type]
        ort_model = OnnxPoseModel(prep["onnx"], threads=cores)  # the default: all crops in one session.run
        ort_sharded = OnnxPoseModel(prep["onnx"], threads=cores, workers=cores)
        info = ort_model.info
        ort_int8 = None
        int8_info: dict[str, Any] | None = None
        if int8_calib is not None and "ort" in backends:
            from posedistill.infer.quantize import quantize_with_calibration

            int8_path = quantize_with_calibration(prep["onnx"], Path(tmp) / "model_int8.onnx", int8_calib, calib_count)
            ort_int8 = OnnxPoseModel(int8_path, threads=cores)
            q = ort_int8.info.metadata["int8"]
            int8_info = {"calibration": q["calibration"], "fp32_nodes": q["fp32_nodes"],
                         "file_mb": {"fp32": Path(prep["onnx"]).stat().st_size / 1e6,
                                     "int8": int8_path.stat().st_size / 1e6}}  # fmt: skip
        torch_model = prep["torch_model"]
        if "torch" in backends and torch_model is None:
            log("note: no PyTorch network for this model (torch missing or no build_args): skipping torch rows")
            backends = [b for b in backends if b != "torch"]
        if "torch" in backends:
            import torch

            torch.set_num_threads(cores)
            torch_run = TorchPoseModel.from_module(torch_model, prep["meta"], layout=info.layout)
        w, h = info.input_size
        rng = np.random.default_rng(0)

        # machine speed first (what the floor is measured against), then the model cases. Cases of one backend
        # run interleaved round by round; backends run one after the other, because each one's idle worker
        # threads keep spinning for a while after a call and would steal the cores from the other.
        mm_all = matmul_gflops(cores)
        mm_one = matmul_gflops(1)
        gf_all, gf_one = mm_all["best"], mm_one["best"]
        groups: dict[str, list[tuple[dict[str, Any], Callable[[], Any]]]] = {b: [] for b in backends}
        for b in batches:
            x = rng.standard_normal((b, 3, h, w)).astype(np.float32)
            if "ort" in backends:
                # the default (one session.run with all b crops) and, for b > 1, the crops sharded over the cores
                groups["ort"].append(({"backend": "onnxruntime", "batch": b, "mode": ONE},
                                      lambda x=x: ort_model.run(x)))  # fmt: skip
                if ort_int8 is not None:  # a session of its own: a group of its own (see above)
                    groups.setdefault("ort-int8", []).append(({"backend": INT8, "batch": b, "mode": ONE},
                                                              lambda x=x: ort_int8.run(x)))  # fmt: skip
                if b > 1 and cores > 1:
                    groups.setdefault("ort-sharded", []).append(
                        ({"backend": "onnxruntime", "batch": b, "mode": SHARDED}, lambda x=x: ort_sharded.run(x))
                    )
            if "torch" in backends:
                groups["torch"].append(({"backend": "torch", "batch": b, "mode": ONE},
                                        lambda x=x: torch_run.run(x)))  # fmt: skip
        loop_n = max(batches)
        if "ort" in backends and loop_n > 1:
            xs = [rng.standard_normal((1, 3, h, w)).astype(np.float32) for _ in range(loop_n)]
            groups["ort"].append(({"backend": "onnxruntime", "batch": loop_n, "mode": LOOP},
                                  lambda: [ort_model.run(xi) for xi in xs]))  # fmt: skip
        # the sgemm in a group of its own, right after the model cases: interleaved with them, its 12 MB of operands
        # flushed the caches before every model call and its idle BLAS threads kept spinning, which slowed single
        # calls more than loops (batch-8 "one call" then looked slower than eight batch-1 calls)
        sa = rng.standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32)
        sb = sa.copy()
        groups["sgemm"] = [({"backend": "numpy", "batch": 1, "mode": "sgemm"}, lambda: sa @ sb)]
        model_rows = []
        sgemm_row: dict[str, Any] = {}
        for cases in groups.values():
            for (lab, _), t in zip(cases, time_cases([fn for _, fn in cases], warmup, iters)):
                if lab["mode"] == "sgemm":
                    sgemm_row = summarize(t)
                else:
                    model_rows.append({**lab, **summarize(t, lab["batch"])})

        e2e_rows = []
        if e2e:
            frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
            ests = {"ort": PoseEstimator(ort_model)}
            if ort_int8 is not None:
                ests["ort-int8"] = PoseEstimator(ort_int8)
            if "torch" in backends:
                ests["torch"] = PoseEstimator(torch_run)
            frames = []
            for n in persons or [1, 8]:
                x1 = rng.uniform(0, 400, n)
                y1 = rng.uniform(0, 200, n)
                frames.append(np.stack([x1, y1, x1 + rng.uniform(80, 240, n), y1 + rng.uniform(150, 280, n)], 1))
            for key, est in ests.items():
                name = {"ort": "onnxruntime", "ort-int8": INT8}.get(key, key)
                cases = []
                for boxes in frames:
                    n = len(boxes)
                    cases.append(({"backend": name, "persons": n, "mode": "batched"},
                                  lambda est=est, boxes=boxes: est(frame, boxes=boxes)))  # fmt: skip
                    if n > 1 and key == "ort":
                        loop = lambda est=est, boxes=boxes: [est(frame, boxes=bx[None]) for bx in boxes]  # noqa: E731
                        cases.append(({"backend": name, "persons": n, "mode": "per-box loop"}, loop))
                times = time_cases([fn for _, fn in cases], max(1, warmup // 5), max(1, iters // 2))
                for (lab, _), t in zip(cases, times):
                    e2e_rows.append({**lab, **summarize(t, 1)})

    # FLOP floor = the model's conv/matmul FLOPs at sgemm speed, per crop. Two readings on a shared machine: the
    # median sgemm of the interleaved runs against the model's median latency (same load), and the best sgemm
    # seen at all against the model's best run (the quietest moments).
    sg = 2 * SGEMM_N**3 / 1e9
    sg_median = sg / (sgemm_row["median_ms"] / 1e3) if sgemm_row else None
    cands = [v for v in (gf_all, sg / (sgemm_row["min_ms"] / 1e3) if sgemm_row else None) if v]
    sg_best = max(cands) if cands else None
    floor_ms = floor_best_ms = None
    if prep.get("gflops_matmul_only"):
        flop = 2 * prep["gflops_matmul_only"]
        floor_ms = flop / sg_median * 1e3 if sg_median else None
        floor_best_ms = flop / sg_best * 1e3 if sg_best else None
    for r in model_rows:
        if floor_ms is not None:
            r["floor_ms"] = floor_ms * r["batch"]
            r["x_floor"] = r["median_ms"] / r["floor_ms"]
        if floor_best_ms is not None:
            r["floor_best_ms"] = floor_best_ms * r["batch"]
            r["x_floor_best"] = r["min_ms"] / r["floor_best_ms"]
    ort_by = {(r["batch"], r["mode"]): r for r in model_rows if r["backend"] == "onnxruntime"}

    def ratio(a: str, b: str, stat: str) -> float | None:
        if (loop_n, a) in ort_by and (loop_n, b) in ort_by:
            return ort_by[(loop_n, a)][stat] / ort_by[(loop_n, b)][stat]
        return None

    gain, gain_best = ratio(LOOP, ONE, "median_ms"), ratio(LOOP, ONE, "min_ms")
    gain_sharded = ratio(LOOP, SHARDED, "median_ms")
    return {
        "model": model,
        "onnx_metadata": {
            "layout": info.layout,
            "num_keypoints": info.num_keypoints,
            "input_size": [w, h],
            "kind": info.kind,
        },
        "params_m": prep.get("params_m"),
        "gflops": prep.get("gflops"),
        "gflops_matmul_only": prep.get("gflops_matmul_only"),
        "machine": {
            "cpu": cpu_name(),
            "cores": available_cores(),
            "threads": cores,
            "matmul_gflops_all_threads": gf_all,
            "matmul_gflops_1_thread": gf_one,
            "matmul_gflops_by_library": {"all_threads": mm_all, "1_thread": mm_one},
            "python": platform.python_version(),
            "onnxruntime": __import__("onnxruntime").__version__,
            "torch": _torch_version(),
            "isa": cpu_isa(),
        },
        "sgemm_during_run": {**sgemm_row, "n": SGEMM_N, "gflops_median": sg_median, "gflops_best": sg_best},
        "floor_ms_per_crop": floor_ms,
        "floor_best_ms_per_crop": floor_best_ms,
        "model_latency": model_rows,
        "batching_gain": gain,
        "batching_gain_best_runs": gain_best,
        "batching_gain_sharded": gain_sharded,
        "sharded_workers": ort_sharded.workers,
        "sharded_micro_batch": ort_sharded.micro_batch,
        "batching_gain_batch": loop_n,
        "end_to_end": e2e_rows,
        "int8": int8_info,
        "settings": {
            "warmup": warmup,
            "iters": iters,
            "e2e_warmup": max(1, warmup // 5),
            "e2e_iters": max(1, iters // 2),
            "frame": [640, 480],
        },
    }


def _torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def format_report(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = []
    md = res["onnx_metadata"]
    gfl = "-" if res["gflops"] is None else f"{res['gflops']:.3f}"
    par = "-" if res["params_m"] is None else f"{res['params_m']:.3f}"
    lines.append(f"{res['model']}: {md['kind']}, layout {md['layout']}, K {md['num_keypoints']}, input "
                 f"{md['input_size'][0]}x{md['input_size'][1]}, params {par} M, GFLOPs (MACs) {gfl}")  # fmt: skip

    def gf(d: dict[str, Any]) -> str:
        return ", ".join(f"{k} {'-' if v is None else f'{v:.1f}'}" for k, v in d.items())

    lib = m["matmul_gflops_by_library"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, {m['threads']} threads")
    isa = m.get("isa") or {}
    if isa:
        flag = {None: "-", True: "yes", False: "no"}
        lines.append("int8 instruction sets: " + ", ".join(f"{k} {flag[isa.get(k)]}" for k in (*INT8_FLAGS, "vnni")))
    lines.append(f"sgemm GFLOP/s (1024^3, best of 20, before the runs): {m['threads']} threads: "
                 f"{gf(lib['all_threads'])}; 1 thread: {gf(lib['1_thread'])}")  # fmt: skip
    si = res["sgemm_during_run"]
    if si.get("gflops_median"):
        lines.append(f"sgemm right after the model runs: median {si['gflops_median']:.1f}, best "
                     f"{si['gflops_best']:.1f} GFLOP/s")  # fmt: skip
    if res["floor_ms_per_crop"] is not None:
        flop = 2 * res["gflops_matmul_only"]
        lines.append(f"FLOP floor per crop ({flop:.3f} GFLOP of conv/matmul): {res['floor_ms_per_crop']:.2f} ms at the "
                     f"median sgemm speed, {res['floor_best_ms_per_crop']:.2f} ms at the best")  # fmt: skip
    lines.append("x floor = median / median-speed floor; x best = best run / best-speed floor")
    lines.append("")
    lines.append(f"{'backend':16s} {'batch':>5s} {'mode':>13s} {'median ms':>10s} {'p90 ms':>8s} {'min ms':>8s} "
                 f"{'crops/s':>9s} {'x floor':>8s} {'x best':>7s}")  # fmt: skip
    for r in res["model_latency"]:
        xf = f"{r['x_floor']:8.2f}" if "x_floor" in r else f"{'-':>8s}"
        xb = f"{r['x_floor_best']:7.2f}" if "x_floor_best" in r else f"{'-':>7s}"
        lines.append(f"{r['backend']:16s} {r['batch']:5d} {r['mode']:>13s} {r['median_ms']:10.2f} {r['p90_ms']:8.2f} "
                     f"{r['min_ms']:8.2f} {r['throughput_per_s']:9.1f} {xf} {xb}")  # fmt: skip
    n = res["batching_gain_batch"]
    if res["batching_gain"] is not None:
        lines.append(f"batching gain, {n} crops: one call is {res['batching_gain']:.2f}x the throughput of a "
                     f"batch-1 loop (rtmlib's way) at the median, {res['batching_gain_best_runs']:.2f}x on the best "
                     "runs")  # fmt: skip
    if res.get("batching_gain_sharded") is not None:
        lines.append(f"  sharded over {res['sharded_workers']} single-thread sessions (micro-batch "
                     f"{res['sharded_micro_batch']}): {res['batching_gain_sharded']:.2f}x")  # fmt: skip
    if res.get("int8"):
        q = res["int8"]
        lines.append(f"int8: {q['file_mb']['fp32']:.1f} -> {q['file_mb']['int8']:.1f} MB, calibrated on "
                     f"{q['calibration']['crops']} crops of {q['calibration']['source']}; float32 nodes: "
                     f"{', '.join(q['fp32_nodes']) or 'none'}")  # fmt: skip
    if res["end_to_end"]:
        lines.append("")
        lines.append("end-to-end frame 640x480 (PoseEstimator, given boxes)")
        lines.append(f"{'backend':16s} {'persons':>7s} {'mode':>13s} {'median ms':>10s} {'p90 ms':>8s} "
                     f"{'min ms':>8s} {'frames/s':>9s}")  # fmt: skip
        for r in res["end_to_end"]:
            lines.append(f"{r['backend']:16s} {r['persons']:7d} {r['mode']:>13s} {r['median_ms']:10.2f} "
                         f"{r['p90_ms']:8.2f} {r['min_ms']:8.2f} {r['throughput_per_s']:9.1f}")  # fmt: skip
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from posedistill.errors import PoseDataError
    from posedistill.fileio import atomic_write_json, check_writable_output

    if args.iters < 1 or args.warmup < 0 or min(args.batch) < 1:
        print("posedistill bench: error: need --iters >= 1, --warmup >= 0 and batch sizes >= 1", file=sys.stderr)
        return 2
    if args.json:  # before the minutes of timing, not after
        check_writable_output(args.json, "file", "--json")
    try:
        res = bench(
            args.model, args.batch, args.warmup, args.iters, list(args.backend), threads=args.threads,
            num_keypoints=args.num_keypoints, input_size=tuple(args.input_size), persons=args.persons,
            e2e=not args.no_e2e, int8_calib=args.int8, calib_count=args.calib_count,
        )  # fmt: skip
    except (PoseDataError, ValueError, KeyError) as e:
        print(f"posedistill bench: error: {e}", file=sys.stderr)
        return 2
    print(format_report(res))
    if args.json:
        atomic_write_json(args.json, res, indent=1)
        print(f"\nwrote {args.json}")
    return 0
