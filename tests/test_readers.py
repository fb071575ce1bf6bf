"""Dataset readers against every sample in ../shared/data, with expected values computed from the raw files.

Tests that need ../shared skip cleanly without it; the synthetic-file tests (Penn Action, MPII head boxes, LSP
original format, Bonn structure, video COCO) always run.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from posedistill.data.readers import (
    FORMATS,
    detect_coco_layout,
    detect_format,
    read_bonn_posetrack,
    read_coco,
    read_coco_detections,
    read_dataset,
    read_jhmdb_clip,
    read_lsp,
    read_mpii,
    read_penn_action,
    read_posetrack18,
    training_instances,
)
from posedistill.data.readers.common import JOINT_BOX_PADDING
from posedistill.data.readers.imagesize import image_size
from posedistill.errors import PoseDataError
from tests.conftest import shared_path


def fixture(*parts: str) -> Path:
    return shared_path("data", "fixtures", *parts)


def raw_json(path: Path):
    return json.loads(path.read_text())


def cv2_size(path: str | Path) -> tuple[int, int]:
    img = cv2.imread(str(path))
    assert img is not None, path
    return img.shape[1], img.shape[0]


def check_against_coco_json(instances, path: Path, k: int, shift: float = 0.0) -> None:
    """Every annotation, in order: ids, keypoints (x - shift where v > 0, else 0), visibility, box, area, crowd."""
    data = raw_json(path)
    images = {img["id"]: img for img in data["images"]}
    assert len(instances) == len(data["annotations"])
    for inst, ann in zip(instances, data["annotations"]):
        assert inst.instance_id == ann["id"] and inst.image_id == ann["image_id"]
        assert inst.num_keypoints == k
        flat = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[:k]
        labelled = flat[:, 2] > 0
        np.testing.assert_allclose(inst.keypoints[labelled], flat[labelled, :2] - shift, atol=1e-4)
        assert not inst.keypoints[~labelled].any()  # unlabelled -> (0, 0)
        np.testing.assert_array_equal(inst.visibility > 0, labelled)
        ints = np.isin(flat[:, 2], (0, 1, 2))
        np.testing.assert_array_equal(inst.visibility[ints], flat[ints, 2])
        if "bbox" in ann:
            np.testing.assert_allclose(inst.bbox, np.asarray(ann["bbox"]) - [shift, shift, 0, 0], atol=1e-3)
        if "area" in ann:
            assert inst.area == pytest.approx(ann["area"])
        assert inst.iscrowd == bool(ann.get("iscrowd", 0))
        img = images[ann["image_id"]]
        assert inst.image_size == (img["width"], img["height"])
        assert Path(inst.image_path).name == Path(img["file_name"]).name


# ------------------------------------------------------------------------------------------ every fixture JSON
# relative path -> (format, instances, layout); None = not an annotation file for Instances
FIXTURE_JSONS = {
    "aic/test_aic.json": ("coco", 9, "aic"),
    "coco/test_coco.json": ("coco", 14, "coco"),
    "coco/test_coco_det_AP_H_56.json": None,
    "coco/test_coco_wholebody.json": ("coco", 14, "coco_wholebody"),
    "coco/test_keypoint_partition_metric.json": ("coco", 14, "coco_wholebody"),
    "crowdpose/test_crowdpose.json": ("coco", 5, "crowdpose"),
    "crowdpose/test_crowdpose_det_AP_40.json": None,
    "exlpose/test_exlpose.json": ("coco", 6, "exlpose"),
    "halpe/test_halpe.json": ("coco", 14, "halpe"),
    "jhmdb/test_jhmdb_sub1.json": ("coco", 3, "jhmdb"),
    "mhp/test_mhp.json": ("coco", 4, "mhp"),
    "mpii/test_mpii.json": ("mpii", 5, "mpii"),
    "mpii/test_mpii_trb.json": ("coco", "error", None),  # 40-point MPII-TRB: no such layout (yet)
    "ochuman/test_ochuman.json": ("coco", 5, "ochuman"),
    "posetrack18/annotations/test_posetrack18_human_detections.json": None,
    "posetrack18/annotations/test_posetrack18_val.json": ("posetrack18", 14, "posetrack18"),
    "posetrack18/annotations/val/003418_mpii_test.json": ("posetrack18", 1, "posetrack18"),
    "posetrack18/annotations/val/009473_mpii_test.json": ("posetrack18", 2, "posetrack18"),
    "posetrack18/annotations/val/012834_mpii_test.json": ("posetrack18", 11, "posetrack18"),
}


def test_fixture_table_covers_every_json():
    root = fixture()
    found = {p.relative_to(root).as_posix() for p in root.rglob("*.json")}
    assert found == set(FIXTURE_JSONS)


@pytest.mark.parametrize("rel", sorted(FIXTURE_JSONS))
def test_every_fixture_json(rel):
    path = fixture(*rel.split("/"))
    expected = FIXTURE_JSONS[rel]
    if expected is None:  # detection results: boxes per image, and a pointed error from the Instance readers
        dets = read_coco_detections(path, category_id=None)
        raw = raw_json(path)
        assert sum(len(v) for v in dets.values()) == len(raw)
        assert set(dets) == {d["image_id"] for d in raw}
        with pytest.raises(PoseDataError, match="read_coco_detections"):
            read_dataset(path)
        return
    fmt, count, layout = expected
    assert detect_format(path) == fmt
    if count == "error":
        with pytest.raises(PoseDataError, match="no known layout has 40 keypoints"):
            read_dataset(path)
        return
    instances = read_dataset(path)
    assert len(instances) == count
    assert {inst.layout for inst in instances} == {layout}
    for inst in instances:
        assert inst.keypoints.dtype == np.float32 and inst.bbox.dtype == np.float32
        assert np.isfinite(inst.keypoints).all() and set(np.unique(inst.visibility)) <= {0.0, 1.0, 2.0}
    if layout != "halpe":  # Halpe's images are the four in coco/ (tested below)
        for inst in instances:
            assert Path(inst.image_path).is_file(), inst.image_path


@pytest.mark.parametrize(
    "rel, layout",
    [
        ("aic/test_aic.json", "aic"),
        ("coco/test_coco.json", "coco"),
        ("crowdpose/test_crowdpose.json", "crowdpose"),
        ("exlpose/test_exlpose.json", "exlpose"),
        ("mhp/test_mhp.json", "mhp"),
        ("ochuman/test_ochuman.json", "ochuman"),
    ],
)
def test_coco_style_fixtures_match_raw(rel, layout):
    path = fixture(*rel.split("/"))
    instances = read_coco(path)
    k = {"aic": 14, "coco": 17, "crowdpose": 14, "exlpose": 14, "mhp": 16, "ochuman": 17}[layout]
    check_against_coco_json(instances, path, k)
    for inst in instances:  # the sizes in the JSON are the real image sizes
        assert inst.image_size == cv2_size(inst.image_path)


def test_coco_exact_points_and_training_filter():
    path = fixture("coco", "test_coco.json")
    instances = read_coco(path)
    first = instances[0]
    assert first.image_id == 785 and first.instance_id == 442619
    np.testing.assert_allclose(first.keypoints[0], [367, 81])  # nose, raw [367, 81, 2]
    np.testing.assert_allclose(first.bbox, [280.79, 44.73, 218.7, 346.68], rtol=1e-6)
    assert first.image_size == (640, 425) and first.extra["num_keypoints"] == 17
    raw = raw_json(path)["annotations"]
    train = training_instances(instances)
    assert len(train) == sum(a["num_keypoints"] > 0 for a in raw) == 12
    assert all(inst.num_labelled > 0 for inst in train)
    # boxes clipped to [0, W-1] x [0, H-1] as mmpose does; the input list is not modified
    for inst in train:
        x, y, w, h = inst.bbox
        assert x >= 0 and y >= 0 and x + w <= inst.image_size[0] - 1 + 1e-3 and y + h <= inst.image_size[1] - 1 + 1e-3
    assert instances[0].bbox is not train[0].bbox


def test_coco_wholebody_stitching():
    path = fixture("coco", "test_coco_wholebody.json")
    instances = read_coco(path)
    raw = raw_json(path)["annotations"]
    assert detect_coco_layout(raw_json(path), path) == "coco_wholebody"
    for inst, ann in zip(instances, raw):
        flat = np.concatenate([ann[f] for f in ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts",
                                                 "righthand_kpts")]).reshape(133, 3)  # fmt: skip
        lab = flat[:, 2] > 0
        np.testing.assert_allclose(inst.keypoints[lab], flat[lab, :2], atol=1e-4)
        np.testing.assert_array_equal(inst.visibility > 0, lab)
        for part in ("face", "lefthand", "righthand", "foot"):
            assert inst.extra[f"{part}_valid"] == ann[f"{part}_valid"]
        np.testing.assert_allclose(inst.extra["face_box"], ann["face_box"], rtol=1e-6)
        np.testing.assert_allclose(inst.extra["righthand_box"], ann["righthand_box"], rtol=1e-6)
    # the first annotation's foot starts at index 17, face at 23, right hand at 112
    ann = raw[0]
    np.testing.assert_allclose(instances[0].keypoints[17], ann["foot_kpts"][:2])
    np.testing.assert_allclose(instances[0].keypoints[23], ann["face_kpts"][:2])
    np.testing.assert_allclose(instances[0].keypoints[112], ann["righthand_kpts"][:2])
    # fractional hand scores (0 < v < 1) are labelled, as occluded (1)
    ann = next(a for a in raw if a["id"] == 531914)
    inst = next(i for i in instances if i.instance_id == 531914)
    scores = np.asarray(ann["righthand_kpts"][2::3])
    assert ((scores > 0) & (scores < 1)).any()
    np.testing.assert_array_equal(inst.visibility[112:133], np.where(scores > 0, 1.0, 0.0))


def test_wholebody_formats_agree_and_body_view():
    wb = read_coco(fixture("coco", "test_coco_wholebody.json"))
    stitched = read_coco(fixture("coco", "test_keypoint_partition_metric.json"))
    body = read_coco(fixture("coco", "test_coco_wholebody.json"), layout="coco")
    coco = read_coco(fixture("coco", "test_coco.json"))
    for a, b, c, d in zip(wb, stitched, body, coco):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.visibility, b.visibility)
        assert c.layout == "coco"
        np.testing.assert_array_equal(c.keypoints, d.keypoints)
        np.testing.assert_array_equal(c.keypoints, a.keypoints[:17])


def test_halpe_points_and_image_root():
    path = fixture("halpe", "test_halpe.json")
    instances = read_coco(path, image_root=fixture("coco"))
    check_against_coco_json(instances, path, 136)
    assert all(Path(inst.image_path).is_file() for inst in instances)
    # face points with coordinates but v = 0 are unlabelled and zeroed
    flat = np.asarray(raw_json(path)["annotations"][0]["keypoints"]).reshape(136, 3)
    hidden = (flat[:, 2] == 0) & (flat[:, :2] != 0).any(axis=1)
    assert hidden.any() and not instances[0].keypoints[hidden].any()


def test_crowdpose_crowd_info():
    path = fixture("crowdpose", "test_crowdpose.json")
    instances = read_coco(path)
    raw = raw_json(path)
    index = {img["id"]: img["crowdIndex"] for img in raw["images"]}
    for inst, ann in zip(instances, raw["annotations"]):
        assert inst.extra["crowd_index"] == pytest.approx(index[ann["image_id"]])
        assert inst.extra["num_keypoints"] == ann["num_keypoints"]


def test_fourteen_point_layouts_are_told_apart(tmp_path):
    """AIC by its names; CrowdPose and ExLPose (same joints) by the file name, else CrowdPose; without names the
    14-point layouts cannot be told apart."""
    aic = raw_json(fixture("aic", "test_aic.json"))
    crowd = raw_json(fixture("crowdpose", "test_crowdpose.json"))
    assert detect_coco_layout(aic, "whatever.json") == "aic"
    assert detect_coco_layout(crowd, "test_crowdpose.json") == "crowdpose"
    assert detect_coco_layout(crowd, "ExLPose_test_LL-A.json") == "exlpose"
    assert detect_coco_layout(crowd, "anno.json") == "crowdpose"
    assert detect_coco_layout(raw_json(fixture("ochuman", "test_ochuman.json")), "val.json") == "coco"
    assert detect_coco_layout(raw_json(fixture("mhp", "test_mhp.json")), "train.json") == "mpii"
    nameless = dict(crowd, categories=[])
    with pytest.raises(PoseDataError, match=r"14 keypoints fit several layouts \(.*aic.*\).*layout="):
        detect_coco_layout(nameless, "anno.json")
    p = tmp_path / "anno.json"
    p.write_text(json.dumps(nameless))
    assert {i.layout for i in read_coco(p, layout="exlpose")} == {"exlpose"}


def test_jhmdb_json_is_one_based():
    path = fixture("jhmdb", "test_jhmdb_sub1.json")
    instances = read_coco(path)
    check_against_coco_json(instances, path, 15, shift=1.0)
    raw = raw_json(path)
    first = instances[0]
    np.testing.assert_allclose(first.keypoints[0], np.asarray(raw["annotations"][0]["keypoints"][:2]) - 1, atol=1e-5)
    assert (first.video_id, first.frame_index, first.track_id) == ("00228", 0, 0)
    assert [i.video_id for i in instances] == [img["vid_id"] for img in raw["images"]]


def test_mpii_json():
    path = fixture("mpii", "test_mpii.json")
    instances = read_mpii(path)
    raw = raw_json(path)
    assert len(instances) == len(raw) == 5
    for inst, rec in zip(instances, raw):
        joints = np.asarray(rec["joints"])
        vis = np.asarray(rec["joints_vis"]) > 0
        np.testing.assert_allclose(inst.keypoints[vis], joints[vis] - 1, atol=1e-4)
        assert not inst.keypoints[~vis].any()
        np.testing.assert_array_equal(inst.visibility, np.where(vis, 2, 0))
        # mmpose's box: side scale * 200, centre moved down by 15 / 200 of it, then 1-based -> 0-based
        side = rec["scale"] * 200
        cx, cy = rec["center"][0] - 1, rec["center"][1] + 0.075 * side - 1
        np.testing.assert_allclose(inst.bbox, [cx - side / 2, cy - side / 2, side, side], rtol=1e-5)
        assert inst.image_id == int(Path(rec["image"]).stem)
        assert inst.image_size == cv2_size(inst.image_path)
        assert inst.extra["scale"] == rec["scale"] and inst.head_box is None
    assert instances[2].visibility[0] == 0  # joint 0 of 051423444.jpg is missing (-1, -1)


def test_mpii_headboxes(tmp_path):
    path = fixture("mpii", "test_mpii.json")
    boxes = np.arange(5 * 4, dtype=np.float64).reshape(2, 2, 5) + 10  # (corner, xy, record)
    scipy.io.savemat(tmp_path / "gt_valid.mat", {"headboxes_src": boxes})
    instances = read_mpii(path, headbox_file=tmp_path / "gt_valid.mat")
    for i, inst in enumerate(instances):
        np.testing.assert_allclose(inst.head_box, [*boxes[0, :, i] - 1, *boxes[1, :, i] - 1])


def test_posetrack18_fixture():
    path = fixture("posetrack18", "annotations", "test_posetrack18_val.json")
    instances = read_posetrack18(path)
    raw = raw_json(path)
    images = {img["id"]: img for img in raw["images"]}
    labelled = [a for a in raw["annotations"] if images[a["image_id"]]["is_labeled"]]
    assert len(instances) == len(labelled) == 14
    for inst, ann in zip(instances, labelled):
        img = images[ann["image_id"]]
        flat = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        np.testing.assert_allclose(inst.keypoints[flat[:, 2] > 0], flat[flat[:, 2] > 0, :2], atol=1e-4)
        np.testing.assert_array_equal(inst.visibility, flat[:, 2])  # PoseTrack's v = 1 for every labelled joint
        x, y, w, h = ann["bbox_head"]
        np.testing.assert_allclose(inst.head_box, [x, y, x + w, y + h])
        assert inst.video_id == img["vid_id"] and inst.track_id == ann["track_id"]
        assert inst.frame_index == int(Path(img["file_name"]).stem) == 0
        assert len(inst.extra["ignore_regions"]) == len(img["ignore_regions_x"])
        assert inst.extra["ignore_regions"][0].shape == (len(img["ignore_regions_x"][0]), 2)
        assert inst.image_size == cv2_size(inst.image_path) == (1920, 1080)
    assert sorted({i.video_id for i in instances}) == ["003418", "009473", "012834"]
    per_video = [read_posetrack18(p) for p in sorted(fixture("posetrack18", "annotations", "val").glob("*.json"))]
    assert sum(len(v) for v in per_video) == len(instances)


def test_posetrack18_skips_unlabelled_frames(tmp_path):
    raw = raw_json(fixture("posetrack18", "annotations", "val", "009473_mpii_test.json"))
    raw["images"][0]["is_labeled"] = False
    p = tmp_path / "posetrack_val.json"
    p.write_text(json.dumps(raw))
    assert read_posetrack18(p, image_root=tmp_path) == []
    assert len(read_coco(p, image_root=tmp_path)) == 2  # read_coco keeps them, flagged
    assert detect_format(p) == "posetrack18"


def test_coco_dev_julito():
    path = shared_path("data", "coco_dev", "julito", "person_keypoints.json")
    instances = read_coco(path)
    check_against_coco_json(instances, path, 17)
    assert len(instances) == 165 and len({i.image_id for i in instances}) == 70
    assert all(Path(i.image_path).parent.name == "images" and Path(i.image_path).is_file() for i in instances)
    for inst in instances[::20]:
        assert inst.image_size == cv2_size(inst.image_path) == image_size(inst.image_path)


def test_coco_dev_mini_train_crowd():
    path = shared_path("data", "coco_dev", "coco_mini_train", "person_keypoints.json")
    instances = read_coco(path)
    check_against_coco_json(instances, path, 17)
    raw = raw_json(path)["annotations"]
    crowd = [i for i in instances if i.iscrowd]
    assert len(crowd) == sum(a["iscrowd"] for a in raw) == 5
    assert all("segmentation" in i.extra for i in crowd)
    assert not any("segmentation" in i.extra for i in instances if not i.iscrowd)
    train = training_instances(instances)
    assert len(train) == sum(a["iscrowd"] == 0 and a["num_keypoints"] > 0 for a in raw) == 86
    assert not any(i.iscrowd for i in train)


# --------------------------------------------------------------------------------------------------- LSP / LSPet
def test_lspet():
    mat = shared_path("data", "lspet", "joints.mat")
    joints = scipy.io.loadmat(mat)["joints"]  # 14 x 3 x N, 1-based, flag 1 = visible
    instances = read_lsp(mat)
    assert len(instances) == joints.shape[2] == 3000
    first = instances[0]
    assert first.image_id == "im00001" and Path(first.image_path).name == "im00001.jpg"
    np.testing.assert_allclose(first.keypoints, joints[:, :2, 0] - 1, atol=1e-4)
    np.testing.assert_array_equal(first.visibility, np.where(joints[:, 2, 0] == 1, 2, 1))
    # joint 0 of im00001 is occluded and above the image: kept, with visibility 1
    assert joints[0, 2, 0] == 0 and first.keypoints[0, 1] < 0 and first.visibility[0] == 1
    for n in (1, 500, 1234, 3000):
        inst = instances[n - 1]
        np.testing.assert_allclose(inst.keypoints, joints[:, :2, n - 1] - 1, atol=1e-4)
        assert inst.image_size == cv2_size(inst.image_path)
        x, y, w, h = inst.bbox
        assert x >= 0 and y >= 0 and x + w <= inst.image_size[0] + 1e-3 and y + h <= inst.image_size[1] + 1e-3
    # every image size is read from the headers (no zeros), all boxes non-empty
    assert all(i.image_size[0] > 0 for i in instances) and all(i.bbox[2] > 0 for i in instances)
    sub = read_lsp(mat, indices=range(1, 2501))
    assert len(sub) == 2500 and sub[-1].image_id == "im02500"


def test_lsp_box_is_padded_joint_extent(tmp_path):
    joints = np.zeros((14, 3, 1))
    joints[:, 0, 0] = np.linspace(11, 61, 14)  # x from 11 to 61 (1-based)
    joints[:, 1, 0] = np.linspace(21, 121, 14)
    joints[:, 2, 0] = 1
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": joints})
    (inst,) = read_lsp(tmp_path / "joints.mat")  # no image: size unknown, box not clipped
    assert inst.image_size == (0, 0)
    cx, cy, w, h = 35.0, 70.0, 50 * JOINT_BOX_PADDING, 100 * JOINT_BOX_PADDING
    np.testing.assert_allclose(inst.bbox, [cx - w / 2, cy - h / 2, w, h], rtol=1e-6)
    assert inst.area == pytest.approx(w * h, rel=1e-6)


def test_original_lsp_format_matches_lspet(tmp_path):
    """LSP's 3 x 14 x N layout with its inverted flag reads to the same records."""
    mat = shared_path("data", "lspet", "joints.mat")
    joints = scipy.io.loadmat(mat)["joints"][:, :, :20]
    lsp = np.transpose(joints, (1, 0, 2)).copy()
    lsp[2] = 1 - lsp[2]  # LSP: 0 = visible
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": lsp})
    scipy.io.savemat(tmp_path / "lspet.mat", {"joints": joints})
    a, b = read_lsp(tmp_path / "joints.mat"), read_lsp(tmp_path / "lspet.mat")
    assert len(a) == 20 and a[0].extra["lsp_release"] == "lsp" and b[0].extra["lsp_release"] == "lspet"
    assert Path(a[0].image_path).name == "im0001.jpg" and Path(b[0].image_path).name == "im00001.jpg"
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.keypoints, y.keypoints)
        np.testing.assert_array_equal(x.visibility, y.visibility)


