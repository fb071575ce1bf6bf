"""DKD table: the per-frame large model, the per-frame small model, a per-frame model of DKD's own cost and DKD
(small encoder + kernel distillator, large model as the pose initializer) on synthetic video, with the real JHMDB
and Bonn clips as sanity checks; three seeds, every row kept.

    .venv/bin/python benchmarks/bench_dkd.py --quick --seeds 0 1 2 --jobs 2   # make bench-dkd (2 CPU cores)
    .venv/bin/python benchmarks/bench_dkd.py --full      # bigger data, the standard ResNet-18 large model

Steps (every training run a ``posedistill train`` subprocess with one thread, ``--jobs`` at a time; a finished run
is reused, an interrupted one resumes from its last checkpoint; no validation during training):

1. synthetic videos (``generate_videos``, easy difficulty: one person per clip, 256×256 frames), train and val;
2. per seed, ``configs/dkd/per-frame-large_synthetic-video.yaml`` → the large model, later DKD's initializer. It
   must beat the small one, or the comparison is against an undertrained baseline: at 12 epochs it did not, so the
   quick profile trains it 30 epochs (the small model 24);
3. ``configs/dkd/per-frame-small_synthetic-video.yaml`` → the small model, which starts DKD's encoder;
4. ``configs/dkd/per-frame-dkd-cost_synthetic-video.yaml`` → a per-frame model as costly per frame as DKD (the
   small layout at base width 12: 0.041 GFLOPs), trained as many epochs as DKD's encoder sees in all (small + DKD);
5. ``configs/dkd/dkd_synthetic-video.yaml`` (``method.type: dkd``: 5-frame clips, frozen initializer, temporal
   discriminator);
6. scoring on the synthetic val videos and, mapped to COCO-17, the JHMDB clip (``jhmdb_goalkeeping``) and the Bonn
   PoseTrack video (``bonn_060470979``, 4 people) with their own boxes: PCK@0.2 by box and by torso
   (``posedistill.eval.video``). The per-frame models score every crop on its own; DKD runs online
   (``VideoPoseEstimator``: initializer on the first frame of each track only, unless ``--reinit-every``);
7. GFLOPs per frame (MACs as mmengine counts them; DKD: the initializer frames amortised over the frames actually
   run) and ms per frame (network only, batch 1, one thread, on the first track of each dataset, crops made
   beforehand; the first seed's models only: the architectures are the same in every seed);
8. the mean-pose baseline (``posedistill.eval.baseline``): the mean box-relative pose of the synthetic training
   people placed in every scored box, the same PCK; a model that does not beat its box PCK@0.2 by ``MARGIN``
   gets a warning. ``--baseline-only`` (re)computes its rows in an existing ``--out`` file without any model
   (seconds; the synthetic videos are generated when missing).

Writes ``benchmarks/results/dkd.json``: a list of rows {dataset, model, method, seed, metric, value, train_seconds}
with method ``per-frame-large`` / ``per-frame-small`` / ``per-frame-dkd-cost`` / ``dkd`` / ``mean-pose baseline``
(PCK rows only) and metric ``pck@0.2`` (box), ``pck@0.2/torso``, ``pck@0.2/per_joint/<joint>``,
``pck@0.2/torso/per_joint/<joint>``, ``gflops_per_frame`` or ``ms_per_frame``; prints the table (mean and min–max
over seeds) and the paired per-seed comparisons the table answers: large − small, DKD − large, DKD − the per-frame
model of its cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from posedistill.codecs import HeatmapCodec  # noqa: E402
from posedistill.data.clips import map_instances  # noqa: E402
from posedistill.data.image_io import read_image  # noqa: E402
from posedistill.data.loader import normalise_lut  # noqa: E402
from posedistill.data.transforms import crop_to_image  # noqa: E402
from posedistill.eval.baseline import NAME as BASELINE  # noqa: E402
from posedistill.eval.baseline import row_warnings  # noqa: E402
from posedistill.eval.video import dkd_run_flops, instances_pck, time_per_frame  # noqa: E402
from posedistill.fileio import atomic_write_json  # noqa: E402
from posedistill.infer.video_estimator import VideoPoseEstimator, crop_person, predict_records  # noqa: E402
from posedistill.models import count_flops  # noqa: E402
from posedistill.models.dkd import dkd_flops  # noqa: E402

CONFIGS = ROOT / "configs" / "dkd"
SHARED = ROOT.parent / "shared" / "data" / "video"

SAME_COST = "per-frame-dkd-cost"  # a per-frame model as wide as makes its GFLOPs / frame DKD's
PER_FRAME = ("per-frame-large", "per-frame-small", SAME_COST)
CONFIG_FILES = {
    "per-frame-large": CONFIGS / "per-frame-large_synthetic-video.yaml",
    "per-frame-small": CONFIGS / "per-frame-small_synthetic-video.yaml",
    SAME_COST: CONFIGS / "per-frame-dkd-cost_synthetic-video.yaml",
    "dkd": CONFIGS / "dkd_synthetic-video.yaml",
}
# quick: the large model trains 30 epochs (at 12 it lost to the small one's 20: undertrained), the small one 24 and
# the model of DKD's cost 32, the epochs DKD's encoder sees in all (24 as the small model + 8 in DKD)
_SAME_COST = {"name": "simplebaseline-res18", "base_channels": 12, "deconv_out_channels": [48, 48, 48]}
SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {
        "train_videos": 48, "val_videos": 8, "frames": 32, "large_epochs": 30, "small_epochs": 24, "dkd_epochs": 8,
        "same_cost_epochs": 32, "clip_stride": 2, "large": None, "encoder": None, "same_cost": _SAME_COST,
    },
    "smoke": {  # pipeline check only (seconds): not a result
        "train_videos": 4, "val_videos": 1, "frames": 10, "large_epochs": 1, "small_epochs": 1, "dkd_epochs": 1,
        "same_cost_epochs": 1, "clip_stride": 2, "large": None, "encoder": None, "same_cost": _SAME_COST,
    },
    "full": {
        "train_videos": 240, "val_videos": 24, "frames": 40, "large_epochs": 60, "small_epochs": 80, "dkd_epochs": 40,
        "same_cost_epochs": 120, "clip_stride": 1,
        "large": {"name": "simplebaseline-res18"},
        "encoder": {"name": "simplebaseline-res18", "base_channels": 16, "deconv_out_channels": [32, 32, 32]},
        "same_cost": {"name": "simplebaseline-res18", "base_channels": 20, "deconv_out_channels": [64, 64, 64]},
    },
}  # fmt: skip


# ------------------------------------------------------------------------------------------------ training
def common_overrides(work: Path, epochs: int, workers: int) -> list[str]:
    return [
        f"data.train.0.path={work / 'data' / 'train' / 'videos.json'}",
        f"data.val.0.path={work / 'data' / 'val' / 'videos.json'}",
        f"train.epochs={epochs}", f"train.checkpoint_interval={epochs}", f"train.val_interval={epochs}",
        f"train.num_workers={workers}", "train.progress=false", "train.tensorboard=false", "train.log_interval=20",
        "train.device=cpu",
    ]  # fmt: skip


def model_overrides(prefix: str, spec: dict[str, Any] | None) -> list[str]:
    if spec is None:
        return []
    out = [f"{prefix}.name={spec['name']}"] if prefix == "model" else [f"{prefix}={json.dumps(spec)}"]
    if prefix == "model":
        out.append(f"model.args={json.dumps({k: v for k, v in spec.items() if k != 'name'})}")
    return out


# ------------------------------------------------------------------------------------------------ data
def prepare_data(work: Path, s: dict[str, Any], workers: int = 2) -> None:
    """The synthetic train and val videos of settings ``s`` (skipped when already there)."""
    from posedistill.data.synthetic import generate_videos

    for split, n, sd in (("train", s["train_videos"], 0), ("val", s["val_videos"], 1)):
        if not (work / "data" / split / "videos.json").is_file():
            generate_videos(work / "data" / split, n, s["frames"], size=(256, 256), difficulty="easy", seed=sd,
                            workers=workers)  # fmt: skip


def mean_pose_rows(work: Path, sets: dict[str, list]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The mean-pose baseline (fitted on the synthetic training people) on every evaluation set: its result rows
    (box and torso PCK@0.2) and the ``instances_pck`` results per set."""
    from posedistill.data.readers import read_coco, training_instances
    from posedistill.eval.baseline import fit_mean_pose, place_mean_pose

    train = training_instances(read_coco(work / "data" / "train" / "videos.json", layout="coco"))
    pose = fit_mean_pose(train)
    fitted = f"the {len(train)} person-frames of the synthetic training videos"
    rows, results = [], {}
    for dataset, records in sets.items():
        res = results[dataset] = instances_pck(records, place_mean_pose(pose, records), "coco")
        for metric in ("pck@0.2", "pck@0.2/torso"):
            rows.append({"dataset": dataset, "model": BASELINE, "method": BASELINE, "seed": 0, "metric": metric,
                         "value": float(res[metric]), "train_seconds": 0.0, "fitted_on": fitted})  # fmt: skip
    return rows, results


