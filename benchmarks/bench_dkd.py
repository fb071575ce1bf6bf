"""DKD table: the per-frame large model, the per-frame small model and DKD (small encoder + kernel distillator,
large model as the pose initializer) on synthetic video, with the real JHMDB and Bonn clips as sanity checks.

    .venv/bin/python benchmarks/bench_dkd.py --quick     # ~30 min on 2 shared CPU cores
    .venv/bin/python benchmarks/bench_dkd.py --full      # bigger data, the standard ResNet-18 large model

Steps, all through the engine (``posedistill.engine``: config → method → Trainer), no validation during training:

1. synthetic videos (``generate_videos``, easy difficulty: one person per clip, 256×256 frames), train and val;
2. ``configs/dkd/per-frame-large_synthetic-video.yaml`` (supervised) → the large model, later DKD's initializer;
3. ``configs/dkd/per-frame-small_synthetic-video.yaml`` (supervised) → the small model, which starts the encoder;
4. ``configs/dkd/dkd_synthetic-video.yaml`` (``method.type: dkd``: 5-frame clips, frozen initializer, temporal
   discriminator);
5. scoring on the synthetic val videos and, mapped to COCO-17, the JHMDB clip (``jhmdb_goalkeeping``) and the Bonn
   PoseTrack video (``bonn_060470979``, 4 people) with their own boxes: PCK@0.2 by box and by torso
   (``posedistill.eval.video``). The per-frame models score every crop on its own; DKD runs online
   (``VideoPoseEstimator``: initializer on the first frame of each track only, unless ``--reinit-every``);
6. GFLOPs per frame (MACs as mmengine counts them; DKD: the initializer frames amortised over the frames actually
   run) and ms per frame (network only, batch 1, one thread, on the first track of each dataset, crops made
   beforehand);
7. the mean-pose baseline (``posedistill.eval.baseline``): the mean box-relative pose of the synthetic training
   people placed in every scored box, the same PCK; a model that does not beat its box PCK@0.2 by ``MARGIN``
   gets a warning. ``--baseline-only`` (re)computes its rows in an existing ``--out`` file without any model
   (seconds; the synthetic videos are generated when missing).

Writes ``benchmarks/results/dkd.json``: a list of rows {dataset, model, method, seed, metric, value, train_seconds}
with method ``per-frame-large`` / ``per-frame-small`` / ``dkd`` / ``mean-pose baseline`` (PCK rows only) and metric
``pck@0.2`` (box), ``pck@0.2/torso``,
``pck@0.2/per_joint/<joint>``, ``pck@0.2/torso/per_joint/<joint>``, ``gflops_per_frame`` or ``ms_per_frame``;
and prints the markdown table of ``docs/dkd.md``.
"""

from __future__ import annotations

import argparse
import json
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

from posedistill.codecs import HeatmapCodec  # noqa: E402
from posedistill.data.clips import map_instances  # noqa: E402
from posedistill.data.image_io import read_image  # noqa: E402
from posedistill.data.loader import normalise_lut  # noqa: E402
from posedistill.data.transforms import crop_to_image  # noqa: E402
from posedistill.eval.baseline import NAME as BASELINE  # noqa: E402
from posedistill.eval.baseline import row_warnings  # noqa: E402
from posedistill.eval.video import dkd_run_flops, instances_pck, time_per_frame  # noqa: E402
from posedistill.infer.video_estimator import VideoPoseEstimator, crop_person, predict_records  # noqa: E402
from posedistill.models import count_flops  # noqa: E402
from posedistill.models.dkd import dkd_flops  # noqa: E402

CONFIGS = ROOT / "configs" / "dkd"
SHARED = ROOT.parent / "shared" / "data" / "video"

SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {
        "train_videos": 48, "val_videos": 8, "frames": 32, "large_epochs": 12, "small_epochs": 20, "dkd_epochs": 8,
        "clip_stride": 2, "large": None, "encoder": None,
    },
    "smoke": {  # pipeline check only (seconds): not a result
        "train_videos": 4, "val_videos": 1, "frames": 10, "large_epochs": 1, "small_epochs": 1, "dkd_epochs": 1,
        "clip_stride": 2, "large": None, "encoder": None,
    },
    "full": {
        "train_videos": 240, "val_videos": 24, "frames": 40, "large_epochs": 60, "small_epochs": 80, "dkd_epochs": 40,
        "clip_stride": 1,
        "large": {"name": "simplebaseline-res18"},
        "encoder": {"name": "simplebaseline-res18", "base_channels": 16, "deconv_out_channels": [32, 32, 32]},
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


def train(config: Path, overrides: list[str], work_dir: Path) -> tuple[Any, float]:
    """Train a config through the engine without validation; returns (the trained method, seconds)."""
    from posedistill.engine.builders import build_method, build_train_set, checkpoint_meta
    from posedistill.engine.config import load_config
    from posedistill.engine.trainer import Trainer, seed_everything

    cfg = load_config(config, overrides)
    seed_everything(cfg.train.seed)
    method = build_method(cfg)
    train_set = method.build_train_set(cfg) if hasattr(method, "build_train_set") else build_train_set(cfg)
    trainer = Trainer(cfg, method, train_set, None, work_dir=work_dir, layout=cfg.data.layout,
                      meta=checkpoint_meta(cfg))  # fmt: skip
    t0 = time.perf_counter()
    trainer.fit()
    return method, time.perf_counter() - t0


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
def time_models(large: torch.nn.Module, small: torch.nn.Module, net: Any, crops: torch.Tensor,
                reinit_every: int | None, repeats: int) -> dict[str, float]:  # fmt: skip
    """ms per frame, batch 1, of the two per-frame models and of the online DKD chain over ``crops``."""
    for m in (large, small, net):
        m.eval()
    n = crops.shape[0]
    frames = [crops[t : t + 1] for t in range(n)]
    state: dict[str, Any] = {}

    def dkd_frame(t: int) -> None:
        if t == 0 or (reinit_every and t % reinit_every == 0):
            state["h"], state["f"] = net.initial(frames[t])
        else:
            state["h"], state["f"] = net.step(frames[t], state["f"], state["h"])

    return {
        "per-frame-large": time_per_frame(lambda t: large(frames[t]), n, repeats=repeats)["ms_per_frame"],
        "per-frame-small": time_per_frame(lambda t: small(frames[t]), n, repeats=repeats)["ms_per_frame"],
        "dkd": time_per_frame(dkd_frame, n, repeats=repeats)["ms_per_frame"],
    }


def describe(spec: dict[str, Any]) -> str:
    """``name(key=value,...)`` of a model's build arguments (keypoint count and input size left out)."""
    extra = ",".join(f"{k}={v}" for k, v in spec.items() if k not in ("name", "num_keypoints", "input_size"))
    return f"{spec['name']}({extra})" if extra else spec["name"]


# ------------------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small data and few epochs (default)")
    mode.add_argument("--full", action="store_true", help="more data and epochs, standard ResNet-18 large model")
    mode.add_argument("--smoke", action="store_true", help="seconds-long pipeline check (writes to --out too)")
    ap.add_argument("--work-dir", default=str(ROOT / "work_dirs" / "bench_dkd"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dkd.json"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--workers", type=int, default=0, help="data-loader workers (0: in the main process)")
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
        help="extra override of the DKD config (ablations), e.g. --set model.args.static_kernels=false",
    )
    ap.add_argument("--timing-repeats", type=int, default=3)
    ap.add_argument("--reuse", default="", metavar="STAGES",
                    help="comma list of stages (per-frame-large, per-frame-small, dkd) whose checkpoints of a previous "
                    "run in --work-dir are reused instead of retrained")  # fmt: skip
    ap.add_argument("--baseline-only", action="store_true",
                    help=f"only (re)compute the {BASELINE} rows of the existing --out file (no model)")  # fmt: skip
    args = ap.parse_args()
    name = "full" if args.full else "smoke" if args.smoke else "quick"
    s = SETTINGS[name]
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir) / name
    seed = 0
    if args.baseline_only:
        update_baseline(Path(args.out), work, s)
        return

    from posedistill.engine.checkpoint import load_model_from_checkpoint

    t0 = time.perf_counter()
    prepare_data(work, s)
    print(f"data ready in {time.perf_counter() - t0:.0f}s", flush=True)

    large_cfg = CONFIGS / "per-frame-large_synthetic-video.yaml"
    small_cfg = CONFIGS / "per-frame-small_synthetic-video.yaml"
    dkd_cfg = CONFIGS / "dkd_synthetic-video.yaml"
    dirs = {m: work / m for m in ("per-frame-large", "per-frame-small", "dkd")}
    seconds_file = work / "train_seconds.json"
    seconds: dict[str, float] = json.loads(seconds_file.read_text()) if seconds_file.is_file() else {}
    reuse = {r.strip() for r in args.reuse.split(",") if r.strip()}
    unknown = reuse - set(dirs)
    if unknown:
        raise SystemExit(f"--reuse: unknown stages {sorted(unknown)}; choose from {sorted(dirs)}")

    def stage(method: str, config: Path, overrides: list[str]) -> None:
        if method in reuse and (dirs[method] / "last").is_dir() and method in seconds:
            print(f"{method}: reusing {dirs[method] / 'last'}", flush=True)
            return
        _, seconds[method] = train(config, overrides, dirs[method])
        seconds_file.write_text(json.dumps(seconds))
        print(f"{method} trained in {seconds[method]:.0f}s", flush=True)

    stage(
        "per-frame-large",
        large_cfg,
        common_overrides(work, s["large_epochs"], args.workers) + model_overrides("model", s["large"]),
    )
    stage(
        "per-frame-small",
        small_cfg,
        common_overrides(work, s["small_epochs"], args.workers) + model_overrides("model", s["encoder"]),
    )
    dkd_ov = common_overrides(work, s["dkd_epochs"], args.workers) + [
        f"method.args.initializer_pretrained={dirs['per-frame-large'] / 'last'}",
        f"method.args.encoder_pretrained={dirs['per-frame-small'] / 'last'}",
        f"method.args.clip_stride={s['clip_stride']}",
        *model_overrides("model.args.initializer", s["large"]),
        *model_overrides("model.args.encoder", s["encoder"]),
    ]
    if args.adv_weight is not None:
        dkd_ov.append(f"method.args.adv_weight={args.adv_weight}")
    dkd_ov += args.dkd_overrides
    stage("dkd", dkd_cfg, dkd_ov)

    large, meta = load_model_from_checkpoint(dirs["per-frame-large"] / "last")
    small, _ = load_model_from_checkpoint(dirs["per-frame-small"] / "last")
    estimator = VideoPoseEstimator.from_checkpoint(dirs["dkd"] / "last", reinit_every=args.reinit_every,
                                                   min_confidence=args.min_confidence)  # fmt: skip
    net, codec = estimator.net, estimator.codec
    size = tuple(meta["input_size"])
    shape = (1, 3, size[1], size[0])
    flops = dkd_flops(net, size)
    g_large, g_small = count_flops(large, shape) / 1e9, count_flops(small, shape) / 1e9
    models = {
        "per-frame-large": describe(large.build_args),
        "per-frame-small": describe(small.build_args),
        "dkd": "dkd(initializer=per-frame-large, encoder=per-frame-small, kernel_size="
        f"{net.build_args['kernel_size']}, {net.build_args['kernel_mode']}, static_kernels="
        f"{net.build_args['static_kernels']}, reinit_every={args.reinit_every}, min_confidence={args.min_confidence})",
    }
    rows: list[dict[str, Any]] = []
    table: list[tuple] = []
    read = ImageCache()

    def add(dataset: str, method: str, metric: str, value: float) -> None:
        train_s = round(float(seconds.get(method, float("nan"))), 1)
        rows.append({"dataset": dataset, "model": models[method], "method": method, "seed": seed, "metric": metric,
                     "value": float(value), "train_seconds": train_s})  # fmt: skip

    sets = eval_sets(work)
    base_rows, base_results = mean_pose_rows(work, sets)
    for dataset, records in sets.items():
        t = time.perf_counter()
        results: dict[str, dict[str, Any]] = {}
        for method, model in (("per-frame-large", large), ("per-frame-small", small)):
            kp = predict_per_frame(model, codec, records, size, read)
            results[method] = instances_pck(records, kp, "coco")
        redone_before = estimator.stats.redone
        kp, _, initialised = predict_records(estimator, records, read)
        results["dkd"] = instances_pck(records, kp, "coco")
        redone = estimator.stats.redone - redone_before
        starts = int(initialised.sum()) - redone
        gflops = {
            "per-frame-large": g_large,
            "per-frame-small": g_small,
            "dkd": dkd_run_flops(flops["init_frame"], flops["step"], len(records), starts, redone) / 1e9,
        }
        ms = time_models(large, small, net, first_track_crops(records, size, read), args.reinit_every,
                         args.timing_repeats)  # fmt: skip
        for method, res in results.items():
            add(dataset, method, "pck@0.2", res["pck@0.2"])
            add(dataset, method, "pck@0.2/torso", res["pck@0.2/torso"])
            for norm in ("", "/torso"):
                for joint, v in res[f"pck@0.2{norm}/per_joint"].items():
                    if v >= 0:
                        add(dataset, method, f"pck@0.2{norm}/per_joint/{joint}", v)
            add(dataset, method, "gflops_per_frame", gflops[method])
            add(dataset, method, "ms_per_frame", ms[method])
            table.append((dataset, method, res["pck@0.2"], res["pck@0.2/torso"], gflops[method], ms[method],
                          seconds.get(method, float("nan"))))  # fmt: skip
        rows += [r for r in base_rows if r["dataset"] == dataset]
        res = base_results[dataset]
        table.append((dataset, BASELINE, res["pck@0.2"], res["pck@0.2/torso"], None, None, None))
        print(f"{dataset}: {len(records)} person-frames, DKD initialised {starts} (+{redone} redone), scored in "
              f"{time.perf_counter() - t:.0f}s", flush=True)  # fmt: skip

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\n{len(rows)} rows -> {out}  ({name}; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {args.threads} thread(s))\n")  # fmt: skip
    print("| dataset | method | PCK@0.2 box | PCK@0.2 torso | GFLOPs/frame | ms/frame | train s |")
    print("|---|---|---|---|---|---|---|")
    for d, m, p, pt, g, ms_, ts in table:
        if m == BASELINE:
            print(f"| {d} | {m} | {100 * p:.1f} | {100 * pt:.1f} | – | – | – |")
        else:
            print(f"| {d} | {m} | {100 * p:.1f} | {100 * pt:.1f} | {g:.3f} | {ms_:.2f} | {ts:.0f} |")
    print("\nmodels: " + "; ".join(f"{k} = {v}" for k, v in models.items()))
    print(f"{BASELINE}: the mean box-relative pose of {base_rows[0]['fitted_on']} in every box, no model")
    warn_unbeaten(rows)


if __name__ == "__main__":
    main()
