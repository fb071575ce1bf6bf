"""Supervised training: one model, one loss against the ground-truth targets of its codec.

- SimCC models (RTMPose): ``KLDiscretLoss(beta, label_softmax, label_beta)`` on ``(simcc_x, simcc_y)`` vs the
  dataset's ``x_labels`` / ``y_labels`` / ``weights``; flip test averages the plain and flipped-back logits.
- Heatmap models: ``HeatmapMSELoss`` summed over every supervised output (``forward_all``: one per hourglass
  stack); flip test averages heatmaps, shifting the flipped map one pixel unless the codec is UDP (mmpose's
  ``shift_heatmap``).

``method.args`` (all optional): ``beta``, ``label_softmax``, ``label_beta``, ``use_target_weight`` (SimCC),
``loss_weight`` (heatmap), ``flip_shift`` (heatmap; default: not UDP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from posedistill.codecs import HeatmapCodec, SimCCCodec, build_codec, flip_heatmaps, flip_simcc
from posedistill.distill.base import Method
from posedistill.distill.losses import HeatmapMSELoss, KLDiscretLoss
from posedistill.layouts import Layout, get_layout


@dataclass
class SupervisedArgs:
    beta: float = 10.0
    label_softmax: bool = True
    label_beta: float = 10.0
    use_target_weight: bool = True
    loss_weight: float = 1.0
    flip_shift: bool | None = None


class SupervisedMethod(Method):
    """Train ``model`` on the targets of ``codec`` (a :class:`SimCCCodec` or :class:`HeatmapCodec`)."""

    def __init__(
        self,
        model: nn.Module,
        codec: SimCCCodec | HeatmapCodec,
        layout: Layout | str,
        args: SupervisedArgs | None = None,
    ) -> None:
        super().__init__()
        args = args or SupervisedArgs()
        self.model = model
        self.codec = codec
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.flip_indices = list(self.layout.flip_indices)
        if isinstance(codec, SimCCCodec):
            self.kind = "simcc"
            self.loss = KLDiscretLoss(args.beta, args.label_softmax, args.label_beta, args.use_target_weight)
        elif isinstance(codec, HeatmapCodec):
            self.kind = "heatmap"
            self.loss = HeatmapMSELoss(args.use_target_weight, args.loss_weight)
        else:
            raise TypeError(f"supervised training needs a SimCC or heatmap codec, got {type(codec).__name__}")
        if args.flip_shift is None:  # mmpose's shift_heatmap: on for plain heatmaps, off for UDP
            self.flip_shift = self.kind == "heatmap" and not codec.udp
        else:
            self.flip_shift = bool(args.flip_shift)

    def models(self) -> dict[str, nn.Module]:
        return {"student": self.model}

    def losses(self, batch: dict[str, Any], epoch: int) -> dict[str, Tensor]:
        image = batch["image"]
        if self.kind == "simcc":
            pred_x, pred_y = self.model(image)
            loss = self.loss(pred_x, pred_y, batch["x_labels"], batch["y_labels"], batch["weights"])
        else:
            outputs = self.model.forward_all(image) if hasattr(self.model, "forward_all") else [self.model(image)]
            loss = sum(self.loss(out, batch["heatmaps"], batch["weights"]) for out in outputs)
        return {"loss_kpt": loss}

    @torch.no_grad()
    def predict(self, batch: dict[str, Any], flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
        image = batch["image"]
        if self.kind == "simcc":
            x, y = self.model(image)
            if flip_test:
                fx, fy = flip_simcc(*self.model(image.flip(-1)), self.flip_indices)
                x, y = (x + fx) * 0.5, (y + fy) * 0.5
            return self.codec.decode(x.float().cpu().numpy(), y.float().cpu().numpy())
        heatmaps = self.model(image)
        if flip_test:
            flipped = flip_heatmaps(self.model(image.flip(-1)), self.flip_indices, shift=self.flip_shift)
            heatmaps = (heatmaps + flipped) * 0.5
        return self.codec.decode(heatmaps.float().cpu().numpy())

    def export_model(self) -> nn.Module:
        return self.model


def build_student(cfg: Any) -> nn.Module:
    """The config's model (``model.name`` with the layout's keypoint count), loaded from ``model.pretrained``."""
    from posedistill.engine.checkpoint import CheckpointError, load_pretrained
    from posedistill.engine.config import ConfigError
    from posedistill.models.builder import build_model
    from posedistill.models.rtmdet_backbone import PRETRAINED_NAME

    layout = get_layout(cfg.data.layout)
    where = getattr(cfg, "source", "<config>")
    try:
        model = build_model(cfg.model.name, layout.num_keypoints, input_size=cfg.input_size, **cfg.model.args)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{where}: key 'model': cannot build {cfg.model.name!r}: {e}") from None
    if cfg.model.pretrained == PRETRAINED_NAME:
        # the shipped detector's trained backbone; its BN statistics from the first training people
        from posedistill.engine.builders import read_sources
        from posedistill.models.rtmdet_backbone import init_from_detector

        try:
            n = init_from_detector(model, read_sources(cfg, "train")[:64], tuple(cfg.input_size))
        except (ValueError, OSError) as e:  # PoseDataError (no detector file) is a ValueError
            raise ConfigError(f"{where}: key 'model.pretrained': {e}") from None
        print(f"model.pretrained {PRETRAINED_NAME}: {n} convs of the default detector's backbone", flush=True)
    elif cfg.model.pretrained:
        try:
            missing, unexpected = load_pretrained(model, cfg.model.pretrained)
        except CheckpointError as e:
            raise ConfigError(f"{where}: key 'model.pretrained': {e}") from None
        if missing or unexpected:
            print(
                f"model.pretrained {cfg.model.pretrained}: {len(missing)} missing keys (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})",
                flush=True,
            )
    return model


def from_config(cfg: Any) -> SupervisedMethod:
    """Build from a :class:`posedistill.engine.config.Config`."""
    from posedistill.engine.config import ConfigError, parse_section

    where = getattr(cfg, "source", "<config>")
    args = parse_section(SupervisedArgs, cfg.method.args, "method.args", where)
    try:
        codec = build_codec(cfg.codec_args())
    except ValueError as e:
        raise ConfigError(f"{where}: key 'codec': {e}") from None
    return SupervisedMethod(build_student(cfg), codec, cfg.data.layout, args)
