"""DKD, Dynamic Kernel Distillation for video pose estimation (Nie et al., ICCV 2019; ``docs/dkd.md``).

A large per-frame model starts a track, a small network follows it::

    h_0 = P(I_0),  f_0 = F(I_0)                  pose initializer P (any posedistill heatmap model), frame encoder F
    K_t = D(f_{t-1}, h_{t-1})                    pose-kernel distillator: one k×k×C kernel per joint
    f_t = F(I_t),  h_t = K_t ⊗ f_t               matching: per-joint dynamic convolution of the current features

and every frame's (f_t, h_t) feeds the next. The initializer runs again every ``reinit_every`` frames, or when the
heatmap confidence drops below ``min_confidence`` (both applied by the sequence runners, see
:meth:`DKDNet.run_sequence` and :class:`posedistill.infer.video_estimator.VideoPoseEstimator`).

Pieces (shapes for a B×3×H×W crop, heatmaps at stride 4: h = H/4, w = W/4):

- :class:`FrameEncoder`: the backbone and deconvolution layers of a posedistill heatmap model (its final 1×1 conv
  dropped), B×3×H×W → B×C×h×w. Built by name, so the small per-frame model's weights load into it unchanged.
- :class:`PoseKernelDistillator`: concat(f_{t-1}, h_{t-1}) → 1×1 conv + BN + ReLU (the fused cue g); per joint a
  spatial softmax over ``h_{t-1}/τ + conv1×1(g)`` (where the joint was, corrected by a learned term) pools the
  k×k patches of ``value(g)``: the kernel of joint j is (a learned gain times) the soft crop of the value map
  around the joint, a CFNet-style template. B×C×h×w, B×K×h×w → B×K×C×k×k (``per_joint``) or B×C×k×k
  (``depthwise``, one attention map per person: RPSTN's variant).
- :class:`KernelMatching`: ``per_joint``: h_t[b, j] = (S_j + K_t[b, j]) ⊗ f_t[b] + bias_j; ``depthwise``:
  h_t = conv1×1(C→K)((S + K_t[b]) ⊛ f_t[b]) with ⊛ a depthwise convolution. S are learned static kernels
  (``static_kernels=True``; the distilled kernels are then a temporal residual over an ordinary k×k conv head;
  off by default, as in the paper: the kernels are the distillator's alone).
  Batched over joints and people with one grouped convolution, no Python loop: :func:`match_kernels`.

``build_dkd(num_keypoints, input_size, initializer={...}, encoder={...}, ...)`` builds the network from JSON-ready
arguments and sets ``build_args`` (name ``"dkd"``) so that checkpoints rebuild it. :class:`DKDInit` and
:class:`DKDStep` are the two per-frame computations as plain modules (what ONNX export takes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posedistill.models.base_models import build_base_model
from posedistill.models.complexity import count_flops
from posedistill.models.heatmap_model import TopdownHeatmapModel

KERNEL_MODES = ("per_joint", "depthwise")


# ------------------------------------------------------------------------------------------------ matching
def match_kernels(features: Tensor, kernels: Tensor) -> Tensor:
    """Per-joint dynamic convolution, batched over people and joints with one grouped convolution.

    features B×C×h×w and kernels B×K×C×k×k (k odd) → B×K×h×w with
    ``out[b, j] = conv2d(features[b:b+1], kernels[b, j:j+1], padding=k//2)``: the batch becomes the channel groups
    of a 1×(B·C)×h×w tensor, and the B·K kernels are the filters (K per group).
    """
    b, c, h, w = features.shape
    if kernels.dim() != 5 or kernels.shape[0] != b or kernels.shape[2] != c:
        raise ValueError(f"kernels must be B×K×C×k×k with B={b}, C={c}; got {tuple(kernels.shape)}")
    k = kernels.shape[-1]
    if k % 2 != 1 or kernels.shape[-2] != k:
        raise ValueError(f"kernels must be square with an odd size, got {tuple(kernels.shape[-2:])}")
    num = kernels.shape[1]
    out = F.conv2d(features.reshape(1, b * c, h, w), kernels.reshape(b * num, c, k, k), padding=k // 2, groups=b)
    return out.reshape(b, num, h, w)


def match_depthwise(features: Tensor, kernels: Tensor) -> Tensor:
    """Per-person depthwise dynamic convolution: features B×C×h×w, kernels B×C×k×k → B×C×h×w (groups = B·C)."""
    b, c, h, w = features.shape
    if kernels.dim() != 4 or kernels.shape[:2] != (b, c):
        raise ValueError(f"kernels must be B×C×k×k with B={b}, C={c}; got {tuple(kernels.shape)}")
    k = kernels.shape[-1]
    out = F.conv2d(features.reshape(1, b * c, h, w), kernels.reshape(b * c, 1, k, k), padding=k // 2, groups=b * c)
    return out.reshape(b, c, h, w)


# ------------------------------------------------------------------------------------------------ modules
class FrameEncoder(nn.Module):
    """Backbone + deconvolution layers of a :class:`TopdownHeatmapModel` (its final 1×1 conv is not kept).

    B×3×H×W → B×C×h×w with C the last deconv width (the backbone's width without deconvs). State-dict keys are
    ``backbone.*`` and ``deconv_layers.*``: :func:`encoder_state_from_model` maps a per-frame model's weights.
    """

    def __init__(self, model: TopdownHeatmapModel) -> None:
        super().__init__()
        if not isinstance(model, TopdownHeatmapModel):
            raise TypeError(f"the frame encoder needs a backbone + heatmap head model, got {type(model).__name__}")
        self.backbone = model.backbone
        self.deconv_layers = model.head.deconv_layers
        convs = [m for m in self.deconv_layers.modules() if isinstance(m, nn.ConvTranspose2d)]
        self.out_channels = convs[-1].out_channels if convs else model.head.in_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.deconv_layers(self.backbone(x)[-1])


def encoder_state_from_model(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A per-frame heatmap model's state dict (``backbone.*``, ``head.deconv_layers.*``) as FrameEncoder keys."""
    out = {}
    for key, value in state.items():
        if key.startswith("backbone."):
            out[key] = value
        elif key.startswith("head.deconv_layers."):
            out[key[len("head.") :]] = value
    return out


class PoseKernelDistillator(nn.Module):
    """Previous features and heatmaps → pose kernels (see the module docstring).

    Args:
        channels: C of the frame features (and of the kernels).
        num_keypoints: K.
        kernel_size: k, odd.
        hidden: width of the fused cue g (default C).
        mode: ``per_joint`` (B×K×C×k×k) or ``depthwise`` (B×C×k×k, attention on the max of the heatmaps).
        temperature: initial τ of the heatmap prior in the attention logits (learned, as log τ).
        gain: initial per-kernel scale of the distilled kernels (learned). A k×k×C template correlated with
            non-negative (ReLU) features sums C·k² same-signed products, so the scale matters at the start:
            :func:`build_dkd` uses 0.05 alone and 1e-3 next to static kernels loaded from a trained head (the
            network then starts close to that head).
    """

    def __init__(
        self,
        channels: int,
        num_keypoints: int,
        kernel_size: int = 3,
        hidden: int | None = None,
        mode: str = "per_joint",
        temperature: float = 0.1,
        gain: float = 0.05,
    ) -> None:
        super().__init__()
        if mode not in KERNEL_MODES:
            raise ValueError(f"kernel mode must be one of {KERNEL_MODES}, got {mode!r}")
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        hidden = int(hidden or channels)
        self.channels, self.num_keypoints, self.kernel_size, self.mode = channels, num_keypoints, kernel_size, mode
        self.fuse = nn.Sequential(
            nn.Conv2d(channels + num_keypoints, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)
        )
        self.attend = nn.Conv2d(hidden, num_keypoints if mode == "per_joint" else 1, 1)
        self.value = nn.Conv2d(hidden, channels, 1)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        self.gain = nn.Parameter(torch.full((num_keypoints if mode == "per_joint" else 1,), float(gain)))
        nn.init.zeros_(self.attend.weight)  # start from "look where the joint was"
        nn.init.zeros_(self.attend.bias)
        nn.init.normal_(self.value.weight, std=0.01)
        nn.init.zeros_(self.value.bias)

    def attention(self, features: Tensor, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        """(attention B×J×(h·w), summing to 1 over the pixels; fused cue g B×hidden×h×w), J = K or 1."""
        g = self.fuse(torch.cat([features, heatmaps.to(features.dtype)], dim=1))
        prior = heatmaps if self.mode == "per_joint" else heatmaps.amax(dim=1, keepdim=True)
        logits = self.attend(g) + prior.to(g.dtype) / self.log_temperature.exp()
        return torch.softmax(logits.flatten(2), dim=-1), g

    def forward(self, features: Tensor, heatmaps: Tensor) -> Tensor:
        b, c = features.shape[:2]
        if heatmaps.shape[0] != b or heatmaps.shape[-2:] != features.shape[-2:]:
            raise ValueError(
                f"heatmaps {tuple(heatmaps.shape)} do not match features {tuple(features.shape)} (same B, h, w)"
            )
        attn, g = self.attention(features, heatmaps)
        k = self.kernel_size
        patches = F.unfold(self.value(g), k, padding=k // 2)  # B×(C·k·k)×(h·w)
        kernels = torch.bmm(attn, patches.transpose(1, 2))  # B×J×(C·k·k): attention-weighted soft crops
        kernels = kernels * self.gain.to(kernels.dtype)[:, None]
        if self.mode == "per_joint":
            return kernels.reshape(b, self.num_keypoints, c, k, k)
        return kernels.reshape(b, c, k, k)


class KernelMatching(nn.Module):
    """Pose kernels ⊗ current features → heatmaps B×K×h×w (see the module docstring).

    Args:
        channels, num_keypoints, kernel_size, mode: as the distillator's.
        static_kernels: add learned static kernels S to the distilled ones (False: the kernels are D's alone).
    """

    def __init__(
        self, channels: int, num_keypoints: int, kernel_size: int = 3, mode: str = "per_joint",
        static_kernels: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        if mode not in KERNEL_MODES:
            raise ValueError(f"kernel mode must be one of {KERNEL_MODES}, got {mode!r}")
        self.mode, self.kernel_size = mode, kernel_size
        shape = (num_keypoints, channels, kernel_size, kernel_size) if mode == "per_joint" else (
            channels, kernel_size, kernel_size)  # fmt: skip
        self.static = nn.Parameter(torch.randn(shape) * 0.001) if static_kernels else None
        if mode == "per_joint":
            self.bias = nn.Parameter(torch.zeros(num_keypoints))
            self.head = None
        else:
            self.bias = None
            self.head = nn.Conv2d(channels, num_keypoints, 1)
            nn.init.normal_(self.head.weight, std=0.001)
            nn.init.zeros_(self.head.bias)

    @torch.no_grad()
    def load_head(self, weight: Tensor, bias: Tensor | None) -> None:
        """Start the static kernels from a per-frame model's final 1×1 conv (K×C×1×1 weight, K bias): its weight
        goes to the centre tap (per_joint) or to the 1×1 head after an identity depthwise kernel (depthwise), so
        that with zero distilled kernels the matching is exactly that model's head."""
        if self.static is None:
            raise ValueError("load_head needs static_kernels=True")
        c = self.kernel_size // 2
        self.static.zero_()
        if self.mode == "per_joint":
            self.static[:, :, c, c] = weight[:, :, 0, 0].to(self.static.dtype)
            self.bias.copy_(bias if bias is not None else torch.zeros_like(self.bias))
        else:
            self.static[:, c, c] = 1.0
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias if bias is not None else torch.zeros_like(self.head.bias))

    def forward(self, features: Tensor, kernels: Tensor) -> Tensor:
        if self.static is not None:
            kernels = kernels + self.static.to(kernels.dtype)
        if self.mode == "per_joint":
            return match_kernels(features, kernels) + self.bias.to(features.dtype)[:, None, None]
        return self.head(match_depthwise(features, kernels))


# ------------------------------------------------------------------------------------------------ network
def heatmap_confidence(heatmaps: Tensor) -> Tensor:
    """B×K×h×w → B: the mean over joints of each heatmap's maximum (the re-initialisation test)."""
    return heatmaps.flatten(2).amax(dim=-1).mean(dim=-1)


class DKDNet(nn.Module):
    """Initializer + encoder + distillator + matching (see the module docstring).

    Args:
        initializer: any heatmap model, ``forward(B×3×H×W) -> B×K×h×w``.
        encoder: the small per-frame feature network, B×3×H×W → B×C×h×w.
        distillator, matching: built for the encoder's C and the initializer's K.
        reinit_every: default re-initialisation period of the sequence runners (None: first frame only).
        min_confidence: default confidence below which a frame is redone by the initializer (None: never).
    """

    def __init__(
        self,
        initializer: nn.Module,
        encoder: FrameEncoder,
        distillator: PoseKernelDistillator,
        matching: KernelMatching,
        reinit_every: int | None = None,
        min_confidence: float | None = None,
    ) -> None:
        super().__init__()
        if distillator.channels != encoder.out_channels:
            raise ValueError(f"distillator built for C={distillator.channels}, encoder gives {encoder.out_channels}")
        if reinit_every is not None and reinit_every < 1:
            raise ValueError(f"reinit_every must be >= 1 or None, got {reinit_every}")
        self.initializer = initializer
        self.encoder = encoder
        self.distillator = distillator
        self.matching = matching
        self.num_keypoints = distillator.num_keypoints
        self.reinit_every = reinit_every
        self.min_confidence = min_confidence

    def initial(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """A (re)initialised frame: (heatmaps B×K×h×w from the initializer, features B×C×h×w)."""
        heatmaps = self.initializer(images)
        features = self.encoder(images)
        if heatmaps.shape[-2:] != features.shape[-2:]:
            raise ValueError(
                f"initializer heatmaps {tuple(heatmaps.shape[-2:])} and encoder features "
                f"{tuple(features.shape[-2:])} differ in size; give both the same output stride"
            )
        return heatmaps, features

    def propagate(self, features: Tensor, prev_features: Tensor, prev_heatmaps: Tensor) -> Tensor:
        """Heatmaps of a frame from its features and the previous frame's state: D then matching."""
        return self.matching(features, self.distillator(prev_features, prev_heatmaps))

    def step(self, images: Tensor, prev_features: Tensor, prev_heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        """A tracked frame: (heatmaps, features) from the image and the previous (features, heatmaps)."""
        features = self.encoder(images)
        return self.propagate(features, prev_features, prev_heatmaps), features

    def forward(self, clip: Tensor, reinit: Sequence[bool] | None = None) -> Tensor:
        """Clip B×T×3×H×W → heatmaps B×T×K×h×w; frame 0 and frames with ``reinit[t]`` from the initializer.

        The encoder runs once on all B·T frames; the kernel chain is sequential in t. Used for training (the
        gradient flows through the whole chain) and for fixed-schedule evaluation.
        """
        if clip.dim() != 5:
            raise ValueError(f"expected a clip B×T×3×H×W, got {tuple(clip.shape)}")
        b, t = clip.shape[:2]
        flags = [True] + [bool(reinit[i]) if reinit is not None else False for i in range(1, t)]
        feats = self.encoder(clip.flatten(0, 1))
        feats = feats.reshape(b, t, *feats.shape[1:])
        init_idx = [i for i in range(t) if flags[i]]
        init_maps = self.initializer(clip[:, init_idx].flatten(0, 1))
        init_maps = init_maps.reshape(b, len(init_idx), *init_maps.shape[1:])
        if init_maps.shape[-2:] != feats.shape[-2:]:
            raise ValueError(
                f"initializer heatmaps {tuple(init_maps.shape[-2:])} and encoder features "
                f"{tuple(feats.shape[-2:])} differ in size; give both the same output stride"
            )
        out = []
        for i in range(t):
            if flags[i]:
                out.append(init_maps[:, init_idx.index(i)])
            else:
                out.append(self.propagate(feats[:, i], feats[:, i - 1], out[-1]))
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def run_sequence(
        self, frames: Tensor, reinit_every: int | None = -1, min_confidence: float | None = -1.0
    ) -> tuple[Tensor, Tensor]:
        """Online inference over T frames of B tracks, T×B×3×H×W → (heatmaps T×B×K×h×w, initialised T×B bool).

        Frame t of a track is re-initialised when t % reinit_every == 0 or, after a propagated frame, when its
        :func:`heatmap_confidence` is below ``min_confidence`` (the frame is then redone by the initializer).
        The defaults (-1) take the network's own settings.
        """
        period = self.reinit_every if reinit_every == -1 else reinit_every
        floor = self.min_confidence if min_confidence == -1.0 else min_confidence
        maps, flags = [], []
        heatmaps = features = None
        for t in range(frames.shape[0]):
            image = frames[t]
            b = image.shape[0]
            due = torch.full((b,), t == 0 or bool(period and t % period == 0), dtype=torch.bool, device=image.device)
            if not bool(due.all()):
                step_maps, step_feats = self.step(image, features, heatmaps)
                if floor is not None:
                    due |= heatmap_confidence(step_maps) < floor
            if bool(due.any()):
                init_maps, init_feats = self.initial(image[due])
                if bool(due.all()):
                    heatmaps, features = init_maps, init_feats
                else:
                    heatmaps, features = step_maps.clone(), step_feats.clone()
                    heatmaps[due], features[due] = init_maps, init_feats
            else:
                heatmaps, features = step_maps, step_feats
            maps.append(heatmaps)
            flags.append(due)
        return torch.stack(maps), torch.stack(flags)


class DKDInit(nn.Module):
    """The initializer frame as a plain module: image B×3×H×W → (heatmaps B×K×h×w, features B×C×h×w)."""

    def __init__(self, net: DKDNet) -> None:
        super().__init__()
        self.initializer, self.encoder = net.initializer, net.encoder

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.initializer(images), self.encoder(images)


class DKDStep(nn.Module):
    """A tracked frame as a plain module (exportable): (image, prev features, prev heatmaps) →
    (heatmaps B×K×h×w, features B×C×h×w)."""

    def __init__(self, net: DKDNet) -> None:
        super().__init__()
        self.encoder, self.distillator, self.matching = net.encoder, net.distillator, net.matching

    def forward(self, images: Tensor, prev_features: Tensor, prev_heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        features = self.encoder(images)
        return self.matching(features, self.distillator(prev_features, prev_heatmaps)), features


class _StepFromImage(nn.Module):
    """For FLOP counting: a tracked frame with a fixed zero previous state held as buffers."""

    def __init__(self, net: DKDNet, input_shape: Sequence[int]) -> None:
        super().__init__()
        self.step = DKDStep(net)
        x = torch.zeros(tuple(input_shape))
        was = net.training
        net.eval()
        with torch.no_grad():
            heatmaps, features = net.initial(x)
        net.train(was)
        self.register_buffer("prev_features", torch.zeros_like(features))
        self.register_buffer("prev_heatmaps", torch.zeros_like(heatmaps))

    def forward(self, images: Tensor) -> Tensor:
        return self.step(images, self.prev_features, self.prev_heatmaps)[0]


def dkd_flops(net: DKDNet, input_size: Sequence[int]) -> dict[str, int]:
    """MACs (mmengine convention, :func:`count_flops`) of one person crop of (w, h) ``input_size``:
    ``initializer``, ``encoder``, ``init_frame`` (initializer + encoder: a (re)initialised frame) and ``step``
    (encoder + distillator + matching: a tracked frame)."""
    shape = (1, 3, int(input_size[1]), int(input_size[0]))
    was = net.training
    init = count_flops(net.initializer, shape)
    enc = count_flops(net.encoder, shape)
    step = count_flops(_StepFromImage(net, shape).train(was), shape)  # count_flops restores the wrapper's mode
    net.train(was)
    return {"initializer": init, "encoder": enc, "init_frame": init + enc, "step": step}


# ------------------------------------------------------------------------------------------------ building
def _as_heatmap_model(spec: dict[str, Any], num_keypoints: int, input_size: Sequence[int], what: str) -> nn.Module:
    spec = dict(spec)
    name = spec.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(f"{what} needs a model 'name' (a posedistill heatmap model), got {spec!r}")
    if name.startswith("rtmpose-"):
        raise ValueError(f"{what} must be a heatmap model (simplebaseline-*, cspnext-*-heatmap, hourglass-*), "
                         f"got the SimCC model {name!r}")  # fmt: skip
    return build_base_model(name, num_keypoints, input_size, **spec)


def build_dkd(
    num_keypoints: int,
    input_size: Sequence[int] = (128, 128),
    initializer: dict[str, Any] | None = None,
    encoder: dict[str, Any] | None = None,
    kernel_size: int = 3,
    kernel_mode: str = "per_joint",
    distillator_hidden: int | None = None,
    temperature: float = 0.1,
    kernel_gain: float | None = None,
    static_kernels: bool = False,
    reinit_every: int | None = None,
    min_confidence: float | None = None,
    name: str = "dkd",
) -> DKDNet:
    """Build a :class:`DKDNet` from JSON-ready arguments; ``initializer`` / ``encoder`` are ``build_model``
    specs (``{"name": ..., **keywords}``; the encoder must be a backbone + deconv-head model). Sets
    ``build_args`` (``name="dkd"``), so ``posedistill.models.build_model`` can rebuild it once ``"dkd"`` is
    registered there. ``static_kernels=False`` (default) is the paper's form: the kernels are the distillator's
    alone; ``kernel_gain`` None picks 0.05, or 1e-3 with static kernels."""
    if name != "dkd":
        raise ValueError(f"build_dkd builds 'dkd' networks, got name {name!r}")
    if kernel_gain is None:  # see PoseKernelDistillator: small next to static kernels, larger alone
        kernel_gain = 1e-3 if static_kernels else 0.05
    initializer = dict(initializer or {"name": "simplebaseline-res18"})
    encoder = dict(encoder or {"name": "simplebaseline-res18", "base_channels": 16,
                               "deconv_out_channels": [32, 32, 32]})  # fmt: skip
    size = (int(input_size[0]), int(input_size[1]))
    init_model = _as_heatmap_model(initializer, num_keypoints, size, "the DKD initializer")
    enc = FrameEncoder(_as_heatmap_model(encoder, num_keypoints, size, "the DKD encoder"))
    c = enc.out_channels
    net = DKDNet(
        init_model,
        enc,
        PoseKernelDistillator(c, num_keypoints, kernel_size, distillator_hidden, kernel_mode, temperature, kernel_gain),
        KernelMatching(c, num_keypoints, kernel_size, kernel_mode, static_kernels),
        reinit_every=reinit_every,
        min_confidence=min_confidence,
    )
    net.build_args = {
        "name": "dkd", "num_keypoints": int(num_keypoints), "input_size": list(size),
        "initializer": initializer, "encoder": encoder, "kernel_size": int(kernel_size), "kernel_mode": kernel_mode,
        "distillator_hidden": distillator_hidden, "temperature": float(temperature), "kernel_gain": float(kernel_gain),
        "static_kernels": bool(static_kernels), "reinit_every": reinit_every, "min_confidence": min_confidence,
    }  # fmt: skip
    return net
