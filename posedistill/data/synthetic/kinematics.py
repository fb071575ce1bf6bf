"""The articulated 3-D mannequin: body proportions, a joint-angle pose vector with anatomical limits, and forward
kinematics to the 133 COCO-WholeBody keypoints plus the helper points the renderer draws with.

Body frame: X towards the person's left, Y down, Z forward (out of the chest); one unit is the standing height.
The camera looks along -Z at a person with yaw 0, so a frontal person has its left side on the image's right.
A pose is a flat float vector (:data:`POSE_NAMES`, angles in radians, the hand and face controls in [0, 1] or
[-1, 1]) so that sampling, clipping to the limits and smooth video trajectories are plain numpy operations.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from posedistill.data.synthetic import face as F
from posedistill.data.synthetic.hand import FINGER_WIDTH, hand_points

# ------------------------------------------------------------------------------------------------- pose vector
# name, low, high, neutral, kind: "planar" moves in the image plane of a frontal person, "depth" towards or away
# from the camera (scaled down for flat, easy poses), "unit" a hand / face control. Angles in degrees here.
_DOF_TABLE: list[tuple[str, float, float, float, str]] = [
    ("spine_flex", -15, 45, 0, "depth"),
    ("spine_side", -25, 25, 0, "planar"),
    ("spine_twist", -35, 35, 0, "depth"),
    ("neck_flex", -30, 40, 0, "depth"),
    ("head_yaw", -60, 60, 0, "depth"),
    ("head_roll", -30, 30, 0, "planar"),
]
for _s in ("l", "r"):
    _DOF_TABLE += [
        (f"{_s}_sh_abd", -15, 170, 12, "planar"),  # arm out to the side
        (f"{_s}_sh_flex", -50, 170, 0, "depth"),  # arm forward
        (f"{_s}_sh_rot", -60, 90, 30, "depth"),  # external rotation: elbow bends sideways rather than forward
        (f"{_s}_elbow", 0, 145, 15, "planar"),
        (f"{_s}_pron", -80, 90, 0, "depth"),
        (f"{_s}_wrist_flex", -60, 60, 0, "depth"),
        (f"{_s}_wrist_dev", -20, 30, 0, "planar"),
        (f"{_s}_hip_flex", -20, 120, 0, "depth"),
        (f"{_s}_hip_abd", -15, 45, 5, "planar"),
        (f"{_s}_hip_rot", -30, 40, 0, "depth"),
        (f"{_s}_knee", 0, 140, 5, "depth"),
        (f"{_s}_ankle", -30, 40, 0, "depth"),
    ]
    _DOF_TABLE += [(f"{_s}_curl_{f}", 0, 1, 0.2, "unit") for f in ("thumb", "fore", "middle", "ring", "pinky")]
    _DOF_TABLE += [(f"{_s}_spread", 0, 1, 0.3, "unit")]
_DOF_TABLE += [
    ("face_mouth_open", 0, 1, 0.1, "unit"),
    ("face_smile", -1, 1, 0.2, "unit"),
    ("face_brow_raise", -1, 1, 0.0, "unit"),
    ("face_eye_close", 0, 0.9, 0.1, "unit"),
]

POSE_NAMES: tuple[str, ...] = tuple(d[0] for d in _DOF_TABLE)
IDX: dict[str, int] = {n: i for i, n in enumerate(POSE_NAMES)}
_KIND = np.array([d[4] for d in _DOF_TABLE])
_TO_RAD = np.where(_KIND == "unit", 1.0, np.pi / 180.0)
LOW = np.array([d[1] for d in _DOF_TABLE]) * _TO_RAD
HIGH = np.array([d[2] for d in _DOF_TABLE]) * _TO_RAD
NEUTRAL = np.array([d[3] for d in _DOF_TABLE]) * _TO_RAD
IS_DEPTH = _KIND == "depth"
IS_ANGLE = _KIND != "unit"
# Swap permutation of the pose vector between the two sides (mirror a prototype).
MIRROR = np.array([IDX[("r" + n[1:]) if n.startswith("l_") else ("l" + n[1:]) if n.startswith("r_") else n]
                   for n in POSE_NAMES])  # fmt: skip
MIRROR_SIGN = np.array([-1.0 if n in ("spine_side", "spine_twist", "head_yaw", "head_roll") else 1.0
                        for n in POSE_NAMES])  # fmt: skip

# Named starting poses (degrees; unlisted entries neutral; "l_"-only entries get mirrored half of the time).
PROTOTYPES: dict[str, dict[str, float]] = {
    "stand": {},
    "walk": {"l_hip_flex": 25, "r_hip_flex": -15, "r_knee": 25, "l_knee": 10, "l_sh_flex": -25, "r_sh_flex": 25,
             "r_elbow": 30},
    "run": {"l_hip_flex": 60, "l_knee": 90, "r_hip_flex": -20, "r_knee": 60, "l_sh_flex": -40, "r_sh_flex": 50,
            "l_elbow": 90, "r_elbow": 90, "spine_flex": 12, "l_curl_fore": 0.8, "r_curl_fore": 0.8},
    "arms_up": {"l_sh_abd": 160, "r_sh_abd": 160, "l_elbow": 10, "r_elbow": 10, "l_spread": 0.8, "r_spread": 0.8},
    "t_pose": {"l_sh_abd": 90, "r_sh_abd": 90, "l_sh_rot": 80, "r_sh_rot": 80, "l_elbow": 5, "r_elbow": 5},
    "wave": {"l_sh_abd": 110, "l_sh_rot": 80, "l_elbow": 70, "l_spread": 0.9, "face_smile": 0.8},
    "hands_on_hips": {"l_sh_abd": 40, "r_sh_abd": 40, "l_sh_rot": 70, "r_sh_rot": 70, "l_elbow": 100,
                      "r_elbow": 100},
    "squat": {"l_hip_flex": 100, "r_hip_flex": 100, "l_knee": 120, "r_knee": 120, "spine_flex": 30,
              "l_sh_flex": 80, "r_sh_flex": 80, "l_hip_abd": 20, "r_hip_abd": 20},
    "kneel": {"l_hip_flex": 90, "l_knee": 90, "r_hip_flex": -10, "r_knee": 100, "r_ankle": -25},
    "sit": {"l_hip_flex": 90, "r_hip_flex": 90, "l_knee": 90, "r_knee": 90, "l_sh_flex": 30, "r_sh_flex": 30,
            "l_elbow": 60, "r_elbow": 60},
    "bend": {"spine_flex": 45, "l_sh_flex": 60, "r_sh_flex": 60, "neck_flex": -20},
    "jump": {"l_sh_abd": 150, "r_sh_abd": 150, "l_hip_flex": 40, "r_hip_flex": 40, "l_knee": 70, "r_knee": 70,
             "l_hip_abd": 25, "r_hip_abd": 25, "face_mouth_open": 0.7},
    "kick": {"l_hip_flex": 80, "l_knee": 20, "r_knee": 10, "l_sh_abd": 60, "r_sh_abd": 60, "spine_flex": -10},
    "cross_arms": {"l_sh_flex": 35, "r_sh_flex": 35, "l_sh_abd": -10, "r_sh_abd": -10, "l_sh_rot": -50,
                   "r_sh_rot": -50, "l_elbow": 120, "r_elbow": 120},
    "phone": {"l_sh_flex": 20, "l_sh_abd": 20, "l_elbow": 140, "l_sh_rot": 10, "l_curl_middle": 0.8,
              "l_curl_ring": 0.8, "l_curl_pinky": 0.8, "head_roll": 10},
    "point": {"l_sh_flex": 80, "l_sh_abd": 30, "l_elbow": 5, "l_curl_middle": 1, "l_curl_ring": 1,
              "l_curl_pinky": 1, "l_curl_thumb": 0.6, "l_curl_fore": 0.0},
    "fists": {**{f"{s}_curl_{f}": 1.0 for s in "lr" for f in ("thumb", "fore", "middle", "ring", "pinky")},
              "l_sh_flex": 50, "r_sh_flex": 70, "l_elbow": 110, "r_elbow": 100, "l_sh_abd": 20, "r_sh_abd": 20},
}  # fmt: skip
PROTOTYPE_NAMES = tuple(PROTOTYPES)
_PROTO_VECTORS = np.stack([NEUTRAL + 0.0 for _ in PROTOTYPES])
for _i, _p in enumerate(PROTOTYPES.values()):
    for _n, _v in _p.items():
        _PROTO_VECTORS[_i, IDX[_n]] = _v * _TO_RAD[IDX[_n]]


def mirror_pose(pose: np.ndarray) -> np.ndarray:
    """The same pose with the person's left and right exchanged."""
    return pose[MIRROR] * MIRROR_SIGN


