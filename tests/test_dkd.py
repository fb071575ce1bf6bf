"""DKD: batched kernel matching, the kernel chain, the temporal discriminator game, clips, video metrics, the
online estimator and exact resume of a DKD training with its discriminator (tiny models, tiny clips)."""

from __future__ import annotations

import io
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from posedistill.codecs import HeatmapCodec
from posedistill.data.augment import AugConfig
from posedistill.data.clips import (
    ClipDataset,
    clip_windows,
    group_tracks,
    map_instances,
    read_jhmdb_splits,
    read_penn_action_split,
    read_sub_jhmdb,
    segment_prefixes,
)
from posedistill.data.instance import make_instance
from posedistill.distill.dkd import Adversary, DKDArgs, DKDMethod
from posedistill.engine.optim import build_optimizer
from posedistill.errors import PoseDataError
from posedistill.eval.video import dkd_run_flops, flops_per_frame, instances_pck, time_per_frame, video_pck
from posedistill.infer.video_estimator import VideoPoseEstimator, crop_person
from posedistill.layouts import get_layout
from posedistill.models.dkd import (
    DKDInit,
    DKDStep,
    KernelMatching,
    build_dkd,
    dkd_flops,
    encoder_state_from_model,
    match_depthwise,
    match_kernels,
)
from posedistill.models.temporal_discriminator import TemporalDiscriminator, began_update

TINY = {"name": "simplebaseline-res18", "base_channels": 4, "deconv_out_channels": [8, 8, 8]}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models on a shared machine: intra-op threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net(k: int = 17, mode: str = "per_joint", seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_dkd(k, (64, 64), initializer=TINY, encoder=TINY, kernel_mode=mode, **kw)


def gaussian_clips(b: int, t: int, k: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    """B×T×K×size×size Gaussian blobs drifting slowly: 'real' heatmap clips."""
    g = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size]
    out = np.zeros((b, t, k, size, size), np.float32)
    for i in range(b):
        start = g.uniform(2, size - 3, (k, 2))
        vel = g.uniform(-0.3, 0.3, (k, 2))
        for s in range(t):
            c = start + vel * s
            out[i, s] = np.exp(-((xs - c[:, 0, None, None]) ** 2 + (ys - c[:, 1, None, None]) ** 2) / 2.0)
    return torch.from_numpy(out)


# ------------------------------------------------------------------------------------------------ matching
def test_batched_matching_equals_explicit_per_joint_conv2d():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 6, 9, 11, generator=g)
    kernels = torch.randn(3, 4, 6, 5, 5, generator=g)
    out = match_kernels(feats, kernels)
    ref = torch.stack([
        torch.stack([F.conv2d(feats[b : b + 1], kernels[b, j : j + 1], padding=2)[0, 0] for j in range(4)])
        for b in range(3)
    ])  # fmt: skip
    assert out.shape == (3, 4, 9, 11)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)

    dw = torch.randn(3, 6, 3, 3, generator=g)
    ref_dw = torch.stack([
        torch.cat([F.conv2d(feats[b : b + 1, c : c + 1], dw[b, c][None, None], padding=1)[0] for c in range(6)])
        for b in range(3)
    ])  # fmt: skip
    torch.testing.assert_close(match_depthwise(feats, dw), ref_dw, rtol=1e-5, atol=1e-5)

    with pytest.raises(ValueError, match="odd"):
        match_kernels(feats, torch.randn(3, 4, 6, 4, 4))
    with pytest.raises(ValueError, match="B×K×C×k×k"):
        match_kernels(feats, torch.randn(2, 4, 6, 3, 3))


def test_kernel_matching_adds_static_kernels_and_loads_a_head():
    torch.manual_seed(0)
    m = KernelMatching(6, 4, 3, "per_joint", static_kernels=True)
    feats, dyn = torch.randn(2, 6, 7, 7), torch.randn(2, 4, 6, 3, 3)
    torch.testing.assert_close(m(feats, dyn), match_kernels(feats, dyn + m.static) + m.bias[:, None, None])
    # a per-frame model's 1x1 head in the centre tap: zero distilled kernels give exactly that head
    head = torch.nn.Conv2d(6, 4, 1)
    m.load_head(head.weight.detach(), head.bias.detach())
    torch.testing.assert_close(m(feats, torch.zeros_like(dyn)), head(feats), rtol=1e-5, atol=1e-6)
    md = KernelMatching(6, 4, 3, "depthwise")
    md.load_head(head.weight.detach(), head.bias.detach())
    torch.testing.assert_close(md(feats, torch.zeros(2, 6, 3, 3)), head(feats), rtol=1e-5, atol=1e-6)


