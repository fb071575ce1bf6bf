"""CSPNeXt backbone (RTMDet / RTMPose), P5 architecture, with mmpose/mmdet state-dict names.

Layout for an input of B×3×H×W (every stride-2 conv maps n → ceil(n/2), so any size works)::

    stem    3 × ConvBNAct 3×3 (first stride 2)                      B×c0×H/2×W/2
    stage1  ConvBNAct 3×3 s2 → CSPLayer (identity add)              B×c1×H/4×W/4
    stage2  ConvBNAct 3×3 s2 → CSPLayer (identity add)              B×c2×H/8×W/8
    stage3  ConvBNAct 3×3 s2 → CSPLayer (identity add)              B×c3×H/16×W/16
    stage4  ConvBNAct 3×3 s2 → SPP(5, 9, 13) → CSPLayer (no add)    B×c4×H/32×W/32

Sizes scale the base channels (64, 128, 256, 512, 1024) by ``widen`` and the blocks (3, 6, 6, 3) by ``deepen``.
``use_depthwise`` makes the stage downsampling and each block's first 3×3 conv depthwise-separable, as in the
RTMDet-nano detector's backbone (:data:`RTMDET_NANO`).
BatchNorm is eps 1e-5, momentum 0.1 (the configs' SyncBN, not the class default 1e-3 / 0.03).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# name -> (deepen_factor, widen_factor), as in the RTMPose / RTMDet configs
CSPNEXT_SIZES: dict[str, tuple[float, float]] = {
    "t": (0.167, 0.375),
    "s": (0.33, 0.5),
    "m": (0.67, 0.75),
    "l": (1.0, 1.0),
    "x": (1.33, 1.25),
}

# RTMDet-nano's backbone: (deepen_factor, widen_factor), built with use_depthwise=True
RTMDET_NANO: tuple[float, float] = (0.33, 0.25)
# P5 stages: (in_channels, out_channels, num_blocks, add_identity, use_spp) before scaling
_P5 = ((64, 128, 3, True, False), (128, 256, 6, True, False), (256, 512, 6, True, False), (512, 1024, 3, False, True))


class ConvBNAct(nn.Module):
    """Conv (no bias, padding k//2) → BatchNorm → SiLU. Names ``conv``/``bn`` match mmcv's ConvModule."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k×k ConvBNAct followed by pointwise 1×1 ConvBNAct."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise_conv = ConvBNAct(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.pointwise_conv = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class CSPNeXtBlock(nn.Module):
    """3×3 ConvBNAct (depthwise-separable with ``use_depthwise``, as in RTMDet-nano) → depthwise-separable 5×5,
    with an optional identity shortcut. B×C×H×W → B×C×H×W."""

    def __init__(
        self, channels: int, add_identity: bool = True, kernel_size: int = 5, use_depthwise: bool = False
    ) -> None:
        super().__init__()
        self.conv1 = (
            DepthwiseSeparableConv(channels, channels, 3) if use_depthwise else ConvBNAct(channels, channels, 3)
        )
        self.conv2 = DepthwiseSeparableConv(channels, channels, kernel_size)
        self.add_identity = add_identity

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ChannelAttention(nn.Module):
    """x · hardsigmoid(fc(global average pool(x))), fc a 1×1 conv with bias. B×C×H×W → B×C×H×W."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.act = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.act(self.fc(self.pool(x)))


class CSPLayer(nn.Module):
    """Cross-stage partial layer. B×Cin×H×W → B×Cout×H×W.

    main = blocks(1×1 conv(x)), short = 1×1 conv(x); out = 1×1 conv(attention(cat[main, short])).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int,
        add_identity: bool = True,
        expand_ratio: float = 0.5,
        channel_attention: bool = True,
        use_depthwise: bool = False,
    ) -> None:
        super().__init__()
        mid = int(out_channels * expand_ratio)
        self.main_conv = ConvBNAct(in_channels, mid, 1)
        self.short_conv = ConvBNAct(in_channels, mid, 1)
        self.final_conv = ConvBNAct(2 * mid, out_channels, 1)
        self.blocks = nn.Sequential(*[CSPNeXtBlock(mid, add_identity, use_depthwise=use_depthwise)
                                      for _ in range(num_blocks)])  # fmt: skip
        self.attention = ChannelAttention(2 * mid) if channel_attention else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        short = self.short_conv(x)
        main = self.blocks(self.main_conv(x))
        return self.final_conv(self.attention(torch.cat((main, short), dim=1)))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: h = 1×1 conv (C→C/2); 1×1 conv(cat[h, maxpool_k(h) for k]) → Cout."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int] = (5, 9, 13)) -> None:
        super().__init__()
        mid = in_channels // 2
        self.conv1 = ConvBNAct(in_channels, mid, 1)
        self.poolings = nn.ModuleList([nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes])
        self.conv2 = ConvBNAct(mid * (len(kernel_sizes) + 1), out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.poolings], dim=1))


