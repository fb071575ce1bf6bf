"""Bad input -> PoseDataError naming the file, the record and what was expected. Every bad file is built in
tmp_path, so these tests need no shared data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from posedistill.data.readers import (
    read_bonn_posetrack,
    read_coco,
    read_coco_detections,
    read_dataset,
    read_jhmdb_clip,
    read_lsp,
    read_mpii,
    read_penn_action,
)
from posedistill.errors import PoseDataError


def coco_file(tmp_path: Path, name: str = "person_keypoints_val.json", **changes) -> tuple[Path, dict]:
    """A valid two-annotation COCO-17 file, with ``changes`` applied to its second annotation."""
    ann = {"id": 7, "image_id": 1, "bbox": [10, 20, 30, 40], "area": 1200.0, "iscrowd": 0,
           "keypoints": [15, 25, 2] * 17, "num_keypoints": 17}  # fmt: skip
    second = dict(ann, id=8, **changes)
    for key in [k for k, v in changes.items() if v is None]:
        del second[key]
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
        "annotations": [ann, second],
        "categories": [{"id": 1, "name": "person"}],
    }
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path, data


def raises(fn, *args, match: str, record: str | None = None, **kwargs) -> PoseDataError:
    with pytest.raises(PoseDataError, match=match) as info:
        fn(*args, **kwargs)
    err = info.value
    if record is not None:
        assert err.record is not None and record in err.record, err.record
    return err


def test_valid_coco_file_reads(tmp_path):
    path, _ = coco_file(tmp_path)
    assert [i.instance_id for i in read_coco(path)] == [7, 8]


# ---------------------------------------------------------------------------------------------------- COCO JSON
def test_coco_missing_keypoints(tmp_path):
    path, _ = coco_file(tmp_path, keypoints=None)
    err = raises(read_coco, path, match=r"missing required field 'keypoints' \(\[x, y, v\] \* 17\)", record="id=8")
    assert err.path == str(path) and err.field == "keypoints" and str(path) in str(err)


def test_coco_missing_image_id_and_unknown_image(tmp_path):
    path, _ = coco_file(tmp_path, image_id=None)
    raises(read_coco, path, match="missing required field 'image_id'", record="annotation id=8")
    path, _ = coco_file(tmp_path, image_id=99)
    raises(read_coco, path, match="image_id 99 is not in 'images'", record="annotation id=8")


def test_coco_missing_top_level_and_image_fields(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"images": []}))
    raises(read_coco, p, match="missing required field 'annotations'", record="top level")
    p.write_text(json.dumps({"images": [{"id": 1}], "annotations": []}))
    raises(read_coco, p, match="missing required field 'file_name'", record="image id=1")
    p.write_text(json.dumps({"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}],
                             "annotations": []}))  # fmt: skip
    raises(read_coco, p, match="duplicate image id 1", record="image #1")


def test_coco_wrong_keypoint_length(tmp_path):
    path, _ = coco_file(tmp_path, keypoints=[15, 25, 2] * 16)  # 48 numbers next to 51
    raises(read_coco, path, match=r"annotations disagree on the number of keypoints: 17 .*16")
    err = raises(read_coco, path, layout="coco", match=r"expected 51 numbers .*17 for layout 'coco'.*found 48",
                 record="annotation id=8")  # fmt: skip
    assert err.field == "keypoints"
    path, _ = coco_file(tmp_path, keypoints=[15, 25, 2] * 17 + [1])
    raises(read_coco, path, match="52 numbers, not a multiple of 3", record="annotation id=8")


def test_coco_nan_coordinates(tmp_path):
    kps = [15, 25, 2] * 17
    kps[9:12] = [float("nan"), 25, 2]  # keypoint 3 labelled with x = NaN (JSON NaN literal)
    path, _ = coco_file(tmp_path, keypoints=kps)
    assert "NaN" in path.read_text()
    err = raises(read_coco, path, match=r"labelled keypoints \[3\] have NaN", record="annotation id=8")
    assert err.field == "keypoints"
    kps[9:12] = [float("nan"), float("nan"), 0]  # unlabelled NaN: zeroed, not an error
    path, _ = coco_file(tmp_path, keypoints=kps)
    inst = read_coco(path)[1]
    assert inst.visibility[3] == 0 and (inst.keypoints[3] == 0).all()


def test_coco_bad_bbox_and_numbers(tmp_path):
    path, _ = coco_file(tmp_path, bbox=[1, 2, 3])
    raises(read_coco, path, match="expected 4 numbers, found 3", record="annotation id=8")
    path, _ = coco_file(tmp_path, bbox=[1, 2, float("inf"), 4])
    raises(read_coco, path, match="bbox .* is not finite", record="annotation id=8")
    path, _ = coco_file(tmp_path, keypoints=["a"] * 51)
    raises(read_coco, path, match="expected a list of numbers", record="annotation id=8")


def test_invalid_json_syntax(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"images": [], "annotations": [\n  {"id": 1,,}]}')
    err = raises(read_coco, p, match=r"not valid JSON: .* line 2 column")
    assert err.path == str(p)
    raises(read_dataset, p, match="not valid JSON")


def test_wholebody_missing_part(tmp_path):
    ann = {"id": 3, "image_id": 1, "bbox": [0, 0, 5, 5], "keypoints": [1, 1, 2] * 17, "foot_kpts": [1, 1, 2] * 6,
           "face_kpts": [1, 1, 1] * 68, "lefthand_kpts": [0, 0, 0] * 21, "righthand_kpts": [0, 0, 0] * 21}  # fmt: skip
    bad = {k: v for k, v in ann.items() if k != "face_kpts"}
    bad["id"] = 4
    p = tmp_path / "coco_wholebody_val.json"
    p.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [ann, bad]}))
    err = raises(read_coco, p, layout="coco_wholebody", match="missing required field 'face_kpts'",
                 record="annotation id=4")  # fmt: skip
    assert "COCO-WholeBody" in str(err)


def test_layout_errors(tmp_path):
    path, data = coco_file(tmp_path)
    data["categories"][0]["keypoints"] = [f"joint{i}" for i in range(17)]
    path.write_text(json.dumps(data))
    raises(read_coco, path, match=r"keypoint names .* match none of the 17-keypoint layouts .*layout=")
    assert len(read_coco(path, layout="coco")) == 2  # an explicit layout reads it anyway
    for ann in data["annotations"]:
        ann["keypoints"] = [1, 1, 2] * 40
    data["categories"] = []
    path.write_text(json.dumps(data))
    raises(read_coco, path, match="no known layout has 40 keypoints")
    with pytest.raises(KeyError, match="unknown keypoint layout 'nope'"):
        read_coco(path, layout="nope")


def test_not_a_coco_file(tmp_path):
    p = tmp_path / "dets.json"
    p.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]))
    raises(read_coco, p, match="detection results; use read_coco_detections")
    p.write_text(json.dumps([{"image": "a.jpg", "joints": [], "joints_vis": []}]))
    raises(read_coco, p, match="MPII-style list of records; use read_mpii")
    p.write_text(json.dumps("just a string"))
    raises(read_coco, p, match="expected a COCO-style JSON object")


def test_detections_errors(tmp_path):
    p = tmp_path / "dets.json"
    p.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]))
    raises(read_coco_detections, p, match="missing required field 'score'", record="detection #0")
    p.write_text(json.dumps({"images": []}))
    raises(read_coco_detections, p, match="expected a JSON list of detections")


# --------------------------------------------------------------------------------------------------------- MPII
def mpii_record(**changes) -> dict:
    rec = {"image": "000001.jpg", "joints": [[10.0, 20.0]] * 16, "joints_vis": [1] * 16, "center": [50, 60],
           "scale": 1.0}  # fmt: skip
    rec.update(changes)
    return {k: v for k, v in rec.items() if v is not None}


def test_mpii_errors(tmp_path):
    p = tmp_path / "mpii_val.json"
    p.write_text(json.dumps([mpii_record(), mpii_record(joints=None)]))
    raises(read_mpii, p, match="missing required field 'joints'", record="record #1 (image 000001.jpg)")
    p.write_text(json.dumps([mpii_record(joints=[[1.0, 2.0]] * 15)]))
    raises(read_mpii, p, match="expected 32 numbers, found 30", record="record #0")
    p.write_text(json.dumps([mpii_record(joints=[[float("nan"), 2.0]] + [[1.0, 2.0]] * 15)]))
    raises(read_mpii, p, match=r"labelled keypoints \[0\] have NaN", record="record #0")
    p.write_text(json.dumps({"images": []}))
    raises(read_mpii, p, match="expected a list of MPII records")
    p.write_text(json.dumps([mpii_record()]))
    scipy.io.savemat(tmp_path / "gt.mat", {"headboxes_src": np.zeros((2, 2, 3))})
    raises(read_mpii, p, headbox_file=tmp_path / "gt.mat", match="3 boxes but the JSON has 1 records")


# ----------------------------------------------------------------------------------------------------- .mat files
@pytest.mark.parametrize("content", [b"", b"not a MATLAB file at all\n" * 10, "truncated"])
def test_malformed_mat_files(tmp_path, content):
    p = tmp_path / "joints.mat"
    if content == "truncated":
        scipy.io.savemat(p, {"joints": np.zeros((14, 3, 50))})
        content = p.read_bytes()[:300]
    p.write_bytes(content)
    for reader in (read_lsp, read_jhmdb_clip, read_bonn_posetrack, read_penn_action):
        err = raises(reader, p, match="cannot read the MATLAB file")
        assert err.path == str(p)
    raises(read_dataset, p, match="cannot read the MATLAB file")


def test_lsp_errors(tmp_path):
    p = tmp_path / "joints.mat"
    scipy.io.savemat(p, {"other": np.zeros(3)})
    raises(read_lsp, p, match=r"no variable 'joints' \(found \['other'\]\)")
    scipy.io.savemat(p, {"joints": np.zeros((13, 3, 4))})
    raises(read_lsp, p, match=r"shape \(13, 3, 4\), expected 14 x 3 x N \(LSPet\) or 3 x 14 x N \(LSP\)")
    j = np.ones((14, 3, 4))
    j[5, 1, 2] = np.nan
    scipy.io.savemat(p, {"joints": j})
    raises(read_lsp, p, match=r"labelled keypoints \[5\] have NaN", record="image im00003.jpg")
    scipy.io.savemat(p, {"joints": np.ones((14, 3, 4))})
    raises(read_lsp, p, indices=[5], match=r"image number 5 is out of range: the file has images 1..4")


def test_jhmdb_errors(tmp_path):
    p = tmp_path / "joint_positions.mat"
    scipy.io.savemat(p, {"pos_img": np.zeros((2, 14, 5))})
    raises(read_jhmdb_clip, tmp_path, match=r"'pos_img' has shape \(2, 14, 5\).*expected 2 x 15 x T")
    pos = np.full((2, 15, 5), 10.0)
    pos[0, 3, 4] = np.nan
    scipy.io.savemat(p, {"pos_img": pos})
    raises(read_jhmdb_clip, p, match=r"joints \[3\] have NaN", record="frame 4 (00005.png)")
    scipy.io.savemat(p, {"pos_world": pos})
    raises(read_jhmdb_clip, p, match="no variable 'pos_img'")


def test_bonn_errors(tmp_path):
    p = tmp_path / "annolist_test.mat"
    scipy.io.savemat(p, {"RELEASE": np.zeros(2)})
    raises(read_bonn_posetrack, p, match="no variable 'annolist'")
    videos = np.empty((1,), dtype=[("name", "O"), ("num_frames", "O"), ("num_persons", "O"), ("annopoints", "O")])
    pts = np.empty((1,), dtype=[("x", "O"), ("y", "O"), ("id", "O"), ("is_visible", "O")])
    pts[0] = (5.0, 6.0, 16, 1)  # joint id 16 does not exist in MPII's 0..15
    cells = np.empty((1, 2), dtype=object)
    cells[0, 0] = {"point": pts, "head_rect": np.array([1.0, 2.0, 3.0, 4.0])}
    cells[0, 1] = np.zeros((0, 0))
    videos[0] = ("v1", 2, 1, cells)
    scipy.io.savemat(p, {"annolist": videos})
    raises(read_bonn_posetrack, p, video="v2", match=r"no video named 'v2'; the file has 1: v1")
    raises(read_bonn_posetrack, p, match=r"joint id 16 outside 0..15", record="video v1 frame 0 (00001.jpg) person 0")
    videos[0] = ("v1", 3, 1, cells)  # claims 3 frames, has 2 cells
    scipy.io.savemat(p, {"annolist": videos})
    raises(read_bonn_posetrack, p, match=r"'annopoints' has 2 cells, expected num_persons x num_frames = 1 x 3")


def test_penn_action_errors(tmp_path):
    p = tmp_path / "0001.mat"
    x = np.ones((4, 13))
    scipy.io.savemat(p, {"x": x, "y": x, "visibility": np.ones((4, 12))})
    raises(read_penn_action, p, match=r"shapes \(4, 13\), \(4, 13\), \(4, 12\); expected T x 13 each")
    scipy.io.savemat(p, {"x": x, "y": x, "visibility": x, "nframes": 5})
    raises(read_penn_action, p, match="'nframes' is 5 but 'x' has 4 rows")
    scipy.io.savemat(p, {"x": x, "y": x})
    raises(read_penn_action, p, match="missing variable 'visibility'")
    y = x.copy()
    y[2, 0] = np.nan
    scipy.io.savemat(p, {"x": x, "y": y, "visibility": x})
    raises(read_penn_action, p, match=r"labelled keypoints \[0\] have NaN", record="frame 2 (000003.jpg)")


# ------------------------------------------------------------------------------------------------------ dispatch
def test_dispatch_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    raises(read_dataset, tmp_path / "notes.txt", match="cannot tell the dataset format of a .txt file")
    raises(read_dataset, tmp_path, match="cannot tell the dataset format of this folder")
    scipy.io.savemat(tmp_path / "a.mat", {"something": np.zeros(2)})
    raises(read_dataset, tmp_path / "a.mat", match=r"cannot tell the dataset format from the variables \['something'\]")
    with pytest.raises(ValueError, match="unknown dataset format 'voc'"):
        read_dataset(tmp_path / "a.mat", format="voc")
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "missing.mat")
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": np.ones((14, 3, 2))})
    raises(read_dataset, tmp_path / "joints.mat", layout="coco", match="format 'lsp' always gives layout 'lsp'")
