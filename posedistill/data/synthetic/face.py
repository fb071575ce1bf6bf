"""A 3-D face whose 68 landmarks follow the iBUG-68 order, with a few expression controls.

Head frame: origin at the centre of the head at eye level, X towards the person's left, Y down, Z forward (out of
the face); one unit is the head height (chin to crown). A frontal face therefore has landmark 0 (the jaw at the
person's right ear) on the image's left, as in iBUG / 300W / COCO-WholeBody.

Index ranges (0-based): jaw 0-16, right brow 17-21 and left brow 22-26 (both listed left to right in a frontal
image), nose bridge 27-30 (30 = tip), nostrils 31-35, right eye 36-41 (36 outer corner, 39 inner corner), left eye
42-47 (42 inner, 45 outer), outer lips 48-59 (48 and 54 the corners), inner lips 60-67.
"""

from __future__ import annotations

import numpy as np

JAW = slice(0, 17)
BROW_R, BROW_L = slice(17, 22), slice(22, 27)
NOSE_BRIDGE, NOSTRILS = slice(27, 31), slice(31, 36)
EYE_R, EYE_L = slice(36, 42), slice(42, 48)
LIPS_OUTER, LIPS_INNER = slice(48, 60), slice(60, 68)
NOSE_TIP = 30

# Expression controls, in the order of the ``face_*`` entries of the pose vector (see kinematics.POSE_NAMES).
EXPRESSIONS = ("mouth_open", "smile", "brow_raise", "eye_close")


def _depth(x: np.ndarray, front: float = 0.38, side: float = 0.05, half_width: float = 0.42) -> np.ndarray:
    """Z of the face surface at lateral position x: the face wraps round towards the ears."""
    return side + (front - side) * np.sqrt(np.clip(1.0 - (x / half_width) ** 2, 0.0, 1.0))


def jaw_curve(squareness: float = 2.0, width: float = 0.37) -> np.ndarray:
    """(17, 3) jaw contour from the right ear (image left) round the chin to the left ear.

    ``squareness`` is the super-ellipse exponent: 2 is an oval face, 3 a square jaw.
    """
    phi = np.linspace(np.pi + 0.25, -0.25, 17)
    c, s = np.cos(phi), np.sin(phi)
    e = 2.0 / squareness
    x = width * np.sign(c) * np.abs(c) ** e
    y = 0.05 + 0.45 * np.sign(s) * np.abs(s) ** e
    return np.stack([x, y, _depth(x)], axis=1)


def forehead_arc(width: float = 0.37) -> np.ndarray:
    """(7, 3) points over the brows closing the face outline (for the face's convex hull; not landmarks)."""
    psi = np.linspace(0.0, np.pi, 7)
    x = width * 0.97 * np.cos(psi)
    y = -0.05 - 0.28 * np.sin(psi)
    return np.stack([x, y, _depth(x) - 0.02], axis=1)


