"""PCK / PCKh / AUC / EPE against hand-computed cases, and the PCK paths of evaluate_predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from posedistill.data.instance import make_instance
from posedistill.eval import auc, bbox_norm, epe, evaluate_predictions, head_norm, mpii_pckh, pck, torso_norm
from posedistill.eval.evaluate import choose_metric
from posedistill.eval.pck import normalized_distances
from posedistill.layouts import get_layout


def offsets(dist: np.ndarray) -> np.ndarray:
    """(N, K) distances -> (N, K, 2) displacements of that length (3-4-5 direction)."""
    return np.stack([0.6 * dist, 0.8 * dist], axis=-1)


def test_pck_hand_computed() -> None:
    gt = np.zeros((3, 4, 2))
    # normalised distances: instance 0 with norm 10, instance 1 with norm 20, instance 2 with norm 0 (ignored)
    d = np.array([[1.0, 3.0, 1.9, 50.0], [3.0, 5.0, 10.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    pred = gt + offsets(d)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)
    per_joint, mean, count = pck(pred, gt, mask, np.array([10.0, 20.0, 0.0]), alpha=0.2)
    # joint 0: 0.1, 0.15 -> 2/2; joint 1: 0.3, 0.25 -> 0/2; joint 2: 0.19 -> 1/1; joint 3: no valid sample
    assert per_joint.tolist() == [1.0, 0.0, 1.0, -1.0]
    assert mean == pytest.approx(2 / 3) and count == 3
    # a per-axis normaliser (N, 2) divides x and y separately
    dist = normalized_distances(pred[:1], gt[:1], mask[:1], np.array([[10.0, 40.0]]))
    assert dist[0, 0] == pytest.approx(math.hypot(0.6 / 10, 0.8 / 40), rel=1e-6)
    assert dist.dtype == np.float32 and dist[0, 3] == -1
    # nothing valid at all: mean 0, count 0
    assert pck(pred, gt, np.zeros_like(mask), np.ones(3)) == (pytest.approx([-1.0] * 4), 0.0, 0)


def test_pck_matches_a_loop_oracle() -> None:
    rng = np.random.default_rng(3)
    n, k = 40, 7
    gt = rng.uniform(0, 100, (n, k, 2))
    pred = gt + rng.normal(0, 6, (n, k, 2))
    mask = rng.uniform(size=(n, k)) > 0.25
    mask[:, 6] = False
    norm = rng.uniform(20, 60, n)
    norm[[3, 9]] = 0.0
    norm[11] = -5.0
    per_joint, mean, count = pck(pred, gt, mask, norm, 0.15)
    expect = []
    for j in range(k):
        hits = [np.linalg.norm(pred[i, j] - gt[i, j]) / norm[i] < 0.15 for i in range(n) if mask[i, j] and norm[i] > 0]
        expect.append(sum(hits) / len(hits) if hits else -1.0)
    assert per_joint.tolist() == pytest.approx(expect)
    assert mean == pytest.approx(np.mean([e for e in expect if e >= 0])) and count == k - 1


def test_normalisers() -> None:
    assert bbox_norm(np.array([[5, 5, 30, 80], [0, 0, 50, 10]])).tolist() == [80, 50]
    assert head_norm(np.array([[10, 10, 40, 50]])).tolist() == pytest.approx([0.6 * 50])
    lay = get_layout("jhmdb")
    ls, rh = lay.index("left_shoulder"), lay.index("right_hip")
    assert (ls, rh) == (4, 5)  # MMPose's JHMDB torso points
    gt = np.zeros((2, 15, 2))
    gt[0, ls], gt[0, rh] = (10, 10), (13, 14)  # torso 5
    gt[1, ls] = gt[1, rh] = (7, 7)  # degenerate: < 1 px
    pred = gt.copy()
    pred[1, rh] = (7, 27)
    assert torso_norm(gt, "jhmdb").tolist() == [5.0, 0.0]
    assert torso_norm(gt, "jhmdb", pred).tolist() == [5.0, 20.0]  # falls back to the predicted torso
    lsp = get_layout("lsp")
    g = np.zeros((1, 14, 2))
    g[0, lsp.index("left_shoulder")], g[0, lsp.index("right_hip")] = (0, 0), (6, 8)
    assert torso_norm(g, "lsp").tolist() == [10.0]


def mpii_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = 4
    gt = np.zeros((n, 16, 2))
    heads = np.tile([0.0, 0.0, 30.0, 40.0], (n, 1))  # head size 0.6 * 50 = 30 px -> PCKh@0.5 at 15 px
    d = np.full((n, 16), 10.0)  # correct
    d[:, 9] = [10, 20, 20, 20]  # head top: 1/4
    d[:, 12] = [20, 10, 10, 10]  # right shoulder: 3/4
    d[:, 13] = 10  # left shoulder: 4/4 (only 2 labelled)
    d[:, 6] = 40  # pelvis: wrong, excluded from the mean
    d[:, 0] = 4  # right ankle: correct at 0.5 and at 0.1 (3 px)
    mask = np.ones((n, 16), bool)
    mask[2:, 13] = False
    mask[:, 5] = False  # left ankle never labelled
    return gt + offsets(d), gt, mask, heads


def test_mpii_pckh_convention() -> None:
    pred, gt, mask, heads = mpii_case()
    out = mpii_pckh(pred, gt, mask, heads)
    per_joint = out["per_joint"]
    assert per_joint[9] == 0.25 and per_joint[12] == 0.75 and per_joint[13] == 1.0 and per_joint[6] == 0.0
    assert per_joint[5] == -1.0
    # mean over joints weighted by labelled counts, pelvis (6) and thorax (7) left out: 12 joints x 4 samples
    # + left shoulder 2 samples; wrong: 3 head tops + 1 right shoulder
    included = [j for j in range(16) if j not in (5, 6, 7)]
    total = sum(int(mask[:, j].sum()) for j in included)
    assert total == 12 * 4 + 2
    assert out["pckh"] == pytest.approx((total - 4) / total)
    assert out["head"] == 0.25 and out["shoulder"] == pytest.approx((0.75 + 1.0) / 2)
    assert out["ankle"] == 1.0  # the left ankle has no sample and is left out of the pair
    # PCKh@0.1 is 3 px here and every error is at least 4 px
    assert out["pckh@0.1"] == 0.0
    assert out["count"][13] == 2 and out["count"][5] == 0


def test_auc_and_epe() -> None:
    gt = np.zeros((1, 4, 2))
    d = np.array([[3.0, 9.0, 15.0, 40.0]])
    pred = gt + offsets(d)
    mask = np.ones((1, 4), bool)
    # thresholds i/20 of 30 px = 0, 1.5, 3, ..., 28.5 px; PCK at each = share of d strictly below
    expect = np.mean([np.mean(d[0] < 30 * i / 20) for i in range(20)])
    assert auc(pred, gt, mask, 30.0, 20) == pytest.approx(expect)
    assert epe(pred, gt, mask) == pytest.approx(d.mean())
    mask[0, 3] = False
    assert epe(pred, gt, mask) == pytest.approx(9.0)
    assert epe(pred, gt, np.zeros_like(mask)) == 0.0


def lsp_instances(n: int, rng: np.random.Generator) -> list:
    out = []
    for i in range(n):
        kp = rng.uniform(10, 150, (14, 2))
        vis = np.where(rng.uniform(size=14) < 0.1, 0, 2)
        out.append(make_instance(f"im{i}.jpg", [5, 5, 100 + i, 150], kp, vis, "lsp", image_id=i, instance_id=0))
    return out


def test_evaluate_predictions_pck() -> None:
    rng = np.random.default_rng(0)
    insts = lsp_instances(30, rng)
    gt = np.stack([i.keypoints for i in insts]).astype(np.float64)
    pred = gt + rng.normal(0, 12, gt.shape)
    mask = np.stack([i.visibility > 0 for i in insts])
    out = evaluate_predictions(insts, pred, np.ones(mask.shape), "lsp")
    assert out["metric"] == "pck" and out["num_instances"] == 30
    per_joint, mean, _ = pck(pred, gt, mask, bbox_norm(np.stack([i.bbox for i in insts])), 0.2)
    assert out["pck@0.2"] == pytest.approx(mean) and out["pck@0.2/per_joint"] == pytest.approx(per_joint.tolist())
    _, tmean, _ = pck(pred, gt, mask, torso_norm(gt, "lsp", pred), 0.2)
    assert out["tpck@0.2"] == pytest.approx(tmean)
    assert out["epe"] == pytest.approx(epe(pred, gt, mask))
    assert 0 < out["tpck@0.2"] < out["pck@0.2"] < 1  # the torso is smaller than the box
    assert set(evaluate_predictions(insts, pred, np.ones(mask.shape), "lsp", alpha=0.1)) >= {"pck@0.1", "tpck@0.1"}
    perfect = evaluate_predictions(insts, gt, np.ones(mask.shape), "lsp")
    assert perfect["pck@0.2"] == 1.0 and perfect["epe"] == 0.0


def test_evaluate_predictions_pckh_mpii() -> None:
    pred, gt, mask, heads = mpii_case()
    insts = [
        make_instance("x.jpg", [0, 0, 50, 100], gt[i], np.where(mask[i], 2, 0), "mpii", image_id=i, head_box=heads[i])
        for i in range(len(gt))
    ]  # fmt: skip
    assert choose_metric(insts, "mpii") == "pckh"
    out = evaluate_predictions(insts, pred, np.ones(mask.shape), "mpii")
    table = mpii_pckh(pred, gt, mask, heads)
    assert out["metric"] == "pckh"
    assert out["pckh@0.5"] == pytest.approx(table["pckh"]) and out["pckh@0.5/head"] == 0.25
    assert out["pckh@0.1"] == table["pckh@0.1"] and len(out["pckh@0.5/per_joint"]) == 16


def test_metric_choice_and_errors() -> None:
    rng = np.random.default_rng(1)
    insts = lsp_instances(2, rng)
    assert choose_metric(insts, "lsp") == "pck"
    kp = np.zeros((17, 2))
    coco = [make_instance("a.jpg", [0, 0, 10, 10], kp, np.ones(17), "coco", image_id=1, instance_id=1, area=50.0)]
    assert choose_metric(coco, "coco") == "coco"
    assert choose_metric([make_instance("a.jpg", [0, 0, 9, 9], np.zeros((15, 2)), np.ones(15), "jhmdb")], "jhmdb") == (
        "pck"
    )
    with pytest.raises(ValueError, match="expected keypoints"):
        evaluate_predictions(insts, np.zeros((2, 13, 2)), np.zeros((2, 13)), "lsp")
    with pytest.raises(ValueError, match="head boxes"):
        evaluate_predictions(insts, np.zeros((2, 14, 2)), np.zeros((2, 14)), "lsp", metric="pckh")
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_predictions(insts, np.zeros((2, 14, 2)), np.zeros((2, 14)), "lsp", metric="map")
