"""RTMDet-nano's backbone read out of the shipped detector ONNX: exact in eval mode, BN restored for training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posedistill.infer.defaults import DEFAULT_DETECTOR_DIR
from posedistill.models.builder import build_model
from posedistill.models.cspnext import ConvBNAct, CSPNeXt
from posedistill.models.rtmdet_backbone import _forward_order, _onnx_convs, load_rtmdet_backbone

ONNX = DEFAULT_DETECTOR_DIR / "model.onnx"
pytestmark = pytest.mark.skipif(not ONNX.is_file(), reason="the shipped detector is not in this checkout")


@pytest.fixture(scope="module")
def loaded() -> tuple[CSPNeXt, torch.Tensor]:
    torch.manual_seed(0)
    backbone = CSPNeXt(0.33, 0.25, use_depthwise=True)
    calib = torch.randn(8, 3, 64, 64)
    assert load_rtmdet_backbone(backbone, ONNX, calib) == 53
    return backbone, calib


def test_every_conv_matches_the_detector(loaded):
    """Each conv + restored BN of ours gives the output of the detector's folded Conv node, on the same input."""
    import onnx
    import onnxruntime as ort

    backbone, _ = loaded
    order = _forward_order(backbone)
    nodes = _onnx_convs(ONNX)[: len(order)]
    graph = onnx.load(str(ONNX))
    for name, _, _ in nodes:
        graph.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.RandomState(0).randn(1, 3, 96, 64).astype(np.float32)  # BGR, as the detector reads it
    ref = sess.run([n for n, _, _ in nodes], {sess.get_inputs()[0].name: x})
    bn_of = {m.conv: m.bn for m in backbone.modules() if isinstance(m, ConvBNAct)}
    got: list[torch.Tensor] = []
    hooks = [bn_of.get(c, c).register_forward_hook(lambda m, i, o: got.append(o.clone())) for c in order]
    with torch.no_grad():
        backbone.eval()(torch.from_numpy(x[:, ::-1].copy()))  # ours reads RGB
    for h in hooks:
        h.remove()
    assert len(got) == len(ref) == 53
    for i, (a, b) in enumerate(zip(got, ref)):
        assert a.shape == b.shape, i
        np.testing.assert_allclose(a.numpy(), b, atol=2e-3 * max(1.0, float(np.abs(b).max())), err_msg=f"conv {i}")


def test_training_mode_reproduces_eval_on_the_calibration_batch(loaded):
    """With the restored γ, β a training-mode forward (batch statistics) on the calibration crops computes what
    eval mode computes: the pretrained features survive the switch to training."""
    backbone, calib = loaded
    with torch.no_grad():
        ref = backbone.eval()(calib)[-1]
        state = {k: v.clone() for k, v in backbone.state_dict().items()}
        out = backbone.train()(calib)[-1]
    backbone.load_state_dict(state)  # undo the running-statistics update
    backbone.eval()
    assert torch.allclose(out, ref, atol=1e-3 * float(ref.abs().max()))


def test_wrong_backbone_names_the_conv(tmp_path: Path):
    with pytest.raises(ValueError, match=r"Conv \d+ .* has weight"):
        load_rtmdet_backbone(CSPNeXt(0.167, 0.375), ONNX, torch.zeros(2, 3, 64, 64))


def test_rtmpose_nano_loads_the_written_file(tmp_path: Path):
    from posedistill.engine.checkpoint import load_pretrained
    from posedistill.models.rtmdet_backbone import write_rtmdet_pretrained

    torch.manual_seed(0)
    path = write_rtmdet_pretrained(tmp_path / "nano.safetensors", ONNX, torch.randn(4, 3, 64, 48))
    model = build_model("rtmpose-nano", 133, input_size=(48, 64))
    missing, unexpected = load_pretrained(model, path)
    assert not unexpected and missing and all(k.startswith("head.") for k in missing)
    first = model.backbone.stem[0].conv.weight
    ref = torch.from_numpy(_onnx_convs(ONNX)[0][1].copy()).flip(1)
    assert torch.equal(first, ref)
    x, y = model(torch.zeros(1, 3, 64, 48))
    assert x.shape == (1, 133, 96) and y.shape == (1, 133, 128)


def test_config_pretrained_rtmdet_nano_starts_from_the_detector(tmp_path: Path):
    """``model.pretrained: rtmdet-nano`` in a config: rtmpose-nano's backbone is the detector's, its BN statistics
    those of the training people's crops; another network gets an error naming the key."""
    from posedistill.distill.supervised import build_student
    from posedistill.engine.builders import read_sources
    from posedistill.engine.config import ConfigError, config_from_dict
    from posedistill.models.rtmdet_backbone import instance_crops
    from tests.test_engine_cli import make_tiny_lsp

    mat = make_tiny_lsp(tmp_path / "lsp", n=6)
    doc = {"model": {"name": "rtmpose-nano", "input_size": [48, 64], "pretrained": "rtmdet-nano"},
           "codec": {"type": "simcc", "sigma": [1.5, 1.7]},
           "data": {"layout": "lsp", "train": [{"format": "lsp", "path": str(mat)}]}}  # fmt: skip
    cfg = config_from_dict(doc, "nano.yaml")
    model = build_student(cfg)
    ref = CSPNeXt(0.33, 0.25, use_depthwise=True)
    load_rtmdet_backbone(ref, ONNX, instance_crops(read_sources(cfg, "train"), (48, 64)))
    got = model.backbone.state_dict()
    assert all(torch.equal(v, got[k]) for k, v in ref.state_dict().items())
    doc["model"]["name"] = "rtmpose-t"
    with pytest.raises(ConfigError, match=r"model\.pretrained.*rtmpose-nano"):
        build_student(config_from_dict(doc, "t.yaml"))
