"""OKDHP gains: the deployed branch trained alone vs trained with OKDHP, the ensemble, and the training cost.

For every dataset and seed, two runs with the same recipe, epochs and data order:

- ``baseline``: the deployable network trained alone (``method.type: supervised``);
- ``okdhp``: the multi-branch network (shared trunk, 3 branches, FAU) with OKDHP's losses. Its branch 0 is scored
  (fixed before training, so no choice is made on the validation set), and so is the FAU ensemble
  (``okdhp-ensemble``). Every branch is scored too (reported in the summary, not as rows). Branch 0 is then deployed
  with ``posedistill deploy`` and the deployed checkpoint is scored again; it must give the same numbers.

Metrics come from the final weights (no best-epoch picking): LSPet (train images 1-2500, PCK@0.2 on 2501-3000,
normalised by the box's longer side, flip test) and synthetic people (COCO-17 body keypoints of the synthetic
COCO-WholeBody data, COCO AP with GT boxes and PCK@0.2, flip test). ``train_seconds`` is the time of the training epochs
(``epoch_time`` in ``metrics.jsonl``; validation and checkpoint writing excluded), measured under the machine's
load at that moment: compare runs of one invocation only.

Profiles:

- ``--quick`` (default; CPU): hourglass-3stack of width 32 (2 shared stacks + 3 branches of 1 stack; deployed =
  the 3-stack net), 128×128 input (LSPet) / 96×128 (synthetic), FAU width 16, Adam 1e-3, lr ×0.1 at 75 % of the
  epochs, KL ramp reaching 1 at 60 % of the epochs, torch on one thread per run.
- ``--full`` (GPU): the configs as they are: the released 4-stack hourglass (2 shared stacks + 3 branches of 2),
  256×256, 150 epochs (``configs/okdhp/hourglass-4stack_{lspet,synthetic}*.yaml``).

Writes ``benchmarks/results/okdhp.json`` (a list of rows ``{dataset, model, method, seed, metric, value,
train_seconds}``; ``method`` is ``baseline``, ``okdhp``, ``okdhp-ensemble`` or ``mean-pose baseline``; values are
fractions) and prints a Markdown summary (mean ± half-range over seeds, per-branch numbers, training cost ratio),
then the seconds per training iteration of both networks interleaved in one process (``--cost-steps``), the
load-independent cost ratio.

The ``mean-pose baseline`` rows (``posedistill.eval.baseline``): the mean box-relative pose of the training people
of the recipe, placed in every validation box and scored with the same metrics; a run that does not beat it by
``MARGIN`` gets a warning. ``--baseline-only`` (re)computes them in an existing ``--out`` file (seconds; the quick
synthetic data are generated when missing).

    .venv/bin/python benchmarks/bench_okdhp.py --quick --datasets lspet synthetic --seeds 0 1 --jobs 2 --cost-steps 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posedistill.eval.baseline import NAME as BASELINE  # noqa: E402
from posedistill.eval.baseline import row_warnings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "okdhp.json"
CONFIGS = {
    "lspet": ("configs/okdhp/hourglass-4stack_lspet_baseline.yaml", "configs/okdhp/hourglass-4stack_lspet.yaml"),
    "synthetic": (
        "configs/okdhp/hourglass-4stack_synthetic_baseline.yaml",
        "configs/okdhp/hourglass-4stack_synthetic.yaml",
    ),
}
# reported metric -> evaluate_predictions metric; synthetic data also get PCK@0.2 (box-normalised, as LSPet)
METRICS = {"lspet": {"pck@0.2": "auto"}, "synthetic": {"AP": "auto", "pck@0.2": "pck"}}
# synthetic data of the quick profile: about as many people as LSPet's 2500 training images
QUICK_SYNTH = {"train": {"num_images": 1600, "seed": 0}, "val": {"num_images": 200, "seed": 1}}
QUICK_WIDTH = 32


def quick_overrides(dataset: str, epochs: int, work_root: Path) -> list[str]:
    size, hm = ([128, 128], [32, 32]) if dataset == "lspet" else ([96, 128], [24, 32])
    out = [
        "model.name=hourglass-3stack",
        f"model.args.channels={QUICK_WIDTH}",
        f"model.input_size={size}",
        f"codec.heatmap_size={hm}",
        "optim.lr=1.0e-3",
        f"schedule.milestones=[{max(1, round(0.75 * epochs))}]",
        "train.batch_size=16",
    ]
    if dataset == "synthetic":
        for split in QUICK_SYNTH:
            path = work_root / "synthetic" / split / "annotations.json"
            out += [f"data.{split}.0.path={path}", f"data.{split}.0.synthetic=null"]
    return out


def okdhp_overrides(epochs: int, quick: bool) -> list[str]:
    out = [f"method.args.ramp_epochs={max(1, math.ceil(0.6 * epochs))}"]
    if quick:
        out += ["method.args.num_shared=2", "method.args.fau_channels=16"]
    return out


def common_overrides(epochs: int, seed: int, device: str, workers: int = 0) -> list[str]:
    return [
        f"train.epochs={epochs}",
        f"train.seed={seed}",
        f"train.val_interval={epochs}",
        f"train.checkpoint_interval={epochs}",
        f"train.num_workers={workers}",
        "train.progress=false",
        "train.tensorboard=false",
        "train.log_interval=50",
        f"train.device={device}",
    ]


# --------------------------------------------------------------------------------------------- one run (child)


def _epoch_seconds(work_dir: Path) -> float:
    total = 0.0
    for line in (work_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "epoch":
            total += float(rec["epoch_time"])
    return total


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one config and score it; the result dict is written to ``spec['result']``."""
    import torch

    torch.set_num_threads(int(spec["threads"]))
    from posedistill.commands import deploy
    from posedistill.distill.supervised import SupervisedMethod
    from posedistill.engine import distributed as dist_utils
    from posedistill.engine.builders import (
        build_codec_from_config,
        build_method,
        build_train_set,
        build_val_data,
        checkpoint_meta,
    )
    from posedistill.engine.checkpoint import load_model_from_checkpoint
    from posedistill.engine.config import load_config
    from posedistill.engine.evaluation import evaluate, scalar_metrics
    from posedistill.engine.trainer import Trainer, seed_everything

    cfg = load_config(spec["config"], spec["overrides"])
    work_dir = Path(spec["work_dir"])
    device = dist_utils.resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    codec = build_codec_from_config(cfg)
    train_set = build_train_set(cfg, codec)
    val = build_val_data(cfg, codec)
    method = build_method(cfg)
    trainer = Trainer(
        cfg, method, train_set, val.dataset, work_dir=work_dir, layout=cfg.data.layout, meta=checkpoint_meta(cfg),
        val_instances=val.instances, val_rows=val.rows, val_metric_args=val.metric_args,
    )  # fmt: skip
    t0 = time.perf_counter()
    resumed = (work_dir / "last" / "meta.json").is_file()
    fit = trainer.fit(resume=True)  # an interrupted run goes on from its last epoch
    wall = time.perf_counter() - t0
    if resumed:  # the wall time of the whole run: every attempt's epochs, as logged
        from bench_dwpose import epoch_seconds

        wall = epoch_seconds(work_dir / "metrics.jsonl")

    def score(m: Any) -> dict[str, float]:
        """Every metric of the dataset (METRICS: name -> evaluate_predictions metric) for method ``m``."""
        out = {}
        for key, metric in METRICS[spec["dataset"]].items():
            result, _, _ = evaluate(
                m, val.dataset, cfg.data.layout, batch_size=cfg.eval.batch_size or cfg.train.batch_size,
                device=device, flip_test=cfg.eval.flip_test, metric=metric,
                metric_args={**val.metric_args, **cfg.eval.args}, instances=val.instances, rows=val.rows,
            )  # fmt: skip
            out[key] = scalar_metrics(result)[key]
        return out

    out: dict[str, Any] = {
        "dataset": spec["dataset"],
        "kind": spec["kind"],
        "seed": cfg.train.seed,
        "train_seconds": _epoch_seconds(work_dir),
        "wall_seconds": wall,
        "iterations": trainer.global_iter,
        "samples": len(train_set),
        "trainer_metrics": fit["metrics"],
    }
    if spec["kind"] == "okdhp":
        net = method.network
        branches = []
        for b in range(net.num_branches):
            method.val_output = b
            branches.append(score(method))
        method.val_output = "ensemble"
        ensemble = score(method)
        method.val_output = 0
        # deploy branch 0 as the CLI does and score the plain checkpoint: it must give the same numbers
        args = argparse.Namespace(checkpoint=str(work_dir / "last"), out=str(work_dir / "deployed"), branch="0",
                                  config=None, overrides=[], device=str(device), flip_test=None)  # fmt: skip
        if deploy.run(args) != 0:
            raise RuntimeError("posedistill deploy failed")
        model, _ = load_model_from_checkpoint(work_dir / "deployed", device=device)
        deployed = score(SupervisedMethod(model, codec, cfg.data.layout).to(device))
        if deployed != branches[0]:
            raise RuntimeError(f"the deployed branch scores {deployed}, inside the network {branches[0]}")
        out["scores"] = {k: {"branches": [br[k] for br in branches], "ensemble": ensemble[k], "deployed": deployed[k]}
                         for k in ensemble}  # fmt: skip
        out["params_train"] = sum(p.numel() for p in net.parameters())
        out["params_deployed"] = sum(p.numel() for p in model.parameters())
        out["model"] = model.build_args["name"]
    else:
        out["scores"] = {k: {"final": v} for k, v in score(method).items()}
        out["params_deployed"] = sum(p.numel() for p in method.model.parameters())
        out["model"] = method.model.build_args["name"]
    width = cfg.model.args.get("channels")
    if width:
        out["model"] += f"-w{width}"
    Path(spec["result"]).write_text(json.dumps(out, indent=2))
    return out


