"""Top-down geometry (transforms.py) and the training augmentation (augment.py).

Expected values are written from MMPose 1.3.2's formulas (bbox_xywh2cs, _fix_aspect_ratio, get_warp_matrix,
get_udp_warp_matrix, RandomFlip, RandomHalfBody, RandomBBoxTransform, YOLOXHSVRandomAug), not from our code.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy.stats import truncnorm as scipy_truncnorm

from posedistill.data.augment import (
    AugConfig,
    augment_box,
    augment_crop,
    coarse_dropout,
    hsv_augment,
    new_sample,
    random_bbox_transform,
    random_blur,
    random_flip,
    random_half_body,
    random_median_blur,
    sample_rng,
    truncnorm,
)
from posedistill.data.transforms import (
    bbox_cs_to_xyxy,
    bbox_xywh_to_cs,
    bbox_xyxy_to_cs,
    crop_to_image,
    fix_aspect_ratio,
    get_udp_warp_matrix,
    get_warp_matrix,
    image_to_crop,
    topdown_affine,
    warp_image,
    warp_points,
)
from posedistill.layouts import get_layout

COCO = get_layout("coco")


# ------------------------------------------------------------------------------------------ centre / scale
def test_bbox_to_center_scale():
    c, s = bbox_xywh_to_cs(np.array([10.0, 20.0, 100.0, 200.0]))
    np.testing.assert_allclose(c, [60.0, 120.0])
    np.testing.assert_allclose(s, [125.0, 250.0])
    c, s = bbox_xywh_to_cs(np.array([[0, 0, 4, 8], [1, 2, 3, 4]], dtype=np.float32), padding=1.0)
    np.testing.assert_allclose(c, [[2, 4], [2.5, 4]])
    np.testing.assert_allclose(s, [[4, 8], [3, 4]])
    c, s = bbox_xyxy_to_cs(np.array([10.0, 20.0, 110.0, 220.0]), padding=1.25)
    np.testing.assert_allclose(c, [60.0, 120.0])
    np.testing.assert_allclose(s, [125.0, 250.0])
    np.testing.assert_allclose(bbox_cs_to_xyxy(c, s, padding=1.25), [10, 20, 110, 220])
    assert c.dtype == np.float32 and s.dtype == np.float32


def test_fix_aspect_ratio():
    ratio = 192 / 256
    # w > h·ratio: keep w, h = w / ratio
    np.testing.assert_allclose(fix_aspect_ratio([100.0, 100.0], ratio), [100.0, 100.0 / 0.75], rtol=1e-6)
    # w <= h·ratio: keep h, w = h·ratio
    np.testing.assert_allclose(fix_aspect_ratio([50.0, 200.0], ratio), [150.0, 200.0], rtol=1e-6)
    np.testing.assert_allclose(fix_aspect_ratio([[75.0, 100.0], [10.0, 1.0]], ratio), [[75, 100], [10, 10 / 0.75]])


# ------------------------------------------------------------------------------------------- warp matrices
def _plain_expected(center, scale, rot, size):
    """MMPose's 3-point warp is a similarity: crop = size/2 + (w/scale_w)·R(-rot)·(p - center)."""
    k = size[0] / scale[0]
    r = math.radians(rot)
    a = k * np.array([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]])
    t = np.array(size, dtype=np.float64) / 2 - a @ np.asarray(center, dtype=np.float64)
    return np.hstack([a, t[:, None]])


@pytest.mark.parametrize("rot", [0.0, 30.0, -75.0, 90.0, 180.0])
def test_warp_matrix_equals_formula(rot):
    center, scale, size = np.array([320.5, 211.25]), np.array([150.0, 200.0]), (192, 256)
    m = get_warp_matrix(center, scale, rot, size)
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m, _plain_expected(center, scale, rot, size), atol=1e-4)
    inv = get_warp_matrix(center, scale, rot, size, inv=True)
    np.testing.assert_allclose(inv, cv2.invertAffineTransform(m), atol=1e-4)


def test_warp_matrix_known_points():
    # scale = output size: a pure translation (+ rotation) with zoom 1
    m = get_warp_matrix([100.0, 100.0], [192.0, 256.0], 0.0, (192, 256))
    np.testing.assert_allclose(warp_points([[100.0, 100.0], [110.0, 130.0]], m), [[96, 128], [106, 158]], atol=1e-4)
    # rot 90: the image point half a box width right of the centre, (0, -96) turned by 90°, lands half an
    # output width above the output centre (MMPose's src_dir -> dst_dir pair)
    m = get_warp_matrix([100.0, 100.0], [192.0, 256.0], 90.0, (192, 256))
    np.testing.assert_allclose(warp_points([[196.0, 100.0]], m), [[96.0, 32.0]], atol=1e-4)
    # shift moves the source centre by shift · scale
    m = get_warp_matrix([100.0, 100.0], [192.0, 256.0], 0.0, (192, 256), shift=(0.1, -0.25))
    np.testing.assert_allclose(warp_points([[100 + 19.2, 100 - 64.0]], m), [[96, 128]], atol=1e-4)