def limit_pose(pose: np.ndarray, pose_range: float = 1.0, depth_range: float = 1.0) -> np.ndarray:
    """Clip to the anatomical limits shrunk towards neutral (``pose_range``), out-of-plane motion further
    (``depth_range``)."""
    k = np.where(IS_DEPTH, pose_range * depth_range, np.where(IS_ANGLE, pose_range, 1.0))
    lo, hi = NEUTRAL + k * (LOW - NEUTRAL), NEUTRAL + k * (HIGH - NEUTRAL)
    return np.clip(pose, lo, hi)


def sample_pose(rng: np.random.Generator, pose_range: float, depth_range: float, prototype_prob: float) -> np.ndarray:
    """A random pose within the limits: a jittered prototype, or a uniform draw over the (shrunk) ranges."""
    if rng.random() < prototype_prob:
        pose = _PROTO_VECTORS[rng.integers(len(PROTOTYPES))].copy()
        if rng.random() < 0.5:
            pose = mirror_pose(pose)
        pose += rng.normal(0.0, 1.0, pose.shape) * np.where(IS_ANGLE, np.radians(12.0), 0.15)
    else:
        pose = rng.uniform(LOW, HIGH)
        # Elbows and knees straight-ish as often as bent; hands mostly relaxed.
        pose = NEUTRAL + (pose - NEUTRAL) * rng.uniform(0.3, 1.0)
    # Faces: independent expression; hands: fingers curl together with some individual variation.
    for s in "lr":
        i = IDX[f"{s}_curl_thumb"]
        pose[i : i + 5] = np.clip(pose[i : i + 5] * 0.5 + rng.uniform(0, 1) * 0.5 + rng.normal(0, 0.12, 5), 0, 1)
    return limit_pose(pose, pose_range, depth_range)