# ------------------------------------------------------------------------------------------------------ video
def test_jhmdb_clip():
    clip = shared_path("data", "video", "jhmdb_goalkeeping")
    pos = scipy.io.loadmat(clip / "joint_positions.mat")["pos_img"]  # 2 x 15 x T, 1-based
    instances = read_jhmdb_clip(clip)
    assert len(instances) == pos.shape[2] == 40
    w, h = cv2_size(clip / "frames" / "00001.png")
    for t, inst in enumerate(instances):
        kp = pos[:, :, t].T - 1
        inside = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
        np.testing.assert_allclose(inst.keypoints[inside], kp[inside], atol=1e-4)
        np.testing.assert_array_equal(inst.visibility, np.where(inside, 2, 0))
        assert (inst.video_id, inst.frame_index, inst.track_id) == ("jhmdb_goalkeeping", t, 0)
        assert Path(inst.image_path) == clip / "frames" / f"{t + 1:05d}.png" and Path(inst.image_path).is_file()
        assert inst.image_size == (w, h) == (320, 240)
    np.testing.assert_allclose(instances[0].keypoints[0], [285.5, 105.5])  # raw (286.5, 106.5)
    assert read_jhmdb_clip(clip / "joint_positions.mat")[5].image_path == instances[5].image_path


