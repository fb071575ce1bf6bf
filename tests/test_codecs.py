"""SimCC and heatmap codecs: mmpose reference labels, decode conventions, round trips, flips, config switch."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posedistill.codecs import (
    HeatmapCodec,
    SimCCCodec,
    build_codec,
    dark_blur_kernel_size,
    flip_heatmaps,
    flip_simcc,
    gaussian_blur,
)
from posedistill.layouts import COCO, COCO_WHOLEBODY
from tests.conftest import shared_path

RTM_256 = {"input_size": (192, 256), "sigma": (4.9, 5.66), "split_ratio": 2.0}


def _reference(name: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(shared_path("reference", "mmpose", name)))


# ---------------------------------------------------------------- SimCC encode


def test_simcc_encode_equals_mmpose_reference():
    ref = _reference("losses.safetensors")
    out = SimCCCodec(**RTM_256).encode(ref["encode_keypoints"], ref["encode_visible"])
    assert out["x_labels"].shape == (2, 133, 384) and out["x_labels"].dtype == np.float32
    assert out["y_labels"].shape == (2, 133, 512) and out["y_labels"].dtype == np.float32
    np.testing.assert_allclose(out["x_labels"], ref["encode_x_labels"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["y_labels"], ref["encode_y_labels"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(out["weights"], ref["encode_weights"])
    assert int((out["weights"] > 0).sum()) == 176  # 213 visible, 37 dropped by the ±3σ test


def _simcc_rows_by_formula(codec: SimCCCodec, kp: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-keypoint loop straight from the §3 description, as an independent check of the vectorised encoder."""
    wx, wy = codec.num_bins
    n, k = vis.shape
    tx, ty, w = np.zeros((n, k, wx), np.float32), np.zeros((n, k, wy), np.float32), np.zeros((n, k), np.float32)
    for i in range(n):
        for j in range(k):
            if vis[i, j] < 0.5:
                continue
            mx, my = (float(np.rint(v * codec.split_ratio)) for v in kp[i, j])
            sx, sy = codec.sigma
            if mx - 3 * sx >= wx or my - 3 * sy >= wy or mx + 3 * sx + 1 < 0 or my + 3 * sy + 1 < 0:
                continue
            tx[i, j] = np.exp(-((np.arange(wx) - mx) ** 2) / (2 * sx**2))
            ty[i, j] = np.exp(-((np.arange(wy) - my) ** 2) / (2 * sy**2))
            w[i, j] = min(vis[i, j], 1.0)
    return tx, ty, w


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), sigma=st.floats(1.0, 8.0), w=st.integers(8, 64), h=st.integers(8, 64))
def test_simcc_encode_matches_per_keypoint_formula(seed, sigma, w, h):
    rng = np.random.default_rng(seed)
    codec = SimCCCodec((w, h), (sigma, sigma * 1.2), split_ratio=2.0)
    kp = rng.uniform([-3 * sigma - 5, -3 * sigma - 5], [w + 3 * sigma + 5, h + 3 * sigma + 5], (3, 7, 2))
    vis = rng.choice([0.0, 1.0, 2.0], size=(3, 7))
    out = codec.encode(kp.astype(np.float32), vis)
    tx, ty, wt = _simcc_rows_by_formula(codec, kp.astype(np.float32), vis)
    np.testing.assert_allclose(out["x_labels"], tx, atol=1e-6)
    np.testing.assert_allclose(out["y_labels"], ty, atol=1e-6)
    np.testing.assert_array_equal(out["weights"], wt)


