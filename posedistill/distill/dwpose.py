"""DWPose: two-stage pose distillation (Yang et al., "Effective Whole-body Pose Estimation with Two-stages
Distillation", ICCVW 2023), as mmpose 1.3.2's ``DWPoseDistiller`` runs it (``docs/rtmpose-dwpose.md`` §10).

**Stage 1** (``stage: 1``). A frozen teacher in eval mode (RTMPose-l / x) and a student RTMPose trained with

    L = KLDiscretLoss(student, GT) + (1 − e/E)·[FeaLoss(align(Fs), Ft) + KDLoss(student, teacher; w 0.1, β)]

with Fs / Ft the last (stride-32) backbone maps, ``align`` a trainable 1×1 conv (Cs → Ct, only when they differ),
e the 0-based epoch (constant within an epoch) and E = ``train.epochs``. KDLoss distils **every** keypoint (no
visibility mask). The deployable model is the student; ``align`` is dropped.

**Stage 2** (``stage: 2``, head-aware self-KD). The stage-1 student, frozen, is the teacher. A fresh head (default
init; ``init_head_from_teacher`` starts from the teacher's head instead) reads the teacher's backbone features and
is trained with the logit loss alone (KDLoss, w 1): no GT loss, no FeaLoss, no decay. Only the head trains. The
deployable model is the teacher's backbone plus the new head (here literally: the student shares the teacher's
backbone module). By default ``train.epochs`` becomes 1/5 of the stage-1 run's epochs (``epoch_ratio``).

The teacher is a posedistill checkpoint folder or an official mmpose / DWPose ``.pth`` (``teacher_which`` picks
the model inside a distiller checkpoint; ``teacher_model`` names the architecture when it cannot be inferred). It
must use the student's layout and input size (its SimCC bins are compared bin by bin).

**Runtime (black-box) teachers**, stage 1 only: any model the torch-free runtime runs (an ncnn ``.param`` or ONNX
file with its sidecar, a shipped name such as ``pp-tinypose``; append ``:flip`` or set ``teacher_flip_test`` for
its flip test). Heatmap teachers are turned into SimCC soft targets over the student's bins
(:mod:`posedistill.distill.runtime_teacher`); there are no teacher features, so the stage-1 loss is
``KLDiscretLoss + (1 − e/E)·KDLoss`` (no FeaLoss). The teacher must predict the student's layout; its input size
may differ (same aspect ratio).

``method.args`` (see :class:`DWPoseArgs`)::

    method:
      type: dwpose
      args: {stage: 1, teacher: work_dirs/rtmpose-l_coco-wholebody-256x192/best}

Teacher outputs can be cached on disk (``cache_dir``; :mod:`posedistill.distill.teacher_cache` explains when that
is sound and when it saves anything).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from posedistill.codecs import SimCCCodec, flip_simcc
from posedistill.distill.base import Method
from posedistill.distill.losses import FeaLoss, KDLoss, KLDiscretLoss
from posedistill.distill.runtime_teacher import RuntimeTeacher
from posedistill.distill.teacher_cache import TeacherCache, cached_forward, teacher_fingerprint
from posedistill.layouts import Layout, get_layout

CACHE_NAMES = ("feat", "simcc_x", "simcc_y")
RUNTIME_CACHE_NAMES = ("simcc_x", "simcc_y")  # a runtime teacher: its (converted) logits only


@dataclass
class DWPoseArgs:
    """The options of ``method.args`` for ``method.type: dwpose``."""

    stage: int = field(default=1, metadata={"choices": (1, 2)})
    # posedistill checkpoint folder or mmpose / DWPose .pth; stage 2: the stage-1 result
    teacher: str | None = None
    teacher_which: str = field(default="student", metadata={"choices": ("student", "teacher", "two_stage")})
    teacher_model: str | None = None  # architecture of a .pth whose weights do not say (RTMPose is inferred)
    teacher_flip_test: bool = False  # runtime teachers: flip test (same as a ':flip' suffix on the teacher)
    fea_alpha: float = field(default=7e-5, metadata={"min": 0.0})  # stage 1 FeaLoss weight
    kd_weight: float | None = None  # None: 0.1 in stage 1, 1.0 in stage 2
    beta: float = 10.0  # KD temperature multiplier, the student head's KLDiscretLoss beta
    # stage 1 GT loss (KLDiscretLoss)
    label_softmax: bool = True
    label_beta: float = 10.0
    use_target_weight: bool = True
    decay: bool = True  # stage 1: multiply FeaLoss and KDLoss by 1 - e/E
    init_head_from_teacher: bool = False  # stage 2: start the new head from the stage-1 head (design choice)
    # stage 2: train.epochs = round(epoch_ratio x the stage-1 run's epochs) when the teacher checkpoint records
    # them (posedistill checkpoints do); null: use train.epochs as written
    epoch_ratio: float | None = field(default=0.2, metadata={"min": 0.0})
    cache_dir: str | None = None  # teacher-output cache folder (off when null)
    cache_dtype: str = field(default="float32", metadata={"choices": ("float32", "float16")})


def freeze(model: nn.Module) -> nn.Module:
    """No gradients, eval mode (BN statistics frozen)."""
    model.requires_grad_(False)
    return model.eval()


class DWPoseMethod(Method):
    """DWPose stage 1 or 2 around an already built student and frozen teacher (both :class:`RTMPose`).

    Args:
        stage: 1 or 2.
        student: stage 1: the student RTMPose. Stage 2: an RTMPose of the teacher's architecture whose head is
            trained; its backbone is replaced by the teacher's (shared, frozen).
        teacher: the frozen teacher (stage 2: the stage-1 student), or (stage 1) a
            :class:`~posedistill.distill.runtime_teacher.RuntimeTeacher` (logits only, no FeaLoss).
        codec: the SimCC codec of the run (decoding for validation).
        layout: keypoint layout (flip test).
        max_epochs: E of the stage-1 decay.
        args: the remaining options.
        cache: optional teacher-output cache.
    """

    def __init__(
        self,
        stage: int,
        student: nn.Module,
        teacher: nn.Module | RuntimeTeacher,
        codec: SimCCCodec,
        layout: Layout | str,
        max_epochs: int,
        args: DWPoseArgs | None = None,
        cache: TeacherCache | None = None,
        teacher_untrained: list[int] | None = None,
    ) -> None:
        super().__init__()
        args = args or DWPoseArgs(stage=stage)
        # the keypoints the teacher itself never learned (its checkpoint meta), see untrained_keypoints
        self.teacher_untrained = [int(i) for i in teacher_untrained or []]
        if stage not in (1, 2):
            raise ValueError(f"DWPose stage must be 1 or 2, got {stage}")
        if not isinstance(codec, SimCCCodec):
            raise TypeError(f"DWPose distils SimCC models and needs a SimCC codec, got {type(codec).__name__}")
        self.stage = stage
        self.codec = codec
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self.flip_indices = list(self.layout.flip_indices)
        self.max_epochs = int(max_epochs)
        self.decay = bool(args.decay)
        self.runtime_teacher = teacher if isinstance(teacher, RuntimeTeacher) else None
        if self.runtime_teacher is not None and stage != 1:
            raise ValueError("DWPose stage 2 distils the stage-1 student into a new head; a runtime (ncnn / ONNX) "
                             "teacher can only be a stage-1 teacher")  # fmt: skip
        self.teacher = teacher if self.runtime_teacher is not None else freeze(teacher)
        self.student = student
        self.cache = cache
        for name, m in (("student", student), ("teacher", teacher)):
            if m is self.runtime_teacher:
                continue
            if not hasattr(m, "features") or not hasattr(m, "head_forward"):
                raise TypeError(f"DWPose {name} must be an RTMPose (features / head_forward), got {type(m).__name__}")
        if self.teacher_bins != self.student_bins:
            raise ValueError(
                f"teacher SimCC bins {self.teacher_bins} differ from the student's {self.student_bins}: the "
                "teacher must be trained at the student's input size"
            )
        kd_weight = args.kd_weight if args.kd_weight is not None else (0.1 if stage == 1 else 1.0)
        self.kd_loss = KDLoss(kd_weight, args.beta)
        self.fea_loss: FeaLoss | None = None
        if stage == 1:
            self.gt_loss = KLDiscretLoss(args.beta, args.label_softmax, args.label_beta, args.use_target_weight)
            if self.runtime_teacher is None:
                cs, ct = student.backbone.out_channels[-1], teacher.backbone.out_channels[-1]
                self.fea_loss = FeaLoss(cs, ct, args.fea_alpha)
        else:
            # the shipped model is the teacher's backbone + the new head: share the module, so there is one copy
            if type(student.backbone) is not type(teacher.backbone) or (
                student.backbone.out_channels != teacher.backbone.out_channels
            ):
                raise ValueError("DWPose stage 2 needs a student of the teacher's architecture (self-distillation)")
            student.backbone = teacher.backbone
            if args.init_head_from_teacher:
                student.head.load_state_dict(teacher.head.state_dict())

    def untrained_keypoints(self, train_set: Any) -> list[int]:
        """Stage 1 distils every keypoint, so a point is untrained only when neither the labels nor the teacher
        know it; stage 2 learns from the stage-1 model alone and inherits what it never learned."""
        if self.stage == 2:
            return list(self.teacher_untrained)
        return sorted(set(super().untrained_keypoints(train_set)) & set(self.teacher_untrained))

    @property
    def student_bins(self) -> tuple[int, int]:
        return self.student.head.cls_x.out_features, self.student.head.cls_y.out_features

    @property
    def teacher_bins(self) -> tuple[int, int]:
        if self.runtime_teacher is not None:
            return self.runtime_teacher.num_bins
        return self.teacher.head.cls_x.out_features, self.teacher.head.cls_y.out_features

    # ------------------------------------------------------------------------------------------ modules
    def models(self) -> dict[str, nn.Module]:
        if self.runtime_teacher is not None:
            return {"student": self.student}  # the teacher runs outside torch
        if self.stage == 1:
            assert self.fea_loss is not None
            return {"student": self.student, "teacher": self.teacher, "align": self.fea_loss.align}
        return {"student": self.student, "teacher": self.teacher}

    def trainable_modules(self) -> dict[str, nn.Module]:
        if self.stage == 2:
            return {"head": self.student.head}
        out: dict[str, nn.Module] = {"student": self.student}
        if self.fea_loss is not None and any(True for _ in self.fea_loss.align.parameters()):
            out["align"] = self.fea_loss.align
        return out

    def frozen_modules(self) -> dict[str, nn.Module]:
        if self.runtime_teacher is not None:
            return {}
        return {"teacher": self.teacher}  # stage 2: includes the shared backbone

    # ------------------------------------------------------------------------------------------ losses
    def decay_factor(self, epoch: int) -> float:
        """1 − e/E for 0-based epoch e (stage 1 with ``decay``), else 1."""
        if self.stage != 1 or not self.decay:
            return 1.0
        return 1.0 - float(epoch) / float(self.max_epochs)

    def _teacher_forward(self, image: Tensor) -> dict[str, Tensor]:
        if self.runtime_teacher is not None:
            return self.runtime_teacher(image)
        feat = self.teacher.features(image)[-1]
        x, y = self.teacher.head_forward([feat])
        return {"feat": feat, "simcc_x": x, "simcc_y": y}

    def teacher_outputs(self, image: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
        """Detached (last teacher map B×Ct×h×w, x logits B×K×Wx, y logits B×K×Wy), from the cache when it has them.
        A runtime teacher has no map (None) and gives logits converted from its outputs."""
        out = cached_forward(self.cache, self._teacher_forward, image)
        return out.get("feat"), out["simcc_x"], out["simcc_y"]

    def distill_terms(
        self,
        student_feat: Tensor | None,
        teacher_feat: Tensor | None,
        student_logits: tuple[Tensor, Tensor],
        teacher_logits: tuple[Tensor, Tensor],
        epoch: int,
    ) -> dict[str, Tensor]:
        """The distillation terms of one batch: ``loss_fea`` (stage 1) and ``loss_kd``, decay applied."""
        factor = self.decay_factor(epoch)
        out = {"loss_kd": factor * self.kd_loss(*student_logits, *teacher_logits)}
        if self.stage == 1 and self.fea_loss is not None:
            out = {"loss_fea": factor * self.fea_loss(student_feat, teacher_feat), **out}
        return out

    def losses(self, batch: dict[str, Any], epoch: int) -> dict[str, Tensor]:
        image = batch["image"]
        t_feat, tx, ty = self.teacher_outputs(image)
        if self.stage == 2:
            sx, sy = self.student.head_forward([t_feat])  # the new head on the frozen teacher features
            return self.distill_terms(None, None, (sx, sy), (tx, ty), epoch)
        feats = self.student.features(image)
        sx, sy = self.student.head_forward(feats)
        gt = self.gt_loss(sx, sy, batch["x_labels"], batch["y_labels"], batch["weights"])
        return {"loss_kpt": gt, **self.distill_terms(feats[-1], t_feat, (sx, sy), (tx, ty), epoch)}

    # ------------------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, batch: dict[str, Any], flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
        image = batch["image"]
        x, y = self.student(image)
        if flip_test:
            fx, fy = flip_simcc(*self.student(image.flip(-1)), self.flip_indices)
            x, y = (x + fx) * 0.5, (y + fy) * 0.5
        return self.codec.decode(x.float().cpu().numpy(), y.float().cpu().numpy())

    def export_model(self) -> nn.Module:
        """The student (stage 2: the teacher's backbone + the trained head), a plain RTMPose with ``build_args``."""
        return self.student


# ---------------------------------------------------------------------------------------------- building


def load_teacher(
    path: str, layout: str, input_size: tuple[int, int], which: str = "student", model: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The frozen teacher of ``path`` (checkpoint folder or mmpose ``.pth``) and its meta; checks layout and size.

    Raises ``ValueError`` with the path and the problem.
    """
    from posedistill.engine.checkpoint import is_mmpose_checkpoint, load_model_from_checkpoint

    k = get_layout(layout).num_keypoints
    if is_mmpose_checkpoint(path):
        kw: dict[str, Any] = {"which": which, "layout": layout}
        if model is not None:
            kw.update(model=model, num_keypoints=k, input_size=input_size)
        net, meta = load_model_from_checkpoint(path, **kw)
    else:
        net, meta = load_model_from_checkpoint(path)
    if meta.get("layout") and meta["layout"] != layout:
        raise ValueError(f"{path}: the teacher was trained on layout {meta['layout']!r}, the student uses {layout!r}")
    args = getattr(net, "build_args", {})
    if int(args.get("num_keypoints", -1)) != k:
        raise ValueError(
            f"{path}: the teacher predicts {args.get('num_keypoints')} keypoints, layout {layout!r} has {k}"
        )
    if [int(v) for v in args.get("input_size", [])] != [int(v) for v in input_size]:
        raise ValueError(
            f"{path}: the teacher's input size (w, h) is {args.get('input_size')}, the student's {list(input_size)}; "
            "distillation compares the SimCC bins of the same crop, so they must be equal"
        )
    return freeze(net), meta


def is_runtime_teacher(spec: str) -> bool:
    """A teacher for the torch-free runtime (ncnn / ONNX file, URL, shipped name, optionally ``:flip``) rather
    than a checkpoint (folder with meta.json, ``.pth`` / ``.pt`` / ``.ckpt`` / ``.safetensors``)."""
    from posedistill.infer.estimator import is_checkpoint
    from posedistill.label.teachers import split_options

    model, _ = split_options(spec)
    return not is_checkpoint(model)


def load_runtime_teacher(args: DWPoseArgs, cfg: Any, codec: SimCCCodec) -> RuntimeTeacher:
    """The :class:`RuntimeTeacher` of ``method.args.teacher`` (``model[:flip]``) for the config's student."""
    from posedistill.label.teachers import split_options

    model, options = split_options(str(args.teacher))
    return RuntimeTeacher(
        model, cfg.data.layout, tuple(cfg.input_size), split_ratio=codec.split_ratio, beta=args.beta,
        flip_test=args.teacher_flip_test or options.get("flip", False),
    )  # fmt: skip


def teacher_epochs(meta: dict[str, Any]) -> int | None:
    """Epochs of the run that produced a posedistill checkpoint (None for other checkpoints)."""
    try:
        return int(meta["config"]["train"]["epochs"])
    except (KeyError, TypeError, ValueError):
        return None


def stage2_epochs(stage1_epochs: int, ratio: float) -> int:
    """DWPose's stage-2 length: ``ratio`` (1/5 by default) of stage 1, at least one epoch."""
    return max(1, round(stage1_epochs * ratio))


def from_config(cfg: Any) -> DWPoseMethod:
    """Build from a :class:`posedistill.engine.config.Config` (``method.type: dwpose``).

    Stage 2 with ``epoch_ratio`` and a teacher checkpoint that records its epochs sets ``cfg.train.epochs`` (and
    says so), before the trainer reads it.
    """
    from posedistill.codecs import build_codec
    from posedistill.distill.supervised import build_student
    from posedistill.engine.checkpoint import CheckpointError
    from posedistill.engine.config import ConfigError, parse_section
    from posedistill.models.builder import build_model

    where = getattr(cfg, "source", "<config>")
    args = parse_section(DWPoseArgs, cfg.method.args, "method.args", where)
    if not args.teacher:
        raise ConfigError(
            f"{where}: key 'method.args.teacher': missing; give the teacher checkpoint (a posedistill checkpoint "
            "folder or an mmpose / DWPose .pth; stage 2: the stage-1 result), or for stage 1 a runtime model (ncnn "
            ".param / ONNX file with its sidecar, or a shipped name such as pp-tinypose)"
        )
    try:
        codec = build_codec(cfg.codec_args())
    except ValueError as e:
        raise ConfigError(f"{where}: key 'codec': {e}") from None
    if not isinstance(codec, SimCCCodec):
        raise ConfigError(f"{where}: key 'codec.type': DWPose distils SimCC models; set codec.type: simcc")
    try:
        if is_runtime_teacher(args.teacher):
            if args.stage != 1:
                raise ValueError("a runtime (ncnn / ONNX) model can only be a stage-1 teacher; stage 2 distils the "
                                 "stage-1 checkpoint")  # fmt: skip
            teacher: nn.Module | RuntimeTeacher = load_runtime_teacher(args, cfg, codec)
            meta: dict[str, Any] = {}
        else:
            teacher, meta = load_teacher(args.teacher, cfg.data.layout, cfg.input_size, args.teacher_which,
                                         args.teacher_model)  # fmt: skip
    except (CheckpointError, ValueError, ImportError) as e:
        raise ConfigError(f"{where}: key 'method.args.teacher': {e}") from None

    if args.stage == 1:
        student = build_student(cfg)
    else:
        t_args = dict(teacher.build_args)
        if cfg.model.name != t_args["name"]:
            raise ConfigError(
                f"{where}: key 'model.name': stage 2 trains a new head for the stage-1 model, a {t_args['name']}; "
                f"got {cfg.model.name!r}"
            )
        student = build_model(**t_args)  # fresh head (default init); its backbone is replaced by the teacher's
        e1 = teacher_epochs(meta)
        if args.epoch_ratio is not None and e1 is not None:
            e2 = stage2_epochs(e1, args.epoch_ratio)
            if e2 != cfg.train.epochs:
                print(f"DWPose stage 2: train.epochs = {e2} ({args.epoch_ratio:g} of the stage-1 run's {e1}); "
                      "set method.args.epoch_ratio: null to keep train.epochs", flush=True)  # fmt: skip
            cfg.train.epochs = e2

    cache = None
    if args.cache_dir:
        if isinstance(teacher, RuntimeTeacher):
            fp = teacher.fingerprint(extra=f"dwpose-{RUNTIME_CACHE_NAMES}")
            cache = TeacherCache(Path(args.cache_dir), fp, RUNTIME_CACHE_NAMES, args.cache_dtype)
        else:
            fp = teacher_fingerprint(teacher, extra=f"dwpose-{CACHE_NAMES}")
            cache = TeacherCache(Path(args.cache_dir), fp, CACHE_NAMES, args.cache_dtype)
    return DWPoseMethod(args.stage, student, teacher, codec, cfg.data.layout, cfg.train.epochs, args, cache,
                        meta.get("untrained_keypoints"))  # fmt: skip