def test_distilled_kernels_are_attention_weighted_soft_crops():
    net = tiny_net(k=3)
    d = net.distillator.eval()
    feats, maps = torch.randn(2, 8, 6, 6), torch.rand(2, 3, 6, 6)
    kernels = d(feats, maps)
    assert kernels.shape == (2, 3, 8, 3, 3)
    attn, g = d.attention(feats, maps)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 3))
    value = F.pad(d.value(g), (1, 1, 1, 1))  # zero padding as unfold(padding=1)
    ref = torch.zeros_like(kernels)
    for b in range(2):
        for j in range(3):
            for p in range(36):
                y, x = divmod(p, 6)
                ref[b, j] += attn[b, j, p] * value[b, :, y : y + 3, x : x + 3] * d.gain[j]
    torch.testing.assert_close(kernels, ref, rtol=1e-4, atol=1e-6)
    # the heatmap prior: a sharp peak makes the kernel the crop around the peak
    peaked = torch.zeros(2, 3, 6, 6)
    peaked[:, :, 2, 4] = 50.0
    attn, _ = d.attention(feats, peaked)
    assert (attn[:, :, 2 * 6 + 4] > 0.99).all()


# ------------------------------------------------------------------------------------------------ network
def test_clip_forward_equals_the_online_chain_and_reinit_schedules():
    net = tiny_net().eval()
    clip = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        out = net(clip)
        h, f = net.initial(clip[:, 0])
        chain = [h]
        for t in range(1, 4):
            h, f = net.step(clip[:, t], f, h)
            chain.append(h)
        torch.testing.assert_close(out, torch.stack(chain, 1), rtol=1e-5, atol=1e-6)
        maps, flags = net.run_sequence(clip.transpose(0, 1), reinit_every=None, min_confidence=None)
        torch.testing.assert_close(maps.transpose(0, 1), out, rtol=1e-5, atol=1e-6)
        assert flags.tolist() == [[True, True], [False, False], [False, False], [False, False]]
        maps, flags = net.run_sequence(clip.transpose(0, 1), reinit_every=2, min_confidence=None)
        assert flags[:, 0].tolist() == [True, False, True, False]
        torch.testing.assert_close(maps[2], net.initial(clip[:, 2])[0])
        torch.testing.assert_close(maps.transpose(0, 1), net(clip, reinit=[True, False, True, False]))
        _, flags = net.run_sequence(clip.transpose(0, 1), reinit_every=None, min_confidence=1e9)
        assert flags.all()
    assert out.shape == (2, 4, 17, 16, 16)


def test_gradients_reach_the_distillator_through_the_chain():
    net = tiny_net()
    net.initializer.requires_grad_(False)
    clip = torch.randn(2, 4, 3, 64, 64)
    out = net(clip)
    target = torch.rand_like(out)
    ((out[:, 1:] - target[:, 1:]) ** 2).mean().backward()
    for name, p in [*net.distillator.named_parameters(), *net.matching.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in net.initializer.parameters())
    # the last frame depends on the first frame's image through the kernel chain
    clip = torch.randn(1, 3, 3, 64, 64, requires_grad=True)
    net(clip)[:, 2].sum().backward()
    assert clip.grad[:, 0].abs().sum() > 0


def test_flops_and_build_args():
    net = tiny_net()
    net.eval()
    fl = dkd_flops(net, (64, 64))
    assert not any(m.training for m in net.modules())  # counting leaves the network's mode alone
    assert fl["init_frame"] == fl["initializer"] + fl["encoder"]
    assert fl["encoder"] < fl["step"] < fl["init_frame"] + fl["step"]
    again = build_dkd(**net.build_args)
    assert again.build_args == net.build_args
    with pytest.raises(ValueError, match="SimCC"):
        build_dkd(17, (64, 64), initializer={"name": "rtmpose-t"}, encoder=TINY)
    with pytest.raises(TypeError, match="backbone"):
        build_dkd(17, (64, 64), initializer=TINY, encoder={"name": "hourglass-1stack"})


