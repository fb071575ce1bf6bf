"""Temporal discriminator for DKD's temporally adversarial training: a BEGAN-style auto-encoder over heatmap clips.

DKD (Nie et al., ICCV 2019) trains its kernels and poses to be temporally coherent with a temporal discriminator
and cites BEGAN (Berthelot et al., 2017); the paper's discriminator architecture is not public. posedistill's
choice (``docs/dkd.md``): BEGAN's discriminator is an auto-encoder whose reconstruction error is an energy, low
for real data and pushed up for generated data. Here its input is a clip of T heatmaps, B×T×K×h×w, seen as one
image with T·K channels (so the first convolution already mixes time and joints), average-pooled by ``pool``::

    encoder  conv3×3(T·K→c) ELU → [conv3×3 s2 → ELU] × n_down (c → 2c → ...) → flatten → Linear → z
    decoder  Linear(z) → map → [nearest ×2 → conv3×3 → ELU] × n_down → conv3×3 → T·K channels
    energy   L(x) = mean |x − D(x)|  (per clip: B values)

BEGAN's game (:func:`began_update`): the discriminator minimises L(real) − k·L(fake), the generator minimises
L(fake), and the balance ``k ← clip(k + λ_k·(γ·L(real) − L(fake)), 0, 1)`` keeps L(fake) ≈ γ·L(real);
``M = L(real) + |γ·L(real) − L(fake)|`` measures convergence.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class TemporalDiscriminator(nn.Module):
    """BEGAN auto-encoder over B×T×K×h×w heatmap clips (see the module docstring).

    Args:
        num_frames: T.
        num_keypoints: K.
        heatmap_size: (w, h) of the heatmaps.
        channels: c, the width of the first layer (doubled at each downsampling).
        hidden: size of the bottleneck z.
        num_down: stride-2 stages (the pooled map must stay >= 1 pixel).
        pool: average-pooling factor applied to the heatmaps first (cost control; 1 = none).
    """

    def __init__(
        self,
        num_frames: int,
        num_keypoints: int,
        heatmap_size: tuple[int, int],
        channels: int = 32,
        hidden: int = 64,
        num_down: int = 2,
        pool: int = 2,
    ) -> None:
        super().__init__()
        w, h = (int(heatmap_size[0]) // pool, int(heatmap_size[1]) // pool)
        sw, sh = w // 2**num_down, h // 2**num_down
        if min(sw, sh) < 1:
            raise ValueError(f"heatmaps {heatmap_size} pooled by {pool} are too small for {num_down} downsamplings")
        self.num_frames, self.num_keypoints, self.pool = num_frames, num_keypoints, pool
        self.size, self.bottom = (w, h), (sw, sh)
        cin = num_frames * num_keypoints
        enc: list[nn.Module] = [nn.Conv2d(cin, channels, 3, padding=1), nn.ELU()]
        ch = channels
        for _ in range(num_down):
            enc += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), nn.ELU()]
            ch *= 2
        self.encoder = nn.Sequential(*enc)
        self.to_z = nn.Linear(ch * sw * sh, hidden)
        self.from_z = nn.Linear(hidden, ch * sw * sh)
        dec: list[nn.Module] = []
        for _ in range(num_down):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch // 2, 3, padding=1), nn.ELU()]
            ch //= 2
        dec.append(nn.Conv2d(ch, cin, 3, padding=1))
        self.decoder = nn.Sequential(*dec)
        self.bottom_channels = channels * 2**num_down

    def prepare(self, clips: Tensor) -> Tensor:
        """B×T×K×h×w → the pooled B×(T·K)×h'×w' map the auto-encoder reconstructs."""
        b, t, k = clips.shape[:3]
        if (t, k) != (self.num_frames, self.num_keypoints):
            raise ValueError(f"expected clips B×{self.num_frames}×{self.num_keypoints}×h×w, got {tuple(clips.shape)}")
        x = clips.reshape(b, t * k, *clips.shape[-2:])
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        if tuple(x.shape[-2:]) != (self.size[1], self.size[0]):
            raise ValueError(f"heatmaps of size {tuple(clips.shape[-2:])} do not fit a discriminator built for "
                             f"{self.size[1] * self.pool}×{self.size[0] * self.pool}")  # fmt: skip
        return x

    def reconstruct(self, x: Tensor) -> Tensor:
        """Pooled B×(T·K)×h'×w' → its reconstruction, same shape."""
        z = self.to_z(self.encoder(x).flatten(1))
        y = self.from_z(z).reshape(x.shape[0], self.bottom_channels, self.bottom[1], self.bottom[0])
        return self.decoder(F.elu(y))

    def forward(self, clips: Tensor) -> Tensor:
        """Energy per clip: B values, the mean absolute reconstruction error of the pooled clip."""
        x = self.prepare(clips)
        return (x - self.reconstruct(x)).abs().flatten(1).mean(dim=1)


def began_update(
    k: float, energy_real: float, energy_fake: float, gamma: float = 0.5, lambda_k: float = 1e-3
) -> tuple[float, float]:
    """BEGAN's balance step from the mean energies of a batch: (new k clipped to [0, 1], convergence measure M).

    The discriminator loss is ``L_real − k·L_fake`` (on detached fakes) and the generator loss ``L_fake``."""
    balance = gamma * float(energy_real) - float(energy_fake)
    return min(max(float(k) + lambda_k * balance, 0.0), 1.0), float(energy_real) + abs(balance)
