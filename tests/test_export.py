"""ONNX export: the RTMPose/DWPose I/O contract, embedded metadata, onnxruntime vs PyTorch parity (≤ 1e-4
relative) for RTMPose, heatmap, hourglass (OKDHP) and OKDHP-branch models, the export and bench commands."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from posedistill.cli import main
from posedistill.engine.checkpoint import save_checkpoint
from posedistill.infer.export import export_onnx, parity
from posedistill.infer.onnx_model import METADATA_KEY, OnnxPoseModel
from posedistill.layouts import get_layout
from posedistill.models import build_model

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
REL_TOL = 1e-4


def _io(path) -> tuple[dict, dict, dict]:
    proto = onnx.load(str(path))

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    ins = {i.name: dims(i) for i in proto.graph.input}
    outs = {o.name: dims(o) for o in proto.graph.output}
    meta = {p.key: p.value for p in proto.metadata_props}
    return ins, outs, json.loads(meta[METADATA_KEY])


def _rtmpose(k: int, size=(192, 256), name="rtmpose-t") -> nn.Module:
    torch.manual_seed(0)
    m = build_model(name, k, size).eval()
    with torch.no_grad():  # O(1) logits so that the relative parity is measured on realistic values
        for lin in (m.head.cls_x, m.head.cls_y, m.head.mlp[1]):
            nn.init.normal_(lin.weight, std=1.0)
    return m


@pytest.mark.parametrize("dynamic", [True, False])
def test_rtmpose_contract_metadata_and_parity(tmp_path, dynamic):
    model = _rtmpose(17)
    path = export_onnx(model, tmp_path / "t.onnx", dynamic_batch=dynamic)
    ins, outs, meta = _io(path)
    b = "batch" if dynamic else 1
    assert ins == {"input": [b, 3, 256, 192]}
    assert outs == {"simcc_x": [b, 17, 384], "simcc_y": [b, 17, 512]}
    assert meta["kind"] == "simcc" and meta["layout"] == "coco" and meta["input_size"] == [192, 256]
    assert meta["codec"]["type"] == "simcc" and meta["codec"]["split_ratio"] == 2.0
    assert meta["mean"] == [123.675, 116.28, 103.53] and meta["std"] == [58.395, 57.12, 57.375]
    assert meta["build_args"] == {"name": "rtmpose-t", "num_keypoints": 17, "input_size": [192, 256]}
    assert meta["flip_indices"] == list(get_layout("coco").flip_indices)
    assert meta["opset"] == 17 and max(o.version for o in onnx.load(str(path)).opset_import if o.domain == "") == 17
    x = np.random.default_rng(0).standard_normal((3 if dynamic else 1, 3, 256, 192)).astype(np.float32)
    res = parity(model, path, x)
    assert res["rel_simcc_x"] <= REL_TOL and res["rel_simcc_y"] <= REL_TOL, res
    # the metadata rebuilds the same architecture
    assert sum(p.numel() for p in build_model(**meta["build_args"]).parameters()) == sum(
        p.numel() for p in model.parameters()
    )


def test_wholebody_and_opset(tmp_path):
    model = _rtmpose(133)
    path = export_onnx(model, tmp_path / "wb.onnx", opset=13, dynamic_batch=True)
    _, outs, meta = _io(path)
    assert outs == {"simcc_x": ["batch", 133, 384], "simcc_y": ["batch", 133, 512]}
    assert meta["layout"] == "coco_wholebody" and meta["opset"] == 13
    assert max(o.version for o in onnx.load(str(path)).opset_import if o.domain == "") == 13
    x = np.random.default_rng(1).standard_normal((2, 3, 256, 192)).astype(np.float32)
    res = parity(model, path, x)
    assert max(v for k, v in res.items() if k.startswith("rel")) <= REL_TOL, res


def test_heatmap_model(tmp_path):
    torch.manual_seed(0)
    model = build_model("cspnext-t-heatmap", 17, (192, 256)).eval()
    path = export_onnx(model, tmp_path / "hm.onnx", dynamic_batch=True)
    _, outs, meta = _io(path)
    assert outs == {"heatmaps": ["batch", 17, 64, 48]}
    assert meta["kind"] == "heatmap" and meta["codec"]["heatmap_size"] == [48, 64]
    x = np.random.default_rng(2).standard_normal((2, 3, 256, 192)).astype(np.float32)
    assert parity(model, path, x)["rel_heatmaps"] <= REL_TOL


def test_hourglass_and_okdhp_branch(tmp_path):
    """OKDHP's networks: a stacked hourglass (MPII, 16 keypoints) and one branch of a multi-branch model
    (shared low-level stages + this branch's stages and head, built with ``split``)."""
    torch.manual_seed(0)
    hg = build_model("hourglass-2stack", 16, (256, 256), channels=32).eval()
    path = export_onnx(hg, tmp_path / "hg.onnx", dynamic_batch=True)
    _, outs, meta = _io(path)
    assert outs == {"heatmaps": ["batch", 16, 64, 64]} and meta["layout"] == "mpii"
    x = np.random.default_rng(3).standard_normal((2, 3, 256, 256)).astype(np.float32)
    assert parity(hg, path, x)["rel_heatmaps"] <= REL_TOL

    net = build_model("cspnext-t-heatmap", 17, (192, 256)).eval()
    shared, rest = net.split(2)
    branch = nn.Sequential(shared, rest).eval()
    bpath = export_onnx(branch, tmp_path / "branch.onnx", layout="coco", input_size=(192, 256))
    _, outs, meta = _io(bpath)
    assert outs == {"heatmaps": [1, 17, 64, 48]} and meta["build_args"] == {}
    x = np.random.default_rng(4).standard_normal((1, 3, 256, 192)).astype(np.float32)
    assert parity(branch, bpath, x)["rel_heatmaps"] <= REL_TOL
    with torch.no_grad():
        np.testing.assert_allclose(branch(torch.from_numpy(x)).numpy(), net(torch.from_numpy(x)).numpy(), atol=1e-6)


def test_unexportable_forward_is_refused(tmp_path):
    class Multi(nn.Module):
        def forward(self, x):
            return [x[:, :1], x[:, 1:2], x[:, 2:]]

    with pytest.raises(ValueError, match="forward must return"):
        export_onnx(Multi(), tmp_path / "m.onnx", input_size=(192, 256), layout="coco")


def test_export_command(tmp_path, capsys):
    model = _rtmpose(17)
    codec = {"type": "simcc", "input_size": [192, 256], "sigma": [4.9, 5.66], "split_ratio": 2.0}
    ckpt = save_checkpoint(tmp_path / "ckpt", model, {"layout": "coco", "input_size": [192, 256], "codec": codec})
    out = tmp_path / "model.onnx"
    rc = main(["export", str(ckpt), "--format", "onnx", "--out", str(out), "--dynamic-batch", "--opset", "17"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "parity onnxruntime vs PyTorch" in text and "layout coco" in text
    info = OnnxPoseModel(out).info
    assert info.batch_size is None and info.codec == codec
    rc = main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x.onnx")])
    assert rc == 2 and "nope" in capsys.readouterr().err


def test_bench_command_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "rtmpose-t", "--warmup", "1", "--iters", "2", "--batch", "1", "2", "--persons", "2",
               "--threads", "2", "--json", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    res = json.loads(out.read_text())
    assert abs(res["gflops"] - 0.359) < 0.01 and abs(res["params_m"] - 3.337) < 0.01
    assert res["machine"]["matmul_gflops_all_threads"] > 0 and res["floor_ms_per_crop"] > 0
    modes = {(r["backend"], r["batch"], r["mode"]) for r in res["model_latency"]}
    ort = {("onnxruntime", 1, "one call"), ("onnxruntime", 2, "sharded"), ("onnxruntime", 2, "one call")}
    assert modes == ort | {("torch", 1, "one call"), ("torch", 2, "one call"), ("onnxruntime", 2, "batch-1 loop")}
    assert all(r["runs"] == 2 and r["median_ms"] > 0 for r in res["model_latency"])
    assert res["batching_gain"] > 0 and res["batching_gain_sharded"] > 0
    assert {(r["backend"], r["persons"], r["mode"]) for r in res["end_to_end"]} == {
        ("onnxruntime", 2, "batched"),
        ("torch", 2, "batched"),
        ("onnxruntime", 2, "per-box loop"),
    }
    assert "FLOP floor" in text and "batching gain" in text


def test_fp16_weights_halve_the_file_and_keep_float32_compute(tmp_path):
    model = _rtmpose(133)
    full = export_onnx(model, tmp_path / "fp32.onnx", dynamic_batch=True)
    half = export_onnx(model, tmp_path / "fp16.onnx", dynamic_batch=True, fp16_weights=True)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    proto = onnx.load(str(half))
    big = [i for i in proto.graph.initializer if int(np.prod(i.dims)) >= 16]
    assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
    ins, _, meta = _io(half)
    assert meta["fp16_weights"] is True and ins["input"] == ["batch", 3, 256, 192]
    x = np.random.default_rng(0).standard_normal((2, 3, 256, 192)).astype(np.float32)
    a, b = OnnxPoseModel(full).run(x), OnnxPoseModel(half).run(x)
    assert all(o.dtype == np.float32 for o in b)
    for u, v in zip(a, b):  # only the weights' float16 rounding separates them
        assert 0 < np.abs(u - v).max() <= 2e-2 * np.abs(u).max()
    # the export command checks parity against PyTorch with the same (rounded) weights
    ckpt = tmp_path / "ckpt"
    save_checkpoint(ckpt, model, {"input_size": [192, 256], "layout": "coco_wholebody",
                                  "model": {"build_args": model.build_args}})  # fmt: skip
    assert main(["export", str(ckpt), "--out", str(tmp_path / "cli.onnx"), "--fp16-weights"]) == 0
