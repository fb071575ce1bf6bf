"""Exponential moving average of a model's weights, with mmengine's ``ExpMomentumEMA`` momentum schedule.

After every optimizer step ``n`` (0-based)::

    n == 0:  ema <- param                                             (the first update copies)
    n >= 1:  m_n = (1 - momentum) * exp(-(1 + n) / gamma) + momentum
             ema <- (1 - m_n) * ema + m_n * param                     (torch.lerp, as mmengine)

over the parameters and floating-point buffers (BN running stats; ``update_buffers=True`` in every RTMPose config).
Integer buffers (``num_batches_tracked``) are copied on every update rather than only at the first one as mmengine
does; they only matter for BN with ``momentum=None``, which no recipe here uses. The early momentum is large
(m_1 ~ 0.999), so the average follows the raw weights at first and settles to ``momentum`` after a few ``gamma``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class ExpMomentumEMA:
    """Holds a frozen deep copy of ``model`` (``self.module``) whose state follows the formula above."""

    def __init__(self, model: nn.Module, momentum: float = 2e-4, gamma: float = 2000.0, update_buffers: bool = True):
        if not 0.0 < momentum < 1.0:
            raise ValueError(f"EMA momentum must be in (0, 1), got {momentum}")
        if gamma <= 0:
            raise ValueError(f"EMA gamma must be > 0, got {gamma}")
        self.momentum = float(momentum)
        self.gamma = float(gamma)
        self.update_buffers = update_buffers
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)
        self.steps = 0

    def momentum_at(self, step: int) -> float:
        """m_n of the formula above (the weight given to the live parameters at update ``step`` >= 1)."""
        return (1.0 - self.momentum) * math.exp(-(1.0 + step) / self.gamma) + self.momentum

    def _pairs(self, model: nn.Module) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
        """(ema tensor, live tensor, averaged?) for every parameter and buffer, matched by name."""
        live = dict(model.named_parameters())
        live_buffers = dict(model.named_buffers())
        for name, p in self.module.named_parameters():
            yield p, live[name], True
        for name, b in self.module.named_buffers():
            yield b, live_buffers[name], self.update_buffers and b.dtype.is_floating_point

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` (same architecture as at construction) into the average."""
        m = self.momentum_at(self.steps)
        for ema_t, src, averaged in self._pairs(model):
            src = src.detach().to(ema_t.device)
            if self.steps == 0 or not averaged:
                ema_t.copy_(src)
            else:
                ema_t.lerp_(src.to(ema_t.dtype), m)
        self.steps += 1

    @contextmanager
    @torch.no_grad()
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily put the EMA weights into ``model`` (e.g. for validation or saving), then restore them."""
        pairs = list(self._pairs(model))
        for ema_t, src, _ in pairs:
            tmp = src.detach().clone()
            src.copy_(ema_t)
            ema_t.copy_(tmp)
        try:
            yield model
        finally:
            for ema_t, src, _ in pairs:
                tmp = src.detach().clone()
                src.copy_(ema_t)
                ema_t.copy_(tmp)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.module.load_state_dict(state["module"])