def warn_unbeaten(rows: list[dict[str, Any]]) -> None:
    """One warning (stderr) per model and data whose box PCK@0.2 does not beat the mean-pose baseline's."""
    for line in row_warnings([r for r in rows if r["metric"] == "pck@0.2"], group=("dataset", "metric"),
                             label=("method",)):  # fmt: skip
        print(line, file=sys.stderr)


def update_baseline(out: Path, work: Path, s: dict[str, Any]) -> None:
    """Replace the baseline rows of the results file ``out`` by freshly computed ones (no model)."""
    prepare_data(work, s, workers=1)
    rows = [r for r in json.loads(out.read_text()) if r["method"] != BASELINE]
    base, _ = mean_pose_rows(work, eval_sets(work))
    for r in base:
        print(f"{r['dataset']} {r['metric']}: {BASELINE} {100 * r['value']:.1f}")
    rows += base
    out.write_text(json.dumps(rows, indent=1) + "\n")
    warn_unbeaten(rows)
    print(f"wrote the {BASELINE} rows into {out} ({base[0]['fitted_on']})")


def eval_sets(work: Path) -> dict[str, list]:
    """name -> records in the COCO layout (real clips mapped; their unmapped joints are not scored)."""
    from posedistill.data.readers import read_bonn_posetrack, read_coco, read_jhmdb_clip

    sets = {"synthetic-video": read_coco(work / "data" / "val" / "videos.json", layout="coco")}
    jhmdb = SHARED / "jhmdb_goalkeeping"
    if jhmdb.is_dir():
        sets["jhmdb-goalkeeping"] = map_instances(read_jhmdb_clip(jhmdb), "coco")
    bonn = SHARED / "bonn_060470979" / "annolist_test.mat"
    if bonn.is_file():
        sets["bonn-060470979"] = map_instances(read_bonn_posetrack(bonn, video="060470979"), "coco")
    else:
        print(f"note: {bonn} not found; the Bonn sanity check is skipped")
    return {k: [r for r in v if not r.iscrowd and r.bbox[2] > 0 and r.bbox[3] > 0] for k, v in sets.items()}


