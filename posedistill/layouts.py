"""Keypoint layouts as data: names, flip pairs, skeleton links with colours, OKS sigmas, joint weights, parts.

Every piece of code that depends on the keypoint set reads it from a :class:`Layout`; nothing else hard-codes
keypoint indices. Values follow MMPose's ``configs/_base_/datasets/*.py`` (coco and coco_wholebody are checked
against ``shared/reference/dataset_meta.json`` in the tests). Colours are RGB triplets, as MMPose draws them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    keypoint_colors=_side_colors(COCO_NAMES),
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

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (COCO, COCO_WHOLEBODY)}


def get_layout(name: str) -> Layout:
    """Look up a layout by name (``coco``, ``coco_wholebody``, ``lsp``, ...)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint layout {name!r}; known: {', '.join(sorted(LAYOUTS))}") from None
