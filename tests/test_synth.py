"""Synthetic whole-body data: exact labels, determinism, videos, COCO-WholeBody output the readers load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from posedistill.data.synthetic import generate as gen_mod
from posedistill.data.synthetic import (
    generate_dataset,
    generate_videos,
    make_config,
    render_sample,
    render_scene,
    render_video,
)
from posedistill.data.synthetic.background import OCCLUDER
from posedistill.data.synthetic.kinematics import (
    NEUTRAL,
    NUM_KEYPOINTS,
    BodyShape,
    forward_kinematics,
    mirror_pose,
    sample_pose,
)
from posedistill.data.synthetic.render import (
    LABELS_PER_PERSON,
    OWNERS,
    compose,
    project,
    sample_person,
)
from posedistill.layouts import COCO_WHOLEBODY

PARTS = COCO_WHOLEBODY.parts
SMALL = (96, 96)


def _scenes(difficulty: str, n: int, size=(128, 128), **overrides):
    cfg = make_config(difficulty, size=size, **overrides)
    return cfg, [render_scene(np.random.default_rng([11, i]), cfg, keep_layers=True) for i in range(n)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ determinism
@pytest.mark.stress  # a spawned process pool
def test_same_seed_same_bytes_and_workers_do_not_matter(tmp_path):
    kw = dict(size=SMALL, difficulty="hard", seed=3)
    generate_dataset(tmp_path / "a", 4, **kw)
    generate_videos(tmp_path / "a", 1, 3, **kw)
    generate_dataset(tmp_path / "b", 4, **kw)
    generate_videos(tmp_path / "b", 1, 3, **kw)
    generate_dataset(tmp_path / "c", 4, workers=2, **kw)
    generate_videos(tmp_path / "c", 1, 3, workers=2, **kw)
    a, b, c = (_files(tmp_path / k) for k in "abc")
    assert len(a) == 4 + 3 + 2  # jpgs + annotations.json + videos.json
    assert a == b
    assert a == c
    generate_dataset(tmp_path / "d", 4, size=SMALL, difficulty="hard", seed=4)
    d = _files(tmp_path / "d")
    assert d["images/000001.jpg"] != a["images/000001.jpg"]


def test_image_subset_regenerates_alone(tmp_path):
    # Image i depends on (seed, i) only: the first 2 of a 5-image run equal a 2-image run.
    generate_dataset(tmp_path / "five", 5, size=SMALL, seed=9)
    generate_dataset(tmp_path / "two", 2, size=SMALL, seed=9)
    for name in ("000001.jpg", "000002.jpg"):
        assert (tmp_path / "five/images" / name).read_bytes() == (tmp_path / "two/images" / name).read_bytes()


# ---------------------------------------------------------------------------------------- exact labels
@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_labelled_points_inside_image_and_their_part_box(difficulty):
    cfg, scenes = _scenes(difficulty, 12)
    w, h = cfg.size
    n_people = 0
    for scene in scenes:
        for p in scene.people:
            n_people += 1
            kp, v = p["keypoints"], p["visibility"]
            lab = v > 0
            assert set(np.unique(v).tolist()) <= {0, 1, 2}
            assert np.all(kp[~lab] == 0)
            assert np.all(v[p["outside"]] == 0)
            x, y = kp[lab, 0], kp[lab, 1]
            assert np.all((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1))
            assert p["num_keypoints"] == int(lab[:17].sum())
            assert p["area"] > 0
            boxes = {"bbox": slice(0, 23), "face_box": PARTS["face"], "lefthand_box": PARTS["lefthand"],
                     "righthand_box": PARTS["righthand"]}  # fmt: skip
            for box_name, sl in boxes.items():
                bx, by, bw, bh = p[box_name]
                m = lab[sl]
                pts = kp[sl][m]
                eps = 1e-6
                assert np.all((pts[:, 0] >= bx - eps) & (pts[:, 0] <= bx + bw + eps)), (box_name, pts, p[box_name])
                assert np.all((pts[:, 1] >= by - eps) & (pts[:, 1] <= by + bh + eps)), (box_name, pts, p[box_name])
                assert bx >= 0 and by >= 0 and bx + bw <= w and by + bh <= h
            for part in ("face", "lefthand", "righthand"):
                assert p[f"{part}_valid"] == bool(lab[PARTS[part]].any())
                assert p[f"{part}_valid"] == bool(np.any(p[f"{part}_box"][2:] > 0))
            assert p["foot_valid"] == bool(lab[PARTS["foot"]].any())
    assert n_people >= 12


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_visibility_follows_the_drawing(difficulty):
    """Visible points lie on pixels drawn last by one of their own parts and differ from the background there;
    occluded points lie under something else."""
    _, scenes = _scenes(difficulty, 10)
    counts = np.zeros(3, int)
    for scene in scenes:
        labels, bg, clean = scene.labels, scene.background, scene.clean
        for p in scene.people:
            v = p["visibility"]
            xi = np.floor(p["keypoints"][:, 0] + 0.5).astype(int)
            yi = np.floor(p["keypoints"][:, 1] + 0.5).astype(int)
            under = labels[yi, xi].astype(np.int64)
            mine = (under > 0) & (under != OCCLUDER) & ((under - 1) // LABELS_PER_PERSON == p["index"])
            own = mine & (((OWNERS >> ((under - 1) % LABELS_PER_PERSON)) & 1) == 1)
            vis, occ = v == 2, v == 1
            assert np.all(own[vis])
            changed = np.any(clean[yi, xi] != bg[yi, xi], axis=-1)
            assert np.all(changed[vis])
            # Occluded: covered by another part / person / occluder, or self-hidden on a turned face.
            face = np.zeros(NUM_KEYPOINTS, bool)
            face[PARTS["face"]] = True
            face[0:3] = True
            assert np.all(~own[occ & ~face])
            counts += (int(vis.sum()), int(occ.sum()), int((v == 0).sum()))
    assert counts[0] > 0 and counts[1] > 0


def test_truncated_people_have_points_outside():
    _, scenes = _scenes("medium", 8, truncation_prob=1.0, people=(1, 1))
    outside = sum(int(p["outside"].sum()) for s in scenes for p in s.people)
    assert outside > 0


def test_render_sample_returns_image_and_people():
    cfg = make_config("medium", size=(160, 120))
    image, people = render_sample(np.random.default_rng(0), cfg)
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    assert people and people[0]["keypoints"].shape == (133, 2) and people[0]["visibility"].shape == (133,)


# ------------------------------------------------------------------------------------- left and right
def test_mirrored_pose_gives_flipped_keypoints():
    """Mirroring the pose of a symmetric body mirrors the 133 points onto their layout flip partners (face and
    hands included): the model's left and right are the layout's."""
    rng = np.random.default_rng(0)
    flip = np.array(COCO_WHOLEBODY.flip_indices)
    for _ in range(5):
        pose = sample_pose(rng, 1.0, 1.0, 0.5)
        a = forward_kinematics(BodyShape(), pose, 0.0, 0.0)[:NUM_KEYPOINTS]
        b = forward_kinematics(BodyShape(), mirror_pose(pose), 0.0, 0.0)[:NUM_KEYPOINTS]
        np.testing.assert_allclose(b[flip] * (-1, 1, 1), a, atol=1e-9)


def _single(yaw: float):
    cfg = make_config("easy", size=(256, 256), scale=(0.85, 0.85), truncation_prob=0.0)
    rng = np.random.default_rng(5)
    person = sample_person(rng, cfg)
    person.pose, person.yaw, person.pitch, person.roll = NEUTRAL.copy(), yaw, 0.0, 0.0
    person.offset = np.array([128.0, 120.0])
    pr = project(person)
    scene = compose(rng, cfg, np.full((256, 256, 3), 128, np.uint8), [person], [pr], keep_layers=True)
    return scene.people[0]


def test_front_facing_person_has_its_left_on_the_image_right():
    p = _single(0.0)
    kp, names = p["keypoints"], COCO_WHOLEBODY.keypoint_names
    for part in ("shoulder", "hip", "knee", "ankle", "eye", "ear", "wrist"):
        assert kp[names.index(f"left_{part}"), 0] > kp[names.index(f"right_{part}"), 0], part
    face = kp[PARTS["face"]]
    assert face[0, 0] < face[16, 0] and face[36, 0] < face[45, 0] and face[48, 0] < face[54, 0]
    np.testing.assert_allclose(kp[1], face[42:48].mean(0), atol=1e-3)  # left eye = iBUG 42-47
    # Anatomical position: thumbs point away from the body, pinkies towards it.
    lh, rh = kp[PARTS["lefthand"]], kp[PARTS["righthand"]]
    assert lh[4, 0] > lh[20, 0] and rh[4, 0] < rh[20, 0]
    assert p["face_valid"] and (p["visibility"][PARTS["face"]] == 2).mean() > 0.9


def test_back_facing_person_hides_its_face():
    p = _single(math.pi)
    kp, v, names = p["keypoints"], p["visibility"], COCO_WHOLEBODY.keypoint_names
    assert kp[names.index("left_shoulder"), 0] < kp[names.index("right_shoulder"), 0]
    assert not p["face_valid"] and np.all(v[PARTS["face"]] == 0)
    assert np.all(v[0:3] == 1)  # nose and eyes: behind the head
    assert np.all(v[3:5] == 2)  # ears: seen from behind


# ---------------------------------------------------------------------------------------------- videos
def test_video_tracks_are_consistent():
    cfg = make_config("medium", size=(128, 128), people=(2, 3))
    enter_or_leave = 0
    for v in range(4):
        frames = list(render_video(np.random.default_rng([1, v]), cfg, 48))
        seen: dict[int, list[tuple[int, np.ndarray]]] = {}
        for t, scene in enumerate(frames):
            ids = [p["track_id"] for p in scene.people]
            assert len(ids) == len(set(ids)) and all(isinstance(i, int) and 0 <= i < 3 for i in ids)
            for p in scene.people:
                seen.setdefault(p["track_id"], []).append((t, p))
        for track in seen.values():
            for (t0, a), (t1, b) in zip(track[:-1], track[1:]):
                if t1 != t0 + 1:
                    continue
                both = (a["visibility"][:17] > 0) & (b["visibility"][:17] > 0)
                if both.sum() >= 3:  # the same body moves a little from frame to frame
                    step = np.linalg.norm(a["keypoints"][:17][both] - b["keypoints"][:17][both], axis=1)
                    assert np.median(step) < 0.08 * cfg.size[0]
            first, last = track[0][0], track[-1][0]
            enter_or_leave += first > 0 or last < len(frames) - 1
    assert enter_or_leave > 0


# ------------------------------------------------------------------------------------- files and readers
def test_output_format_and_readers_load_it(tmp_path):
    from posedistill.data.readers.coco import read_coco

    ann_path = generate_dataset(tmp_path, 5, size=SMALL, people=(1, 3), difficulty="medium", seed=1, preview=True)
    vid_path = generate_videos(tmp_path, 2, 4, size=SMALL, people=(1, 2), seed=1, preview=True)
    assert ann_path == tmp_path / "annotations.json" and vid_path == tmp_path / "videos.json"
    data = json.loads(ann_path.read_text())
    assert data["info"]["layout"] == "coco_wholebody" and data["info"]["stats"]["images"] == 5
    cat = data["categories"][0]
    assert cat["id"] == 1 and len(cat["keypoints"]) == 17 and [16, 14] in cat["skeleton"]
    assert [im["id"] for im in data["images"]] == [1, 2, 3, 4, 5]
    for ann in data["annotations"]:
        for field, k in (("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21),
                         ("righthand_kpts", 21)):  # fmt: skip
            assert len(ann[field]) == 3 * k
        assert ann["iscrowd"] == 0 and ann["category_id"] == 1 and len(ann["bbox"]) == 4
        assert ann["num_keypoints"] == sum(1 for v in ann["keypoints"][2::3] if v > 0)
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])

    instances = read_coco(ann_path)
    assert len(instances) == len(data["annotations"])
    first = instances[0]
    assert first.layout == "coco_wholebody" and first.keypoints.shape == (133, 2)
    assert Path(first.image_path).exists() and first.image_size == SMALL
    a0 = data["annotations"][0]
    flat = np.array(a0["keypoints"] + a0["foot_kpts"] + a0["face_kpts"] + a0["lefthand_kpts"] + a0["righthand_kpts"])
    np.testing.assert_array_equal(first.visibility, flat[2::3])
    np.testing.assert_allclose(first.keypoints, flat.reshape(-1, 3)[:, :2], atol=1e-4)

    videos = json.loads(vid_path.read_text())
    assert [v["id"] for v in videos["videos"]] == [1, 2]
    assert all({"video_id", "frame_id", "nframes"} <= im.keys() for im in videos["images"])
    assert all("track_id" in a for a in videos["annotations"])
    frames = read_coco(vid_path)
    assert len(frames) == len(videos["annotations"])
    assert {f.video_id for f in frames} <= {1, 2}
    assert all(f.frame_index in range(4) and f.track_id is not None for f in frames)
    assert all(Path(f.image_path).exists() for f in frames)

    for name in ("preview.png", "preview_videos.png"):
        sheet = cv2.imread(str(tmp_path / name))
        assert sheet is not None and sheet.shape[0] >= 256


def test_json_never_half_written(tmp_path, monkeypatch):
    real = gen_mod.render_scene
    calls = {"n": 0}

    def failing(rng, cfg, keep_layers=False):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return real(rng, cfg, keep_layers)

    monkeypatch.setattr(gen_mod, "render_scene", failing)
    with pytest.raises(RuntimeError, match="boom"):
        generate_dataset(tmp_path, 5, size=SMALL)
    assert not (tmp_path / "annotations.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli(tmp_path, capsys):
    from posedistill.cli import main

    assert main(["synth", "--out", str(tmp_path), "--images", "3", "--size", "64", "48", "--difficulty", "easy",
                 "--seed", "2"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "3 images" in out and "visible" in out
    data = json.loads((tmp_path / "annotations.json").read_text())
    assert data["images"][0]["width"] == 64 and data["images"][0]["height"] == 48
    assert len(data["annotations"]) == 3  # easy: one person per image
    assert main(["synth", "--out", str(tmp_path)]) == 2
    assert "nothing to do" in capsys.readouterr().err


def test_config_validation():
    with pytest.raises(ValueError, match="difficulty"):
        make_config("extreme")
    with pytest.raises(ValueError, match="people"):
        make_config("medium", people=(3, 1))
    with pytest.raises(ValueError, match="size"):
        make_config("medium", size=(8, 8))
