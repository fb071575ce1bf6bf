"""Drawing: MMPose colours on BGR images, the OpenPose / ControlNet style pixel by pixel, boxes and track ids."""

from __future__ import annotations

import numpy as np
import pytest

from posedistill.infer import draw
from posedistill.infer.results import PoseResult
from posedistill.layouts import get_layout


def _person(layout: str, points: dict[int, tuple[float, float]], score: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    k = get_layout(layout).num_keypoints
    kpts = np.zeros((1, k, 2), np.float32)
    scores = np.zeros((1, k), np.float32)
    for i, xy in points.items():
        kpts[0, i] = xy
        scores[0, i] = score
    return kpts, scores


def _px(img: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in img[y, x])


def test_bgr_reverses_rgb() -> None:
    assert draw.bgr((255, 128, 0)) == (0, 128, 255)


def test_auto_sizes_grow_with_the_image() -> None:
    assert draw.auto_sizes((480, 640)) == (3, 2)
    assert draw.auto_sizes((1080, 1920)) == (10, 5)
    assert draw.auto_sizes((48, 64)) == (2, 1)


def test_mmpose_style_colours_match_mmpose_rgb() -> None:
    # right shoulder (6) -> right elbow (8): MMPose's orange (255, 128, 0) RGB; nose: blue (51, 153, 255) RGB
    kpts, scores = _person("coco", {6: (50, 40), 8: (50, 120), 0: (150, 30)})
    img = np.zeros((160, 200, 3), np.uint8)
    draw.draw_mmpose(img, kpts, scores, "coco", kpt_thr=0.3, radius=4, thickness=3)
    assert _px(img, 50, 80) == (0, 128, 255)  # link midpoint, BGR of RGB orange
    assert _px(img, 50, 40) == (0, 128, 255)  # right-side point
    assert _px(img, 150, 30) == (255, 153, 51)  # head point, BGR of RGB (51, 153, 255)
    assert _px(img, 100, 100) == (0, 0, 0)


def test_mmpose_style_threshold_and_out_of_image_points() -> None:
    kpts, scores = _person("coco", {6: (50, 40), 8: (50, 120)})
    scores[0, 8] = 0.2
    img = np.zeros((160, 200, 3), np.uint8)
    draw.draw_mmpose(img, kpts, scores, "coco", kpt_thr=0.3, radius=4, thickness=3)
    assert _px(img, 50, 80) == (0, 0, 0) and _px(img, 50, 120) == (0, 0, 0)  # low point: no link, no point
    assert _px(img, 50, 40) != (0, 0, 0)
    img = np.zeros((160, 200, 3), np.uint8)
    draw.draw_mmpose(img, kpts, scores, "coco", kpt_thr=0.1, radius=4, thickness=3)
    assert _px(img, 50, 80) == (0, 128, 255)
    kpts[0, 8] = (500, -20)  # outside: skipped, no error
    img = np.zeros((160, 200, 3), np.uint8)
    draw.draw_mmpose(img, kpts, scores, "coco", kpt_thr=0.1, radius=4, thickness=3)
    assert _px(img, 50, 80) == (0, 0, 0)


def test_mmpose_style_can_leave_out_face_and_hands() -> None:
    kpts, scores = _person("coco_wholebody", {30: (20, 20), 91: (100, 100), 92: (140, 100)})
    img = np.zeros((160, 200, 3), np.uint8)
    draw.draw_mmpose(img, kpts, scores, "coco_wholebody", radius=3, thickness=2)
    assert _px(img, 20, 20) == (255, 255, 255) and _px(img, 120, 100) != (0, 0, 0)
    img = np.zeros((160, 200, 3), np.uint8)
    draw.draw_mmpose(
        img, kpts, scores, "coco_wholebody", radius=3, thickness=2, include_face=False, include_hands=False
    )
    assert img.max() == 0


def test_openpose_style_limbs_dimmed_points_full() -> None:
    # COCO right shoulder (6) and right elbow (8) = OpenPose points 2 and 3, limb (2, 3) = limb index 2
    kpts, scores = _person("coco", {6: (60, 50), 8: (60, 110)})
    img = np.zeros((160, 200, 3), np.uint8)
    draw.draw_openpose(img, kpts, scores, "coco", kpt_thr=0.3)
    limb_rgb = draw.OPENPOSE_COLORS[2]
    dimmed = tuple(int(c * 0.6) for c in limb_rgb)
    assert _px(img, 60, 80) == draw.bgr(dimmed)  # (153, 102, 0) RGB
    assert _px(img, 63, 80) == draw.bgr(dimmed)  # inside the half-width-4 ellipse
    assert _px(img, 66, 80) == (0, 0, 0)  # outside it
    assert _px(img, 60, 50) == draw.bgr(draw.OPENPOSE_COLORS[2])  # point 2 at full colour
    assert _px(img, 60, 110) == draw.bgr(draw.OPENPOSE_COLORS[3])
    assert _px(img, 64, 50) == draw.bgr(draw.OPENPOSE_COLORS[2]) and _px(img, 65, 50) != _px(img, 64, 50)  # radius 4


def test_openpose_style_draws_only_the_first_17_limbs() -> None:
    # right shoulder + right ear: limb 17 (shoulder-ear) exists in the list but the DWPose drawer skips it
    kpts, scores = _person("coco", {6: (60, 50), 4: (60, 10)})
    img = np.zeros((160, 200, 3), np.uint8)
    draw.draw_openpose(img, kpts, scores, "coco")
    assert _px(img, 60, 30) == (0, 0, 0)
    assert _px(img, 60, 10) == draw.bgr(draw.OPENPOSE_COLORS[16])  # OpenPose point 16 = right ear


def test_openpose_style_on_an_image_replaces_limb_pixels() -> None:
    kpts, scores = _person("coco", {6: (60, 50), 8: (60, 110)})
    img = np.full((160, 200, 3), (10, 20, 30), np.uint8)
    draw.draw_openpose(img, kpts, scores, "coco")
    assert _px(img, 60, 80) == draw.bgr(tuple(int(c * 0.6) for c in draw.OPENPOSE_COLORS[2]))
    assert _px(img, 150, 150) == (10, 20, 30)  # the background is not dimmed


def test_openpose_style_hands_and_face() -> None:
    kpts, scores = _person("coco_wholebody", {91: (100, 100), 92: (140, 100), 23: (30, 150)})
    img = np.zeros((160, 200, 3), np.uint8)
    draw.draw_openpose(img, kpts, scores, "coco_wholebody")
    assert draw.HAND_EDGE_COLORS[0] == (255, 0, 0)  # the HSV wheel starts at red
    assert _px(img, 120, 100) == draw.bgr(draw.HAND_EDGE_COLORS[0])
    assert _px(img, 100, 100) == draw.bgr(draw.HAND_POINT_COLOR)  # blue points: (255, 0, 0) in BGR
    assert _px(img, 100, 100) == (255, 0, 0)
    assert _px(img, 30, 150) == (255, 255, 255)
    assert len(draw.HAND_EDGES) == 20 and draw.HAND_EDGES[4] == (0, 5) and draw.HAND_EDGES[19] == (19, 20)
    img = np.zeros((160, 200, 3), np.uint8)
    draw.draw_openpose(img, kpts, scores, "coco_wholebody", include_face=False, include_hands=False)
    assert img.max() == 0


def test_hand_edge_colours_follow_the_hsv_wheel() -> None:
    import colorsys

    for i, c in enumerate(draw.HAND_EDGE_COLORS):
        ref = np.asarray(colorsys.hsv_to_rgb(i / 20, 1.0, 1.0)) * 255
        assert np.abs(np.asarray(c) - ref).max() <= 0.5


def test_boxes_and_track_ids() -> None:
    img = np.zeros((120, 160, 3), np.uint8)
    draw.draw_boxes(img, np.array([[20, 30, 100, 110]]), track_ids=np.array([3]), thickness=2)
    assert _px(img, 60, 110) == draw.bgr(draw.track_color(3))  # bottom edge
    assert img[10:30, 20:60].any()  # the "id 3" label above the box
    assert draw.track_color(-1) == (0, 255, 0)
    assert draw.track_color(3) != draw.track_color(4)


def test_draw_result_styles_and_validation() -> None:
    kpts, scores = _person("coco", {6: (60, 50), 8: (60, 100)})
    r = PoseResult(kpts, scores, np.array([[40, 30, 90, 110]]), np.array([0.9]), np.array([2]), "coco", (120, 160))
    img = np.zeros((120, 160, 3), np.uint8)
    mm = draw.draw_result(img, r, thickness=2)
    assert _px(mm, 65, 110) == draw.bgr(draw.track_color(2))  # box drawn by default in the MMPose style
    op = draw.draw_result(img, r, skeleton="openpose")
    assert _px(op, 65, 110) == (0, 0, 0)  # no box in the OpenPose style
    assert not op[5:30, 40:90].any()  # ... and no id label: ControlNet inputs hold the skeleton only
    labelled = draw.draw_result(img, r, skeleton="openpose", show_track_ids=True)
    assert labelled[5:30, 40:90].any()
    with pytest.raises(ValueError, match="uint8"):
        draw.draw_result(np.zeros((10, 10), np.uint8), r)
