"""Filled drawing primitives that paint an image and, with the same footprint, a per-pixel label buffer.

Every shape is drawn with OpenCV at 1/16-pixel precision (``shift = 4``) and without anti-aliasing, so the
label buffer (uint16, one value per person part) marks exactly the pixels the image got. Coordinates follow
OpenCV: pixel (i, j) has its centre at x = i, y = j. An outline (``edge``) is drawn inside the same footprint so
that overlapping parts of one colour stay distinguishable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

SHIFT = 4
ONE = 1 << SHIFT
MIN_RADIUS = 0.8  # px: a shape at least this wide always covers the pixel nearest its centre line

Color = tuple[int, int, int]


def fixed(pts: np.ndarray | Sequence) -> np.ndarray:
    """Float pixel coordinates to OpenCV fixed point (int32)."""
    return np.floor(np.asarray(pts, dtype=np.float64) * ONE + 0.5).astype(np.int32)


def _capsule(dst: np.ndarray, x0: float, y0: float, x1: float, y1: float, r0: float, r1: float, color) -> None:
    dx, dy = x1 - x0, y1 - y0
    n = math.hypot(dx, dy)
    if n > 1e-6:
        nx, ny = -dy / n, dx / n
        quad = fixed([[x0 + nx * r0, y0 + ny * r0], [x1 + nx * r1, y1 + ny * r1],
                      [x1 - nx * r1, y1 - ny * r1], [x0 - nx * r0, y0 - ny * r0]])  # fmt: skip
        cv2.fillConvexPoly(dst, quad, color, cv2.LINE_8, SHIFT)
    cv2.circle(dst, (int(x0 * ONE + 0.5), int(y0 * ONE + 0.5)), int(r0 * ONE + 0.5), color, -1, cv2.LINE_8, SHIFT)
    cv2.circle(dst, (int(x1 * ONE + 0.5), int(y1 * ONE + 0.5)), int(r1 * ONE + 0.5), color, -1, cv2.LINE_8, SHIFT)


def capsule(
    img: np.ndarray,
    lab: np.ndarray | None,
    p0: Sequence[float],
    p1: Sequence[float],
    r0: float,
    r1: float,
    color: Color,
    edge: Color,
    label: int = 0,
    edge_px: float = 1.0,
) -> None:
    """A tapered capsule from p0 (radius r0) to p1 (radius r1), outlined with ``edge``."""
    x0, y0 = float(p0[0]), float(p0[1])
    x1, y1 = float(p1[0]), float(p1[1])
    r0, r1 = max(r0, MIN_RADIUS), max(r1, MIN_RADIUS)
    if lab is not None:
        _capsule(lab, x0, y0, x1, y1, r0, r1, label)
    if min(r0, r1) > edge_px + 0.8:
        _capsule(img, x0, y0, x1, y1, r0, r1, edge)
        _capsule(img, x0, y0, x1, y1, r0 - edge_px, r1 - edge_px, color)
    else:
        _capsule(img, x0, y0, x1, y1, r0, r1, color)


def hull(
    img: np.ndarray, lab: np.ndarray | None, pts: np.ndarray, color: Color, edge: Color, label: int = 0,
    edge_px: int = 1,
) -> None:  # fmt: skip
    """The convex hull of pts (N, 2), filled and outlined (outline width ``edge_px``, straddling the boundary)."""
    h = cv2.convexHull(fixed(pts))
    cv2.fillConvexPoly(img, h, color, cv2.LINE_8, SHIFT)
    if edge_px > 0:
        cv2.polylines(img, [h], True, edge, edge_px, cv2.LINE_8, SHIFT)
    if lab is not None:
        cv2.fillConvexPoly(lab, h, label, cv2.LINE_8, SHIFT)
        if edge_px > 0:
            cv2.polylines(lab, [h], True, label, edge_px, cv2.LINE_8, SHIFT)


def polyline(
    img: np.ndarray, lab: np.ndarray | None, pts: np.ndarray, width: float, color: Color, edge: Color,
    label: int = 0, closed: bool = False,
) -> None:  # fmt: skip
    """A round-capped thick polyline through pts (N, 2); drawn two-tone when it is at least 3 px wide."""
    t = max(1, round(width))
    p = [fixed(pts)]
    if t >= 3:
        cv2.polylines(img, p, closed, edge, t, cv2.LINE_8, SHIFT)
        cv2.polylines(img, p, closed, color, t - 2, cv2.LINE_8, SHIFT)
    else:
        cv2.polylines(img, p, closed, color, t, cv2.LINE_8, SHIFT)
    if lab is not None:
        cv2.polylines(lab, p, closed, label, t, cv2.LINE_8, SHIFT)


def ellipse(
    img: np.ndarray, lab: np.ndarray | None, center: Sequence[float], axes: tuple[float, float], angle: float,
    color: Color, edge: Color, label: int = 0, edge_px: int = 1,
) -> None:  # fmt: skip
    """A filled ellipse with half-axes ``axes`` (px) rotated by ``angle`` degrees, outlined."""
    c = (int(center[0] * ONE + 0.5), int(center[1] * ONE + 0.5))
    ax = (int(max(axes[0], MIN_RADIUS) * ONE + 0.5), int(max(axes[1], MIN_RADIUS) * ONE + 0.5))
    cv2.ellipse(img, c, ax, angle, 0, 360, color, -1, cv2.LINE_8, SHIFT)
    if edge_px > 0 and min(axes) > 2 * edge_px:
        cv2.ellipse(img, c, ax, angle, 0, 360, edge, edge_px, cv2.LINE_8, SHIFT)
    if lab is not None:
        cv2.ellipse(lab, c, ax, angle, 0, 360, label, -1, cv2.LINE_8, SHIFT)
        if edge_px > 0 and min(axes) > 2 * edge_px:
            cv2.ellipse(lab, c, ax, angle, 0, 360, label, edge_px, cv2.LINE_8, SHIFT)


def fill(img: np.ndarray, pts: np.ndarray, color: Color) -> None:
    """A filled (possibly concave) polygon on the image only, for details inside an already labelled part."""
    cv2.fillPoly(img, [fixed(pts)], color, cv2.LINE_8, SHIFT)


def line(img: np.ndarray, p0: Sequence[float], p1: Sequence[float], width: float, color: Color) -> None:
    """A straight stroke on the image only (clothing patterns, facial details)."""
    t = max(1, round(width))
    a = (int(p0[0] * ONE + 0.5), int(p0[1] * ONE + 0.5))
    b = (int(p1[0] * ONE + 0.5), int(p1[1] * ONE + 0.5))
    cv2.line(img, a, b, color, t, cv2.LINE_8, SHIFT)
