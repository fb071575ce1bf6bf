"""Draw poses with OpenCV, in two styles.

- **MMPose style** (default): the layout's point and link colours. Layout colours are RGB, as MMPose draws them on
  an RGB image; we draw on BGR images, so every colour is reversed first and pictures match MMPose's (rtmlib passes
  the RGB triplets to OpenCV unchanged, which renders the right side bluish). Links are drawn first, then points,
  both only where the scores reach ``kpt_thr``; radius and thickness grow with the image size unless given.
- **OpenPose / ControlNet style** (the DWPose annotator): the OpenPose-18 body with its 18 colours, the first 17
  limbs as filled ellipses of half-width 4 on a layer dimmed to 0.6, points of radius 4; hands with HSV rainbow
  edges and blue points; white face points. The colours are RGB values of the ControlNet canvas, reversed here
  too, so a BGR image written with ``cv2.imwrite`` has ControlNet's exact pixel colours. Sizes are fixed in pixels,
  as ControlNet expects.

All functions take and return (H, W, 3) uint8 BGR images. Torch-free.
"""

from __future__ import annotations

import colorsys
import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from posedistill.infer.keypoint_sets import WB_FACE, WB_LHAND, WB_RHAND, openpose18, to_wholebody
from posedistill.layouts import get_layout

if TYPE_CHECKING:
    from posedistill.infer.results import PoseResult

Color = tuple[int, int, int]

# OpenPose-18 colours (RGB), indexed by point and by limb
OPENPOSE_COLORS: tuple[Color, ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
# OpenPose-18 limbs, 0-based (the 1-based list 2-3, 2-6, 3-4, ... of the OpenPose / DWPose code). The last two
# (ear-shoulder) exist in the list, but the DWPose / ControlNet drawer draws only the first 17.
OPENPOSE_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)  # fmt: skip
OPENPOSE_DRAWN_LIMBS = 17
OPENPOSE_STICK_HALF_WIDTH = 4
OPENPOSE_LIMB_DIM = 0.6
OPENPOSE_POINT_RADIUS = 4
# Hand edges in OpenPose hand order (root, thumb 1-4, index 1-4, middle, ring, pinky), coloured along the HSV wheel
HAND_EDGES: tuple[tuple[int, int], ...] = tuple(
    (0 if j == 0 else 1 + 4 * f + j - 1, 1 + 4 * f + j) for f in range(5) for j in range(4)
)
HAND_EDGE_COLORS: tuple[Color, ...] = tuple(
    # round half to even, as OpenCV rounds the float colours the DWPose code passes
    tuple(round(c * 255) for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0))  # type: ignore[misc]
    for i in range(len(HAND_EDGES))
)
HAND_POINT_COLOR: Color = (0, 0, 255)  # RGB blue
HAND_LINE_THICKNESS = 2
FACE_POINT_COLOR: Color = (255, 255, 255)
FACE_POINT_RADIUS = 3

