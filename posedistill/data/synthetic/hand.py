"""A five-finger hand whose joints are the 21 COCO-WholeBody hand keypoints.

Hand frame: origin at the wrist, Y along the hand towards the fingertips, Z out of the palm, X towards the thumb
for a left hand (``side = +1``) and away from it for a right hand (``side = -1``); one unit is the hand length
(wrist to middle fingertip). In the anatomical position (arm hanging, palm forward) this frame coincides with the
body frame (X = the person's left, Y down, Z forward), so the thumb of either hand points away from the body.

Keypoint order: root (wrist), then thumb 1-4, forefinger 1-4, middle 1-4, ring 1-4, pinky 1-4, where 1 is the base
joint (the thumb's carpometacarpal joint, the other fingers' knuckles) and 4 the tip.
"""

from __future__ import annotations

import numpy as np

PALM_WIDTH = 0.44  # hand breadth / hand length
PALM_LENGTH = 0.46  # wrist to the middle knuckle
# Per finger (thumb, fore, middle, ring, pinky): base joint x (in palm widths, towards the thumb) and y (palm
# lengths), rest direction spread (degrees, towards the thumb), segment lengths (hand lengths).
_BASE_X = np.array([0.32, 0.36, 0.12, -0.12, -0.34])
_BASE_Y = np.array([0.22, 0.96, 1.0, 0.96, 0.88])
_SPREAD = np.array([0.0, 8.0, 0.0, -8.0, -17.0])
_SEGMENTS = np.array(
    [
        [0.22, 0.17, 0.14],
        [0.23, 0.15, 0.12],
        [0.25, 0.17, 0.13],
        [0.24, 0.16, 0.12],
        [0.19, 0.13, 0.10],
    ]
)
# Flexion of the three joints of a finger at full curl (radians).
_CURL = np.radians([[30.0, 50.0, 70.0]] + [[80.0, 100.0, 70.0]] * 4)

# Palm outline (x in palm widths towards the thumb, y in palm lengths), drawn as a thick slab.
_PALM = np.array([[0.42, 0.04], [0.52, 0.95], [-0.47, 0.86], [-0.42, 0.04]])
PALM_THICKNESS = 0.09  # hand lengths
FINGER_WIDTH = 0.085  # hand lengths (thumb: 1.2x)


def hand_points(side: int, curls: np.ndarray, spread: float, width: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (21, 3) and palm slab corners (8, 3) in the hand frame.

    ``curls`` (5,) in [0, 1] (thumb..pinky, 0 = straight, 1 = a fist), ``spread`` in [0, 1] fans the fingers,
    ``width`` scales the palm sideways.
    """
    pw, pl = PALM_WIDTH * width, PALM_LENGTH
    kp = np.zeros((21, 3))
    kp[0] = (0.0, 0.05, 0.0)
    base = np.stack([side * _BASE_X * pw, _BASE_Y * pl, np.zeros(5)], axis=1)
    base[0, 2] = 0.03
    # Rest directions: fingers fanned in the palm plane; the thumb points out sideways and a little forward.
    ang = np.radians(_SPREAD * (0.4 + 1.2 * spread))
    d = np.stack([side * np.sin(ang), np.cos(ang), np.zeros(5)], axis=1)
    thumb_out = np.radians(25.0 + 35.0 * spread)
    d[0] = (side * np.sin(thumb_out), np.cos(thumb_out), 0.35)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    # Flexion bends each finger towards the palm side (+Z); the thumb bends across the palm.
    toward = np.tile([0.0, 0.0, 1.0], (5, 1))
    toward[0] = (-side * 0.75, 0.1, 0.65)
    w = toward - (toward * d).sum(1, keepdims=True) * d
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    angles = _CURL * np.clip(curls, 0.0, 1.0)[:, None]
    p = base
    kp[1::4] = base
    for j in range(3):
        c, s = np.cos(angles[:, j])[:, None], np.sin(angles[:, j])[:, None]
        d, w = c * d + s * w, c * w - s * d
        p = p + _SEGMENTS[:, j : j + 1] * d
        kp[2 + j :: 4] = p
    palm = np.empty((8, 3))
    palm[:4, 0] = side * _PALM[:, 0] * pw
    palm[:4, 1] = _PALM[:, 1] * pl
    palm[:4, 2] = PALM_THICKNESS / 2
    palm[4:] = palm[:4]
    palm[4:, 2] = -PALM_THICKNESS / 2
    return kp, palm
