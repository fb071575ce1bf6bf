"""Heatmaps → SimCC soft targets (posedistill.codecs.heatmap_to_simcc): hand-computed cases, the pixel ↔ bin
convention against both codecs' decoders, and the logits that DWPose's KDLoss turns back into the probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from posedistill.codecs import HeatmapCodec, SimCCCodec, heatmaps_to_simcc, simcc_logits
from posedistill.codecs.heatmap_to_simcc import heatmap_distributions, resampling_matrix

W, H = 192, 256  # student / teacher input (w, h); heatmaps 48 x 64 at stride 4, SimCC 384 / 512 bins


def test_delta_heatmap_becomes_a_triangle_centred_on_its_input_position():
    hm = np.zeros((1, 64, 48), np.float32)
    hm[0, 10, 7] = 5.0  # pixel (x 7, y 10) = input (28, 40) = bins (56, 80)
    px, py, valid = heatmaps_to_simcc(hm, (W, H))
    assert px.shape == (1, 384) and py.shape == (1, 512) and valid.tolist() == [True]
    # hat of half-width s·r = 8 bins, normalised: weights (8 − |j − 56|) / 64
    expect_x = np.zeros(384)
    for j in range(49, 64):
        expect_x[j] = (8 - abs(j - 56)) / 64
    np.testing.assert_allclose(px[0], expect_x, atol=1e-7)
    assert px[0, 56] == pytest.approx(0.125) and px[0, 52] == pytest.approx(4 / 64)
    assert py[0].argmax() == 80 and py[0, 80] == pytest.approx(0.125)
    np.testing.assert_allclose(px.sum(-1), 1.0, rtol=1e-6)


def test_separable_gaussian_marginals_by_hand():
    xs, ys = np.arange(48), np.arange(64)
    gx = np.exp(-((xs - 20.3) ** 2) / (2 * 2.0**2))
    gy = np.exp(-((ys - 31.6) ** 2) / (2 * 3.0**2))
    hm = (gy[:, None] * gx[None, :])[None] - 0.01  # a little negative background, clipped away
    dist, valid = heatmap_distributions(hm)
    assert valid.all()
    kept = np.maximum(hm[0], 0)
    np.testing.assert_allclose(dist[0].sum(0), kept.sum(0) / kept.sum(), rtol=1e-9)
    px, py, _ = heatmaps_to_simcc(hm, (W, H))
    mx, my = kept.sum(0) / kept.sum(), kept.sum(1) / kept.sum()
    # bins on heatmap nodes (j = 8i) read the marginal exactly; every interior hat sums to 8 bins
    np.testing.assert_allclose(px[0, 8 * xs[1:]], mx[1:] / 8, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(py[0, 8 * ys[1:]], my[1:] / 8, rtol=1e-5, atol=1e-9)
    # the mean position is kept: Σ p_j · j/r = Σ m_i · i·s
    assert (px[0] * np.arange(384) / 2).sum() == pytest.approx((mx * xs * 4).sum(), abs=1e-3)
    assert (py[0] * np.arange(512) / 2).sum() == pytest.approx((my * ys * 4).sum(), abs=1e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_decoding_the_simcc_gives_the_heatmaps_keypoint(seed):
    rng = np.random.default_rng(seed)
    # away from the borders, where the 3σ window of the Gaussian would be cut and its mean move
    kp = np.stack([rng.uniform(28, W - 28, 17), rng.uniform(28, H - 28, 17)], -1).astype(np.float32)
    hm_codec = HeatmapCodec((W, H), (48, 64), sigma=2.0, unbiased=True)
    hm = hm_codec.encode(kp)["heatmaps"]
    px, py, _ = heatmaps_to_simcc(hm, (W, H), split_ratio=2.0)
    simcc = SimCCCodec((W, H), sigma=(4.9, 5.66), split_ratio=2.0)
    # argmax: the SimCC peak is the heatmap's argmax pixel, exactly
    sk, _ = simcc.decode(px, py)
    flat = hm.reshape(17, -1).argmax(1)
    np.testing.assert_array_equal(sk, np.stack([flat % 48, flat // 48], -1) * 4.0)
    # expectation vs the heatmap's DARK decode (≈ the true point): within one bin (1/r = 0.5 px)
    dk, _ = hm_codec.decode(hm)
    mean = np.stack([(px * np.arange(384)).sum(-1), (py * np.arange(512)).sum(-1)], -1) / 2.0
    assert np.abs(mean - dk).max() < 0.5
    assert np.abs(dk - kp).max() < 0.1
    # the logits (the KD targets; log-probabilities, so negative: no decoder score) peak at the same bins
    np.testing.assert_array_equal(simcc_logits(px, 10.0).argmax(-1), px.argmax(-1))
    np.testing.assert_array_equal(simcc_logits(py, 10.0).argmax(-1), py.argmax(-1))


def test_logits_give_back_the_probabilities_under_kdloss_temperature():
    torch = pytest.importorskip("torch")
    hm = np.zeros((2, 3, 64, 48), np.float32)
    hm[:, :, 30:34, 20:23] = np.random.default_rng(0).random((2, 3, 4, 3))
    px, _, _ = heatmaps_to_simcc(hm, (W, H))
    beta = 10.0
    back = torch.softmax(beta * torch.from_numpy(simcc_logits(px, beta)), dim=-1).numpy()
    np.testing.assert_allclose(back, px, atol=1e-6)
    assert np.isfinite(simcc_logits(px, beta)).all()


def test_empty_maps_are_uniform_and_invalid_and_strides_are_configurable():
    hm = -np.ones((1, 2, 64, 48), np.float32)
    hm[0, 1, 5, 5] = 1.0
    px, py, valid = heatmaps_to_simcc(hm, (W, H))
    assert valid.tolist() == [[False, True]]
    np.testing.assert_allclose(px[0, 0], 1 / 384, rtol=1e-6)
    np.testing.assert_allclose(py[0, 0], 1 / 512, rtol=1e-6)
    # a 128x96 teacher distilled into a 192x256 student: pixel i sits at i·4·2 student pixels
    hm2 = np.zeros((1, 32, 24), np.float32)
    hm2[0, 10, 7] = 1.0
    px2, py2, _ = heatmaps_to_simcc(hm2, (W, H), stride=8.0)
    assert px2[0].argmax() == 7 * 8 * 2 and py2[0].argmax() == 10 * 8 * 2
    # UDP: stride (in − 1)/(hm − 1)
    px3, _, _ = heatmaps_to_simcc(hm[:, 1:], (W, H), udp=True)
    assert px3[0, 0].argmax() == round(5 * (W - 1) / 47 * 2)
    m = resampling_matrix(4, 16, 2.0, 2.0)
    np.testing.assert_allclose(m[1, 4], 1.0) and np.testing.assert_allclose(m[1, 6], 0.5)