# --------------------------------------------------------------------------------------------- driver


def prepare_synthetic(work_root: Path, quick: bool) -> None:
    """Generate the synthetic data once, before runs start in parallel."""
    from posedistill.data.synthetic import generate_dataset

    if not quick:  # the configs' own data (generated by read_sources when missing)
        from posedistill.engine.builders import read_sources
        from posedistill.engine.config import load_config

        cfg = load_config(CONFIGS["synthetic"][0])
        read_sources(cfg, "train")
        read_sources(cfg, "val")
        return
    for split, spec in QUICK_SYNTH.items():
        folder = work_root / "synthetic" / split
        if not (folder / "annotations.json").exists():
            print(f"generating {spec['num_images']} synthetic images into {folder}", flush=True)
            generate_dataset(folder, spec["num_images"], size=(256, 256), people=(1, 2), difficulty="easy",
                             seed=spec["seed"])  # fmt: skip


def run_jobs(specs: list[dict[str, Any]], jobs: int) -> None:
    """Run the specs as child processes, ``jobs`` at a time; logs go next to each result."""
    pending = list(specs)
    running: list[tuple[subprocess.Popen, dict, Any]] = []
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    while pending or running:
        while pending and len(running) < jobs:
            spec = pending.pop(0)
            if Path(spec["result"]).is_file():  # finished by an earlier call: reused
                print(f"reuse {spec['dataset']} {spec['kind']} seed {spec['seed']}: {spec['result']}", flush=True)
                continue
            Path(spec["work_dir"]).mkdir(parents=True, exist_ok=True)
            log = open(Path(spec["work_dir"]) / "bench.log", "w")  # noqa: SIM115 (closed below)
            print(f"start {spec['dataset']} {spec['kind']} seed {spec['seed']} -> {spec['work_dir']}", flush=True)
            cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
            running.append((subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env), spec, log))
        time.sleep(2)
        for item in list(running):
            proc, spec, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see bench.log)"
            print(f"{status}: {spec['dataset']} {spec['kind']} seed {spec['seed']}", flush=True)