@dataclass(frozen=True)
class CSPNeXtSpec:
    """Resolved channel and block counts for one size."""

    stem_channels: tuple[int, int, int]
    stage_channels: tuple[int, int, int, int]
    stage_blocks: tuple[int, int, int, int]


def cspnext_spec(deepen_factor: float, widen_factor: float) -> CSPNeXtSpec:
    """Channel counts ``int(c·widen)`` and blocks ``max(round(n·deepen), 1)`` (Python round), as mmdet does."""
    half = int(_P5[0][0] * widen_factor // 2)
    return CSPNeXtSpec(
        stem_channels=(half, half, int(_P5[0][0] * widen_factor)),
        stage_channels=tuple(int(s[1] * widen_factor) for s in _P5),  # type: ignore[arg-type]
        stage_blocks=tuple(max(round(s[2] * deepen_factor), 1) for s in _P5),  # type: ignore[arg-type]
    )


class CSPNeXt(nn.Module):
    """CSPNeXt P5 backbone. ``forward(x)`` returns a list with the maps at ``out_indices``.

    Index 0 is the stem (stride 2), 1..4 the stages (strides 4, 8, 16, 32); the default ``(4,)`` returns only the
    stride-32 map, as every RTMPose config does. ``stages()`` lists the five sequential parts, so a caller can split
    the network into shared low-level layers and the rest (``stages()[:n]`` / ``stages()[n:]``).
    """

    stage_names: tuple[str, ...] = ("stem", "stage1", "stage2", "stage3", "stage4")

    def __init__(
        self,
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        out_indices: Sequence[int] = (4,),
        expand_ratio: float = 0.5,
        channel_attention: bool = True,
        spp_kernel_sizes: Sequence[int] = (5, 9, 13),
        use_depthwise: bool = False,
    ) -> None:
        super().__init__()
        if not out_indices or any(i not in range(5) for i in out_indices):
            raise ValueError(f"out_indices must be a non-empty subset of 0..4, got {tuple(out_indices)}")
        self.out_indices = tuple(sorted(out_indices))
        spec = cspnext_spec(deepen_factor, widen_factor)
        self.spec = spec
        c0, c1, c2 = spec.stem_channels
        self.stem = nn.Sequential(ConvBNAct(3, c0, 3, stride=2), ConvBNAct(c0, c1, 3), ConvBNAct(c1, c2, 3))
        in_ch = c2
        for i, (out_ch, n, (_, _, _, add_identity, use_spp)) in enumerate(
            zip(spec.stage_channels, spec.stage_blocks, _P5)
        ):
            down = (
                DepthwiseSeparableConv(in_ch, out_ch, 3, stride=2) if use_depthwise else ConvBNAct(in_ch, out_ch, 3, 2)
            )
            layers: list[nn.Module] = [down]
            if use_spp:
                layers.append(SPPBottleneck(out_ch, out_ch, spp_kernel_sizes))
            layers.append(CSPLayer(out_ch, out_ch, n, add_identity, expand_ratio, channel_attention, use_depthwise))
            self.add_module(f"stage{i + 1}", nn.Sequential(*layers))
            in_ch = out_ch
        all_channels = (c2, *spec.stage_channels)
        self.out_channels: tuple[int, ...] = tuple(all_channels[i] for i in self.out_indices)
        self.init_weights()

    def stages(self) -> list[nn.Module]:
        """[stem, stage1, stage2, stage3, stage4]: applying them in order gives the stride-32 map."""
        return [getattr(self, n) for n in self.stage_names]

    def init_weights(self) -> None:
        """mmdet's from-scratch init: Kaiming-uniform (a=√5, fan_in, leaky_relu) convs, zero biases, BN 1/0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), mode="fan_in", nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for i, stage in enumerate(self.stages()):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
