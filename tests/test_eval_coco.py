"""COCO OKS evaluation: parity with frozen xtcocotools numbers, hand-computed OKS, protocol rules, results writing,
rescoring, OKS-NMS, the ``coco-eval`` command and bad inputs."""

from __future__ import annotations

import copy
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from posedistill.cli import main
from posedistill.data.instance import make_instance
from posedistill.errors import PoseDataError
from posedistill.eval import (
    STAT_NAMES,
    build_coco_gt,
    coco_eval,
    evaluate_predictions,
    oks_iou,
    oks_nms,
    rescore_instances,
    results_to_coco,
    write_coco_results,
)
from posedistill.eval.coco import PROTOCOLS, PartCOCOeval, Protocol, _load_gt, _load_results, _part_records
from posedistill.layouts import get_layout
from tests.conftest import TEST_DATA, shared_path

EVAL_DATA = TEST_DATA / "eval"
EXPECTED = json.loads((EVAL_DATA / "expected_xtcocotools.json").read_text())
COCO_SIGMAS = np.asarray(get_layout("coco").sigmas)


def edit_gt(gt: dict, edit: str | None) -> dict:
    """The in-memory GT edits of tests/data/eval/make_expectations.py (same names, same effect)."""
    gt = copy.deepcopy(gt)
    if edit == "crowd_index_0.1_0.9":
        for img, ci in zip(gt["images"], (0.1, 0.9)):
            img["crowdIndex"] = ci
    elif edit == "iscrowd_default":
        for ann in gt["annotations"]:
            ann.setdefault("iscrowd", 0)
    elif edit == "crowdpose_style":
        for i, img in enumerate(gt["images"]):
            img["crowdIndex"] = (i % 10) / 10
        for ann in gt["annotations"]:
            ann["num_keypoints"] = int(np.count_nonzero(np.asarray(ann["keypoints"][2::3]) == 2))
    elif edit is not None:
        raise ValueError(edit)
    return gt


def edit_results(results: list[dict], edit: str | None) -> list[dict]:
    """The in-memory results edits of tests/data/eval/make_expectations.py."""
    results = copy.deepcopy(results)
    if edit == "add_boxes":
        for i, r in enumerate(results):
            x, y = r["keypoints"][0::3], r["keypoints"][1::3]
            grow = 1.0 + (i % 4) * 0.25
            r["bbox"] = [min(x), min(y), (max(x) - min(x)) * grow, (max(y) - min(y)) * grow]
    elif edit is not None:
        raise ValueError(edit)
    return results


def load_results(name: str, edit: str | None = None) -> list[dict]:
    with gzip.open(EVAL_DATA / name, "rt") as f:
        return edit_results(json.load(f), edit)


def load_gt(rel: str) -> dict:
    return json.loads(shared_path("data", *rel.split("/")).read_text())


# ------------------------------------------------------------------------------------- xtcocotools parity


@pytest.mark.parametrize("case", sorted(EXPECTED["cases"]))
def test_matches_frozen_xtcocotools(case: str) -> None:
    exp = EXPECTED["cases"][case]
    gt = edit_gt(load_gt(exp["gt"]), exp["gt_edit"])
    got = coco_eval(
        gt, load_results(exp["results"], exp["results_edit"]), exp["layout"],
        use_area=exp["use_area"], crowd=exp["iou_type"] == "keypoints_crowd",
    )  # fmt: skip
    assert list(got) == list(exp["parts"])
    for part, stats in exp["parts"].items():
        assert list(got[part]) == list(stats)
        for name, value in stats.items():
            assert got[part][name] == pytest.approx(value, abs=1e-9), (case, part, name)


# cases that score a dataset with another protocol than its layout's (to exercise the rules on more data)
OVERRIDDEN = {"julito_crowd", "coco_mini_train_no_area"}
assert OVERRIDDEN.issubset(EXPECTED["cases"])


