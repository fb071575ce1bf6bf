"""The shipped default model (models/rtmpose-t_wholebody-cascade): PoseEstimator() and `posedistill infer` work
offline without naming a model; the ONNX file and the fp16 checkpoint agree; a missing default is a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posedistill.errors import PoseDataError
from posedistill.infer import PoseEstimator
from posedistill.infer.defaults import DEFAULT_MODEL_DIR, DEFAULT_ONNX, default_model

from .conftest import shared_path


def test_the_default_model_is_shipped_small_and_whole_body():
    files = {p.name: p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir()}
    assert {DEFAULT_ONNX, "weights.safetensors", "meta.json", "README.md"} <= set(files)
    assert sum(files.values()) <= 25e6
    meta = json.loads((DEFAULT_MODEL_DIR / "meta.json").read_text())
    assert meta["layout"] == "coco_wholebody" and meta["model"]["build_args"]["name"] == "rtmpose-t"
    est = PoseEstimator()
    assert est.layout == "coco_wholebody" and est.num_keypoints == 133


def test_default_model_on_a_real_image_and_agrees_with_its_checkpoint():
    import cv2

    image = cv2.imread(str(shared_path("data", "lspet", "images", "im02501.jpg")))
    box = np.array([[0, 0, image.shape[1], image.shape[0]]], np.float32)
    res = PoseEstimator()(image, boxes=box)
    assert res.keypoints.shape == (1, 133, 2) and np.isfinite(res.keypoints).all()
    pytest.importorskip("torch")
    ref = PoseEstimator(str(DEFAULT_MODEL_DIR))(image, boxes=box)  # the fp16 checkpoint through PyTorch
    np.testing.assert_allclose(res.keypoints, ref.keypoints, atol=1.0)  # one SimCC bin at most


def test_infer_command_uses_the_default_model(tmp_path):
    from posedistill.cli import main

    image = shared_path("data", "lspet", "images", "im02502.jpg")
    out = tmp_path / "poses.json"
    assert main(["infer", str(image), "--out", str(tmp_path / "vis"), "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert data and (tmp_path / "vis").is_dir()


def test_a_missing_default_model_names_the_file(monkeypatch, tmp_path):
    import posedistill.infer.defaults as defaults

    monkeypatch.setattr(defaults, "DEFAULT_MODEL_DIR", tmp_path / "nowhere")
    with pytest.raises(PoseDataError, match=r"nowhere.*POSEDISTILL_DEFAULT_MODEL"):
        defaults.default_model()
    monkeypatch.setenv("POSEDISTILL_DEFAULT_MODEL", "/some/model.onnx")
    assert default_model() == "/some/model.onnx"
