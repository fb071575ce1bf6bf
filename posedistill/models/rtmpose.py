"""RTMPose top-down estimator: CSPNeXt backbone + RTMCC (SimCC) head. State-dict keys equal mmpose's."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from posedistill.models.cspnext import CSPNEXT_SIZES, CSPNeXt
from posedistill.models.rtmcc_head import RTMCCHead, featuremap_size


class RTMPose(nn.Module):
    """RTMPose-{t,s,m,l,x}, or ``nano``: RTMDet-nano's depthwise backbone (``rtmpose-nano``, see
    :mod:`posedistill.models.rtmdet_backbone`).

    ``input_size`` is (w, h) in pixels (192×256 by default). The input is the normalised crop, B×3×h×w.

    - ``forward(x) -> (simcc_x B×K×(r·w), simcc_y B×K×(r·h))``: raw logits, in training and eval mode.
    - ``features(x) -> list[Tensor]``: backbone maps at ``out_indices`` (last = stage 4, B×C×h/32×w/32).
    - ``head_forward(feats) -> (simcc_x, simcc_y)``: the head alone on any list of maps whose last entry has this
      head's channels and size (DWPose stage 2 runs a fresh head on a frozen teacher's features).
    - ``flip_test(x, flip_indices)``: averaged plain and flipped-back logits (no shift).
    """

    def __init__(
        self,
        size: str = "s",
        num_keypoints: int = 17,
        input_size: Sequence[int] = (192, 256),
        out_indices: Sequence[int] = (4,),
        simcc_split_ratio: float = 2.0,
        deepen_factor: float | None = None,
        widen_factor: float | None = None,
        use_depthwise: bool = False,
    ) -> None:
        super().__init__()
        if size not in CSPNEXT_SIZES and (deepen_factor is None or widen_factor is None):
            raise ValueError(f"unknown RTMPose size {size!r}; expected one of {sorted(CSPNEXT_SIZES)}")
        d, w = CSPNEXT_SIZES.get(size, (0.0, 0.0))
        d = d if deepen_factor is None else deepen_factor
        w = w if widen_factor is None else widen_factor
        if 4 not in out_indices:
            raise ValueError(f"out_indices must include 4 (the head reads the stage-4 map), got {tuple(out_indices)}")
        self.size = size
        self.num_keypoints = num_keypoints
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.backbone = CSPNeXt(deepen_factor=d, widen_factor=w, out_indices=out_indices, use_depthwise=use_depthwise)
        self.head = RTMCCHead(
            in_channels=self.backbone.out_channels[-1],
            num_keypoints=num_keypoints,
            input_size=self.input_size,
            in_featuremap_size=featuremap_size(self.input_size),
            simcc_split_ratio=simcc_split_ratio,
        )

    @property
    def simcc_bins(self) -> tuple[int, int]:
        """(Wx, Wy): number of x and y bins."""
        return self.head.cls_x.out_features, self.head.cls_y.out_features

    def features(self, x: Tensor) -> list[Tensor]:
        return self.backbone(x)

    def head_forward(self, feats: Sequence[Tensor] | Tensor) -> tuple[Tensor, Tensor]:
        return self.head(feats)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.backbone(x))

    def flip_test(self, x: Tensor, flip_indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """0.5·(plain + flipped-back) logits; flipped-back = re-index keypoints, reverse x bins. No shift."""
        return flip_test_simcc(self, x, flip_indices)


def flip_simcc_back(simcc_x: Tensor, simcc_y: Tensor, flip_indices: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Map logits of a horizontally flipped crop back: keypoint i takes flip_indices[i]; x bins reversed."""
    idx = torch.as_tensor(list(flip_indices), dtype=torch.long, device=simcc_x.device)
    if idx.numel() != simcc_x.shape[1]:
        raise ValueError(f"flip_indices has {idx.numel()} entries, the logits have {simcc_x.shape[1]} keypoints")
    return simcc_x[:, idx].flip(-1), simcc_y[:, idx]


def flip_test_simcc(model: nn.Module, x: Tensor, flip_indices: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Flip-test any module whose forward returns ``(simcc_x, simcc_y)``. x: B×3×h×w."""
    x1, y1 = model(x)
    x2, y2 = flip_simcc_back(*model(x.flip(-1)), flip_indices)
    return (x1 + x2) * 0.5, (y1 + y2) * 0.5
