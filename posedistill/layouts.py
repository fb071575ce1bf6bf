"""Keypoint layouts as data: names, flip pairs, skeleton links with colours, OKS sigmas, joint weights, parts.

Every piece of code that depends on the keypoint set reads it from a :class:`Layout`; nothing else hard-codes
keypoint indices. Values follow MMPose's ``configs/_base_/datasets/*.py`` (coco and coco_wholebody are checked
against ``shared/reference/dataset_meta.json`` in the tests). Colours are RGB triplets, as MMPose draws them.

Layouts: coco, coco_wholebody, halpe, halpe26, crowdpose, aic, ochuman, mhp, exlpose, mpii, lsp, jhmdb,
posetrack18, penn_action, mediapipe_pose (``get_layout(name)``). :class:`LayoutMapping` / ``get_mapping(src, dst)``
/ ``map_keypoints(...)`` re-express keypoints of one layout in another where joints truly correspond.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

RGB = tuple[int, int, int]

# MMPose palette (RGB)
BLUE: RGB = (51, 153, 255)  # head points, torso and head links
GREEN: RGB = (0, 255, 0)  # left limbs
ORANGE: RGB = (255, 128, 0)  # right limbs, feet, thumbs
WHITE: RGB = (255, 255, 255)  # face points, hand roots
PINK: RGB = (255, 153, 255)  # forefinger
LIGHT_BLUE: RGB = (102, 178, 255)  # middle finger
RED: RGB = (255, 51, 51)  # ring finger


@dataclass(frozen=True)
class Layout:
    """One keypoint set.

    ``links`` are (i, j) index pairs with ``link_colors`` alongside; ``parts`` maps a part name to the slice of
    keypoints it covers (``body`` for single-part layouts); ``sigmas`` are the OKS per-keypoint constants
    (``None`` where the dataset defines none: such layouts are evaluated with PCK, not OKS).
    """

    name: str
    keypoint_names: tuple[str, ...]
    flip_indices: tuple[int, ...]
    links: tuple[tuple[int, int], ...]
    link_colors: tuple[RGB, ...]
    keypoint_colors: tuple[RGB, ...]
    sigmas: tuple[float, ...] | None
    joint_weights: tuple[float, ...]
    upper_body_ids: tuple[int, ...]
    lower_body_ids: tuple[int, ...]
    parts: dict[str, slice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.keypoint_names)
        checks = {
            "flip_indices": len(self.flip_indices),
            "keypoint_colors": len(self.keypoint_colors),
            "joint_weights": len(self.joint_weights),
        }
        if self.sigmas is not None:
            checks["sigmas"] = len(self.sigmas)
        for what, n in checks.items():
            if n != k:
                raise ValueError(f"layout {self.name!r}: {what} has {n} entries, expected {k}")
        if len(self.links) != len(self.link_colors):
            raise ValueError(f"layout {self.name!r}: {len(self.links)} links but {len(self.link_colors)} colours")
        if sorted(self.flip_indices) != list(range(k)):
            raise ValueError(f"layout {self.name!r}: flip_indices is not a permutation of 0..{k - 1}")
        if not self.parts:
            object.__setattr__(self, "parts", {"body": slice(0, k)})

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        """Unordered swap pairs (i < j), e.g. [(1, 2), (3, 4), ...] for COCO."""
        return [(i, j) for i, j in enumerate(self.flip_indices) if i < j]

    def index(self, name: str) -> int:
        try:
            return self.keypoint_names.index(name)
        except ValueError:
            raise KeyError(f"layout {self.name!r} has no keypoint named {name!r}") from None

    def sigmas_array(self) -> np.ndarray:
        if self.sigmas is None:
            raise ValueError(f"layout {self.name!r} defines no OKS sigmas; evaluate it with PCK")
        return np.asarray(self.sigmas, dtype=np.float64)

    def metainfo(self) -> dict:
        """MMPose-style metainfo (``keypoint_info`` / ``skeleton_info``), e.g. for JSON outputs."""
        names = self.keypoint_names
        kinfo = {}
        for i, n in enumerate(names):
            swap = names[self.flip_indices[i]] if self.flip_indices[i] != i else ""
            kind = "upper" if i in self.upper_body_ids else "lower" if i in self.lower_body_ids else ""
            kinfo[i] = {"name": n, "id": i, "color": list(self.keypoint_colors[i]), "type": kind, "swap": swap}
        sinfo = {
            i: {"link": (names[a], names[b]), "id": i, "color": list(c)}
            for i, ((a, b), c) in enumerate(zip(self.links, self.link_colors))
        }
        return {
            "dataset_name": self.name,
            "num_keypoints": self.num_keypoints,
            "keypoint_info": kinfo,
            "skeleton_info": sinfo,
            "sigmas": list(self.sigmas) if self.sigmas is not None else None,
            "flip_indices": list(self.flip_indices),
            "flip_pairs": [list(p) for p in self.flip_pairs],
        }


def _flip_from_names(names: tuple[str, ...]) -> tuple[int, ...]:
    """Flip permutation from left/right name prefixes: 'left_x' <-> 'right_x', 'l_x' <-> 'r_x'."""
    index = {n: i for i, n in enumerate(names)}
    swaps = (("left_", "right_"), ("right_", "left_"), ("l_", "r_"), ("r_", "l_"))
    out = []
    for n in names:
        j = index[n]
        for a, b in swaps:
            if n.startswith(a) and b + n[len(a) :] in index:
                j = index[b + n[len(a) :]]
                break
        out.append(j)
    return tuple(out)


def _side_colors(names: tuple[str, ...], center: RGB = BLUE) -> tuple[RGB, ...]:
    """MMPose convention: left -> green, right -> orange, everything else -> blue."""
    out = []
    for n in names:
        if n.startswith(("left_", "l_")):
            out.append(GREEN)
        elif n.startswith(("right_", "r_")):
            out.append(ORANGE)
        else:
            out.append(center)
    return tuple(out)


# ---------------------------------------------------------------------------------------------- COCO-17
COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
# MMPose coco.py skeleton_info order, with its colours.
COCO_LINKS = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
COCO_LINK_COLORS = (
    GREEN, GREEN, ORANGE, ORANGE, BLUE, BLUE, BLUE, BLUE, GREEN,
    ORANGE, GREEN, ORANGE, BLUE, BLUE, BLUE, BLUE, BLUE, BLUE, BLUE,
)  # fmt: skip
COCO_WEIGHTS = (1.0,) * 7 + (1.2, 1.2, 1.5, 1.5) + (1.0, 1.0) + (1.2, 1.2, 1.5, 1.5)

COCO = Layout(
    name="coco",
    keypoint_names=COCO_NAMES,
    flip_indices=_flip_from_names(COCO_NAMES),
    links=COCO_LINKS,
    link_colors=COCO_LINK_COLORS,
    keypoint_colors=(BLUE,) * 5 + (GREEN, ORANGE) * 6,  # MMPose: all head points blue
    sigmas=COCO_SIGMAS,
    joint_weights=COCO_WEIGHTS,
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 17)),
)

# ------------------------------------------------------------------------------------ COCO-WholeBody-133
_FOOT_NAMES = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _hand_names(side: str) -> tuple[str, ...]:
    return (f"{side}_hand_root",) + tuple(f"{side}_{f}{i}" for f in _FINGERS for i in range(1, 5))


_WB_NAMES = (
    COCO_NAMES + _FOOT_NAMES + tuple(f"face-{i}" for i in range(68)) + _hand_names("left") + _hand_names("right")
)

# iBUG-68 mirror: jaw 0..16 reversed, brows 17..21 <-> 26..22, nose bridge 27..30 self, nostrils 31..35
# reversed, eyes (36..41 <-> 45..42 with the iBUG winding), outer lip 48..54 reversed + 55..59 reversed,
# inner lip 60..64 reversed + 65..67 reversed. Indices below are within the 68 face points.
_FACE_FLIP = (
    tuple(range(16, -1, -1))
    + tuple(range(26, 16, -1))
    + (27, 28, 29, 30)
    + (35, 34, 33, 32, 31)
    + (45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40)
    + (54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55)
    + (64, 63, 62, 61, 60, 67, 66, 65)
)
_WB_FLIP = (
    COCO.flip_indices
    + (20, 21, 22, 17, 18, 19)
    + tuple(23 + i for i in _FACE_FLIP)
    + tuple(range(112, 133))
    + tuple(range(91, 112))
)

_FOOT_SIGMAS = (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)
_FACE_SIGMAS = (
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032, 0.037, 0.038, 0.043,
    0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009, 0.007, 0.007,
    0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009, 0.011, 0.009, 0.007, 0.013, 0.008, 0.011,
    0.012, 0.010, 0.034, 0.008, 0.008, 0.009, 0.008, 0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007,
    0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.010, 0.008,
)  # fmt: skip
_HAND_SIGMAS = (
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024,
    0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.020, 0.019, 0.022, 0.031,
)  # fmt: skip
_FINGER_COLORS = (ORANGE, PINK, LIGHT_BLUE, RED, GREEN)


def _hand_links(root: int) -> tuple[tuple[tuple[int, int], ...], tuple[RGB, ...]]:
    links, colors = [], []
    for f, color in enumerate(_FINGER_COLORS):
        chain = [root] + [root + 1 + 4 * f + i for i in range(4)]
        for a, b in zip(chain[:-1], chain[1:]):
            links.append((a, b))
            colors.append(color)
    return tuple(links), tuple(colors)


_LH_LINKS, _LH_COLORS = _hand_links(91)
_RH_LINKS, _RH_COLORS = _hand_links(112)
_WB_FOOT_LINKS = ((15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22))
_WB_FOOT_LINK_COLORS = (GREEN, GREEN, GREEN, ORANGE, ORANGE, ORANGE)


def _hand_point_colors() -> tuple[RGB, ...]:
    return (WHITE,) + tuple(c for c in _FINGER_COLORS for _ in range(4))


COCO_WHOLEBODY = Layout(
    name="coco_wholebody",
    keypoint_names=_WB_NAMES,
    flip_indices=_WB_FLIP,
    links=COCO_LINKS + _WB_FOOT_LINKS + _LH_LINKS + _RH_LINKS,
    link_colors=COCO_LINK_COLORS + _WB_FOOT_LINK_COLORS + _LH_COLORS + _RH_COLORS,
    # MMPose paints all six foot points orange (right-limb colour), not green/orange by side.
    keypoint_colors=COCO.keypoint_colors + (ORANGE,) * 6 + (WHITE,) * 68 + _hand_point_colors() * 2,
    sigmas=COCO_SIGMAS + _FOOT_SIGMAS + _FACE_SIGMAS + _HAND_SIGMAS + _HAND_SIGMAS,
    joint_weights=(1.0,) * 133,
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 23)),
    parts={
        "body": slice(0, 17),
        "foot": slice(17, 23),
        "face": slice(23, 91),
        "lefthand": slice(91, 112),
        "righthand": slice(112, 133),
        "wholebody": slice(0, 133),
    },
)

# ================================================================================================================
# The other layouts. Unless a comment says otherwise, names, swaps, links, colours, joint weights and sigmas are
# those of MMPose 1.3.2 ``configs/_base_/datasets/<name>.py``, including its oddities (noted where they occur):
# readers, writers and drawings stay interchangeable with MMPose's. Links are written by keypoint name, with the
# link colour alongside.

_G, _O, _B = GREEN, ORANGE, BLUE
# COCO-17 point colours as MMPose paints them: the five head points blue, then left green / right orange.
_COCO17_POINT_COLORS: tuple[RGB, ...] = (BLUE,) * 5 + (GREEN, ORANGE) * 6

# The twelve limb joints shared, with these names and meanings, by most body layouts.
_LIMB_JOINTS = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# Legs, hips, torso sides, shoulders and arms: the first twelve links of MMPose's COCO skeleton.
_LIMB_LINKS = (
    ("left_ankle", "left_knee", _G), ("left_knee", "left_hip", _G),
    ("right_ankle", "right_knee", _O), ("right_knee", "right_hip", _O),
    ("left_hip", "right_hip", _B), ("left_shoulder", "left_hip", _B), ("right_shoulder", "right_hip", _B),
    ("left_shoulder", "right_shoulder", _B),
    ("left_shoulder", "left_elbow", _G), ("right_shoulder", "right_elbow", _O),
    ("left_elbow", "left_wrist", _G), ("right_elbow", "right_wrist", _O),
)  # fmt: skip
# COCO's face links (eyes, nose, ears to shoulders), the last seven of its skeleton.
_COCO_FACE_LINKS = (
    ("left_eye", "right_eye", _B), ("nose", "left_eye", _B), ("nose", "right_eye", _B),
    ("left_eye", "left_ear", _B), ("right_eye", "right_ear", _B),
    ("left_ear", "left_shoulder", _B), ("right_ear", "right_shoulder", _B),
)  # fmt: skip


def _skeleton(
    names: tuple[str, ...], links: tuple[tuple[str, str, RGB], ...]
) -> tuple[tuple[tuple[int, int], ...], tuple[RGB, ...]]:
    """(name_a, name_b, colour) triplets -> (index pairs, colours)."""
    index = {n: i for i, n in enumerate(names)}
    return tuple((index[a], index[b]) for a, b, _ in links), tuple(c for _, _, c in links)


def _ids(names: tuple[str, ...], wanted: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(names.index(n) for n in wanted)


# ------------------------------------------------------------------------------- OCHuman-17 (mmpose ochuman.py)
# Same keypoint set, skeleton, weights and sigmas as COCO-17.
OCHUMAN = Layout(
    name="ochuman",
    keypoint_names=COCO_NAMES,
    flip_indices=COCO.flip_indices,
    links=COCO_LINKS,
    link_colors=COCO_LINK_COLORS,
    keypoint_colors=_COCO17_POINT_COLORS,
    sigmas=COCO_SIGMAS,
    joint_weights=COCO_WEIGHTS,
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 17)),
)

# ------------------------------------------------------------------------ PoseTrack18-17 (mmpose posetrack18.py)
# COCO-17 with the eyes replaced by head_bottom / head_top; MMPose reuses COCO's weights and sigmas.
_PT18_NAMES = ("nose", "head_bottom", "head_top") + COCO_NAMES[3:]
_PT18_LINKS, _PT18_LINK_COLORS = _skeleton(
    _PT18_NAMES,
    _LIMB_LINKS
    + (
        ("nose", "head_bottom", _B), ("nose", "head_top", _B),
        ("head_bottom", "left_shoulder", _B), ("head_bottom", "right_shoulder", _B),
    ),
)  # fmt: skip
POSETRACK18 = Layout(
    name="posetrack18",
    keypoint_names=_PT18_NAMES,
    flip_indices=_flip_from_names(_PT18_NAMES),
    links=_PT18_LINKS,
    link_colors=_PT18_LINK_COLORS,
    keypoint_colors=_COCO17_POINT_COLORS,
    sigmas=COCO_SIGMAS,
    joint_weights=COCO_WEIGHTS,
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 17)),
)

# ----------------------------------------------------------------------------- CrowdPose-14 (mmpose crowdpose.py)
_CROWDPOSE_NAMES = _LIMB_JOINTS + ("top_head", "neck")
_CROWDPOSE_LINKS, _CROWDPOSE_LINK_COLORS = _skeleton(
    _CROWDPOSE_NAMES,
    _LIMB_LINKS + (("top_head", "neck", _B), ("right_shoulder", "neck", _B), ("left_shoulder", "neck", _B)),
)
# MMPose's crowdpose.py point colours and joint weights do not follow the joints' sides (they look shifted by
# one); they are kept as published so that drawings and losses match MMPose.
_CROWDPOSE_WEIGHTS = (0.2, 0.2, 0.2, 1.3, 1.5, 0.2, 1.3, 1.5, 0.2, 0.2, 0.5, 0.2, 0.2, 0.5)
_CROWDPOSE_SIGMAS = (0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079)
CROWDPOSE = Layout(
    name="crowdpose",
    keypoint_names=_CROWDPOSE_NAMES,
    flip_indices=_flip_from_names(_CROWDPOSE_NAMES),
    links=_CROWDPOSE_LINKS,
    link_colors=_CROWDPOSE_LINK_COLORS,
    keypoint_colors=(BLUE,) * 5 + (GREEN, ORANGE) * 4 + (GREEN,),
    sigmas=_CROWDPOSE_SIGMAS,
    joint_weights=_CROWDPOSE_WEIGHTS,
    upper_body_ids=(0, 1, 2, 3, 4, 5, 12, 13),
    lower_body_ids=(6, 7, 8, 9, 10, 11),
)

# --------------------------------------------------------------------------------- ExLPose-14 (mmpose exlpose.py)
# CrowdPose's joints with "head" for "top_head"; MMPose reuses CrowdPose's joint weights and sigmas.
_EXLPOSE_NAMES = _LIMB_JOINTS + ("head", "neck")
_EXLPOSE_LINKS, _EXLPOSE_LINK_COLORS = _skeleton(
    _EXLPOSE_NAMES,
    (
        ("head", "neck", _B), ("neck", "left_shoulder", _B), ("neck", "right_shoulder", _B),
        ("left_shoulder", "left_elbow", _G), ("left_elbow", "left_wrist", _G),
        ("right_shoulder", "right_elbow", _O), ("right_elbow", "right_wrist", _O),
        ("neck", "right_hip", _B), ("neck", "left_hip", _B),
        ("right_hip", "right_knee", _O), ("right_knee", "right_ankle", _O),
        ("left_hip", "left_knee", _G), ("left_knee", "left_ankle", _G),
    ),
)  # fmt: skip
EXLPOSE = Layout(
    name="exlpose",
    keypoint_names=_EXLPOSE_NAMES,
    flip_indices=_flip_from_names(_EXLPOSE_NAMES),
    links=_EXLPOSE_LINKS,
    link_colors=_EXLPOSE_LINK_COLORS,
    keypoint_colors=_side_colors(_EXLPOSE_NAMES),
    sigmas=_CROWDPOSE_SIGMAS,
    joint_weights=_CROWDPOSE_WEIGHTS,
    upper_body_ids=(0, 1, 2, 3, 4, 5, 12, 13),
    lower_body_ids=(6, 7, 8, 9, 10, 11),
)

# ----------------------------------------------------------------------------- AI Challenger-14 (mmpose aic.py)
_AIC_NAMES = (
    "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "head_top", "neck",
)  # fmt: skip
_AIC_LINKS, _AIC_LINK_COLORS = _skeleton(
    _AIC_NAMES,
    (
        ("right_wrist", "right_elbow", _O), ("right_elbow", "right_shoulder", _O),
        ("right_shoulder", "neck", _B), ("neck", "left_shoulder", _B),
        ("left_shoulder", "left_elbow", _G), ("left_elbow", "left_wrist", _G),
        ("right_ankle", "right_knee", _O), ("right_knee", "right_hip", _O), ("right_hip", "left_hip", _B),
        ("left_hip", "left_knee", _G), ("left_knee", "left_ankle", _G), ("head_top", "neck", _B),
        ("right_shoulder", "right_hip", _B), ("left_shoulder", "left_hip", _B),
    ),
)  # fmt: skip
# AIC's own evaluation constants (keypoint_eval.py, delta = 2 * sigma), as MMPose states them.
_AIC_SIGMAS = (
    0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642,
    0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173,
)  # fmt: skip
AIC = Layout(
    name="aic",
    keypoint_names=_AIC_NAMES,
    flip_indices=_flip_from_names(_AIC_NAMES),
    links=_AIC_LINKS,
    link_colors=_AIC_LINK_COLORS,
    keypoint_colors=_side_colors(_AIC_NAMES),
    sigmas=_AIC_SIGMAS,
    joint_weights=(1.0, 1.2, 1.5) * 4 + (1.0, 1.0),
    upper_body_ids=(0, 1, 2, 3, 4, 5, 12, 13),
    lower_body_ids=(6, 7, 8, 9, 10, 11),
)

# ------------------------------------------------------------------------- MPII-16 and MHP-16 (mmpose mpii.py, mhp.py)
# Joint order of the MPII annotations: 0 r_ankle, 1 r_knee, 2 r_hip, 3 l_hip, 4 l_knee, 5 l_ankle, 6 pelvis,
# 7 thorax, 8 upper_neck, 9 head_top, 10 r_wrist, 11 r_elbow, 12 r_shoulder, 13 l_shoulder, 14 l_elbow, 15 l_wrist.
# MPII is scored with PCKh; the sigmas are MMPose's (it uses them for OKS-based NMS), not the dataset's.
MPII_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
    "left_wrist",
)  # fmt: skip
_MPII_LINKS, _MPII_LINK_COLORS = _skeleton(
    MPII_NAMES,
    (
        ("right_ankle", "right_knee", _O), ("right_knee", "right_hip", _O), ("right_hip", "pelvis", _O),
        ("pelvis", "left_hip", _G), ("left_hip", "left_knee", _G), ("left_knee", "left_ankle", _G),
        ("pelvis", "thorax", _B), ("thorax", "upper_neck", _B), ("upper_neck", "head_top", _B),
        ("upper_neck", "right_shoulder", _O), ("right_shoulder", "right_elbow", _O),
        ("right_elbow", "right_wrist", _O),
        ("upper_neck", "left_shoulder", _G), ("left_shoulder", "left_elbow", _G), ("left_elbow", "left_wrist", _G),
    ),
)  # fmt: skip
_MPII_SIGMAS = (
    0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072, 0.062,
)  # fmt: skip
MPII = Layout(
    name="mpii",
    keypoint_names=MPII_NAMES,
    flip_indices=_flip_from_names(MPII_NAMES),
    links=_MPII_LINKS,
    link_colors=_MPII_LINK_COLORS,
    keypoint_colors=_side_colors(MPII_NAMES),
    sigmas=_MPII_SIGMAS,
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5),
    upper_body_ids=tuple(range(7, 16)),
    lower_body_ids=tuple(range(7)),
)
# Multi-Human Parsing uses MPII's 16 joints; MMPose's mhp.py is identical to mpii.py but for the name.
MHP = replace(MPII, name="mhp")

# ------------------------------------------------------------------------------------ LSP-14 (no MMPose config)
# Leeds Sports Pose (and LSPet) joint order from the dataset's README. Names follow MPII's for the same joints;
# LSP's "neck" is the point MPII calls upper_neck (MPII's LSP-style joints are ids 0-5, 8-15, see the mappings).
# Skeleton and colours follow MMPose's conventions; joint weights are MPII's for the same joints. LSP is scored
# with PCK, so no OKS sigmas.
LSP_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top",
)  # fmt: skip
_LSP_LINKS, _LSP_LINK_COLORS = _skeleton(
    LSP_NAMES, _LIMB_LINKS + (("head_top", "neck", _B), ("neck", "left_shoulder", _B), ("neck", "right_shoulder", _B))
)
LSP = Layout(
    name="lsp",
    keypoint_names=LSP_NAMES,
    flip_indices=_flip_from_names(LSP_NAMES),
    links=_LSP_LINKS,
    link_colors=_LSP_LINK_COLORS,
    keypoint_colors=_side_colors(LSP_NAMES),
    sigmas=None,
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0),
    upper_body_ids=tuple(range(6, 14)),
    lower_body_ids=tuple(range(6)),
)

# ------------------------------------------------------------------------------------ JHMDB-15 (mmpose jhmdb.py)
# Order of JHMDB's joint_positions.mat (pos_img is 2 x 15 x T).
JHMDB_NAMES = (
    "neck", "belly", "head", "right_shoulder", "left_shoulder", "right_hip", "left_hip", "right_elbow",
    "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist", "right_ankle", "left_ankle",
)  # fmt: skip
_JHMDB_LINKS, _JHMDB_LINK_COLORS = _skeleton(
    JHMDB_NAMES,
    (
        ("right_ankle", "right_knee", _O), ("right_knee", "right_hip", _O), ("right_hip", "belly", _O),
        ("belly", "left_hip", _G), ("left_hip", "left_knee", _G), ("left_knee", "left_ankle", _G),
        ("belly", "neck", _B), ("neck", "head", _B),
        ("neck", "right_shoulder", _O), ("right_shoulder", "right_elbow", _O), ("right_elbow", "right_wrist", _O),
        ("neck", "left_shoulder", _G), ("left_shoulder", "left_elbow", _G), ("left_elbow", "left_wrist", _G),
    ),
)  # fmt: skip
JHMDB = Layout(
    name="jhmdb",
    keypoint_names=JHMDB_NAMES,
    flip_indices=_flip_from_names(JHMDB_NAMES),
    links=_JHMDB_LINKS,
    link_colors=_JHMDB_LINK_COLORS,
    # MMPose's jhmdb.py point colours are MPII's sequence, so they do not follow JHMDB's sides; kept as published.
    keypoint_colors=(ORANGE,) * 3 + (GREEN,) * 3 + (BLUE,) * 4 + (ORANGE,) * 3 + (GREEN,) * 2,
    sigmas=(0.025, 0.107, 0.025, 0.079, 0.079, 0.107, 0.107, 0.072, 0.072, 0.087, 0.087, 0.062, 0.062, 0.089, 0.089),
    joint_weights=(1.0,) * 7 + (1.2,) * 4 + (1.5,) * 4,
    upper_body_ids=(0, 1, 2, 3, 4, 7, 8, 11, 12),
    lower_body_ids=(5, 6, 9, 10, 13, 14),
)

# ------------------------------------------------------------------------ Penn Action-13 (no MMPose config)
# Joint order of the Penn Action README (1-based there): 1 head, 2 left_shoulder, 3 right_shoulder, 4 left_elbow,
# 5 right_elbow, 6 left_wrist, 7 right_wrist, 8 left_hip, 9 right_hip, 10 left_knee, 11 right_knee,
# 12 left_ankle, 13 right_ankle. Skeleton, colours and COCO-style weights are our choice; scored with PCK.
PENN_ACTION_NAMES = ("head",) + COCO_NAMES[5:]
_PENN_LINKS, _PENN_LINK_COLORS = _skeleton(
    PENN_ACTION_NAMES, _LIMB_LINKS + (("head", "left_shoulder", _B), ("head", "right_shoulder", _B))
)
PENN_ACTION = Layout(
    name="penn_action",
    keypoint_names=PENN_ACTION_NAMES,
    flip_indices=_flip_from_names(PENN_ACTION_NAMES),
    links=_PENN_LINKS,
    link_colors=_PENN_LINK_COLORS,
    keypoint_colors=_side_colors(PENN_ACTION_NAMES),
    sigmas=None,
    joint_weights=(1.0,) + COCO_WEIGHTS[5:],
    upper_body_ids=tuple(range(7)),
    lower_body_ids=tuple(range(7, 13)),
)

# ------------------------------------------------------------------ MediaPipe Pose-33 (no MMPose config)
# BlazePose / MediaPipe Pose landmark order and names, and MediaPipe's POSE_CONNECTIONS (35 links). Left and right
# are the person's own sides, as in COCO. Hand landmarks (pinky, index, thumb) are knuckle approximations and
# foot_index is the tip of the foot. Colours: face blue, left green, right orange, centre links blue. No OKS
# sigmas: MediaPipe defines none, and its landmarks are not annotated like any OKS dataset's.
MEDIAPIPE_POSE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
_MP_LINKS = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),  # face
    (11, 12), (11, 23), (12, 24), (23, 24),  # torso
    (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),  # left arm and hand
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),  # right arm and hand
    (23, 25), (25, 27), (27, 29), (29, 31), (27, 31),  # left leg and foot
    (24, 26), (26, 28), (28, 30), (30, 32), (28, 32),  # right leg and foot
)  # fmt: skip
_MP_LINK_COLORS = (BLUE,) * 13 + (GREEN,) * 6 + (ORANGE,) * 6 + (GREEN,) * 5 + (ORANGE,) * 5
# mouth_left / mouth_right carry the side as a suffix, which _flip_from_names does not read.
_MP_FLIP = tuple(10 if i == 9 else 9 if i == 10 else j for i, j in enumerate(_flip_from_names(MEDIAPIPE_POSE_NAMES)))
MEDIAPIPE_POSE = Layout(
    name="mediapipe_pose",
    keypoint_names=MEDIAPIPE_POSE_NAMES,
    flip_indices=_MP_FLIP,
    links=_MP_LINKS,
    link_colors=_MP_LINK_COLORS,
    keypoint_colors=(BLUE,) * 11 + _side_colors(MEDIAPIPE_POSE_NAMES[11:]),
    sigmas=None,
    joint_weights=(1.0,) * 33,
    upper_body_ids=tuple(range(23)),
    lower_body_ids=tuple(range(23, 33)),
)

# ------------------------------------------------------------ Halpe-136 and Halpe-26 (mmpose halpe.py, halpe26.py)
# COCO-17, then head, neck, hip (mid-hip), six foot points, 68 iBUG face points and 2 x 21 hand points (the hand
# roots are the wrists as annotated with the hands). Halpe-26 is the first 26 (body + feet), the keypoint set of
# MMPose's body7 models. In MMPose 1.3.2 the finger chains hang from the body wrists (9, 10), not from the hand
# roots, and the hand roots have no link; kept as published.
_HALPE_BODY_NAMES = COCO_NAMES + ("head", "neck", "hip")
_HALPE_FOOT_NAMES = (
    "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_heel", "right_heel",
)  # fmt: skip
_HALPE26_NAMES = _HALPE_BODY_NAMES + _HALPE_FOOT_NAMES
_HALPE_NAMES = _HALPE26_NAMES + tuple(f"face-{i}" for i in range(68)) + _hand_names("left") + _hand_names("right")
_HALPE_BODY_LINKS = (
    ("left_ankle", "left_knee", _G), ("left_knee", "left_hip", _G), ("left_hip", "hip", _G),
    ("right_ankle", "right_knee", _O), ("right_knee", "right_hip", _O), ("right_hip", "hip", _O),
    ("head", "neck", _B), ("neck", "hip", _B),
    ("neck", "left_shoulder", _G), ("left_shoulder", "left_elbow", _G), ("left_elbow", "left_wrist", _G),
    ("neck", "right_shoulder", _O), ("right_shoulder", "right_elbow", _O), ("right_elbow", "right_wrist", _O),
) + _COCO_FACE_LINKS + (
    ("left_ankle", "left_big_toe", _G), ("left_ankle", "left_small_toe", _G), ("left_ankle", "left_heel", _G),
    ("right_ankle", "right_big_toe", _O), ("right_ankle", "right_small_toe", _O), ("right_ankle", "right_heel", _O),
)  # fmt: skip


def _halpe_hand_links(side: str) -> tuple[tuple[str, str, RGB], ...]:
    """Four links per finger, starting at the body wrist, in the finger colours."""
    out = []
    for finger, color in zip(_FINGERS, _FINGER_COLORS):
        chain = [f"{side}_wrist"] + [f"{side}_{finger}{i}" for i in range(1, 5)]
        out += [(a, b, color) for a, b in zip(chain[:-1], chain[1:])]
    return tuple(out)


_HALPE26_LINKS, _HALPE26_LINK_COLORS = _skeleton(_HALPE26_NAMES, _HALPE_BODY_LINKS)
_HALPE_LINKS, _HALPE_LINK_COLORS = _skeleton(
    _HALPE_NAMES, _HALPE_BODY_LINKS + _halpe_hand_links("left") + _halpe_hand_links("right")
)
_HALPE26_POINT_COLORS = _COCO17_POINT_COLORS + (ORANGE,) * 9
_HALPE_FLIP = (
    _flip_from_names(_HALPE26_NAMES)
    + tuple(26 + i for i in _FACE_FLIP)
    + tuple(range(115, 136))
    + tuple(range(94, 115))
)
HALPE = Layout(
    name="halpe",
    keypoint_names=_HALPE_NAMES,
    flip_indices=_HALPE_FLIP,
    links=_HALPE_LINKS,
    link_colors=_HALPE_LINK_COLORS,
    keypoint_colors=_HALPE26_POINT_COLORS + (WHITE,) * 68 + _hand_point_colors() * 2,
    sigmas=COCO_SIGMAS + (0.08,) * 3 + (0.089,) * 6 + (0.015,) * 110,
    joint_weights=(1.0,) * 136,
    upper_body_ids=tuple(range(11)) + (17, 18),
    lower_body_ids=tuple(range(11, 17)) + tuple(range(19, 26)),
    parts={
        "body": slice(0, 20),
        "foot": slice(20, 26),
        "face": slice(26, 94),
        "lefthand": slice(94, 115),
        "righthand": slice(115, 136),
        "wholebody": slice(0, 136),
    },
)
HALPE26 = Layout(
    name="halpe26",
    keypoint_names=_HALPE26_NAMES,
    flip_indices=_flip_from_names(_HALPE26_NAMES),
    links=_HALPE26_LINKS,
    link_colors=_HALPE26_LINK_COLORS,
    keypoint_colors=_HALPE26_POINT_COLORS,
    # halpe26.py's own constants, which differ from the first 26 of halpe.py.
    sigmas=COCO_SIGMAS + (0.026, 0.026, 0.066) + (0.079,) * 6,
    joint_weights=COCO_WEIGHTS + (1.0, 1.0, 1.2) + (1.5,) * 6,
    upper_body_ids=tuple(range(11)) + (17, 18),
    lower_body_ids=tuple(range(11, 17)) + tuple(range(19, 26)),
    parts={"body": slice(0, 20), "foot": slice(20, 26)},
)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        COCO, COCO_WHOLEBODY, HALPE, HALPE26, CROWDPOSE, AIC, OCHUMAN, MHP, EXLPOSE, MPII, LSP, JHMDB,
        POSETRACK18, PENN_ACTION, MEDIAPIPE_POSE,
    )
}  # fmt: skip


def get_layout(name: str) -> Layout:
    """Look up a layout by name (``coco``, ``coco_wholebody``, ``lsp``, ...)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint layout {name!r}; known: {', '.join(sorted(LAYOUTS))}") from None


