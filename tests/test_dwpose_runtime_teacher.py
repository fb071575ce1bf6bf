"""DWPose stage 1 with a runtime (black-box) heatmap teacher: the crop conversion, heatmap → SimCC soft targets in
the student's bins, the method's losses without FeaLoss, the teacher cache, the config route, and the real
PP-TinyPose's targets on real people."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from posedistill.codecs import SimCCCodec, heatmaps_to_simcc, simcc_logits
from posedistill.distill.dwpose import DWPoseMethod, from_config
from posedistill.distill.runtime_teacher import RuntimeTeacher
from posedistill.distill.teacher_cache import TeacherCache, cached_forward
from posedistill.engine.config import ConfigError, config_from_dict
from posedistill.infer.onnx_model import PoseModelInfo
from posedistill.infer.preprocess import preprocess
from posedistill.layouts import get_layout
from posedistill.models import build_model
from tests.conftest import shared_path

SIZE = (48, 64)  # student (w, h)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class StubHeatmapModel:
    """A runtime 'model' that returns one peak per keypoint at fixed heatmap pixels and records its inputs."""

    def __init__(self, input_size=SIZE, stride: int = 4, to_rgb: bool = True, mean=(123.675, 116.28, 103.53),
                 std=(58.395, 57.12, 57.375)) -> None:  # fmt: skip
        w, h = input_size
        self.hw = (h // stride, w // stride)
        self.info = PoseModelInfo(
            path="stub.onnx", kind="heatmap", input_name="input", output_names=("heatmaps",), input_size=input_size,
            num_keypoints=17, layout="coco", codec={"type": "heatmap", "input_size": list(input_size),
            "heatmap_size": [self.hw[1], self.hw[0]], "sigma": 2.0, "unbiased": True}, mean=mean, std=std,
            to_rgb=to_rgb, flip_indices=tuple(get_layout("coco").flip_indices),
        )  # fmt: skip
        self.peaks = [(2 + k % 5, 3 + k % 7) for k in range(17)]  # (x, y) heatmap pixels
        self.inputs: list[np.ndarray] = []

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        self.inputs.append(inputs.copy())
        hm = np.zeros((len(inputs), 17, *self.hw), np.float32)
        for k, (x, y) in enumerate(self.peaks):
            hm[:, k, y, x] = 1.0
        return (hm,)


def test_runtime_teacher_gives_the_heatmaps_simcc_logits():
    stub = StubHeatmapModel()
    rt = RuntimeTeacher(stub, "coco", SIZE, split_ratio=2.0, beta=10.0)
    crops = np.random.default_rng(0).standard_normal((3, 3, SIZE[1], SIZE[0])).astype(np.float32)
    x, y = rt.simcc(crops)
    assert x.shape == (3, 17, 96) and y.shape == (3, 17, 128) and rt.num_bins == (96, 128)
    np.testing.assert_array_equal(stub.inputs[0], crops)  # same contract: the crops go in untouched
    px, py, _ = heatmaps_to_simcc(stub.run(crops)[0], SIZE, 2.0)
    np.testing.assert_allclose(x, simcc_logits(px, 10.0), atol=1e-6)
    assert [int(i) for i in x[0].argmax(-1)] == [8 * px_ for px_, _ in stub.peaks]
    # KDLoss's softmax(beta * logits) gives the probabilities back
    np.testing.assert_allclose(torch.softmax(10.0 * torch.from_numpy(y), -1).numpy(), py, atol=1e-6)
    with pytest.raises(ValueError, match="layout 'coco', the student 'lsp'"):
        RuntimeTeacher(stub, "lsp", SIZE)
    with pytest.raises(ValueError, match="aspect ratios"):
        RuntimeTeacher(stub, "coco", (64, 64))


def test_teacher_at_another_size_and_colour_order_sees_the_same_crop():
    img = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    img = __import__("cv2").GaussianBlur(img, (9, 9), 3)  # smooth, so that two resamplings agree closely
    box = np.array([[30, 10, 110, 110]], np.float32)
    student = preprocess(img, box, SIZE).inputs
    stub = StubHeatmapModel((96, 128), to_rgb=False, mean=(0, 0, 0), std=(1, 1, 1))  # BGR, raw pixels, 2x size
    rt = RuntimeTeacher(stub, "coco", SIZE)
    got = rt.teacher_inputs(student)
    direct = preprocess(img, box, (96, 128), mean=(0, 0, 0), std=(1, 1, 1), to_rgb=False).inputs
    assert got.shape == direct.shape == (1, 3, 128, 96)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert np.abs(got[inner] - direct[inner]).mean() < 2.0  # 0-255 pixel values
    # heatmap pixel i of the 2x teacher = teacher input 4i = student input 2i = student bin 4i
    x, _ = rt.simcc(student)
    assert [int(i) for i in x[0].argmax(-1)] == [4 * px_ for px_, _ in stub.peaks]


def _rtm(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("rtmpose-t", 17, input_size=SIZE)


def test_dwpose_stage1_with_a_runtime_teacher_has_no_feature_loss_and_caches(tmp_path):
    rt = RuntimeTeacher(StubHeatmapModel(), "coco", SIZE)
    codec = SimCCCodec(SIZE, sigma=(1.2, 1.4))
    method = DWPoseMethod(1, _rtm(0), rt, codec, "coco", max_epochs=4)
    assert method.runtime_teacher is rt and method.fea_loss is None
    assert set(method.models()) == {"student"} and method.frozen_modules() == {}
    assert set(method.trainable_modules()) == {"student"}
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(2, 3, SIZE[1], SIZE[0], generator=g), "x_labels": torch.rand(2, 17, 96),
             "y_labels": torch.rand(2, 17, 128), "weights": torch.ones(2, 17)}  # fmt: skip
    method.train()
    losses = method.losses(batch, epoch=1)
    assert set(losses) == {"loss_kpt", "loss_kd"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert method.student.head.cls_x.weight.grad is not None
    # the cache stores the converted logits, keyed by the crop bytes
    fp = rt.fingerprint("x")
    assert fp == RuntimeTeacher(StubHeatmapModel(), "coco", SIZE).fingerprint("x")
    assert fp != RuntimeTeacher(StubHeatmapModel(), "coco", SIZE, flip_test=True).fingerprint("x")
    cache = TeacherCache(tmp_path, fp, ("simcc_x", "simcc_y"))
    first = cached_forward(cache, rt, batch["image"])
    again = cached_forward(cache, rt, batch["image"])
    assert cache.stats.hits == 2 and torch.equal(first["simcc_x"], again["simcc_x"])
    with pytest.raises(ValueError, match="stage-1 teacher"):
        DWPoseMethod(2, _rtm(0), rt, codec, "coco", max_epochs=4)


def _cfg(teacher: str, stage: int = 1, size=(192, 256)) -> dict:
    return {
        "model": {"name": "rtmpose-t", "input_size": list(size)},
        "codec": {"type": "simcc", "sigma": [4.9, 5.66], "split_ratio": 2.0},
        "data": {"layout": "coco", "train": [], "val": []},
        "train": {"epochs": 2, "device": "cpu"},
        "method": {"type": "dwpose", "args": {"stage": stage, "teacher": teacher}},
    }


def test_config_route_to_the_shipped_pp_tinypose():
    pytest.importorskip("ncnn")
    method = from_config(config_from_dict(_cfg("pp-tinypose:flip"), "s1.yaml"))
    rt = method.runtime_teacher
    assert rt is not None and rt.flip_test and rt.num_bins == (384, 512) and rt.beta == 10.0
    with pytest.raises(ConfigError, match=r"method\.args\.teacher.*stage-1 teacher"):
        from_config(config_from_dict(_cfg("pp-tinypose", stage=2), "s2.yaml"))
    with pytest.raises(ConfigError, match=r"method\.args\.teacher.*no such file"):
        from_config(config_from_dict(_cfg("no-such-teacher.onnx"), "s1.yaml"))
    assert yaml.safe_dump(_cfg("x"))  # the dict is a plain config


def test_real_pp_tinypose_targets_point_at_its_keypoints():
    """On real people the KD targets' peaks decode to PP-TinyPose's own keypoints: within one heatmap pixel (4 px),
    since the targets peak at the argmax of each marginal and the estimator adds DARK's sub-pixel step."""
    pytest.importorskip("ncnn")
    from posedistill.data.image_io import read_image
    from posedistill.infer.estimator import PoseEstimator
    from posedistill.label.pipeline import jobs_from_annotations, read_people, xyxy

    job = jobs_from_annotations(read_people(shared_path("data", "coco_dev", "julito", "person_keypoints.json")))[0]
    image, boxes = read_image(job.image_path), xyxy(job.boxes)
    est = PoseEstimator("pp-tinypose", threads=1)
    crops = preprocess(image, boxes, (192, 256)).inputs
    kp_crop, scores = est.infer_crops(crops)
    rt = RuntimeTeacher(est.model, "coco", (192, 256))
    x, y = rt.simcc(crops)
    peaks = np.stack([x.argmax(-1), y.argmax(-1)], -1) / 2.0
    good = scores > 0.3
    err = np.abs(peaks - kp_crop)[good]
    assert good.sum() > 10 and err.max() <= 4.0 and np.median(err) < 1.5


