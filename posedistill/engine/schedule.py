"""Per-iteration learning-rate schedule: linear warm-up, then constant, cosine or step decay.

RTMPose's recipe (mmengine ``LinearLR`` + ``CosineAnnealingLR(convert_to_iter_based=True)``) in closed form::

    warm(t) = f0 + (1 - f0) * min(t, W - 1) / (W - 1)       t: 0-based global iteration, W: warm-up iterations
    base(t) = lr                                             t < C
            = eta + (lr - eta) * (1 + cos(pi * (t - C) / T)) / 2    t >= C
    lr(t)   = warm(t) * base(t)

with C = cosine_begin_epoch * iters_per_epoch, T = (epochs - cosine_begin_epoch) * iters_per_epoch and
eta = eta_min_factor * lr.

mmengine divides the warm-up by ``end - begin - 1`` = W - 1, so the factor reaches exactly 1 at t = W - 1; we do
the same. When the warm-up ends before the cosine starts (every published recipe) this equals mmengine's chained
schedulers exactly; when they overlap (tiny datasets) the product of the two factors is our design choice.
``step`` decays by ``gamma`` at each epoch milestone (mmengine ``MultiStepLR``; OKDHP uses 90/120).
"""

from __future__ import annotations

import math
from typing import Any

import torch

KINDS = ("cosine", "step", "constant")


class LRSchedule:
    """Sets ``group["lr"] = group["initial_lr"] * factor(t)`` on every optimizer step.

    Call :meth:`step` once after every ``optimizer.step()``; the constructor applies iteration 0's value.
    ``initial_lr`` is stored per param group so groups with different base rates scale together.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        iters_per_epoch: int,
        epochs: int,
        kind: str = "cosine",
        warmup_iters: int = 1000,
        warmup_start_factor: float = 1e-5,
        cosine_begin_epoch: int | None = None,
        eta_min_factor: float = 0.05,
        milestones: tuple[int, ...] | list[int] = (),
        gamma: float = 0.1,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown schedule kind {kind!r}; expected one of {KINDS}")
        if iters_per_epoch < 1 or epochs < 1:
            raise ValueError(f"need iters_per_epoch >= 1 and epochs >= 1, got {iters_per_epoch} and {epochs}")
        self.optimizer = optimizer
        self.iters_per_epoch = int(iters_per_epoch)
        self.epochs = int(epochs)
        self.kind = kind
        self.warmup_iters = int(warmup_iters)
        self.warmup_start_factor = float(warmup_start_factor)
        self.cosine_begin_epoch = epochs // 2 if cosine_begin_epoch is None else int(cosine_begin_epoch)
        self.eta_min_factor = float(eta_min_factor)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.last_iter = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self._apply()

    def factor(self, t: int) -> float:
        """Multiplier of the base learning rate at 0-based global iteration ``t``."""
        warm = 1.0
        if self.warmup_iters > 1 and t < self.warmup_iters - 1:
            f0 = self.warmup_start_factor
            warm = f0 + (1.0 - f0) * t / (self.warmup_iters - 1)
        elif self.warmup_iters == 1 and t == 0:
            warm = self.warmup_start_factor
        base = 1.0
        if self.kind == "cosine":
            begin = self.cosine_begin_epoch * self.iters_per_epoch
            span = (self.epochs - self.cosine_begin_epoch) * self.iters_per_epoch
            if t >= begin and span > 0:
                progress = min(t - begin, span) / span
                eta = self.eta_min_factor
                base = eta + (1.0 - eta) * (1.0 + math.cos(math.pi * progress)) / 2.0
        elif self.kind == "step":
            epoch_boundary = [m * self.iters_per_epoch for m in self.milestones]
            base = self.gamma ** sum(t >= b for b in epoch_boundary)
        return warm * base

    def _apply(self) -> None:
        f = self.factor(self.last_iter)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * f

    def step(self) -> None:
        self.last_iter += 1
        self._apply()

    def get_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_iter": self.last_iter, "initial_lr": [g["initial_lr"] for g in self.optimizer.param_groups]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_iter = int(state["last_iter"])
        for group, lr in zip(self.optimizer.param_groups, state["initial_lr"]):
            group["initial_lr"] = float(lr)
        self._apply()
