"""RTMCC head: 7×7 conv → flatten → ScaleNorm + Linear → GAU over the keypoint tokens → SimCC x/y classifiers.

Shapes for K keypoints, a backbone map B×C×h×w and an input of W×H pixels (split ratio r = 2)::

    final_layer  B×C×h×w  → B×K×h×w      7×7 conv with bias
    flatten               → B×K×(h·w)
    mlp                   → B×K×256      ScaleNorm, Linear(h·w → 256, no bias)
    gau                   → B×K×256      gated attention unit, tokens = keypoints
    cls_x / cls_y         → B×K×(r·W), B×K×(r·H)

Parameter names follow mmpose (``final_layer``, ``mlp.0.g``, ``mlp.1``, ``gau.{uv,o,gamma,beta,ln.g,res_scale.scale}``,
``cls_x``, ``cls_y``) so official checkpoints load unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ScaleNorm(nn.Module):
    """y = g · x / clamp(‖x‖₂ / √d, min=eps) over the last dim; g is one learned scalar."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    """Per-channel learned scale over the last dim (the GAU's residual scale)."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class GAU(nn.Module):
    """Gated attention unit (self-attention over tokens). B×N×D → B×N×D.

    h = SiLU(uv(ScaleNorm(x))) split into u (e), v (e), base (s); q/k = base·γ + β;
    A = relu(q kᵀ / √s)² (no softmax, no 1/N); out = res_scale ⊙ x + o(u ⊙ (A v)).
    """

    def __init__(self, dim: int = 256, expansion_factor: float = 2.0, s: int = 128, eps: float = 1e-5) -> None:
        super().__init__()
        self.e = int(dim * expansion_factor)
        self.s = s
        # registration order o, uv, ... reproduces mmpose's state-dict key order
        self.o = nn.Linear(self.e, dim, bias=False)
        self.uv = nn.Linear(dim, 2 * self.e + s, bias=False)
        self.gamma = nn.Parameter(torch.rand(2, s))
        self.beta = nn.Parameter(torch.rand(2, s))
        self.ln = ScaleNorm(dim, eps=eps)
        self.res_scale = Scale(dim)
        self.act = nn.SiLU(inplace=True)
        self.sqrt_s = math.sqrt(s)
        nn.init.xavier_uniform_(self.uv.weight)

    def attention(self, x: Tensor) -> Tensor:
        """The gated branch without the residual. B×N×D → B×N×D."""
        uv = self.act(self.uv(self.ln(x)))
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=2)
        base = base.unsqueeze(2) * self.gamma[None, None, :] + self.beta  # B×N×2×s
        q, k = torch.unbind(base, dim=2)
        kernel = torch.square(F.relu(torch.bmm(q, k.transpose(1, 2)) / self.sqrt_s))  # B×N×N
        return self.o(u * torch.bmm(kernel, v))

    def forward(self, x: Tensor) -> Tensor:
        return self.res_scale(x) + self.attention(x)


def featuremap_size(input_size: Sequence[int], num_downsamples: int = 5) -> tuple[int, int]:
    """(w, h) of the stride-32 map for an input (w, h): each stride-2, pad-1, 3×3 conv maps n → ceil(n/2)."""
    w, h = int(input_size[0]), int(input_size[1])
    for _ in range(num_downsamples):
        w, h = (w + 1) // 2, (h + 1) // 2
    return w, h


class RTMCCHead(nn.Module):
    """SimCC head of RTMPose. ``forward(feats)`` uses ``feats[-1]`` (B×C×h×w) and returns ``(x_logits, y_logits)``.

    ``input_size`` is (w, h) in pixels; ``in_featuremap_size`` is (w, h) of the backbone map.
    """

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        input_size: Sequence[int],
        in_featuremap_size: Sequence[int],
        simcc_split_ratio: float = 2.0,
        final_layer_kernel_size: int = 7,
        hidden_dims: int = 256,
        expansion_factor: float = 2.0,
        s: int = 128,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_keypoints = num_keypoints
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.in_featuremap_size = (int(in_featuremap_size[0]), int(in_featuremap_size[1]))
        self.simcc_split_ratio = simcc_split_ratio
        flatten_dims = self.in_featuremap_size[0] * self.in_featuremap_size[1]
        k = final_layer_kernel_size
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, k, stride=1, padding=k // 2)
        self.mlp = nn.Sequential(ScaleNorm(flatten_dims), nn.Linear(flatten_dims, hidden_dims, bias=False))
        self.gau = GAU(hidden_dims, expansion_factor, s)
        self.cls_x = nn.Linear(hidden_dims, int(self.input_size[0] * simcc_split_ratio), bias=False)
        self.cls_y = nn.Linear(hidden_dims, int(self.input_size[1] * simcc_split_ratio), bias=False)
        self.init_weights()

    def init_weights(self) -> None:
        """mmpose's head init: conv Normal(0.001), every Linear Normal(0.01), biases 0; γ/β stay U[0,1)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def tokens(self, feats: Sequence[Tensor] | Tensor) -> Tensor:
        """Keypoint tokens after the GAU. B×K×hidden."""
        f = feats if isinstance(feats, Tensor) else feats[-1]
        if tuple(f.shape[-2:]) != (self.in_featuremap_size[1], self.in_featuremap_size[0]):
            raise ValueError(
                f"RTMCCHead built for a {self.in_featuremap_size[1]}×{self.in_featuremap_size[0]} (h×w) feature map "
                f"(input {self.input_size[1]}×{self.input_size[0]}), got {tuple(f.shape[-2:])}"
            )
        f = torch.flatten(self.final_layer(f), 2)
        return self.gau(self.mlp(f))

    def forward(self, feats: Sequence[Tensor] | Tensor) -> tuple[Tensor, Tensor]:
        t = self.tokens(feats)
        return self.cls_x(t), self.cls_y(t)