@pytest.fixture(scope="module")
def bonn_raw():
    mat = shared_path("data", "video", "bonn_060470979", "annolist_test.mat")
    return mat, scipy.io.loadmat(mat, struct_as_record=False, squeeze_me=True)["annolist"]


def test_bonn_video(bonn_raw):
    mat, annolist = bonn_raw
    entry = next(e for e in annolist if e.name == "060470979")
    instances = read_bonn_posetrack(mat, video="060470979")
    cells = [(p, t) for t in range(entry.num_frames) for p in range(entry.num_persons)
             if hasattr(entry.annopoints[p, t], "point")]  # fmt: skip
    assert len(instances) == len(cells) == 164
    assert sorted({i.track_id for i in instances}) == [0, 1, 2, 3]
    frames = mat.parent / "frames"
    for inst, (p, t) in zip(instances, cells):
        cell = entry.annopoints[p, t]
        assert (inst.track_id, inst.frame_index, inst.video_id) == (p, t, "060470979")
        for q in np.atleast_1d(cell.point):
            np.testing.assert_allclose(inst.keypoints[q.id], [q.x - 1, q.y - 1], atol=1e-3)
            assert inst.visibility[q.id] == (2 if q.is_visible else 1)
        ids = {int(q.id) for q in np.atleast_1d(cell.point)}
        assert all(inst.visibility[j] == 0 for j in range(16) if j not in ids)
        np.testing.assert_allclose(inst.head_box, np.asarray(cell.head_rect) - 1, atol=1e-3)
        assert Path(inst.image_path) == frames / f"{t + 1:05d}.jpg"
    assert all(Path(i.image_path).is_file() for i in instances)
    assert instances[0].image_size == cv2_size(instances[0].image_path)
    assert instances[0].visibility[6] == instances[0].visibility[7] == 0  # pelvis, thorax never annotated
    # an occluded joint: person 0, frame 40, joint 3 has is_visible 0
    last = next(i for i in instances if (i.track_id, i.frame_index) == (0, 40))
    assert last.visibility[3] == 1
    np.testing.assert_allclose(last.keypoints[3], [474.2412, 260.4012], atol=1e-3)


