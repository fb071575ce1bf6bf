"""Teacher ensembles by part (posedistill.label.ensemble): the spec (string, YAML, JSON) and its errors, the
merge of stub teachers by part, ground truth first where labelled, and ``posedistill label`` with an ensemble whose
MediaPipe part is a stub (MediaPipe lives in its own environment)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posedistill.data.instance import Instance
from posedistill.label import teachers as teachers_mod
from posedistill.label.ensemble import (
    PART_SLICES,
    EnsembleTeacher,
    is_ensemble_spec,
    load_ensemble,
    parse_spec,
    parse_spec_string,
)
from posedistill.label.teacher_output import TeacherOutput
from tests.conftest import shared_path

HANDS_FEET_FACE = ("feet", "face", "left_hand", "right_hand")


class StubTeacher:
    """Labels every one of the 133 points of each box at (value, value), score ``score``."""

    def __init__(self, value: float, score: float = 0.5, name: str = "stub") -> None:
        self.value, self.score, self.name, self.calls, self.closed = value, score, name, 0, False

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> TeacherOutput:
        self.calls += 1
        out = TeacherOutput.empty(len(boxes))
        out.keypoints[:] = self.value
        out.scores[:] = self.score
        out.labelled[:] = True
        return out

    def close(self) -> None:
        self.closed = True


def test_spec_strings():
    spec = parse_spec_string("body=pp-tinypose:flip,feet+face+hands=mediapipe,gt")
    assert spec.teachers == (("pp-tinypose:flip", ("body",)), ("mediapipe", HANDS_FEET_FACE))
    assert spec.gt_parts == tuple(PART_SLICES)
    assert spec.describe() == "body=pp-tinypose:flip,feet+face+left_hand+right_hand=mediapipe,gt"
    two = parse_spec_string(" body + feet = a.onnx , face=mediapipe, left_hand=mediapipe , gt=body ")
    assert two.teachers == (("a.onnx", ("body", "feet")), ("mediapipe", ("face", "left_hand")))
    assert two.gt_parts == ("body",)
    assert parse_spec_string("gt").teachers == () and parse_spec_string("all=x").teachers[0][1] == tuple(PART_SLICES)
    for bad, match in [
        ("body=a,body=b", "part 'body' is given to two teachers"),
        ("torso=a", "unknown part 'torso'"),
        ("body=a,mediapipe", "neither 'PARTS=TEACHER' nor 'gt'"),
        ("body=gt", "not 'PARTS=gt'"),
        ("body=", "have no teacher"),
        ("gt=elbows", "unknown part 'elbows'"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_spec_string(bad)


def test_spec_files_and_detection(tmp_path):
    y = tmp_path / "ens.yaml"
    y.write_text("parts:\n  body: pp-tinypose:flip\n  feet+face+hands: mediapipe\ngt: true\n")
    assert parse_spec(str(y)) == parse_spec_string("body=pp-tinypose:flip,feet+face+hands=mediapipe,gt")
    v = tmp_path / "visible.yaml"
    v.write_text("parts:\n  body: a.onnx\ngt: [body]\ngt_visible_only: true\n")
    assert parse_spec(str(v)) == parse_spec_string("body=a.onnx,gt:visible=body")
    j = tmp_path / "ens.json"
    j.write_text(json.dumps({"parts": {"body": "a.onnx"}, "gt": ["feet", "face"]}))
    assert parse_spec(str(j)).gt_parts == ("feet", "face")
    bad = tmp_path / "bad.yaml"
    bad.write_text("parts: {body: a}\nteachers: 3\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['teachers'\]"):
        parse_spec(str(bad))
    for spec in (str(y), str(j), "gt", "body=pp-tinypose", "a=b,c"):
        assert is_ensemble_spec(spec), spec
    for spec in ("pp-tinypose", "mediapipe", "https://host/m.onnx?token=1", "model.onnx:flip"):
        assert not is_ensemble_spec(spec), spec


def _person(keypoints: np.ndarray, visibility: np.ndarray, layout: str = "coco") -> Instance:
    return Instance(
        image_path="x.jpg",
        bbox=np.array([0, 0, 10, 10], np.float32),
        keypoints=keypoints.astype(np.float32),
        visibility=visibility.astype(np.float32),
        layout=layout,
    )


def test_ensemble_takes_each_part_from_its_teacher_and_gt_first():
    body, rest = StubTeacher(1.0, 0.9, "body-teacher"), StubTeacher(2.0, 0.4, "rest-teacher")
    ens = EnsembleTeacher([(body, ["body"]), (rest, ["face", "hands"])], gt_parts=["body"])
    assert ens.uses_ground_truth and "body: body-teacher" in ens.name and "ground truth" in ens.name
    image, boxes = np.zeros((20, 20, 3), np.uint8), np.array([[0, 0, 9, 9], [5, 5, 19, 19]], np.float32)
    out = ens(image, boxes)  # no ground truth given: teachers only
    assert out.labelled[:, :17].all() and (out.keypoints[:, :17] == 1.0).all() and (out.scores[:, :17] == 0.9).all()
    assert not out.labelled[:, 17:23].any() and (out.keypoints[:, 17:23] == 0).all()  # feet: nobody's
    assert out.labelled[:, 23:].all() and (out.keypoints[:, 23:] == 2.0).all() and (out.scores[:, 23:] == 0.4).all()
    # ground truth for the first person only, 2 of 17 body points labelled: those two win, score 1
    kp = np.zeros((17, 2))
    kp[0], kp[5] = (7, 8), (3, 4)
    vis = np.zeros(17)
    vis[[0, 5]] = (2, 1)
    out = ens(image, boxes, ground_truth=[_person(kp, vis), None])
    np.testing.assert_allclose(out.keypoints[0, [0, 5]], [[7, 8], [3, 4]])
    assert (out.scores[0, [0, 5]] == 1.0).all() and (out.scores[0, 1:5] == 0.9).all()
    assert (out.keypoints[1, :17] == 1.0).all()
    # a whole-body GT on a 'gt=all' ensemble overrides feet too
    wb_kp, wb_vis = np.zeros((133, 2)), np.zeros(133)
    wb_kp[18], wb_vis[18] = (6, 6), 2
    out = EnsembleTeacher([(body, ["body"])], gt_parts=list(PART_SLICES))(
        image, boxes[:1], [_person(wb_kp, wb_vis, "coco_wholebody")]
    )
    assert out.labelled[0, 18] and out.scores[0, 18] == 1.0 and not out.labelled[0, 17]
    ens.close()
    assert body.closed and rest.closed
    with pytest.raises(ValueError, match="given to two teachers"):
        EnsembleTeacher([(body, ["body"]), (rest, ["all"])])


def test_visible_ground_truth_only():
    """``gt:visible``: ground-truth points marked occluded (visibility 1: LSPet's guesses, sometimes outside the
    image) leave the teacher's point in place; visible ones (2) still win."""
    spec = parse_spec_string("body=pp-tinypose:flip,gt:visible")
    assert spec.gt_visible_only and spec.gt_parts == tuple(PART_SLICES)
    assert spec.describe() == "body=pp-tinypose:flip,gt:visible"
    assert parse_spec_string("body=a,gt:visible=body").describe() == "body=a,gt:visible=body"
    assert not parse_spec_string("body=a,gt").gt_visible_only and is_ensemble_spec("gt:visible")
    kp, vis = np.zeros((17, 2)), np.zeros(17)
    kp[0], kp[5] = (7, 8), (-300, 400)
    vis[[0, 5]] = (2, 1)
    image, boxes = np.zeros((20, 20, 3), np.uint8), np.array([[0, 0, 9, 9]], np.float32)
    loaded = load_ensemble(spec, lambda t: StubTeacher(1.0, 0.9))
    assert "visible ground truth first" in loaded.name
    out = loaded(image, boxes, ground_truth=[_person(kp, vis)])
    np.testing.assert_allclose(out.keypoints[0, [0, 5]], [[7, 8], [1, 1]])
    assert out.scores[0, 0] == 1.0 and out.scores[0, 5] == 0.9
    every = EnsembleTeacher([(StubTeacher(1.0, 0.9), ["body"])], gt_parts=["body"])(image, boxes, [_person(kp, vis)])
    np.testing.assert_allclose(every.keypoints[0, 5], [-300, 400])  # plain 'gt' keeps the occluded guess