class ImageCache:
    def __init__(self) -> None:
        self.images: dict[str, np.ndarray] = {}

    def __call__(self, path: str) -> np.ndarray:
        key = str(path)
        if key not in self.images:
            self.images[key] = read_image(key)
        return self.images[key]


@torch.no_grad()
def predict_per_frame(model: torch.nn.Module, codec: HeatmapCodec, records: list, input_size: tuple[int, int],
                      read: Callable[[str], np.ndarray], batch: int = 32) -> np.ndarray:  # fmt: skip
    """Keypoints (N, K, 2) in image pixels of a per-frame heatmap model, the crops of VideoPoseEstimator."""
    model.eval()
    lut = normalise_lut((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    out = []
    for s in range(0, len(records), batch):
        crops = [crop_person(read(r.image_path), r.bbox, input_size, lut) for r in records[s : s + batch]]
        heatmaps = model(torch.stack([c[0] for c in crops]))
        kp, _ = codec.decode(heatmaps.float().numpy())
        out.append(crop_to_image(kp, np.stack([c[1] for c in crops]), np.stack([c[2] for c in crops]), input_size))
    return np.concatenate(out)


def first_track_crops(records: list, input_size: tuple[int, int], read: Callable[[str], np.ndarray]) -> torch.Tensor:
    """T×3×h×w crops of the longest run of consecutive frames of the first track (timing input)."""
    from posedistill.data.clips import group_tracks

    track = max(group_tracks(records), key=len)
    lut = normalise_lut((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    return torch.stack([crop_person(read(records[i].image_path), records[i].bbox, input_size, lut)[0] for i in track])


@torch.no_grad()
def time_models(per_frame: dict[str, torch.nn.Module], net: Any, crops: torch.Tensor, reinit_every: int | None,
                repeats: int) -> dict[str, float]:  # fmt: skip
    """ms per frame, batch 1, of the per-frame models and of the online DKD chain over ``crops``."""
    for m in (*per_frame.values(), net):
        m.eval()
    n = crops.shape[0]
    frames = [crops[t : t + 1] for t in range(n)]
    state: dict[str, Any] = {}

    def dkd_frame(t: int) -> None:
        if t == 0 or (reinit_every and t % reinit_every == 0):
            state["h"], state["f"] = net.initial(frames[t])
        else:
            state["h"], state["f"] = net.step(frames[t], state["f"], state["h"])

    out = {m: time_per_frame(lambda t, m=model: m(frames[t]), n, repeats=repeats)["ms_per_frame"]
           for m, model in per_frame.items()}  # fmt: skip
    out["dkd"] = time_per_frame(dkd_frame, n, repeats=repeats)["ms_per_frame"]
    return out


def describe(spec: dict[str, Any]) -> str:
    """``name(key=value,...)`` of a model's build arguments (keypoint count and input size left out)."""
    extra = ",".join(f"{k}={v}" for k, v in spec.items() if k not in ("name", "num_keypoints", "input_size"))
    return f"{spec['name']}({extra})" if extra else spec["name"]


# ------------------------------------------------------------------------------------------------ main
def train_all(work: Path, s: dict[str, Any], seeds: list[int], jobs: int, dkd_extra: list[str],
              adv_weight: float | None) -> dict[tuple[str, int], float]:  # fmt: skip
    """Every training run, ``jobs`` at a time (subprocesses, one thread each; DKD after its seed's large and small
    models): {(method, seed): training seconds}. Finished runs are reused, interrupted ones resume."""
    from concurrent.futures import Future, ThreadPoolExecutor

    import bench_cascade as cascade

    def run(method: str, seed: int, epochs: int, extra: list[str], wait: list[Future] = ()) -> float:
        for f in wait:
            f.result()
        sets = [*common_overrides(work, epochs, 0), f"train.seed={seed}", "data.val=[]", *extra]
        return cascade.run_training("train", CONFIG_FILES[method], run_dir(work, method, seed), sets,
                                    f"bench_dkd: {method} seed {seed}")  # fmt: skip

    os.environ["OMP_NUM_THREADS"] = "1"
    futures: dict[tuple[str, int], Future] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for seed in seeds:  # seed by seed, so that a cut-short session still has whole seeds to report
            futures[("per-frame-large", seed)] = pool.submit(run, "per-frame-large", seed, s["large_epochs"],
                                                             model_overrides("model", s["large"]))  # fmt: skip
            futures[("per-frame-small", seed)] = pool.submit(run, "per-frame-small", seed, s["small_epochs"],
                                                             model_overrides("model", s["encoder"]))  # fmt: skip
            futures[(SAME_COST, seed)] = pool.submit(run, SAME_COST, seed, s["same_cost_epochs"],
                                                     model_overrides("model", s["same_cost"]))  # fmt: skip
            dkd_ov = [
                f"method.args.initializer_pretrained={run_dir(work, 'per-frame-large', seed) / 'last'}",
                f"method.args.encoder_pretrained={run_dir(work, 'per-frame-small', seed) / 'last'}",
                f"method.args.clip_stride={s['clip_stride']}",
                *model_overrides("model.args.initializer", s["large"]),
                *model_overrides("model.args.encoder", s["encoder"]),
                *([f"method.args.adv_weight={adv_weight}"] if adv_weight is not None else []),
                *dkd_extra,
            ]
            wait = [futures[("per-frame-large", seed)], futures[("per-frame-small", seed)]]
            futures[("dkd", seed)] = pool.submit(run, "dkd", seed, s["dkd_epochs"], dkd_ov, wait)
        return {k: f.result() for k, f in futures.items()}


def run_dir(work: Path, method: str, seed: int) -> Path:
    return work / f"seed{seed}" / method


def evaluate_seed(work: Path, seed: int, seconds: dict[tuple[str, int], float], sets: dict[str, list], args: Any,
                  timing: bool) -> list[dict[str, Any]]:  # fmt: skip
    """The rows of one seed's four models on every evaluation set (ms per frame only when ``timing``)."""
    from posedistill.engine.checkpoint import load_model_from_checkpoint

    per_frame = {m: load_model_from_checkpoint(run_dir(work, m, seed) / "last")[0] for m in PER_FRAME}
    meta = load_model_from_checkpoint(run_dir(work, "per-frame-large", seed) / "last")[1]
    estimator = VideoPoseEstimator.from_checkpoint(run_dir(work, "dkd", seed) / "last",
                                                   reinit_every=args.reinit_every,
                                                   min_confidence=args.min_confidence)  # fmt: skip
    net, codec = estimator.net, estimator.codec
    size = tuple(meta["input_size"])
    flops = dkd_flops(net, size)
    gflops_pf = {m: count_flops(model, (1, 3, size[1], size[0])) / 1e9 for m, model in per_frame.items()}
    models = {m: describe(model.build_args) for m, model in per_frame.items()}
    models["dkd"] = (f"dkd(initializer=per-frame-large, encoder=per-frame-small, kernel_size="
                     f"{net.build_args['kernel_size']}, {net.build_args['kernel_mode']}, static_kernels="
                     f"{net.build_args['static_kernels']}, reinit_every={args.reinit_every}, "
                     f"min_confidence={args.min_confidence})")  # fmt: skip
    rows: list[dict[str, Any]] = []
    read = ImageCache()
    for dataset, records in sets.items():
        t = time.perf_counter()
        results = {m: instances_pck(records, predict_per_frame(model, codec, records, size, read), "coco")
                   for m, model in per_frame.items()}  # fmt: skip
        redone_before = estimator.stats.redone
        kp, _, initialised = predict_records(estimator, records, read)
        results["dkd"] = instances_pck(records, kp, "coco")
        redone = estimator.stats.redone - redone_before
        starts = int(initialised.sum()) - redone
        gflops = {
            **gflops_pf,
            "dkd": dkd_run_flops(flops["init_frame"], flops["step"], len(records), starts, redone) / 1e9,
        }
        ms = {}
        if timing:
            ms = time_models(per_frame, net, first_track_crops(records, size, read), args.reinit_every,
                             args.timing_repeats)  # fmt: skip
        for method, res in results.items():
            values = {"pck@0.2": res["pck@0.2"], "pck@0.2/torso": res["pck@0.2/torso"],
                      "gflops_per_frame": gflops[method]}  # fmt: skip
            for norm in ("", "/torso"):
                for joint, v in res[f"pck@0.2{norm}/per_joint"].items():
                    if v >= 0:
                        values[f"pck@0.2{norm}/per_joint/{joint}"] = v
            if method in ms:
                values["ms_per_frame"] = ms[method]
            for metric, v in values.items():
                rows.append({"dataset": dataset, "model": models[method], "method": method, "seed": seed,
                             "metric": metric, "value": float(v),
                             "train_seconds": round(float(seconds[(method, seed)]), 1)})  # fmt: skip
        print(f"seed {seed} {dataset}: {len(records)} person-frames, DKD initialised {starts} (+{redone} redone), "
              f"scored in {time.perf_counter() - t:.0f}s", flush=True)  # fmt: skip
    return rows


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per data and method, mean (min–max) over seeds of box / torso PCK, GFLOPs and ms per frame."""
    lines = ["| data | method | seeds | PCK@0.2 box | PCK@0.2 torso | GFLOPs / frame | ms / frame |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    by: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        by.setdefault((r["dataset"], r["method"], r["metric"]), []).append(r["value"])

    def cell(key: tuple[str, str, str], scale: float, digits: int) -> str:
        v = by.get(key)
        if not v:
            return "–"
        if len(v) == 1 or min(v) == max(v):
            return f"{scale * v[0]:.{digits}f}"
        return f"{scale * np.mean(v):.{digits}f} ({scale * min(v):.{digits}f}–{scale * max(v):.{digits}f})"

    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for method in (*PER_FRAME, "dkd", BASELINE):
            if (dataset, method, "pck@0.2") not in by:
                continue
            n = len(by[(dataset, method, "pck@0.2")])
            lines.append(f"| {dataset} | {method} | {n} | {cell((dataset, method, 'pck@0.2'), 100, 1)} | "
                         f"{cell((dataset, method, 'pck@0.2/torso'), 100, 1)} | "
                         f"{cell((dataset, method, 'gflops_per_frame'), 1, 3)} | "
                         f"{cell((dataset, method, 'ms_per_frame'), 1, 2)} |")  # fmt: skip
    return "\n".join(lines)


def paired_checks(rows: list[dict[str, Any]]) -> list[str]:
    """The table's questions, per seed: does the large model beat the small one, does DKD keep the large model's
    PCK and beat the per-frame model of its own cost, and at how many times fewer FLOPs than the large one."""
    val: dict[tuple[str, str, str, int], float] = {}
    for r in rows:
        if r["method"] != BASELINE:
            val[(r["dataset"], r["method"], r["metric"], r["seed"])] = r["value"]
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        seeds = sorted({k[3] for k in val if k[0] == dataset})
        for metric in ("pck@0.2", "pck@0.2/torso"):
            for a, b in (("per-frame-large", "per-frame-small"), ("dkd", "per-frame-large"), ("dkd", SAME_COST)):
                d = [val[(dataset, a, metric, sd)] - val[(dataset, b, metric, sd)] for sd in seeds
                     if (dataset, a, metric, sd) in val and (dataset, b, metric, sd) in val]  # fmt: skip
                if d:
                    out.append(f"{dataset} {metric}: {a} - {b} = {100 * np.mean(d):+.1f} "
                               f"({100 * min(d):+.1f}…{100 * max(d):+.1f}), {a} better in "
                               f"{sum(x > 0 for x in d)}/{len(d)} seeds")  # fmt: skip
        g = "gflops_per_frame"
        ratio = [val[(dataset, "per-frame-large", g, sd)] / val[(dataset, "dkd", g, sd)] for sd in seeds
                 if (dataset, "dkd", g, sd) in val]  # fmt: skip
        if ratio:
            out.append(f"{dataset}: DKD uses {min(ratio):.1f}-{max(ratio):.1f}x fewer GFLOPs per frame than the large "
                       "model")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small data and few epochs (default)")
    mode.add_argument("--full", action="store_true", help="more data and epochs, standard ResNet-18 large model")
    mode.add_argument("--smoke", action="store_true", help="seconds-long pipeline check (writes to --out too)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2, help="training runs at a time (subprocesses, one thread each)")
    ap.add_argument("--work-dir", default=str(ROOT / "work_dirs" / "bench_dkd"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dkd.json"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the evaluation and timing")
    ap.add_argument("--reinit-every", type=int, default=None, help="DKD re-initialisation period (default: never)")
    ap.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        help="redo a DKD frame with the initializer below this confidence (default: never)",
    )
    ap.add_argument("--adv-weight", type=float, default=None, help="override DKD's adversarial weight")
    ap.add_argument(
        "--set",
        dest="dkd_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra override of the DKD config (ablations; give another --work-dir), e.g. --set "
        "model.args.static_kernels=false",
    )
    ap.add_argument("--timing-repeats", type=int, default=3)
    ap.add_argument("--baseline-only", action="store_true",
                    help=f"only (re)compute the {BASELINE} rows of the existing --out file (no model)")  # fmt: skip
    args = ap.parse_args()
    name = "full" if args.full else "smoke" if args.smoke else "quick"
    s = SETTINGS[name]
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir) / name
    if args.baseline_only:
        update_baseline(Path(args.out), work, s)
        return

    t0 = time.perf_counter()
    prepare_data(work, s)
    print(f"data ready in {time.perf_counter() - t0:.0f}s", flush=True)
    seconds = train_all(work, s, args.seeds, args.jobs, args.dkd_overrides, args.adv_weight)
    print(f"training done in {time.perf_counter() - t0:.0f}s", flush=True)

    sets = eval_sets(work)
    rows: list[dict[str, Any]] = []
    for i, seed in enumerate(args.seeds):  # the architectures are the same in every seed: time the first only
        rows += evaluate_seed(work, seed, seconds, sets, args, timing=i == 0)
    base_rows, _ = mean_pose_rows(work, sets)
    rows += base_rows
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, rows, indent=1)
    print(f"\n{len(rows)} rows -> {out}  ({name}; seeds {args.seeds}; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {args.threads} thread(s))\n")  # fmt: skip
    print(summary_table(rows))
    print()
    for line in paired_checks(rows):
        print(line)
    print(f"\n{BASELINE}: the mean box-relative pose of {base_rows[0]['fitted_on']} in every box, no model")
    warn_unbeaten(rows)


if __name__ == "__main__":
    main()
