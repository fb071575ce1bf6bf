"""PoseEstimator: pre/post-processing equal to an independent implementation of mmpose's top-down formulas,
ONNX vs PyTorch on the same crops, flip test, heatmap models, official-style ONNX files (no metadata, batch 1)
and the I/O contract errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from posedistill.codecs import HeatmapCodec
from posedistill.infer.estimator import PoseEstimator, TorchPoseModel
from posedistill.infer.export import export_onnx
from posedistill.infer.onnx_model import ModelContractError, OnnxPoseModel
from posedistill.infer.preprocess import MEAN_RGB, STD_RGB, preprocess
from posedistill.infer.results import PoseResult
from posedistill.layouts import get_layout
from posedistill.models import build_model

torch.set_num_threads(1)
W, H = 192, 256
# the legacy exporter's deprecation notice and tracer chatter about shape checks
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")


class DotModel(nn.Module):
    """SimCC "oracle": every keypoint's x logits are the per-column maximum of the red channel (each pixel
    repeated over its two bins), y likewise, so the decoded keypoint is the brightest red pixel of the crop."""

    def __init__(self, num_keypoints: int = 17) -> None:
        super().__init__()
        self.k = num_keypoints
        self.dummy = nn.Parameter(torch.zeros(()))  # gives the module a parameter (device / dtype lookups)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        red = x[:, 0] + self.dummy  # B×h×w, channel 0 = R after BGR -> RGB
        col = red.amax(dim=1)
        row = red.amax(dim=2)
        sx = torch.stack([col, col], dim=-1).flatten(1)
        sy = torch.stack([row, row], dim=-1).flatten(1)
        return sx[:, None].expand(-1, self.k, -1), sy[:, None].expand(-1, self.k, -1)


def scaled_rtmpose(name: str = "rtmpose-t", k: int = 17, size: tuple[int, int] = (W, H)) -> nn.Module:
    """A random RTMPose whose logits are O(1) (the default head init makes them ~1e-7, all near-ties)."""
    torch.manual_seed(0)
    m = build_model(name, k, size).eval()
    with torch.no_grad():
        for lin in (m.head.cls_x, m.head.cls_y, m.head.mlp[1]):
            nn.init.normal_(lin.weight, std=1.0)
    return m


def strip_metadata(src, dst) -> None:
    """An official-style file: same graph, no posedistill metadata."""
    proto = onnx.load(str(src))
    del proto.metadata_props[:]
    onnx.save(proto, str(dst))


def export_plain(model: nn.Module, path, k: int, names=("simcc_x", "simcc_y"), batch_dynamic: bool = False) -> None:
    """torch.onnx.export without posedistill metadata (how mmdeploy files look: input 'input', static batch 1)."""
    axes = {n: {0: "b"} for n in ("input", *names)} if batch_dynamic else None
    torch.onnx.export(model.eval(), (torch.zeros(1, 3, H, W),), str(path), dynamo=False, input_names=["input"],
                      output_names=list(names), opset_version=17, dynamic_axes=axes)  # fmt: skip


def dot_image(dots: list[tuple[float, float]], shape=(480, 640)) -> np.ndarray:
    img = np.full((*shape, 3), 30, np.uint8)
    img[..., 1] = np.linspace(0, 120, shape[1], dtype=np.uint8)[None]  # some structure in G
    for x, y in dots:
        cv2.circle(img, (round(x), round(y)), 2, (0, 0, 255), -1)
    return img


# ------------------------------------------------------------------------ independent mmpose formulas


def mmpose_crop(image: np.ndarray, box, input_size) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GetBBoxCenterScale(padding 1.25) + TopdownAffine + PoseDataPreprocessor for one xyxy box, written from
    mmpose 1.3.2's formulas: returns the (3, h, w) input, centre and aspect-fixed scale."""
    w, h = input_size
    x1, y1, x2, y2 = np.asarray(box, np.float32)
    center = np.array([x1 + x2, y1 + y2], np.float32) * 0.5
    scale = np.array([x2 - x1, y2 - y1], np.float32) * 1.25
    aspect = w / h
    if scale[0] > scale[1] * aspect:
        scale = np.array([scale[0], scale[0] / aspect], np.float32)
    else:
        scale = np.array([scale[1] * aspect, scale[1]], np.float32)

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]], np.float32)

    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, scale[0] * -0.5], np.float32)
    src[2] = third(src[0], src[1])
    dst[0] = [w * 0.5, h * 0.5]
    dst[1] = dst[0] + np.array([0.0, w * -0.5], np.float32)
    dst[2] = third(dst[0], dst[1])
    m = cv2.getAffineTransform(src, dst)
    crop = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR)
    rgb = crop[..., ::-1].astype(np.float32)
    x = (rgb - np.array(MEAN_RGB, np.float32)) / np.array(STD_RGB, np.float32)
    return x.transpose(2, 0, 1), center, scale