def test_encoder_loads_a_per_frame_model_and_steps_export_to_onnx():
    from posedistill.models import build_model

    small = build_model(TINY["name"], 17, (64, 64), **{k: v for k, v in TINY.items() if k != "name"}).eval()
    net = tiny_net(seed=1).eval()
    net.encoder.load_state_dict(encoder_state_from_model(small.state_dict()), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.encoder(x), small.head.deconv_layers(small.backbone(x)[-1]))
        h, f = DKDInit(net)(x)
    ort = pytest.importorskip("onnxruntime")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(DKDStep(net).eval(), (x, f, h), buf, dynamo=False, opset_version=17,
                          input_names=["input", "prev_features", "prev_heatmaps"],
                          output_names=["heatmaps", "features"])  # fmt: skip
    sess = ort.InferenceSession(buf.getvalue())
    got = sess.run(None, {"input": x.numpy(), "prev_features": f.numpy(), "prev_heatmaps": h.numpy()})
    with torch.no_grad():
        want = net.step(x, f, h)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ adversary
def test_discriminator_and_generator_losses_move_in_opposite_directions():
    torch.manual_seed(0)
    real = gaussian_clips(4, 3, 2, seed=0)
    fake0 = torch.rand(4, 3, 2, 8, 8) * 0.5
    disc = TemporalDiscriminator(3, 2, (8, 8), channels=8, hidden=8, num_down=1, pool=1)
    adv = Adversary(disc, lr=2e-3, k_init=0.5, lambda_k=0.0)

    def losses(fake: torch.Tensor) -> tuple[float, float]:
        with torch.no_grad():
            e_real, e_fake = adv.energy(real), adv.energy(fake)
        return float(e_real - adv.k * e_fake), float(e_fake)  # (discriminator loss, generator loss)

    d0, g0 = losses(fake0)
    for _ in range(25):
        adv.update(real, fake0)
    d1, g1 = losses(fake0)
    assert d1 < d0 and g1 > g0  # discriminator steps: its loss falls, the generator's rises

    fake = fake0.clone().requires_grad_(True)
    opt = torch.optim.SGD([fake], lr=1.0)
    for _ in range(25):
        opt.zero_grad()
        adv.energy(fake).backward()
        opt.step()
    d2, g2 = losses(fake.detach())
    assert g2 < g1 and d2 > d1  # generator steps: its loss falls, the discriminator's rises
    assert all(p.grad is None and not p.requires_grad for p in disc.parameters())


def test_began_balance_and_adversary_state_in_the_state_dict():
    k, m = began_update(0.5, energy_real=0.2, energy_fake=0.05, gamma=0.5, lambda_k=0.1)
    assert k == pytest.approx(0.5 + 0.1 * (0.1 - 0.05)) and m == pytest.approx(0.2 + 0.05)
    assert began_update(0.0, 0.0, 1.0, 0.5, 1.0)[0] == 0.0 and began_update(1.0, 5.0, 0.0, 0.5, 1.0)[0] == 1.0

    def make() -> Adversary:
        torch.manual_seed(0)
        return Adversary(TemporalDiscriminator(3, 2, (8, 8), 4, 4, 1, 1), lr=1e-2, k_init=0.1)

    real, fake = gaussian_clips(2, 3, 2), torch.rand(2, 3, 2, 8, 8)
    a = make()
    for _ in range(3):
        a.update(real, fake)
    b = make()
    b.load_state_dict(a.state_dict())
    assert float(b.adam_step_0) == 3 and float(b.k) == float(a.k) != pytest.approx(0.1)
    a.update(real, fake)
    b.update(real, fake)  # the restored Adam moments give exactly the same next step
    for (n, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), n