# ------------------------------------------------------------------------------------------------ body shape
@dataclass
class BodyShape:
    """Segment lengths and thicknesses in standing-height units (anthropometric averages, then jittered)."""

    head: float = 0.13  # chin to crown
    neck: float = 0.052
    torso: float = 0.29  # shoulder line to hip line
    shoulder_w: float = 0.23  # between the shoulder joints
    hip_w: float = 0.11  # between the hip joints
    upper_arm: float = 0.186
    forearm: float = 0.146
    hand: float = 0.108
    thigh: float = 0.245
    shin: float = 0.246
    ankle_h: float = 0.039
    foot: float = 0.152
    foot_w: float = 0.055
    r_upper_arm: float = 0.03
    r_forearm: float = 0.024
    r_wrist: float = 0.018
    r_thigh: float = 0.055
    r_knee: float = 0.04
    r_ankle: float = 0.026
    r_neck: float = 0.028
    torso_depth: float = 0.13
    waist: float = 0.045  # torso half-width beyond the hip joints at the bottom
    face_width: float = 1.0
    jaw_square: float = 2.0
    palm_width: float = 1.0

    @classmethod
    def sample(cls, rng: np.random.Generator) -> BodyShape:
        s = cls()
        jitter = np.clip(rng.normal(1.0, 0.06, len(fields(cls))), 0.85, 1.15).tolist()
        for f, k in zip(fields(cls), jitter):
            setattr(s, f.name, getattr(s, f.name) * k)
        build = rng.uniform(0.75, 1.35)  # slim .. stocky
        for name in ("r_upper_arm", "r_forearm", "r_wrist", "r_thigh", "r_knee", "r_ankle", "r_neck", "waist",
                     "torso_depth"):  # fmt: skip
            setattr(s, name, getattr(s, name) * build)
        s.head *= rng.uniform(0.95, 1.2)  # some large heads (children, cartoon proportions)
        s.hand *= rng.uniform(1.0, 1.25)  # slightly big hands keep the fingers readable at small scales
        s.jaw_square = rng.uniform(1.8, 3.0)
        return s