def mmpose_simcc_decode(sx: np.ndarray, sy: np.ndarray, center, scale, input_size, ratio: float = 2.0):
    """SimCCLabel.decode (argmax / ratio, score = min of the two maxima, −1 where score ≤ 0) and
    TopdownPoseEstimator's map back: p / input_size · scale + centre − scale / 2."""
    ix, iy = sx.argmax(-1), sy.argmax(-1)
    score = np.minimum(sx.max(-1), sy.max(-1))
    kp = np.stack([ix, iy], -1).astype(np.float32) / ratio
    kp[score <= 0] = -1
    return kp / np.asarray(input_size, np.float32) * scale + center - 0.5 * scale, score


BOXES = np.array([[40.5, 60.25, 250.0, 420.75], [330.0, 30.0, 600.0, 300.0], [-30.0, 200.0, 90.0, 500.0]], np.float32)


@pytest.fixture(scope="module")
def dot_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("dot") / "dot.onnx"
    export_onnx(DotModel(17), path, layout="coco", input_size=(W, H), dynamic_batch=True)
    return path


@pytest.fixture(scope="module")
def rtm(tmp_path_factory):
    model = scaled_rtmpose()
    path = tmp_path_factory.mktemp("rtm") / "rtm.onnx"
    export_onnx(model, path, dynamic_batch=True)
    return model, path


# ------------------------------------------------------------------------------------------------ tests


def test_preprocess_equals_mmpose_formulas():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    batch = preprocess(img, BOXES, (W, H))
    assert batch.inputs.shape == (3, 3, H, W) and batch.inputs.dtype == np.float32
    for i, box in enumerate(BOXES):
        ref, c, s = mmpose_crop(img, box, (W, H))
        np.testing.assert_array_equal(batch.inputs[i], ref)  # bit for bit
        np.testing.assert_array_equal(batch.centers[i], c)
        np.testing.assert_array_equal(batch.scales[i], s)


def test_estimator_equals_mmpose_pipeline_on_official_style_onnx(rtm, tmp_path):
    """An RTMPose ONNX without metadata and with batch 1 (as mmdeploy exports it) through PoseEstimator gives the
    keypoints and scores of the mmpose formulas run crop by crop on raw onnxruntime."""
    model, _ = rtm
    plain = tmp_path / "end2end.onnx"
    export_plain(model, plain, 17)
    img = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    est = PoseEstimator(plain)
    assert est.info.batch_size == 1 and est.info.metadata == {} and est.layout == "coco"
    res = est(img, boxes=BOXES)

    sess = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    for i, box in enumerate(BOXES):
        x, c, s = mmpose_crop(img, box, (W, H))
        sx, sy = sess.run(["simcc_x", "simcc_y"], {"input": x[None]})
        kp, score = mmpose_simcc_decode(sx[0], sy[0], c, s, (W, H))
        np.testing.assert_allclose(res.keypoints[i], kp, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(res.scores[i], score.astype(np.float32))


def test_estimator_finds_the_dot(dot_onnx):
    """End to end through crop + model + decode + inverse map: the keypoint lands on the drawn dot."""
    dots = [(150.0, 240.0), (470.0, 160.0)]
    img = dot_image(dots)
    boxes = np.array([[60, 90, 240, 400], [360, 40, 600, 290]], np.float32)
    res = PoseEstimator(dot_onnx)(img, boxes=boxes)
    assert isinstance(res, PoseResult) and res.keypoints.shape == (2, 17, 2)
    for i, (x, y) in enumerate(dots):
        px = max(boxes[i, 2] - boxes[i, 0], (boxes[i, 3] - boxes[i, 1]) * W / H) * 1.25 / W  # image px per crop px
        err = np.abs(res.keypoints[i] - np.array([x, y], np.float32)).max()
        assert err <= px + 0.5, (i, err, px)
    np.testing.assert_array_equal(res.box_scores, [1, 1])
    np.testing.assert_array_equal(res.track_ids, [-1, -1])
    assert res.image_shape == (480, 640) and res.layout == "coco"


def test_onnx_equals_torch_on_the_same_crops(rtm):
    model, path = rtm
    img = np.random.default_rng(2).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    est = PoseEstimator(path)
    res = est(img, boxes=BOXES)
    batch = preprocess(img, BOXES, (W, H))
    with torch.no_grad():
        sx, sy = (t.numpy() for t in model(torch.from_numpy(batch.inputs)))
    for i in range(len(BOXES)):
        kp, score = mmpose_simcc_decode(sx[i], sy[i], batch.centers[i], batch.scales[i], (W, H))
        np.testing.assert_allclose(res.keypoints[i], kp, atol=1e-4)
        np.testing.assert_allclose(res.scores[i], score, rtol=1e-4, atol=1e-5)
    # the same network run by PyTorch inside the estimator
    res_t = PoseEstimator(TorchPoseModel.from_module(model))(img, boxes=BOXES)
    np.testing.assert_allclose(res_t.keypoints, res.keypoints, atol=1e-4)
    np.testing.assert_allclose(res_t.scores, res.scores, rtol=1e-4, atol=1e-5)


def test_flip_test_equals_torch_flip_test(rtm):
    model, path = rtm
    img = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    res = PoseEstimator(path, flip_test=True)(img, boxes=BOXES)
    batch = preprocess(img, BOXES, (W, H))
    with torch.no_grad():
        sx, sy = (t.numpy() for t in model.flip_test(torch.from_numpy(batch.inputs), get_layout("coco").flip_indices))
    for i in range(len(BOXES)):
        kp, score = mmpose_simcc_decode(sx[i], sy[i], batch.centers[i], batch.scales[i], (W, H))
        np.testing.assert_allclose(res.keypoints[i], kp, atol=1e-4)
        np.testing.assert_allclose(res.scores[i], score, rtol=1e-4, atol=1e-5)
    plain = PoseEstimator(path)(img, boxes=BOXES)
    assert not np.allclose(plain.scores, res.scores)  # the flip changed something


def test_fixed_batch_loops_and_matches_dynamic(rtm, tmp_path, caplog):
    model, dyn = rtm
    fixed = tmp_path / "fixed.onnx"
    export_onnx(model, fixed, dynamic_batch=False)
    img = np.random.default_rng(4).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    est = PoseEstimator(fixed)
    assert est.info.batch_size == 1
    with caplog.at_level("DEBUG", logger="posedistill.infer.onnx_model"):
        a = est(img, boxes=BOXES)
    assert "fixed batch of 1" in caplog.text
    b = PoseEstimator(dyn)(img, boxes=BOXES)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-4)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4, atol=1e-5)


