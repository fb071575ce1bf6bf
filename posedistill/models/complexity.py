"""Parameter and FLOP counts. "FLOPs" are multiply-accumulates (MACs), as the RTMPose / mmpose tables count them.

``count_flops`` reproduces mmengine's ``get_model_complexity_info`` (what mmpose's ``get_flops.py`` runs, the
source of the published RTMPose numbers) without tracing:

- conv, transposed conv, linear, mm/addmm/bmm/matmul: MACs, no bias term. These come from
  ``torch.utils.flop_counter.FlopCounterMode`` (multiply + add, so halved); it works at the aten level, so
  functional calls such as the GAU's two attention matmuls are seen too;
- BatchNorm (eval): 2 per element (affine), as mmengine's ``batchnorm_flop_jit``;
- adaptive average pooling: 1 per input element; nearest upsampling: 1 per output element;
- activations, max pooling, element-wise ops and ScaleNorm: 0.

Without the last two bullets' terms (``mmengine_compatible=False``) the count is the pure matmul/conv MACs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BN running stats are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# Extra FlopCounterMode formulas, keyed by aten op packet. FlopCounterMode counts multiply and add separately
# (2 per MAC) and the total is halved at the end, so these return 2 × the MACs mmengine assigns.
def _batch_norm_flop(input_shape: Sequence[int], weight_shape: Sequence[int] | None, *a: Any, **k: Any) -> int:
    # eval-mode rule (count_flops always runs in eval): 2 per element with an affine transform, else 1
    return 2 * (2 if weight_shape is not None else 1) * math.prod(input_shape)


def _upsample_nearest_flop(*args: Any, out_shape: Sequence[int] = (), **kwargs: Any) -> int:
    return 2 * math.prod(out_shape)


def _with_overloads(formulas: dict[Any, Any]) -> dict[Any, Any]:
    # FlopCounterMode looks the packet up when counting but decomposes any op whose overload is not a key first
    # (nearest upsampling would decompose into index ops and never be counted), so register both.
    out = dict(formulas)
    for packet, f in formulas.items():
        out.update({getattr(packet, name): f for name in packet.overloads()})
    return out


_MMENGINE_EXTRA: dict[Any, Any] = _with_overloads(
    {
        aten.native_batch_norm: _batch_norm_flop,
        aten._native_batch_norm_legit_no_training: _batch_norm_flop,
        aten.upsample_nearest2d: _upsample_nearest_flop,
    }
)


@torch.no_grad()
def count_flops(
    model: nn.Module,
    input_shape: Sequence[int] = (1, 3, 256, 192),
    mmengine_compatible: bool = True,
) -> int:
    """MACs of one eval-mode forward pass on a zero tensor of ``input_shape`` (B×3×H×W; counts scale with B)."""
    was_training = model.training
    model.eval()
    p = next(model.parameters(), None)
    x = torch.zeros(
        tuple(input_shape),
        dtype=p.dtype if p is not None else torch.float32,
        device=p.device if p is not None else "cpu",
    )
    pool_macs = 0

    def pool_hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal pool_macs
        pool_macs += inputs[0].numel()

    handles = []
    if mmengine_compatible:
        handles = [
            m.register_forward_hook(pool_hook)
            for m in model.modules()
            if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveAvgPool1d)
        ]
    counter = FlopCounterMode(display=False, custom_mapping=_MMENGINE_EXTRA if mmengine_compatible else None)
    try:
        with counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return counter.get_total_flops() // 2 + pool_macs