@pytest.mark.parametrize("rot", [0.0, 45.0, -120.0])
def test_udp_warp_matrix_equals_formula(rot):
    center, scale, size = np.array([320.5, 211.25]), np.array([150.0, 200.0]), (192, 256)
    r = math.radians(rot)
    sx, sy = (size[0] - 1) / scale[0], (size[1] - 1) / scale[1]
    a = np.diag([sx, sy]) @ np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    t = (np.array(size) - 1) / 2 - a @ center
    m = get_udp_warp_matrix(center, scale, rot, size)
    assert m.dtype == np.float32
    np.testing.assert_allclose(m, np.hstack([a, t[:, None]]), rtol=1e-5, atol=1e-3)
    if rot == 0:  # the box corners land on the first and last pixel centres
        corners = warp_points([center - scale / 2, center + scale / 2], m)
        np.testing.assert_allclose(corners, [[0, 0], [191, 255]], atol=1e-3)


@pytest.mark.parametrize("udp", [False, True])
def test_crop_image_round_trip(udp):
    rng = np.random.default_rng(0)
    size = (192, 256)
    for _ in range(200):
        center = rng.uniform(-50, 900, 2)
        scale = fix_aspect_ratio(rng.uniform(20, 600, 2), size[0] / size[1])
        rot = float(rng.uniform(-180, 180)) if rng.random() < 0.7 else 0.0
        pts = rng.uniform(-100, 1000, (17, 2))
        for dtype in (np.float64, np.float32):  # float32 takes cv2.transform, MMPose's path
            p = pts.astype(dtype)
            back = crop_to_image(image_to_crop(p, center, scale, size, rot, udp), center, scale, size, udp, rot)
            assert np.abs(back - p).max() < 1e-3
        crop_pts = rng.uniform(-20, 280, (17, 2))
        again = image_to_crop(crop_to_image(crop_pts, center, scale, size, udp, rot), center, scale, size, rot, udp)
        assert np.abs(again - crop_pts).max() < 1e-3


def test_crop_to_image_is_mmpose_decode_formula():
    kp = np.array([[0.0, 0.0], [96.0, 128.0], [191.5, 10.0]])
    center, scale, size = np.array([300.0, 200.0]), np.array([150.0, 200.0]), np.array([192.0, 256.0])
    np.testing.assert_allclose(crop_to_image(kp, center, scale, (192, 256)), kp / size * scale + center - scale / 2)
    np.testing.assert_allclose(
        crop_to_image(kp, center, scale, (192, 256), udp=True), kp / (size - 1) * scale + center - scale / 2,
        rtol=1e-6,
    )  # fmt: skip
    # batched: (N, K, 2) points with (N, 2) boxes
    centers, scales = np.stack([center, center + 10]), np.stack([scale, scale * 2])
    out = crop_to_image(np.stack([kp, kp]), centers, scales, (192, 256))
    np.testing.assert_allclose(out[1], kp / size * scale * 2 + center + 10 - scale)


def test_warp_image_moves_a_dot():
    img = np.zeros((300, 400, 3), np.uint8)
    img[130, 110] = (255, 128, 7)
    m = get_warp_matrix([100.0, 120.0], [192.0, 256.0], 0.0, (192, 256))
    crop = warp_image(img, m, (192, 256))
    assert crop.shape == (256, 192, 3) and crop.dtype == np.uint8
    # translation by (96 - 100, 128 - 120): the dot lands at (106, 138), everything else is 0 (border included)
    assert tuple(crop[138, 106]) == (255, 128, 7)
    crop[138, 106] = 0
    assert not crop.any()


def test_topdown_affine_fixes_aspect_and_warps_keypoints():
    img = np.full((120, 160, 3), 200, np.uint8)
    kp = np.array([[80.0, 60.0], [10.0, 20.0]], np.float32)
    out = topdown_affine(img, kp, [80.0, 60.0], [100.0, 100.0], 0.0, (192, 256))
    np.testing.assert_allclose(out.scale, [100.0, 100.0 / 0.75], rtol=1e-6)
    np.testing.assert_allclose(out.keypoints[0], [96.0, 128.0], atol=1e-4)
    # float32 keypoints are transformed exactly as MMPose does (cv2.transform)
    np.testing.assert_array_equal(out.keypoints, cv2.transform(kp[None], out.matrix)[0])
    assert out.keypoints.dtype == np.float32
    assert out.image.shape == (256, 192, 3)
    # decoding with the returned (aspect-fixed) scale gives the image points back
    np.testing.assert_allclose(crop_to_image(out.keypoints, out.center, out.scale, (192, 256)), kp, atol=1e-3)