def test_method_losses_trainable_modules_and_predict():
    net = tiny_net()
    codec = HeatmapCodec((64, 64), (16, 16), sigma=1.5)
    method = DKDMethod(net, codec, "coco", DKDArgs(clip_length=3, adv_weight=0.1, disc_channels=4, disc_hidden=4,
                                                   disc_num_down=1))  # fmt: skip
    assert set(method.trainable_modules()) == {"encoder", "distillator", "matching", "adversary"}
    assert set(method.frozen_modules()) == {"initializer"}
    opt = build_optimizer(method.trainable_modules())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not in_opt & {id(p) for p in method.adversary.parameters()}
    assert not in_opt & {id(p) for p in net.initializer.parameters()}
    method.train()
    assert not net.initializer.training and net.encoder.training
    batch = {
        "image": torch.randn(2, 3, 3, 64, 64),
        "heatmaps": gaussian_clips(2, 3, 17, size=16),
        "weights": torch.ones(2, 3, 17),
    }
    out = method.losses(batch, epoch=0)
    assert set(out) == {"loss_kpt", "loss_adv"}
    sum(out.values()).backward()
    assert all(p.grad is None for p in method.adversary.parameters())
    assert float(method.adversary.adam_step_0) == 1 and method.last_adversary_stats["energy_real"] > 0
    method.eval()
    kp, scores = method.predict({"image": batch["image"], "position": [2, 0]})
    with torch.no_grad():
        maps = net(batch["image"])
    want, _ = codec.decode(torch.stack([maps[0, 2], maps[1, 0]]).numpy())
    np.testing.assert_allclose(kp, want)
    assert kp.shape == (2, 17, 2) and scores.shape == (2, 17)


def test_training_resumes_exactly_with_the_discriminator(tmp_path):
    from posedistill.data.synthetic import generate_videos
    from posedistill.engine.builders import build_method
    from posedistill.engine.checkpoint import load_training_state
    from posedistill.engine.config import config_from_dict
    from posedistill.engine.trainer import Trainer, seed_everything

    data = generate_videos(tmp_path / "data", 2, 5, size=(96, 96), difficulty="easy", seed=0)

    def config(epochs: int):
        return config_from_dict({
            "model": {"name": "dkd", "input_size": [64, 64], "args": {"initializer": TINY, "encoder": TINY}},
            "codec": {"type": "heatmap", "heatmap_size": [16, 16], "sigma": 1.5},
            "data": {"layout": "coco", "train": [{"path": str(data), "format": "coco"}],
                     "aug": {"half_body_prob": 0.0, "dropout_prob": 0.0}},
            "optim": {"type": "adam", "lr": 1e-3},
            "schedule": {"kind": "constant", "warmup_iters": 0},  # the same LR whatever train.epochs
            "ema": {"enabled": True, "momentum": 0.1, "gamma": 10.0},
            "train": {"epochs": epochs, "batch_size": 2, "num_workers": 0, "device": "cpu", "progress": False,
                      "tensorboard": False, "checkpoint_interval": 1, "log_interval": 1},
            "method": {"type": "dkd", "args": {"clip_length": 3, "adv_weight": 0.1, "k_init": 0.05,
                                               "disc_channels": 4, "disc_hidden": 4, "disc_num_down": 1}},
        })  # fmt: skip

    def run(work: Path, epochs: int, resume: bool = False) -> None:
        cfg = config(epochs)
        seed_everything(0)
        method = build_method(cfg)
        Trainer(cfg, method, method.build_train_set(cfg), work_dir=work, verbose=False).fit(resume=resume)

    run(tmp_path / "a", 2)
    run(tmp_path / "b", 1)
    run(tmp_path / "b", 2, resume=True)
    a, b = load_training_state(tmp_path / "a" / "last"), load_training_state(tmp_path / "b" / "last")
    assert a["epoch"] == b["epoch"] == 2
    steps = float(a["modules"]["adversary"]["adam_step_0"])
    assert steps == a["global_iter"] > 0 and float(a["modules"]["adversary"]["energy_real"]) > 0
    for name in a["modules"]:
        for key, value in a["modules"][name].items():
            torch.testing.assert_close(b["modules"][name][key], value, rtol=1e-6, atol=1e-7, msg=f"{name}.{key}")


