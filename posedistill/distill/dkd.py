"""DKD training: Dynamic Kernel Distillation with temporally adversarial training (Nie et al., ICCV 2019;
``docs/dkd.md``).

A batch is B clips of T frames of one tracked person (:class:`posedistill.data.clips.ClipDataset`). Frame 0 comes
from the pose initializer (a per-frame heatmap model, by default trained first and frozen here), frames 1..T−1
from the kernel chain of :class:`posedistill.models.dkd.DKDNet`; the gradient flows through the whole chain::

    L = mean_t MSE(h_t, Y_t)  over the chain's frames (frame 0 too when the initializer trains)
      + λ_adv · L_D(h_0..h_{T-1})                       generator term of the temporal discriminator

The temporal discriminator (:class:`~posedistill.models.temporal_discriminator.TemporalDiscriminator`, a BEGAN
auto-encoder over the T heatmaps, real = the target heatmaps, fake = the predicted ones, both multiplied by the
joint weights) is trained inside :meth:`DKDMethod.losses` by its own Adam optimizer, one step per batch before the
generator term is computed, on L_real − k·L_fake with BEGAN's balance ``k ← clip(k + λ_k(γ·L_real − L_fake), 0,
1)``. The trainer only sees the generator losses (``loss_kpt``, ``loss_adv``). The discriminator, its Adam moments
and k live in :class:`Adversary`, a module whose parameters have ``requires_grad=False`` outside its own step: it
is listed in :meth:`DKDMethod.trainable_modules`, so the trainer checkpoints and restores all of it on resume, but
its parameters are not in the trainer's optimizer. Under DDP its gradients and energies are averaged by hand.

``method.args`` (:class:`DKDArgs`): see the field comments. ``model.name`` must be ``dkd`` and ``model.args`` holds
:func:`~posedistill.models.dkd.build_dkd`'s arguments (initializer, encoder, kernel_size, kernel_mode, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from posedistill.codecs import HeatmapCodec, build_codec, flip_heatmaps
from posedistill.distill.base import Method
from posedistill.distill.losses import HeatmapMSELoss
from posedistill.layouts import Layout, get_layout
from posedistill.models.dkd import DKDNet, build_dkd, encoder_state_from_model
from posedistill.models.temporal_discriminator import TemporalDiscriminator, began_update


@dataclass
class DKDArgs:
    clip_length: int = field(default=5, metadata={"min": 2})  # T
    clip_stride: int = field(default=1, metadata={"min": 1})  # records between training clip starts
    max_frame_gap: int = field(default=1, metadata={"min": 1})  # frame-index step that still joins a track
    # per-frame model checkpoints (posedistill folder or mmpose .pth): the initializer's weights, and the small
    # model whose backbone + deconvs start the encoder (and whose final 1x1 conv starts the static kernels)
    initializer_pretrained: str | None = None
    encoder_pretrained: str | None = None
    train_initializer: bool = False
    use_target_weight: bool = True
    loss_weight: float = 1.0
    adv_weight: float = field(default=0.01, metadata={"min": 0.0})  # lambda_adv; 0: no discriminator
    adv_start_epoch: int = field(default=0, metadata={"min": 0})
    disc_channels: int = field(default=32, metadata={"min": 1})
    disc_hidden: int = field(default=64, metadata={"min": 1})
    disc_num_down: int = field(default=2, metadata={"min": 0})
    disc_pool: int = field(default=2, metadata={"min": 1})
    disc_lr: float = field(default=1e-4, metadata={"min": 0.0})
    disc_betas: list[float] = field(default_factory=lambda: [0.5, 0.999], metadata={"len": 2})
    gamma: float = field(default=0.5, metadata={"min": 0.0})  # BEGAN's diversity ratio
    lambda_k: float = field(default=1e-3, metadata={"min": 0.0})
    k_init: float = field(default=0.0, metadata={"min": 0.0})
    val_segment: int | None = field(default=None, metadata={"min": 1})  # validation re-init period (default T)
    jhmdb_split: int = field(default=1, metadata={"min": 1})  # for format: sub_jhmdb sources
    flip_shift: bool | None = None  # flip test: default shift unless the codec is UDP


class Adversary(nn.Module):
    """The temporal discriminator, its Adam optimizer (moments and step counts held as buffers, so they are in
    the state dict) and BEGAN's k. Its parameters have ``requires_grad=False`` except inside :meth:`update`.

    Args:
        discriminator: energy model, ``forward(B×T×K×h×w) -> B`` energies.
        lr, betas: Adam settings (BEGAN: 1e-4, (0.5, 0.999)).
        gamma, lambda_k, k_init: BEGAN's balance.
    """

    def __init__(self, discriminator: nn.Module, lr: float = 1e-4, betas: tuple[float, float] = (0.5, 0.999),
                 gamma: float = 0.5, lambda_k: float = 1e-3, k_init: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.discriminator = discriminator
        discriminator.requires_grad_(False)
        self.lr, self.betas = float(lr), (float(betas[0]), float(betas[1]))
        self.gamma, self.lambda_k = float(gamma), float(lambda_k)
        self.register_buffer("k", torch.tensor(float(k_init)))
        self.register_buffer("convergence", torch.tensor(0.0))
        self.register_buffer("energy_real", torch.tensor(0.0))
        self.register_buffer("energy_fake", torch.tensor(0.0))
        for i, p in enumerate(discriminator.parameters()):
            self.register_buffer(f"adam_step_{i}", torch.tensor(0.0))
            self.register_buffer(f"adam_exp_avg_{i}", torch.zeros_like(p))
            self.register_buffer(f"adam_exp_avg_sq_{i}", torch.zeros_like(p))
        self._optimizer: torch.optim.Adam | None = None

    def _params(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    def _linked_optimizer(self) -> torch.optim.Adam:
        """torch's Adam whose per-parameter state *is* this module's buffers (Adam updates them in place), so
        ``state_dict`` / ``load_state_dict`` / ``.to()`` of the module carry the optimizer along."""
        params = self._params()
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(params, lr=self.lr, betas=self.betas)
        for i, p in enumerate(params):
            self._optimizer.state[p] = {
                "step": getattr(self, f"adam_step_{i}"),
                "exp_avg": getattr(self, f"adam_exp_avg_{i}"),
                "exp_avg_sq": getattr(self, f"adam_exp_avg_sq_{i}"),
            }
        return self._optimizer

    def energy(self, clips: Tensor) -> Tensor:
        """Mean energy of a batch of clips (gradients reach the clips, never the discriminator outside update)."""
        return self.discriminator(clips).mean()

    def update(self, real: Tensor, fake: Tensor) -> dict[str, float]:
        """One discriminator step on L_real − k·L_fake (fake detached), then BEGAN's k update."""
        params = self._params()
        opt = self._linked_optimizer()
        try:
            for p in params:
                p.requires_grad_(True)
                p.grad = None
            with torch.enable_grad():
                e_real = self.energy(real.detach())
                e_fake = self.energy(fake.detach())
                (e_real - self.k.to(e_real.dtype) * e_fake).backward()
            energies = torch.stack([e_real.detach(), e_fake.detach()]).float()
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                world = torch.distributed.get_world_size()
                for p in params:
                    if p.grad is not None:
                        torch.distributed.all_reduce(p.grad)
                        p.grad /= world
                torch.distributed.all_reduce(energies)
                energies /= world
            opt.step()
        finally:
            for p in params:
                p.grad = None
                p.requires_grad_(False)
        er, ef = (float(v) for v in energies)
        k, m = began_update(float(self.k), er, ef, self.gamma, self.lambda_k)
        self.k.fill_(k)
        self.convergence.fill_(m)
        self.energy_real.fill_(er)
        self.energy_fake.fill_(ef)
        return {"energy_real": er, "energy_fake": ef, "k": k, "convergence": m}


