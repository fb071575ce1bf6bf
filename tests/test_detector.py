"""Person detectors: letterbox / un-letterbox maths, raw-grid decoding and NMS, mmdeploy end2end outputs, the
YOLOX and RTMDet input contracts, the contract check, detector + pose model together in PoseEstimator, and the
shipped RTMDet-nano (``models/rtmdet-nano_person``) on real photos. The synthetic ONNX files are tiny torch modules
with the same I/O contracts; the real RTMDet-nano / YOLOX-nano files come from ``../shared/weights``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from posedistill.errors import PoseDataError
from posedistill.infer.defaults import DEFAULT_DETECTOR_DIR, default_detector, load_detector
from posedistill.infer.detector import (
    RTMDET,
    YOLOX,
    PersonDetector,
    YOLOXDetector,
    decode_yolox,
    find_contract,
    letterbox,
    nms,
    unletterbox_boxes,
    yolox_grid,
)
from posedistill.infer.estimator import PoseEstimator
from posedistill.infer.export import export_onnx
from posedistill.infer.onnx_model import ModelContractError
from tests.conftest import shared_path

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")


class RectEnd2End(nn.Module):
    """mmdeploy end2end contract: ``dets`` 1×N×5 and ``labels`` 1×N. Detection 0 is the box of the pixels whose
    red value exceeds 200 (in letterboxed input pixels, score 0.9); then fixed extras: a class-1 box (score 0.95),
    a person box below the threshold (0.2) and a second person (0.6)."""

    def __init__(self, extras: np.ndarray, red_thr: float = 200.0) -> None:
        super().__init__()
        self.register_buffer("extras", torch.as_tensor(extras, dtype=torch.float32))
        self.red_thr = red_thr  # in the graph's input units (raw pixels, or normalised for RTMDet)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = (x[0, 2] > self.red_thr).float()  # BGR input: channel 2 is red
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


# ------------------------------------------------------------------------------------------------ RTMDet contract


def _dynamic_rect(path, extras=None, red_thr=0.0) -> None:
    """An end2end graph with a symbolic H×W input (as mmdeploy's RTMDet export)."""
    extras = np.zeros((0, 6), np.float32) if extras is None else extras
    torch.onnx.export(RectEnd2End(extras, red_thr).eval(), (torch.zeros(1, 3, 320, 320),), str(path), dynamo=False,
                      input_names=["input"], output_names=["dets", "labels"], opset_version=17,
                      dynamic_axes={"input": {2: "h", 3: "w"}})  # fmt: skip


@pytest.mark.parametrize("shape", [(300, 500), (500, 300), (1365, 2048), (120, 90)])
def test_rtmdet_letterbox_maps_boxes_back_to_image_pixels(tmp_path, shape):
    """RTMDet contract: 320×320 letterbox, BGR normalised with mmdet's mean / std (a red pixel is > 0 only in the
    red channel after normalisation, 114 padding is < 0): the red rectangle comes back in image pixels."""
    path = tmp_path / "rtmdet_rect.onnx"
    _dynamic_rect(path, red_thr=1.0)  # red 255 → (255 − 123.675) / 58.395 = 2.25; padding 114 → −0.17
    det = PersonDetector(path, contract="rtmdet")
    assert det.input_size == (320, 320) and det.contract == RTMDET
    h, w = shape
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = int(0.2 * w), int(0.3 * h), int(0.7 * w), int(0.9 * h)
    img[y1:y2, x1:x2, 2] = 255
    x, r = det.preprocess(img)
    assert x.shape == (1, 3, 320, 320) and r == pytest.approx(min(320 / h, 320 / w))
    np.testing.assert_allclose(x[0, :, -1, -1], (114 - np.array(RTMDET.mean)) / np.array(RTMDET.std), rtol=1e-6)
    boxes, scores = det(img)
    assert len(boxes) == 1 and scores[0] == pytest.approx(0.9)
    np.testing.assert_allclose(boxes[0], [x1, y1, x2, y2], atol=1 / r + 1e-3)


def test_boxes_are_clipped_to_the_image_and_overlaps_suppressed(tmp_path):
    """Boxes reaching into the padding are clipped to the image; overlapping persons go through NMS at 0.3
    (mmpose's demo), other labels and low scores are dropped."""
    extras = np.array([[0, 0, 300, 300, 0.7, 0],  # IoU 0.88 with the whole canvas: suppressed
                       [200, 20, 260, 100, 0.6, 0],  # apart: kept
                       [10, 10, 60, 60, 0.95, 2],  # not a person
                       [100, 100, 140, 140, 0.29, 0]], np.float32)  # below 0.3  # fmt: skip
    path = tmp_path / "rtmdet_extras.onnx"
    # no red anywhere: detection 0 is the whole 320×320 canvas (score 0.9), padding included
    _dynamic_rect(path, extras, red_thr=1e9)
    det = PersonDetector(path, contract="rtmdet")
    img = np.zeros((200, 400, 3), np.uint8)  # r = 0.8: the image fills 320×160 of the canvas
    boxes, scores = det(img)
    np.testing.assert_allclose(scores, [0.9, 0.6])
    np.testing.assert_allclose(boxes, [[0, 0, 400, 200], [250, 25, 325, 125]], rtol=1e-6)
    det.nms_thr = 0.95
    np.testing.assert_allclose(det(img)[1], [0.9, 0.7, 0.6])


def test_contract_from_the_name_the_sidecar_or_the_argument(tmp_path):
    path = tmp_path / "rtmdet_tiny.onnx"
    _dynamic_rect(path)
    assert find_contract(path) == RTMDET
    other = tmp_path / "det.onnx"
    _dynamic_rect(other)
    assert find_contract(other) == YOLOX and PersonDetector(other).input_size == (640, 640)
    assert find_contract(other, "rtmdet") == RTMDET
    (tmp_path / "det.json").write_text(json.dumps({
        "kind": "detector", "format": "onnx", "input_names": ["input"], "output_names": ["dets", "labels"],
        "input_size": [256, 192], "color": "rgb", "mean": [1, 2, 3], "std": [4, 5, 6], "pad_value": 0,
    }))  # fmt: skip
    c = find_contract(other)
    assert (c.input_size, c.mean, c.std, c.to_rgb, c.pad_value) == ((256, 192), (1, 2, 3), (4, 5, 6), True, 0)
    with pytest.raises(ValueError, match="unknown detector contract"):
        find_contract(other, "ssd")


# ------------------------------------------------------------------------------------------------ real detectors


def _julito_78():
    image = cv2.imread(str(shared_path("data", "coco_dev", "julito", "images", "78.jpg")))
    gt = json.loads(shared_path("data", "coco_dev", "julito", "person_keypoints.json").read_text())
    image_id = next(im["id"] for im in gt["images"] if im["file_name"] == "78.jpg")
    boxes = [a["bbox"] for a in gt["annotations"] if a["image_id"] == image_id]
    return image, np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda z: np.prod(z[:, 2:] - z[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


@pytest.mark.parametrize("name", ["rtmdet-nano_person.onnx", "yolox_nano_8xb8-300e_humanart-40f6f0d0.onnx"])
def test_real_detectors_find_the_people_of_a_photo_and_nobody_in_grey(name):
    det = PersonDetector(shared_path("weights", name), threads=2)
    rtmdet = name.startswith("rtmdet")
    assert det.input_size == ((320, 320) if rtmdet else (416, 416))
    assert (det.contract.mean is not None) == rtmdet and not det.contract.to_rgb
    image, gt = _julito_78()
    boxes, scores = det(image)
    assert boxes.dtype == np.float32 and (scores > 0.3).all() and (np.diff(scores) <= 0).all()
    assert (boxes[:, 2:] <= [image.shape[1], image.shape[0]]).all() and (boxes >= 0).all()
    matched = (_iou(gt, boxes).max(axis=1) > 0.5).sum() if len(boxes) else 0
    assert matched >= 3, (boxes, gt)  # 4 annotated players; the one half hidden at the bottom may be missed
    grey = np.full((480, 640, 3), 127, np.uint8)
    empty_boxes, empty_scores = det(grey)
    assert empty_boxes.shape == (0, 4) and empty_scores.shape == (0,)


def test_the_shipped_default_detector_is_the_rtmdet_nano_file():
    """models/rtmdet-nano_person: the OpenMMLab RTMDet-nano (≤ 5 MB, Apache-2.0 card), found offline."""
    path = Path(default_detector())
    assert path == DEFAULT_DETECTOR_DIR / "model.onnx" and path.stat().st_size <= 5e6
    card = (DEFAULT_DETECTOR_DIR / "README.md").read_text()
    assert "Apache-2.0" in card and "OpenMMLab" in card
    det = load_detector("default", threads=1)
    assert isinstance(det, PersonDetector) and det.contract.mean == RTMDET.mean and det.input_size == (320, 320)
    assert (det.score_thr, det.nms_thr) == (0.3, 0.3)
    assert load_detector("none") is None and load_detector(None) is None
    shared = shared_path("weights", "rtmdet-nano_person.onnx")
    assert shared.read_bytes() == path.read_bytes()


def test_a_missing_default_detector_names_the_file(monkeypatch, tmp_path):
    import posedistill.infer.defaults as defaults

    monkeypatch.setattr(defaults, "DEFAULT_DETECTOR_DIR", tmp_path / "nowhere")
    with pytest.raises(PoseDataError, match=r"nowhere.*--detector none"):
        defaults.default_detector()
    monkeypatch.setenv("POSEDISTILL_DEFAULT_DETECTOR", "/some/det.onnx")
    assert defaults.default_detector() == "/some/det.onnx"


def test_pose_estimator_runs_the_default_detector_unless_told_not_to(tmp_path):
    """PoseEstimator(model) detects people on calls without boxes (the shipped detector, loaded on first use): a
    grey image gives nobody; detector=None / "none" makes the whole frame one person."""
    from tests.test_estimator import DotModel

    ppath = export_onnx(DotModel(17), tmp_path / "pose.onnx", layout="coco", input_size=(192, 256),
                        dynamic_batch=True)  # fmt: skip
    grey = np.full((240, 320, 3), 127, np.uint8)
    est = PoseEstimator(ppath)
    assert est._detector == "default"  # not loaded yet: calls with boxes never load it
    res = est(grey)
    assert isinstance(est.detector, PersonDetector) and len(res) == 0 and res.keypoints.shape == (0, 17, 2)
    image, _ = _julito_78()
    assert len(est(image)) >= 3
    for none in (None, "none"):
        whole = PoseEstimator(ppath, detector=none)(grey)
        np.testing.assert_array_equal(whole.boxes, [[0, 0, 320, 240]])
