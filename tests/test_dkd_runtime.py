"""DKD in the runtime: ``posedistill export`` writes the initialisation and tracked-frame graphs (contract, metadata,
onnxruntime parity), :class:`DKDPoseEstimator` runs DKD in its temporal mode with IoU-associated track keys (equal
to ``VideoPoseEstimator.step`` with those keys; torch-free on the exported pair too), and ``posedistill infer``
picks it for DKD checkpoints (tiny networks, generated frames)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from posedistill.cli import main
from posedistill.codecs import HeatmapCodec
from posedistill.engine.checkpoint import save_checkpoint
from posedistill.infer.dkd_estimator import (
    BoxAssociator,
    DKDPoseEstimator,
    box_iou,
    dkd_onnx_role,
    is_dkd_checkpoint,
)
from posedistill.infer.export import DKD_OUTPUTS, DKD_STEP_INPUTS, dkd_parity, dkd_step_path, export_dkd_onnx
from posedistill.infer.onnx_model import METADATA_KEY, make_session
from posedistill.infer.pipeline import PosePipeline
from posedistill.infer.video_estimator import VideoPoseEstimator
from posedistill.layouts import get_layout
from posedistill.models.dkd import build_dkd

TINY = {"name": "simplebaseline-res18", "base_channels": 4, "deconv_out_channels": [8, 8, 8]}
CODEC = {"type": "heatmap", "input_size": [64, 64], "heatmap_size": [16, 16], "sigma": 1.5}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models on a shared machine: intra-op threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net(mode: str = "per_joint", seed: int = 0, **kw) -> torch.nn.Module:
    """A tiny DKD network with O(1) features, heatmaps and kernels (a fresh one's deconvolutions and heads start
    at std 0.001, so its step heatmaps are ~1e-12 and a parity check on them would say nothing)."""
    torch.manual_seed(seed)
    net = build_dkd(17, (64, 64), initializer=TINY, encoder=TINY, kernel_mode=mode, **kw)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        net.distillator.gain.fill_(1.0)
    return net.eval()


def write_checkpoint(path: Path, net: torch.nn.Module) -> Path:
    """A checkpoint folder with the meta a DKD training writes (``checkpoint_meta`` + method fields)."""
    layout = get_layout("coco")
    meta = {
        "layout": layout.name, "num_keypoints": layout.num_keypoints, "input_size": [64, 64], "codec": CODEC,
        "flip_indices": list(layout.flip_indices), "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
        "method": "dkd", "epoch": 1, "metrics": {},
    }  # fmt: skip
    return save_checkpoint(path, net, meta)


def scene(t: int, h: int = 96, w: int = 128) -> np.ndarray:
    """Frame t: textured background and two bright 'people' walking towards each other."""
    rng = np.random.default_rng(t)
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    for x0, shade in ((10 + 2 * t, 200), (90 - 2 * t, 150)):
        img[20:84, x0 : x0 + 24] = shade
        img[24:34, x0 + 8 : x0 + 16] = 255  # a 'head'
    return img


def boxes_at(t: int) -> np.ndarray:
    """xyxy boxes of the two people of :func:`scene` (integers: exact in float32 and as x, y, w, h)."""
    return np.array([[6 + 2 * t, 16, 38 + 2 * t, 88], [86 - 2 * t, 16, 118 - 2 * t, 88]], np.float32)


def xywh(box: np.ndarray) -> np.ndarray:
    b = np.asarray(box, np.float64)
    return np.concatenate([b[:2], b[2:] - b[:2]])


# ------------------------------------------------------------------------------------------------ export
def test_export_command_writes_both_graphs_with_the_contract(tmp_path, capsys):
    net = tiny_net(reinit_every=8, min_confidence=0.05)
    ckpt = write_checkpoint(tmp_path / "ckpt", net)
    out = tmp_path / "dkd.onnx"
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rel_step_heatmaps" in printed and "rel_init_features" in printed
    step = dkd_step_path(out)
    assert step == tmp_path / "dkd_step.onnx" and out.is_file() and step.is_file()
    init_s, step_s = make_session(out, threads=1), make_session(step, threads=1)
    assert [i.name for i in init_s.get_inputs()] == ["input"]
    assert [i.name for i in step_s.get_inputs()] == list(DKD_STEP_INPUTS)
    assert [tuple(i.shape) for i in step_s.get_inputs()] == [(1, 3, 64, 64), (1, 8, 16, 16), (1, 17, 16, 16)]
    for s in (init_s, step_s):
        assert [o.name for o in s.get_outputs()] == list(DKD_OUTPUTS)
        assert [tuple(o.shape) for o in s.get_outputs()] == [(1, 17, 16, 16), (1, 8, 16, 16)]
    meta_i = json.loads(init_s.get_modelmeta().custom_metadata_map[METADATA_KEY])
    meta_s = json.loads(step_s.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert meta_i["kind"] == "heatmap" and meta_i["layout"] == "coco" and meta_i["codec"] == CODEC
    assert meta_i["build_args"]["name"] == "dkd" and meta_i["input_size"] == [64, 64]
    assert meta_i["dkd"]["role"] == "init" and meta_i["dkd"]["step_file"] == "dkd_step.onnx"
    assert meta_s["dkd"]["role"] == "step" and meta_s["dkd"]["init_file"] == "dkd.onnx"
    assert meta_s["dkd"]["reinit_every"] == 8 and meta_s["dkd"]["min_confidence"] == pytest.approx(0.05)
    assert dkd_onnx_role(out) == "init" and dkd_onnx_role(step) == "step"

    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    res = dkd_parity(net, out, step, x, threads=1)
    assert res["abs_step_heatmaps"] / res["rel_step_heatmaps"] > 0.1  # the step heatmaps are not ~0
    assert max(v for k, v in res.items() if k.startswith("rel_")) <= 1e-4, res

    # the initialisation graph is also a per-frame heatmap model; the step graph is refused with a pointer
    from posedistill.infer.estimator import PoseEstimator

    assert PoseEstimator(str(out), threads=1)(scene(0), boxes_at(0)).keypoints.shape == (2, 17, 2)
    with pytest.raises(ValueError, match=r"DKDPoseEstimator\.from_onnx"):
        PoseEstimator(str(step), threads=1)
    with pytest.raises(ValueError, match=r"DKDPoseEstimator\.from_checkpoint"):
        PoseEstimator(str(ckpt))


@pytest.mark.parametrize("mode", ["per_joint", "depthwise"])
def test_dynamic_batch_step_graph_matches_the_network(tmp_path, mode):
    net = tiny_net(mode, seed=2, static_kernels=mode == "depthwise")
    init, step = export_dkd_onnx(net, tmp_path / "m.onnx", dynamic_batch=True)
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    res = dkd_parity(net, init, step, x, threads=1)
    assert max(v for k, v in res.items() if k.startswith("rel_")) <= 1e-4, res
    with pytest.raises(ValueError, match="opset"):
        export_dkd_onnx(net, tmp_path / "old.onnx", opset=10)


def test_export_onnx_dispatches_dkd_networks(tmp_path):
    from posedistill.infer.export import export_onnx

    assert export_onnx(tiny_net(), tmp_path / "x.onnx") == tmp_path / "x.onnx"
    assert (tmp_path / "x_step.onnx").is_file()


# ------------------------------------------------------------------------------------------------ association
def test_box_association_keeps_keys_and_starts_new_ones():
    a = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    np.testing.assert_allclose(box_iou(a, a + [1, 0, 1, 0]), [[9 / 11, 0], [0, 9 / 11]])
    for method in ("hungarian", "greedy"):
        assoc = BoxAssociator(0.3, method)
        assert assoc.assign(a).tolist() == [0, 1]
        assert assoc.assign(a[::-1] + [1, 0, 1, 0]).tolist() == [1, 0]  # order does not matter
        assert assoc.assign(np.array([[60, 60, 70, 70], [21, 0, 31, 10]])).tolist() == [2, 1]  # no overlap: new
        assoc.keep([1, 2])
        assert sorted(assoc.boxes) == [1, 2]
        assoc.reset()
        assert assoc.assign(a[:1]).tolist() == [0]
    with pytest.raises(ValueError):
        BoxAssociator(method="nearest")


# ------------------------------------------------------------------------------------------------ the adapter
def test_adapter_equals_video_estimator_with_the_same_track_ids():
    net = tiny_net()
    codec = HeatmapCodec((64, 64), (16, 16), sigma=1.5)
    adapter = DKDPoseEstimator(VideoPoseEstimator(net, codec, reinit_every=None, min_confidence=None), "coco")
    ref = VideoPoseEstimator(net, codec, reinit_every=None, min_confidence=None)
    for t in range(5):
        boxes = boxes_at(t)
        order = [1, 0] if t == 3 else [0, 1]  # the detector may list the people in any order
        res = adapter(scene(t), boxes[order])
        assert res.track_ids.tolist() == order and res.layout == "coco" and res.image_shape == (96, 128)
        want = ref.step(scene(t), {i: xywh(boxes[i]) for i in order})
        np.testing.assert_array_equal(res.keypoints, np.stack([p.keypoints for p in want]))
        np.testing.assert_array_equal(res.scores, np.stack([p.scores for p in want]))
        np.testing.assert_array_equal(res.boxes, boxes[order])
        assert adapter.last_initialised.tolist() == [t == 0, t == 0]
    assert adapter.runner.stats.initialised == 2 and adapter.runner.stats.person_frames == 10


def test_adapter_new_tracks_reset_and_whole_frame():
    codec = HeatmapCodec((64, 64), (16, 16), sigma=1.5)
    runner = VideoPoseEstimator(tiny_net(), codec, reinit_every=None, min_confidence=None)
    adapter = DKDPoseEstimator(runner, "coco", iou_threshold=0.5)
    adapter(scene(0), boxes_at(0))
    adapter(scene(1), boxes_at(1))
    assert runner.stats.initialised == 2
    third = np.array([[40, 60, 60, 95]], np.float32)
    res = adapter(scene(2), np.concatenate([boxes_at(2), third]))
    assert res.track_ids.tolist() == [0, 1, 2] and adapter.last_initialised.tolist() == [False, False, True]
    assert runner.stats.initialised == 3
    jumped = boxes_at(3)
    jumped[1] += [-60, 0, -60, 0]  # person 1 moved too far: IoU below 0.5 -> a new track, initialised
    res = adapter(scene(3), jumped)
    assert res.track_ids.tolist() == [0, 3] and adapter.last_initialised.tolist() == [False, True]
    assert set(runner.states) == {0, 3} and sorted(adapter.associator.boxes) == [0, 3]  # 1 and 2 were dropped
    assert len(adapter(scene(4), np.zeros((0, 4)))) == 0 and not runner.states  # nobody: every track ends

    pipeline = PosePipeline(adapter)  # a new video resets the adapter (PosePipeline.reset -> estimator.reset)
    adapter(scene(0), boxes_at(0))
    pipeline.reset()
    assert not runner.states and not adapter.associator.boxes and runner.frame == 0
    res = pipeline(scene(1))  # no boxes, no detector: the whole frame is one person
    np.testing.assert_array_equal(res.boxes, [[0, 0, 128, 96]])
    assert res.track_ids.tolist() == [0] and adapter.last_initialised.tolist() == [True]
    assert pipeline(scene(2)).track_ids.tolist() == [0] and adapter.last_initialised.tolist() == [False]

    # a detector that finds nobody: the pipeline still calls the temporal model, whose tracks end (max_missing 0),
    # so the person who comes back is initialised again instead of continuing from a stale state
    found = iter([boxes_at(3)[:1], np.zeros((0, 4), np.float32), boxes_at(5)[:1]])
    pipeline = PosePipeline(adapter, lambda image: (b := next(found), np.ones(len(b), np.float32)))
    pipeline.reset()
    pipeline(scene(3))
    assert len(pipeline(scene(4))) == 0 and not runner.states
    pipeline(scene(5))
    assert adapter.last_initialised.tolist() == [True]


@pytest.mark.parametrize("dynamic", [False, True])
def test_onnx_adapter_matches_the_torch_adapter(tmp_path, dynamic):
    net = tiny_net(reinit_every=3)
    ckpt = write_checkpoint(tmp_path / "ckpt", net)
    meta = json.loads((ckpt / "meta.json").read_text())
    _, step = export_dkd_onnx(net, tmp_path / "dkd.onnx", meta=meta, dynamic_batch=dynamic)
    torch_est = DKDPoseEstimator.from_checkpoint(ckpt)
    onnx_est = DKDPoseEstimator.from_onnx(step, threads=1)  # either file of the pair
    assert onnx_est.layout == torch_est.layout == "coco" and onnx_est.runner.reinit_every == 3
    for t in range(5):
        a, b = torch_est(scene(t), boxes_at(t)), onnx_est(scene(t), boxes_at(t))
        assert a.track_ids.tolist() == b.track_ids.tolist() == [0, 1]
        assert torch_est.last_initialised.tolist() == onnx_est.last_initialised.tolist() == [t % 3 == 0] * 2
        np.testing.assert_allclose(b.keypoints, a.keypoints, atol=1e-3)
        np.testing.assert_allclose(b.scores, a.scores, rtol=1e-3)  # float rounding, amplified along the chain
    onnx_est.reset()
    assert not onnx_est.runner.states


# ------------------------------------------------------------------------------------------------ infer command
def test_infer_command_runs_a_dkd_checkpoint_in_its_temporal_mode(tmp_path):
    net = tiny_net()
    ckpt = write_checkpoint(tmp_path / "ckpt", net)
    assert is_dkd_checkpoint(ckpt) and is_dkd_checkpoint(ckpt / "meta.json") and not is_dkd_checkpoint(tmp_path)
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(4):
        cv2.imwrite(str(frames / f"{t:05d}.png"), scene(t))
    out_json = tmp_path / "out.json"
    assert main(["infer", str(frames), "--model", str(ckpt), "--json", str(out_json), "--no-vis", "--quiet",
                 "--threads", "1", "--detector", "none"]) == 0  # fmt: skip
    doc = json.loads(out_json.read_text())
    assert [f["frame_id"] for f in doc["instance_info"]] == [0, 1, 2, 3]
    assert all(len(f["instances"]) == 1 for f in doc["instance_info"])

    # the same frames through the temporal estimator directly: the whole frame, one track, first frame initialised
    est = DKDPoseEstimator.from_checkpoint(ckpt)
    for t, frame in enumerate(doc["instance_info"]):
        res = est(cv2.imread(str(frames / f"{t:05d}.png")))
        np.testing.assert_allclose(frame["instances"][0]["keypoints"], res.keypoints[0], atol=2e-3)
    assert est.runner.stats.initialised == 1 and est.runner.stats.person_frames == 4

    # the exported pair runs the same way without torch in the loop
    assert main(["export", str(ckpt), "--out", str(tmp_path / "dkd.onnx"), "--no-check"]) == 0
    assert main(["infer", str(frames), "--model", str(tmp_path / "dkd.onnx"), "--json", str(tmp_path / "o.json"),
                 "--no-vis", "--quiet", "--threads", "1"]) == 0  # fmt: skip
    assert len(json.loads((tmp_path / "o.json").read_text())["instance_info"]) == 4
    assert main(["infer", str(frames), "--model", str(ckpt), "--flip-test", "--no-vis", "--json",
                 str(tmp_path / "flip.json"), "--quiet"]) == 2  # fmt: skip
    assert not (tmp_path / "flip.json").exists()


@pytest.mark.stress
def test_onnx_adapter_runs_without_torch(tmp_path):
    """The exported pair through ``posedistill infer`` in a process where importing torch fails."""
    import os
    import subprocess
    import sys

    export_dkd_onnx(tiny_net(), tmp_path / "dkd.onnx")
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(3):
        cv2.imwrite(str(frames / f"{t:05d}.png"), scene(t))
    code = f"""
import importlib.abc, json, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this test ({{name}})")
sys.meta_path.insert(0, _NoTorch())
from posedistill.cli import main
rc = main(["infer", {str(frames)!r}, "--model", {str(tmp_path / "dkd.onnx")!r}, "--json",
           {str(tmp_path / "o.json")!r}, "--no-vis", "--quiet", "--threads", "1"])
print("RC", rc, "TORCH" if "torch" in sys.modules else "NO_TORCH")
"""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert "RC 0 NO_TORCH" in proc.stdout, proc.stderr[-3000:]
    assert len(json.loads((tmp_path / "o.json").read_text())["instance_info"]) == 3