@pytest.mark.parametrize("case", sorted(EXPECTED["cases"]))
def test_frozen_cases_use_our_layout_sigmas_and_protocol(case: str) -> None:
    exp = EXPECTED["cases"][case]
    # the expectations ran with MMPose's float32 sigmas
    assert np.asarray(get_layout(exp["layout"]).sigmas, np.float32).tolist() == exp["sigmas"]
    if case not in OVERRIDDEN:  # our defaults must be the settings xtcocotools ran with, as MMPose sets them
        proto = PROTOCOLS.get(exp["layout"], Protocol())
        assert proto == Protocol(use_area=exp["use_area"], crowd=exp["iou_type"] == "keypoints_crowd")
        results = load_results(exp["results"], exp["results_edit"])
        got = coco_eval(edit_gt(load_gt(exp["gt"]), exp["gt_edit"]), results, exp["layout"])
        assert {p: pytest.approx(v, abs=1e-9) for p, v in exp["parts"].items()} == got


def test_parity_cases_exercise_the_protocol_rules() -> None:
    """The frozen cases must contain what they claim: crowd GT, >20 detections in an image, dropped detections,
    part scores, and non-trivial numbers."""
    mini = EXPECTED["cases"]["coco_mini_train"]
    gt = load_gt(mini["gt"])
    res = load_results(mini["results"])
    assert sum(a["iscrowd"] for a in gt["annotations"]) > 0
    assert sum(r["image_id"] == 493652 for r in res) > 20
    assert any(max(r["keypoints"][2::3]) <= 0 for r in res)
    wb = load_results("results_coco_wholebody.json.gz")
    assert any("foot_score" in r for r in wb) and any(max(r["face_kpts"][2::3]) <= 0 < r["score"] for r in wb)
    aps = [s["AP"] for c in EXPECTED["cases"].values() for s in c["parts"].values()]
    assert all(0.05 < ap < 0.95 for ap in aps)
    bins = EXPECTED["cases"]["julito_crowd"]["parts"]["body"]
    assert all(bins[k] > 0 for k in ("AP_easy", "AP_medium", "AP_hard"))


# -------------------------------------------------------------------------------------- basic behaviour


def perfect_results(gt: dict, layout: str) -> list[dict]:
    """One result per non-crowd GT: the GT keypoints, score 1 where labelled and 0 elsewhere (so that a part
    without labelled points is dropped, as a model's confident guess there would be a false positive)."""
    lay = get_layout(layout)
    fields = ["keypoints"] if layout != "coco_wholebody" else [
        "keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"]  # fmt: skip
    out = []
    for ann in gt["annotations"]:
        if ann.get("iscrowd"):
            continue
        kp = np.concatenate([np.asarray(ann[f], float).reshape(-1, 3) for f in fields])
        assert len(kp) == lay.num_keypoints
        trip = np.concatenate([kp[:, :2], (kp[:, 2:] > 0).astype(float)], 1)
        out.append({"image_id": ann["image_id"], "category_id": 1, "score": 1.0} | {
            f: trip[s].ravel().tolist()
            for f, s in zip(fields, np.split(np.arange(len(kp)), np.cumsum([17, 6, 68, 21])[: len(fields) - 1]))
        })  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("rel", "layout"),
    [("fixtures/coco/test_coco.json", "coco"), ("fixtures/coco/test_coco_wholebody.json", "coco_wholebody"),
     ("coco_dev/coco_mini_train/person_keypoints.json", "coco")],
)  # fmt: skip
def test_perfect_predictions_score_one(rel: str, layout: str) -> None:
    gt = load_gt(rel)
    stats = coco_eval(gt, perfect_results(gt, layout), layout)
    assert set(stats) == set(get_layout(layout).parts)
    for part, row in stats.items():
        for name in ("AP", "AP50", "AP75", "AR", "AR50", "AR75"):
            assert row[name] == pytest.approx(1.0), (part, name)
        for name in ("APm", "APl", "ARm", "ARl"):
            assert row[name] == pytest.approx(1.0) or row[name] == -1.0


def tiny_gt(anns: list[dict]) -> dict:
    base = {"category_id": 1, "iscrowd": 0}
    return {
        "images": [{"id": 1, "width": 640, "height": 480}],
        "annotations": [base | {"id": i + 1, "image_id": 1} | a for i, a in enumerate(anns)],
        "categories": [{"id": 1, "name": "person"}],
    }


def coco_kpts(points: dict[int, tuple[float, float]], v: int = 2) -> list[float]:
    out = [0.0] * 51
    for k, (x, y) in points.items():
        out[3 * k : 3 * k + 3] = [x, y, v]
    return out


