"""PoseResult: validation, Ultralytics-like view, COCO / OpenPose / MMPose JSON exports and summary rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posedistill.infer.results import OPENPOSE18_FROM_COCO, PoseResult, openpose18


def _result(layout: str = "coco", n: int = 2, k: int = 17, seed: int = 0, h: int = 120, w: int = 160) -> PoseResult:
    rng = np.random.default_rng(seed)
    kpts = rng.uniform([0, 0], [w, h], size=(n, k, 2)).astype(np.float32)
    scores = rng.uniform(0.0, 1.2, size=(n, k)).astype(np.float32)  # SimCC scores can exceed 1
    boxes = np.array([[10, 20, 60, 100], [70, 5, 150, 110]][:n], np.float32)
    return PoseResult(
        keypoints=kpts,
        scores=scores,
        boxes=boxes,
        box_scores=np.array([0.9, 0.5][:n], np.float32),
        track_ids=np.array([3, 7][:n]),
        layout=layout,
        image_shape=(h, w),
        frame_id=4,
    )


def test_construction_casts_dtypes_and_validates_shapes() -> None:
    r = _result()
    assert r.keypoints.dtype == np.float32 and r.track_ids.dtype == np.int64 and r.image_shape == (120, 160)
    assert len(r) == 2
    with pytest.raises(ValueError, match=r"keypoints must be \(N, 17, 2\)"):
        PoseResult(np.zeros((1, 16, 2)), np.zeros((1, 16)), np.zeros((1, 4)), np.zeros(1), np.zeros(1), "coco", (9, 9))
    with pytest.raises(ValueError, match="scores must be"):
        PoseResult(np.zeros((1, 17, 2)), np.zeros((1, 16)), np.zeros((1, 4)), np.zeros(1), np.zeros(1), "coco", (9, 9))
    with pytest.raises(ValueError, match="track_ids must be"):
        PoseResult(np.zeros((2, 17, 2)), np.zeros((2, 17)), np.zeros((2, 4)), np.zeros(2), np.zeros(1), "coco", (9, 9))
    with pytest.raises(KeyError, match="unknown keypoint layout"):
        PoseResult.empty("nope", (4, 4))


def test_empty_and_indexing() -> None:
    e = PoseResult.empty("coco_wholebody", (10, 20), frame_id=2)
    assert len(e) == 0 and e.keypoints.shape == (0, 133, 2) and e.scores.shape == (0, 133)
    assert e.to_coco(1) == [] and e.to_json()["instances"] == [] and e.to_openpose()["people"] == []
    assert e.summary() == []
    r = _result()
    one = r[1]
    assert len(one) == 1 and one.track_ids.tolist() == [7] and one.frame_id == 4
    np.testing.assert_array_equal(r[np.array([False, True])].keypoints, one.keypoints)
    c = r.copy()
    c.keypoints[0, 0] = -5
    assert r.keypoints[0, 0, 0] != -5  # copy is deep


def test_ultralytics_view() -> None:
    r = _result()
    assert r.xy is r.keypoints and r.conf is r.scores and r.xyxy is r.boxes
    np.testing.assert_allclose(r.xyn[..., 0], r.keypoints[..., 0] / 160)
    np.testing.assert_allclose(r.xyn[..., 1], r.keypoints[..., 1] / 120)
    np.testing.assert_allclose(r.xywh[0], [10, 20, 50, 80])


def test_to_coco_body() -> None:
    r = _result()
    recs = r.to_coco(image_id=139)
    assert len(recs) == 2
    rec = recs[1]
    assert rec["image_id"] == 139 and rec["category_id"] == 1 and rec["track_id"] == 7
    assert rec["bbox"] == [70.0, 5.0, 80.0, 105.0]  # xywh
    flat = np.asarray(rec["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(flat[:, :2], r.keypoints[1], atol=1e-3)  # x before y
    np.testing.assert_allclose(flat[:, 2], r.scores[1], atol=1e-3)
    # MMPose's bbox_keypoint rescoring: box score x mean of the keypoint scores above 0.2
    s = r.scores[1]
    assert rec["score"] == pytest.approx(0.5 * s[s > 0.2].mean(), abs=1e-5)
    json.dumps(recs)  # plain Python types only


def test_to_coco_wholebody_split() -> None:
    r = _result("coco_wholebody", k=133)
    rec = r.to_coco("img")[0]
    parts = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")
    assert [len(rec[key]) // 3 for key in parts] == [17, 6, 68, 21, 21]
    joined = np.concatenate([np.asarray(rec[key]).reshape(-1, 3) for key in parts])
    np.testing.assert_allclose(joined[:, :2], r.keypoints[0], atol=1e-3)


def test_instance_score_without_confident_keypoints_is_zero() -> None:
    r = _result(n=1)
    r.scores[:] = 0.1
    assert r.instance_scores(0.2).tolist() == [0.0]


def test_openpose18_order_and_neck() -> None:
    r = _result()
    k, s = openpose18(r.keypoints, r.scores, "coco")
    assert k.shape == (2, 18, 2) and s.shape == (2, 18)
    for j, c in enumerate(OPENPOSE18_FROM_COCO):
        if c >= 0:
            np.testing.assert_array_equal(k[:, j], r.keypoints[:, c])
    np.testing.assert_allclose(k[:, 1], (r.keypoints[:, 5] + r.keypoints[:, 6]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(s[:, 1], np.minimum(r.scores[:, 5], r.scores[:, 6]))
    # right shoulder is COCO 6, left ear COCO 3
    np.testing.assert_array_equal(k[:, 2], r.keypoints[:, 6])
    np.testing.assert_array_equal(k[:, 17], r.keypoints[:, 3])


def test_openpose18_from_another_layout_maps_by_name() -> None:
    r = _result("halpe26", k=26)
    k, _ = openpose18(r.keypoints, r.scores, "halpe26")
    np.testing.assert_array_equal(k[:, 0], r.keypoints[:, 0])  # Halpe's first 17 points are COCO's
    # JHMDB has the limbs but no COCO face points: those come out with score 0
    j = _result("jhmdb", k=15)
    k, s = openpose18(j.keypoints, j.scores, "jhmdb")
    assert (s[:, [0, 14, 15, 16, 17]] == 0).all()
    assert (s[:, 2:14] > 0).any()


def test_to_openpose_wholebody() -> None:
    r = _result("coco_wholebody", k=133)
    doc = r.to_openpose()
    assert doc["version"] == 1.3 and doc["canvas_height"] == 120 and doc["canvas_width"] == 160
    p = doc["people"][1]
    assert p["person_id"] == [7]
    assert len(p["pose_keypoints_2d"]) == 18 * 3
    assert len(p["face_keypoints_2d"]) == 68 * 3
    assert len(p["hand_left_keypoints_2d"]) == 21 * 3 and len(p["hand_right_keypoints_2d"]) == 21 * 3
    face = np.asarray(p["face_keypoints_2d"]).reshape(68, 3)
    np.testing.assert_allclose(face[:, :2], r.keypoints[1, 23:91], atol=1e-3)
    left = np.asarray(p["hand_left_keypoints_2d"]).reshape(21, 3)
    np.testing.assert_allclose(left[:, :2], r.keypoints[1, 91:112], atol=1e-3)
    right = np.asarray(p["hand_right_keypoints_2d"]).reshape(21, 3)
    np.testing.assert_allclose(right[:, 2], r.scores[1, 112:133], atol=1e-3)
    json.dumps(doc)


def test_to_openpose_face70_and_switches_apply_to_data() -> None:
    r = _result("coco_wholebody", k=133)
    face = np.asarray(r.to_openpose(face_70=True)["people"][0]["face_keypoints_2d"]).reshape(70, 3)
    np.testing.assert_allclose(face[68, :2], r.keypoints[0, 2], atol=1e-3)  # right eye -> right pupil
    np.testing.assert_allclose(face[69, :2], r.keypoints[0, 1], atol=1e-3)  # left eye -> left pupil
    p = r.to_openpose(include_face=False, include_hands=False)["people"][0]
    assert p["face_keypoints_2d"] == [] and p["hand_left_keypoints_2d"] == [] and p["hand_right_keypoints_2d"] == []
    assert len(p["pose_keypoints_2d"]) == 54
    assert r.to_openpose(include_body=False)["people"][0]["pose_keypoints_2d"] == []
    # body-only layouts have no face / hands
    assert _result().to_openpose()["people"][0]["face_keypoints_2d"] == []


def test_to_openpose_threshold_zeroes_low_points() -> None:
    r = _result(n=1)
    r.scores[0, :] = 0.9
    r.scores[0, 0] = 0.1  # nose
    pose = np.asarray(r.to_openpose(kpt_thr=0.3)["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    assert pose[0].tolist() == [0.0, 0.0, 0.0]
    assert (pose[1:, 2] > 0).all()


def test_to_json_mmpose_instance_info() -> None:
    r = _result()
    entry = r.to_json(name="frame")
    assert entry["frame_id"] == 4 and entry["name"] == "frame"
    inst = entry["instances"][0]
    assert set(inst) == {"keypoints", "keypoint_scores", "bbox", "bbox_score", "track_id"}
    assert np.asarray(inst["keypoints"]).shape == (17, 2)
    np.testing.assert_allclose(inst["keypoints"], r.keypoints[0], atol=1e-3)
    assert inst["bbox"] == [[10.0, 20.0, 60.0, 100.0]] and inst["bbox_score"] == pytest.approx(0.9)
    assert inst["track_id"] == 3
    json.dumps(entry)


def test_summary_rows() -> None:
    r = _result()
    rows = r.summary()
    assert rows[0]["name"] == "person" and rows[0]["track_id"] == 3
    assert rows[0]["box"] == {"x1": 10.0, "y1": 20.0, "x2": 60.0, "y2": 100.0}
    assert rows[0]["confidence"] == pytest.approx(0.9)
    assert len(rows[0]["keypoints"]["x"]) == 17
    np.testing.assert_allclose(rows[0]["keypoints"]["visible"], r.scores[0], atol=1e-5)
    norm = r.summary(normalize=True)
    assert norm[1]["box"]["x2"] == pytest.approx(150 / 160)
    np.testing.assert_allclose(norm[0]["keypoints"]["y"], r.keypoints[0, :, 1] / 120, atol=1e-5)


def test_plot_returns_a_new_image() -> None:
    r = _result()
    img = np.full((120, 160, 3), 40, np.uint8)
    r.scores[:] = 1.0
    out = r.plot(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (img == 40).all()  # input untouched
    assert (out != 40).any()
    black = r.plot(img, skeleton="openpose", black_background=True)
    assert black.max() > 0 and (black == 0).mean() > 0.5
    with pytest.raises(ValueError, match="unknown skeleton"):
        r.plot(img, skeleton="coco")
