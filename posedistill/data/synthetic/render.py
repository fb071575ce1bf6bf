"""Scenes: people drawn part by part in depth order, a label buffer alongside, and labels read back from it.

A person is 28 parts (torso, neck, skull, face, ears, upper arms, forearms, palms, 10 fingers, thighs, shins,
feet). Each part is painted into the image and, with the same footprint, into a uint16 label buffer holding
``1 + 32 * person + part`` (0 = background, :data:`~posedistill.data.synthetic.background.OCCLUDER` = a
foreground object). After the whole scene is drawn, a keypoint is

* 0 (unlabelled) when it lies outside the image, or belongs to a face / hand that is hidden or too small;
* 2 (visible) when the pixel under it was drawn last by one of *its own* parts (the elbow by the upper arm or
  the forearm of the same person, a fingertip by that finger, ...);
* 1 (occluded) otherwise: another part, another person or an occluder was drawn over it.

so every visible label is exactly where the drawing shows its part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from posedistill.data.synthetic import draw
from posedistill.data.synthetic.appearance import Appearance, Color, edge_of, shade
from posedistill.data.synthetic.background import OCCLUDER, draw_occluders, finish, make_background
from posedistill.data.synthetic.config import SynthConfig
from posedistill.data.synthetic.hand import FINGER_WIDTH
from posedistill.data.synthetic.kinematics import (
    EAR_AXES,
    EX,
    FACE0,
    IDX,
    LHAND0,
    NUM_KEYPOINTS,
    RHAND0,
    SKULL_AXES,
    BodyShape,
    forward_kinematics,
    sample_pose,
)

_FINGERS = ("thumb", "fore", "middle", "ring", "pinky")
PART_NAMES: tuple[str, ...] = (
    ("torso", "neck", "skull", "face", "ear_l", "ear_r", "upper_arm_l", "upper_arm_r", "forearm_l", "forearm_r",
     "palm_l", "palm_r")
    + tuple(f"{f}_l" for f in _FINGERS) + tuple(f"{f}_r" for f in _FINGERS)
    + ("thigh_l", "thigh_r", "shin_l", "shin_r", "foot_l", "foot_r")
)  # fmt: skip
PART: dict[str, int] = {n: i for i, n in enumerate(PART_NAMES)}
LABELS_PER_PERSON = 32


def _owner_table() -> np.ndarray:
    """(133,) bit masks: bit p set when part p may show keypoint k as visible."""
    own = np.zeros(NUM_KEYPOINTS, np.int64)

    def bits(*names: str) -> int:
        return sum(1 << PART[n] for n in names)

    own[0:3] = bits("face")  # nose, eyes
    own[3], own[4] = bits("ear_l"), bits("ear_r")
    for s, o in (("l", 0), ("r", 1)):
        own[5 + o] = bits("torso", f"upper_arm_{s}")
        own[7 + o] = bits(f"upper_arm_{s}", f"forearm_{s}")
        own[9 + o] = bits(f"forearm_{s}", f"palm_{s}")
        own[11 + o] = bits("torso", f"thigh_{s}")
        own[13 + o] = bits(f"thigh_{s}", f"shin_{s}")
        own[15 + o] = bits(f"shin_{s}", f"foot_{s}")
        own[17 + 3 * o : 20 + 3 * o] = bits(f"foot_{s}")
        h0 = LHAND0 if s == "l" else RHAND0
        own[h0] = bits(f"palm_{s}", f"forearm_{s}")
        for f, finger in enumerate(_FINGERS):
            own[h0 + 1 + 4 * f] = bits(f"{finger}_{s}", f"palm_{s}")
            own[h0 + 2 + 4 * f : h0 + 5 + 4 * f] = bits(f"{finger}_{s}")
    own[FACE0 : FACE0 + 68] = bits("face")
    return own


OWNERS = _owner_table()


# ------------------------------------------------------------------------------------------------ people
@dataclass
class Person:
    """Everything needed to draw one person: body, looks, pose and where it stands in the image.

    ``roll`` is the in-plane rotation (radians), ``height`` the standing height in pixels, ``offset`` the pixel
    position of the pelvis, ``focal`` the perspective focal length in standing heights (0 = orthographic).
    """

    shape: BodyShape
    look: Appearance
    pose: np.ndarray
    yaw: float
    pitch: float
    roll: float
    height: float
    offset: np.ndarray
    focal: float = 0.0
    track_id: int | None = None


def sample_person(rng: np.random.Generator, cfg: SynthConfig) -> Person:
    """A random person at the origin (see :func:`place_people`)."""
    shape = BodyShape.sample(rng)
    look = Appearance.sample(rng, cfg.clothing_pattern_prob)
    pose = sample_pose(rng, cfg.pose_range, cfg.depth_range, cfg.prototype_prob)
    if rng.random() < cfg.front_prob:
        yaw = math.radians(rng.uniform(-cfg.front_yaw, cfg.front_yaw))
    else:
        yaw = rng.uniform(-math.pi, math.pi)
    pitch = math.radians(rng.uniform(-cfg.pitch, cfg.pitch))
    roll = math.radians(float(np.clip(rng.normal(0.0, cfg.rotation_std), -3 * cfg.rotation_std, 3 * cfg.rotation_std)))
    height = rng.uniform(*cfg.scale) * cfg.size[1]
    focal = rng.uniform(*cfg.focal) if rng.random() < cfg.perspective_prob else 0.0
    return Person(shape, look, pose, yaw, pitch, roll, height, np.zeros(2), focal)


@dataclass
class Projected:
    """A person's points in the image: ``pts`` (N, 2) pixels, ``z`` (N,) depth in standing heights (larger is
    nearer the camera), ``px`` (N,) pixels per standing height at each point (perspective), ``face_shown``
    whether the face turns towards the camera, ``head_side`` |sin| of the head's angle to the camera axis."""

    pts: np.ndarray
    z: np.ndarray
    px: np.ndarray
    face_shown: bool
    head_side: float

    def extent(self) -> np.ndarray:
        """(x0, y0, x1, y1) of all points, a little enlarged for the body's thickness."""
        m = 0.04 * float(self.px.mean())
        lo, hi = self.pts.min(0) - m, self.pts.max(0) + m
        return np.array([lo[0], lo[1], hi[0], hi[1]])