def test_bonn_all_videos(bonn_raw):
    mat, annolist = bonn_raw
    instances = read_dataset(mat)
    total = sum(hasattr(c, "point") for e in annolist for c in np.asarray(e.annopoints).ravel())
    assert len(instances) == total
    assert len({i.video_id for i in instances}) == len(annolist) == 30
    # only this folder's own video points at frames/; the others at frames/<video>/ (absent here)
    own = [i for i in instances if i.video_id == "060470979"]
    other = next(i for i in instances if i.video_id == "000002")
    assert Path(own[0].image_path).is_file()
    assert Path(other.image_path).parent.name == "000002" and other.image_size == (0, 0)


def _bonn_like(path: Path, persons: int = 2, frames: int = 3) -> None:
    """A small annolist with one video; person 1 is missing from the last frame."""
    ap = np.empty((persons, frames), dtype=object)
    dtype = [("x", "O"), ("y", "O"), ("id", "O"), ("is_visible", "O")]
    for p in range(persons):
        for t in range(frames):
            if (p, t) == (persons - 1, frames - 1):
                ap[p, t] = np.zeros((0, 0))
                continue
            pts = np.empty((2,), dtype=dtype)
            pts[0] = (10.0 + p, 20.0 + t, 0, 1)
            pts[1] = (30.0, 40.0, 9, 0)
            ap[p, t] = {"point": pts, "head_rect": np.array([5.0, 6.0, 15.0, 16.0])}
    videos = np.empty((1,), dtype=[("name", "O"), ("num_frames", "O"), ("num_persons", "O"), ("annopoints", "O")])
    videos[0] = ("vid1", frames, persons, ap)
    scipy.io.savemat(path, {"annolist": videos})


