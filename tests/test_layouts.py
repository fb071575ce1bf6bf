"""Keypoint layouts beyond COCO / COCO-WholeBody, and the mappings between layouts.

Expected counts and constants are those of MMPose 1.3.2 ``configs/_base_/datasets/*.py`` (and the datasets' own
READMEs for LSP, JHMDB, Penn Action, MediaPipe Pose).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from posedistill.layouts import (
    LAYOUTS,
    MAPPINGS,
    LayoutMapping,
    get_layout,
    get_mapping,
    map_keypoints,
)
from tests.conftest import shared_path

ALL = sorted(LAYOUTS)

# name -> (num_keypoints, num_links); links as in MMPose where it has a config.
COUNTS = {
    "coco": (17, 19),
    "coco_wholebody": (133, 65),
    "halpe": (136, 67),
    "halpe26": (26, 27),
    "crowdpose": (14, 15),
    "aic": (14, 14),
    "ochuman": (17, 19),
    "mhp": (16, 15),
    "exlpose": (14, 13),
    "mpii": (16, 15),
    "lsp": (14, 15),
    "jhmdb": (15, 14),
    "posetrack18": (17, 16),
    "penn_action": (13, 14),
    "mediapipe_pose": (33, 35),
}

# The only joints mapped under a different name: one anatomical point, two names.
RENAMES = {
    ("lsp", "mpii"): {("upper_neck", "neck")},
    ("mpii", "lsp"): {("neck", "upper_neck")},
    ("mediapipe_pose", "coco_wholebody"): {
        ("left_big_toe", "left_foot_index"),
        ("right_big_toe", "right_foot_index"),
    },
}


def _mirror(name: str) -> str:
    return re.sub(r"(?<![a-z])(left|right)(?![a-z])", lambda m: "right" if m[1] == "left" else "left", name)


# ------------------------------------------------------------------------------------------------- layouts


def test_all_layouts_registered():
    assert set(COUNTS) == set(LAYOUTS)


@pytest.mark.parametrize("name", ALL)
def test_layout_is_valid_and_counts(name):
    layout = get_layout(name)
    assert layout.name == name
    replace(layout)  # re-runs the dataclass validation (lengths, flip permutation)
    k, n_links = COUNTS[name]
    assert layout.num_keypoints == k
    assert len(layout.links) == n_links
    assert len(set(layout.keypoint_names)) == k, "keypoint names must be unique"
    assert len(layout.joint_weights) == k and all(w > 0 for w in layout.joint_weights)
    if layout.sigmas is not None:
        assert len(layout.sigmas) == k and all(0 < s < 0.2 for s in layout.sigmas)


@pytest.mark.parametrize("name", ALL)
def test_flip_is_an_involution_that_swaps_sides(name):
    layout = get_layout(name)
    f = layout.flip_indices
    assert all(f[f[i]] == i for i in range(layout.num_keypoints))
    names = layout.keypoint_names
    for i, n in enumerate(names):
        if n.startswith("face-"):
            # iBUG-68 mirror: stays within the face
            assert names[f[i]].startswith("face-")
            continue
        mirrored = _mirror(n)
        if mirrored != n:
            assert names[f[i]] == mirrored, f"{name}: {n} flips to {names[f[i]]}"
        else:
            assert f[i] == i, f"{name}: centre point {n} must flip to itself"


@pytest.mark.parametrize("name", ALL)
def test_links_and_colours(name):
    layout = get_layout(name)
    k = layout.num_keypoints
    for a, b in layout.links:
        assert 0 <= a < k and 0 <= b < k and a != b
    assert len({frozenset(link) for link in layout.links}) == len(layout.links), "duplicate link"
    for c in layout.link_colors + layout.keypoint_colors:
        assert len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
    # the skeleton is mirror-symmetric: flipping both ends of a link gives a link
    f = layout.flip_indices
    undirected = {frozenset(link) for link in layout.links}
    assert {frozenset((f[a], f[b])) for a, b in layout.links} == undirected


@pytest.mark.parametrize("name", ALL)
def test_upper_lower_and_parts(name):
    layout = get_layout(name)
    upper, lower = set(layout.upper_body_ids), set(layout.lower_body_ids)
    assert not upper & lower
    assert all(0 <= i < layout.num_keypoints for i in upper | lower)
    # flipping keeps a joint in its half
    assert {layout.flip_indices[i] for i in upper} == upper
    assert {layout.flip_indices[i] for i in lower} == lower
    for part in layout.parts.values():
        assert 0 <= part.start < part.stop <= layout.num_keypoints


def test_dataset_orders():
    lsp = get_layout("lsp").keypoint_names
    assert lsp[:6] == ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle")
    assert lsp[6:12] == ("right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist")
    assert lsp[12:] == ("neck", "head_top")
    mpii = get_layout("mpii").keypoint_names
    assert mpii[6:10] == ("pelvis", "thorax", "upper_neck", "head_top") and mpii[10] == "right_wrist"
    jhmdb = get_layout("jhmdb").keypoint_names
    assert jhmdb[:3] == ("neck", "belly", "head") and jhmdb[-2:] == ("right_ankle", "left_ankle")
    penn = get_layout("penn_action").keypoint_names
    assert penn[:3] == ("head", "left_shoulder", "right_shoulder") and penn[-1] == "right_ankle"
    mp = get_layout("mediapipe_pose")
    assert mp.keypoint_names[:4] == ("nose", "left_eye_inner", "left_eye", "left_eye_outer")
    assert mp.keypoint_names[-2:] == ("left_foot_index", "right_foot_index")
    assert mp.index("left_shoulder") == 11 and mp.index("left_hip") == 23
    assert mp.flip_indices[9] == 10 and mp.flip_indices[10] == 9  # mouth_left <-> mouth_right
    assert get_layout("crowdpose").keypoint_names[12:] == ("top_head", "neck")
    assert get_layout("aic").keypoint_names[12:] == ("head_top", "neck")
    assert get_layout("posetrack18").keypoint_names[:3] == ("nose", "head_bottom", "head_top")


def test_halpe_structure():
    halpe = get_layout("halpe")
    assert halpe.keypoint_names[17:20] == ("head", "neck", "hip")
    assert halpe.keypoint_names[20:26] == (
        "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_heel", "right_heel",
    )  # fmt: skip
    spans = {k: (s.start, s.stop) for k, s in halpe.parts.items()}
    assert spans == {
        "body": (0, 20),
        "foot": (20, 26),
        "face": (26, 94),
        "lefthand": (94, 115),
        "righthand": (115, 136),
        "wholebody": (0, 136),
    }
    assert halpe.keypoint_names[94] == "left_hand_root" and halpe.keypoint_names[115] == "right_hand_root"
    assert halpe.flip_indices[94] == 115 and halpe.flip_indices[26] == 42  # face-0 <-> face-16
    assert halpe.flip_indices[26 + 30] == 26 + 30  # nose tip is central
    assert get_layout("halpe26").keypoint_names == halpe.keypoint_names[:26]
    # MMPose 1.3.2 hangs the fingers from the body wrists
    assert (9, 95) in halpe.links and (10, 116) in halpe.links


def test_sigmas_and_weights_match_mmpose():
    g = get_layout
    assert g("aic").sigmas[0] == 0.01388152 and g("aic").sigmas[13] == 0.01236173
    assert g("crowdpose").sigmas[12] == 0.079 and g("crowdpose").joint_weights[4] == 1.5
    assert g("exlpose").sigmas == g("crowdpose").sigmas
    assert g("mpii").sigmas[12] == 0.179 and g("mpii").joint_weights[0] == 1.5
    assert g("mhp").sigmas == g("mpii").sigmas
    assert g("jhmdb").sigmas[1] == 0.107 and g("jhmdb").joint_weights[11] == 1.5
    assert g("ochuman").sigmas == g("coco").sigmas == g("posetrack18").sigmas
    assert g("halpe").sigmas[17] == 0.08 and g("halpe").sigmas[20] == 0.089 and g("halpe").sigmas[135] == 0.015
    assert g("halpe26").sigmas[19] == 0.066 and g("halpe26").joint_weights[25] == 1.5
    for name in ("lsp", "penn_action", "mediapipe_pose"):
        assert g(name).sigmas is None
        with pytest.raises(ValueError, match="PCK"):
            g(name).sigmas_array()


def test_mmpose_colours():
    g = get_layout
    assert g("halpe").link_colors[27] == (255, 128, 0)  # thumb
    assert g("halpe").keypoint_colors[94] == (255, 255, 255)  # hand root
    assert g("aic").keypoint_colors[0] == (255, 128, 0) and g("aic").keypoint_colors[3] == (0, 255, 0)
    assert g("mpii").link_colors[6] == (51, 153, 255)  # pelvis-thorax
    assert g("ochuman").keypoint_colors[1] == (51, 153, 255)  # eyes are head points: blue


# COCO-style fixture files whose keypoint names are MMPose's
FIXTURES = {
    "aic": "aic/test_aic.json",
    "crowdpose": "crowdpose/test_crowdpose.json",
    "exlpose": "exlpose/test_exlpose.json",
    "halpe": "halpe/test_halpe.json",
    "jhmdb": "jhmdb/test_jhmdb_sub1.json",
    "mhp": "mhp/test_mhp.json",
    "ochuman": "ochuman/test_ochuman.json",
    "posetrack18": "posetrack18/annotations/test_posetrack18_val.json",
}
SAME_NAMES_IN_FILE = {"exlpose", "jhmdb", "ochuman", "posetrack18"}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_layouts_fit_real_annotation_files(name):
    data = json.loads(shared_path("data", "fixtures", *FIXTURES[name].split("/")).read_text())
    layout = get_layout(name)
    for ann in data["annotations"]:
        assert len(ann["keypoints"]) == 3 * layout.num_keypoints
    if name in SAME_NAMES_IN_FILE:
        assert list(layout.keypoint_names) == data["categories"][0]["keypoints"]


def test_mpii_fixture_has_16_joints():
    records = json.loads(shared_path("data", "fixtures", "mpii", "test_mpii.json").read_text())
    assert all(len(r["joints"]) == get_layout("mpii").num_keypoints for r in records)


# ------------------------------------------------------------------------------------------------ mappings


@pytest.mark.parametrize("pair", sorted(MAPPINGS), ids=lambda p: f"{p[0]}->{p[1]}")
def test_mapping_maps_only_true_correspondences(pair):
    m = get_mapping(*pair)
    src, dst = get_layout(m.src), get_layout(m.dst)
    assert len(m.src_index) == dst.num_keypoints
    mask = m.defined_mask
    assert mask.dtype == bool and mask.shape == (dst.num_keypoints,)
    assert mask.any()
    used = [i for i in m.src_index if i >= 0]
    assert len(used) == len(set(used)), "a source joint feeds two destination joints"
    for j, i in enumerate(m.src_index):
        if i < 0:
            continue
        d, s = dst.keypoint_names[j], src.keypoint_names[i]
        assert d == s or (d, s) in RENAMES.get(pair, set()), f"{pair}: {s} -> {d}"
    # a mapping commutes with horizontal flipping: defined joints map flip pairs to flip pairs
    for j, i in enumerate(m.src_index):
        if i >= 0:
            assert m.src_index[dst.flip_indices[j]] == src.flip_indices[i]


def test_lsp_mpii_round_trip():
    rng = np.random.default_rng(0)
    kpts = rng.uniform(0, 100, (5, 14, 2)).astype(np.float32)
    vis = rng.integers(0, 3, (5, 14)).astype(np.int64)
    mk, mv, mask = map_keypoints(kpts, vis, "lsp", "mpii")
    assert mk.shape == (5, 16, 2) and mv.shape == (5, 16) and mask.shape == (16,)
    mpii = get_layout("mpii")
    undefined = [mpii.keypoint_names[j] for j in np.flatnonzero(~mask)]
    assert undefined == ["pelvis", "thorax"]
    assert np.all(mk[:, ~mask] == 0) and np.all(mv[:, ~mask] == 0)
    np.testing.assert_array_equal(mk[:, mpii.index("upper_neck")], kpts[:, 12])  # LSP neck
    back_k, back_v, back_mask = map_keypoints(mk, mv, "mpii", "lsp")
    assert back_mask.all()
    np.testing.assert_array_equal(back_k, kpts)
    np.testing.assert_array_equal(back_v, vis)
    assert get_mapping("mpii", "lsp").src_index == (0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9)


def test_mediapipe_to_wholebody():
    m = get_mapping("mediapipe_pose", "coco_wholebody")
    wb = get_layout("coco_wholebody")
    mp = get_layout("mediapipe_pose")
    assert m.src_index[5] == mp.index("left_shoulder")
    assert m.src_index[:17] == tuple(mp.index(n) for n in wb.keypoint_names[:17])
    # feet: big toe <- foot_index, heel <- heel, small toe undefined
    assert m.src_index[17:23] == (31, -1, 29, 32, -1, 30)
    assert int(m.defined_mask.sum()) == 21 and not m.defined_mask[23:].any()
    kpts = np.arange(33 * 2, dtype=np.float64).reshape(33, 2)
    vis = np.full(33, 2)
    out_k, out_v, mask = map_keypoints(kpts, vis, "mediapipe_pose", "coco_wholebody")
    assert out_k.shape == (133, 2) and out_k.dtype == np.float64
    np.testing.assert_array_equal(out_k[5], kpts[11])
    np.testing.assert_array_equal(out_v, np.where(mask, 2, 0))
    np.testing.assert_array_equal(out_k[~mask], 0)


def test_to_coco_mappings():
    assert get_mapping("coco_wholebody", "coco").src_index == tuple(range(17))
    assert get_mapping("halpe", "coco").src_index == tuple(range(17))
    for src in ("lsp", "mpii", "jhmdb"):
        m = get_mapping(src, "coco")
        assert int(m.defined_mask.sum()) == 12
        assert not m.defined_mask[:5].any(), f"{src}: no COCO face point may be mapped"
    lsp = get_layout("lsp")
    assert get_mapping("lsp", "coco").src_index[5] == lsp.index("left_shoulder")
    jhmdb = get_layout("jhmdb")
    assert get_mapping("jhmdb", "coco").src_index[16] == jhmdb.index("right_ankle")


def test_halpe_to_wholebody():
    m = get_mapping("halpe", "coco_wholebody")
    assert m.defined_mask.all()
    assert m.src_index[17:23] == (20, 22, 24, 21, 23, 25)  # feet reordered
    assert m.src_index[23:91] == tuple(range(26, 94))  # face
    assert m.src_index[91:] == tuple(range(94, 136))  # hands


def test_batch_shapes_and_no_aliasing():
    rng = np.random.default_rng(1)
    kpts = rng.normal(size=(2, 3, 17, 2)).astype(np.float32)
    vis = rng.integers(0, 3, (2, 3, 17)).astype(np.uint8)
    out_k, out_v, mask = map_keypoints(kpts, vis, "coco", "coco")
    assert mask.all() and out_k.dtype == np.float32 and out_v.dtype == np.uint8
    np.testing.assert_array_equal(out_k, kpts)
    out_k[...] = 7
    assert not np.any(kpts == 7)
    k2, v2, _ = map_keypoints(rng.normal(size=(4, 1, 14, 2)), np.ones((4, 1, 14)), "lsp", "mpii")
    assert k2.shape == (4, 1, 16, 2) and v2.shape == (4, 1, 16)


@pytest.mark.parametrize("name", ALL)
def test_identity_mapping(name):
    m = get_mapping(name, name)
    assert m.src_index == tuple(range(get_layout(name).num_keypoints)) and m.defined_mask.all()


def test_mapping_errors():
    with pytest.raises(KeyError, match=r"no keypoint mapping from 'coco' to 'lsp'.*lsp->mpii"):
        get_mapping("coco", "lsp")
    with pytest.raises(KeyError, match="unknown keypoint layout"):
        get_mapping("nope", "nope")
    with pytest.raises(ValueError, match=r"\(\.\.\., 14, 2\)"):
        map_keypoints(np.zeros((16, 2)), np.zeros(16), "lsp", "mpii")
    with pytest.raises(ValueError, match="visibility"):
        map_keypoints(np.zeros((14, 2)), np.zeros(13), "lsp", "mpii")
    with pytest.raises(ValueError, match="entries"):
        LayoutMapping("lsp", "mpii", (0,) * 14)
    with pytest.raises(ValueError, match="outside"):
        LayoutMapping("lsp", "coco", (14,) + (-1,) * 16)