# ================================================================================================================
# Mappings between layouts. A mapping sends a joint only to the same anatomical point under the destination's
# name: a joint that is merely close (LSP/MPII head_top or Penn Action's head vs COCO's nose, JHMDB's neck and
# belly, Halpe's mid-hip, CrowdPose's top_head) is left undefined rather than approximated. The one exception,
# MediaPipe's foot_index taken as big_toe, is explained at its mapping.


@dataclass(frozen=True)
class LayoutMapping:
    """Where each joint of layout ``dst`` comes from in layout ``src``.

    ``src_index[j]`` is the ``src`` keypoint that is ``dst`` keypoint ``j``, or -1 when ``src`` has no such point.
    """

    src: str
    dst: str
    src_index: tuple[int, ...]

    def __post_init__(self) -> None:
        ks, kd = get_layout(self.src).num_keypoints, get_layout(self.dst).num_keypoints
        if len(self.src_index) != kd:
            raise ValueError(f"mapping {self.src}->{self.dst}: {len(self.src_index)} entries, expected {kd}")
        bad = [i for i in self.src_index if not -1 <= i < ks]
        if bad:
            raise ValueError(f"mapping {self.src}->{self.dst}: source ids {bad} outside -1..{ks - 1}")

    @property
    def defined_mask(self) -> np.ndarray:
        """(Kd,) bool: True where the destination joint has a source."""
        return np.asarray(self.src_index, dtype=np.int64) >= 0

    def apply(self, keypoints: np.ndarray, visibility: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(..., Ks, 2), (..., Ks) -> (..., Kd, 2), (..., Kd), defined (Kd,); undefined joints get 0 and 0."""
        keypoints, visibility = np.asarray(keypoints), np.asarray(visibility)
        ks = get_layout(self.src).num_keypoints
        if keypoints.ndim < 2 or keypoints.shape[-2:] != (ks, 2):
            raise ValueError(f"mapping {self.src}->{self.dst}: keypoints must be (..., {ks}, 2), got {keypoints.shape}")
        if visibility.shape != keypoints.shape[:-1]:
            raise ValueError(
                f"mapping {self.src}->{self.dst}: visibility must be {keypoints.shape[:-1]}, got {visibility.shape}"
            )
        defined = self.defined_mask
        index = np.where(defined, np.asarray(self.src_index, dtype=np.int64), 0)
        out_kpts = np.where(defined[:, None], np.take(keypoints, index, axis=-2), 0).astype(keypoints.dtype)
        out_vis = np.where(defined, np.take(visibility, index, axis=-1), 0).astype(visibility.dtype)
        return out_kpts, out_vis, defined


def _by_name(
    src: Layout, dst: Layout, same: tuple[str, ...], renamed: tuple[tuple[str, str], ...] = ()
) -> LayoutMapping:
    """Mapping where the ``dst`` joints named in ``same`` carry the same name in ``src``, and each (dst_name,
    src_name) in ``renamed`` is one point under two names. Every other ``dst`` joint is undefined."""
    pairs = {n: n for n in same} | dict(renamed)
    index = tuple(src.index(pairs[n]) if n in pairs else -1 for n in dst.keypoint_names)
    return LayoutMapping(src.name, dst.name, index)


# LSP's 14 joints are MPII's ids 0-5 and 8-15 (LSP's "neck" is MPII's upper_neck); MPII's pelvis and thorax have
# no LSP counterpart.
_LSP_MPII_SAME = _LIMB_JOINTS + ("head_top",)
# MediaPipe -> COCO-WholeBody: the 17 body points share COCO's names and meaning. Of the six foot points MediaPipe
# has the heels, and foot_index, the tip of the foot (the end of the longest toe, nearly always the big toe),
# which we take as WholeBody's big_toe: the one deliberate approximation among these mappings, made so that
# MediaPipe output can feed whole-body foot metrics; the small toes stay undefined. MediaPipe's pinky / index /
# thumb landmarks are knuckle approximations, not WholeBody hand points, and its face points are not iBUG-68
# ones: hands and face stay undefined.
_MP_WHOLEBODY_RENAMED = (("left_big_toe", "left_foot_index"), ("right_big_toe", "right_foot_index"))

_MAPPINGS: tuple[LayoutMapping, ...] = (
    _by_name(LSP, MPII, _LSP_MPII_SAME, (("upper_neck", "neck"),)),
    _by_name(MPII, LSP, _LSP_MPII_SAME, (("neck", "upper_neck"),)),
    _by_name(LSP, COCO, _LIMB_JOINTS),
    _by_name(MPII, COCO, _LIMB_JOINTS),
    _by_name(MHP, COCO, _LIMB_JOINTS),
    _by_name(JHMDB, COCO, _LIMB_JOINTS),
    _by_name(CROWDPOSE, COCO, _LIMB_JOINTS),
    _by_name(EXLPOSE, COCO, _LIMB_JOINTS),
    _by_name(AIC, COCO, _LIMB_JOINTS),
    _by_name(PENN_ACTION, COCO, _LIMB_JOINTS),
    _by_name(POSETRACK18, COCO, ("nose", "left_ear", "right_ear") + _LIMB_JOINTS),
    _by_name(OCHUMAN, COCO, COCO_NAMES),
    _by_name(COCO_WHOLEBODY, COCO, COCO_NAMES),
    _by_name(HALPE, COCO, COCO_NAMES),
    _by_name(HALPE26, COCO, COCO_NAMES),
    _by_name(HALPE, HALPE26, _HALPE26_NAMES),
    # Halpe's body, feet, iBUG-68 face and hands are COCO-WholeBody's points in another order.
    _by_name(HALPE, COCO_WHOLEBODY, COCO_WHOLEBODY.keypoint_names),
    _by_name(MEDIAPIPE_POSE, COCO, COCO_NAMES),
    _by_name(MEDIAPIPE_POSE, COCO_WHOLEBODY, COCO_NAMES + ("left_heel", "right_heel"), _MP_WHOLEBODY_RENAMED),
)
MAPPINGS: dict[tuple[str, str], LayoutMapping] = {(m.src, m.dst): m for m in _MAPPINGS}


def get_mapping(src: str, dst: str) -> LayoutMapping:
    """The mapping from layout ``src`` to layout ``dst``; any layout maps to itself."""
    if src == dst:
        k = get_layout(src).num_keypoints
        return LayoutMapping(src, src, tuple(range(k)))
    try:
        return MAPPINGS[(src, dst)]
    except KeyError:
        known = ", ".join(f"{a}->{b}" for a, b in sorted(MAPPINGS))
        raise KeyError(f"no keypoint mapping from {src!r} to {dst!r}; available: {known} (and identities)") from None


def map_keypoints(
    keypoints: np.ndarray, visibility: np.ndarray, src: str, dst: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-express keypoints of layout ``src`` in layout ``dst``.

    keypoints (..., Ks, 2) and visibility (..., Ks), any leading batch shape -> keypoints (..., Kd, 2),
    visibility (..., Kd) and the defined mask (Kd,) bool. Joints of ``dst`` that ``src`` lacks get coordinates 0
    and visibility 0; use the mask to tell them from joints that are unlabelled in the data.
    """
    return get_mapping(src, dst).apply(keypoints, visibility)