def test_bonn_structure_synthetic(tmp_path):
    _bonn_like(tmp_path / "annolist_train.mat")
    instances = read_bonn_posetrack(tmp_path / "annolist_train.mat")
    assert len(instances) == 5
    first = instances[0]
    np.testing.assert_allclose(first.keypoints[[0, 9]], [[9, 19], [29, 39]])
    np.testing.assert_array_equal(first.visibility[[0, 9]], [2, 1])
    np.testing.assert_allclose(first.head_box, [4, 5, 14, 15])
    assert first.num_labelled == 2
    assert [(i.track_id, i.frame_index) for i in instances] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]
    assert detect_format(tmp_path) == "bonn" and len(read_dataset(tmp_path)) == 5


# ------------------------------------------------------------------------------------------------ Penn Action
def _penn_file(path: Path, t: int = 3, box_rows: int | None = None) -> dict:
    rng = np.random.default_rng(0)
    x = rng.uniform(20, 300, (t, 13))
    y = rng.uniform(20, 200, (t, 13))
    vis = np.ones((t, 13))
    vis[1, 4] = 0
    boxes = np.stack([x.min(1) - 5, y.min(1) - 5, x.max(1) + 5, y.max(1) + 5], axis=1)[: box_rows or t]
    mat = {"x": x, "y": y, "visibility": vis, "bbox": boxes, "nframes": t, "dimensions": np.array([240, 320, t]),
           "action": "baseball_pitch", "pose": "front", "train": 1}  # fmt: skip
    scipy.io.savemat(path, mat)
    return mat


