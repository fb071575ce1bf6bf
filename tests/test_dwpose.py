"""DWPose: loss values against mmpose, the stage-1 decay, stage-2 freezing, strip round trips, teacher caching, and
both stages end to end through ``posedistill distill`` / ``strip`` / ``eval`` on a few LSPet images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from posedistill.codecs import SimCCCodec
from posedistill.distill.dwpose import DWPoseArgs, DWPoseMethod, from_config, stage2_epochs
from posedistill.distill.teacher_cache import TeacherCache, cached_forward, sample_keys, teacher_fingerprint
from posedistill.engine.checkpoint import (
    is_finished,
    load_model_from_checkpoint,
    load_weights,
    read_meta,
    save_checkpoint,
)
from posedistill.engine.config import ConfigError, config_from_dict
from posedistill.engine.optim import build_optimizer
from posedistill.models import build_model
from tests.conftest import shared_path

SIZE = (48, 64)  # (w, h): a 2x2 stride-32 map
LAYOUT = "lsp"  # 14 keypoints


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _codec() -> SimCCCodec:
    return SimCCCodec(SIZE, sigma=(1.2, 1.4))


def _rtm(size: str, seed: int, k: int = 14) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(f"rtmpose-{size}", k, input_size=SIZE)


def _batch(n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    wx, wy = 2 * SIZE[0], 2 * SIZE[1]
    return {
        "image": torch.randn(n, 3, SIZE[1], SIZE[0], generator=g),
        "x_labels": torch.rand(n, 14, wx, generator=g),
        "y_labels": torch.rand(n, 14, wy, generator=g),
        "weights": (torch.rand(n, 14, generator=g) > 0.3).float(),
    }


def _state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


# ------------------------------------------------------------------------------------------------ stage 1


@pytest.fixture(scope="module")
def ref() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(shared_path("reference", "mmpose", "losses.safetensors")))


def test_stage1_terms_equal_mmpose_references(ref):
    """An s student (512 channels) and an l teacher (1024), as in the reference: fea_loss and kd_loss_w0.1."""
    method = DWPoseMethod(1, _rtm("s", 0), _rtm("l", 1), _codec(), LAYOUT, max_epochs=10)
    assert isinstance(method.fea_loss.align, torch.nn.Conv2d)
    assert (method.fea_loss.align.in_channels, method.fea_loss.align.out_channels) == (512, 1024)
    assert method.kd_loss.weight == 0.1 and method.kd_loss.beta == 10.0
    method.fea_loss.align.load_state_dict({"weight": ref["fea_align_weight"], "bias": ref["fea_align_bias"]})
    logits = (ref["kl_pred_x"], ref["kl_pred_y"])
    teacher = (ref["kd_teacher_x"], ref["kd_teacher_y"])
    terms = method.distill_terms(ref["fea_student"], ref["fea_teacher"], logits, teacher, epoch=0)
    assert terms["loss_fea"].item() == pytest.approx(ref["fea_loss"].item(), rel=1e-6)
    assert terms["loss_fea"].item() == pytest.approx(4.617174, rel=1e-6)
    assert terms["loss_kd"].item() == pytest.approx(ref["kd_loss_w0.1"].item(), rel=1e-6)
    assert terms["loss_kd"].item() == pytest.approx(5.908020, rel=1e-6)
    later = method.distill_terms(ref["fea_student"], ref["fea_teacher"], logits, teacher, epoch=7)
    assert later["loss_fea"].item() == pytest.approx(0.3 * 4.617174, rel=1e-6)
    assert later["loss_kd"].item() == pytest.approx(0.3 * 5.908020, rel=1e-6)


def test_decay_schedule_is_one_minus_epoch_over_max_and_leaves_gt_loss_alone():
    e_max = 5
    method = DWPoseMethod(1, _rtm("t", 0), _rtm("s", 1), _codec(), LAYOUT, max_epochs=e_max)
    # 0-based e, constant within an epoch, from 1 down to 1/E
    assert [method.decay_factor(e) for e in range(e_max)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    batch = _batch()
    method.train()
    base = method.losses(batch, 0)
    assert set(base) == {"loss_kpt", "loss_fea", "loss_kd"}
    assert all(v.ndim == 0 and torch.isfinite(v) and v.item() > 0 for v in base.values())
    for e in range(1, e_max):
        out = method.losses(batch, e)
        factor = 1 - e / e_max
        assert out["loss_kpt"].item() == pytest.approx(base["loss_kpt"].item(), rel=1e-6)
        assert out["loss_fea"].item() == pytest.approx(factor * base["loss_fea"].item(), rel=1e-5)
        assert out["loss_kd"].item() == pytest.approx(factor * base["loss_kd"].item(), rel=1e-5)
    nodecay = DWPoseMethod(1, _rtm("t", 0), _rtm("s", 1), _codec(), LAYOUT, 5, DWPoseArgs(decay=False))
    assert nodecay.decay_factor(4) == 1.0


def test_stage1_teacher_frozen_student_and_align_train():
    method = DWPoseMethod(1, _rtm("t", 0), _rtm("s", 1), _codec(), LAYOUT, max_epochs=3)
    assert set(method.trainable_modules()) == {"student", "align"}
    assert set(method.frozen_modules()) == {"teacher"}
    teacher_before = _state(method.teacher)
    opt = build_optimizer(method.trainable_modules(), lr=1e-3)
    method.train()
    assert not method.teacher.training and method.student.training
    for step in range(2):
        loss = sum(method.losses(_batch(seed=step), 0).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is None for p in method.teacher.parameters())
    assert method.fea_loss.align.weight.grad is not None
    after = _state(method.teacher)
    assert all(torch.equal(teacher_before[k], after[k]) for k in after)  # BN statistics included
    # channels equal: no align conv, nothing extra to train
    same = DWPoseMethod(1, _rtm("t", 0), _rtm("t", 1), _codec(), LAYOUT, max_epochs=3)
    assert isinstance(same.fea_loss.align, torch.nn.Identity) and set(same.trainable_modules()) == {"student"}


def test_teacher_must_share_the_input_size():
    teacher = build_model("rtmpose-t", 14, input_size=(64, 64))
    with pytest.raises(ValueError, match="input size"):
        DWPoseMethod(1, _rtm("t", 0), teacher, _codec(), LAYOUT, max_epochs=3)


# ------------------------------------------------------------------------------------------------ stage 2


def test_stage2_only_the_new_head_trains():
    teacher = _rtm("t", 1)
    teacher_before = _state(teacher)
    method = DWPoseMethod(2, _rtm("t", 2), teacher, _codec(), LAYOUT, max_epochs=3)
    assert method.student.backbone is method.teacher.backbone  # shipped = teacher backbone + new head
    assert method.kd_loss.weight == 1.0
    assert set(method.trainable_modules()) == {"head"}
    head_before = _state(method.student.head)
    assert not torch.equal(head_before["cls_x.weight"], teacher_before["head.cls_x.weight"])  # fresh head
    opt = build_optimizer(method.trainable_modules(), lr=1e-3)
    method.train()
    assert not method.student.backbone.training and method.student.head.training
    for step in range(3):
        out = method.losses(_batch(seed=step), epoch=step)
        assert set(out) == {"loss_kd"}  # no GT loss, no FeaLoss
        opt.zero_grad()
        out["loss_kd"].backward()
        for p in method.teacher.parameters():  # the teacher, shared backbone included, gets no gradient
            assert p.grad is None
        opt.step()
    after = _state(method.teacher)
    assert all(torch.equal(teacher_before[k], after[k]) for k in after)
    assert not torch.equal(head_before["cls_x.weight"], method.student.head.cls_x.weight)
    # no decay in stage 2: same loss at every epoch
    method.eval()
    b = _batch(seed=9)
    assert method.losses(b, 0)["loss_kd"].item() == method.losses(b, 2)["loss_kd"].item()
    # the exported model is the teacher backbone + the trained head
    exported = method.export_model().state_dict()
    for k, v in teacher.backbone.state_dict().items():
        assert torch.equal(exported[f"backbone.{k}"], v)


def test_stage2_head_init_option():
    teacher = _rtm("t", 1)
    args = DWPoseArgs(stage=2, init_head_from_teacher=True)
    method = DWPoseMethod(2, _rtm("t", 2), teacher, _codec(), LAYOUT, 3, args)
    x = _batch()["image"]
    method.eval()
    sx, sy = method.student(x)
    tx, ty = teacher(x)
    assert torch.equal(sx, tx) and torch.equal(sy, ty)
    assert method.losses(_batch(), 0)["loss_kd"].item() == pytest.approx(0.0, abs=1e-6)


def test_stage2_epochs():
    assert stage2_epochs(270, 0.2) == 54 and stage2_epochs(420, 0.2) == 84 and stage2_epochs(3, 0.2) == 1


# ------------------------------------------------------------------------------------------------ cache


def test_teacher_cache_returns_the_teachers_outputs(tmp_path):
    teacher = _rtm("t", 3).eval()
    fp = teacher_fingerprint(teacher)
    assert fp == teacher_fingerprint(_rtm("t", 3)) and fp != teacher_fingerprint(_rtm("t", 4))
    method = DWPoseMethod(1, _rtm("t", 0), teacher, _codec(), LAYOUT, max_epochs=3)
    cache = TeacherCache(tmp_path, fp, ("feat", "simcc_x", "simcc_y"))
    images = _batch(6)["image"]
    live = method._teacher_forward(images)
    first = cached_forward(cache, method._teacher_forward, images)
    assert (cache.stats.hits, cache.stats.misses) == (0, 6)
    mixed = torch.cat([images[:3], torch.randn(2, 3, SIZE[1], SIZE[0])])  # 3 stored crops, 2 new ones
    second = cached_forward(cache, method._teacher_forward, mixed)
    assert (cache.stats.hits, cache.stats.misses) == (3, 8)
    for name in ("feat", "simcc_x", "simcc_y"):
        assert torch.equal(first[name], live[name])
        assert torch.allclose(second[name][:3], live[name][:3], atol=1e-6)
    assert len(set(sample_keys(images))) == 6
    cache.close()
    # a new process (new object) finds the file; float16 storage is a separate file
    again = TeacherCache(tmp_path, fp, ("feat", "simcc_x", "simcc_y"))
    out = cached_forward(again, method._teacher_forward, images)
    assert again.stats.hits == 6 and torch.allclose(out["simcc_x"], live["simcc_x"], atol=1e-6)
    half = TeacherCache(tmp_path, fp, ("feat", "simcc_x", "simcc_y"), dtype="float16")
    assert cached_forward(half, method._teacher_forward, images) and half.stats.misses == 6
    # the method's losses are the same with and without the cache
    method.eval()
    plain = method.losses(_batch(6), 0)
    method.cache = again
    cached = method.losses(_batch(6), 0)
    for k in plain:
        assert cached[k].item() == pytest.approx(plain[k].item(), rel=1e-6)


# ------------------------------------------------------------------------------------------------ strip


def test_strip_of_a_distiller_pth_two_stage(tmp_path):
    """An mmpose-style stage-2 distiller checkpoint -> teacher backbone + student head, verified outputs."""
    from posedistill.cli import main

    teacher, student = _rtm("t", 5), _rtm("t", 6)
    state = {f"teacher.{k}": v for k, v in teacher.state_dict().items()}
    state.update({f"student.{k}": v for k, v in student.state_dict().items()})
    state["distill_losses.loss_fea.align.weight"] = torch.zeros(1)
    pth = tmp_path / "dis.pth"
    torch.save({"state_dict": state, "meta": {"epoch": 60}}, pth)
    assert main(["strip", str(pth), str(tmp_path / "out"), "--which", "two_stage", "--layout", LAYOUT]) == 0
    model, meta = load_model_from_checkpoint(tmp_path / "out")
    assert meta["layout"] == LAYOUT and meta["input_size"] == list(SIZE) and meta["codec"]["type"] == "simcc"
    assert not (tmp_path / "out" / "state.pt").exists()
    expect = _rtm("t", 0)
    expect.backbone.load_state_dict(teacher.backbone.state_dict())
    expect.head.load_state_dict(student.head.state_dict())
    x = _batch()["image"]
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), expect.eval()(x)))
    assert main(["strip", str(tmp_path / "missing"), str(tmp_path / "o2")]) == 2


# ------------------------------------------------------------------------------------------------ end to end


def _config(tmp_path: Path, name: str, method: dict, epochs: int, model: str = "rtmpose-t") -> Path:
    joints = str(shared_path("data", "lspet", "joints.mat"))
    cfg = {
        "model": {"name": model, "input_size": list(SIZE)},
        "codec": {"type": "simcc", "sigma": [1.2, 1.4], "split_ratio": 2.0},
        "data": {
            "layout": LAYOUT,
            "train": [{"format": "lsp", "path": joints, "indices": "0:8"}],
            "val": [{"format": "lsp", "path": joints, "indices": "2500:2504"}],
            "aug": {},
        },
        "optim": {"lr": 1e-3},
        "schedule": {"kind": "constant", "warmup_iters": 2},
        "ema": {"enabled": True},
        "train": {
            "epochs": epochs,
            "batch_size": 4,
            "num_workers": 0,
            "progress": False,
            "tensorboard": False,
            "val_interval": 1,
            "log_interval": 1,
            "grad_clip": 1.0,
            "device": "cpu",
        },
        "method": {"type": "dwpose", "args": method},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_distill_both_stages_strip_and_eval_end_to_end(tmp_path):
    from posedistill.cli import main
    from posedistill.engine.builders import checkpoint_meta

    # a teacher checkpoint (RTMPose-s, untrained: only the plumbing is under test)
    teacher_cfg = config_from_dict(yaml.safe_load(_config(tmp_path, "t", {}, 1, "rtmpose-s").read_text()))
    save_checkpoint(tmp_path / "teacher", _rtm("s", 7), {**checkpoint_meta(teacher_cfg), "config": {}})
    s1_args = {"stage": 1, "teacher": str(tmp_path / "teacher"), "cache_dir": str(tmp_path / "c")}
    s1 = _config(tmp_path, "s1", s1_args, 2)
    s2 = _config(tmp_path, "s2", {"stage": 2, "teacher": "replaced-by-then", "epoch_ratio": 0.5}, 5)
    w1, w2 = tmp_path / "w1", tmp_path / "w2"
    rc = main(["distill", str(s1), "--work-dir", str(w1), "--then", str(s2), "--then-work-dir", str(w2)])
    assert rc == 0
    log1 = [json.loads(line) for line in (w1 / "metrics.jsonl").read_text().splitlines()]
    train1 = [r for r in log1 if r["type"] == "train"]
    assert {"loss_kpt", "loss_fea", "loss_kd", "grad_norm"} <= set(train1[0])
    assert read_meta(w1 / "last")["method"] == "dwpose"
    # stage 2 ran 0.5 x 2 = 1 epoch with the KD loss alone
    log2 = [json.loads(line) for line in (w2 / "metrics.jsonl").read_text().splitlines()]
    assert {r["epoch"] for r in log2 if r["type"] == "train"} == {0}
    assert all("loss_kpt" not in r and "loss_kd" in r for r in log2 if r["type"] == "train")
    assert yaml.safe_load((w2 / "config.yaml").read_text())["train"]["epochs"] == 1
    # the stage-2 model = the stage-1 backbone unchanged (BN statistics included) + a trained head
    w_s1, w_s2 = load_weights(w1 / "last"), load_weights(w2 / "last")
    backbone = [k for k in w_s1 if k.startswith("backbone.")]
    assert backbone and all(torch.equal(w_s1[k], w_s2[k]) for k in backbone)
    assert not torch.equal(w_s1["head.cls_x.weight"], w_s2["head.cls_x.weight"])
    # --resume on a finished chain: both stages are complete, so neither trains again
    assert is_finished(w1 / "last") and is_finished(w2 / "last")
    lines = [len((w / "metrics.jsonl").read_text().splitlines()) for w in (w1, w2)]
    argv = ["distill", str(s1), "--work-dir", str(w1), "--then", str(s2), "--then-work-dir", str(w2), "--resume"]
    assert main(argv) == 0
    assert [len((w / "metrics.jsonl").read_text().splitlines()) for w in (w1, w2)] == lines
    assert torch.equal(load_weights(w2 / "last")["head.cls_x.weight"], w_s2["head.cls_x.weight"])
    # strip -> plain checkpoint with identical outputs; eval accepts it
    assert main(["strip", str(w2 / "last"), str(tmp_path / "plain")]) == 0
    plain, meta = load_model_from_checkpoint(tmp_path / "plain")
    src, _ = load_model_from_checkpoint(w2 / "last")
    assert not (tmp_path / "plain" / "state.pt").exists() and meta["stripped_from"] == str(w2 / "last")
    x = _batch()["image"]
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(plain(x), src(x)))
    out = tmp_path / "eval.json"
    assert main(["eval", str(s2), "--checkpoint", str(tmp_path / "plain"), "--out", str(out), "--device", "cpu"]) == 0
    assert "pck@0.2" in json.loads(out.read_text())["metrics"]


def test_config_errors_name_the_key(tmp_path):
    base = yaml.safe_load(_config(tmp_path, "x", {"stage": 1}, 1).read_text())
    with pytest.raises(ConfigError, match=r"method\.args\.teacher"):
        from_config(config_from_dict(base, "x.yaml"))
    base["method"]["args"] = {"stage": 3, "teacher": "t"}
    with pytest.raises(ConfigError, match=r"method\.args\.stage"):
        from_config(config_from_dict(base, "x.yaml"))
    base["method"]["args"] = {"stage": 1, "teacher": str(tmp_path / "nope")}
    with pytest.raises(ConfigError, match=r"method\.args\.teacher"):
        from_config(config_from_dict(base, "x.yaml"))


def test_untrained_keypoints_follow_labels_and_teacher():
    """Stage 1 distils every keypoint: a point is untrained only when no label and no teacher knows it. Stage 2
    learns from the stage-1 model alone and inherits its list."""
    from types import SimpleNamespace

    import numpy as np

    vis = np.full(14, 2.0)
    vis[[12, 13]] = 0  # neck and head top never labelled
    weights = np.ones(14, np.float32)
    weights[0] = 0  # a point with a label but weight 0 is not trained either
    people = SimpleNamespace(instances=[SimpleNamespace(visibility=vis, keypoint_weights=weights)] * 3)
    codec = SimCCCodec(SIZE, (1.5, 1.7))
    s1 = DWPoseMethod(1, _rtm("t", 0), _rtm("s", 1), codec, "lsp", 2, teacher_untrained=[13, 5])
    assert s1.untrained_keypoints(people) == [13]
    assert DWPoseMethod(1, _rtm("t", 0), _rtm("s", 1), codec, "lsp", 2).untrained_keypoints(people) == []
    s2 = DWPoseMethod(2, _rtm("t", 0), _rtm("t", 1), codec, "lsp", 2, teacher_untrained=[0, 12, 13])
    assert s2.untrained_keypoints(people) == [0, 12, 13]
    from posedistill.distill.base import unlabelled_keypoints

    assert unlabelled_keypoints(people.instances) == [0, 12, 13] and unlabelled_keypoints([]) == []