# ------------------------------------------------------------------------------------------------ clips
def _record(video: str, frame: int, track: int = 0, layout: str = "coco", x: float = 10.0):
    k = get_layout(layout).num_keypoints
    kp = np.stack([np.linspace(x, x + 30, k), np.linspace(5, 60, k)], 1)
    return make_instance(f"/nonexistent/{video}/{frame}.jpg", [x, 5, 30, 55], kp, np.full(k, 2.0), layout,
                         image_size=(96, 96), video_id=video, frame_index=frame, track_id=track)  # fmt: skip


def test_tracks_windows_and_segments():
    recs = [_record("v", f) for f in (4, 0, 1, 2, 5)] + [_record("v", f, track=1) for f in (0, 1)]
    tracks = group_tracks(recs)
    assert [[recs[i].frame_index for i in t] for t in tracks] == [[0, 1, 2], [4, 5], [0, 1]]
    assert [[recs[i].frame_index for i in t] for t in group_tracks(recs, max_gap=2)] == [[0, 1, 2, 4, 5], [0, 1]]
    assert clip_windows([[0, 1, 2, 3]], 3) == [[0, 1, 2], [1, 2, 3]]
    assert clip_windows([[0, 1, 2, 3, 4]], 2, stride=2) == [[0, 1], [2, 3]]
    assert segment_prefixes([[7, 8, 9, 10]], 2) == [([7], 0), ([7, 8], 1), ([9], 0), ([9, 10], 1)]
    with pytest.raises(PoseDataError, match="two records"):
        group_tracks([_record("v", 0), _record("v", 0)])


def test_clip_dataset_applies_one_augmentation_per_clip(tmp_path):
    from posedistill.data.readers import read_coco
    from posedistill.data.synthetic import generate_videos

    recs = read_coco(generate_videos(tmp_path, 1, 4, size=(96, 96), difficulty="easy", seed=3), layout="coco")
    codec = HeatmapCodec((64, 64), (16, 16), sigma=1.5)
    plain = ClipDataset(recs, codec, (64, 64), clip_length=3, train=False)
    none = AugConfig(flip_prob=0.0, shift_prob=0.0, scale_prob=0.0, rotate_prob=0.0, hue_delta=0, saturation_delta=0,
                     value_delta=0, blur_prob=0.0, median_blur_prob=0.0, dropout_prob=0.0)  # fmt: skip
    flipped = ClipDataset(recs, codec, (64, 64), clip_length=3, train=True, aug=replace(none, flip_prob=1.0))
    jitter = ClipDataset(recs, codec, (64, 64), clip_length=3, train=True,
                         aug=replace(none, scale_prob=1.0, rotate_prob=1.0, rotate_factor=40.0))  # fmt: skip
    assert len(plain) == 2
    p, f, j = plain[0], flipped[0], jitter[0]
    assert p["image"].shape == (3, 3, 64, 64) and p["heatmaps"].shape == (3, 17, 16, 16)
    assert p["weights"].shape == (3, 17)
    assert p["index"].tolist() == [0, 1, 2] and p["position"] == 2
    flip = get_layout("coco").flip_indices
    vis = p["visibility"] > 0
    mirrored = 64.0 - p["keypoints"][:, list(flip), 0]
    assert f["flip"] and torch.allclose(f["keypoints"][..., 0][vis[:, list(flip)]], mirrored[vis[:, list(flip)]],
                                        atol=1e-3)  # fmt: skip
    ratio = j["frame_scale"] / p["frame_scale"]
    assert np.allclose(ratio, ratio[0]) and not np.allclose(ratio, 1.0)  # same zoom on every frame
    assert j["rotation"] != 0.0
    # frames mode: one item per record, its segment up to it, padded with the record's own frame
    frames = ClipDataset(recs, codec, (64, 64), clip_length=3, mode="frames", train=False)
    assert len(frames) == 4 and frames.rows.tolist() == [0, 1, 2, 3]
    item = frames[1]
    assert (item["position"], item["length"], item["index"]) == (1, 2, 1)
    assert torch.equal(item["image"][2], item["image"][1]) and torch.equal(item["image"][0], p["image"][0])
    assert frames[3]["position"] == 0  # a new segment starts at the 4th frame
    np.testing.assert_allclose(item["center"], p["frame_center"][1])


