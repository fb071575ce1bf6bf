"""Shared losses: mmpose / DWPose reference values, reductions, masking, zero cases and numerical safety."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from posedistill.distill.losses import FeaLoss, HeatmapMSELoss, KDLoss, KLDiscretLoss
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def ref() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(shared_path("reference", "mmpose", "losses.safetensors")))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return abs(a.item() - b.item()) / abs(b.item())


def test_kl_discret_loss_equals_reference(ref):
    loss = KLDiscretLoss(beta=10.0, label_softmax=True, label_beta=10.0, use_target_weight=True)
    value = loss(
        ref["kl_pred_x"], ref["kl_pred_y"], ref["encode_x_labels"], ref["encode_y_labels"], ref["encode_weights"]
    )
    assert value.dtype == torch.float32 and value.ndim == 0
    assert _rel(value, ref["kl_loss"]) < 1e-6
    assert value.item() == pytest.approx(0.1687391, rel=1e-6)


def test_kd_loss_equals_reference_and_ignores_weights(ref):
    loss = KDLoss(weight=0.1, beta=10.0)
    args = (ref["kl_pred_x"], ref["kl_pred_y"], ref["kd_teacher_x"], ref["kd_teacher_y"])
    value = loss(*args)
    assert _rel(value, ref["kd_loss_w0.1"]) < 1e-6
    assert value.item() == pytest.approx(5.908020, rel=1e-6)
    assert loss(*args, ref["encode_weights"]).item() == value.item()
    assert loss(*args, torch.zeros_like(ref["encode_weights"])).item() == value.item()
    assert KDLoss(weight=1.0)(*args).item() == pytest.approx(10 * value.item(), rel=1e-6)


def test_fea_loss_equals_reference(ref):
    loss = FeaLoss(student_channels=512, teacher_channels=1024, alpha=7e-5)
    assert isinstance(loss.align, torch.nn.Conv2d) and loss.align.bias is not None
    loss.align.load_state_dict({"weight": ref["fea_align_weight"], "bias": ref["fea_align_bias"]})
    value = loss(ref["fea_student"], ref["fea_teacher"])
    assert _rel(value, ref["fea_loss"]) < 1e-6
    assert value.item() == pytest.approx(4.617174, rel=1e-6)


def test_kl_discret_reduction_by_hand():
    """Mean over bins, × weight, sum over N·K, x + y, ÷ K, written out with explicit softmax sums."""
    g = torch.Generator().manual_seed(0)
    px, py = torch.randn(3, 5, 12, generator=g, dtype=torch.float64), torch.randn(3, 5, 9, generator=g).double()
    lx, ly = torch.rand(3, 5, 12, generator=g).double(), torch.rand(3, 5, 9, generator=g).double()
    w = torch.rand(3, 5, generator=g).double()
    expect = 0.0
    for pred, label in ((px, lx), (py, ly)):
        p = torch.exp(10 * label) / torch.exp(10 * label).sum(-1, keepdim=True)
        q = torch.exp(10 * pred) / torch.exp(10 * pred).sum(-1, keepdim=True)
        expect += ((p * (p.log() - q.log())).mean(-1) * w).sum()
    expect /= 5
    got = KLDiscretLoss()(px, py, lx, ly, w)
    assert got.item() == pytest.approx(expect.item(), rel=1e-12)
    unweighted = KLDiscretLoss(use_target_weight=False)(px, py, lx, ly, w)
    assert unweighted.item() == pytest.approx(KLDiscretLoss()(px, py, lx, ly, torch.ones_like(w)).item(), rel=1e-12)


def test_kd_reduction_by_hand():
    g = torch.Generator().manual_seed(1)
    sx, sy, tx, ty = (torch.randn(4, 3, n, generator=g, dtype=torch.float64) for n in (10, 8, 10, 8))
    expect = 0.0
    for s, t in ((sx, tx), (sy, ty)):
        p, log_q = F.softmax(10 * t, -1), F.log_softmax(10 * s, -1)
        expect += 0.5 * (p * (p.log() - log_q)).sum(-1).sum(-1).mean()
    assert KDLoss(weight=0.5)(sx, sy, tx, ty).item() == pytest.approx(expect.item() / 3, rel=1e-12)


def test_zero_when_prediction_equals_target():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 4, 16, generator=g), torch.randn(2, 4, 20, generator=g)
    w = torch.ones(2, 4)
    assert KLDiscretLoss()(x, y, x, y, w).abs().item() < 1e-6  # same β on both sides
    assert KDLoss(weight=1.0)(x, y, x, y).abs().item() < 1e-6
    f = torch.randn(2, 8, 3, 3, generator=g)
    assert FeaLoss(8, 8)(f, f).item() == 0.0
    hm = torch.rand(2, 4, 6, 5, generator=g)
    assert HeatmapMSELoss()(hm, hm, w).item() == 0.0


def test_zero_probability_targets_and_large_logits_stay_finite():
    # one-hot labels used as probabilities: every zero-probability bin must contribute exactly 0 (xlogy)
    pred = torch.randn(1, 2, 6, requires_grad=True)
    onehot = torch.zeros(1, 2, 6)
    onehot[0, 0, 2] = onehot[0, 1, 5] = 1.0
    loss = KLDiscretLoss(beta=1.0, label_softmax=False)(pred, pred, onehot, onehot, torch.ones(1, 2))
    log_q = F.log_softmax(pred.detach(), -1)
    expect = 2 * -(log_q[0, 0, 2] + log_q[0, 1, 5]) / 6 / 2  # x and y terms, mean over 6 bins, ÷ K = 2
    assert loss.item() == pytest.approx(expect.item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    # logits large enough to overflow a naive softmax; labels with exact zeros after softmax underflow
    big = torch.tensor([[[1e4, -1e4, 0.0, 5e3]]], requires_grad=True)
    label = torch.tensor([[[0.0, 1.0, 0.0, 0.0]]]) * 100
    for value in (
        KLDiscretLoss()(big, big, label, label, torch.ones(1, 1)),
        KDLoss(weight=1.0)(big, big, big.flip(-1), big.flip(-1)),
    ):
        assert torch.isfinite(value)
        (grad,) = torch.autograd.grad(value, big)
        assert torch.isfinite(grad).all()


def test_kd_teacher_is_detached():
    s = torch.randn(2, 3, 8, requires_grad=True)
    t = torch.randn(2, 3, 8, requires_grad=True)
    KDLoss()(s, s, t, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_fea_loss_identity_when_channels_match():
    loss = FeaLoss(16, 16, alpha=1e-3)
    assert isinstance(loss.align, torch.nn.Identity)
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    g = torch.Generator().manual_seed(3)
    fs, ft = torch.randn(3, 16, 4, 4, generator=g), torch.randn(3, 16, 4, 4, generator=g)
    assert loss(fs, ft).item() == pytest.approx((1e-3 * ((fs - ft) ** 2).sum() / 3).item(), rel=1e-6)
    aligned = FeaLoss(8, 16)
    assert aligned.align.weight.shape == (16, 8, 1, 1)
    assert sum(p.numel() for p in aligned.parameters()) == 16 * 8 + 16
    fs8 = torch.randn(3, 8, 4, 4, generator=g, requires_grad=True)
    aligned(fs8, ft).backward()
    assert aligned.align.weight.grad is not None and fs8.grad is not None


def test_heatmap_mse_matches_mmpose_definition():
    g = torch.Generator().manual_seed(4)
    pred, target = torch.rand(2, 3, 8, 6, generator=g), torch.rand(2, 3, 8, 6, generator=g)
    w = torch.tensor([[1.0, 0.0, 0.5], [1.0, 1.0, 0.0]])
    expect = (((pred - target) ** 2) * w[:, :, None, None]).mean()
    assert HeatmapMSELoss()(pred, target, w).item() == pytest.approx(expect.item(), rel=1e-6)
    assert HeatmapMSELoss(loss_weight=2.0)(pred, target, w).item() == pytest.approx(2 * expect.item(), rel=1e-6)
    unweighted = HeatmapMSELoss(use_target_weight=False)(pred, target, w)
    assert unweighted.item() == pytest.approx(F.mse_loss(pred, target).item(), rel=1e-6)
    assert HeatmapMSELoss()(pred, target, torch.zeros(2, 3)).item() == 0.0
    # HRNet JointsMSELoss: mean over K of 0.5·mean over (batch, pixels) of (w·pred − w·gt)², 0/1 weights
    w01 = (w > 0.7).float()
    joints = sum(
        0.5 * F.mse_loss(pred[:, j] * w01[:, j, None, None], target[:, j] * w01[:, j, None, None]) for j in range(3)
    )
    assert HeatmapMSELoss(loss_weight=0.5)(pred, target, w01).item() == pytest.approx(joints.item() / 3, rel=1e-6)
    with pytest.raises(ValueError, match="needs weights"):
        HeatmapMSELoss()(pred, target)
    with pytest.raises(ValueError, match="weights must have shape"):
        HeatmapMSELoss()(pred, target, torch.ones(2, 4))