# ------------------------------------------------------------------------------------------- augmentation
def _person(k: int = 17, w: int = 64, h: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    kp = rng.uniform(5, [w - 5, h - 5], (k, 2)).astype(np.float32)
    vis = np.full(k, 2.0, np.float32)
    return img, kp, vis


def test_random_flip_mirrors_and_swaps():
    img, kp, vis = _person()
    vis[3] = 0
    weights = np.arange(17, dtype=np.float32)
    s = new_sample(img, kp, vis, np.array([10, 5, 30, 20.0]), COCO, weights=weights)
    random_flip(s, np.random.default_rng(0), prob=1.0)
    w = img.shape[1]
    np.testing.assert_array_equal(s["image"], img[:, ::-1])
    # left_shoulder (5) takes right_shoulder's (6) point, mirrored: x' = W - 1 - x
    np.testing.assert_allclose(s["keypoints"][5], [w - 1 - kp[6, 0], kp[6, 1]])
    np.testing.assert_allclose(s["keypoints"][:, 0], w - 1 - kp[list(COCO.flip_indices), 0])
    np.testing.assert_allclose(s["keypoints"][:, 1], kp[list(COCO.flip_indices), 1])
    assert s["visibility"][4] == 0 and s["visibility"][3] == 2  # ear 3 <-> 4
    np.testing.assert_array_equal(s["weights"], weights[list(COCO.flip_indices)])
    np.testing.assert_allclose(s["center"], [w - 1 - 25.0, 15.0])
    assert s["flip"] is True
    s2 = new_sample(img, kp, vis, np.array([10, 5, 30, 20.0]), COCO)
    random_flip(s2, np.random.default_rng(0), prob=0.0)
    assert s2["image"] is img and not s2["flip"]


def test_random_half_body_boxes_the_chosen_half():
    img, kp, vis = _person()
    s = new_sample(img, kp, vis, np.array([0, 0, 64, 48.0]), COCO)
    random_half_body(s, np.random.default_rng(0), prob=1.0, upper_prob=1.0)
    up = kp[:11]
    np.testing.assert_allclose(s["center"], up.mean(0), rtol=1e-6)
    np.testing.assert_allclose(s["scale"], (up.max(0) - up.min(0)) * 1.5, rtol=1e-6)
    s = new_sample(img, kp, vis, np.array([0, 0, 64, 48.0]), COCO)
    random_half_body(s, np.random.default_rng(0), prob=1.0, upper_prob=0.0)
    low = kp[11:]
    np.testing.assert_allclose(s["center"], low.mean(0), rtol=1e-6)
    np.testing.assert_allclose(s["scale"], (low.max(0) - low.min(0)) * 1.5, rtol=1e-6)
    # lower half below its minimum (2 of 3): the upper half is used even when the lower is preferred
    vis2 = vis.copy()
    vis2[13:] = 0
    s = new_sample(img, kp, vis2, np.array([0, 0, 64, 48.0]), COCO)
    random_half_body(s, np.random.default_rng(0), prob=1.0, upper_prob=0.0)
    np.testing.assert_allclose(s["center"], up.mean(0), rtol=1e-6)
    # only the labelled upper points count
    vis3 = vis.copy()
    vis3[[0, 1, 2]] = 0
    s = new_sample(img, kp, vis3, np.array([0, 0, 64, 48.0]), COCO)
    random_half_body(s, np.random.default_rng(0), prob=1.0, upper_prob=1.0)
    np.testing.assert_allclose(s["center"], kp[3:11].mean(0), rtol=1e-6)
    # fewer than 9 labelled keypoints: untouched
    vis4 = vis.copy()
    vis4[:9] = 0
    s = new_sample(img, kp, vis4, np.array([0, 0, 64, 48.0]), COCO)
    random_half_body(s, np.random.default_rng(0), prob=1.0)
    np.testing.assert_allclose(s["center"], [32, 24])


def test_truncnorm_matches_scipy_distribution():
    x = truncnorm(np.random.default_rng(0), 20000)
    assert x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1
    assert abs(x.mean()) < 0.02
    assert abs(x.std() - scipy_truncnorm.std(-1, 1)) < 0.01


def test_random_bbox_transform_ranges():
    img, kp, vis = _person()
    rots, factors, shifts = [], [], []
    for i in range(400):
        s = new_sample(img, kp, vis, np.array([0, 0, 40, 40.0]), COCO)
        random_bbox_transform(s, np.random.default_rng(i), shift_prob=1.0, rotate_prob=1.0)
        rots.append(s["rotation"])
        factors.append(s["scale"][0] / 50.0)
        shifts.append((s["center"] - 20.0) / 50.0)
    rots, factors, shifts = np.array(rots), np.array(factors), np.array(shifts)
    assert np.abs(rots).max() <= 80 and np.abs(rots).max() > 60
    assert factors.min() >= 0.6 - 1e-6 and factors.max() <= 1.4 + 1e-6 and abs(factors.mean() - 1.0) < 0.03
    assert np.abs(shifts).max() <= 0.16 + 1e-6 and np.abs(shifts).max() > 0.12
    # probabilities 0: nothing changes except the scale, which is jittered with scale_prob
    s = new_sample(img, kp, vis, np.array([0, 0, 40, 40.0]), COCO)
    random_bbox_transform(s, np.random.default_rng(0), shift_prob=0.0, scale_prob=0.0, rotate_prob=0.0)
    np.testing.assert_allclose(s["center"], [20, 20])
    np.testing.assert_allclose(s["scale"], [50, 50])
    assert s["rotation"] == 0.0


def test_hsv_augment_equals_mmdet_int16_arithmetic():
    img = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    for seed in range(8):
        out = hsv_augment(img, np.random.default_rng(seed))
        r = np.random.default_rng(seed)  # the same draws, MMDetection's way
        gains = r.uniform(-1, 1, 3) * [5, 30, 30]
        gains = (gains * r.integers(0, 2, 3)).astype(np.int16)
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + gains[0]) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] + gains[1], 0, 255)
        hsv[..., 2] = np.clip(hsv[..., 2] + gains[2], 0, 255)
        np.testing.assert_array_equal(out, cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR))