# --------------------------------------------------------------------------------------- forward kinematics
def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# Helper points stored after the 133 keypoints (indices into the array forward_kinematics returns).
_EXTRA_NAMES = (
    ["neck_base", "neck_top", "head_c", "skull_c", "skull_x", "skull_y", "ear_y_l", "ear_y_r"]
    + [f"torso{i}" for i in range(8)]
    + [f"palm_l{i}" for i in range(8)]
    + [f"palm_r{i}" for i in range(8)]
    + [f"foot_l{i}" for i in range(8)]
    + [f"foot_r{i}" for i in range(8)]
    + [f"forehead{i}" for i in range(len(F.FOREHEAD))]
    + [f"face_normal{i}" for i in range(68)]  # landmark + a short step along its outward surface normal
)
NUM_KEYPOINTS = 133
EX: dict[str, int] = {n: NUM_KEYPOINTS + i for i, n in enumerate(_EXTRA_NAMES)}
NUM_POINTS = NUM_KEYPOINTS + len(_EXTRA_NAMES)
FACE0, LHAND0, RHAND0 = 23, 91, 112  # first index of the face / left hand / right hand keypoints
SKULL_AXES = (0.4, 0.55)  # skull half-width, half-height in head heights
EAR_AXES = (0.07, 0.12)

# Foot outline in the foot frame (origin ankle, Y down, Z forward): x in foot widths towards the little toe (the
# person's outside), y in ankle heights, z in foot lengths.
_FOOT_OUTLINE = np.array([
    [-0.4, 1.05, -0.27], [0.4, 1.05, -0.27], [-0.55, 1.05, 0.84], [0.7, 1.05, 0.68],
    [-0.35, 0.1, 0.05], [0.35, 0.1, 0.05], [-0.3, 0.35, -0.27], [0.0, 0.55, 0.78],
])  # fmt: skip
# Foot keypoints: big toe (inner), small toe (outer), heel.
_FOOT_KP = np.array([[-0.3, 0.85, 0.78], [0.45, 0.85, 0.62], [0.0, 0.95, -0.2]])