def test_sub_jhmdb_split_files(tmp_path):
    splits = tmp_path / "JHMDB" / "sub_splits"
    splits.mkdir(parents=True)
    (splits / "catch_test_split1.txt").write_text("vidA.avi 1\nvidB.avi 2\n\n")
    (splits / "run_test_split1.txt").write_text("vidC.avi 1 \nvidD.avi 0\n")
    (splits / "run_test_split2.txt").write_text("vidC.avi 2\n")
    assert read_jhmdb_splits(splits, 1) == {"catch": {"vidA": 1, "vidB": 2}, "run": {"vidC": 1, "vidD": 0}}
    assert read_jhmdb_splits(splits, 2) == {"run": {"vidC": 2}}
    rng = np.random.default_rng(0)
    for action, video in (("catch", "vidA"), ("catch", "vidB"), ("run", "vidC"), ("run", "vidD")):
        d = tmp_path / "JHMDB" / "joint_positions" / action / video
        d.mkdir(parents=True)
        scipy.io.savemat(d / "joint_positions.mat", {"pos_img": rng.uniform(20, 200, (2, 15, 3))})
    train = read_sub_jhmdb(tmp_path / "JHMDB", split=1, subset="train")
    assert sorted({r.video_id for r in train}) == ["catch/vidA", "run/vidC"] and len(train) == 6
    assert train[0].image_path.endswith("Rename_Images/catch/vidA/00001.png") and train[0].layout == "jhmdb"
    test = read_sub_jhmdb(tmp_path / "JHMDB", split=1, subset="test")
    assert {r.video_id for r in test} == {"catch/vidB"}
    assert len(group_tracks(train)) == 2
    (splits / "bad_test_split3.txt").write_text("vidA.avi train\n")
    with pytest.raises(PoseDataError, match="line 1"):
        read_jhmdb_splits(splits, 3)
    (splits / "bad_test_split3.txt").write_text("vidZ.avi 1\n")
    with pytest.raises(PoseDataError, match="missing"):
        read_sub_jhmdb(tmp_path / "JHMDB", split=3)


def test_penn_action_split_and_layout_mapping(tmp_path):
    labels = tmp_path / "Penn_Action" / "labels"
    labels.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for clip, flag in (("0001", 1), ("0002", -1)):
        scipy.io.savemat(labels / f"{clip}.mat", {
            "x": rng.uniform(10, 100, (2, 13)), "y": rng.uniform(10, 100, (2, 13)), "visibility": np.ones((2, 13)),
            "bbox": np.tile([5.0, 5.0, 110.0, 110.0], (2, 1)), "train": flag, "nframes": 2,
            "dimensions": [120, 160, 2],
        })  # fmt: skip
    train = read_penn_action_split(tmp_path / "Penn_Action", "train")
    assert {r.video_id for r in train} == {"0001"} and len(train) == 2
    assert len(read_penn_action_split(tmp_path / "Penn_Action", "all")) == 4
    coco = map_instances(train, "coco")
    assert coco[0].layout == "coco" and coco[0].keypoints.shape == (17, 2)
    pen, co = get_layout("penn_action"), get_layout("coco")
    np.testing.assert_allclose(coco[0].keypoints[co.index("left_wrist")], train[0].keypoints[pen.index("left_wrist")])
    assert coco[0].visibility[co.index("left_eye")] == 0  # not in Penn Action: never scored


# ------------------------------------------------------------------------------------------------ metrics
def test_video_pck_by_box_and_torso():
    lay = get_layout("coco")
    gt = np.zeros((2, 17, 2))
    gt[:, lay.index("left_shoulder")] = (0.0, 0.0)
    gt[:, lay.index("right_hip")] = (0.0, 10.0)  # torso 10 px
    pred = gt.copy()
    pred[:, :, 0] += 3.0  # 3 px off everywhere
    mask = np.ones((2, 17), bool)
    mask[1, 0] = False
    boxes = np.array([[0, 0, 10, 20], [0, 0, 10, 10]], float)  # box norm 20 and 10
    res = video_pck(pred, gt, mask, boxes, "coco")
    per_box = np.array([3 / 20 < 0.2, 3 / 10 < 0.2], float)
    joint0 = per_box[0]  # joint 0 only labelled in the first record
    others = per_box.mean()
    assert res["pck@0.2"] == pytest.approx((joint0 + 16 * others) / 17)
    assert res["pck@0.2/per_joint"]["nose"] == joint0 and res["pck@0.2/per_joint"]["left_wrist"] == 0.5
    assert res["pck@0.2/torso"] == 0.0  # 3 px > 0.2 x 10 px
    assert res["num_records"] == 2 and res["num_joints"] == 17
    recs = [_record("v", 0), _record("v", 1)]
    ok = instances_pck(recs, np.stack([r.keypoints for r in recs]), "coco")
    assert ok["pck@0.2"] == 1.0 and ok["pck@0.2/torso"] == 1.0


