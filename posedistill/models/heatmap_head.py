"""Deconvolution heatmap head (SimpleBaseline, Xiao et al. 2018), as mmpose's ``HeatmapHead``.

B×C×h×w → [ConvTranspose 4×4 s2 (no bias) → BN → ReLU] × N → Conv 1×1 (with bias) → B×K×(h·2^N)×(w·2^N).
With the default three 256-channel deconvs a stride-32 map becomes a stride-4 heatmap (64×48 for a 256×192 crop).
Names (``deconv_layers.{0,1,3,4,6,7}``, ``final_layer``) match mmpose, so its checkpoints load by key.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

# kernel -> (padding, output_padding) that doubles the size exactly
_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


class HeatmapHead(nn.Module):
    """``forward(feats)`` takes a tensor or a list of maps (uses the last) and returns B×K×H×W heatmaps."""

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        deconv_out_channels: Sequence[int] = (256, 256, 256),
        deconv_kernel_sizes: Sequence[int] = (4, 4, 4),
        final_layer_kernel_size: int = 1,
    ) -> None:
        super().__init__()
        if len(deconv_out_channels) != len(deconv_kernel_sizes):
            raise ValueError("deconv_out_channels and deconv_kernel_sizes must have the same length")
        layers: list[nn.Module] = []
        ch = in_channels
        for out_ch, k in zip(deconv_out_channels, deconv_kernel_sizes):
            if k not in _DECONV_PADDING:
                raise ValueError(f"deconv kernel size must be one of {sorted(_DECONV_PADDING)}, got {k}")
            pad, out_pad = _DECONV_PADDING[k]
            layers += [
                nn.ConvTranspose2d(ch, out_ch, k, stride=2, padding=pad, output_padding=out_pad, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            ch = out_ch
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(ch, num_keypoints, final_layer_kernel_size, padding=final_layer_kernel_size // 2)
        self.in_channels = in_channels
        self.num_keypoints = num_keypoints
        self.upsample_factor = 2 ** len(deconv_out_channels)
        self.init_weights()

    def init_weights(self) -> None:
        """mmpose's init: (de)convs Normal(std 0.001), biases 0, BN 1/0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[Tensor] | Tensor) -> Tensor:
        x = feats if isinstance(feats, Tensor) else feats[-1]
        return self.final_layer(self.deconv_layers(x))
