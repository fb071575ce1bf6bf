"""Optimizers with the mmengine ``paramwise_cfg(norm_decay_mult=0, bias_decay_mult=0)`` weight-decay split.

Every parameter of a normalisation layer (BatchNorm / SyncBatchNorm / InstanceNorm / GroupNorm / LayerNorm /
RMSNorm: weight and bias) and every parameter named ``bias`` get no weight decay; everything else is decayed. This
includes RTMPose's GAU ``gamma``/``beta``, ScaleNorm ``g`` and ``res_scale.scale``: those modules are not torch
norm classes, exactly as in mmengine. Frozen parameters (``requires_grad=False``) are left out; a parameter shared
by several modules is added once (``bypass_duplicate=True``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

NORM_TYPES: tuple[type[nn.Module], ...] = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
)


def split_decay(
    modules: Mapping[str, nn.Module] | Iterable[nn.Module], norm_decay: bool = False, bias_decay: bool = False
) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """Split the trainable parameters of ``modules`` into (decayed, not decayed) lists of (name, parameter)."""
    items = modules.items() if isinstance(modules, Mapping) else ((f"m{i}", m) for i, m in enumerate(modules))
    decay: list[tuple[str, nn.Parameter]] = []
    no_decay: list[tuple[str, nn.Parameter]] = []
    seen: set[int] = set()
    for prefix, root in items:
        for mod_name, module in root.named_modules():
            is_norm = isinstance(module, NORM_TYPES)
            for p_name, p in module.named_parameters(recurse=False):
                if not p.requires_grad or id(p) in seen:
                    continue
                seen.add(id(p))
                full = ".".join(x for x in (prefix, mod_name, p_name) if x)
                if (is_norm and not norm_decay) or (p_name == "bias" and not is_norm and not bias_decay):
                    no_decay.append((full, p))
                else:
                    decay.append((full, p))
    return decay, no_decay


def param_groups(
    modules: Mapping[str, nn.Module] | Iterable[nn.Module],
    weight_decay: float,
    norm_decay: bool = False,
    bias_decay: bool = False,
) -> list[dict]:
    """Two optimizer param groups: ``{"params", "weight_decay", "names"}`` (decayed first, empty ones dropped)."""
    decay, no_decay = split_decay(modules, norm_decay, bias_decay)
    groups = [
        {"params": [p for _, p in decay], "weight_decay": weight_decay, "names": [n for n, _ in decay]},
        {"params": [p for _, p in no_decay], "weight_decay": 0.0, "names": [n for n, _ in no_decay]},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(
    modules: Mapping[str, nn.Module] | Iterable[nn.Module],
    type: str = "adamw",
    lr: float = 4e-3,
    weight_decay: float = 0.0,
    betas: tuple[float, float] | list[float] = (0.9, 0.999),
    eps: float = 1e-8,
    momentum: float = 0.9,
    nesterov: bool = False,
    norm_decay: bool = False,
    bias_decay: bool = False,
) -> torch.optim.Optimizer:
    """AdamW (the RTMPose default), Adam (OKDHP, DKD) or SGD over :func:`param_groups`."""
    groups = param_groups(modules, weight_decay, norm_decay, bias_decay)
    if not groups:
        raise ValueError("no trainable parameters: every parameter of the trained modules has requires_grad=False")
    kind = type.lower()
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    if kind == "adam":
        # torch Adam adds decay to the gradient (L2), like the OKDHP code; AdamW decouples it
        return torch.optim.Adam(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer type {type!r}; expected adamw, adam or sgd")