def step_cost(
    datasets: list[str], epochs: int, work_root: Path, quick: bool, steps: int = 12, device: str = "auto"
) -> dict[str, dict]:
    """Seconds per training iteration (forward, backward, Adam step; batch of the recipe, random data) of the
    baseline and the OKDHP network, interleaved in this one process so that both see the same machine load."""
    import statistics

    import torch

    from posedistill.engine.builders import build_method
    from posedistill.engine.config import load_config
    from posedistill.engine.distributed import resolve_device

    dev = resolve_device(device)

    out = {}
    for ds in datasets:
        methods = []
        for kind, config in zip(("baseline", "okdhp"), CONFIGS[ds]):
            over = common_overrides(epochs, 0, "cpu") + (quick_overrides(ds, epochs, work_root) if quick else [])
            over += okdhp_overrides(epochs, quick) if kind == "okdhp" else []
            cfg = load_config(config, over)
            torch.manual_seed(0)
            method = build_method(cfg).to(dev).train()
            w, h = cfg.input_size
            hw, hh = cfg.codec["heatmap_size"]
            k = method.layout.num_keypoints
            b = cfg.train.batch_size
            batch = {
                "image": torch.randn(b, 3, h, w, device=dev),
                "heatmaps": torch.rand(b, k, hh, hw, device=dev),
                "weights": torch.ones(b, k, device=dev),
            }
            methods.append((kind, method, torch.optim.Adam(method.parameters(), lr=1e-4), batch))
        times: dict[str, list[float]] = {kind: [] for kind, *_ in methods}
        for i in range(steps + 2):
            for kind, method, opt, batch in methods:
                t = time.perf_counter()
                loss = sum(method.losses(batch, epochs - 1).values())
                opt.zero_grad()
                loss.backward()
                opt.step()
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                if i >= 2:  # warm-up
                    times[kind].append(time.perf_counter() - t)
        med = {kind: statistics.median(v) for kind, v in times.items()}
        out[ds] = {**{f"{kind}_s_per_iter": round(v, 4) for kind, v in med.items()},
                   "ratio": round(med["okdhp"] / med["baseline"], 2)}  # fmt: skip
    return out