@pytest.mark.slow
def test_distill_command_with_pp_tinypose_teacher(tmp_path):
    """``posedistill distill`` stage 1, a 96×128 student, the shipped 192×256 PP-TinyPose (flip test) as teacher,
    teacher outputs cached: runs, logs the KD term and no feature term."""
    pytest.importorskip("ncnn")
    import json

    from posedistill.cli import main

    ann = str(shared_path("data", "coco_dev", "julito", "person_keypoints.json"))
    cfg = _cfg("pp-tinypose:flip", size=(96, 128))
    cfg["codec"]["sigma"] = [2.45, 2.83]
    cfg["data"] = {"layout": "coco", "aug": {}, "train": [{"format": "coco", "path": ann, "indices": "0:4"}],
                   "val": [{"format": "coco", "path": ann, "indices": "100:102"}]}  # fmt: skip
    cfg["train"] = {"epochs": 1, "batch_size": 4, "num_workers": 0, "progress": False, "tensorboard": False,
                    "val_interval": 1, "log_interval": 1, "device": "cpu"}  # fmt: skip
    cfg["method"]["args"]["cache_dir"] = str(tmp_path / "cache")
    path = tmp_path / "s1.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["distill", str(path), "--work-dir", str(tmp_path / "w")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["type"] == "train"]
    assert train and all("loss_kd" in r and "loss_fea" not in r for r in train)
    assert list((tmp_path / "cache").glob("*.sqlite"))