Camera = tuple[float, float, float, float]  # zoom, rotation (radians), tx, ty: world pixels -> image pixels


def project(person: Person, camera: Camera | None = None) -> Projected:
    """Forward kinematics, optional perspective, then the person's (and the camera's) 2-D similarity."""
    P = forward_kinematics(person.shape, person.pose, person.yaw, person.pitch)
    z = P[:, 2]
    if person.focal > 0:
        f = person.focal / np.maximum(person.focal - z, 0.3 * person.focal)
        xy = P[:, :2] * f[:, None]
    else:
        f = np.ones(len(P))
        xy = P[:, :2]
    scale, angle, t = person.height, person.roll, person.offset
    if camera is not None:
        zoom, rot, tx, ty = camera
        c, s = math.cos(rot), math.sin(rot)
        t = zoom * np.array([c * t[0] - s * t[1], s * t[0] + c * t[1]]) + (tx, ty)
        scale, angle = scale * zoom, angle + rot
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    pts = xy @ np.array([[c, s], [-s, c]]) + t
    fwd = P[FACE0 + 27] - P[EX["head_c"]]
    cos_cam = float(fwd[2] / (np.linalg.norm(fwd) + 1e-9))
    return Projected(pts, z, f * scale, cos_cam > 0.25, math.sqrt(max(0.0, 1.0 - cos_cam * cos_cam)))