def test_blurs_and_dropout():
    img = np.random.default_rng(2).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    out = random_blur(img, np.random.default_rng(0), prob=1.0)
    assert any(np.array_equal(out, cv2.blur(img, (k, k))) for k in (3, 5, 7))
    out = random_median_blur(img, np.random.default_rng(0), prob=1.0)
    assert any(np.array_equal(out, cv2.medianBlur(img, k)) for k in (3, 5, 7))
    assert random_blur(img, np.random.default_rng(0), prob=0.0) is img
    for seed in range(20):
        white = np.full((256, 192, 3), 255, np.uint8)
        coarse_dropout(white, np.random.default_rng(seed))
        ys, xs = np.nonzero((white == 0).all(-1))
        hh, ww = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert len(ys) == hh * ww  # one filled rectangle
        assert int(256 * 0.2) <= hh <= int(256 * 0.4) and int(192 * 0.2) <= ww <= int(192 * 0.4)
        assert not ((white > 0) & (white < 255)).any()


def _pipeline(seed: int, epoch: int, index: int, cfg: AugConfig | None = None):
    cfg = cfg or AugConfig()
    img, kp, vis = _person(w=160, h=120, seed=3)
    rng = sample_rng(seed, epoch, index)
    s = augment_box(new_sample(img, kp, vis, np.array([30, 20, 80, 90.0]), COCO), cfg, rng)
    crop = topdown_affine(s["image"], s["keypoints"], s["center"], s["scale"], s["rotation"], (192, 256))
    return augment_crop(crop.image, cfg, rng), crop.keypoints


def test_augmentation_is_deterministic_per_seed():
    a_img, a_kp = _pipeline(0, 0, 5)
    b_img, b_kp = _pipeline(0, 0, 5)
    assert a_img.tobytes() == b_img.tobytes() and a_kp.tobytes() == b_kp.tobytes()
    for other in [(1, 0, 5), (0, 1, 5), (0, 0, 6)]:
        c_img, c_kp = _pipeline(*other)
        assert c_img.tobytes() != a_img.tobytes() and c_kp.tobytes() != a_kp.tobytes()


def test_stage2_config():
    s1, s2 = AugConfig(), AugConfig().stage2()
    assert (s1.shift_factor, s1.scale_range, s1.rotate_factor, s1.dropout_prob) == (0.16, (0.6, 1.4), 80.0, 1.0)
    assert (s2.shift_factor, s2.scale_range, s2.rotate_factor, s2.dropout_prob) == (0.0, (0.75, 1.25), 60.0, 0.5)
    assert (s2.flip_prob, s2.half_body_prob, s2.rotate_prob) == (0.5, 0.3, 0.6)
    # stage 2 never shifts the box
    img, kp, vis = _person()
    for i in range(50):
        s = new_sample(img, kp, vis, np.array([0, 0, 40, 40.0]), COCO)
        random_bbox_transform(s, np.random.default_rng(i), s2.shift_factor, 1.0, s2.scale_range)
        np.testing.assert_allclose(s["center"], [20, 20])
