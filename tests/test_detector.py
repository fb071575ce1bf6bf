"""YOLOX person detector: letterbox / un-letterbox maths, raw-grid decoding and NMS, mmdeploy end2end outputs,
the contract check, and detector + pose model together in PoseEstimator. No real YOLOX weights exist offline:
the ONNX files are tiny torch modules with the same I/O contract."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from posedistill.infer.detector import (
    YOLOXDetector,
    decode_yolox,
    letterbox,
    nms,
    unletterbox_boxes,
    yolox_grid,
)
from posedistill.infer.estimator import PoseEstimator
from posedistill.infer.export import export_onnx
from posedistill.infer.onnx_model import ModelContractError

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")


class RectEnd2End(nn.Module):
    """mmdeploy end2end contract: ``dets`` 1×N×5 and ``labels`` 1×N. Detection 0 is the box of the pixels whose
    red value exceeds 200 (in letterboxed input pixels, score 0.9); then fixed extras: a class-1 box (score 0.95),
    a person box below the threshold (0.2) and a second person (0.6)."""

    def __init__(self, extras: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("extras", torch.as_tensor(extras, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = (x[0, 2] > 200).float()  # BGR input: channel 2 is red
        cols, rows = mask.amax(0), mask.amax(1)
        w, h = cols.shape[0], rows.shape[0]
        x1 = cols.argmax().float()
        x2 = (w - cols.flip(0).argmax()).float()
        y1 = rows.argmax().float()
        y2 = (h - rows.flip(0).argmax()).float()
        first = torch.stack([x1, y1, x2, y2, torch.tensor(0.9)])[None]
        dets = torch.cat([first, self.extras[:, :5]])[None]
        labels = (torch.cat([torch.zeros(1), self.extras[:, 5]]) + 0 * x.mean()).long()[None]
        return dets, labels


class ConstRaw(nn.Module):
    """Raw YOLOX contract: one output 1×M×(5+C) (here constant predictions)."""

    def __init__(self, raw: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("raw", torch.as_tensor(raw, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.raw[None] + 0 * x.mean()


def _export(module: nn.Module, path, size=(640, 640), input_name="input", outputs=("dets", "labels")) -> None:
    torch.onnx.export(module.eval(), (torch.zeros(1, 3, size[1], size[0]),), str(path), dynamo=False,
                      input_names=[input_name], output_names=list(outputs), opset_version=17)  # fmt: skip


# ------------------------------------------------------------------------------------------------ maths


@pytest.mark.parametrize("shape", [(480, 640), (300, 500), (640, 200), (1080, 1920), (640, 640)])
def test_letterbox(shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    canvas, r = letterbox(img, (640, 640))
    h, w = shape
    assert r == min(640 / h, 640 / w)
    nw, nh = int(w * r), int(h * r)
    assert canvas.shape == (640, 640, 3) and canvas.dtype == np.uint8
    np.testing.assert_array_equal(canvas[:nh, :nw], cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR))
    assert (canvas[nh:] == 114).all() and (canvas[:, nw:] == 114).all()
    # a non-square model input (w, h)
    c2, r2 = letterbox(img, (416, 320))
    assert c2.shape == (320, 416, 3) and r2 == min(320 / h, 416 / w)


def test_unletterbox_inverts_the_resize():
    img = np.zeros((300, 500, 3), np.uint8)
    img[60:181, 100:301] = 255  # box x 100..301, y 60..181 (exclusive ends)
    canvas, r = letterbox(img, (640, 640))
    ys, xs = np.nonzero(canvas[..., 0] > 127)
    in_box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = unletterbox_boxes(in_box, r)
    np.testing.assert_allclose(back[0], [100, 60, 301, 181], atol=1 / r + 1e-4)
    np.testing.assert_allclose(unletterbox_boxes(np.array([[64.0, 128, 256, 512]]), 1.28), [[50, 100, 200, 400]])


def test_grid_and_decode():
    grid, strides = yolox_grid((640, 640))
    assert grid.shape == (8400, 2) and strides.shape == (8400, 1)
    assert (strides[:6400] == 8).all() and (strides[6400:8000] == 16).all() and (strides[8000:] == 32).all()
    np.testing.assert_array_equal(grid[81], [1, 1])  # row-major 80 columns at stride 8
    raw = np.zeros((8400, 6), np.float32)
    raw[81] = [0.5, 0.25, np.log(4.0), np.log(2.0), 0.8, 0.5]
    boxes, scores = decode_yolox(raw, (640, 640))
    cx, cy, bw, bh = 1.5 * 8, 1.25 * 8, 32.0, 16.0
    np.testing.assert_allclose(boxes[81], [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], rtol=1e-6)
    np.testing.assert_allclose(scores[81], [0.4])
    assert len(yolox_grid((416, 416))[0]) == 52 * 52 + 26 * 26 + 13 * 13


def test_nms_matches_brute_force():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (60, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 60).astype(np.float32)
    keep = nms(boxes, scores, 0.45)

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
        inter = w * h
        area = lambda z: (z[2] - z[0] + 1) * (z[3] - z[1] + 1)  # noqa: E731
        return inter / (area(a) + area(b) - inter)

    ref: list[int] = []
    for i in np.argsort(-scores):
        if all(iou(boxes[i], boxes[j]) <= 0.45 for j in ref):
            ref.append(int(i))
    assert keep.tolist() == ref


# ------------------------------------------------------------------------------------------------ models


def test_end2end_detector(tmp_path):
    extras = np.array([[10, 10, 100, 100, 0.95, 1],  # class 1: not a person
                       [50, 50, 90, 120, 0.2, 0],  # person under the threshold
                       [400, 100, 500, 300, 0.6, 0]], np.float32)  # fmt: skip
    path = tmp_path / "end2end.onnx"
    _export(RectEnd2End(extras), path)
    det = YOLOXDetector(path)
    assert det.format == "end2end" and det.input_size == (640, 640)
    img = np.zeros((300, 500, 3), np.uint8)
    img[60:181, 100:301, 2] = 255  # red rectangle, exclusive ends
    boxes, scores = det(img)
    r = 640 / 500
    np.testing.assert_allclose(scores, [0.9, 0.6])
    np.testing.assert_allclose(boxes[0], [100, 60, 301, 181], atol=1 / r + 1e-3)
    np.testing.assert_allclose(boxes[1], np.array([400, 100, 500, 300]) / r, rtol=1e-6)


def test_raw_grid_detector(tmp_path):
    raw = np.zeros((8400, 85), np.float32)
    raw[:, 4] = 0.01  # background objectness
    raw[:, 5] = 0.5

    def put(i, px, py, w, h, obj, cls0, cls1=0.0):
        s = 8 if i < 6400 else 16 if i < 8000 else 32
        raw[i, :4] = [px, py, np.log(w / s), np.log(h / s)]
        raw[i, 4], raw[i, 5], raw[i, 6] = obj, cls0, cls1

    g = yolox_grid((640, 640))[0]
    cell = lambda x, y, base=0, n=80: base + y * n + x  # noqa: E731
    put(cell(20, 30), 0.5, 0.5, 80, 160, 0.95, 0.95)  # person A at (164, 244), score .9025
    put(cell(21, 30), 0.5, 0.5, 84, 160, 0.9, 0.9)  # overlaps A: suppressed by NMS
    put(cell(10, 5, 6400, 40), 0.0, 0.0, 64, 128, 0.8, 0.9)  # person B at stride 16, score .72
    put(cell(3, 3, 8000, 20), 0.0, 0.0, 96, 96, 0.99, 0.1, 0.99)  # a class-1 object: not a person
    path = tmp_path / "yolox_l.onnx"
    _export(ConstRaw(raw), path, input_name="images", outputs=("output",))
    det = YOLOXDetector(path)
    assert det.format == "raw"
    img = np.zeros((480, 800, 3), np.uint8)  # r = 0.8
    boxes, scores = det(img)
    np.testing.assert_allclose(scores, [0.95 * 0.95, 0.8 * 0.9], rtol=1e-6)
    ca = (g[cell(20, 30)] + 0.5) * 8
    cb = g[cell(10, 5, 6400, 40)] * 16
    exp_a = np.r_[ca - [40, 80], ca + [40, 80]] / 0.8
    exp_b = np.r_[cb - [32, 64], cb + [32, 64]] / 0.8
    np.testing.assert_allclose(boxes, [exp_a, exp_b], rtol=1e-5)
    # the loose threshold keeps the suppressed neighbour out (NMS), and a high threshold drops B
    det.score_thr = 0.75
    assert len(det(img)[0]) == 1


def test_symbolic_input_size(tmp_path):
    """mmdeploy "dynamic" exports have a symbolic H×W: the letterbox size comes from input_size (640 default)."""
    path = tmp_path / "dyn.onnx"
    torch.onnx.export(RectEnd2End(np.zeros((0, 6), np.float32)).eval(), (torch.zeros(1, 3, 640, 640),), str(path),
                      dynamo=False, input_names=["input"], output_names=["dets", "labels"], opset_version=17,
                      dynamic_axes={"input": {2: "h", 3: "w"}})  # fmt: skip
    assert YOLOXDetector(path).input_size == (640, 640)
    det = YOLOXDetector(path, input_size=(416, 320))
    img = np.zeros((300, 500, 3), np.uint8)
    img[60:181, 100:301, 2] = 255
    boxes, _ = det(img)
    r = min(320 / 300, 416 / 500)
    np.testing.assert_allclose(boxes[0], [100, 60, 301, 181], atol=1 / r + 1e-3)
    fixed = tmp_path / "fixed.onnx"
    _export(RectEnd2End(np.zeros((0, 6), np.float32)), fixed)
    with pytest.raises(ModelContractError, match="graph takes 640×640"):
        YOLOXDetector(fixed, input_size=(416, 416))


def test_detector_contract_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    _export(ConstRaw(np.zeros((100, 85), np.float32)), bad, outputs=("output",))
    with pytest.raises(ModelContractError, match=r"bad\.onnx.*1×8400×\(5\+C\)"):
        YOLOXDetector(bad)
    two = tmp_path / "two.onnx"

    class Two(nn.Module):
        def forward(self, x):
            return x[:, :1], x[:, 1:]

    _export(Two(), two, outputs=("a", "b"))
    with pytest.raises(ModelContractError, match=r"two\.onnx.*'dets'"):
        YOLOXDetector(two)


def test_estimator_with_detector(tmp_path):
    """Detector boxes become the person boxes; all crops go through the pose model."""
    from tests.test_estimator import DotModel

    extras = np.zeros((0, 6), np.float32)
    dpath = tmp_path / "det.onnx"
    _export(RectEnd2End(extras), dpath)
    ppath = export_onnx(DotModel(17), tmp_path / "pose.onnx", layout="coco", input_size=(192, 256),
                        dynamic_batch=True)  # fmt: skip
    img = np.zeros((480, 640, 3), np.uint8)
    img[100:400, 200:360, 2] = 255  # a red "person": the detector finds it, the dot model peaks inside it
    est = PoseEstimator(ppath, detector=dpath)
    res = est(img)
    assert len(res) == 1 and res.box_scores[0] == pytest.approx(0.9)
    np.testing.assert_allclose(res.boxes[0], [200, 100, 360, 400], atol=1.01)
    x, y = res.keypoints[0, 0]
    assert 199 <= x <= 361 and 99 <= y <= 401
    # given boxes override the detector
    res2 = est(img, boxes=[[0, 0, 100, 100]])
    np.testing.assert_array_equal(res2.boxes, [[0, 0, 100, 100]])
