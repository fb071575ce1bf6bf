"""Real pretrained heatmap teachers: PP-TinyPose in ncnn (shipped in models/, and the files in ../shared/weights),
heatmap ONNX models, their flip test, ``load_teacher`` specs, and PP-TinyPose's COCO AP on real people.

Measured (GT boxes, one thread; ``test_pp_tinypose_ap_on_julito`` checks the first row):

| set | people | PP-TinyPose 256×192 | with flip test | PP-TinyPose 128×96 |
| --- | ---: | ---: | ---: | ---: |
| coco_dev/julito | 165 | AP 0.791 (AP50 0.980) | 0.808 | 0.692 |
| coco_dev/coco_mini_train | 167 | AP 0.551 (AP50 0.801) | 0.571 | |
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from posedistill.codecs import HeatmapCodec, flip_heatmaps
from posedistill.infer.estimator import PoseEstimator
from posedistill.infer.hub import resolve_model
from posedistill.infer.preprocess import keypoints_to_image, preprocess
from posedistill.label.teachers import PoseModelTeacher, load_teacher, split_options
from tests.conftest import ROOT, shared_path

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SHIPPED = ROOT / "models" / "pp-tinypose_256x192" / "pp-tinypose_256x192_ncnn.param"


@pytest.fixture(scope="module")
def julito_image() -> tuple[np.ndarray, np.ndarray]:
    """One julito photo and its ground-truth person boxes (xyxy)."""
    from posedistill.data.image_io import read_image
    from posedistill.label.pipeline import jobs_from_annotations, read_people, xyxy

    jobs = jobs_from_annotations(read_people(shared_path("data", "coco_dev", "julito", "person_keypoints.json")))
    job = max(jobs[:10], key=lambda j: len(j.boxes))
    return read_image(job.image_path), xyxy(job.boxes)


def test_shipped_pp_tinypose_by_name():
    pytest.importorskip("ncnn")
    est = PoseEstimator("pp-tinypose", threads=1)
    info = est.info
    assert info.path == str(SHIPPED) and info.kind == "heatmap" and info.layout == "coco"
    assert info.input_size == (192, 256) and info.to_rgb and info.padding == 1.25
    assert info.codec == {"type": "heatmap", "input_size": [192, 256], "heatmap_size": [48, 64], "sigma": 2.0,
                          "unbiased": True, "udp": False}  # fmt: skip
    assert "NcnnPoseModel" in repr(est.model) and est.model.threads == 1
    img = np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    res = est(img, boxes=[[10, 10, 150, 290], [50, 0, 200, 300]])
    assert res.keypoints.shape == (2, 17, 2) and res.scores.shape == (2, 17) and np.isfinite(res.keypoints).all()
    assert est(img, boxes=np.zeros((0, 4))).keypoints.shape == (0, 17, 2)
    assert resolve_model("PP-TinyPose") == SHIPPED and resolve_model("pp-tinypose_256x192") == SHIPPED
    with pytest.raises(ValueError, match=r"shipped model's name: .*pp-tinypose"):
        resolve_model("pp-tinypos")


def test_ncnn_runtime_is_torch_free():
    pytest.importorskip("ncnn")
    from tests.test_runtime_torchfree import BLOCK_TORCH

    code = BLOCK_TORCH + textwrap.dedent("""
        import sys
        import numpy as np
        from posedistill.infer import PoseEstimator
        res = PoseEstimator("pp-tinypose", flip_test=True)(np.zeros((64, 48, 3), np.uint8), boxes=[[0, 0, 48, 64]])
        assert res.keypoints.shape == (1, 17, 2)
        print("TORCH" if any(m == "torch" or m.startswith("torch.") for m in sys.modules) else "NO_TORCH")
    """)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NO_TORCH" in proc.stdout


def test_ncnn_estimator_is_the_topdown_pipeline_with_flip(julito_image):
    pytest.importorskip("ncnn")
    image, boxes = julito_image
    est = PoseEstimator("pp-tinypose", threads=1, flip_test=True)
    res = est(image, boxes=boxes)
    # by hand: mmpose crops, the network on each crop and its mirror, heatmaps flipped back with the 1-px shift
    batch = preprocess(image, boxes, (192, 256))
    hm = est.model.run(batch.inputs)[0]
    hm_f = est.model.run(np.ascontiguousarray(batch.inputs[..., ::-1]))[0]
    avg = (hm + flip_heatmaps(hm_f, est.info.flip_indices, shift=True)) * 0.5
    kp, sc = HeatmapCodec((192, 256), (48, 64), sigma=2.0, unbiased=True).decode(avg)
    np.testing.assert_allclose(res.keypoints, keypoints_to_image(kp, batch.centers, batch.scales, (192, 256)),
                               atol=1e-3)  # fmt: skip
    np.testing.assert_allclose(res.scores, sc, atol=1e-6)
    assert np.median(sc) > 0.5  # real people: confident heatmaps
    # the shared copy (by .param or .bin, its sidecar from models/sidecars) is the same network
    shared = shared_path("weights", "pp-tinypose_256x192_ncnn.bin")
    other = PoseEstimator(shared, threads=1, flip_test=True)(image, boxes=boxes)
    np.testing.assert_allclose(other.keypoints, res.keypoints, atol=1e-4)


def test_pp_tinypose_128x96_from_its_repo_sidecar(julito_image):
    pytest.importorskip("ncnn")
    est = PoseEstimator(shared_path("weights", "pp-tinypose_128x96_ncnn.param"), threads=1)
    assert est.info.input_size == (96, 128) and est.info.codec["heatmap_size"] == [24, 32]
    image, boxes = julito_image
    small, big = est(image, boxes=boxes), PoseEstimator("pp-tinypose", threads=1)(image, boxes=boxes)
    # two models of one family on the same people: most points within a few pixels of each other
    scale = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None]
    assert np.median(np.linalg.norm(small.keypoints - big.keypoints, axis=-1) / scale) < 0.05


def _coco_ap(model: str, dataset: str, flip: bool) -> float:
    from posedistill.data.image_io import read_image
    from posedistill.eval.coco import coco_eval, results_to_coco
    from posedistill.label.pipeline import jobs_from_annotations, read_people, xyxy

    gt = shared_path("data", "coco_dev", dataset, "person_keypoints.json")
    est = PoseEstimator(model, threads=1, flip_test=flip)
    ids, kps, scores, inst = [], [], [], []
    for job in jobs_from_annotations(read_people(gt)):
        kp, sc = est.predict(read_image(job.image_path), xyxy(job.boxes))
        for k, s in zip(kp, sc):
            ids.append(job.image_id)
            kps.append(k)
            scores.append(s)
            inst.append(s[s > 0.2].mean() if (s > 0.2).any() else 0.0)  # mmpose's rescoring
    results = results_to_coco(ids, np.array(kps), np.array(scores), np.array(inst), "coco")
    return coco_eval(gt, results, "coco")["body"]["AP"]


@pytest.mark.slow
def test_pp_tinypose_ap_on_julito():
    """COCO AP with ground-truth boxes: 0.791 measured (PaddleDetection reports 0.647 on held-out COCO val, a
    harder set; coco_mini_train here: 0.551). A broken crop, colour order or decoder costs far more than 0.05."""
    pytest.importorskip("ncnn")
    ap = _coco_ap("pp-tinypose", "julito", flip=False)
    assert 0.75 < ap < 0.85, ap


def test_missing_ncnn_names_the_package_and_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ncnn", None)  # import ncnn -> ImportError
    with pytest.raises(ImportError, match=r"pip install ncnn.*posedistill\[train\]"):
        PoseEstimator("pp-tinypose")


# ---------------------------------------------------------------------------------------------- ONNX heatmaps


@pytest.fixture(scope="module")
def heatmap_onnx(tmp_path_factory):
    """A small real heatmap network (posedistill's CSPNeXt-t heatmap model) as an official-style ONNX file: no
    posedistill metadata, no sidecar."""
    torch = pytest.importorskip("torch")
    from posedistill.models import build_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_model("cspnext-t-heatmap", 17, (64, 96)).eval()
    path = tmp_path_factory.mktemp("onnx") / "heatmap_model.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 96, 64),), str(path), dynamo=False, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "n"}, "output": {0: "n"}})  # fmt: skip
    return path, model


def test_onnx_heatmap_model_without_metadata_decodes_with_dark_and_flips(heatmap_onnx):
    torch = pytest.importorskip("torch")
    path, model = heatmap_onnx
    est = PoseEstimator(path, threads=1, flip_test=True)
    info = est.info
    assert info.kind == "heatmap" and info.output_names == ("output",) and info.layout == "coco"
    assert info.codec["unbiased"] is True and info.codec["heatmap_size"] == [16, 24] and info.batch_size is None
    img = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[20, 10, 150, 230], [140, 30, 300, 220]], np.float32)
    res = est(img, boxes=boxes)
    batch = preprocess(img, boxes, (64, 96))
    with torch.no_grad():
        hm = model(torch.from_numpy(batch.inputs)).numpy()
        hm_f = model(torch.from_numpy(np.ascontiguousarray(batch.inputs[..., ::-1]))).numpy()
    avg = (hm + flip_heatmaps(hm_f, info.flip_indices, shift=True)) * 0.5
    kp, sc = HeatmapCodec((64, 96), (16, 24), sigma=2.0, unbiased=True).decode(avg)
    np.testing.assert_allclose(res.keypoints, keypoints_to_image(kp, batch.centers, batch.scales, (64, 96)),
                               atol=2e-3)  # fmt: skip
    np.testing.assert_allclose(res.scores, sc, rtol=1e-4, atol=1e-5)


def test_load_teacher_specs(heatmap_onnx, tmp_path):
    pytest.importorskip("ncnn")
    assert split_options("pp-tinypose:flip") == ("pp-tinypose", {"flip": True})
    assert split_options("https://host/m.onnx") == ("https://host/m.onnx", {})
    assert split_options("C:/models/m.onnx:flip") == ("C:/models/m.onnx", {"flip": True})
    t = load_teacher("pp-tinypose:flip")
    assert isinstance(t, PoseModelTeacher) and t.estimator.flip_test and "flip test" in t.name
    assert t.defined[:17].all() and not t.defined[17:].any()
    assert not load_teacher("pp-tinypose").estimator.flip_test
    onnx_teacher = load_teacher(f"{heatmap_onnx[0]}:flip")
    assert isinstance(onnx_teacher, PoseModelTeacher) and onnx_teacher.estimator.flip_test
    img = np.random.default_rng(2).integers(0, 255, (200, 160, 3), dtype=np.uint8)
    out = load_teacher(str(SHIPPED))(img, np.array([[10, 10, 150, 190]], np.float32))
    assert out.keypoints.shape == (1, 133, 2) and out.labelled[0, :17].any() and not out.labelled[0, 17:].any()
    with pytest.raises(ValueError, match="no such file"):
        load_teacher("no-such-model:flip")
    with pytest.raises(ValueError, match="MediaPipe takes no options"):
        load_teacher("mediapipe:flip")