def test_hand_computed_oks_and_ap() -> None:
    area = 2000.0
    gt = tiny_gt([{"bbox": [90, 90, 40, 40], "area": area, "keypoints": coco_kpts({0: (100, 100), 5: (110, 120)})}])
    # nose 2 px right and 2 px down, left shoulder exact; the other 15 points are not labelled and do not count
    dt_kpts = coco_kpts({0: (102, 102), 5: (110, 120)}, v=1)
    res = [{"image_id": 1, "category_id": 1, "keypoints": dt_kpts, "score": 0.9}]
    # OKS by hand: mean over labelled points of exp(-d^2 / (2 * area * (2 sigma)^2))
    nose = math.exp(-(2**2 + 2**2) / (2 * area * (2 * 0.026) ** 2))
    oks = (nose + 1.0) / 2
    assert 0.7 < oks < 0.75
    lay = get_layout("coco")
    truth = _load_gt(gt, lay, Protocol())
    gts, dts = _part_records(truth, _load_results(res, lay, {1}), slice(0, 17), "score", Protocol())
    ev = PartCOCOeval(truth.coco, gts, dts, lay.sigmas_array())
    ev.run()
    assert ev.ious[1, 1][0, 0] == pytest.approx(oks, abs=1e-12)
    # one GT, one detection: AP at threshold t is 1 when OKS >= t, else 0 -> AP = fraction of the 10 thresholds
    stats = coco_eval(gt, res, "coco")["body"]
    matched = sum(t <= oks for t in np.linspace(0.5, 0.95, 10))
    assert matched == 5
    assert stats["AP"] == pytest.approx(matched / 10)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == 0.0
    assert stats["AR"] == pytest.approx(matched / 10)
    assert stats["APm"] == pytest.approx(matched / 10) and stats["APl"] == -1.0  # area 2000 is "medium"