class DKDMethod(Method):
    """Train a :class:`DKDNet` on clips with the targets of a :class:`HeatmapCodec` (see the module docstring)."""

    def __init__(self, net: DKDNet, codec: HeatmapCodec, layout: Layout | str, args: DKDArgs | None = None) -> None:
        super().__init__()
        if not isinstance(codec, HeatmapCodec):
            raise TypeError(f"DKD trains heatmaps and needs a heatmap codec, got {type(codec).__name__}")
        self.args = args = args or DKDArgs()
        self.net = net
        self.codec = codec
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        if self.layout.num_keypoints != net.num_keypoints:
            raise ValueError(f"layout {self.layout.name} has {self.layout.num_keypoints} keypoints, the network "
                             f"{net.num_keypoints}")  # fmt: skip
        self.flip_indices = list(self.layout.flip_indices)
        self.flip_shift = (not codec.udp) if args.flip_shift is None else bool(args.flip_shift)
        self.mse = HeatmapMSELoss(args.use_target_weight, args.loss_weight)
        net.initializer.requires_grad_(bool(args.train_initializer))
        self.adversary: Adversary | None = None
        if args.adv_weight > 0:
            w, h = codec.heatmap_size
            disc = TemporalDiscriminator(args.clip_length, net.num_keypoints, (w, h), args.disc_channels,
                                         args.disc_hidden, args.disc_num_down, args.disc_pool)  # fmt: skip
            self.adversary = Adversary(disc, args.disc_lr, tuple(args.disc_betas), args.gamma, args.lambda_k,
                                       args.k_init)  # fmt: skip
        self.last_adversary_stats: dict[str, float] = {}

    def models(self) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {
            "initializer": self.net.initializer,
            "encoder": self.net.encoder,
            "distillator": self.net.distillator,
            "matching": self.net.matching,
        }
        if self.adversary is not None:
            out["adversary"] = self.adversary
        return out

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Encoder, distillator, matching (+ initializer when trained), and the adversary: its weights, Adam
        state and k are saved and resumed with the trained modules, but its parameters (``requires_grad`` off)
        stay out of the trainer's optimizer: it steps itself in :meth:`losses`."""
        out = {k: m for k, m in self.models().items() if k != "adversary" and any(p.requires_grad for p in
                                                                                    m.parameters())}  # fmt: skip
        if self.adversary is not None:
            out["adversary"] = self.adversary
        return out

    def losses(self, batch: dict[str, Any], epoch: int) -> dict[str, Tensor]:
        clip, target, weights = batch["image"], batch["heatmaps"], batch["weights"]
        if clip.dim() != 5:
            raise ValueError(f"DKD trains on clips B×T×3×H×W, got a batch image of shape {tuple(clip.shape)}")
        pred = self.net(clip)
        if pred.shape != target.shape:
            raise ValueError(f"the network gives heatmaps {tuple(pred.shape[-2:])}, the codec "
                             f"{tuple(target.shape[-2:])}; set codec.heatmap_size to the network's")  # fmt: skip
        first = 0 if self.args.train_initializer else 1  # a frozen initializer's frame 0 carries no gradient
        loss = self.mse(pred[:, first:].flatten(0, 1), target[:, first:].flatten(0, 1),
                        weights[:, first:].flatten(0, 1))  # fmt: skip
        out = {"loss_kpt": loss}
        if self.adversary is not None and epoch >= self.args.adv_start_epoch:
            w = weights.to(pred.dtype)[..., None, None]
            real, fake = target.to(pred.dtype) * w, pred * w
            if self.training:
                self.last_adversary_stats = self.adversary.update(real, fake)
            out["loss_adv"] = self.args.adv_weight * self.adversary.energy(fake)
        return out

    @torch.no_grad()
    def heatmaps(self, clip: Tensor, flip_test: bool = False) -> Tensor:
        """B×T×K×h×w heatmaps of the chain started at frame 0 (flip test: the mirrored chain, mapped back and
        averaged)."""
        maps = self.net(clip)
        if flip_test:
            flipped = flip_heatmaps(self.net(clip.flip(-1)), self.flip_indices, shift=self.flip_shift)
            maps = (maps + flipped) * 0.5
        return maps

    @torch.no_grad()
    def predict(self, batch: dict[str, Any], flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (B, K, 2) in crop pixels and scores (B, K) of each item's frame ``position``."""
        maps = self.heatmaps(batch["image"], flip_test)
        pos = torch.as_tensor(np.asarray(batch["position"]), device=maps.device, dtype=torch.long)
        chosen = maps[torch.arange(maps.shape[0], device=maps.device), pos]
        return self.codec.decode(chosen.float().cpu().numpy())

    def export_model(self) -> nn.Module:
        """The whole DKD network (initializer, encoder, distillator, matching); ``build_args["name"] == "dkd"``."""
        return self.net

    # ------------------------------------------------------------------------------------ data hooks
    def _records(self, cfg: Any, split: str, subset: str) -> list:
        from posedistill.data.clips import read_clip_source

        where = getattr(cfg, "source", "<config>")
        out: list = []
        for i, src in enumerate(getattr(cfg.data, split)):
            out.extend(read_clip_source(src, cfg.data.layout, subset, where, f"data.{split}.{i}",
                                        self.args.jhmdb_split))  # fmt: skip
        return out

    def build_train_set(self, cfg: Any) -> Any:
        """Training clips of ``data.train`` (:class:`ClipDataset`, clips mode, the config's augmentation)."""
        from posedistill.data.clips import ClipDataset
        from posedistill.data.readers import training_instances
        from posedistill.engine.builders import aug_config
        from posedistill.engine.config import ConfigError

        where = getattr(cfg, "source", "<config>")
        if not cfg.data.train:
            raise ConfigError(f"{where}: key 'data.train': no training source; add a video source")
        records = training_instances(self._records(cfg, "train", "train"))
        try:
            return ClipDataset(records, self.codec, cfg.input_size, self.args.clip_length, "clips", train=True,
                               stride=self.args.clip_stride, max_gap=self.args.max_frame_gap, aug=aug_config(cfg),
                               seed=cfg.train.seed, layout=cfg.data.layout)  # fmt: skip
        except ValueError as e:
            raise ConfigError(f"{where}: key 'data.train': {e}") from None

    def build_val_data(self, cfg: Any) -> Any:
        """Validation items of ``data.val``: one per record, its segment of ``val_segment`` frames up to it."""
        from posedistill.data.clips import ClipDataset
        from posedistill.engine.builders import ValData

        if not cfg.data.val:
            return None
        records = [r for r in self._records(cfg, "val", "test") if not r.iscrowd and r.bbox[2] > 0 and r.bbox[3] > 0]
        dataset = ClipDataset(records, self.codec, cfg.input_size, self.args.val_segment or self.args.clip_length,
                              "frames", train=False, max_gap=self.args.max_frame_gap, seed=cfg.train.seed,
                              layout=cfg.data.layout)  # fmt: skip
        return ValData(dataset, records, dataset.rows, {})


def load_state(path: str) -> dict[str, Tensor]:
    """Weights of a posedistill checkpoint folder or an mmpose ``.pth`` (never runs code)."""
    from posedistill.engine.checkpoint import is_mmpose_checkpoint, load_weights, read_mmpose_state_dict

    return read_mmpose_state_dict(path) if is_mmpose_checkpoint(path) else load_weights(path)


def build_network(cfg: Any, args: DKDArgs) -> DKDNet:
    """The DKD network of a config, with its initializer / encoder / whole-network weights loaded."""
    from posedistill.engine.checkpoint import CheckpointError, load_pretrained
    from posedistill.engine.config import ConfigError

    where = getattr(cfg, "source", "<config>")
    if cfg.model.name != "dkd":
        raise ConfigError(f"{where}: key 'model.name': DKD needs model.name: dkd (with model.args.initializer and "
                          f"model.args.encoder), got {cfg.model.name!r}")  # fmt: skip
    layout = get_layout(cfg.data.layout)
    try:
        net = build_dkd(layout.num_keypoints, cfg.input_size, **cfg.model.args)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{where}: key 'model.args': cannot build the DKD network: {e}") from None
    try:
        if args.initializer_pretrained:
            missing, unexpected = load_pretrained(net.initializer, args.initializer_pretrained)
            if missing or unexpected:
                raise ConfigError(f"{where}: key 'method.args.initializer_pretrained': the weights do not fit the "
                                  f"initializer: missing {missing[:3]}, unexpected {unexpected[:3]}")  # fmt: skip
        if args.encoder_pretrained:
            state = load_state(args.encoder_pretrained)
            enc = encoder_state_from_model(state)
            try:
                net.encoder.load_state_dict(enc, strict=True)
            except RuntimeError as e:
                raise ConfigError(f"{where}: key 'method.args.encoder_pretrained': {e}") from None
            head_w = state.get("head.final_layer.weight")
            if net.matching.static is not None and head_w is not None and head_w.shape[-1] == 1:
                net.matching.load_head(head_w, state.get("head.final_layer.bias"))
        if cfg.model.pretrained:
            missing, unexpected = load_pretrained(net, cfg.model.pretrained)
            if missing or unexpected:
                print(f"model.pretrained {cfg.model.pretrained}: {len(missing)} missing keys (e.g. {missing[:3]}), "
                      f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})", flush=True)  # fmt: skip
    except CheckpointError as e:
        raise ConfigError(f"{where}: {e}") from None
    return net


def from_config(cfg: Any) -> DKDMethod:
    """Build from a :class:`posedistill.engine.config.Config` (``method.type: dkd``)."""
    from posedistill.engine.config import ConfigError, parse_section

    where = getattr(cfg, "source", "<config>")
    args = parse_section(DKDArgs, cfg.method.args, "method.args", where)
    try:
        codec = build_codec(cfg.codec_args())
    except ValueError as e:
        raise ConfigError(f"{where}: key 'codec': {e}") from None
    if not isinstance(codec, HeatmapCodec):
        raise ConfigError(f"{where}: key 'codec.type': DKD trains heatmaps; use codec.type: heatmap")
    return DKDMethod(build_network(cfg, args), codec, cfg.data.layout, args)
