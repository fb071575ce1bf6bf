"""Feature Aggregation Unit (FAU) of OKDHP (Li et al., ICCV 2021): per-joint weights that mix the branches' heatmaps
into the ensemble teacher.

For a shared feature map B×C×h×w, ``num_branches`` = N and K keypoints::

    U = Σ_k ReLU(BN(conv_k×k(x)))    k = 3, 5, 7, stride 1, "same" padding, C → C' (C' = C by default)
    s = mean over h×w of U            B×C'
    z = Linear(C' → C'/4)(s)          no norm, no activation (as the official code)
    logits[:, b] = Linear_b(C'/4 → K)(z)                        B×N×K
    w = softmax over the branch axis of logits                  Σ_b w[:, b, j] = 1 for every joint j
    ensemble[:, j] = Σ_b w[:, b, j] · heatmap_b[:, j]            B×K×H×W

The weights depend on the sample and the joint, not on the pixel. This is Selective-Kernel-style attention over the
branches; the official code has exactly these three paths (no fourth pooling path) and 256 → 64 in the squeeze.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class FAU(nn.Module):
    """Branch weights from a shared feature.

    Args:
        in_channels: C of the input feature.
        num_keypoints: K.
        num_branches: N, the number of heatmaps mixed per joint.
        channels: C' of the parallel conv paths (default C, as in the official code).
        hidden: width of the squeeze layer (default C'/4, at least 8).
        kernel_sizes: odd kernel sizes of the parallel paths.
    """

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        num_branches: int,
        channels: int | None = None,
        hidden: int | None = None,
        kernel_sizes: Sequence[int] = (3, 5, 7),
    ) -> None:
        super().__init__()
        if num_branches < 2:
            raise ValueError(f"the FAU mixes at least 2 branches, got {num_branches}")
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd positive sizes, got {tuple(kernel_sizes)}")
        channels = int(channels or in_channels)
        hidden = int(hidden or max(channels // 4, 8))
        self.num_keypoints = num_keypoints
        self.num_branches = num_branches
        self.paths = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, channels, k, padding=k // 2, bias=True),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            )
            for k in kernel_sizes
        )
        self.squeeze = nn.Linear(channels, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, num_keypoints) for _ in range(num_branches))

    def forward(self, x: Tensor) -> Tensor:
        """x B×C×h×w → branch weights B×N×K, softmax over N (each joint's weights sum to 1)."""
        fused = self.paths[0](x)
        for path in self.paths[1:]:
            fused = fused + path(x)
        z = self.squeeze(fused.mean(dim=(2, 3)))
        logits = torch.stack([head(z) for head in self.heads], dim=1)
        return logits.softmax(dim=1)


def aggregate(weights: Tensor, heatmaps: Sequence[Tensor]) -> Tensor:
    """Per-joint convex combination: weights B×N×K, N heatmaps B×K×H×W → ensemble B×K×H×W."""
    if weights.shape[1] != len(heatmaps):
        raise ValueError(f"{weights.shape[1]} branch weights for {len(heatmaps)} heatmaps")
    stacked = torch.stack(list(heatmaps), dim=1)  # B×N×K×H×W
    return (weights.to(stacked.dtype)[..., None, None] * stacked).sum(dim=1)