def place_people(rng: np.random.Generator, cfg: SynthConfig, persons: list[Person], projs: list[Projected]) -> None:
    """Choose each person's offset (in place): inside the image, or sticking out (truncation), or next to the
    previous person (overlap)."""
    w, h = cfg.size
    prev: np.ndarray | None = None
    for person, pr in zip(persons, projs):
        x0, y0, x1, y1 = pr.extent()
        bw, bh = x1 - x0, y1 - y0
        truncate = rng.random() < cfg.truncation_prob
        if prev is not None and rng.random() < cfg.overlap_prob:
            pw, ph = prev[2] - prev[0], prev[3] - prev[1]
            cx = (prev[0] + prev[2]) / 2 + rng.uniform(-0.6, 0.6) * pw
            cy = (prev[1] + prev[3]) / 2 + rng.uniform(-0.3, 0.3) * ph
            if not truncate:
                cx = float(np.clip(cx, bw / 2, w - bw / 2)) if bw <= w else w / 2
                cy = float(np.clip(cy, bh / 2, h - bh / 2)) if bh <= h else h / 2
        elif truncate:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        else:
            cx = rng.uniform(bw / 2, w - bw / 2) if bw <= w else rng.uniform(w - bw / 2, bw / 2)
            cy = rng.uniform(bh / 2, h - bh / 2) if bh <= h else rng.uniform(h - bh / 2, bh / 2)
        shift = np.array([cx - (x0 + x1) / 2, cy - (y0 + y1) / 2])
        person.offset = person.offset + shift
        pr.pts += shift
        prev = pr.extent()


# --------------------------------------------------------------------------------------------- drawing
def _limb(
    img: np.ndarray, lab: np.ndarray, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, color: Color, label: int,
    e: float, stripes: int = 0, stripe_color: Color = (0, 0, 0), band: bool = False,
) -> None:  # fmt: skip
    """A limb capsule, with ``stripes`` bands across it or one cuff near its end (``band``)."""
    draw.capsule(img, lab, p0, p1, r0, r1, color, edge_of(color), label, e)
    if not stripes and not band:
        return
    d = p1 - p0
    n = math.hypot(d[0], d[1])
    if n < 2.0:
        return
    nv = np.array([-d[1], d[0]]) / n
    ts = [0.85] if band else [(k + 0.5) / stripes for k in range(stripes)]
    for t in ts:
        r = r0 + t * (r1 - r0)
        wdt = max(1.0, min(0.35 * r, 0.3 * n / len(ts)))
        half = r - e - wdt / 2 - 0.6
        if half > 0.5:
            c = p0 + t * d
            draw.line(img, c - half * nv, c + half * nv, wdt, stripe_color)


def _torso(
    img: np.ndarray, lab: np.ndarray, pts8: np.ndarray, z8: np.ndarray, look: Appearance, label: int, e: float
) -> None:
    """The torso slab (convex hull of its 8 corners), with stripes or a belt on the side facing the camera."""
    ei = max(1, round(e))
    draw.hull(img, lab, pts8, look.shirt, edge_of(look.shirt), label, ei)
    if look.pattern is None:
        return
    front = z8[[0, 1, 4, 5]].mean() >= z8[[2, 3, 6, 7]].mean()
    tl, tr, bl, br = pts8[[0, 1, 4, 5]] if front else pts8[[2, 3, 6, 7]]
    hgt = float(np.hypot(*(bl - tl)))
    if look.pattern == "stripes":
        ts, wdt = [(k + 0.5) / look.pattern_n for k in range(look.pattern_n)], 0.4 * hgt / look.pattern_n
    else:
        ts, wdt = [0.9], 0.07 * hgt
    wdt = max(1.0, wdt)
    for t in ts:
        a, b = tl + t * (bl - tl), tr + t * (br - tr)
        length = float(np.hypot(*(b - a)))
        cut = wdt / 2 + ei + 0.6
        if length > 2 * cut + 1:
            u = (b - a) / length
            draw.line(img, a + cut * u, b - cut * u, wdt, look.pattern_color)