def _template() -> np.ndarray:
    """(68, 3) neutral face, eyes open, mouth closed, jaw from :func:`jaw_curve` with the default shape."""
    pts = np.zeros((68, 3))
    pts[JAW] = jaw_curve()
    t = np.linspace(0.0, 1.0, 5)
    brow_x = -0.31 + 0.24 * t  # outer -> inner for the right brow
    brow_y = -0.12 - 0.045 * np.sin(np.pi * (0.25 + 0.75 * t)) + 0.01 * t
    pts[BROW_R, 0], pts[BROW_R, 1] = brow_x, brow_y
    pts[BROW_L, 0], pts[BROW_L, 1] = -brow_x[::-1], brow_y[::-1]
    pts[NOSE_BRIDGE, 0] = 0.0
    pts[NOSE_BRIDGE, 1] = np.linspace(-0.08, 0.14, 4)
    pts[NOSTRILS, 0] = np.linspace(-0.075, 0.075, 5)
    pts[NOSTRILS, 1] = 0.165 + 0.02 * np.cos(np.linspace(-np.pi / 2, np.pi / 2, 5)) - 0.01
    # Eyes: outer corner, two upper-lid points, inner corner, two lower-lid points (iBUG winding).
    eye_dx = np.array([-0.065, -0.025, 0.015, 0.05, 0.015, -0.025])
    eye_dy = np.array([0.0, -0.028, -0.03, 0.0, 0.022, 0.022])
    pts[EYE_R, 0], pts[EYE_R, 1] = -0.155 + eye_dx, eye_dy
    # Left eye starts at its inner corner: mirror the right eye and reorder 39,38,37,36,41,40.
    order = [3, 2, 1, 0, 5, 4]
    pts[EYE_L, 0], pts[EYE_L, 1] = 0.155 - eye_dx[order], eye_dy[order]
    pts[LIPS_OUTER, 0] = [-0.13, -0.085, -0.035, 0.0, 0.035, 0.085, 0.13, 0.085, 0.04, 0.0, -0.04, -0.085]
    pts[LIPS_OUTER, 1] = [0.3, 0.28, 0.268, 0.274, 0.268, 0.28, 0.3, 0.335, 0.352, 0.356, 0.352, 0.335]
    pts[LIPS_INNER, 0] = [-0.105, -0.04, 0.0, 0.04, 0.105, 0.04, 0.0, -0.04]
    pts[LIPS_INNER, 1] = [0.302, 0.296, 0.297, 0.296, 0.302, 0.306, 0.307, 0.306]
    z = _depth(pts[17:, 0])
    z[NOSE_BRIDGE.start - 17 : NOSE_BRIDGE.stop - 17] = np.linspace(0.41, 0.53, 4)
    z[NOSTRILS.start - 17 : NOSTRILS.stop - 17] += 0.05
    z[EYE_R.start - 17 : EYE_L.stop - 17] -= 0.03
    pts[17:, 2] = z
    return pts


def _expression_bases() -> np.ndarray:
    """(4, 68, 3) landmark displacements for a unit of each control in :data:`EXPRESSIONS`."""
    b = np.zeros((len(EXPRESSIONS), 68, 3))
    # mouth_open: the lower lip and the chin drop, the chin most.
    lower = [55, 56, 57, 58, 59, 65, 66, 67]
    b[0, lower, 1] = [0.07, 0.085, 0.09, 0.085, 0.07, 0.075, 0.08, 0.075]
    b[0, [60, 64], 1] = 0.02
    jaw_w = np.clip(1.0 - np.abs(np.arange(17) - 8) / 5.0, 0.0, 1.0)
    b[0, JAW, 1] = 0.07 * jaw_w
    # smile: corners up and out, cheeks of the lips follow.
    b[1, [48, 60], 0], b[1, [54, 64], 0] = -0.015, 0.015
    b[1, [48, 54, 60, 64], 1] = -0.035
    b[1, [49, 53, 55, 59], 1] = -0.012
    # brow_raise
    b[2, 17:27, 1] = -0.04
    # eye_close: upper lids down, lower lids slightly up.
    b[3, [37, 38, 43, 44], 1] = 0.027
    b[3, [40, 41, 46, 47], 1] = -0.012
    return b


TEMPLATE = _template()
EXPRESSION_BASES = _expression_bases()
FOREHEAD = forehead_arc()
# Ears (person's left, right): beside the head at eye level, slightly behind its centre, sticking out past the
# face outline so that a frontal face shows both.
EARS = np.array([[0.45, 0.04, -0.02], [-0.45, 0.04, -0.02]])


def surface_normals(pts: np.ndarray) -> np.ndarray:
    """(68, 3) unit outward normals of the face surface at landmarks ``pts`` (68, 3): the face is treated as a
    vertical cylinder, so a landmark turns away from the camera once the head turns far enough the other way."""
    x = np.clip(pts[:, 0] / 0.45, -0.98, 0.98)
    n = np.stack([x, np.zeros_like(x), np.sqrt(1.0 - x * x)], axis=1)
    return n


def face_landmarks(expression: np.ndarray, width: float = 1.0, squareness: float = 2.0) -> np.ndarray:
    """(68, 3) landmarks in the head frame for expression controls (4,) and a face shape.

    ``width`` scales the face sideways (0.9-1.1 is natural); ``squareness`` as in :func:`jaw_curve`.
    """
    pts = TEMPLATE.copy()
    if squareness != 2.0:
        pts[JAW] = jaw_curve(squareness)
    pts += np.tensordot(expression, EXPRESSION_BASES, axes=1)
    pts[:, 0] *= width
    return pts