def test_per_frame_cost_helpers():
    assert flops_per_frame(10.0, 1.0, num_init=1, num_frames=10) == pytest.approx(1.9)
    assert dkd_run_flops(10.0, 1.0, 10, 1, num_redone=2) == pytest.approx(1.9 + 2.0)
    with pytest.raises(ValueError):
        flops_per_frame(1, 1, 5, 4)
    ticks = iter(np.arange(0, 100, 0.5))
    seen: list[int] = []
    res = time_per_frame(seen.append, 4, warmup=1, repeats=2, clock=lambda: float(next(ticks)))
    assert seen == [0, 0, 1, 2, 3, 0, 1, 2, 3] and res["ms_per_frame"] == pytest.approx(125.0) and res["frames"] == 8


# ------------------------------------------------------------------------------------------------ estimator
def test_estimator_keeps_per_track_state_and_resets_between_videos():
    net = tiny_net().eval()
    codec = HeatmapCodec((64, 64), (16, 16), sigma=1.5)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(4)]
    boxes = {"a": [10, 10, 40, 60], "b": [60, 20, 30, 50]}
    est = VideoPoseEstimator(net, codec, reinit_every=None, min_confidence=None)

    first = est.step(frames[0], boxes)
    assert [p.initialised for p in first] == [True, True] and set(est.states) == {"a", "b"}
    state_a = est.states["a"]
    second = est.step(frames[1], boxes)
    assert [p.initialised for p in second] == [False, False] and est.states["a"].since_init == 1
    # the tracked frame is the DKD step from the stored state of that track
    x, center, scale = crop_person(frames[1], np.asarray(boxes["a"], np.float32), (64, 64), est._lut)
    with torch.no_grad():
        h, _ = net.step(x[None], state_a.features[None], state_a.heatmaps[None])
    kp, _ = codec.decode(h.numpy())
    from posedistill.data.transforms import crop_to_image

    np.testing.assert_allclose(second[0].keypoints, crop_to_image(kp, center[None], scale[None], (64, 64))[0],
                               rtol=1e-5, atol=1e-3)  # fmt: skip
    est.step(frames[2], {"a": boxes["a"]})
    assert set(est.states) == {"a"}  # b left: its state is dropped
    back = est.step(frames[3], boxes)
    assert [p.initialised for p in back] == [False, True]

    fresh = VideoPoseEstimator(net, codec, reinit_every=None, min_confidence=None).step(frames[2], boxes)
    new = est.step(frames[2], boxes, new_video=True)
    assert [p.initialised for p in new] == [True, True] and est.frame == 1
    for p, q in zip(new, fresh):
        np.testing.assert_array_equal(p.keypoints, q.keypoints)
    est.reset()
    assert not est.states and est.frame == 0
    assert est.stats.person_frames == 9 and est.stats.initialised == 5

    periodic = VideoPoseEstimator(net, codec, reinit_every=2, min_confidence=None)
    flags = [periodic.step(frames[t], np.asarray([boxes["a"]]))[0].initialised for t in range(4)]
    assert flags == [True, False, True, False]
    redo = VideoPoseEstimator(net, codec, reinit_every=None, min_confidence=1e9)
    assert all(redo.step(frames[t], [boxes["a"]])[0].initialised for t in range(3)) and redo.stats.redone == 2
    with pytest.raises(ValueError, match="4 finite"):
        est.step(frames[0], {"a": [1, 2, 3]})