def baseline_rows(ds: str, quick: bool, epochs: int, work_root: Path) -> list[dict[str, Any]]:
    """The mean-pose baseline's rows of ``ds``: fitted on the recipe's training people, scored on its validation
    data with every metric of :data:`METRICS` and the arguments ``run_one`` scores the networks with."""
    import contextlib

    from posedistill.data.readers import training_instances
    from posedistill.engine.builders import build_val_data, read_sources
    from posedistill.engine.config import load_config
    from posedistill.eval.baseline import evaluate_mean_pose

    over = common_overrides(epochs, 0, "cpu") + (quick_overrides(ds, epochs, work_root) if quick else [])
    with contextlib.chdir(ROOT):  # the configs' relative paths, as the runs (cwd ROOT) read them
        cfg = load_config(CONFIGS[ds][0], over)
        train = training_instances(read_sources(cfg, "train"))
        val = build_val_data(cfg)
    args = {"input_size": tuple(val.dataset.input_size), **val.metric_args, **cfg.eval.args}
    src = cfg.data.train[0]
    if quick and ds == "synthetic":
        fitted = f"the {len(train)} people of the {QUICK_SYNTH['train']['num_images']} synthetic training images"
    else:
        fitted = f"the {len(train)} people of {src.path}" + (f" [{src.indices}]" if src.indices is not None else "")
    rows = []
    for key, metric in METRICS[ds].items():
        res = evaluate_mean_pose(train, val.instances, cfg.data.layout, metric=metric, **args)
        rows.append({"dataset": ds, "model": BASELINE, "method": BASELINE, "seed": None, "metric": key,
                     "value": round(float(res[key]), 4), "train_seconds": 0.0,
                     "fitted_on": fitted})  # fmt: skip
    return rows


def warn_unbeaten(rows: list[dict[str, Any]]) -> None:
    """One warning (stderr) per run and metric that does not beat the mean-pose baseline."""
    for line in row_warnings(rows, group=("dataset", "metric"), label=("model", "method", "seed")):
        print(line, file=sys.stderr)