def test_no_boxes_means_whole_frame_and_empty_boxes_mean_nobody(dot_onnx):
    img = dot_image([(320.0, 240.0)])
    est = PoseEstimator(dot_onnx, detector=None)  # no detector: the whole frame is one person
    res = est(img)
    np.testing.assert_array_equal(res.boxes, [[0, 0, 640, 480]])
    np.testing.assert_allclose(res.keypoints[0, 0], [320, 240], atol=640 * 1.25 / W + 0.5)
    empty = est(img, boxes=np.zeros((0, 4)))
    assert len(empty) == 0 and empty.keypoints.shape == (0, 17, 2)
    with pytest.raises(ValueError, match="box scores"):
        est(img, boxes=BOXES[:2], box_scores=[0.5])
    scored = est(img, boxes=BOXES[:2], box_scores=[0.5, 0.7])
    np.testing.assert_allclose(scored.box_scores, [0.5, 0.7])


def test_image_path_and_callable_detector(dot_onnx, tmp_path):
    img = dot_image([(200.0, 200.0)])
    f = tmp_path / "frame.png"
    cv2.imwrite(str(f), img)
    det_boxes = np.array([[100, 80, 300, 380]], np.float32)
    est = PoseEstimator(dot_onnx, detector=lambda im: (det_boxes, np.array([0.9], np.float32)))
    res = est(f)
    np.testing.assert_array_equal(res.boxes, det_boxes)
    np.testing.assert_allclose(res.box_scores, [0.9])
    np.testing.assert_allclose(res.keypoints[0, 5], [200, 200], atol=300 * 1.25 / W + 0.5)