def _head(img: np.ndarray, lab: np.ndarray, pr: Projected, person: Person, lb: int, e: float) -> None:
    """Ears, skull (hair) and, when it turns towards the camera, the face with its features on the landmarks."""
    pts, look, shape = pr.pts, person.look, person.shape
    hp = shape.head * float(pr.px[EX["head_c"]])  # head height in pixels
    ei = max(1, round(e))
    sc = pts[EX["skull_c"]]
    v = pts[EX["skull_y"]] - sc
    ang = math.degrees(math.atan2(v[1], v[0])) - 90.0
    hair = shade(look.skin, 0.85) if look.bald else look.hair
    skull_axes = ((SKULL_AXES[0] + 0.12 * pr.head_side) * hp, SKULL_AXES[1] * hp)
    z_skull = pr.z[EX["skull_c"]]

    def ear(k: int, part: str) -> None:
        ev = pts[EX["ear_y_l" if k == 3 else "ear_y_r"]] - pts[k]
        a = math.degrees(math.atan2(ev[1], ev[0])) - 90.0
        draw.ellipse(img, lab, pts[k], (EAR_AXES[0] * hp, EAR_AXES[1] * hp), a, look.skin, edge_of(look.skin),
                     lb + PART[part], ei)  # fmt: skip

    # Far ears hide behind the skull; an ear turned towards the camera is drawn over the face's side.
    ears = ((3, "ear_l"), (4, "ear_r"))
    behind = [e for e in ears if pr.z[e[0]] < z_skull - 0.1 * shape.head]
    beside = [e for e in ears if z_skull - 0.1 * shape.head <= pr.z[e[0]] <= pr.z[EX["head_c"]]]
    near = [e for e in ears if pr.z[e[0]] > pr.z[EX["head_c"]]]
    for k, p in behind:
        ear(k, p)
    draw.ellipse(img, lab, sc, skull_axes, ang, hair, edge_of(hair), lb + PART["skull"], ei)
    for k, p in beside if pr.face_shown else beside + near:
        ear(k, p)
    if not pr.face_shown:
        return
    fp = pts[FACE0 : FACE0 + 68]
    skin = look.skin
    fh = EX["forehead0"]
    outline = np.concatenate([fp[0:17], pts[fh : fh + 7], fp[30:31]])
    draw.hull(img, lab, outline, skin, edge_of(skin), lb + PART["face"], ei)
    t = max(1.0, hp / 40.0)
    detail = shade(skin, 0.72)
    draw.polyline(img, lab, fp[0:17], t, detail, detail, lb + PART["face"])
    brow = shade(look.hair, 0.8)
    draw.polyline(img, None, fp[17:22], max(1.0, hp / 24.0), brow, brow)
    draw.polyline(img, None, fp[22:27], max(1.0, hp / 24.0), brow, brow)
    draw.polyline(img, None, fp[27:31], t, detail, detail)
    draw.polyline(img, None, fp[31:36], t, detail, detail)
    close = float(person.pose[IDX["face_eye_close"]])
    for sl, c in ((slice(36, 42), pts[2]), (slice(42, 48), pts[1])):
        draw.fill(img, fp[sl], (235, 235, 240))
        if close < 0.6:
            r = 0.022 * hp * (1.0 - close)
            draw.ellipse(img, None, c, (r, r), 0.0, look.iris, look.iris, 0, 0)
        draw.polyline(img, None, fp[sl], 1.0, (40, 30, 30), (40, 30, 30), closed=True)
    draw.fill(img, fp[48:60], look.lips)
    if person.pose[IDX["face_mouth_open"]] > 0.25:
        draw.fill(img, fp[60:68], (40, 25, 60))
    draw.polyline(img, None, fp[48:60], 1.0, shade(look.lips, 0.6), shade(look.lips, 0.6), closed=True)
    for k, p in near:
        ear(k, p)