def test_penn_action(tmp_path):
    (tmp_path / "labels").mkdir()
    label = tmp_path / "labels" / "0007.mat"
    mat = _penn_file(label, t=3, box_rows=2)  # the last frame has no box row
    instances = read_penn_action(label)
    assert len(instances) == 3
    for t, inst in enumerate(instances):
        assert inst.layout == "penn_action" and inst.image_size == (320, 240)
        np.testing.assert_allclose(inst.keypoints[:, 0], mat["x"][t] - 1, atol=1e-4)
        np.testing.assert_allclose(inst.keypoints[:, 1], mat["y"][t] - 1, atol=1e-4)
        assert (inst.video_id, inst.frame_index, inst.track_id) == ("0007", t, 0)
        assert Path(inst.image_path) == tmp_path / "frames" / "0007" / f"{t + 1:06d}.jpg"
        assert inst.extra == {"action": "baseball_pitch", "pose": "front", "train": True}
    assert instances[1].visibility[4] == 1 and instances[1].visibility[3] == 2
    x1, y1, x2, y2 = mat["bbox"][0] - 1
    np.testing.assert_allclose(instances[0].bbox, [x1, y1, x2 - x1, y2 - y1], atol=1e-4)
    # frame 2 has no bbox row: box from its joints, inside the frame
    x, y, w, h = instances[2].bbox
    kp = instances[2].keypoints
    assert x <= kp[:, 0].min() and x + w >= kp[:, 0].max() and y <= kp[:, 1].min() and y + h >= kp[:, 1].max()
    assert detect_format(label) == "penn_action"
    assert len(read_dataset(label, image_root=tmp_path / "elsewhere")) == 3


