"""``posedistill label``: the MediaPipe -> COCO-WholeBody map, the conversion of Holistic results, the labels file
read back with its per-keypoint weights (and used as training weights), checkpoint / ONNX teachers on LSPet, and
the errors. MediaPipe itself is not needed (only the last test uses it, where it is installed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from posedistill.cli import main
from posedistill.data.readers import read_coco
from posedistill.label.coco_writer import body_result, wholebody_annotation, wholebody_categories
from posedistill.label.mediapipe_map import (
    FACE68_FROM_MESH,
    HAND21_FROM_MEDIAPIPE,
    POSE_FROM_WHOLEBODY,
    holistic_to_wholebody,
)
from posedistill.label.teachers import MediaPipeTeacher, crop_box, load_teacher
from posedistill.layouts import MEDIAPIPE_POSE_NAMES, get_layout
from tests.conftest import shared_path

WB = get_layout("coco_wholebody")

# Mirror images of the face-mesh points the map uses (the mesh is left/right symmetric): measured by reflecting
# the mesh of 38 MediaPipe faces about its fitted mid-plane (coco_dev/julito), the eye points as MediaPipe's
# eye-aspect-ratio sets pair them.
MESH_MIRROR = {
    127: 356, 234: 454, 132: 361, 58: 288, 172: 397, 136: 365, 149: 378, 176: 400, 152: 152,
    70: 300, 63: 293, 105: 334, 66: 296, 107: 336,
    168: 168, 197: 197, 5: 5, 4: 4, 2: 2, 75: 305, 97: 326,
    33: 263, 160: 387, 158: 385, 133: 362, 153: 380, 144: 373,
    61: 291, 39: 269, 37: 267, 0: 0, 321: 91, 314: 84, 17: 17,
    78: 308, 82: 312, 13: 13, 317: 87, 14: 14,
}  # fmt: skip
MESH_MIRROR |= {b: a for a, b in MESH_MIRROR.items()}


def _landmarks(points: np.ndarray, visibility: np.ndarray | None = None) -> SimpleNamespace:
    """A MediaPipe-like landmark list from (n, 2) normalised points."""
    vis = np.ones(len(points)) if visibility is None else visibility
    return SimpleNamespace(
        landmark=[SimpleNamespace(x=float(x), y=float(y), z=0.0, visibility=float(v)) for (x, y), v in zip(points, vis)]
    )


def _fake_result(seed: int = 0, face: bool = True, hands: bool = True) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    pose = rng.uniform(0.05, 0.95, (33, 2))
    vis = rng.uniform(0, 1, 33)
    return SimpleNamespace(
        pose_landmarks=_landmarks(pose, vis),
        face_landmarks=_landmarks(rng.uniform(0.05, 0.95, (468, 2))) if face else None,
        left_hand_landmarks=_landmarks(rng.uniform(0.05, 0.95, (21, 2))) if hands else None,
        right_hand_landmarks=_landmarks(rng.uniform(0.05, 0.95, (21, 2))) if hands else None,
    )


def _xy(landmarks: SimpleNamespace, index: int) -> np.ndarray:
    p = landmarks.landmark[index]
    return np.array([p.x, p.y])


# ---------------------------------------------------------------------------------------------- the map
def test_index_map_lengths_uniqueness_ranges():
    assert len(FACE68_FROM_MESH) == 68 and len(set(FACE68_FROM_MESH)) == 68
    assert all(0 <= i < 468 for i in FACE68_FROM_MESH)
    assert list(HAND21_FROM_MEDIAPIPE) == list(range(21))
    assert POSE_FROM_WHOLEBODY.shape == (133,)
    names = WB.keypoint_names
    for k in range(17):  # the body by name
        assert MEDIAPIPE_POSE_NAMES[POSE_FROM_WHOLEBODY[k]] == names[k]
    feet = {names[k]: POSE_FROM_WHOLEBODY[k] for k in range(17, 23)}
    assert feet["left_heel"] == MEDIAPIPE_POSE_NAMES.index("left_heel")
    assert feet["right_big_toe"] == MEDIAPIPE_POSE_NAMES.index("right_foot_index")
    assert feet["left_small_toe"] == feet["right_small_toe"] == -1  # MediaPipe has no small toes
    assert (POSE_FROM_WHOLEBODY[23:] == -1).all()


def test_face_map_left_right_follows_the_ibug_mirror():
    """Mirroring the face (iBUG flip pairs) must land on the mirror mesh points: sides are not swapped."""
    flip = WB.flip_indices[23:91]
    for i, j in enumerate(flip):
        assert MESH_MIRROR[FACE68_FROM_MESH[i]] == FACE68_FROM_MESH[j - 23], (i, j - 23)
    # a few anchors: right eye outer corner, nose tip, mouth corners, chin
    assert FACE68_FROM_MESH[36] == 33 and FACE68_FROM_MESH[45] == 263
    assert FACE68_FROM_MESH[30] == 4 and FACE68_FROM_MESH[8] == 152
    assert (FACE68_FROM_MESH[48], FACE68_FROM_MESH[54]) == (61, 291)


# ----------------------------------------------------------------------------------------- conversion
def test_holistic_result_to_wholebody_arrays():
    res = _fake_result()
    crop = (40.0, 30.0, 200.0, 100.0)  # left, top, width, height in the image
    kp, sc, lab = holistic_to_wholebody(res, crop, (1000, 1000))
    assert kp.shape == (133, 2) and sc.shape == (133,) and lab.shape == (133,)
    assert kp.dtype == np.float32 and sc.dtype == np.float32 and lab.dtype == bool

    def pix(xy):
        return np.array([crop[0] + xy[0] * crop[2] - 0.5, crop[1] + xy[1] * crop[3] - 0.5])

    pose = res.pose_landmarks
    np.testing.assert_allclose(kp[0], pix(_xy(pose, 0)), atol=1e-3)  # nose
    np.testing.assert_allclose(kp[9], pix(_xy(pose, 15)), atol=1e-3)  # left wrist
    np.testing.assert_allclose(kp[17], pix(_xy(pose, 31)), atol=1e-3)  # left big toe <- left foot index
    np.testing.assert_allclose(kp[19], pix(_xy(pose, 29)), atol=1e-3)  # left heel
    body_vis = [pose.landmark[POSE_FROM_WHOLEBODY[k]].visibility for k in range(17)]
    np.testing.assert_allclose(sc[:17], body_vis, atol=1e-6)
    np.testing.assert_allclose(kp[23 + 30], pix(_xy(res.face_landmarks, 4)), atol=1e-3)  # nose tip
    np.testing.assert_allclose(kp[91 + 8], pix(_xy(res.left_hand_landmarks, 8)), atol=1e-3)  # left forefinger tip
    np.testing.assert_allclose(kp[112], pix(_xy(res.right_hand_landmarks, 0)), atol=1e-3)  # right hand root
    # confidences: face = nose visibility, hands = their wrist's
    np.testing.assert_allclose(sc[23:91], pose.landmark[0].visibility, atol=1e-6)
    np.testing.assert_allclose(sc[91:112], pose.landmark[15].visibility, atol=1e-6)
    np.testing.assert_allclose(sc[112:], pose.landmark[16].visibility, atol=1e-6)
    assert lab.sum() == 133 - 2 and not lab[18] and not lab[21]  # all but the small toes
    assert (kp[~lab] == 0).all() and (sc[~lab] == 0).all()


def test_missing_parts_and_points_outside_the_image_are_unlabelled():
    res = _fake_result(face=False, hands=False)
    res.pose_landmarks.landmark[0].x = 1.4  # nose right of the crop...
    kp, _, lab = holistic_to_wholebody(res, (0, 0, 100, 100), (150, 100))
    assert lab[0] and kp[0, 0] == pytest.approx(139.5)  # ...but inside the image: kept
    _, _, lab = holistic_to_wholebody(res, (0, 0, 100, 100), (100, 100))
    assert not lab[0]  # outside the image
    assert lab[1:17].all() and not lab[23:].any()
    _, _, lab = holistic_to_wholebody(SimpleNamespace(), (0, 0, 10, 10), (10, 10))  # nothing found
    assert not lab.any()


def test_mediapipe_teacher_crops_each_box_with_padding():
    calls = []

    class FakeHolistic:
        def process(self, rgb):
            calls.append(rgb.shape)
            centre = _landmarks(np.full((33, 2), 0.5))
            return SimpleNamespace(pose_landmarks=centre)

    image = np.zeros((200, 300, 3), np.uint8)
    teacher = MediaPipeTeacher(holistic=FakeHolistic())
    out = teacher(image, np.array([[100, 50, 140, 130], [0, 0, 0, 0]], np.float32))
    assert calls == [(100, 50, 3)]  # 40 x 80 box grown by 1.25; the empty box is skipped
    assert crop_box(np.array([100, 50, 140, 130]), (300, 200)) == (95, 40, 145, 140)
    np.testing.assert_allclose(out.keypoints[0, 0], [95 + 25 - 0.5, 40 + 50 - 0.5])
    assert out.labelled[0, :17].all() and not out.labelled[1].any()
    assert crop_box(np.array([-10, -10, 50, 50]), (40, 30)) == (0, 0, 40, 30)  # clipped to the image


# ------------------------------------------------------------------------------------ labels file
def _write_labels(path: Path, image: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kp = rng.uniform(10, 90, (133, 2)).astype(np.float32)
    sc = rng.uniform(0.1, 1.0, 133).astype(np.float32)
    lab = np.ones(133, bool)
    lab[[18, 21]] = False
    lab[91:112] = False  # no left hand
    ann = wholebody_annotation(1, 7, np.array([5, 5, 90, 90]), kp, sc, lab)
    data = {
        "images": [{"id": 7, "file_name": str(image), "width": 100, "height": 100}],
        "annotations": [ann],
        "categories": wholebody_categories(),
    }
    path.write_text(json.dumps(data))
    return kp, sc, lab


def test_labels_file_reads_back_with_keypoint_weights(tmp_path):
    import cv2

    image = tmp_path / "img.jpg"
    cv2.imwrite(str(image), np.zeros((100, 100, 3), np.uint8))
    kp, sc, lab = _write_labels(tmp_path / "labels.json", image, np.random.default_rng(0))
    (inst,) = read_coco(tmp_path / "labels.json")
    assert inst.layout == "coco_wholebody" and Path(inst.image_path) == image and inst.image_size == (100, 100)
    np.testing.assert_array_equal(inst.visibility > 0, lab)
    np.testing.assert_allclose(inst.keypoints[lab], kp[lab], atol=0.01)
    np.testing.assert_allclose(inst.keypoint_weights, np.where(lab, sc, 0), atol=1e-4)
    np.testing.assert_allclose(inst.target_weights(), np.where(lab, sc, 0), atol=1e-4)
    assert inst.extra["face_valid"] and not inst.extra["lefthand_valid"] and inst.extra["foot_valid"]
    assert inst.extra["lefthand_box"].tolist() == [0, 0, 0, 0] and inst.extra["face_box"][2] > 0
    (body,) = read_coco(tmp_path / "labels.json", layout="coco")  # the body of a whole-body file
    np.testing.assert_allclose(body.keypoint_weights, sc[:17], atol=1e-4)
    res = body_result(7, np.array([5, 5, 90, 90]), kp, sc, lab)
    assert len(res["keypoints"]) == 51 and res["category_id"] == 1 and 0 < res["score"] <= 1


def test_bad_keypoint_scores_name_the_field(tmp_path):
    from posedistill.errors import PoseDataError

    _write_labels(tmp_path / "labels.json", tmp_path / "img.jpg", np.random.default_rng(0))
    data = json.loads((tmp_path / "labels.json").read_text())
    data["annotations"][0]["keypoint_scores"] = [0.5] * 17
    data["images"][0]["width"] = 100
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(PoseDataError, match=r"keypoint_scores.*17 numbers.*133"):
        read_coco(tmp_path / "bad.json")


def test_loader_multiplies_target_weights_by_the_scores(tmp_path):
    pytest.importorskip("torch")
    import cv2

    from posedistill.codecs.simcc import SimCCCodec
    from posedistill.data.loader import TopDownDataset

    image = tmp_path / "img.jpg"
    cv2.imwrite(str(image), np.zeros((100, 100, 3), np.uint8))
    _, sc, lab = _write_labels(tmp_path / "labels.json", image, np.random.default_rng(1))
    (inst,) = read_coco(tmp_path / "labels.json")
    codec = SimCCCodec((48, 64), (2.0, 2.0))
    weighted = TopDownDataset([inst], codec, (48, 64), train=False)[0]["weights"].numpy()
    inst.keypoint_weights = None
    plain = TopDownDataset([inst], codec, (48, 64), train=False)[0]["weights"].numpy()
    assert plain[~lab].sum() == 0 and plain[lab].min() == 1.0  # every labelled point lies in the crop
    np.testing.assert_allclose(weighted, plain * np.where(lab, sc, 0), atol=1e-4)


# --------------------------------------------------------------------------- checkpoint / ONNX teachers
@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    """A random RTMPose-t (COCO-17, 96 x 128 input) as a checkpoint folder and as ONNX."""
    torch = pytest.importorskip("torch")
    from posedistill.engine.checkpoint import save_checkpoint
    from posedistill.infer.export import export_onnx
    from posedistill.models import build_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    size = (96, 128)
    model = build_model("rtmpose-t", 17, size).eval()
    with torch.no_grad():  # O(1) logits instead of near-ties
        for lin in (model.head.cls_x, model.head.cls_y, model.head.mlp[1]):
            torch.nn.init.normal_(lin.weight, std=1.0)
    root = tmp_path_factory.mktemp("teacher")
    codec = {"type": "simcc", "input_size": list(size), "sigma": [4.9, 5.66], "split_ratio": 2.0}
    ckpt = save_checkpoint(root / "ckpt", model, {"layout": "coco", "input_size": list(size), "codec": codec})
    onnx_path = export_onnx(model, root / "tiny.onnx", meta=json.loads((ckpt / "meta.json").read_text()))
    return ckpt, onnx_path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_checkpoint_and_onnx_teachers_label_lspet(tiny_teacher, tmp_path, capsys):
    mat = shared_path("data", "lspet", "joints.mat")
    ckpt, onnx_path = tiny_teacher
    outs = {}
    for name, teacher in (("ckpt", ckpt), ("onnx", onnx_path)):
        out, results = tmp_path / f"{name}.json", tmp_path / f"{name}_results.json"
        args = ["label", str(mat), "--indices", "0:2", "--teacher", str(teacher), "--out", str(out)]
        assert main([*args, "--results", str(results), "--quiet"]) == 0
        assert "2 images, 2 people" in capsys.readouterr().out
        outs[name] = read_coco(out)
        res = json.loads(results.read_text())
        assert len(res) == 2 and all(len(r["keypoints"]) == 51 for r in res)
    a, b = outs["ckpt"], outs["onnx"]
    assert [Path(i.image_path).name for i in a] == ["im00001.jpg", "im00002.jpg"]
    assert all(Path(i.image_path).is_absolute() and Path(i.image_path).is_file() for i in a)
    for x, y in zip(a, b):
        assert x.layout == "coco_wholebody" and x.keypoint_weights is not None
        assert not (x.visibility[17:] > 0).any()  # a body-17 teacher labels the body only
        np.testing.assert_allclose(x.keypoints, y.keypoints, atol=0.05)
        np.testing.assert_allclose(x.keypoint_weights, y.keypoint_weights, atol=1e-3)
        assert ((x.keypoint_weights >= 0) & (x.keypoint_weights <= 1)).all()
    lsp = __import__("posedistill.data.readers", fromlist=["read_lsp"]).read_lsp(mat, indices=[1, 2])
    np.testing.assert_allclose(a[0].bbox, lsp[0].bbox, atol=0.01)  # labelled in the LSP person box


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_teacher_on_images_whole_image_and_min_score(tiny_teacher, tmp_path, capsys):
    lspet = shared_path("data", "lspet", "images")
    _, onnx_path = tiny_teacher
    out = tmp_path / "whole.json"
    src = str(lspet / "im0000[12].jpg")
    assert main(["label", src, "--teacher", str(onnx_path), "--out", str(out), "--min-score", "2", "--quiet"]) == 0
    assert "labelled people: 0 of 2" in capsys.readouterr().out  # nothing scores 2: nothing labelled
    data = json.loads(out.read_text())
    assert len(data["images"]) == 2 and data["annotations"] == []
    assert main(["label", src, "--teacher", str(onnx_path), "--out", str(out), "--quiet"]) == 0
    (inst, _) = read_coco(out)
    w, h = inst.image_size
    np.testing.assert_allclose(inst.bbox, [0, 0, w, h])  # the whole image is the person


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_teacher_on_a_folder_with_boxes_keeps_the_gt_ids(tiny_teacher, tmp_path, capsys):
    coco = shared_path("data", "fixtures", "coco")
    _, onnx_path = tiny_teacher
    gt = json.loads((coco / "test_coco.json").read_text())
    people = [a for a in gt["annotations"] if not a.get("iscrowd")]
    out, results = tmp_path / "boxes.json", tmp_path / "results.json"
    args = ["label", str(coco), "--boxes", str(coco / "test_coco.json"), "--teacher", str(onnx_path)]
    assert main([*args, "--out", str(out), "--results", str(results), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert {a["source_id"] for a in data["annotations"]} <= {a["id"] for a in people}
    assert {im["id"] for im in data["images"]} == {a["image_id"] for a in people}
    gt_box = {a["id"]: a["bbox"] for a in people}
    for ann in data["annotations"]:
        np.testing.assert_allclose(ann["bbox"], gt_box[ann["source_id"]], atol=0.01)
    assert {r["image_id"] for r in json.loads(results.read_text())} <= {a["image_id"] for a in people}


def test_bad_teacher_says_what_is_expected(tmp_path, capsys):
    image = tmp_path / "a.jpg"
    __import__("cv2").imwrite(str(image), np.zeros((20, 20, 3), np.uint8))
    for teacher in ("no-such-model", str(tmp_path), str(image)):
        assert main(["label", str(image), "--teacher", teacher, "--out", str(tmp_path / "o.json")]) == 2
        err = capsys.readouterr().err
        assert "mediapipe" in err and "checkpoint" in err and "ONNX" in err, err
    with pytest.raises(ValueError, match="no such file"):
        load_teacher("no-such-model")
    assert not (tmp_path / "o.json").exists()


def test_missing_mediapipe_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    with pytest.raises(ImportError, match=r"numpy<2.*\[mediapipe\]"):
        load_teacher("mediapipe")
    image = tmp_path / "a.jpg"
    __import__("cv2").imwrite(str(image), np.zeros((20, 20, 3), np.uint8))
    assert main(["label", str(image), "--teacher", "mediapipe", "--out", str(tmp_path / "o.json")]) == 2
    assert "docs/label.md" in capsys.readouterr().err


# --------------------------------------------------------------------------------- real MediaPipe
def test_real_mediapipe_on_lspet_and_the_face_sets():
    """Only in the mediapipe environment: the map's face sides against MediaPipe's own region sets, and one
    LSPet person labelled with the left hand next to the left wrist when both are found."""
    pytest.importorskip("mediapipe")
    from mediapipe.python.solutions import face_mesh_connections as fmc

    def ids(edges):
        return {i for e in edges for i in e}

    assert set(FACE68_FROM_MESH[:17]) <= ids(fmc.FACEMESH_FACE_OVAL)
    assert set(FACE68_FROM_MESH[17:22]) <= ids(fmc.FACEMESH_RIGHT_EYEBROW)
    assert set(FACE68_FROM_MESH[22:27]) <= ids(fmc.FACEMESH_LEFT_EYEBROW)
    assert set(FACE68_FROM_MESH[36:42]) <= ids(fmc.FACEMESH_RIGHT_EYE)
    assert set(FACE68_FROM_MESH[42:48]) <= ids(fmc.FACEMESH_LEFT_EYE)
    assert set(FACE68_FROM_MESH[48:68]) <= ids(fmc.FACEMESH_LIPS)

    from posedistill.data.image_io import read_image
    from posedistill.data.readers import read_lsp

    (inst,) = read_lsp(shared_path("data", "lspet", "joints.mat"), indices=[1])
    teacher = load_teacher("mediapipe")
    x, y, w, h = inst.bbox
    out = teacher(read_image(inst.image_path), np.array([[x, y, x + w, y + h]], np.float32))
    assert out.labelled[0, :17].sum() > 10
    if out.labelled[0, 91]:
        assert np.linalg.norm(out.keypoints[0, 91] - out.keypoints[0, 9]) < np.linalg.norm(
            out.keypoints[0, 91] - out.keypoints[0, 10]
        )
