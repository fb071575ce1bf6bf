"""Synthetic data generation: images per second on one core, memory against dataset size, label statistics.

1. Throughput of ``generate_dataset`` in one process (render + JPEG encode + file write + JSON bookkeeping) at
   256×256 with 1-3 people, for each difficulty (the target is >= 100 images/s per core on ``medium``), and of
   ``generate_videos`` (frames/s).
2. Peak RSS of a fresh process generating N = 100 and N = 1000 (``--big``) images: the JSON is streamed, so the
   growth must stay near zero.
3. The keypoint visibility fractions of each difficulty with its own people range (easy 1, medium 1-3, hard 2-4):
   visible / occluded / outside the image / unlabelled (hidden or too small faces and hands), from the
   generated ``annotations.json``.

Prints a table and writes ``benchmarks/results/synth.json``. The load average is recorded: on a shared machine,
numbers taken under load understate the generator.

    .venv/bin/python benchmarks/bench_synth.py [--images 600] [--big 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from posedistill.data.synthetic import generate_dataset, generate_videos  # noqa: E402
from posedistill.fileio import atomic_write_json  # noqa: E402

SIZE = (256, 256)
PEOPLE = (1, 3)

_RSS_CHILD = """
import json, resource, sys
sys.path.insert(0, {root!r})
from posedistill.data.synthetic import generate_dataset
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
generate_dataset({out!r}, {n}, size={size!r}, people={people!r}, difficulty="medium", seed=0)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"before_kib": before, "peak_kib": after}}))
"""


def throughput(difficulty: str, n: int, tmp: Path, people: tuple[int, int] | None = PEOPLE) -> dict:
    out = tmp / f"img_{difficulty}_{people}"
    t, c = time.perf_counter(), time.process_time()
    path = generate_dataset(out, n, size=SIZE, people=people, difficulty=difficulty, seed=0)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    info = json.loads(path.read_text())["info"]
    return {"images": n, "seconds": round(dt, 3), "cpu_seconds": round(dc, 3), "images_per_s": round(n / dt, 1),
            "images_per_cpu_s": round(n / dc, 1), "stats": info["stats"]}  # fmt: skip


def video_throughput(n_videos: int, frames: int, tmp: Path) -> dict:
    t, c = time.perf_counter(), time.process_time()
    generate_videos(tmp / "vid", n_videos, frames, size=SIZE, people=PEOPLE, difficulty="medium", seed=0)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    n = n_videos * frames
    return {"frames": n, "seconds": round(dt, 3), "frames_per_s": round(n / dt, 1),
            "frames_per_cpu_s": round(n / dc, 1)}  # fmt: skip


def peak_rss(n: int, tmp: Path) -> dict:
    code = _RSS_CHILD.format(root=str(ROOT), out=str(tmp / f"rss_{n}"), n=n, size=SIZE, people=PEOPLE)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=600, help="images per difficulty for the throughput runs")
    ap.add_argument("--small", type=int, default=100, help="N of the small memory run")
    ap.add_argument("--big", type=int, default=1000, help="N of the big memory run")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "synth.json")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    load_before = os.getloadavg()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as d:
        tmp = Path(d)
        generate_dataset(tmp / "warmup", 20, size=SIZE, seed=1)
        results["throughput"] = {k: throughput(k, args.images, tmp) for k in ("easy", "medium", "hard")}
        results["presets"] = {k: throughput(k, args.images, tmp, None) for k in ("easy", "medium", "hard")}
        results["video"] = video_throughput(max(1, args.images // 100), 100, tmp)
        small, big = peak_rss(args.small, tmp), peak_rss(args.big, tmp)
    growth = (big["peak_kib"] - small["peak_kib"]) / 1024
    results["memory"] = {
        f"peak_rss_mib_n{args.small}": round(small["peak_kib"] / 1024, 1),
        f"peak_rss_mib_n{args.big}": round(big["peak_kib"] / 1024, 1),
        "growth_mib": round(growth, 1),
    }
    results["setup"] = {
        "size": list(SIZE), "people": list(PEOPLE), "processes": 1, "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip

    print(f"synthetic data, {SIZE[0]}x{SIZE[1]}, one process (load {load_before[0]:.1f}); images/s = wall clock, "
          "per CPU-s = per core")  # fmt: skip
    print(f"{'':<8}| at {PEOPLE[0]}-{PEOPLE[1]} people       | own people range")
    print(f"{'':<8}| {'img/s':>7}{'/CPU-s':>8}      | {'img/s':>7}{'/CPU-s':>8}{'people':>8}{'visible':>9}"
          f"{'occluded':>9}{'outside':>9}{'unlabelled':>11}")  # fmt: skip
    for k, r in results["throughput"].items():
        p = results["presets"][k]
        a = p["stats"]["all"]
        ppl = p["stats"]["people"] / max(p["stats"]["images"], 1)
        print(f"{k:<8}| {r['images_per_s']:>7.1f}{r['images_per_cpu_s']:>8.1f}      | {p['images_per_s']:>7.1f}"
              f"{p['images_per_cpu_s']:>8.1f}{ppl:>8.2f}{a['visible']:>9.1%}{a['occluded']:>9.1%}{a['outside']:>9.1%}"
              f"{a['unlabelled']:>11.1%}")  # fmt: skip
    v = results["video"]
    print(f"video (medium, {PEOPLE[0]}-{PEOPLE[1]} people): {v['frames_per_s']:.1f} frames/s, "
          f"{v['frames_per_cpu_s']:.1f} per CPU-s")  # fmt: skip
    m = results["memory"]
    print(f"peak RSS: N={args.small}: {m[f'peak_rss_mib_n{args.small}']} MiB, N={args.big}: "
          f"{m[f'peak_rss_mib_n{args.big}']} MiB, growth {m['growth_mib']} MiB")  # fmt: skip
    atomic_write_json(args.out, results, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
