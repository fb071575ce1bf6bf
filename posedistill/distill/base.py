"""The interface between a training recipe (supervised, DWPose, OKDHP, DKD) and the one trainer.

A method is an ``nn.Module`` that owns every network of the recipe (the student, frozen teachers, adapters such as
DWPose's align conv) and turns a batch into named losses. The trainer sums the dict, logs every term, steps the
optimizer over :meth:`Method.trainable_modules`, keeps the EMA of those modules, and never knows which method it
runs. Because the method is a module, DDP wraps it whole: ``forward(batch, epoch)`` returns the loss dict.

Building from a config: the module ``posedistill.distill.<method.type>`` (or any importable module named by a
dotted ``method.type``) exposes ``from_config(cfg: posedistill.engine.config.Config) -> Method``;
``cfg.method.args`` holds the method's own options (parse them with ``posedistill.engine.config.parse_section``
to get the same error messages as the rest of the config).

Optional hooks, for methods whose data are not top-down person crops (e.g. video clips):
``build_train_set(cfg) -> Dataset`` (with ``set_epoch``; ``set_aug`` and ``aug`` for the late augmentation
switch) and ``build_val_data(cfg) -> posedistill.engine.builders.ValData | None``. Without them ``posedistill
train`` builds ``TopDownDataset``s from ``data.train`` / ``data.val`` with the config's codec.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


class Method(nn.Module):
    """Base class of training recipes. Subclasses implement the four methods below that raise.

    Batches are dicts of tensors already on the method's device (``image`` B×3×h×w float, normalised as the
    dataset produces it, plus the codec targets and per-sample meta).
    """

    #: set True when some trainable parameters legitimately receive no gradient (DDP ``find_unused_parameters``)
    find_unused_parameters: bool = False

    def models(self) -> dict[str, nn.Module]:
        """Every network of the recipe by name, trained or frozen (e.g. ``{"student": m, "teacher": t}``)."""
        raise NotImplementedError

    def trainable_modules(self) -> dict[str, nn.Module]:
        """The modules whose parameters (those with ``requires_grad``) the optimizer updates and the EMA tracks.
        Default: every module of :meth:`models` that has a trainable parameter."""
        return {k: m for k, m in self.models().items() if any(p.requires_grad for p in m.parameters())}

    def frozen_modules(self) -> dict[str, nn.Module]:
        """Modules of :meth:`models` that are not trained; they stay in eval mode (BN statistics frozen)."""
        trainable = self.trainable_modules()
        return {k: m for k, m in self.models().items() if k not in trainable}

    def losses(self, batch: dict[str, Any], epoch: int) -> dict[str, Tensor]:
        """Named scalar losses for one batch at 0-based ``epoch``; the trainer minimises their sum."""
        raise NotImplementedError

    def forward(self, batch: dict[str, Any], epoch: int) -> dict[str, Tensor]:
        return self.losses(batch, epoch)

    @torch.no_grad()
    def predict(self, batch: dict[str, Any], flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints in **crop** pixels (B, K, 2) float32 and scores (B, K) float32 of the exported model."""
        raise NotImplementedError

    def export_model(self) -> nn.Module:
        """The deployable network (a plain estimator with ``build_args``), sharing weights with the method."""
        raise NotImplementedError

    def untrained_keypoints(self, train_set: Any) -> list[int]:
        """Keypoints the recipe never gives a training signal (saved as ``untrained_keypoints`` in the checkpoint
        meta; the runtime scores them 0 instead of reporting whatever the untrained output says). Default: the
        points no training instance labels (visibility 0 or keypoint weight 0 everywhere); [] when the training
        set does not list top-down instances."""
        return unlabelled_keypoints(getattr(train_set, "instances", None))

    def train(self, mode: bool = True) -> Method:
        super().train(mode)
        for m in self.frozen_modules().values():
            m.eval()
        return self


def unlabelled_keypoints(instances: Any) -> list[int]:
    """Indices of the keypoints that no instance of ``instances`` labels ([] for no instances or mixed sizes)."""
    if not instances:
        return []
    k = len(instances[0].visibility)
    labelled = np.zeros(k, bool)
    for inst in instances:
        if len(inst.visibility) != k:
            return []
        lab = np.asarray(inst.visibility) > 0
        if inst.keypoint_weights is not None:
            lab &= np.asarray(inst.keypoint_weights) > 0
        labelled |= lab
        if labelled.all():
            return []
    return [int(i) for i in np.flatnonzero(~labelled)]
