"""Top-down heatmap estimator: any staged backbone (ResNet, CSPNeXt) + a deconvolution heatmap head.

Interface shared by every heatmap model in posedistill (this one and ``StackedHourglass``):

- ``forward(x) -> B×K×H/4×W/4`` heatmaps (the final prediction, in training and eval mode). With a stride-32
  backbone and three deconvs the heatmap is 8·ceil(H/32) × 8·ceil(W/32), i.e. H/4 × W/4 for multiples of 32;
- ``forward_all(x) -> list[B×K×H/4×W/4]``: every supervised output (one here, one per stack for the hourglass);
- ``features(x) -> list[Tensor]``: the backbone maps at its ``out_indices`` (last = the map the head reads);
- ``stages() -> list[nn.Module]``: sequential parts, so that ``x → stages()[0] → … → stages()[-1]`` is ``forward``.
  Here: the five backbone stages and then the head. ``split(n)`` returns ``(shared, rest)`` as two
  ``nn.Sequential`` over the same parameters: the first n stages (low-level layers to share between branches, as
  OKDHP's multi-branch networks do) and the remaining stages + head.
"""

from __future__ import annotations

from torch import Tensor, nn

from posedistill.models.heatmap_head import HeatmapHead


class TopdownHeatmapModel(nn.Module):
    """backbone (``forward -> list of maps``, ``stages()``, ``out_channels``) + ``HeatmapHead``."""

    def __init__(self, backbone: nn.Module, head: HeatmapHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_keypoints = head.num_keypoints

    def features(self, x: Tensor) -> list[Tensor]:
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))

    def forward_all(self, x: Tensor) -> list[Tensor]:
        return [self.forward(x)]

    def stages(self) -> list[nn.Module]:
        """Backbone stages then the head; the head reads the last backbone stage's output."""
        return [*self.backbone.stages(), self.head]

    def split(self, num_shared: int) -> tuple[nn.Sequential, nn.Sequential]:
        """(first ``num_shared`` stages, the rest including the head); both share this model's parameters."""
        stages = self.stages()
        if not 0 < num_shared < len(stages):
            raise ValueError(f"num_shared must be in 1..{len(stages) - 1}, got {num_shared}")
        return nn.Sequential(*stages[:num_shared]), nn.Sequential(*stages[num_shared:])