def test_heatmap_model(tmp_path):
    torch.manual_seed(0)
    model = build_model("cspnext-t-heatmap", 17, (W, H)).eval()
    path = export_onnx(model, tmp_path / "hm.onnx", dynamic_batch=True)
    est = PoseEstimator(path)
    assert est.info.kind == "heatmap" and est.info.output_names == ("heatmaps",)
    img = np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    res = est(img, boxes=BOXES)
    batch = preprocess(img, BOXES, (W, H))
    with torch.no_grad():
        hm = model(torch.from_numpy(batch.inputs)).numpy()
    kp, score = HeatmapCodec((W, H), (W // 4, H // 4)).decode(hm)
    s, c = batch.scales[:, None], batch.centers[:, None]
    ref = kp / np.array([W, H], np.float32) * s + c - 0.5 * s
    np.testing.assert_allclose(res.keypoints, ref, atol=1e-3)
    np.testing.assert_allclose(res.scores, score, rtol=1e-4, atol=1e-6)


def test_udp_heatmap_codec_from_metadata_uses_udp_crops(tmp_path):
    torch.manual_seed(0)
    model = build_model("cspnext-t-heatmap", 17, (W, H)).eval()
    codec = {"type": "heatmap", "input_size": [W, H], "heatmap_size": [W // 4, H // 4], "sigma": 2.0,
             "unbiased": True, "udp": True}  # fmt: skip
    path = export_onnx(model, tmp_path / "udp.onnx", meta={"codec": codec, "layout": "coco"})
    est = PoseEstimator(path)
    assert est.info.udp
    img = np.random.default_rng(6).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    res = est(img, boxes=BOXES[:1])
    batch = preprocess(img, BOXES[:1], (W, H), udp=True)
    with torch.no_grad():
        hm = model(torch.from_numpy(batch.inputs)).numpy()
    kp, _ = HeatmapCodec((W, H), (W // 4, H // 4), unbiased=True, udp=True).decode(hm)
    s, c = batch.scales[:, None], batch.centers[:, None]
    ref = kp / (np.array([W, H], np.float32) - 1) * s + c - 0.5 * s
    np.testing.assert_allclose(res.keypoints, ref, atol=1e-3)


def test_layout_from_k_and_override(tmp_path):
    wb = tmp_path / "wb.onnx"
    export_plain(DotModel(133), wb, 133)
    assert PoseEstimator(wb).layout == "coco_wholebody"
    k14 = tmp_path / "k14.onnx"
    export_plain(DotModel(14), k14, 14)
    with pytest.raises(ModelContractError, match=r"k14\.onnx.*14 keypoints.*layout="):
        PoseEstimator(k14)
    assert PoseEstimator(k14, layout="crowdpose").layout == "crowdpose"
    with pytest.raises(ModelContractError, match=r"k14\.onnx.*coco.*17"):
        PoseEstimator(k14, layout="coco")


class _TwoInputs(nn.Module):
    def forward(self, a, b):
        return a[:, :1].flatten(2), b[:, :1].flatten(2)


class _HeatmapLike(nn.Module):
    def forward(self, x):
        return x[:, 0]  # rank 3 single output: neither contract


@pytest.mark.parametrize("case", ["two_inputs", "one_channel", "bad_outputs", "garbage", "missing"])
def test_contract_errors_name_the_file(tmp_path, case):
    path = tmp_path / f"{case}.onnx"
    if case == "two_inputs":
        torch.onnx.export(_TwoInputs(), (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)), str(path), dynamo=False,
                          input_names=["a", "b"])  # fmt: skip
    elif case == "one_channel":
        torch.onnx.export(DotModel(17), (torch.zeros(1, 1, H, W),), str(path), dynamo=False, input_names=["input"],
                          output_names=["simcc_x", "simcc_y"])  # fmt: skip
    elif case == "bad_outputs":
        torch.onnx.export(_HeatmapLike(), (torch.zeros(1, 3, H, W),), str(path), dynamo=False, input_names=["input"],
                          output_names=["out"])  # fmt: skip
    elif case == "garbage":
        path.write_bytes(b"not an onnx file at all")
    with pytest.raises(ModelContractError) as e:
        OnnxPoseModel(path)
    assert str(path) in str(e.value)
    expect = {"two_inputs": "one input", "one_channel": "3 channels", "bad_outputs": "simcc_x",
              "garbage": "cannot load", "missing": "no such"}[case]  # fmt: skip
    assert expect in str(e.value)


def test_unnamed_simcc_outputs_are_told_apart_by_bins(tmp_path):
    """Official files whose outputs are not named simcc_x / simcc_y: x is the output with W·r bins."""
    swapped = tmp_path / "yx.onnx"

    class YX(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = DotModel(17)

        def forward(self, x):
            sx, sy = self.m(x)
            return sy, sx

    export_plain(YX(), swapped, 17, names=("out_a", "out_b"))
    est = PoseEstimator(swapped)
    assert est.info.output_names == ("out_b", "out_a")
    img = dot_image([(300.0, 200.0)])
    res = est(img, boxes=[[200, 100, 400, 350]])
    np.testing.assert_allclose(res.keypoints[0, 0], [300, 200], atol=250 * 1.25 / W + 0.5)


def test_checkpoint_runs_under_torch_and_matches_its_onnx(tmp_path):
    from posedistill.engine.checkpoint import save_checkpoint

    model = scaled_rtmpose()
    codec = {"type": "simcc", "input_size": [W, H], "sigma": [4.9, 5.66], "split_ratio": 2.0}
    ckpt = save_checkpoint(tmp_path / "ckpt", model, {"layout": "coco", "input_size": [W, H], "codec": codec})
    img = np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    est = PoseEstimator(ckpt)
    assert isinstance(est.model, TorchPoseModel) and est.info.codec == codec
    onnx_path = export_onnx(model, tmp_path / "m.onnx", meta=json.loads((ckpt / "meta.json").read_text()))
    a, b = est(img, boxes=BOXES), PoseEstimator(onnx_path)(img, boxes=BOXES)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-4)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4, atol=1e-5)


def test_presets_and_openpose_arrays(dot_onnx, tmp_path):
    from posedistill.infer.presets import BODY_MODES, WHOLEBODY_MODES, Body, Wholebody, to_openpose_arrays

    for modes in (BODY_MODES, WHOLEBODY_MODES):
        assert set(modes) == {"lightweight", "balanced", "performance"}
        for p in modes.values():
            assert p.det.startswith("https://download.openmmlab.com/") and p.det.endswith(".zip")
            assert p.pose.startswith("https://download.openmmlab.com/") and p.pose.endswith(".zip")
    with pytest.raises(ValueError, match="mode"):
        Body(mode="fast")

    rng = np.random.default_rng(8)
    kp = rng.uniform(0, 100, (2, 133, 2)).astype(np.float32)
    sc = rng.uniform(0, 1, (2, 133)).astype(np.float32)
    k134, s134 = to_openpose_arrays(kp, sc, "coco_wholebody")
    assert k134.shape == (2, 134, 2) and s134.shape == (2, 134)
    np.testing.assert_allclose(k134[:, 1], (kp[:, 5] + kp[:, 6]) / 2)  # neck
    np.testing.assert_allclose(s134[:, 1], np.minimum(sc[:, 5], sc[:, 6]))
    np.testing.assert_array_equal(k134[:, [0, 2, 5, 14, 15]], kp[:, [0, 6, 5, 2, 1]])  # nose, r/l shoulder, r/l eye
    np.testing.assert_array_equal(k134[:, 18:], kp[:, 17:])  # feet, face, hands follow in their own order

    wb = tmp_path / "wb.onnx"
    export_onnx(DotModel(133), wb, layout="coco_wholebody", input_size=(W, H), dynamic_batch=True)
    img = dot_image([(300.0, 200.0)])
    det = lambda im: (np.array([[200, 100, 400, 350]], np.float32), np.array([0.8], np.float32))  # noqa: E731
    kpts, scores = Wholebody(det=det, pose=wb)(img)
    assert kpts.shape == (1, 133, 2) and scores.shape == (1, 133)
    kpts, scores = Wholebody(det=det, pose=wb, to_openpose=True)(img)
    assert kpts.shape == (1, 134, 2)
    res = Body(det=det, pose=dot_onnx).predict(img)
    assert isinstance(res, PoseResult) and res.box_scores[0] == pytest.approx(0.8)


def test_grey_and_bgra_images(dot_onnx):
    est = PoseEstimator(dot_onnx, detector=None)
    img = dot_image([(320.0, 240.0)])
    ref = est(img)
    grey = est(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    assert grey.keypoints.shape == (1, 17, 2)
    bgra = est(cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))
    np.testing.assert_array_equal(bgra.keypoints, ref.keypoints)
    with pytest.raises(ValueError, match="uint8"):
        est(img.astype(np.float32))


@pytest.mark.parametrize("workers, micro", [(2, 2), (3, 1), (4, 3)])
def test_sharded_execution_matches_one_call(rtm, tmp_path, workers, micro):
    """Crops sharded over single-threaded worker sessions give the outputs of one plain session.run, in order,
    for dynamic- and fixed-batch files and any number of crops."""
    model, dyn = rtm
    fixed = tmp_path / "fixed.onnx"
    export_onnx(model, fixed, dynamic_batch=False)
    x = np.random.default_rng(9).standard_normal((5, 3, H, W)).astype(np.float32)
    ref = OnnxPoseModel(dyn, workers=1).run(x)
    for path in (dyn, fixed):
        m = OnnxPoseModel(path, workers=workers, micro_batch=micro)
        for n in (5, 2, 1):
            got = m.run(x[:n])
            assert len(got) == 2
            for a, b in zip(got, ref):
                np.testing.assert_allclose(a, b[:n], rtol=1e-5, atol=1e-6)
        m.close()