def test_load_ensemble_builds_each_teacher_once():
    made: dict[str, StubTeacher] = {}

    def make(spec: str) -> StubTeacher:
        made[spec] = StubTeacher(float(len(made)), name=spec)
        return made[spec]

    ens = load_ensemble("body=a,face=b,feet=a,gt", make)
    assert sorted(made) == ["a", "b"] and ens.gt_parts == tuple(PART_SLICES)
    ens(np.zeros((5, 5, 3), np.uint8), np.array([[0, 0, 4, 4]], np.float32))
    assert made["a"].calls == 1 and made["b"].calls == 1


def test_label_command_with_an_ensemble_and_ground_truth(monkeypatch, tmp_path):
    """``posedistill label`` on coco_mini_train with PP-TinyPose for the body, a stub for MediaPipe's parts and
    the ground truth first: GT body points come out exactly, the other body points from PP-TinyPose."""
    pytest.importorskip("ncnn")
    from posedistill.cli import main
    from posedistill.data.readers import read_coco

    monkeypatch.setattr(teachers_mod, "MediaPipeTeacher", lambda: StubTeacher(3.0, 0.25, "mediapipe-stub"))
    gt = shared_path("data", "coco_dev", "coco_mini_train", "person_keypoints.json")
    out = tmp_path / "labels.json"
    rc = main(["label", str(gt), "--teacher", "body=pp-tinypose:flip,feet+face+hands=mediapipe,gt", "--out", str(out),
               "--indices", "0:6", "--quiet"])  # fmt: skip
    assert rc == 0
    data = json.loads(out.read_text())
    assert "mediapipe-stub" in data["info"]["teacher"] and "ground truth" in data["info"]["teacher"]
    truth = {a["id"]: a for a in json.loads(gt.read_text())["annotations"]}
    checked = 0
    for ann in data["annotations"]:
        src = truth[ann["source_id"]]
        body = np.array(ann["keypoints"]).reshape(17, 3)
        ref = np.array(src["keypoints"]).reshape(17, 3)
        scores = np.array(ann["keypoint_scores"])
        lab = ref[:, 2] > 0
        np.testing.assert_allclose(body[lab, :2], ref[lab, :2], atol=0.01)
        assert (scores[:17][lab] == 1.0).all()
        checked += int(lab.sum())
        assert (scores[23:91] == 0.25).all()  # face from the stub
    assert checked > 20
    # read back as training data: the scores become keypoint weights
    people = read_coco(out, layout="coco_wholebody")
    assert people and all(p.keypoint_weights is not None for p in people)