def _mean_spread(values: list[float]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    half = (max(values) - min(values)) / 2
    return f"{100 * mean:.1f} ± {100 * half:.1f}"


def summarise(results: list[dict[str, Any]], baseline: list[dict[str, Any]] | None = None) -> tuple[list, str]:
    """(result rows, Markdown summary) of the finished runs; ``baseline``: the mean-pose baseline rows (a column
    of the summary)."""
    keys = ("dataset", "model", "method", "seed", "metric", "value", "train_seconds")
    rows = []
    for r in results:
        for metric, sc in r["scores"].items():
            base = {"dataset": r["dataset"], "model": r["model"], "seed": r["seed"], "metric": metric,
                    "train_seconds": round(r["train_seconds"], 1)}  # fmt: skip
            if r["kind"] == "baseline":
                rows.append({**base, "method": "baseline", "value": round(sc["final"], 4)})
            else:
                rows.append({**base, "method": "okdhp", "value": round(sc["branches"][0], 4)})
                rows.append({**base, "method": "okdhp-ensemble", "value": round(sc["ensemble"], 4)})
    rows = [{k: row[k] for k in keys} for row in rows]

    def per_epoch(rs: list[dict]) -> float:
        return sum(r["train_seconds"] / r["epochs"] for r in rs) / max(len(rs), 1)

    lines = [
        "| dataset | metric | mean-pose baseline | baseline (alone) | OKDHP branch 0 (deployed) | OKDHP best branch | "
        "OKDHP ensemble | train s/epoch, baseline → OKDHP | cost ratio | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    mean_pose = {(r["dataset"], r["metric"]): r["value"] for r in baseline or []}
    per_run = []
    for ds in sorted({r["dataset"] for r in results}):
        base = [r for r in results if r["dataset"] == ds and r["kind"] == "baseline"]
        okd = [r for r in results if r["dataset"] == ds and r["kind"] == "okdhp"]
        ratio = per_epoch(okd) / per_epoch(base) if base and okd else float("nan")
        seeds = sorted({r["seed"] for r in base + okd})
        for metric in METRICS[ds]:
            b = [r["scores"][metric]["final"] for r in base]
            o = [r["scores"][metric] for r in okd]
            mp = mean_pose.get((ds, metric))
            lines.append(
                f"| {ds} | {metric} | {'-' if mp is None else f'{100 * mp:.1f}'} | {_mean_spread(b)} | "
                f"{_mean_spread([x['branches'][0] for x in o])} | "
                f"{_mean_spread([max(x['branches']) for x in o])} | {_mean_spread([x['ensemble'] for x in o])} | "
                f"{per_epoch(base):.0f} → {per_epoch(okd):.0f} | {ratio:.2f}× | {seeds} |"
            )
            for seed in seeds:
                rb = next((r for r in base if r["seed"] == seed), None)
                ro = next((r for r in okd if r["seed"] == seed), None)
                if rb is None or ro is None:
                    per_run.append(f"| {ds} | {metric} | {seed} | incomplete | | | | |")
                    continue
                x = ro["scores"][metric]
                per_run.append(
                    f"| {ds} | {metric} | {seed} | {100 * rb['scores'][metric]['final']:.1f} | "
                    + " / ".join(f"{100 * v:.1f}" for v in x["branches"])
                    + f" | {100 * x['ensemble']:.1f} | {100 * x['deployed']:.1f} | "
                    f"{rb['train_seconds']:.0f} / {ro['train_seconds']:.0f} |"
                )
    lines += [
        "",
        "Per run (values in %; train seconds of all epochs):",
        "",
        "| dataset | metric | seed | baseline | OKDHP branch 0 / 1 / 2 | ensemble | deployed | train s base / OKDHP |",
        "|---|---|---|---|---|---|---|---|",
        *per_run,
    ]
    return rows, "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    prof = ap.add_mutually_exclusive_group()
    prof.add_argument("--quick", action="store_true", help="small hourglass, few epochs, CPU (default)")
    prof.add_argument("--full", action="store_true", help="the paper's setting (GPU)")
    ap.add_argument("--datasets", nargs="+", default=["lspet", "synthetic"], choices=sorted(CONFIGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--epochs", type=int, help="default: 5 (quick) or the configs' 150 (full)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at the same time (child processes)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--workers", type=int, default=0, help="data-loading processes per run (0: in the run's process)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work-root", default="work_dirs/bench_okdhp")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--summarise-only", action="store_true", help="re-read finished runs, write the results")
    ap.add_argument("--baseline-only", action="store_true",
                    help=f"only (re)compute the {BASELINE} rows of the existing --out file (seconds)")  # fmt: skip
    ap.add_argument(
        "--cost-steps", type=int, default=12, help="iterations of the interleaved cost measurement (0: off)"
    )
    args = ap.parse_args()
    if args.child:
        run_one(json.loads(args.child))
        return 0

    quick = not args.full
    epochs = args.epochs or (5 if quick else 150)
    work_root = (ROOT / args.work_root).resolve() if not Path(args.work_root).is_absolute() else Path(args.work_root)
    profile = "quick" if quick else "full"
    if args.baseline_only:
        return update_baseline(Path(args.out), args.datasets, quick, epochs, work_root)
    specs = []
    for ds in args.datasets:
        for seed in args.seeds:
            for kind, config in zip(("baseline", "okdhp"), CONFIGS[ds]):
                over = common_overrides(epochs, seed, args.device, args.workers)
                if quick:
                    over += quick_overrides(ds, epochs, work_root)
                if kind == "okdhp":
                    over += okdhp_overrides(epochs, quick)
                wd = work_root / profile / ds / f"{kind}_seed{seed}"
                specs.append({
                    "dataset": ds, "kind": kind, "seed": seed, "config": config, "overrides": over,
                    "work_dir": str(wd), "result": str(wd / "result.json"), "threads": args.threads,
                })  # fmt: skip
    if not args.summarise_only:
        if "synthetic" in args.datasets:
            prepare_synthetic(work_root, quick)
        t0 = time.perf_counter()
        # interleave baseline / OKDHP so that both see similar machine load
        run_jobs(specs, args.jobs)
        print(f"all runs: {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    results = []
    for spec in specs:
        p = Path(spec["result"])
        if p.exists():
            r = json.loads(p.read_text())
            r["epochs"] = epochs
            results.append(r)
    if not results:
        print("no finished run")
        return 1
    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    if "synthetic" in datasets:
        prepare_synthetic(work_root, quick)
    base = [b for ds in datasets for b in baseline_rows(ds, quick, epochs, work_root)]
    rows, table = summarise(results, base)
    rows += base
    from posedistill.fileio import atomic_write_json

    atomic_write_json(args.out, rows, indent=2)
    print(table)
    warn_unbeaten(rows)
    if args.cost_steps > 0:
        import torch

        torch.set_num_threads(args.threads)
        cost = step_cost(args.datasets, epochs, work_root, quick, args.cost_steps, args.device)
        print("\nTraining cost per iteration, interleaved in one process (median of "
              f"{args.cost_steps} iterations, {args.threads} thread(s)):")  # fmt: skip
        for ds, c in cost.items():
            print(f"  {ds}: baseline {c['baseline_s_per_iter']:.3f} s, OKDHP {c['okdhp_s_per_iter']:.3f} s, "
                  f"ratio {c['ratio']:.2f}x")  # fmt: skip
    print(f"\n{len(rows)} rows written to {args.out} ({profile} profile, {epochs} epochs, load {os.getloadavg()})")
    return 0


def update_baseline(out: Path, datasets: list[str], quick: bool, epochs: int, work_root: Path) -> int:
    """Replace the baseline rows of the results file ``out`` by freshly computed ones (no training)."""
    from posedistill.fileio import atomic_write_json

    rows = [r for r in json.loads(out.read_text()) if r["method"] != BASELINE]
    todo = [ds for ds in dict.fromkeys(r["dataset"] for r in rows) if ds in datasets]
    if "synthetic" in todo:
        prepare_synthetic(work_root, quick)
    for ds in todo:
        base = baseline_rows(ds, quick, epochs, work_root)
        for b in base:
            print(f"{ds} {b['metric']}: {BASELINE} {100 * b['value']:.1f} ({b['fitted_on']})")
        rows += base
    atomic_write_json(out, rows, indent=2)
    warn_unbeaten(rows)
    print(f"wrote the {BASELINE} rows of {', '.join(todo)} into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
