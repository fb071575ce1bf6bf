"""``posedistill predict``: COCO-17 keypoint results for the images of a COCO GT file (GT or detected boxes) that
``posedistill coco-eval`` scores, on a few real julito photos; the GT-file errors; the COCO-17 mapping and the
mmpose-style instance scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posedistill.cli import main
from posedistill.commands.predict import find_image_dir, read_ground_truth, to_coco17
from tests.conftest import shared_path

IMAGES = ("78.jpg", "46.jpg", "6.jpg")  # small photos with 4, 3 and 3 annotated players


@pytest.fixture(scope="module")
def small_gt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The julito GT cut down to three images, in a folder whose images/ is the julito image folder."""
    src = shared_path("data", "coco_dev", "julito")
    gt = json.loads((src / "person_keypoints.json").read_text())
    images = [im for im in gt["images"] if im["file_name"] in IMAGES]
    ids = {im["id"] for im in images}
    gt = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
    folder = tmp_path_factory.mktemp("gt")
    (folder / "images").symlink_to(src / "images")
    (folder / "gt.json").write_text(json.dumps(gt))
    return folder / "gt.json"


def _coco_eval_ap(gt: Path, results: Path, capsys) -> float:
    assert main(["coco-eval", str(gt), str(results), "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["body"]["AP"]


def test_predict_gt_boxes_writes_coco_results_that_coco_eval_scores(small_gt, tmp_path, capsys):
    """The shipped whole-body default model: 133 points mapped to COCO-17, one result per GT person, each scored
    box score (1) × the mean of its keypoint scores above 0.2."""
    out = tmp_path / "res.json"
    assert main(["predict", str(small_gt), "--model", "default", "--boxes", "gt", "--out", str(out), "--quiet",
                 "--threads", "2", "--nms-thr", "1"]) == 0  # fmt: skip
    assert "10 results for 3 images" in capsys.readouterr().out
    recs = json.loads(out.read_text())
    gt = json.loads(small_gt.read_text())
    assert sorted({r["image_id"] for r in recs}) == sorted(im["id"] for im in gt["images"])
    for r in recs:
        kp = np.asarray(r["keypoints"]).reshape(17, 3)
        s = kp[:, 2]
        assert r["category_id"] == 1
        assert r["score"] == pytest.approx(s[s > 0.2].mean() if (s > 0.2).any() else 0.0, rel=1e-6)
    assert 0.0 <= _coco_eval_ap(small_gt, out, capsys) <= 1.0


def test_predict_detected_boxes_with_a_real_teacher(small_gt, tmp_path, capsys):
    """PP-TinyPose (ncnn) on GT and on detected boxes: a real COCO-17 teacher scores well on both."""
    pytest.importorskip("ncnn")
    weights = shared_path("weights", "pp-tinypose_128x96_ncnn.param")
    aps = {}
    for boxes in ("gt", "detect"):
        out = tmp_path / f"{boxes}.json"
        rc = main(["predict", str(small_gt), "--model", str(weights), "--boxes", boxes, "--out", str(out),
                   "--images", str(small_gt.parent / "images"), "--quiet", "--threads", "1"])  # fmt: skip
        assert rc == 0, capsys.readouterr().err
        capsys.readouterr()
        aps[boxes] = _coco_eval_ap(small_gt, out, capsys)
    assert aps["gt"] > 0.5 and aps["detect"] > 0.4, aps


@pytest.mark.parametrize(
    "doc, boxes, field",
    [
        ({"annotations": []}, "gt", "images"),
        ({"images": [], "annotations": []}, "detect", "images"),
        ({"images": [{"id": 1, "file_name": "78.jpg"}]}, "gt", "annotations"),
        ({"images": [{"id": 1, "file_name": "78.jpg"}], "annotations": [{"id": 7, "image_id": 1}]}, "gt", "bbox"),
        ({"images": [{"id": 1, "file_name": "nope.jpg"}], "annotations": []}, "detect", "file_name"),
    ],
)
def test_predict_errors_name_the_file_and_the_field(tmp_path, capsys, doc, boxes, field):
    (tmp_path / "images").symlink_to(shared_path("data", "coco_dev", "julito", "images"))
    gt = tmp_path / "bad_gt.json"
    gt.write_text(json.dumps(doc))
    out = tmp_path / "res.json"
    rc = main(["predict", str(gt), "--model", "default", "--boxes", boxes, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("posedistill predict: error:") and "bad_gt.json" in err and repr(field) in err, err


def test_image_folder_and_coco17_mapping(small_gt, tmp_path):
    assert find_image_dir(small_gt) == small_gt.parent / "images"
    assert find_image_dir(tmp_path / "gt.json") == tmp_path
    assert find_image_dir(small_gt, tmp_path) == tmp_path
    gt = read_ground_truth(small_gt)
    assert len(gt.images) == 3 and gt.num_boxes == 10
    kp = np.arange(133 * 2, dtype=np.float32).reshape(1, 133, 2)
    sc = np.linspace(0, 1, 133, dtype=np.float32)[None]
    k17, s17 = to_coco17(kp, sc, "coco_wholebody")
    np.testing.assert_array_equal(k17, kp[:, :17])
    np.testing.assert_array_equal(s17, sc[:, :17])
    k14, s14 = to_coco17(kp[:, :14], sc[:, :14] + 0.1, "lsp")  # LSP has no face points: score 0 there
    assert k14.shape == (1, 17, 2) and (s14[0, :5] == 0).all() and (s14[0, 5:] > 0).all()
    with pytest.raises(ValueError, match="cannot be scored as COCO-17"):
        to_coco17(np.zeros((1, 21, 2)), np.zeros((1, 21)), "no_such_layout")