# ------------------------------------------------------------------------------------ synthetic video COCO file
def test_video_coco_fields(tmp_path):
    data = {
        "images": [
            {"id": 1, "file_name": "v0/000000.jpg", "width": 64, "height": 48, "video_id": "v0", "frame_id": 0},
            {"id": 2, "file_name": "v0/000001.jpg", "width": 64, "height": 48, "video_id": "v0", "frame_id": 1},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "track_id": 3, "bbox": [1, 2, 30, 40], "keypoints": [5, 6, 2] * 17},
            {"id": 11, "image_id": 2, "track_id": 3, "bbox": [1, 2, 30, 40], "keypoints": [7, 8, 1] * 17},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    p = tmp_path / "synthetic_video.json"
    p.write_text(json.dumps(data))
    a, b = read_coco(p)
    assert (a.video_id, a.frame_index, a.track_id) == ("v0", 0, 3)
    assert (b.video_id, b.frame_index, b.track_id) == ("v0", 1, 3)
    assert a.layout == "coco" and a.area == 30 * 40 and b.visibility[0] == 1
    assert Path(a.image_path) == tmp_path / "v0" / "000000.jpg"
    # the same in COCO-WholeBody's split format, no categories: 17 + 6 + 68 + 21 + 21 = 133 points
    parts = {"foot_kpts": 6, "face_kpts": 68, "lefthand_kpts": 21, "righthand_kpts": 21}
    for i, ann in enumerate(data["annotations"]):
        ann.update({f: [9, 9 + i, 2] * n for f, n in parts.items()}, face_valid=True, face_box=[1, 2, 3, 4])
    del data["categories"]
    p.write_text(json.dumps(data))
    a, b = read_coco(p)
    assert a.layout == "coco_wholebody" and a.num_keypoints == 133 and a.extra["face_valid"] is True
    assert (b.video_id, b.frame_index, b.track_id) == ("v0", 1, 3)
    np.testing.assert_allclose(b.keypoints[17:], [[9, 10]] * 116)
    np.testing.assert_allclose(b.keypoints[:17], [[7, 8]] * 17)


# --------------------------------------------------------------------------------------------- dispatch, sizes
def test_detect_format_on_shared_samples():
    data = shared_path("data")
    assert detect_format(data / "lspet") == "lsp"
    assert detect_format(data / "lspet" / "joints.mat") == "lsp"
    assert detect_format(data / "video" / "jhmdb_goalkeeping") == "jhmdb"
    assert detect_format(data / "video" / "bonn_060470979") == "bonn"
    assert detect_format(data / "coco_dev" / "julito" / "person_keypoints.json") == "coco"
    assert set(FORMATS) == {"coco", "posetrack18", "mpii", "lsp", "jhmdb", "bonn", "penn_action"}
    assert [i.image_id for i in read_dataset(data / "lspet", indices=[3, 1])] == ["im00003", "im00001"]


def test_image_size_headers_match_opencv(tmp_path):
    """Header parsing agrees with OpenCV on the shared JPEGs and PNGs, and on EXIF-rotated JPEGs."""
    data = shared_path("data")
    files = sorted((data / "fixtures").rglob("*.jpg")) + sorted((data / "fixtures").rglob("*.png"))
    files += sorted((data / "video" / "bonn_060470979" / "frames").glob("*.jpg"))[:3]
    for f in files:
        assert image_size(f) == cv2_size(f), f
    assert image_size(tmp_path / "missing.jpg") == (0, 0)


def test_image_size_exif_rotation(tmp_path):
    img = np.zeros((30, 50, 3), np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    data = buf.tobytes()
    # APP1 Exif with one IFD0 entry: orientation (0x0112) = 6 (rotate 90 degrees)
    tiff = b"II*\x00\x08\x00\x00\x00" + b"\x01\x00" + b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00" + b"\x00" * 4
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    rotated = data[:2] + app1 + data[2:]
    (tmp_path / "r.jpg").write_bytes(rotated)
    (tmp_path / "p.jpg").write_bytes(data)
    assert image_size(tmp_path / "p.jpg") == (50, 30) == cv2_size(tmp_path / "p.jpg")
    assert image_size(tmp_path / "r.jpg") == (30, 50) == cv2_size(tmp_path / "r.jpg")
