"""The one training loop, generic over a :class:`posedistill.distill.base.Method`.

Per iteration: forward the method (``losses(batch, epoch)``, under autocast when ``train.amp`` is set), sum the
loss dict, backward (through a GradScaler for fp16 on CUDA), optionally clip the global L2 gradient norm, step
the optimizer, step the per-iteration LR schedule, update the EMA. Per epoch: switch to the stage-2 augmentation
from ``train.aug_switch_epoch``, validate every ``val_interval`` epochs with the EMA weights, write ``last`` (every
epoch), ``epoch_N`` (every ``checkpoint_interval``) and ``best`` (by ``train.best_metric``).

Exact resume: ``state.pt`` of ``last`` / ``epoch_N`` holds the raw weights of the trained modules, optimizer,
scheduler, EMA, AMP scaler, the epoch / iteration counters, the best metric and the RNG states (python, numpy,
torch, CUDA) of every process plus the loader's generator. Data order and augmentation derive from
(seed, epoch, index) in :mod:`posedistill.data.loader`, so a run resumed from the end of epoch e continues exactly
like the uninterrupted one.

DDP: launched by ``torchrun``, each process holds ``train.batch_size`` samples, gradients are averaged, logs
and metrics are averaged over processes and only rank 0 writes files. Losses that sum over the batch (RTMPose's
KLDiscretLoss) scale with the per-process batch, exactly as in mmpose's 8-GPU recipes.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from posedistill.data.loader import build_loader, set_epoch
from posedistill.distill.base import Method
from posedistill.engine import distributed as dist_utils
from posedistill.engine.checkpoint import CheckpointError, load_training_state, resolve_checkpoint, save_checkpoint
from posedistill.engine.collapse import COLLAPSE_RATIO, spread_ratio
from posedistill.engine.config import Config, save_config
from posedistill.engine.ema import ExpMomentumEMA
from posedistill.engine.evaluation import batch_to_device, check_metric, evaluate, scalar_metrics
from posedistill.engine.metrics_log import MetricsLog
from posedistill.engine.optim import build_optimizer
from posedistill.engine.schedule import LRSchedule

# metrics where smaller is better when picking the best checkpoint
LOWER_IS_BETTER = ("epe", "nme", "mpjpe", "loss")
# validation entries left off the console line (all of them are in metrics.jsonl)
_NOT_SHOWN = ("eval_time", "num_instances", "num_results")

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain containers (loadable with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    return {
        "python": [version, list(internal), gauss],
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(x) for x in internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": int(np_state["pos"])},
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _clone_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class Trainer:
    """Train ``method`` on ``train_set`` (a ``TopDownDataset``-like dataset with ``set_epoch`` / ``set_aug``).

    Args:
        cfg: the run's config (optim, schedule, ema, train, eval sections are read here).
        method: the recipe; must already hold its (possibly pretrained) networks.
        train_set: training dataset.
        val_set: validation dataset with ``instances`` and ``input_size`` (or None: no validation).
        val_instances, val_rows: what is scored and which instance each ``val_set`` item is (see
            :func:`posedistill.engine.evaluation.evaluate`); default: ``val_set.instances``, one to one.
        val_metric_args: extra ``evaluate_predictions`` arguments (e.g. ``gt_file`` for detected boxes).
        work_dir: where checkpoints and ``metrics.jsonl`` go.
        layout: keypoint layout (name or object) for evaluation; default ``cfg.data.layout``.
        meta: extra checkpoint meta (layout, codec, ...), merged into every checkpoint's ``meta.json``.
        on_iteration: test hook, called with (trainer, epoch, iter_in_epoch) after every optimizer step.
    """

    def __init__(
        self,
        cfg: Config,
        method: Method,
        train_set: Any,
        val_set: Any = None,
        work_dir: str | Path = "work_dirs/run",
        val_instances: list | None = None,
        val_rows: Any = None,
        val_metric_args: dict[str, Any] | None = None,
        layout: Any = None,
        meta: dict[str, Any] | None = None,
        on_iteration: Callable[[Trainer, int, int], None] | None = None,
        verbose: bool = True,
    ) -> None:
        self.cfg = cfg
        self.method = method
        self.train_set = train_set
        self.val_set = val_set
        self.val_instances = val_instances
        self.val_rows = val_rows
        self.val_metric_args = dict(val_metric_args or {})
        self.work_dir = Path(work_dir)
        self.layout = layout or cfg.data.layout
        self.meta = dict(meta or {})
        self.on_iteration = on_iteration
        self.verbose = verbose
        self.device = dist_utils.resolve_device(cfg.train.device)
        dist_utils.init_distributed(self.device)
        self.rank = dist_utils.get_rank()
        self.world = dist_utils.get_world_size()
        self.is_main = self.rank == 0
        t = cfg.train
        if t.amp == "fp16" and self.device.type != "cuda":
            raise ValueError("train.amp=fp16 needs a CUDA device; use train.amp=bf16 on CPU")
        self.autocast_dtype = AMP_DTYPES.get(t.amp)

        self.method.to(self.device)
        if t.sync_bn and self.world > 1:
            if self.device.type != "cuda":
                raise ValueError("train.sync_bn needs CUDA (torch's SyncBatchNorm has no CPU kernel)")
            self.method = nn.SyncBatchNorm.convert_sync_batchnorm(self.method)
        self.trainable = nn.ModuleDict(self.method.trainable_modules())
        o = cfg.optim
        self.optimizer = build_optimizer(
            dict(self.trainable.items()), type=o.type, lr=o.lr, weight_decay=o.weight_decay, betas=o.betas,
            eps=o.eps, momentum=o.momentum, nesterov=o.nesterov, norm_decay=o.norm_decay, bias_decay=o.bias_decay,
        )  # fmt: skip
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.model: nn.Module = self.method
        if self.world > 1:
            self.model = DistributedDataParallel(
                self.method,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.method.find_unused_parameters,
            )
        self.loader = build_loader(
            train_set, batch_size=t.batch_size, shuffle=t.shuffle, num_workers=t.num_workers, seed=t.seed,
            drop_last=t.drop_last, distributed=self.world > 1, pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        self.iters_per_epoch = len(self.loader)
        if self.iters_per_epoch == 0:
            raise ValueError(
                f"the training set has {len(train_set)} samples, fewer than one batch of {t.batch_size} per "
                f"process x {self.world} processes with drop_last; lower train.batch_size"
            )
        s = cfg.schedule
        self.schedule = LRSchedule(
            self.optimizer, self.iters_per_epoch, t.epochs, kind=s.kind, warmup_iters=s.warmup_iters,
            warmup_start_factor=s.warmup_start_factor, cosine_begin_epoch=s.cosine_begin_epoch,
            eta_min_factor=s.eta_min_factor, milestones=s.milestones, gamma=s.gamma,
        )  # fmt: skip
        e = cfg.ema
        self.ema = ExpMomentumEMA(self.trainable, e.momentum, e.gamma, e.update_buffers) if e.enabled else None
        self.scaler = torch.amp.GradScaler("cuda") if t.amp == "fp16" else None
        self.stage1_aug = getattr(train_set, "aug", None)
        if t.aug_switch_epoch is not None and (self.stage1_aug is None or not hasattr(train_set, "set_aug")):
            raise ValueError("train.aug_switch_epoch is set but the training dataset has no aug / set_aug()")

        self.start_epoch = 0
        self.global_iter = 0
        self.best: dict[str, Any] = {"metric": None, "value": None, "epoch": None}
        self.last_metrics: dict[str, float] = {}
        self._warned_best = False
        self.log = MetricsLog(self.work_dir / "metrics.jsonl", tensorboard=t.tensorboard, enabled=self.is_main)
        self._t_start = time.perf_counter()
        if val_set is not None:  # a metric that cannot score the data fails now, not after the first epoch
            val = val_instances if val_instances is not None else getattr(val_set, "instances", [])
            check_metric(cfg.eval.metric, val, getattr(cfg, "source", "<config>"))

    # ------------------------------------------------------------------------------------------ utilities
    def say(self, text: str) -> None:
        if self.is_main and self.verbose:
            print(text, flush=True)

    def _ema_weights(self) -> contextlib.AbstractContextManager:
        """Context in which the trained modules hold the EMA weights (a no-op without EMA)."""
        if self.ema is None:
            return contextlib.nullcontext()
        return self.ema.swapped_into(self.trainable)

    def _set_aug(self, epoch: int) -> None:
        switch = self.cfg.train.aug_switch_epoch
        if switch is None or not hasattr(self.train_set, "set_aug"):
            return
        if epoch >= switch:
            self.train_set.set_aug(self.stage1_aug.stage2())
        else:
            self.train_set.set_aug(self.stage1_aug)

    def _best_key(self, metrics: dict[str, float]) -> str | None:
        want = self.cfg.train.best_metric
        if want in metrics:
            return want
        if want != "auto" and not self._warned_best:
            self._warned_best = True
            self.say(f"warning: train.best_metric={want!r} is not among the validation metrics {sorted(metrics)}; "
                     "picking the best checkpoint by the default metric instead")  # fmt: skip
        # COCO AP (of the part covering all keypoints), else the PCKh / PCK at the configured threshold
        for prefix in ("AP", "pckh@", "pck@"):
            for k in metrics:
                if (k == prefix or (prefix.endswith("@") and k.startswith(prefix))) and "/" not in k:
                    return k
        return None

    def _is_better(self, key: str, value: float) -> bool:
        if self.best["value"] is None or self.best["metric"] != key:
            return True
        lower = key.split("/")[-1].lower() in LOWER_IS_BETTER
        return value < self.best["value"] if lower else value > self.best["value"]

    # ------------------------------------------------------------------------------------------ state
    def training_state(self, epoch_done: int, rngs: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything exact resume needs, taken at the end of epoch ``epoch_done - 1`` (raw weights, cloned);
        ``rngs``: the RNG states of every process (:func:`rng_state`, gathered)."""
        return {
            "version": 1,
            "epoch": epoch_done,
            "global_iter": self.global_iter,
            "iters_per_epoch": self.iters_per_epoch,
            "world_size": self.world,
            "modules": {name: _clone_state(m) for name, m in self.trainable.items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "ema": None if self.ema is None else {
                "steps": self.ema.steps, "module": _clone_state(self.ema.module)
            },
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": rngs,
            "loader_generator": self.loader.generator.get_state() if self.loader.generator is not None else None,
            "best": dict(self.best),
            "last_metrics": dict(self.last_metrics),
        }  # fmt: skip

    def load_state(self, path: str | Path) -> None:
        st = load_training_state(path)
        for name, m in self.trainable.items():
            if name not in st["modules"]:
                raise CheckpointError(f"{path}: the training state has no module {name!r} ({sorted(st['modules'])})")
            m.load_state_dict(st["modules"][name])
        self.optimizer.load_state_dict(st["optimizer"])
        self.schedule.load_state_dict(st["scheduler"])
        if self.ema is not None:
            if st["ema"] is None:
                raise CheckpointError(f"{path}: the run was trained without EMA but ema.enabled is true")
            self.ema.load_state_dict(st["ema"])
        if self.scaler is not None and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        if int(st["iters_per_epoch"]) != self.iters_per_epoch:
            self.say(
                f"warning: {st['iters_per_epoch']} iterations per epoch when saved, {self.iters_per_epoch} now "
                "(data or batch size changed); the schedule follows the new value"
            )
        self.start_epoch = int(st["epoch"])
        self.global_iter = int(st["global_iter"])
        self.best = dict(st["best"])
        self.last_metrics = dict(st.get("last_metrics") or {})
        rngs = st["rng"]
        if len(rngs) != self.world:
            self.say(f"warning: saved by {len(rngs)} processes, resumed by {self.world}: RNG streams differ")
        set_rng_state(rngs[self.rank % len(rngs)])
        if st.get("loader_generator") is not None and self.loader.generator is not None:
            self.loader.generator.set_state(st["loader_generator"])
        self.log.truncate_after(self.global_iter)
        self.say(f"resumed from {resolve_checkpoint(path)} at epoch {self.start_epoch}, iteration {self.global_iter}")

    def save(self, epoch_done: int, metrics: dict[str, float], new_best: bool) -> None:
        """Write ``last`` (+ ``epoch_N`` / ``best``); every rank must call it (RNG states are gathered)."""
        t = self.cfg.train
        periodic = epoch_done % t.checkpoint_interval == 0 or epoch_done == t.epochs
        rngs = dist_utils.all_gather_objects(rng_state())
        if not self.is_main:
            return
        state = self.training_state(epoch_done, rngs)
        meta = {
            **self.meta,
            "method": self.cfg.method.type,
            "epoch": epoch_done,
            "global_iter": self.global_iter,
            "metrics": metrics,
            "best": self.best,
            "ema": self.ema is not None,
            "config": self.cfg.to_dict(),
        }
        with self._ema_weights():
            export = self.method.export_model()
            save_checkpoint(self.work_dir / "last", export, meta, state)
            if periodic:
                save_checkpoint(self.work_dir / f"epoch_{epoch_done}", export, meta, state)
            if new_best:
                save_checkpoint(self.work_dir / "best", export, meta)

    # ------------------------------------------------------------------------------------------ loop
    def validate(self, epoch: int) -> dict[str, float]:
        ev = self.cfg.eval
        with self._ema_weights():
            result, _, _ = evaluate(
                self.method, self.val_set, self.layout,
                batch_size=ev.batch_size or self.cfg.train.batch_size, device=self.device,
                num_workers=self.cfg.train.num_workers, flip_test=ev.flip_test, metric=ev.metric,
                metric_args={**self.val_metric_args, **ev.args}, autocast_dtype=self.autocast_dtype,
                progress=self.cfg.train.progress and self.is_main, instances=self.val_instances, rows=self.val_rows,
            )  # fmt: skip
        return scalar_metrics(result)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        t = self.cfg.train
        self._set_aug(epoch)
        set_epoch(self.loader, epoch)
        self.method.train()
        bar = None
        if self.is_main and t.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.iters_per_epoch, desc=f"epoch {epoch + 1}/{t.epochs}", leave=False,
                       dynamic_ncols=True)  # fmt: skip
        window: dict[str, torch.Tensor] = {}
        epoch_sums: dict[str, float] = {}
        n_window = n_epoch = 0
        t_iter = t_data = 0.0
        grad_norm: torch.Tensor | None = None
        t_epoch = t_last = time.perf_counter()
        for i, batch in enumerate(self.loader):
            t_data += time.perf_counter() - t_last
            batch = batch_to_device(batch, self.device)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):  # fmt: skip
                losses = self.model(batch, epoch)
            if not losses:
                raise ValueError(f"{type(self.method).__name__}.losses returned no loss terms")
            loss = sum(v.float() for v in losses.values())
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
            if t.grad_clip is not None:
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, t.grad_clip)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            lr = self.optimizer.param_groups[0]["lr"]
            self.schedule.step()
            if self.ema is not None:
                self.ema.update(self.trainable)
            self.global_iter += 1

            terms = {"loss": loss.detach(), **{k: v.detach().float() for k, v in losses.items()}}
            if grad_norm is not None:
                terms["grad_norm"] = grad_norm.detach().float()
            for k, v in terms.items():
                window[k] = window[k] + v if k in window else v
            n_window += 1
            t_iter += time.perf_counter() - t_last
            last = i + 1 == self.iters_per_epoch
            if (i + 1) % t.log_interval == 0 or last:
                means = {k: float(v) / n_window for k, v in window.items()}
                means = dist_utils.all_reduce_mean(means, self.device)
                if not math.isfinite(means["loss"]):
                    raise FloatingPointError(
                        f"non-finite loss at epoch {epoch}, iterations up to {i + 1}: {means}; the last checkpoint "
                        f"in {self.work_dir} is intact (resume with a lower optim.lr or train.grad_clip)"
                    )
                for k, v in means.items():
                    epoch_sums[k] = epoch_sums.get(k, 0.0) + v * n_window
                n_epoch += n_window
                self.log.write({
                    "type": "train", "epoch": epoch, "iter": i + 1, "iters": self.iters_per_epoch,
                    "global_iter": self.global_iter, "lr": lr, **means, "time": t_iter / n_window,
                    "data_time": t_data / n_window, "elapsed": time.perf_counter() - self._t_start,
                })  # fmt: skip
                if bar is not None:
                    bar.set_postfix(loss=f"{means['loss']:.4g}", lr=f"{lr:.3g}")
                window, n_window, t_iter, t_data = {}, 0, 0.0, 0.0
            if bar is not None:
                bar.update(1)
            if self.on_iteration is not None:
                self.on_iteration(self, epoch, i)
            t_last = time.perf_counter()
        if bar is not None:
            bar.close()
        summary = {k: v / max(n_epoch, 1) for k, v in epoch_sums.items()}
        spread = self._prediction_spread(batch) if self.iters_per_epoch else float("nan")
        if math.isfinite(spread):
            summary["pred_spread"] = spread
            if spread < COLLAPSE_RATIO:
                self.say(
                    f"warning: epoch {epoch + 1}: the predictions' spread across the last batch is {spread:.2f}x the "
                    "ground truth's: the model outputs nearly the same pose for every person (collapse to the mean "
                    "pose). Check the learning rate, the augmentation strength and the schedule (docs/learning.md)."
                )
        summary["epoch_time"] = time.perf_counter() - t_epoch
        summary["lr"] = self.optimizer.param_groups[0]["lr"]
        return summary

    @torch.no_grad()
    def _prediction_spread(self, batch: dict[str, Any]) -> float:
        """Spread of the predictions across ``batch`` over the targets' (:mod:`posedistill.engine.collapse`);
        nan for batches that are not top-down person crops (video clips) or without labelled joints."""
        kp, vis = batch.get("keypoints"), batch.get("visibility")
        if not isinstance(kp, torch.Tensor) or kp.ndim != 3 or not isinstance(vis, torch.Tensor):
            return float("nan")
        self.method.eval()  # BN running statistics must not see this extra forward
        try:
            pred, _ = self.method.predict(batch)
        finally:
            self.method.train()
        size = tuple(batch["image"].shape[-1:-3:-1])  # (w, h)
        return spread_ratio(np.asarray(pred), kp.cpu().numpy(), vis.cpu().numpy() > 0, size)

    def fit(self, resume: str | Path | bool | None = None) -> dict[str, Any]:
        """Train from scratch or resume (``True``: from ``work_dir/last`` when it exists; a path: from there).
        Returns ``{"best": ..., "metrics": last validation metrics, "work_dir": ...}``."""
        t = self.cfg.train
        if resume:
            path = self.work_dir / "last" if resume is True else Path(resume)
            try:
                resolve_checkpoint(path)
                found = True
            except CheckpointError:
                if resume is not True:
                    raise
                found = False
                self.say(f"--resume: no checkpoint at {path} yet; starting from scratch")
            if found:
                self.load_state(path)
        if self.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.work_dir / "config.yaml")
        if self.start_epoch == 0 and self.is_main:
            self.log.truncate_after(0)
        self.say(
            f"training {self.cfg.method.type} on {len(self.train_set)} samples: {t.epochs} epochs x "
            f"{self.iters_per_epoch} iterations, batch {t.batch_size} x {self.world} process(es), "
            f"device {self.device}, work dir {self.work_dir}"
        )
        for epoch in range(self.start_epoch, t.epochs):
            summary = self.train_epoch(epoch)
            self.log.write({"type": "epoch", "epoch": epoch, "global_iter": self.global_iter, **summary})
            terms = ", ".join(f"{k} {v:.4g}" for k, v in summary.items() if k not in ("epoch_time", "lr"))
            self.say(f"epoch {epoch + 1}/{t.epochs}: {terms}, lr {summary['lr']:.3g}, {summary['epoch_time']:.1f}s")
            epoch_done = epoch + 1
            new_best = False
            do_val = self.val_set is not None and (epoch_done % t.val_interval == 0 or epoch_done == t.epochs)
            if do_val:
                try:
                    metrics = self.validate(epoch)
                except (Exception, KeyboardInterrupt):
                    # keep the epoch's training: 'last' without this validation's metrics, then fail
                    if self.world == 1:
                        self.save(epoch_done, self.last_metrics, False)
                        self.say(f"validation failed; epoch {epoch_done}'s weights are in {self.work_dir / 'last'}")
                    raise
                self.last_metrics = metrics
                key = self._best_key(metrics)
                if key is not None and self._is_better(key, metrics[key]):
                    self.best = {"metric": key, "value": metrics[key], "epoch": epoch_done}
                    new_best = True
                self.log.write({"type": "val", "epoch": epoch, "global_iter": self.global_iter, **metrics,
                                "best": self.best["value"], "best_metric": self.best["metric"]})  # fmt: skip
                # the headline numbers only: per-part / per-joint values go to metrics.jsonl
                shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if "/" not in k and k not in _NOT_SHOWN)
                if key is not None:
                    shown += f" (best {key} {self.best['value']:.4g} at epoch {self.best['epoch']})"
                self.say(f"  val epoch {epoch_done}: {shown}")
            self.save(epoch_done, self.last_metrics, new_best)
        dist_utils.barrier()
        self.log.close()
        return {"best": self.best, "metrics": self.last_metrics, "work_dir": str(self.work_dir)}