def _depth_groups() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Point groups whose mean depth orders the parts, in the order draw_person adds them, with depth biases that
    settle near-ties the natural way (limbs over the torso, fingers over the palm)."""
    groups: list[tuple[list[int], float]] = [(list(range(EX["torso0"], EX["torso0"] + 8)), 0.0), ([EX["head_c"]], 0.02)]
    for s, o in (("l", 0), ("r", 1)):
        groups += [([5 + o, 7 + o], 0.01), ([7 + o, 9 + o], 0.01), ([11 + o, 13 + o], 0.01), ([13 + o, 15 + o], 0.01)]
        groups.append((list(range(EX[f"foot_{s}0"], EX[f"foot_{s}0"] + 8)), 0.01))
        groups.append((list(range(EX[f"palm_{s}0"], EX[f"palm_{s}0"] + 8)), 0.012))
        h0 = LHAND0 if s == "l" else RHAND0
        groups += [(list(range(h0 + 1 + 4 * f, h0 + 5 + 4 * f)), 0.014) for f in range(5)]
    index = np.concatenate([g for g, _ in groups])
    counts = np.array([len(g) for g, _ in groups], np.float64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
    return index, starts, counts, np.array([b for _, b in groups])


_DEPTH_INDEX, _DEPTH_STARTS, _DEPTH_COUNTS, _DEPTH_BIAS = _depth_groups()


def draw_person(img: np.ndarray, lab: np.ndarray, person: Person, pr: Projected, lb: int) -> None:
    """Paint one person into ``img`` and ``lab`` (labels ``lb + part``), parts sorted far to near."""
    pts, z, px, look, sh = pr.pts, pr.z, pr.px, person.look, person.shape
    e = max(1.0, 0.005 * person.height)
    ei = max(1, round(e))
    depth = (np.add.reduceat(z[_DEPTH_INDEX], _DEPTH_STARTS) / _DEPTH_COUNTS + _DEPTH_BIAS).tolist()
    skin, skin_edge = look.skin, edge_of(look.skin)
    t0, nb, nt = EX["torso0"], EX["neck_base"], EX["neck_top"]
    items: list[tuple[float, int, partial]] = [
        (depth[0], 0, partial(_torso, img, lab, pts[t0 : t0 + 8], z[t0 : t0 + 8], look, lb + PART["torso"], e)),
        (depth[1], 1, partial(_head, img, lab, pr, person, lb, e)),
        (min(depth[0], depth[1]) - 0.05, 2,
         partial(draw.capsule, img, lab, pts[nb], pts[nt], sh.r_neck * px[nb], sh.r_neck * px[nt], skin, skin_edge,
                 lb + PART["neck"], e)),
    ]  # fmt: skip
    stripes = look.pattern_n if look.pattern == "stripes" else 0
    band = look.pattern == "bands"
    pc = look.pattern_color
    fr = 0.5 * FINGER_WIDTH * sh.hand
    g = 2  # next depth group
    for s, o in (("l", 0), ("r", 1)):
        segs = (
            (5 + o, 7 + o, sh.r_upper_arm, sh.r_forearm * 1.05, look.shirt, "upper_arm", stripes, False),
            (7 + o, 9 + o, sh.r_forearm, sh.r_wrist, look.sleeves, "forearm", 0, band and look.sleeves != skin),
            (11 + o, 13 + o, sh.r_thigh, sh.r_knee, look.trousers, "thigh", stripes, False),
            (13 + o, 15 + o, sh.r_knee, sh.r_ankle, look.shins, "shin", 0, band and look.shins != skin),
        )
        for a, b, ra, rb, color, name, st, bd in segs:
            items.append((depth[g], len(items), partial(_limb, img, lab, pts[a], pts[b], ra * px[a], rb * px[b], color,
                                                        lb + PART[f"{name}_{s}"], e, st, pc, bd)))  # fmt: skip
            g += 1
        f0 = EX[f"foot_{s}0"]
        items.append((depth[g], len(items), partial(draw.hull, img, lab, pts[f0 : f0 + 8], look.shoes,
                                                    edge_of(look.shoes), lb + PART[f"foot_{s}"], ei)))  # fmt: skip
        p0 = EX[f"palm_{s}0"]
        items.append((depth[g + 1], len(items), partial(draw.hull, img, lab, pts[p0 : p0 + 8], skin, skin_edge,
                                                        lb + PART[f"palm_{s}"], 1)))  # fmt: skip
        g += 2
        h0 = LHAND0 if s == "l" else RHAND0
        for f, finger in enumerate(_FINGERS):
            k = h0 + 1 + 4 * f
            width = 2.0 * fr * float(px[k]) * (1.2 if f == 0 else 1.0)
            items.append((depth[g], len(items), partial(draw.polyline, img, lab, pts[k : k + 4], width, skin,
                                                        skin_edge, lb + PART[f"{finger}_{s}"])))  # fmt: skip
            g += 1
    items.sort(key=lambda it: (it[0], it[1]))
    for _, _, fn in items:
        fn()


# ------------------------------------------------------------------------------------------ labels back
def _box(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> np.ndarray:
    """(4,) x, y, w, h clipped to the image and rounded outwards to 0.01 px (the precision the JSON keeps)."""
    x0, y0 = math.floor(min(max(x0, 0.0), w) * 100) / 100, math.floor(min(max(y0, 0.0), h) * 100) / 100
    x1, y1 = math.ceil(min(max(x1, 0.0), w) * 100) / 100, math.ceil(min(max(y1, 0.0), h) * 100) / 100
    return np.array([x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)])


def annotate(lab: np.ndarray, persons: list[Person], projs: list[Projected], cfg: SynthConfig) -> list[dict]:
    """Person records from the finished label buffer (``persons[i]`` was drawn with label base ``1 + 32 i``).

    Each record: ``keypoints`` (133, 2) float32 (0 where unlabelled), ``visibility`` (133,) uint8,
    ``outside`` (133,) bool, ``bbox`` / ``face_box`` / ``lefthand_box`` / ``righthand_box`` (4,) x, y, w, h,
    ``area`` (visible pixels), ``num_keypoints`` (labelled body points), ``face_valid`` / ``lefthand_valid`` /
    ``righthand_valid`` / ``foot_valid``, ``track_id``, ``index`` (drawing order: the person's labels are
    ``1 + 32 * index + part``). People with no visible pixel are left out.
    """
    n = len(persons)
    if n == 0:
        return []
    h, w = lab.shape
    kp = np.stack([pr.pts[:NUM_KEYPOINTS] for pr in projs])  # (n, 133, 2)
    x, y = kp[..., 0], kp[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    xi = np.clip(np.floor(x + 0.5), 0, w - 1).astype(np.intp)
    yi = np.clip(np.floor(y + 0.5), 0, h - 1).astype(np.intp)
    under = lab[yi, xi].astype(np.int64)
    person_under = np.where((under > 0) & (under != OCCLUDER), (under - 1) // LABELS_PER_PERSON, -1)
    part_under = (under - 1) % LABELS_PER_PERSON
    own = (person_under == np.arange(n)[:, None]) & (((OWNERS[None, :] >> part_under) & 1) == 1)
    vis = np.where(inside, np.where(own, 2, 1), 0).astype(np.uint8)

    out = []
    for i, (person, pr) in enumerate(zip(persons, projs)):
        mask = cv2.inRange(lab, 1 + LABELS_PER_PERSON * i, LABELS_PER_PERSON * (i + 1))
        area = cv2.countNonZero(mask)
        if area == 0:
            continue
        v = vis[i].copy()
        outside = ~inside[i]
        pts = pr.pts
        # Face: shown and large enough, else unlabelled (as annotators skip back views and tiny faces).
        fh = EX["forehead0"]
        fpts = np.concatenate([pts[FACE0 : FACE0 + 17], pts[fh : fh + 7], pts[FACE0 + 30 : FACE0 + 31]])
        flo, fhi = fpts.min(0), fpts.max(0)
        face_ok = pr.face_shown and float((fhi - flo).max()) >= cfg.min_part_px
        if face_ok:
            # Landmarks on the far side of a turned face are hidden by the face itself.
            n0 = EX["face_normal0"]
            away = pr.z[n0 : n0 + 68] < pr.z[FACE0 : FACE0 + 68]
            fv = v[FACE0 : FACE0 + 68]
            fv[away & (fv == 2)] = 1
            for k, sl in ((1, slice(42, 48)), (2, slice(36, 42))):
                if v[k] == 2 and away[sl].mean() > 0.5:
                    v[k] = 1
        else:
            v[FACE0 : FACE0 + 68] = 0
        boxes = {}
        valid = {}
        for name, h0, side in (("lefthand", LHAND0, "l"), ("righthand", RHAND0, "r")):
            p0 = EX[f"palm_{side}0"]
            r = 0.6 * FINGER_WIDTH * person.shape.hand * float(pr.px[h0])
            hp = np.concatenate([pts[h0 : h0 + 21], pts[p0 : p0 + 8]])
            lo, hi = hp.min(0) - r, hp.max(0) + r
            ok = float((hi - lo).max()) >= cfg.min_part_px
            if not ok:
                v[h0 : h0 + 21] = 0
            ok = ok and bool((v[h0 : h0 + 21] > 0).any())
            valid[name] = ok
            boxes[name] = _box(lo[0], lo[1], hi[0], hi[1], w, h) if ok else np.zeros(4)
        face_ok = face_ok and bool((v[FACE0 : FACE0 + 68] > 0).any())
        boxes["face"] = _box(flo[0], flo[1], fhi[0], fhi[1], w, h) if face_ok else np.zeros(4)
        labelled = v > 0
        bx, by, bw, bh = cv2.boundingRect(mask)
        x0, y0, x1, y1 = float(bx), float(by), float(bx + bw), float(by + bh)
        if labelled.any():
            lp = pts[:NUM_KEYPOINTS][labelled]
            x0, y0 = min(x0, float(lp[:, 0].min())), min(y0, float(lp[:, 1].min()))
            x1, y1 = max(x1, float(lp[:, 0].max())), max(y1, float(lp[:, 1].max()))
        keypoints = np.where(labelled[:, None], pts[:NUM_KEYPOINTS], 0.0).astype(np.float32)
        out.append(
            {
                "keypoints": keypoints,
                "visibility": v,
                "outside": outside,
                "bbox": _box(x0, y0, x1, y1, w, h),
                "area": float(area),
                "num_keypoints": int(labelled[:17].sum()),
                "face_box": boxes["face"],
                "lefthand_box": boxes["lefthand"],
                "righthand_box": boxes["righthand"],
                "face_valid": face_ok,
                "lefthand_valid": valid["lefthand"],
                "righthand_valid": valid["righthand"],
                "foot_valid": bool(labelled[17:23].any()),
                "track_id": person.track_id,
                "index": i,
            }
        )
    return out


# ------------------------------------------------------------------------------------------------ scenes
@dataclass
class Scene:
    """One rendered image with its people.

    ``image`` is the final (H, W, 3) uint8 BGR picture, ``people`` the records of :func:`annotate` (in drawing
    order). With ``keep_layers``: ``background`` (the picture before anyone was drawn), ``clean`` (people and
    occluders drawn, before blur / noise / lighting) and ``labels`` (the (H, W) uint16 label buffer).
    """

    image: np.ndarray
    people: list[dict]
    jpeg_quality: int
    background: np.ndarray | None = None
    clean: np.ndarray | None = None
    labels: np.ndarray | None = None


def compose(
    rng: np.random.Generator,
    cfg: SynthConfig,
    background: np.ndarray,
    persons: list[Person],
    projs: list[Projected],
    keep_layers: bool = False,
    look_rng: np.random.Generator | None = None,
) -> Scene:
    """Draw placed people over ``background`` (not modified), nearest (tallest) last, then occluders, read the
    labels back and apply the camera effects. ``look_rng`` (default ``rng``) draws the lighting, blur and JPEG
    quality: a video passes an equally seeded one for every frame so that they stay constant."""
    h, w = background.shape[:2]
    img = background.copy()
    lab = np.zeros((h, w), np.uint16)
    order = sorted(range(len(persons)), key=lambda i: (persons[i].height, i))
    persons = [persons[i] for i in order]
    projs = [projs[i] for i in order]
    for k, (person, pr) in enumerate(zip(persons, projs)):
        draw_person(img, lab, person, pr, 1 + LABELS_PER_PERSON * k)
    draw_occluders(rng, img, lab, [pr.extent() for pr in projs], cfg)
    people = annotate(lab, persons, projs, cfg)
    clean = img.copy() if keep_layers else None
    look_rng = rng if look_rng is None else look_rng
    quality = int(look_rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    image = finish(look_rng, img, cfg, noise_rng=rng)
    if keep_layers:
        return Scene(image, people, quality, background.copy(), clean, lab)
    return Scene(image, people, quality)


def render_scene(rng: np.random.Generator, cfg: SynthConfig, keep_layers: bool = False) -> Scene:
    """A random still image: background, 1..N people placed in it, occluders, camera effects."""
    background = make_background(rng, cfg)
    n = int(rng.integers(cfg.people[0], cfg.people[1] + 1))
    persons = [sample_person(rng, cfg) for _ in range(n)]
    projs = [project(p) for p in persons]
    place_people(rng, cfg, persons, projs)
    return compose(rng, cfg, background, persons, projs, keep_layers)


def render_sample(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, list[dict]]:
    """(image (H, W, 3) uint8 BGR, person records) of one random scene; see :func:`annotate` for the records."""
    scene = render_scene(rng, cfg)
    return scene.image, scene.people