def test_simcc_encode_shapes_defaults_and_edge_cases():
    codec = SimCCCodec(**RTM_256)
    kp = np.array([[10.25, 20.0], [10.75, 20.0], [10.0, 300.0], [-40.0, 5.0], [191.9, 255.9]], np.float32)
    out = codec.encode(kp)  # (K, 2) in, visibility defaults to all ones
    assert out["x_labels"].shape == (5, 384) and out["y_labels"].shape == (5, 512) and out["weights"].shape == (5,)
    # round half to even: 20.5 → 20, 21.5 → 22
    assert out["x_labels"][0].argmax() == 20 and out["x_labels"][1].argmax() == 22
    assert out["x_labels"][0].max() == 1.0  # peak-1 labels
    # y = 300 → bin 600: window starts at 583 ≥ 512 → dropped; x = −40 → bin −80, window ends below 0 → dropped
    np.testing.assert_array_equal(out["weights"], [1, 1, 0, 0, 1])
    assert not out["x_labels"][2].any() and not out["y_labels"][3].any()
    # a (K, 2) call equals row 0 of the (1, K, 2) call; COCO v = 2 gives weight 1, not 2
    batch = codec.encode(kp[None], np.full((1, 5), 2.0))
    np.testing.assert_array_equal(batch["x_labels"][0], out["x_labels"])
    np.testing.assert_array_equal(batch["weights"][0], out["weights"])
    nan = codec.encode(np.array([[np.nan, 5.0], [np.inf, 5.0]], np.float32))  # non-finite points get no target
    np.testing.assert_array_equal(nan["weights"], [0, 0])
    assert not nan["x_labels"].any() and not nan["y_labels"].any()
    with pytest.raises(ValueError, match="visibility must have shape"):
        codec.encode(kp, np.ones(4))
    with pytest.raises(ValueError, match="keypoints must have shape"):
        codec.encode(np.zeros(4))


def test_simcc_normalize_and_label_smoothing():
    kp = np.array([[96.0, 128.0]], np.float32)
    norm = SimCCCodec((192, 256), 4.0, normalize=True).encode(kp)
    assert norm["x_labels"].sum() == pytest.approx(1.0, abs=1e-4)  # unit area
    eps = 0.1
    smooth = SimCCCodec((192, 256), 4.0, label_smoothing=eps).encode(kp)
    assert smooth["x_labels"].min() == pytest.approx(eps / 384, rel=1e-5)
    assert smooth["x_labels"].max() == pytest.approx(1 - eps + eps / 384, rel=1e-6)
    # unlabelled rows stay zero with smoothing
    assert not SimCCCodec((192, 256), 4.0, label_smoothing=eps).encode(kp, np.zeros(1))["x_labels"].any()
    with pytest.raises(ValueError, match="label_smoothing"):
        SimCCCodec((192, 256), 4.0, label_smoothing=1.0)
    with pytest.raises(ValueError, match="sigma"):
        SimCCCodec((192, 256), (1.0, 2.0, 3.0))


# ---------------------------------------------------------------- SimCC decode


@pytest.mark.parametrize("name", ["rtmpose-t_body", "rtmpose-t_wholebody"])
def test_simcc_decode_equals_mmpose_reference(name):
    ref = _reference(f"{name}.safetensors")
    codec = SimCCCodec(**RTM_256)
    for suffix in ("", "_tta"):
        kp, scores = codec.decode(ref[f"out.simcc_x{suffix}"], ref[f"out.simcc_y{suffix}"])
        np.testing.assert_array_equal(kp, ref[f"out.kpts{suffix}"])
        np.testing.assert_array_equal(scores, ref[f"out.scores{suffix}"])


def test_flip_test_average_reproduces_reference_tta_logits():
    ref = _reference("rtmpose-t_body.safetensors")
    flip = json.loads(shared_path("reference", "mmpose", "rtmpose-t_body.json").read_text())["flip_indices"]
    assert flip == list(COCO.flip_indices)
    # the stored flipped logits are already mapped back; mapping them again gives the raw flipped-input logits,
    # and mapping those back must land on the stored ones
    raw_x, raw_y = flip_simcc(ref["out.simcc_x_flip"], ref["out.simcc_y_flip"], flip)
    back_x, back_y = flip_simcc(raw_x, raw_y, flip)
    np.testing.assert_array_equal(back_x, ref["out.simcc_x_flip"])
    np.testing.assert_allclose(0.5 * (ref["out.simcc_x"] + back_x), ref["out.simcc_x_tta"], atol=1e-6)
    np.testing.assert_allclose(0.5 * (ref["out.simcc_y"] + back_y), ref["out.simcc_y_tta"], atol=1e-6)