def test_gt_without_points_uses_distance_to_grown_box() -> None:
    """A GT with no labelled point is ignored, and its OKS is measured to its box grown by w, h on each side."""
    area = 500.0
    gt = tiny_gt([{"bbox": [100, 100, 20, 40], "area": area, "keypoints": [0.0] * 51, "num_keypoints": 0}])
    kp = np.zeros((17, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = 110, 120, 0.5  # inside [80, 140] x [60, 180]
    kp[3, 0] = 150  # 10 px right of the grown box
    res = [{"image_id": 1, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.9}]
    lay = get_layout("coco")
    truth = _load_gt(gt, lay, Protocol())
    gts, dts = _part_records(truth, _load_results(res, lay, {1}), slice(0, 17), "score", Protocol())
    assert next(iter(gts.values()))["ignore"]
    ev = PartCOCOeval(truth.coco, gts, dts, lay.sigmas_array())
    ev.run()
    expect = (16 + math.exp(-(10**2) / (2 * area * (2 * 0.035) ** 2))) / 17
    assert ev.ious[1, 1][0, 0] == pytest.approx(expect, abs=1e-12)
    assert coco_eval(gt, res, "coco")["body"]["AP"] == -1.0  # nothing to score: the only GT is ignored


def test_crowd_regions_and_dropped_detections_are_not_false_positives() -> None:
    person = {"bbox": [100, 100, 50, 100], "area": 4000.0, "keypoints": coco_kpts({5: (110, 120), 11: (120, 180)})}
    crowd = {"bbox": [300, 100, 200, 200], "area": 30000.0, "iscrowd": 1, "keypoints": [0.0] * 51}
    gt = tiny_gt([person, crowd])
    good = {"image_id": 1, "category_id": 1, "keypoints": coco_kpts({5: (110, 120), 11: (120, 180)}), "score": 0.5}
    inside = coco_kpts({k: (320 + 9 * k, 120 + 5 * k) for k in range(17)})  # every point in the crowd box
    on_crowd = {"image_id": 1, "category_id": 1, "keypoints": inside, "score": 0.9}
    # higher score, far from everyone, but no keypoint score > 0: xtcocotools drops it
    silent = {"image_id": 1, "category_id": 1, "keypoints": coco_kpts({5: (10, 10)}, v=0), "score": 0.99}
    assert coco_eval(gt, [good, on_crowd, silent], "coco")["body"]["AP"] == pytest.approx(1.0)
    # a confident detection away from the crowd region is a false positive ranked first: precision 1/2
    stray = dict(on_crowd, keypoints=coco_kpts({k: (10 + k, 400 + k) for k in range(17)}))
    assert coco_eval(gt, [good, stray], "coco")["body"]["AP"] == pytest.approx(0.5)
    # without the crowd flag the region is an ordinary GT without points: ignored, and so is what matches it
    gt["annotations"][1]["iscrowd"] = 0
    assert coco_eval(gt, [good, on_crowd], "coco")["body"]["AP"] == pytest.approx(1.0)


def test_part_score_ranks_only_its_part() -> None:
    gt = load_gt("fixtures/coco/test_coco_wholebody.json")
    res = perfect_results(gt, "coco_wholebody")
    # spoil the foot points of the first result; a foot_score of 0 ranks it last in the foot evaluation only
    res[0]["foot_kpts"] = [v + (50.0 if i % 3 < 2 else 0.0) for i, v in enumerate(res[0]["foot_kpts"])]
    base = coco_eval(gt, res, "coco_wholebody")
    res[0]["foot_score"] = 0.0
    ranked = coco_eval(gt, res, "coco_wholebody")
    assert ranked["foot"]["AP"] > base["foot"]["AP"]
    for part in ("body", "face", "lefthand", "righthand", "wholebody"):
        assert ranked[part] == base[part]


def test_use_area_false_scales_by_box() -> None:
    gt = tiny_gt([{"bbox": [0, 0, 100, 200], "area": 1.0, "keypoints": coco_kpts({11: (50, 100)})}])
    res = [{"image_id": 1, "category_id": 1, "keypoints": coco_kpts({11: (58, 100)}), "score": 1.0}]
    # with the GT area of 1 px the 8 px error is fatal; with 0.53 * 100 * 200 it is small
    assert coco_eval(gt, res, "coco")["body"]["AP"] == 0.0
    no_area = coco_eval(gt, res, "coco", use_area=False)["body"]
    oks = math.exp(-64 / (2 * 0.53 * 100 * 200 * (2 * 0.107) ** 2))
    assert no_area["AP"] == pytest.approx(sum(t <= oks for t in np.linspace(0.5, 0.95, 10)) / 10)
    assert no_area["APl"] == no_area["AP"]  # area range from 0.53 * box = 10600 > 96^2


# ------------------------------------------------------------------------------------ results, rescoring, NMS


def test_write_results_wholebody_split_and_round_trip(tmp_path: Path) -> None:
    gt = load_gt("fixtures/coco/test_coco_wholebody.json")
    anns = [a for a in gt["annotations"] if not a["iscrowd"]]
    fields = ["keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"]
    kp = np.stack([np.concatenate([np.asarray(a[f], float).reshape(-1, 3) for f in fields]) for a in anns])
    path = tmp_path / "sub" / "results.json"
    recs = write_coco_results(path, [a["image_id"] for a in anns], kp[:, :, :2], (kp[:, :, 2] > 0).astype(float),
                              np.full(len(anns), 0.7), "coco_wholebody")  # fmt: skip
    on_disk = json.loads(path.read_text())
    assert on_disk == recs
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temp file left behind
    r = on_disk[0]
    assert list(r) == ["image_id", "category_id", *fields, "score"]
    assert [len(r[f]) for f in fields] == [51, 18, 204, 63, 63]
    assert r["foot_kpts"][:3] == [kp[0, 17, 0], kp[0, 17, 1], float(kp[0, 17, 2] > 0)] and r["score"] == 0.7
    stats = coco_eval(gt, str(path), "coco_wholebody")
    assert all(stats[p]["AP"] == pytest.approx(1.0) for p in stats)


def test_results_reject_bad_predictions() -> None:
    with pytest.raises(ValueError, match="expected keypoints"):
        results_to_coco([1], np.zeros((1, 16, 2)), np.zeros((1, 16)), np.zeros(1), "coco")
    kp = np.zeros((1, 17, 2))
    kp[0, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        results_to_coco([1], kp, np.zeros((1, 17)), np.zeros(1), "coco")


def test_rescore_instances() -> None:
    box = np.array([1.0, 0.5, 0.8])
    kps = np.array([[0.1, 0.3, 0.5, 0.9], [0.2, 0.2, 0.1, 0.0], [0.25, 0.21, 0.19, 0.6]])
    got = rescore_instances(box, kps)
    assert got == pytest.approx([(0.3 + 0.5 + 0.9) / 3, 0.0, 0.8 * (0.25 + 0.21 + 0.6) / 3])
    assert rescore_instances(box, kps, thr=0.0) == pytest.approx([1.8 / 4, 0.5 * 0.5 / 3, 0.8 * 1.25 / 4])


def test_oks_iou_and_nms() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(100, 200, (17, 2))
    near = a + 1.0  # OKS ~ 1 with a
    far = a + 40.0
    mid = a + rng.normal(0, 6, (17, 2))
    area = 100.0 * 200.0
    ious = oks_iou(a, np.stack([near, far, mid]), area, np.full(3, area), COCO_SIGMAS)
    var = (2 * COCO_SIGMAS) ** 2
    by_hand = [np.mean(np.exp(-((p - a) ** 2).sum(1) / var / area / 2)) for p in (near, far, mid)]
    assert ious.dtype == np.float32
    np.testing.assert_allclose(ious, by_hand, rtol=1e-6)
    assert ious[0] > 0.9 > ious[2] > ious[1]
    kp = np.stack([a, near, far, mid])
    keep = oks_nms(kp, np.array([0.5, 0.9, 0.8, 0.7]), np.full(4, area), COCO_SIGMAS, thr=0.9)
    assert keep.tolist() == [1, 2, 3]  # 'a' overlaps the higher-scored 'near' above 0.9
    near_mid = oks_iou(near, mid[None], area, [area], COCO_SIGMAS)[0]
    keep = oks_nms(kp, np.array([0.5, 0.9, 0.8, 0.7]), np.full(4, area), COCO_SIGMAS, thr=near_mid - 1e-4)
    assert keep.tolist() == [1, 2]  # 'mid' now also counts as a duplicate of 'near'
    assert oks_nms(np.zeros((0, 17, 2)), np.zeros(0), np.zeros(0), COCO_SIGMAS).tolist() == []
    # vis_thr: only points confident in both poses count
    s = np.ones((2, 17))
    s[1, :16] = 0.0
    only_last = oks_iou(a, far[None], area, [area], COCO_SIGMAS, s[0], s[1:], vis_thr=0.5)
    assert only_last[0] == pytest.approx(by_hand_point(a[16], far[16], COCO_SIGMAS[16], area), rel=1e-6)


def by_hand_point(p: np.ndarray, q: np.ndarray, sigma: float, area: float) -> float:
    return math.exp(-float(((p - q) ** 2).sum()) / (2 * sigma) ** 2 / area / 2)


# -------------------------------------------------------------------------------------- evaluate_predictions


def instances_from_coco(gt: dict, layout: str) -> list:
    fields = ["keypoints"] if layout != "coco_wholebody" else [
        "keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"]  # fmt: skip
    sizes = {img["id"]: (img["width"], img["height"]) for img in gt["images"]}
    out = []
    for a in gt["annotations"]:
        kp = np.concatenate([np.asarray(a[f], float).reshape(-1, 3) for f in fields])
        out.append(make_instance(
            f"{a['image_id']}.jpg", a["bbox"], kp[:, :2], kp[:, 2], layout, image_size=sizes[a["image_id"]],
            image_id=a["image_id"], instance_id=a["id"], iscrowd=bool(a["iscrowd"]), area=a["area"],
        ))  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("rel", "layout"),
    [("fixtures/coco/test_coco_wholebody.json", "coco_wholebody"),
     ("coco_dev/coco_mini_train/person_keypoints.json", "coco")],
)  # fmt: skip
def test_evaluate_predictions_coco(rel: str, layout: str) -> None:
    gt = load_gt(rel)
    insts = instances_from_coco(gt, layout)
    rng = np.random.default_rng(1)
    kp = np.stack([i.keypoints for i in insts]).astype(np.float64)
    kp += rng.normal(0, 3, kp.shape)
    sc = rng.uniform(0, 1, kp.shape[:2])
    # GT points where labelled, the box centre elsewhere (a model predicts every point), scores 1 / 0
    labelled = np.stack([i.visibility > 0 for i in insts])
    centres = np.stack([i.bbox[:2] + i.bbox[2:] / 2 for i in insts])[:, None, :]
    exact = np.where(labelled[..., None], np.stack([i.keypoints for i in insts]), centres)
    perfect = evaluate_predictions(insts, exact, labelled.astype(float), layout)
    assert perfect["metric"] == "coco" and perfect["AP"] == pytest.approx(1.0)
    rebuilt = evaluate_predictions(insts, kp, sc, layout, nms_thr=None)
    from_file = evaluate_predictions(insts, kp, sc, layout, gt_file=shared_path("data", *rel.split("/")), nms_thr=None)
    assert rebuilt == from_file  # build_coco_gt reproduces the GT file
    parts = list(get_layout(layout).parts)
    assert {f"{p}/{s}" for p in parts for s in STAT_NAMES} <= set(rebuilt)
    main_part = "wholebody" if layout == "coco_wholebody" else "body"
    assert rebuilt["AP"] == rebuilt[f"{main_part}/AP"] and 0 < rebuilt["AP"] < 1
    assert rebuilt["num_results"] == sum(not i.iscrowd for i in insts)
    json.dumps(rebuilt)  # JSON-friendly


def test_evaluate_predictions_nms_suppresses_duplicates() -> None:
    gt = load_gt("fixtures/coco/test_coco.json")
    insts = instances_from_coco(gt, "coco")
    kp = np.stack([i.keypoints for i in insts]).astype(np.float64)
    # one person's prediction copies another's in the same image: OKS-NMS removes the lower-scored copy
    a, b = [n for n, i in enumerate(insts) if i.image_id == 197388][:2]
    kp[b] = kp[a]
    sc = np.ones(kp.shape[:2])
    sc[b] = 0.5
    out = evaluate_predictions(insts, kp, sc, "coco")
    assert out["num_results"] == len(insts) - 1
    assert evaluate_predictions(insts, kp, sc, "coco", nms_thr=None)["num_results"] == len(insts)


def test_build_coco_gt_crowd_and_ids() -> None:
    lay = "coco"
    kp = np.zeros((17, 2))
    vis = np.zeros(17)
    vis[5] = 2
    insts = [
        make_instance("a.jpg", [0, 0, 10, 20], kp, vis, lay, image_id="a", instance_id="x", image_size=(64, 48)),
        make_instance("a.jpg", [5, 5, 10, 10], kp, vis * 0, lay, image_id="a", instance_id="y", iscrowd=True),
        make_instance("b.jpg", [0, 0, 4, 4], kp, vis, lay, image_id="b", instance_id="z", area=7.0),
    ]
    gt = build_coco_gt(insts, lay)
    assert [img["id"] for img in gt["images"]] == [1, 2]
    assert [a["id"] for a in gt["annotations"]] == [1, 2, 3]
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 1, 0]
    assert [a["area"] for a in gt["annotations"]] == [200.0, 100.0, 7.0]
    assert gt["annotations"][0]["keypoints"][15:18] == [0.0, 0.0, 2]


# ------------------------------------------------------------------------------------------ CLI and errors


def test_cli_json_matches_frozen_numbers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    exp = EXPECTED["cases"]["coco_wholebody"]
    gt = shared_path("data", *exp["gt"].split("/"))
    res = tmp_path / "results.json"
    res.write_text(json.dumps(load_results(exp["results"])))
    assert main(["coco-eval", str(gt), str(res), "--layout", "coco_wholebody", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert list(got) == ["body", "foot", "face", "lefthand", "righthand", "wholebody"]
    for part, stats in exp["parts"].items():
        assert got[part] == pytest.approx(stats, abs=1e-9)
    assert main(["coco-eval", str(gt), str(res), "--layout", "coco_wholebody"]) == 0
    table = capsys.readouterr().out
    assert "lefthand" in table and f"{exp['parts']['wholebody']['AP']:.3f}" in table


@pytest.mark.parametrize(
    ("results", "message"),
    [
        (None, "results file not found"),
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "expected a JSON list"),
        ('[{"image_id": 785, "category_id": 1, "keypoints": [1, 2, 3], "score": 1}]', "expected a list of 51"),
        ('[{"image_id": 785, "category_id": 1, "keypoints": []}]', "field 'score'"),
        ('[{"image_id": 9, "category_id": 1, "keypoints": [], "score": 1}]', "image_id 9 is not in the ground truth"),
    ],
)
def test_cli_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture, results: str | None, message: str):
    gt = shared_path("data", "fixtures", "coco", "test_coco.json")
    res = tmp_path / "bad.json"
    if results is not None:
        res.write_text(results)
    assert main(["coco-eval", str(gt), str(res)]) == 2
    err = capsys.readouterr().err
    assert str(res) in err and message in err


def test_gt_errors() -> None:
    gt = tiny_gt([{"bbox": [0, 0, 10, 10], "keypoints": coco_kpts({0: (1, 1)})}])
    with pytest.raises(PoseDataError, match="field 'area'"):
        coco_eval(gt, [], "coco")
    assert coco_eval(gt, [], "coco", use_area=False)["body"]["AP"] == 0.0  # no detections: AP 0
    gt["annotations"][0]["area"] = 100.0
    gt["annotations"][0]["keypoints"] = gt["annotations"][0]["keypoints"][:-3]
    with pytest.raises(PoseDataError, match=r"annotations\[0\] \(id=1\): field 'keypoints'"):
        coco_eval(gt, [], "coco")
    wb = load_gt("fixtures/coco/test_coco_wholebody.json")
    del wb["annotations"][2]["face_kpts"]
    with pytest.raises(PoseDataError, match="field 'face_kpts'"):
        coco_eval(wb, [], "coco_wholebody")
    with pytest.raises(PoseDataError, match="num_keypoints"):
        coco_eval(tiny_gt([{"bbox": [0, 0, 1, 1], "keypoints": [0.0] * 42}]), [], "crowdpose")
    with pytest.raises(ValueError, match="no OKS sigmas"):
        coco_eval(gt, [], "lsp")


def test_padded_box_areas() -> None:
    from posedistill.eval.evaluate import padded_box_areas

    boxes = np.array([[0, 0, 40, 80], [0, 0, 100, 50]])
    assert padded_box_areas(boxes).tolist() == pytest.approx([50 * 100, 125 * 62.5])
    # 192 x 256 input (aspect 0.75): the first box is widened to 75 x 100, the second heightened to 125 x 166.7
    assert padded_box_areas(boxes, input_size=(192, 256)).tolist() == pytest.approx([75 * 100, 125 * 125 / 0.75])


def test_evaluate_predictions_crowdpose_protocol() -> None:
    rel = "fixtures/crowdpose/test_crowdpose.json"
    gt = edit_gt(load_gt(rel), "crowd_index_0.1_0.9")
    crowd_index = {img["id"]: img["crowdIndex"] for img in gt["images"]}
    insts = []
    for a in gt["annotations"]:
        kp = np.asarray(a["keypoints"], float).reshape(-1, 3)
        insts.append(make_instance(
            "x.jpg", a["bbox"], kp[:, :2], kp[:, 2], "crowdpose", image_id=a["image_id"], instance_id=a["id"],
            extra={"num_keypoints": a["num_keypoints"], "crowd_index": crowd_index[a["image_id"]]},
        ))  # fmt: skip
    rng = np.random.default_rng(2)
    kp = np.stack([i.keypoints for i in insts]).astype(np.float64) + rng.normal(0, 4, (len(insts), 14, 2))
    sc = rng.uniform(0.1, 1, kp.shape[:2])
    rebuilt = evaluate_predictions(insts, kp, sc, "crowdpose")
    assert rebuilt["protocol"] == "crowdpose"
    assert {"AP_easy", "AP_medium", "AP_hard", "body/AP_hard"} <= set(rebuilt) and "APm" not in rebuilt
    assert rebuilt["AP_medium"] == -1.0 and rebuilt["AP_easy"] >= 0 and rebuilt["AP_hard"] >= 0
    # the GT rebuilt from the instances (num_keypoints, crowdIndex from extra) scores like the edited GT file
    results = results_to_coco([i.image_id for i in insts], kp, sc, rescore_instances(np.ones(len(insts)), sc),
                              "crowdpose")  # fmt: skip
    direct = coco_eval(gt, results, "crowdpose")["body"]
    assert {k: rebuilt[k] for k in direct} == direct
