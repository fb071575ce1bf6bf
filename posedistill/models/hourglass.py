"""Stacked hourglass network (Newell et al. 2016) in the FPD / OKDHP code-base layout.

For a B×3×H×W input (256×256 in the papers), width C (256 by default) and K keypoints::

    stem    conv 7×7 s2 (3→C/4) → BN → ReLU → residual (C/4→C/2) → maxpool 2 → residual (C/2→C) → residual (C→C)
                                                                                  B×C×H/4×W/4
    stack i hourglass(depth 4) → residual → [conv 1×1 → BN → ReLU] = y_i;  heatmap_i = conv 1×1 (C→K)(y_i)
            between stacks: x ← x + conv 1×1(y_i) + conv 1×1(heatmap_i)   (not after the last stack)

Residuals are pre-activation bottlenecks with expansion 2 (BN-ReLU-conv1×1 C→C/2, BN-ReLU-conv3×3,
BN-ReLU-conv1×1 →C, convs with bias, a 1×1 conv shortcut when the width changes). The hourglass halves the
resolution ``depth`` times with max-pooling and comes back with nearest upsampling (to the skip branch's size, so
sizes that are not multiples of 2^depth also work; the input must be at least 4·2^depth = 64 pixels each way).

Outputs: ``forward(x)`` is the last stack's heatmap, B×K×H/4×W/4, in training and eval mode;
``forward_all(x)`` is the list of every stack's heatmap (intermediate supervision); ``features(x)`` is
[stem output, y_0, …, y_{n-1}].

Splitting (OKDHP): ``model.stem`` and ``model.stacks`` (a ModuleList of :class:`HourglassStack`, each with a
``merge`` flag: stacks that feed another stack merge, the last one does not). ``run_stacks(stacks, x)`` runs any
sequence of stacks. A multi-branch network is ``stem`` + shared stacks (``merge=True``) + per-branch lists of
private stacks whose last stack has ``merge=False``; a deployed branch maps back onto a plain
``StackedHourglass`` by key (``stem.*``, ``stacks.{i}.*``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck, expansion 2. B×Cin×H×W → B×Cout×H×W."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=True)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=True)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Conv2d(in_channels, out_channels, 1, bias=True) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class Hourglass(nn.Module):
    """Recursive hourglass of ``depth`` levels. B×C×H×W → B×C×H×W.

    out = skip(x) + up(low(inner(down(maxpool(x))))), inner = a deeper hourglass or, at the bottom, a residual.
    """

    def __init__(self, channels: int, depth: int = 4) -> None:
        super().__init__()
        self.skip = PreActBottleneck(channels, channels)
        self.down = PreActBottleneck(channels, channels)
        self.inner: nn.Module = Hourglass(channels, depth - 1) if depth > 1 else PreActBottleneck(channels, channels)
        self.up = PreActBottleneck(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(x)
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2, stride=2))))
        return skip + F.interpolate(low, size=skip.shape[-2:], mode="nearest")


class HourglassStack(nn.Module):
    """One stack: hourglass → residual → 1×1 conv-BN-ReLU (features y) → 1×1 conv to K heatmaps.

    ``forward(x) -> (next x, heatmap)``; with ``merge`` the next input is x + conv(y) + conv(heatmap), otherwise y.
    """

    def __init__(self, channels: int, num_keypoints: int, depth: int = 4, merge: bool = True) -> None:
        super().__init__()
        self.hourglass = Hourglass(channels, depth)
        self.residual = PreActBottleneck(channels, channels)
        self.fc = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.score = nn.Conv2d(channels, num_keypoints, 1)
        self.merge = merge
        if merge:
            self.merge_features = nn.Conv2d(channels, channels, 1)
            self.merge_heatmaps = nn.Conv2d(num_keypoints, channels, 1)

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(features y B×C×h×w, heatmap B×K×h×w)."""
        y = self.fc(self.residual(self.hourglass(x)))
        return y, self.score(y)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, heatmap = self.predict(x)
        if self.merge:
            return x + self.merge_features(y) + self.merge_heatmaps(heatmap), heatmap
        return y, heatmap


def hourglass_stem(channels: int = 256) -> nn.Sequential:
    """B×3×H×W → B×C×H/4×W/4."""
    return nn.Sequential(
        nn.Conv2d(3, channels // 4, 7, stride=2, padding=3, bias=True),
        nn.BatchNorm2d(channels // 4),
        nn.ReLU(inplace=True),
        PreActBottleneck(channels // 4, channels // 2),
        nn.MaxPool2d(2, stride=2),
        PreActBottleneck(channels // 2, channels),
        PreActBottleneck(channels, channels),
    )


def run_stacks(stacks: Sequence[nn.Module], x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Run stacks in order: (output of the last stack's forward, list of heatmaps)."""
    heatmaps = []
    for stack in stacks:
        x, h = stack(x)
        heatmaps.append(h)
    return x, heatmaps


class StackedHourglass(nn.Module):
    """``num_stacks`` hourglass stacks on the shared stem; see the module docstring for outputs and splitting."""

    def __init__(self, num_stacks: int = 4, num_keypoints: int = 16, channels: int = 256, depth: int = 4) -> None:
        super().__init__()
        if num_stacks < 1:
            raise ValueError(f"num_stacks must be >= 1, got {num_stacks}")
        self.num_stacks = num_stacks
        self.num_keypoints = num_keypoints
        self.channels = channels
        self.stem = hourglass_stem(channels)
        self.stacks = nn.ModuleList(
            [HourglassStack(channels, num_keypoints, depth, merge=i < num_stacks - 1) for i in range(num_stacks)]
        )

    def forward_all(self, x: Tensor) -> list[Tensor]:
        """Every stack's heatmap, B×K×H/4×W/4 each, first to last."""
        return run_stacks(self.stacks, self.stem(x))[1]

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_all(x)[-1]

    def features(self, x: Tensor) -> list[Tensor]:
        """[stem output, y_0, …, y_{n-1}] (B×C×H/4×W/4 each); y_i is stack i's feature before its score conv."""
        x = self.stem(x)
        feats = [x]
        for stack in self.stacks:
            y, heatmap = stack.predict(x)
            feats.append(y)
            if stack.merge:
                x = x + stack.merge_features(y) + stack.merge_heatmaps(heatmap)
        return feats
