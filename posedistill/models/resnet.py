"""ResNet-18/34/50/101/152 backbones (He et al. 2016), v1.5 (stride in the 3×3 conv of a bottleneck).

Layer names follow torchvision and mmpose (``conv1``, ``bn1``, ``layer1..4``, ``downsample.0/1``), so
ImageNet or mmpose weights map onto it by key. For an input B×3×H×W::

    stem    conv 7×7 s2 → BN → ReLU → maxpool 3×3 s2      B×64×H/4×W/4
    layer1  blocks at stride 4                            B×(64·e)×H/4×W/4     e = 1 (basic) or 4 (bottleneck)
    layer2  stride 8                                      B×(128·e)×H/8×W/8
    layer3  stride 16                                     B×(256·e)×H/16×W/16
    layer4  stride 32                                     B×(512·e)×H/32×W/32
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

# depth -> (block type, blocks per stage)
RESNET_DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class BasicBlock(nn.Module):
    """Two 3×3 convs with a shortcut. B×Cin×H×W → B×planes×H/s×W/s."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride here) → 1×1 ×4 with a shortcut. B×Cin×H×W → B×4·planes×H/s×W/s."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet backbone. ``forward(x)`` returns a list with the maps at ``out_indices``.

    Index 0 is the stem output (after the max-pool, stride 4), 1..4 are ``layer1..4``; the default ``(4,)`` returns
    the stride-32 map only. ``stages()`` gives [stem, layer1, layer2, layer3, layer4] as modules applied in order
    (the stem is a Sequential view over ``conv1, bn1, relu, maxpool``, sharing their parameters).
    """

    stage_names: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, depth: int = 50, out_indices: Sequence[int] = (4,), base_channels: int = 64) -> None:
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"unsupported ResNet depth {depth}; expected one of {sorted(RESNET_DEPTHS)}")
        if not out_indices or any(i not in range(5) for i in out_indices):
            raise ValueError(f"out_indices must be a non-empty subset of 0..4, got {tuple(out_indices)}")
        kind, blocks = RESNET_DEPTHS[depth]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        self.depth = depth
        self.out_indices = tuple(sorted(out_indices))
        self.conv1 = nn.Conv2d(3, base_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = base_channels
        channels = [base_channels]
        for i, n in enumerate(blocks):
            planes = base_channels * 2**i
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or in_ch != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(in_ch, planes * block.expansion, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion),
                )
            layers: list[nn.Module] = [block(in_ch, planes, stride, downsample)]
            in_ch = planes * block.expansion
            layers += [block(in_ch, planes) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
            channels.append(in_ch)
        self.out_channels: tuple[int, ...] = tuple(channels[i] for i in self.out_indices)
        self.init_weights()

    def init_weights(self) -> None:
        """Kaiming-normal (fan_out, relu) convs, BN weight 1 / bias 0 (torchvision's and mmpose's default)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stages(self) -> list[nn.Module]:
        """[stem, layer1, layer2, layer3, layer4]: applying them in order gives the stride-32 map."""
        stem = nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool)
        return [stem, self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = [x] if 0 in self.out_indices else []
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), start=1):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