# Box colours per track id (RGB), cycled; untracked boxes use MMPose's green
_TRACK_PALETTE: tuple[Color, ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40),
    (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip
_UNTRACKED_BOX: Color = (0, 255, 0)


def bgr(rgb: Color) -> Color:
    """RGB triplet -> the BGR triplet OpenCV needs to paint that colour on a BGR image."""
    return (int(rgb[2]), int(rgb[1]), int(rgb[0]))


def track_color(track_id: int) -> Color:
    """RGB colour of a track id (stable across frames); ids < 0 get MMPose's box green."""
    return _UNTRACKED_BOX if track_id < 0 else _TRACK_PALETTE[track_id % len(_TRACK_PALETTE)]


def auto_sizes(image_shape: tuple[int, ...]) -> tuple[int, int]:
    """(radius, thickness) for an image of (H, W, ...): 3 and 2 at 640 px, growing with the longer side."""
    side = max(int(image_shape[0]), int(image_shape[1]))
    return max(2, round(side / 200)), max(1, round(side / 400))


def _visible(points: np.ndarray, scores: np.ndarray, kpt_thr: float, shape: tuple[int, ...]) -> np.ndarray:
    """(K,) bool: score reaches the threshold and the point lies inside the image (finite coordinates)."""
    h, w = shape[:2]
    x, y = points[:, 0], points[:, 1]
    finite = np.isfinite(x) & np.isfinite(y)
    return finite & (scores >= kpt_thr) & (x >= 0) & (y >= 0) & (x < w) & (y < h)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(p[0]), int(p[1])


def draw_mmpose(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    layout: str,
    kpt_thr: float = 0.3,
    radius: int | None = None,
    thickness: int | None = None,
    include_face: bool = True,
    include_hands: bool = True,
) -> np.ndarray:
    """Draw (N, K, 2) keypoints with (N, K) scores in MMPose colours on ``image`` (BGR, modified in place).

    ``include_face`` / ``include_hands`` leave out the whole-body parts named ``face`` / ``lefthand`` /
    ``righthand`` of the layout."""
    lay = get_layout(layout)
    auto_r, auto_t = auto_sizes(image.shape)
    radius = auto_r if radius is None else radius
    thickness = auto_t if thickness is None else thickness
    keep = np.ones(lay.num_keypoints, dtype=bool)
    for part, on in (("face", include_face), ("lefthand", include_hands), ("righthand", include_hands)):
        if not on and part in lay.parts:
            keep[lay.parts[part]] = False
    point_colors = [bgr(c) for c in lay.keypoint_colors]
    link_colors = [bgr(c) for c in lay.link_colors]
    for kpts, sc in zip(np.asarray(keypoints), np.asarray(scores)):
        vis = _visible(kpts, sc, kpt_thr, image.shape) & keep
        for (a, b), color in zip(lay.links, link_colors):
            if vis[a] and vis[b]:
                cv2.line(image, _pt(kpts[a]), _pt(kpts[b]), color, thickness, cv2.LINE_AA)
        for k in np.flatnonzero(vis):
            cv2.circle(image, _pt(kpts[k]), radius, point_colors[k], -1, cv2.LINE_AA)
    return image


def draw_openpose(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    layout: str,
    kpt_thr: float = 0.3,
    include_body: bool = True,
    include_face: bool = True,
    include_hands: bool = True,
) -> np.ndarray:
    """Draw people in the OpenPose / ControlNet style on ``image`` (BGR, modified in place).

    ``keypoints`` (N, K, 2) and ``scores`` (N, K) are in ``layout``; the body is converted to OpenPose-18 (any
    layout mappable to COCO), face and hands are drawn for layouts mappable to COCO-WholeBody. Order as in the
    DWPose annotator: all limbs (dimmed), all body points, then hands, then faces.
    """
    keypoints, scores = np.asarray(keypoints), np.asarray(scores)
    if include_body:
        try:
            body_k, body_s = openpose18(keypoints, scores, layout)
        except KeyError as e:
            raise ValueError(f"the OpenPose skeleton needs a layout with COCO body points; {e.args[0]}") from None
        vis = [_visible(k, s, kpt_thr, image.shape) for k, s in zip(body_k, body_s)]
        limbs = np.zeros_like(image)
        for li in range(OPENPOSE_DRAWN_LIMBS):
            a, b = OPENPOSE_LIMBS[li]
            for k, v in zip(body_k, vis):
                if not (v[a] and v[b]):
                    continue
                (x0, y0), (x1, y1) = k[a], k[b]
                length = math.hypot(float(x1 - x0), float(y1 - y0))
                angle = math.degrees(math.atan2(float(y0 - y1), float(x0 - x1)))
                center = (int((x0 + x1) / 2), int((y0 + y1) / 2))
                poly = cv2.ellipse2Poly(center, (int(length / 2), OPENPOSE_STICK_HALF_WIDTH), int(angle), 0, 360, 1)
                cv2.fillConvexPoly(limbs, poly, bgr(OPENPOSE_COLORS[li]))
        drawn = limbs.any(axis=2)
        image[drawn] = (limbs[drawn] * OPENPOSE_LIMB_DIM).astype(np.uint8)
        for j in range(18):
            for k, v in zip(body_k, vis):
                if v[j]:
                    cv2.circle(image, _pt(k[j]), OPENPOSE_POINT_RADIUS, bgr(OPENPOSE_COLORS[j]), -1)
    wb = to_wholebody(keypoints, scores, layout) if (include_face or include_hands) else None
    if wb is None:
        return image
    wk, ws = wb
    if include_hands:
        for part in (WB_LHAND, WB_RHAND):
            for k, s in zip(wk[:, part], ws[:, part]):
                v = _visible(k, s, kpt_thr, image.shape)
                for (a, b), color in zip(HAND_EDGES, HAND_EDGE_COLORS):
                    if v[a] and v[b]:
                        cv2.line(image, _pt(k[a]), _pt(k[b]), bgr(color), HAND_LINE_THICKNESS)
                for j in np.flatnonzero(v):
                    cv2.circle(image, _pt(k[j]), OPENPOSE_POINT_RADIUS, bgr(HAND_POINT_COLOR), -1)
    if include_face:
        for k, s in zip(wk[:, WB_FACE], ws[:, WB_FACE]):
            for j in np.flatnonzero(_visible(k, s, kpt_thr, image.shape)):
                cv2.circle(image, _pt(k[j]), FACE_POINT_RADIUS, bgr(FACE_POINT_COLOR), -1)
    return image


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    track_ids: np.ndarray | None = None,
    box_scores: np.ndarray | None = None,
    thickness: int | None = None,
    draw_labels: bool = True,
) -> np.ndarray:
    """Draw (N, 4) xyxy boxes on ``image`` (BGR, modified in place), coloured by track id, labelled
    ``id <track id>`` (and the box score when given)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    track_ids = np.full(n, -1) if track_ids is None else np.asarray(track_ids).reshape(-1)
    thickness = auto_sizes(image.shape)[1] if thickness is None else thickness
    font_scale = max(0.35, thickness * 0.4)
    for i in range(n):
        if not np.all(np.isfinite(boxes[i])):
            continue
        color = bgr(track_color(int(track_ids[i])))
        x1, y1, x2, y2 = np.rint(boxes[i]).astype(int).tolist()
        p1, p2 = (x1, y1), (x2, y2)
        cv2.rectangle(image, p1, p2, color, thickness, cv2.LINE_AA)
        if not draw_labels:
            continue
        parts = []
        if track_ids[i] >= 0:
            parts.append(f"id {int(track_ids[i])}")
        if box_scores is not None:
            parts.append(f"{float(box_scores[i]):.2f}")
        if not parts:
            continue
        label = " ".join(parts)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(p1[1] - th - base - 2, 0)
        cv2.rectangle(image, (p1[0], top), (p1[0] + tw + 2, top + th + base + 2), color, -1)
        # dark text on light colours, light text on dark ones
        text_color = (0, 0, 0) if sum(color) > 382 else (255, 255, 255)
        cv2.putText(
            image, label, (p1[0] + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, text_color, 1, cv2.LINE_AA
        )
    return image


def draw_result(
    image: np.ndarray,
    result: PoseResult,
    kpt_thr: float = 0.3,
    skeleton: str = "mmpose",
    black_background: bool = False,
    show_boxes: bool | None = None,
    show_track_ids: bool | None = None,
    include_face: bool = True,
    include_hands: bool = True,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw a :class:`PoseResult` on a copy of ``image`` (or on a black canvas of its size) and return it."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 BGR image, got shape {image.shape} dtype {image.dtype}")
    canvas = np.zeros_like(image) if black_background else image.copy()
    if skeleton == "mmpose":
        draw_mmpose(
            canvas, result.keypoints, result.scores, result.layout, kpt_thr, radius, thickness,
            include_face=include_face, include_hands=include_hands,
        )  # fmt: skip
    elif skeleton == "openpose":
        draw_openpose(
            canvas, result.keypoints, result.scores, result.layout, kpt_thr,
            include_face=include_face, include_hands=include_hands,
        )  # fmt: skip
    else:
        raise ValueError(f"unknown skeleton style {skeleton!r}; expected 'mmpose' or 'openpose'")
    # ControlNet conditioning images must hold the skeleton only: no boxes, no labels unless asked for
    if show_boxes is None:
        show_boxes = skeleton == "mmpose"
    if show_track_ids is None:
        show_track_ids = skeleton == "mmpose"
    if show_boxes:
        draw_boxes(canvas, result.boxes, result.track_ids if show_track_ids else None, thickness=thickness)
    elif show_track_ids and (result.track_ids >= 0).any():
        _draw_id_labels(canvas, result)
    return canvas


def _draw_id_labels(image: np.ndarray, result: PoseResult) -> None:
    """Track ids written at the top-left of each box, without the box."""
    scale = max(0.35, auto_sizes(image.shape)[1] * 0.4)
    for box, tid in zip(result.boxes, result.track_ids):
        if tid < 0 or not np.all(np.isfinite(box)):
            continue
        org = (int(box[0]), max(int(box[1]) - 4, 10))
        cv2.putText(image, f"id {int(tid)}", org, cv2.FONT_HERSHEY_SIMPLEX, scale, bgr(track_color(int(tid))), 1)