def test_simcc_decode_score_conventions():
    codec = SimCCCodec((4, 3), 1.0)  # 8 x bins, 6 y bins
    x = np.full((2, 3, 8), -5.0, np.float32)
    y = np.full((2, 3, 6), -5.0, np.float32)
    x[0, 0, 3], y[0, 0, 5] = 2.0, 0.7  # score = min(2.0, 0.7)
    x[0, 1, 7], y[0, 1, 0] = 0.5, 3.0
    x[0, 2, 1], y[0, 2, 2] = 1.0, 0.0  # score exactly 0 → −1
    x[1, :, 2], y[1, :, 2] = -1.0, 4.0  # negative score → −1
    kp, scores = codec.decode(x, y)
    assert kp.shape == (2, 3, 2) and scores.shape == (2, 3) and kp.dtype == np.float32
    np.testing.assert_allclose(scores[0], [0.7, 0.5, 0.0])
    np.testing.assert_array_equal(kp[0, 0], [1.5, 2.5])  # bins / split ratio 2
    np.testing.assert_array_equal(kp[0, 1], [3.5, 0.0])
    np.testing.assert_array_equal(kp[0, 2], [-1, -1])
    np.testing.assert_array_equal(kp[1], -np.ones((3, 2)))
    np.testing.assert_array_equal(scores[1], [-1.0, -1.0, -1.0])
    # (K, W) input gives (K, 2) output
    kp1, s1 = codec.decode(x[0], y[0])
    np.testing.assert_array_equal(kp1, kp[0])
    np.testing.assert_array_equal(s1, scores[0])
    with pytest.raises(ValueError, match="equal N, K"):
        codec.decode(x, y[:1])


def test_simcc_round_trip_is_the_half_bin_quantisation():
    """Labels used as logits decode to round_half_even(2x)/2: within 0.25 px per axis, exact on the 0.5-px grid."""
    codec = SimCCCodec(**RTM_256)
    rng = np.random.default_rng(0)
    kp = rng.uniform([5, 5], [187, 251], (64, 133, 2)).astype(np.float32)
    enc = codec.encode(kp)
    dec, scores = codec.decode(enc["x_labels"], enc["y_labels"])
    np.testing.assert_array_equal(dec, np.rint(kp * 2) / 2)
    assert np.abs(dec - kp).max() <= 0.25 + 1e-6
    assert np.abs(dec - kp).mean() < 0.13  # uniform rounding error: 0.125 expected
    np.testing.assert_array_equal(scores, 1.0)
    grid = rng.integers(10, 370, (50, 2)) / 2.0  # points on the 0.5-px grid come back exactly
    enc = codec.encode(grid.astype(np.float32))
    np.testing.assert_array_equal(codec.decode(enc["x_labels"], enc["y_labels"])[0], grid)


# ---------------------------------------------------------------- flips


def test_flip_simcc_involution_and_manual_reindex():
    rng = np.random.default_rng(1)
    flip = COCO_WHOLEBODY.flip_indices
    x = rng.normal(size=(2, 133, 384)).astype(np.float32)
    y = rng.normal(size=(2, 133, 512)).astype(np.float32)
    fx, fy = flip_simcc(x, y, flip)
    for k in range(133):
        np.testing.assert_array_equal(fx[:, k], x[:, flip[k], ::-1])
        np.testing.assert_array_equal(fy[:, k], y[:, flip[k]])
    assert fx.flags["C_CONTIGUOUS"]
    bx, by = SimCCCodec.flip_simcc(fx, fy, flip)
    np.testing.assert_array_equal(bx, x)
    np.testing.assert_array_equal(by, y)
    # bin i ↔ Wx − 1 − i: a keypoint at x decodes at w − 0.5 − x after the flip (no shift)
    codec = SimCCCodec(**RTM_256)
    enc = codec.encode(np.array([[[30.0, 40.0]] * 17], np.float32))
    kp, _ = codec.decode(*flip_simcc(enc["x_labels"], enc["y_labels"], COCO.flip_indices))
    np.testing.assert_array_equal(kp[0, 0], [192 - 0.5 - 30.0, 40.0])
    with pytest.raises(ValueError, match="flip_indices"):
        flip_simcc(x, y, COCO.flip_indices)


def test_flip_simcc_and_heatmaps_accept_torch_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 17, 384)).astype(np.float32)
    y = rng.normal(size=(2, 17, 512)).astype(np.float32)
    tx, ty = flip_simcc(torch.from_numpy(x), torch.from_numpy(y), COCO.flip_indices)
    nx, ny = flip_simcc(x, y, COCO.flip_indices)
    assert isinstance(tx, torch.Tensor)
    np.testing.assert_array_equal(tx.numpy(), nx)
    np.testing.assert_array_equal(ty.numpy(), ny)
    hm = rng.normal(size=(2, 17, 8, 6)).astype(np.float32)
    for shift in (False, True):
        th = flip_heatmaps(torch.from_numpy(hm), COCO.flip_indices, shift=shift)
        np.testing.assert_array_equal(th.numpy(), flip_heatmaps(hm, COCO.flip_indices, shift=shift))


