"""OKDHP, online knowledge distillation for pose estimation (Li et al., ICCV 2021; ``docs/okdhp.md``).

One network, :class:`~posedistill.models.multibranch.MultiBranchHeatmapModel`: a shared trunk, N branches (each a
complete estimator with the trunk) and the FAU, whose per-joint weights mix the branches' final heatmaps into an
ensemble. The ensemble is the teacher of every output, in a single training stage without a pretrained teacher::

    L = Σ_i MSE(H_i, Y)                                   every output: shared stacks, intermediate and final
      + α · MSE(E, Y)                                     the ensemble E, α = ens_weight (1)
      + β · r(e) · Σ_i KL(E ‖ H_i)                        β = kd_weight (2), over every output (kd_outputs=all)
    r(e) = exp(−5 · (1 − min(e, L_r)/L_r)²)               e: 0-based epoch, L_r = ramp_epochs

MSE is the HRNet ``JointsMSELoss``, ½ · mean of w·(pred − Y)² (``mse_weight`` 0.5 on :class:`HeatmapMSELoss`).
KL is the official ``JointsKLDLoss``: per sample and joint a softmax over the H×W pixels of w·map / T (student
log-softmax, teacher softmax), summed over pixels, joints and batch and divided by B·H·W (not by K), times T²
(T = ``temperature``, 1 in the official code, where the T² factor is 1 too). Nothing is detached by default, as in
the official code: the KL term also trains the ensemble, the FAU and, through them, every branch;
``detach_teacher`` stops the gradient through the ensemble of the KL term and ``detach_fau_input`` keeps the FAU's
gradients out of the trunk.

Where posedistill differs from the official code (see ``docs/okdhp.md``): the ensemble mixes every branch's
**final** heatmap, as published (``legacy_ensemble: true`` reproduces the official last-N-outputs mix); K, the
number of branches, the split point and the branch architectures are parameters.

``method.args`` (:class:`OKDHPArgs`, all optional): see the field comments. Validation (``predict``) scores
``val_output``: a branch index (default 0) or ``"ensemble"``. The trainer's checkpoints hold the whole network
(every branch and the FAU, ``build_args["name"] == "multibranch"``); ``posedistill deploy`` turns one branch into
a plain checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posedistill.codecs import HeatmapCodec, build_codec, flip_heatmaps
from posedistill.distill.base import Method
from posedistill.distill.losses import HeatmapMSELoss
from posedistill.layouts import Layout, get_layout
from posedistill.models.multibranch import FAU_INPUTS, MultiBranchHeatmapModel, build_multibranch


@dataclass
class OKDHPArgs:
    num_branches: int | None = None  # default 3, or len(branches)
    num_shared: int = 2  # shared hourglass stacks after the stem, or shared entries of stages()
    # per-branch overrides of the model spec ({name: ..., <build_model keywords>}); [] = copies of model
    branches: list[dict[str, Any]] = field(default_factory=list)
    fau: bool = True  # False: the ensemble is the plain mean of the branches (ablation)
    fau_input: str = field(default="auto", metadata={"choices": FAU_INPUTS})  # auto: stem (hourglass) / shared
    fau_channels: int | None = None  # width of the 3x3/5x5/7x7 paths (default: the input's)
    fau_hidden: int | None = None  # squeeze width (default channels / 4)
    fau_kernel_sizes: list[int] = field(default_factory=lambda: [3, 5, 7])
    legacy_ensemble: bool = False  # the official code's ensemble (last N outputs: drops branch 0's final map)
    use_target_weight: bool = True
    mse_weight: float = 0.5  # HRNet JointsMSELoss has the 1/2
    ens_weight: float = 1.0  # alpha
    kd_weight: float = 2.0  # beta
    temperature: float = field(default=1.0, metadata={"min": 1e-6})
    ramp_epochs: int = field(default=90, metadata={"min": 0})  # the KL weight ramps up to 1 at this epoch
    kd_outputs: str = field(default="all", metadata={"choices": ("all", "final")})
    detach_teacher: bool = False
    detach_fau_input: bool = False
    val_output: int | str = 0  # branch index or "ensemble": what validation scores
    flip_shift: bool | None = None  # default: shift unless the codec is UDP


def kd_ramp(epoch: int, length: int) -> float:
    """exp(−5 (1 − t)²) with t = min(epoch, length) / length: 0.0067 at epoch 0, 1 from ``length`` on (1 if 0)."""
    if length <= 0:
        return 1.0
    t = min(max(float(epoch), 0.0), float(length)) / float(length)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def spatial_kl(student: Tensor, teacher: Tensor, weights: Tensor | None = None, temperature: float = 1.0) -> Tensor:
    """Σ_{n,k,pixels} KL(softmax(w·teacher/T) ‖ softmax(w·student/T)) / (N·H·W) · T².

    student, teacher: N×K×H×W; weights N×K (joints with weight 0 compare two uniform maps: 0).
    """
    n, k, h, w = student.shape
    s, t = student, teacher.to(student.dtype)
    if weights is not None:
        wt = weights.to(student.dtype)[..., None, None]
        s, t = s * wt, t * wt
    log_q = F.log_softmax(s.reshape(n, k, h * w) / temperature, dim=-1)
    log_p = F.log_softmax(t.reshape(n, k, h * w) / temperature, dim=-1)
    kl = F.kl_div(log_q, log_p, reduction="sum", log_target=True)
    return kl * (temperature**2) / (n * h * w)


class OKDHPMethod(Method):
    """Train a :class:`MultiBranchHeatmapModel` with OKDHP's losses on the targets of a :class:`HeatmapCodec`."""

    def __init__(
        self,
        network: MultiBranchHeatmapModel,
        codec: HeatmapCodec,
        layout: Layout | str,
        args: OKDHPArgs | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(codec, HeatmapCodec):
            raise TypeError(f"OKDHP trains heatmap models and needs a heatmap codec, got {type(codec).__name__}")
        self.args = args = args or OKDHPArgs()
        self.network = network
        self.codec = codec
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.flip_indices = list(self.layout.flip_indices)
        self.mse = HeatmapMSELoss(args.use_target_weight, args.mse_weight)
        self.flip_shift = (not codec.udp) if args.flip_shift is None else bool(args.flip_shift)
        network.check_output(args.val_output)
        self.val_output: int | str = args.val_output

    def models(self) -> dict[str, nn.Module]:
        return {"network": self.network}

    def losses(self, batch: dict[str, Any], epoch: int) -> dict[str, Tensor]:
        a = self.args
        image, target = batch["image"], batch["heatmaps"]
        weights = batch.get("weights")
        out = self.network.forward_branches(image)
        ens, _ = self.network.ensemble(out, detach_input=a.detach_fau_input)
        outputs = out.flat()
        losses = {
            "loss_kpt": sum(self.mse(o, target, weights) for o in outputs),
            "loss_ens": a.ens_weight * self.mse(ens, target, weights),
        }
        if a.kd_weight > 0:
            teacher = ens.detach() if a.detach_teacher else ens
            students = outputs if a.kd_outputs == "all" else out.finals()
            kd_w = weights if a.use_target_weight else None
            kl = sum(spatial_kl(s, teacher, kd_w, a.temperature) for s in students)
            losses["loss_kd"] = a.kd_weight * kd_ramp(epoch, a.ramp_epochs) * kl
        return losses

    @torch.no_grad()
    def heatmaps(self, image: Tensor, which: int | str | None = None, flip_test: bool = False) -> Tensor:
        """Heatmaps B×K×h×w of a branch (final output) or of the ensemble, optionally flip-averaged."""
        which = self.val_output if which is None else which
        heatmaps = self.network.output(image, which)
        if flip_test:
            flipped = flip_heatmaps(self.network.output(image.flip(-1), which), self.flip_indices, self.flip_shift)
            heatmaps = (heatmaps + flipped) * 0.5
        return heatmaps

    @torch.no_grad()
    def predict(self, batch: dict[str, Any], flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
        heatmaps = self.heatmaps(batch["image"], flip_test=flip_test)
        return self.codec.decode(heatmaps.float().cpu().numpy())

    def export_model(self) -> nn.Module:
        """The whole network (every branch and the FAU); ``posedistill deploy`` extracts one branch."""
        return self.network


def build_network(cfg: Any, args: OKDHPArgs) -> MultiBranchHeatmapModel:
    """The multi-branch network of a config: ``model`` is the base (trunk and default branch), ``args`` the split,
    the branches and the FAU. ``model.pretrained`` initialises every branch model before the split."""
    from posedistill.engine.checkpoint import CheckpointError, load_pretrained
    from posedistill.engine.config import ConfigError

    where = getattr(cfg, "source", "<config>")
    init = None
    if cfg.model.pretrained:

        def init(model: nn.Module) -> None:
            try:
                load_pretrained(model, cfg.model.pretrained)
            except CheckpointError as e:
                raise ConfigError(f"{where}: key 'model.pretrained': {e}") from None

    num_branches = args.num_branches if args.num_branches is not None else (len(args.branches) or 3)
    if args.branches and len(args.branches) != num_branches:
        raise ConfigError(f"{where}: key 'method.args.num_branches' is {num_branches} but "
                          f"method.args.branches lists {len(args.branches)} branches")  # fmt: skip
    fau = None
    if args.fau:
        fau = {"channels": args.fau_channels, "hidden": args.fau_hidden, "kernel_sizes": list(args.fau_kernel_sizes)}
    try:
        return build_multibranch(
            num_keypoints=get_layout(cfg.data.layout).num_keypoints, input_size=list(cfg.input_size),
            base={"name": cfg.model.name, **cfg.model.args}, num_shared=args.num_shared, num_branches=num_branches,
            branches=args.branches or None, fau=fau, fau_input=args.fau_input,
            legacy_ensemble=args.legacy_ensemble, default_output=args.val_output, init=init,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where}: keys 'model' / 'method.args': cannot build the OKDHP network: {e}") from None


def from_config(cfg: Any) -> OKDHPMethod:
    """Build from a :class:`posedistill.engine.config.Config` (``method.type: okdhp``)."""
    from posedistill.engine.config import ConfigError, parse_section

    where = getattr(cfg, "source", "<config>")
    args = parse_section(OKDHPArgs, cfg.method.args, "method.args", where)
    try:
        codec = build_codec(cfg.codec_args())
    except ValueError as e:
        raise ConfigError(f"{where}: key 'codec': {e}") from None
    if not isinstance(codec, HeatmapCodec):
        raise ConfigError(f"{where}: key 'codec.type': OKDHP trains heatmap models; use codec.type: heatmap")
    return OKDHPMethod(build_network(cfg, args), codec, cfg.data.layout, args)
