"""OKDHP: multi-branch split, FAU, losses, deployment of a branch as a plain checkpoint."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from posedistill.codecs import HeatmapCodec
from posedistill.distill.okdhp import OKDHPArgs, OKDHPMethod, kd_ramp, spatial_kl
from posedistill.models.fau import FAU, aggregate
from posedistill.models.multibranch import build_multibranch
from tests.conftest import shared_path

K = 14  # the LSP layout
SIZE = 64  # input side; the tiny hourglasses have depth 2
TINY_HG = {"name": "hourglass-3stack", "channels": 16, "depth": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_net(**kw):
    torch.manual_seed(0)
    args = {"num_keypoints": K, "input_size": (SIZE, SIZE), "base": TINY_HG, "num_shared": 1, "fau": {}}
    return build_multibranch(**{**args, **kw})


def tiny_method(net=None, **kw) -> OKDHPMethod:
    codec = HeatmapCodec((SIZE, SIZE), (SIZE // 4, SIZE // 4), sigma=1.0)
    return OKDHPMethod(net or tiny_net(), codec, "lsp", OKDHPArgs(**kw))


def batch(n: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    weights = torch.ones(n, K)
    weights[0, 1] = 0.0
    return {
        "image": torch.randn(n, 3, SIZE, SIZE, generator=g),
        "heatmaps": torch.rand(n, K, SIZE // 4, SIZE // 4, generator=g),
        "weights": weights,
    }


def train_a_bit(method: OKDHPMethod, steps: int = 2) -> None:
    """A few optimizer steps so that branches differ and BN running statistics are not the defaults."""
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    method.train()
    for i in range(steps):
        loss = sum(method.losses(batch(4, i), epoch=5).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    method.eval()


# ---------------------------------------------------------------------------------------------------- FAU


def test_fau_weights_sum_to_one_per_joint():
    torch.manual_seed(0)
    fau = FAU(8, num_keypoints=K, num_branches=3, channels=6).train()
    w = fau(torch.randn(4, 8, 10, 12) * 5)
    assert w.shape == (4, 3, K)
    assert torch.all(w > 0)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(4, K))
    # not uniform: the weights depend on the feature
    assert w.std() > 0


def test_aggregate_is_the_per_joint_convex_combination():
    torch.manual_seed(0)
    maps = [torch.rand(2, K, 4, 4) for _ in range(3)]
    w = torch.rand(2, 3, K).softmax(dim=1)
    ens = aggregate(w, maps)
    expected = sum(w[:, b, :, None, None] * maps[b] for b in range(3))
    torch.testing.assert_close(ens, expected)
    # identical branches: the ensemble is that map
    torch.testing.assert_close(aggregate(w, [maps[0]] * 3), maps[0])


def test_fau_rejects_bad_settings():
    with pytest.raises(ValueError, match="at least 2"):
        FAU(8, K, 1)
    with pytest.raises(ValueError, match="odd"):
        FAU(8, K, 3, kernel_sizes=(3, 4))


# ---------------------------------------------------------------------------------------------------- network


def test_hourglass_split_outputs_and_official_order():
    net = build_multibranch(num_keypoints=K, input_size=(SIZE, SIZE), base={**TINY_HG, "name": "hourglass-4stack"},
                            num_shared=2, num_branches=3, fau={})  # fmt: skip
    out = net.forward_branches(torch.randn(1, 3, SIZE, SIZE))
    assert len(out.shared) == 2 and [len(b) for b in out.branches] == [2, 2, 2]
    flat = out.flat()
    assert len(flat) == 8 and all(h.shape == (1, K, SIZE // 4, SIZE // 4) for h in flat)
    # the ensemble mixes every branch's final map: outputs 3, 5, 7 of the official layout
    assert [h is flat[i] for h, i in zip(net.ensemble_inputs(out), (3, 5, 7))] == [True] * 3
    assert net.fau_input == "stem" and out.stem.shape[1] == 16


def test_legacy_ensemble_reproduces_the_official_indexing():
    net = tiny_net(base={**TINY_HG, "name": "hourglass-4stack"}, num_shared=2, legacy_ensemble=True)
    out = net.forward_branches(torch.randn(1, 3, SIZE, SIZE))
    flat = out.flat()
    # out[-3], out[-2], out[-1] = branch 1 final, branch 2 intermediate, branch 2 final; branch 0 left out
    assert all(a is b for a, b in zip(net.ensemble_inputs(out), flat[-3:]))
    assert not any(h is out.branches[0][-1] for h in net.ensemble_inputs(out))


def test_unbalanced_branches_depth_and_width():
    net = tiny_net(branches=[{}, {"name": "hourglass-4stack"}, {"channels": 24}])
    out = net.forward_branches(torch.randn(2, 3, SIZE, SIZE))
    assert [len(b) for b in out.branches] == [2, 3, 2]
    assert net.deployable == [True, True, False]
    assert "adapter" in net.not_deployable_reason[2]
    assert net.branches[2].adapter is not None and net.branches[0].adapter is None
    deep = net.branch_model(1)
    assert deep.build_args["name"] == "hourglass-4stack" and len(deep.stacks) == 4
    with pytest.raises(ValueError, match="cannot be deployed"):
        net.branch_model(2)


def test_resnet_split_and_family_check():
    base = {"name": "simplebaseline-res18", "deconv_out_channels": [16, 16, 16], "base_channels": 8}
    net = build_multibranch(num_keypoints=K, input_size=(64, 64), base=base, num_shared=3, num_branches=2,
                            fau={"channels": 8})  # fmt: skip
    assert net.fau_input == "shared"
    net.eval()
    x = torch.randn(1, 3, 64, 64)
    out = net.forward_branches(x)
    assert out.shared == [] and [len(b) for b in out.branches] == [1, 1]
    assert torch.equal(net.branch_model(1).eval()(x), out.branches[1][-1])
    with pytest.raises(ValueError, match="cannot build"):  # res18 keywords on an hourglass
        build_multibranch(num_keypoints=K, input_size=(64, 64), base=base, num_shared=3, branches=[{}, TINY_HG])
    with pytest.raises(ValueError, match="family"):
        build_multibranch(num_keypoints=K, input_size=(64, 64), base={"name": "simplebaseline-res18"}, num_shared=1,
                          branches=[{}, {"name": "hourglass-2stack"}])  # fmt: skip
    with pytest.raises(ValueError, match="num_shared"):
        build_multibranch(num_keypoints=K, input_size=(64, 64), base=base, num_shared=6)


# ---------------------------------------------------------------------------------------------------- losses


def test_kd_ramp():
    assert kd_ramp(0, 90) == pytest.approx(math.exp(-5))
    assert kd_ramp(45, 90) == pytest.approx(math.exp(-1.25))
    assert kd_ramp(90, 90) == 1.0 and kd_ramp(150, 90) == 1.0
    assert kd_ramp(0, 0) == 1.0


def test_spatial_kl_matches_its_definition():
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    p = t.flatten(2).softmax(-1)
    expected = (p * (p.log() - s.flatten(2).log_softmax(-1))).sum() / (2 * 4 * 5)
    torch.testing.assert_close(spatial_kl(s, t), expected)
    # temperature: softmax of map / T, times T^2
    p2 = (t / 2).flatten(2).softmax(-1)
    expected2 = 4 * (p2 * (p2.log() - (s / 2).flatten(2).log_softmax(-1))).sum() / (2 * 4 * 5)
    torch.testing.assert_close(spatial_kl(s, t, temperature=2.0), expected2)
    assert spatial_kl(s, s) == 0
    # a joint with weight 0 compares two uniform maps
    w = torch.zeros(2, 3)
    assert spatial_kl(s, t, w) == 0


def test_kl_term_is_zero_when_all_branches_agree():
    net = tiny_net()
    for b in (1, 2):  # every branch becomes a copy of branch 0: identical outputs
        net.branches[b].load_state_dict(net.branches[0].state_dict())
    method = tiny_method(net, kd_outputs="final", ramp_epochs=0)
    losses = method.losses(batch(), epoch=0)
    assert set(losses) == {"loss_kpt", "loss_ens", "loss_kd"}
    assert abs(losses["loss_kd"].item()) < 1e-6
    # the ensemble of identical branches is that branch, so its MSE equals one branch's
    mse = method.mse(net.forward_branches(batch()["image"]).branches[0][-1], batch()["heatmaps"], batch()["weights"])
    torch.testing.assert_close(losses["loss_ens"], mse)
    # different branches disagree: the KL term is positive
    assert tiny_method(tiny_net(), kd_outputs="final", ramp_epochs=0).losses(batch(), 0)["loss_kd"].item() > 1e-6


def test_losses_sum_every_output_and_follow_the_ramp():
    method = tiny_method(ramp_epochs=10, kd_weight=2.0, ens_weight=1.0)
    net = method.network
    b = batch()
    torch.manual_seed(1)
    losses = method.losses(b, epoch=5)
    out = net.forward_branches(b["image"])
    ens, _ = net.ensemble(out)
    outputs = out.flat()
    assert len(outputs) == 1 + 3 * 2
    kpt = sum(method.mse(o, b["heatmaps"], b["weights"]) for o in outputs)
    kl = sum(spatial_kl(o, ens, b["weights"]) for o in outputs)
    torch.testing.assert_close(losses["loss_kpt"], kpt)
    torch.testing.assert_close(losses["loss_ens"], method.mse(ens, b["heatmaps"], b["weights"]))
    torch.testing.assert_close(losses["loss_kd"], 2.0 * kd_ramp(5, 10) * kl)
    assert method.mse.loss_weight == 0.5


def test_detach_options_control_gradients():
    b = batch()
    # default (official): the KL term reaches the FAU
    for detach, reaches in ((False, True), (True, False)):
        method = tiny_method(detach_teacher=detach, ramp_epochs=0, ens_weight=0.0, mse_weight=0.0)
        method.losses(b, 0)["loss_kd"].backward()
        grad = method.network.fau.squeeze.weight.grad
        assert (grad is not None and float(grad.abs().sum()) > 0) == reaches
    # detach_fau_input: the FAU's losses do not reach the trunk through the FAU
    method = tiny_method(detach_fau_input=True, kd_weight=0.0, mse_weight=0.0)
    method.losses(b, 0)["loss_ens"].backward()
    stem_conv = method.network.trunk[0][0]
    assert stem_conv.weight.grad is not None  # through the branches' maps
    method2 = tiny_method(detach_fau_input=True, kd_weight=0.0, mse_weight=0.0)
    out = method2.network.forward_branches(b["image"])
    w = method2.network.branch_weights(out, detach_input=True)
    w.sum().backward()
    assert method2.network.trunk[0][0].weight.grad is None


def test_predict_branch_and_ensemble_with_flip():
    method = tiny_method()
    method.eval()
    b = batch()
    kp, sc = method.predict(b, flip_test=True)
    assert kp.shape == (2, K, 2) and sc.shape == (2, K) and np.isfinite(kp).all()
    method.val_output = "ensemble"
    kp2, _ = method.predict(b, flip_test=False)
    assert kp2.shape == (2, K, 2)
    hm = method.heatmaps(b["image"], which="ensemble")
    out = method.network.forward_branches(b["image"])
    torch.testing.assert_close(hm, method.network.ensemble(out)[0])
    with pytest.raises(ValueError, match="ensemble"):
        method.heatmaps(b["image"], which=3)


# ---------------------------------------------------------------------------------------------------- deploy


def _save_training_checkpoint(method: OKDHPMethod, path, config: dict | None = None) -> None:
    from posedistill.engine.checkpoint import save_checkpoint

    meta = {"layout": "lsp", "input_size": [SIZE, SIZE], "method": "okdhp", "metrics": {"pck@0.2": 0.5}}
    if config is not None:
        meta["config"] = config
    save_checkpoint(path, method.export_model(), meta)


def _deploy_args(ckpt, out, branch="0", **kw) -> argparse.Namespace:
    return argparse.Namespace(checkpoint=str(ckpt), out=str(out), branch=branch, config=None, overrides=[],
                              device=None, flip_test=None, **kw)  # fmt: skip


def test_deployed_branch_gives_exactly_the_branch_outputs(tmp_path):
    from posedistill.commands import deploy
    from posedistill.engine.checkpoint import load_model_from_checkpoint, read_meta

    method = tiny_method()
    train_a_bit(method)
    net = method.network.eval()
    _save_training_checkpoint(method, tmp_path / "train")
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        out = net.forward_branches(x)
        for b in range(3):
            assert deploy.run(_deploy_args(tmp_path / "train", tmp_path / f"b{b}", str(b))) == 0
            model, meta = load_model_from_checkpoint(tmp_path / f"b{b}")
            assert type(model).__name__ == "StackedHourglass" and meta["model"]["build_args"]["name"] == TINY_HG["name"]
            assert torch.equal(model(x), out.branches[b][-1])
            assert all(torch.equal(p, q) for p, q in zip(model.forward_all(x), out.shared + out.branches[b]))
            assert meta["okdhp"]["branch"] == b and meta["layout"] == "lsp"
    # the branches really differ, so the test tells them apart
    assert not torch.equal(out.branches[0][-1], out.branches[1][-1])
    # a plain checkpoint is refused, with a clear message
    assert deploy.run(_deploy_args(tmp_path / "b0", tmp_path / "again")) == 2
    assert read_meta(tmp_path / "b0")["model"]["class"] == "StackedHourglass"


def test_deploy_best_scores_branches_on_validation_data(tmp_path, capsys):
    from posedistill.commands import deploy
    from posedistill.engine.checkpoint import read_meta

    lspet = shared_path("data", "lspet", "joints.mat")
    config = {
        "model": {"name": TINY_HG["name"], "input_size": [SIZE, SIZE], "args": {"channels": 16, "depth": 2}},
        "codec": {"type": "heatmap", "heatmap_size": [SIZE // 4, SIZE // 4], "sigma": 1.0},
        "data": {"layout": "lsp", "val": [{"format": "lsp", "path": str(lspet), "indices": "2500:2506"}]},
        "train": {"device": "cpu", "num_workers": 0, "batch_size": 4},
        "method": {"type": "okdhp", "args": {"num_shared": 1}},
    }
    method = tiny_method()
    _save_training_checkpoint(method, tmp_path / "train", config)
    assert deploy.run(_deploy_args(tmp_path / "train", tmp_path / "best", "best")) == 0
    meta = read_meta(tmp_path / "best")
    info = meta["okdhp"]
    assert info["metric"] == "pck@0.2" and set(info["branch_metrics"]) == {"0", "1", "2"}
    values = {int(b): m["pck@0.2"] for b, m in info["branch_metrics"].items()}
    assert values[info["branch"]] == max(values.values())
    assert meta["metrics"]["pck@0.2"] == values[info["branch"]]
    assert meta["config"]["method"]["type"] == "supervised" and meta["config"]["model"]["name"] == TINY_HG["name"]
    assert "deployed" in capsys.readouterr().out


def test_from_config_builds_the_released_layout():
    from posedistill.distill.okdhp import from_config
    from posedistill.engine.config import config_from_dict

    cfg = config_from_dict({
        "model": {"name": "hourglass-4stack", "input_size": [SIZE, SIZE], "args": {"channels": 16, "depth": 2}},
        "codec": {"type": "heatmap", "heatmap_size": [16, 16], "sigma": 2.0},
        "data": {"layout": "lsp"},
        "method": {"type": "okdhp", "args": {"branches": [{}, {"name": "hourglass-5stack"}], "fau_channels": 8}},
    })  # fmt: skip
    method = from_config(cfg)
    net = method.network
    assert net.num_branches == 2 and net.num_shared == 2 and net.num_keypoints == 14
    assert [len(b.parts) for b in net.branches] == [2, 3]
    assert net.build_args["name"] == "multibranch"
    rebuilt = build_multibranch(**net.build_args)
    assert rebuilt.load_state_dict(net.state_dict()) is not None
    from posedistill.engine.config import ConfigError

    bad = config_from_dict({**cfg.to_dict(), "codec": {"type": "simcc", "sigma": [4.9, 5.66]}})
    with pytest.raises(ConfigError, match="heatmap"):
        from_config(bad)
    bad = config_from_dict({**cfg.to_dict(), "method": {"type": "okdhp", "args": {"num_branches": 3,
                            "branches": [{}, {}]}}})  # fmt: skip
    with pytest.raises(ConfigError, match="num_branches"):
        from_config(bad)


def test_train_deploy_eval_end_to_end(tmp_path, capsys):
    """posedistill train (OKDHP) -> deploy --branch best -> eval accepts the plain checkpoint, same numbers."""
    import json

    import yaml

    from posedistill.cli import main
    from posedistill.engine.checkpoint import read_meta

    lspet = shared_path("data", "lspet", "joints.mat")
    cfg = {
        "model": {"name": "hourglass-2stack", "input_size": [SIZE, SIZE], "args": {"channels": 16, "depth": 2}},
        "codec": {"type": "heatmap", "heatmap_size": [SIZE // 4, SIZE // 4], "sigma": 1.0},
        "data": {
            "layout": "lsp",
            "train": [{"format": "lsp", "path": str(lspet), "indices": "0:8"}],
            "val": [{"format": "lsp", "path": str(lspet), "indices": "2500:2504"}],
        },
        "optim": {"type": "adam", "lr": 1e-3},
        "schedule": {"kind": "constant", "warmup_iters": 0},
        "ema": {"enabled": False},
        "train": {"epochs": 1, "batch_size": 4, "num_workers": 0, "device": "cpu", "progress": False,
                  "tensorboard": False},
        "eval": {"flip_test": True, "batch_size": 4},
        "method": {"type": "okdhp", "args": {"num_shared": 1, "fau_channels": 8, "ramp_epochs": 1}},
    }  # fmt: skip
    config = tmp_path / "okdhp.yaml"
    config.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    assert main(["train", str(config), "--work-dir", str(work)]) == 0
    meta = read_meta(work / "last")
    assert meta["model"]["build_args"]["name"] == "multibranch" and meta["method"] == "okdhp"
    log = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_kpt", "loss_ens", "loss_kd"} <= set(log[0])
    assert main(["deploy", str(work / "last"), str(tmp_path / "deployed")]) == 0
    deployed = read_meta(tmp_path / "deployed")
    assert deployed["model"]["build_args"]["name"] == "hourglass-2stack"
    branch = deployed["okdhp"]["branch"]
    out = tmp_path / "eval.json"
    assert main(["eval", str(config), "--checkpoint", str(tmp_path / "deployed"), "--out", str(out)]) == 0
    pck = json.loads(out.read_text())["metrics"]["pck@0.2"]
    assert pck == deployed["okdhp"]["branch_metrics"][str(branch)]["pck@0.2"]

    # export -> onnxruntime equals the branch inside the trained network; infer runs on the ONNX and the checkpoint
    import cv2
    import onnxruntime as ort

    from posedistill.engine.checkpoint import load_model_from_checkpoint
    from posedistill.infer import PoseEstimator

    onnx_path = tmp_path / "branch.onnx"
    assert main(["export", str(tmp_path / "deployed"), "--format", "onnx", "--out", str(onnx_path),
                 "--dynamic-batch"]) == 0  # fmt: skip
    trained, _ = load_model_from_checkpoint(work / "last")
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        want = trained.eval().forward_branches(x).branches[branch][-1].numpy()
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()))
    image = cv2.imread(str(lspet.parent / "images" / "im02501.jpg"))
    box = np.array([[0, 0, image.shape[1] - 1, image.shape[0] - 1]], np.float32)
    res_onnx = PoseEstimator(str(onnx_path))(image, boxes=box)
    res_ckpt = PoseEstimator(str(tmp_path / "deployed"))(image, boxes=box)
    assert res_onnx.keypoints.shape == (1, 14, 2) and res_onnx.scores.shape == (1, 14)
    np.testing.assert_allclose(res_onnx.keypoints, res_ckpt.keypoints, atol=1e-2)
    out_dir = tmp_path / "infer"
    assert main(["infer", str(lspet.parent / "images" / "im02501.jpg"), "--model", str(onnx_path), "--out",
                 str(out_dir), "--json", str(tmp_path / "infer.json")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "infer.json").read_text())
    capsys.readouterr()