def test_flip_heatmaps():
    rng = np.random.default_rng(3)
    hm = rng.normal(size=(3, 17, 8, 6)).astype(np.float32)
    flip = COCO.flip_indices
    f = flip_heatmaps(hm, flip)
    for k in range(17):
        np.testing.assert_array_equal(f[:, k], hm[:, flip[k], :, ::-1])
    np.testing.assert_array_equal(flip_heatmaps(f, flip), hm)
    s = flip_heatmaps(hm, flip, shift=True)
    np.testing.assert_array_equal(s[..., 1:], f[..., :-1])
    np.testing.assert_array_equal(s[..., 0], f[..., 0])


# ---------------------------------------------------------------- heatmaps


def test_msra_encode_quantised_window_and_weights():
    codec = HeatmapCodec((192, 256), (48, 64), sigma=2.0)
    kp = np.array([[41.0, 82.0], [-30.0, 10.0], [-1.0, 10.0], [100.0, 100.0]], np.float32)
    out = codec.encode(kp, np.array([1, 1, 1, 0]))
    hm, w = out["heatmaps"], out["weights"]
    assert hm.shape == (4, 64, 48) and hm.dtype == np.float32
    # 41/4 = 10.25 → centre 10, 82/4 = 20.5 → centre trunc(21.0) = 21; peak exactly 1
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (21, 10) and hm[0].max() == 1.0
    ys, xs = np.nonzero(hm[0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (4, 16, 15, 27)  # |p − μ| ≤ 3σ = 6
    assert hm[0, 21, 16] == pytest.approx(np.exp(-36 / 8), rel=1e-6)
    # x = −7.5 heatmap px: centre trunc(−7.0) = −7, mmpose's exclusive right end −7 + 6 + 1 = 0 is not < 0, so the
    # keypoint keeps weight 1 although no pixel lies within 3σ of it (mmpose behaves the same)
    np.testing.assert_array_equal(w, [1, 1, 1, 0])
    assert not hm[1].any()
    # x = −0.25 → trunc(0.25) = 0: mmpose's truncation puts the peak on column 0
    assert np.unravel_index(hm[2].argmax(), hm[2].shape)[1] == 0
    assert not hm[3].any()  # unlabelled
    for variant in (
        codec,
        HeatmapCodec((192, 256), (48, 64), 2.0, unbiased=True),
        HeatmapCodec((192, 256), (48, 64), 2.0, udp=True),
    ):
        far = variant.encode(np.array([[-40.0, 10.0], [10.0, 400.0], [np.nan, 10.0]], np.float32))
        np.testing.assert_array_equal(far["weights"], [0, 0, 0])
        assert not far["heatmaps"].any()


def test_unbiased_and_udp_encode_centres():
    kp = np.array([[[41.0, 82.0]]], np.float32)
    dark = HeatmapCodec((192, 256), (48, 64), 2.0, unbiased=True).encode(kp)["heatmaps"][0, 0]
    yy, xx = np.mgrid[0:64, 0:48]
    np.testing.assert_allclose(dark, np.exp(-((xx - 10.25) ** 2 + (yy - 20.5) ** 2) / 8), atol=1e-6)  # whole map
    udp = HeatmapCodec((192, 256), (48, 64), 2.0, udp=True).encode(kp)["heatmaps"][0, 0]
    cx, cy = 41.0 * 47 / 191, 82.0 * 63 / 255  # stride (input − 1)/(heatmap − 1)
    mx, my = np.trunc(cx + 0.5), np.trunc(cy + 0.5)
    inside = (np.abs(xx - mx) <= 6) & (np.abs(yy - my) <= 6)
    expect = np.where(inside, np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 8), 0.0)
    np.testing.assert_allclose(udp, expect, atol=1e-6)


def test_gaussian_blur_equals_opencv_on_zero_padded_map():
    rng = np.random.default_rng(4)
    hm = rng.random((3, 20, 15)).astype(np.float32)
    for ks in (3, 11):
        b = ks // 2
        expect = []
        for m in hm:
            padded = cv2.GaussianBlur(np.pad(m, b), (ks, ks), 0)[b:-b, b:-b]
            expect.append(padded * m.max() / padded.max())
        np.testing.assert_allclose(gaussian_blur(hm, ks), np.stack(expect), rtol=1e-5, atol=1e-6)
    assert [dark_blur_kernel_size(s) for s in (1.5, 2.0, 3.0)] == [7, 11, 17]


def _interior(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([24, 32], [168, 224], (n, 17, 2)).astype(np.float32)


@pytest.mark.parametrize("udp", [False, True], ids=["msra-dark", "udp"])
def test_heatmap_round_trip_with_dark(udp):
    kp = _interior(40, seed=5)
    dark = HeatmapCodec((192, 256), (48, 64), 2.0, unbiased=True, udp=udp)
    hm = dark.encode(kp)["heatmaps"]
    dec, scores = dark.decode(hm)
    err_dark = np.linalg.norm(dec - kp, axis=-1)
    assert dec.shape == kp.shape and scores.shape == kp.shape[:2]
    assert err_dark.max() < 0.25
    # the same heatmaps decoded without DARK (argmax + quarter offset) are far worse
    plain = HeatmapCodec((192, 256), (48, 64), 2.0, unbiased=False, udp=udp)
    err_plain = np.linalg.norm(plain.decode(hm)[0] - kp, axis=-1)
    assert err_dark.mean() < 0.1 * err_plain.mean()
    assert err_plain.max() > 1.0


def test_msra_round_trip_is_quantised_without_dark():
    codec = HeatmapCodec((192, 256), (48, 64), 2.0)
    kp = _interior(20, seed=6)
    dec, scores = codec.decode(codec.encode(kp)["heatmaps"])
    np.testing.assert_array_equal(scores, 1.0)
    # the peak sits on the quantised centre and the symmetric Gaussian gives no quarter-pixel move
    np.testing.assert_allclose(dec, np.trunc(kp / 4 + 0.5) * 4)


def _dark_by_formula(locs: np.ndarray, logh: np.ndarray) -> np.ndarray:
    """DARK offset for one point at a time (mmpose's stencil), to check the vectorised version."""
    out = locs.copy()
    for m, (x, y) in enumerate(locs.astype(int)):
        h = logh[m]
        if not (1 < x < h.shape[1] - 2 and 1 < y < h.shape[0] - 2):
            continue
        g = np.array([h[y, x + 1] - h[y, x - 1], h[y + 1, x] - h[y - 1, x]]) / 2
        dxx = (h[y, x + 2] - 2 * h[y, x] + h[y, x - 2]) / 4
        dyy = (h[y + 2, x] - 2 * h[y, x] + h[y - 2, x]) / 4
        dxy = (h[y + 1, x + 1] - h[y - 1, x + 1] - h[y + 1, x - 1] + h[y - 1, x - 1]) / 4
        hess = np.array([[dxx, dxy], [dxy, dyy]])
        if np.linalg.det(hess) != 0:
            out[m] -= np.linalg.solve(hess, g)
    return out


def _dark_udp_by_formula(locs: np.ndarray, logh: np.ndarray) -> np.ndarray:
    out = locs.copy()
    pad = np.pad(logh, ((0, 0), (1, 1), (1, 1)), mode="edge")
    for m, (x, y) in enumerate(locs.astype(int) + 1):
        h = pad[m]
        g = np.array([h[y, x + 1] - h[y, x - 1], h[y + 1, x] - h[y - 1, x]]) / 2
        dxx = h[y, x + 1] - 2 * h[y, x] + h[y, x - 1]
        dyy = h[y + 1, x] - 2 * h[y, x] + h[y - 1, x]
        dxy = h[y + 1, x + 1] - h[y, x + 1] - h[y + 1, x] + 2 * h[y, x] - h[y, x - 1] - h[y - 1, x] + h[y - 1, x - 1]
        hess = np.array([[dxx, dxy / 2], [dxy / 2, dyy]]) + np.finfo(np.float32).eps * np.eye(2)
        out[m] -= np.linalg.inv(hess) @ g
    return out


@pytest.mark.parametrize("udp", [False, True], ids=["msra-dark", "udp"])
def test_dark_refinement_matches_per_point_formula(udp):
    rng = np.random.default_rng(7)
    codec = HeatmapCodec((48, 40), (12, 10), 1.5, unbiased=True, udp=udp)
    kp = rng.uniform(0, [47, 39], (1, 30, 2)).astype(np.float32)  # includes border points
    hm = codec.encode(kp)["heatmaps"] + rng.uniform(0, 0.05, (1, 30, 10, 12)).astype(np.float32)
    dec, _ = codec.decode(hm)
    flat = hm[0]
    idx = flat.reshape(30, -1).argmax(axis=1)
    locs = np.stack([idx % 12, idx // 12], axis=-1).astype(np.float64)
    blurred = gaussian_blur(flat, codec.blur_kernel_size)
    if udp:
        expect = _dark_udp_by_formula(locs, np.log(np.clip(blurred, 1e-3, 50)).astype(np.float64))
    else:
        expect = _dark_by_formula(locs, np.log(np.maximum(blurred, 1e-10)).astype(np.float64))
    np.testing.assert_allclose(dec[0], expect * codec.stride, rtol=1e-5, atol=1e-4)


def test_quarter_offset_refinement_and_heatmap_score_conventions():
    codec = HeatmapCodec((32, 32), (8, 8), 1.0)
    hm = np.zeros((4, 8, 8), np.float32)
    hm[0, 4, 4], hm[0, 4, 5], hm[0, 3, 4] = 1.0, 0.6, 0.2  # → (4.25, 3.75)
    hm[1, 4, 1], hm[1, 4, 2] = 1.0, 0.5  # x = 1 is outside mmpose's 1 < x bound: no x move
    hm[2] = -0.5  # non-positive maximum → −1
    hm[3, 6, 6] = 0.8
    kp, scores = codec.decode(hm)
    np.testing.assert_allclose(kp[0], np.array([4.25, 3.75]) * 4)
    np.testing.assert_allclose(kp[1], np.array([1.0, 4.0]) * 4)
    np.testing.assert_array_equal(kp[2], [-1, -1])
    np.testing.assert_allclose(kp[3], [24.0, 24.0])
    np.testing.assert_allclose(scores, [1.0, 1.0, -0.5, 0.8])
    with pytest.raises(ValueError, match="heatmaps must be"):
        codec.decode(np.zeros((4, 8, 9), np.float32))


# ---------------------------------------------------------------- config and import hygiene


def test_build_codec_switch():
    simcc = build_codec({"type": "simcc", "input_size": [192, 256], "sigma": [4.9, 5.66], "split_ratio": 2.0})
    assert isinstance(simcc, SimCCCodec) and simcc.num_bins == (384, 512) and simcc.input_size == (192, 256)
    hm = build_codec({"type": "heatmap", "input_size": [192, 256], "heatmap_size": [48, 64], "udp": True})
    assert isinstance(hm, HeatmapCodec) and hm.udp and hm.heatmap_size == (48, 64)
    np.testing.assert_allclose(hm.stride, [191 / 47, 255 / 63])
    with pytest.raises(ValueError, match="type"):
        build_codec({"type": "regression", "input_size": [192, 256]})
    with pytest.raises(ValueError, match="bad simcc codec config"):
        build_codec({"type": "simcc", "input_size": [192, 256], "sigma": 6.0, "bins": 3})


@pytest.mark.stress
def test_codecs_do_not_import_torch():
    code = "import sys, posedistill.codecs; assert 'torch' not in sys.modules, 'codecs imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)  # generous: a loaded machine


def test_simcc_subpixel_round_trip_with_exact_centres_and_refinement():
    """quantize=False + refine=True: encode → decode returns interior points within 0.1 px at ratio 2."""
    codec = SimCCCodec(input_size=(192, 256), sigma=(4.9, 5.66), split_ratio=2.0, quantize=False)
    rng = np.random.default_rng(3)
    kp = np.stack([rng.uniform(10, 182, (4, 133)), rng.uniform(10, 246, (4, 133))], -1).astype(np.float32)
    t = codec.encode(kp, np.ones((4, 133)))
    out, scores = codec.decode(t["x_labels"], t["y_labels"], refine=True)
    err = np.linalg.norm(out - kp, axis=-1)
    assert err.max() < 0.1, err.max()
    plain, _ = codec.decode(t["x_labels"], t["y_labels"])  # argmax alone is limited by the 0.5 px bins
    assert np.linalg.norm(plain - kp, axis=-1).max() > 0.2
    assert (scores > 0).all()