def forward_kinematics(shape: BodyShape, pose: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """(NUM_POINTS, 3) camera-aligned 3-D points: the 133 keypoints, then the helper points of :data:`EX`.

    The pelvis is at the origin; ``yaw`` turns the person about the vertical axis (0 = facing the camera,
    pi = back to the camera), ``pitch`` leans it towards (negative) or away from (positive) the camera.
    """
    p = pose
    P = np.zeros((NUM_POINTS, 3))
    R0 = _ry(yaw) @ _rx(pitch)
    Rt = R0 @ _ry(p[IDX["spine_twist"]]) @ _rz(p[IDX["spine_side"]]) @ _rx(-p[IDX["spine_flex"]])
    neck_base = Rt @ (0.0, -shape.torso, 0.0)
    Rn = Rt @ _rx(-0.5 * p[IDX["neck_flex"]])
    neck_top = neck_base + Rn @ (0.0, -shape.neck, 0.0)
    Rh = Rt @ _rx(-p[IDX["neck_flex"]]) @ _ry(p[IDX["head_yaw"]]) @ _rz(p[IDX["head_roll"]])
    hh = shape.head
    head_c = neck_top + Rh @ (0.0, -0.42 * hh, 0.1 * hh)
    skull_c = head_c + Rh @ (0.0, -0.06 * hh, -0.12 * hh)
    P[EX["neck_base"]], P[EX["neck_top"]], P[EX["head_c"]], P[EX["skull_c"]] = neck_base, neck_top, head_c, skull_c
    P[EX["skull_x"]] = skull_c + Rh @ (SKULL_AXES[0] * hh, 0.0, 0.0)
    P[EX["skull_y"]] = skull_c + Rh @ (0.0, SKULL_AXES[1] * hh, 0.0)

    # Face and head keypoints.
    expr = p[IDX["face_mouth_open"] : IDX["face_eye_close"] + 1]
    face = F.face_landmarks(expr, shape.face_width, shape.jaw_square)
    Rhs = Rh * hh
    P[FACE0 : FACE0 + 68] = head_c + face @ Rhs.T
    i = EX["face_normal0"]
    P[i : i + 68] = head_c + (face + 0.05 * F.surface_normals(face)) @ Rhs.T
    P[0] = P[FACE0 + F.NOSE_TIP]
    P[1] = P[FACE0 + 42 : FACE0 + 48].mean(0)  # left eye = the person's left = iBUG 42-47
    P[2] = P[FACE0 + 36 : FACE0 + 42].mean(0)
    P[3:5] = head_c + F.EARS * shape.face_width @ Rhs.T
    P[EX["ear_y_l"]] = P[3] + Rh @ (0.0, EAR_AXES[1] * hh, 0.0)
    P[EX["ear_y_r"]] = P[4] + Rh @ (0.0, EAR_AXES[1] * hh, 0.0)
    i = EX["forehead0"]
    P[i : i + len(F.FOREHEAD)] = head_c + F.FOREHEAD * (shape.face_width, 1.0, 1.0) @ Rhs.T

    # Torso slab: 4 corners at the shoulders (in the chest frame) and 4 at the hips (in the pelvis frame).
    tw, bw, d2 = shape.shoulder_w / 2 + 0.6 * shape.r_upper_arm, shape.hip_w / 2 + shape.waist, shape.torso_depth / 2
    i = EX["torso0"]
    for k, (sx, sz) in enumerate(((1, 1), (-1, 1), (1, -1), (-1, -1))):
        P[i + k] = neck_base + Rt @ (sx * tw, -0.015, sz * d2)
        P[i + 4 + k] = R0 @ (sx * bw, 0.045, sz * d2 * 0.9)

    for side, s in ((1, "l"), (-1, "r")):
        o = 0 if side == 1 else 1  # left keypoints come first in each COCO pair
        # Arm.
        sh = neck_base + Rt @ (side * shape.shoulder_w / 2, 0.012, 0.0)
        Rua = Rt @ _rz(-side * p[IDX[f"{s}_sh_abd"]]) @ _rx(p[IDX[f"{s}_sh_flex"]]) @ _ry(side * p[IDX[f"{s}_sh_rot"]])
        elbow = sh + Rua @ (0.0, shape.upper_arm, 0.0)
        Rfa = Rua @ _rx(p[IDX[f"{s}_elbow"]]) @ _ry(side * p[IDX[f"{s}_pron"]])
        wrist = elbow + Rfa @ (0.0, shape.forearm, 0.0)
        Rha = Rfa @ _rx(p[IDX[f"{s}_wrist_flex"]]) @ _rz(-side * p[IDX[f"{s}_wrist_dev"]])
        P[5 + o], P[7 + o], P[9 + o] = sh, elbow, wrist
        c0 = IDX[f"{s}_curl_thumb"]
        hkp, palm = hand_points(side, p[c0 : c0 + 5], p[IDX[f"{s}_spread"]], shape.palm_width)
        h0 = LHAND0 if side == 1 else RHAND0
        Rhand = Rha * shape.hand
        P[h0 : h0 + 21] = wrist + hkp @ Rhand.T
        i = EX[f"palm_{s}0"]
        P[i : i + 8] = wrist + palm @ Rhand.T
        # Leg.
        hip = R0 @ (side * shape.hip_w / 2, 0.0, 0.0)
        Rth = (
            R0 @ _rz(-side * p[IDX[f"{s}_hip_abd"]]) @ _rx(p[IDX[f"{s}_hip_flex"]]) @ _ry(side * p[IDX[f"{s}_hip_rot"]])
        )
        knee = hip + Rth @ (0.0, shape.thigh, 0.0)
        Rsh = Rth @ _rx(-p[IDX[f"{s}_knee"]])
        ankle = knee + Rsh @ (0.0, shape.shin, 0.0)
        Rft = Rsh @ _rx(p[IDX[f"{s}_ankle"]])
        P[11 + o], P[13 + o], P[15 + o] = hip, knee, ankle
        scale = np.array([side * shape.foot_w, shape.ankle_h, shape.foot])  # +x: towards the little toe
        P[17 + 3 * o : 20 + 3 * o] = ankle + (_FOOT_KP * scale) @ Rft.T
        i = EX[f"foot_{s}0"]
        P[i : i + 8] = ankle + (_FOOT_OUTLINE * scale) @ Rft.T
    return P


# Radii (standing-height units) used by the renderer, per person: derived here so all geometry lives in one place.
def finger_radius(shape: BodyShape) -> float:
    return 0.5 * FINGER_WIDTH * shape.hand
