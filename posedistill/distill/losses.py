"""Losses shared by the training recipes: SimCC KL (RTMPose), logit and feature distillation (DWPose), heatmap MSE.

The reductions are the upstream ones and they differ on purpose (``docs/rtmpose-dwpose.md`` §5):

| loss | per row (one keypoint of one sample) | reduction |
|---|---|---|
| KLDiscretLoss | KL(softmax(β·label) ‖ softmax(β·pred)) | mean over bins, × weight, sum over N·K, x + y, ÷ K |
| KDLoss | KL(softmax(β·teacher) ‖ softmax(β·student)) | sum over bins, sum over K, mean over N, × w, x + y, ÷ K |
| FeaLoss | (align(Fs) − Ft)² | sum over everything, ÷ N, × α |
| HeatmapMSELoss | w·(pred − target)² per pixel | mean over N·K·H·W, × loss_weight |

Terms whose target probability is 0 contribute 0 (``F.kl_div`` uses xlogy), and every log-probability comes from
``log_softmax``, never from ``log(softmax)``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _kl_rows(pred_logits: Tensor, target: Tensor, beta: float, target_is_logits: bool, target_beta: float) -> Tensor:
    """Elementwise KL terms p·(log p − log q) of rows over the last axis, q = softmax(β·pred).

    With ``target_is_logits`` p = softmax(target_beta·target), otherwise ``target`` already holds probabilities.
    """
    log_q = F.log_softmax(pred_logits * beta, dim=-1)
    if target_is_logits:
        return F.kl_div(log_q, F.log_softmax(target * target_beta, dim=-1), reduction="none", log_target=True)
    return F.kl_div(log_q, target, reduction="none")


class KLDiscretLoss(nn.Module):
    """SimCC classification loss of RTMPose (mmpose ``KLDiscretLoss``).

    Args:
        beta: temperature multiplier of the predictions (10 in RTMPose).
        label_softmax: turn the Gaussian labels into a distribution with softmax(label_beta·label); otherwise the
            labels are used as probabilities as they are.
        label_beta: multiplier inside the label softmax (10).
        use_target_weight: multiply each row by its keypoint weight.

    The loss is summed over the batch, so its scale grows with the batch size, as upstream.
    """

    def __init__(
        self, beta: float = 10.0, label_softmax: bool = True, label_beta: float = 10.0, use_target_weight: bool = True
    ) -> None:
        super().__init__()
        self.beta = beta
        self.label_softmax = label_softmax
        self.label_beta = label_beta
        self.use_target_weight = use_target_weight

    def forward(self, pred_x: Tensor, pred_y: Tensor, label_x: Tensor, label_y: Tensor, weights: Tensor) -> Tensor:
        """pred_x/label_x (N, K, Wx), pred_y/label_y (N, K, Wy), weights (N, K) → scalar."""
        k = pred_x.shape[1]
        total = pred_x.new_zeros(())
        for pred, label in ((pred_x, label_x), (pred_y, label_y)):
            rows = _kl_rows(pred, label.to(pred.dtype), self.beta, self.label_softmax, self.label_beta).mean(dim=-1)
            if self.use_target_weight:
                rows = rows * weights.to(rows.dtype)
            total = total + rows.sum()
        return total / k


class KDLoss(nn.Module):
    """DWPose logit distillation between SimCC outputs (``logit_dis_loss.KDLoss``).

    Args:
        weight: loss weight (0.1 in DWPose stage 1, 1.0 in stage 2).
        beta: temperature multiplier for both softmaxes (10, taken from the student's KLDiscretLoss).

    The teacher logits are detached. Every keypoint is distilled: upstream accepts the target weights and
    ignores them, and so does ``forward`` here.
    """

    def __init__(self, weight: float = 0.1, beta: float = 10.0) -> None:
        super().__init__()
        self.weight = weight
        self.beta = beta

    def forward(
        self,
        student_x: Tensor,
        student_y: Tensor,
        teacher_x: Tensor,
        teacher_y: Tensor,
        weights: Tensor | None = None,
    ) -> Tensor:
        """student/teacher x (N, K, Wx), y (N, K, Wy); ``weights`` (N, K) is accepted and ignored → scalar."""
        del weights  # upstream DWPose distils invisible and unlabelled keypoints too
        k = student_x.shape[1]
        total = student_x.new_zeros(())
        for s, t in ((student_x, teacher_x), (student_y, teacher_y)):
            rows = _kl_rows(s, t.detach().to(s.dtype), self.beta, True, self.beta).sum(dim=-1)  # (N, K)
            total = total + self.weight * rows.sum(dim=1).mean()
        return total / k


class FeaLoss(nn.Module):
    """DWPose feature distillation on the last backbone map (``fea_dis_loss.FeaLoss``).

    Args:
        student_channels: Cs of the student map.
        teacher_channels: Ct of the teacher map. When they differ a trainable 1×1 conv (with bias, PyTorch's
            default init) maps Cs → Ct; otherwise the student map is compared as it is.
        alpha: loss weight (7e-5).

    The value is α·Σ(align(Fs) − Ft)² / N with N the batch size. The teacher map is detached.
    """

    def __init__(self, student_channels: int, teacher_channels: int, alpha: float = 7e-5) -> None:
        super().__init__()
        self.alpha = alpha
        if student_channels != teacher_channels:
            self.align: nn.Module = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
        else:
            self.align = nn.Identity()

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """student (N, Cs, H, W), teacher (N, Ct, H, W) → scalar."""
        diff = self.align(student) - teacher.detach().to(student.dtype)
        return self.alpha * diff.pow(2).sum() / teacher.shape[0]


class HeatmapMSELoss(nn.Module):
    """Target-weighted heatmap MSE, mmpose 1.x ``KeypointMSELoss``: mean over N·K·H·W of w·(pred − target)²,
    times ``loss_weight``. The weight multiplies the squared error once and there is no ½.

    The older HRNet ``JointsMSELoss`` (used by OKDHP) is ½·mean of (w·pred − w·target)², which for 0/1 weights
    is this loss with ``loss_weight=0.5``.
    """

    def __init__(self, use_target_weight: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        """pred, target (N, K, H, W); weights (N, K), required when use_target_weight → scalar."""
        err = (pred - target.to(pred.dtype)).pow(2)
        if self.use_target_weight:
            if weights is None:
                raise ValueError("HeatmapMSELoss(use_target_weight=True) needs weights of shape (N, K)")
            if tuple(weights.shape) != tuple(pred.shape[:2]):
                raise ValueError(f"weights must have shape {tuple(pred.shape[:2])}, got {tuple(weights.shape)}")
            err = err * weights.to(err.dtype).reshape(*weights.shape, *([1] * (pred.ndim - 2)))
        return err.mean() * self.loss_weight
