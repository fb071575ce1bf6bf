"""Optimizer param groups, the per-iteration LR schedule and the EMA, against their formulas."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from posedistill.engine.ema import ExpMomentumEMA
from posedistill.engine.optim import build_optimizer, param_groups, split_decay
from posedistill.engine.schedule import LRSchedule


# ------------------------------------------------------------------------------------------------ param groups
def test_rtmpose_decay_split():
    from posedistill.models.builder import build_model

    model = build_model("rtmpose-t", 5, input_size=(48, 64))
    decay, no_decay = split_decay({"": model})
    decay_names = {n for n, _ in decay}
    no_decay_names = {n for n, _ in no_decay}
    # GAU gamma/beta, ScaleNorm g and the residual scale are not torch norm layers: decayed, as in mmengine
    for name in ("head.gau.gamma", "head.gau.beta", "head.mlp.0.g", "head.gau.ln.g", "head.gau.res_scale.scale"):
        assert name in decay_names, name
    assert "head.final_layer.weight" in decay_names and "head.cls_x.weight" in decay_names
    assert "backbone.stem.0.conv.weight" in decay_names
    # every BN weight/bias and every conv bias are not decayed
    assert "head.final_layer.bias" in no_decay_names
    assert "backbone.stem.0.bn.weight" in no_decay_names and "backbone.stem.0.bn.bias" in no_decay_names
    assert any(n.endswith("attention.fc.bias") for n in no_decay_names)
    assert all(n.endswith((".bias", "bn.weight")) for n in no_decay_names)
    bn_params = {
        f"{m}.{p}" for m, mod in model.named_modules() if isinstance(mod, nn.BatchNorm2d) for p in ("weight", "bias")
    }
    assert bn_params <= no_decay_names
    # every trainable parameter is in exactly one group
    assert len(decay) + len(no_decay) == len(list(model.parameters()))
    assert decay_names.isdisjoint(no_decay_names)

    opt = build_optimizer({"student": model}, type="adamw", lr=4e-3, weight_decay=0.05)
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert opt.param_groups[0]["names"][0].startswith("student.")


def test_frozen_and_shared_parameters():
    shared = nn.Linear(3, 3)
    frozen = nn.Linear(3, 3).requires_grad_(False)
    groups = param_groups({"a": nn.Sequential(shared, nn.LayerNorm(3)), "b": nn.Sequential(shared, frozen)}, 0.1)
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == 4  # shared weight+bias once, LayerNorm weight+bias, frozen left out
    assert groups[1]["names"] == ["a.0.bias", "a.1.weight", "a.1.bias"]
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([frozen])


# ------------------------------------------------------------------------------------------------ schedule
def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def _mmengine_chain(lr: float, iters: int, warm: int, f0: float, begin: int, t_max: int, eta: float) -> list[float]:
    """mmengine's LinearLR(start_factor=f0, end=warm) then CosineAnnealingLR(begin, T_max, eta_min) in their
    chainable (recursive) forms, as the runner steps them once per iteration."""
    out, cur = [], lr
    total = warm - 1
    for t in range(iters):
        if t < warm:  # LinearLR, last_step = t
            cur = cur * f0 if t == 0 else cur * (1 + (1 - f0) / (total * f0 + (t - 1) * (1 - f0)))
        if begin <= t < begin + t_max:  # CosineAnnealingLR, last_step = t - begin
            s = t - begin
            if s > 0:
                cur = (1 + math.cos(math.pi * s / t_max)) / (1 + math.cos(math.pi * (s - 1) / t_max)) * (
                    cur - eta
                ) + eta
        out.append(cur)
    return out


def test_schedule_matches_mmengine_chain_and_formula():
    ipe, epochs, warm, lr = 10, 20, 30, 4e-3
    opt = _optimizer(lr)
    sched = LRSchedule(opt, ipe, epochs, kind="cosine", warmup_iters=warm, warmup_start_factor=1e-5,
                       cosine_begin_epoch=None, eta_min_factor=0.05)  # fmt: skip
    got = []
    for _ in range(ipe * epochs):
        got.append(opt.param_groups[0]["lr"])
        sched.step()
    want = _mmengine_chain(lr, ipe * epochs, warm, 1e-5, (epochs // 2) * ipe, (epochs // 2) * ipe, 0.05 * lr)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-15)
    # key iterations against the closed form
    assert got[0] == pytest.approx(lr * 1e-5)
    assert got[15] == pytest.approx(lr * (1e-5 + (1 - 1e-5) * 15 / 29))
    assert got[29] == pytest.approx(lr) and got[30] == pytest.approx(lr) and got[99] == pytest.approx(lr)
    assert got[100] == pytest.approx(lr)  # cosine starts at E/2 = epoch 10
    assert got[150] == pytest.approx(0.05 * lr + 0.95 * lr * 0.5)
    assert got[-1] == pytest.approx(0.05 * lr + 0.95 * lr * (1 + math.cos(math.pi * 99 / 100)) / 2)
    assert sched.factor(200) == pytest.approx(0.05)


def test_schedule_step_constant_and_state():
    opt = _optimizer(1.0)
    sched = LRSchedule(opt, 5, 10, kind="step", warmup_iters=0, milestones=[4, 8], gamma=0.1)
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs[19] == 1.0 and lrs[20] == pytest.approx(0.1) and lrs[39] == pytest.approx(0.1)
    assert lrs[40] == pytest.approx(0.01)
    const = LRSchedule(_optimizer(2.0), 5, 10, kind="constant", warmup_iters=3, warmup_start_factor=0.5)
    assert [const.factor(t) for t in range(4)] == pytest.approx([0.5, 0.75, 1.0, 1.0])
    # state round trip restores the iteration and the lr
    opt2 = _optimizer(1.0)
    other = LRSchedule(opt2, 5, 10, kind="step", warmup_iters=0, milestones=[4, 8], gamma=0.1)
    other.load_state_dict(sched.state_dict())
    assert other.last_iter == 50 and opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


# ------------------------------------------------------------------------------------------------ EMA
class _WithBuffers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.bn = nn.BatchNorm1d(2)


def test_ema_formula_first_copy_and_buffers():
    torch.manual_seed(0)
    model = _WithBuffers()
    ema = ExpMomentumEMA(model, momentum=2e-4, gamma=2000)
    assert ema.momentum_at(1) == pytest.approx((1 - 2e-4) * math.exp(-2 / 2000) + 2e-4)
    values = []
    for step in range(4):
        with torch.no_grad():
            model.lin.weight.add_(1.0)
            model.bn.running_mean.add_(0.5)
            model.bn.num_batches_tracked += 1
        values.append((model.lin.weight.clone(), model.bn.running_mean.clone()))
        ema.update(model)
        if step == 0:  # the first update copies
            assert torch.equal(ema.module.lin.weight, model.lin.weight)
    # replay the formula
    w, rm = values[0]
    for n in range(1, 4):
        m = (1 - 2e-4) * math.exp(-(1 + n) / 2000) + 2e-4
        w = (1 - m) * w + m * values[n][0]
        rm = (1 - m) * rm + m * values[n][1]
    torch.testing.assert_close(ema.module.lin.weight, w, rtol=0, atol=1e-6)
    torch.testing.assert_close(ema.module.bn.running_mean, rm, rtol=0, atol=1e-6)  # float buffers averaged
    assert int(ema.module.bn.num_batches_tracked) == 4  # integer buffers copied
    assert ema.steps == 4

    live = model.lin.weight.clone()
    with ema.swapped_into(model):
        torch.testing.assert_close(model.lin.weight, w, rtol=0, atol=1e-6)
    assert torch.equal(model.lin.weight, live)

    other = ExpMomentumEMA(_WithBuffers())
    other.load_state_dict(ema.state_dict())
    assert other.steps == 4 and torch.equal(other.module.lin.weight, ema.module.lin.weight)


def test_ema_without_buffer_averaging_copies_buffers():
    model = _WithBuffers()
    ema = ExpMomentumEMA(model, update_buffers=False)
    ema.update(model)
    with torch.no_grad():
        model.bn.running_mean.fill_(3.0)
        model.lin.weight.fill_(3.0)
    ema.update(model)
    assert torch.equal(ema.module.bn.running_mean, model.bn.running_mean)
    assert not torch.equal(ema.module.lin.weight, model.lin.weight)
