"""Regenerate the frozen xtcocotools numbers that tests/test_eval_coco.py compares posedistill's evaluation to.

Runs in a side environment with xtcocotools (it needs numpy < 2, so it cannot live in the project's venv):

    python3 -m venv /tmp/xtenv
    /tmp/xtenv/bin/pip install "numpy<2" cython
    /tmp/xtenv/bin/pip install --no-build-isolation xtcocotools==1.14.3
    /tmp/xtenv/bin/python tests/data/eval/make_expectations.py [--shared ../shared]

Steps:
1. For each ground-truth file below (public test fixtures and the coco_dev sets of ../shared/data), make a results
   file by a deterministic perturbation of the GT (numpy RandomState with a fixed seed): OKS-scaled noise of
   varied strength, missed people, duplicate detections, false positives, detections on crowd regions and on
   people without labelled keypoints, low and tied scores, keypoint scores of 0 (a detection whose part has no
   positive score is dropped by xtcocotools), optional ``<part>_score`` fields, one image with more than
   maxDets=20 detections. The results are written next to this script (``results_<case>.json.gz``).
2. Score each (GT, results) pair with xtcocotools' ``COCOeval(coco, coco.loadRes(results), iouType, sigmas,
   use_area)`` as MMPose 1.3.2 calls it, with float32 sigmas like MMPose's ``dataset_meta`` (COCO-WholeBody:
   the six iouTypes ``keypoints_body``, ``keypoints_foot``, ``keypoints_face``, ``keypoints_lefthand``,
   ``keypoints_righthand``, ``keypoints_wholebody`` with the sigmas sliced at cumsum [0, 17, 6, 68, 21, 21];
   CrowdPose: ``keypoints_crowd``, ``use_area=False``; AI Challenger: ``use_area=False``), and freeze ``stats``
   into ``expected_xtcocotools.json``.

Some cases edit the GT or the results in memory first (:func:`edit_gt`, :func:`edit_results`, repeated by the
tests) or reuse another case's results
with another protocol: ``julito_crowd`` scores the julito results with the CrowdPose rules (crowd-index bins,
GT ignored by ``num_keypoints`` counting only visible points), ``coco_mini_train_no_area`` with
``use_area=False``, ``coco_mini_train_boxes`` with a ``bbox`` added to every result (the detection area then
comes from it), ``crowdpose_bins`` moves the two CrowdPose fixture images into the easy and hard bins.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import io
import json
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
from xtcocotools.coco import COCO
from xtcocotools.cocoeval import COCOeval

HERE = Path(__file__).resolve().parent

WB_FIELDS = (("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21))
WB_PARTS = ("body", "foot", "face", "lefthand", "righthand", "wholebody")
WB_SLICES = {"body": (0, 17), "foot": (17, 23), "face": (23, 91), "lefthand": (91, 112), "righthand": (112, 133),
             "wholebody": (0, 133)}  # fmt: skip
# MMPose 1.3.2 configs/_base_/datasets/crowdpose.py and aic.py
CROWDPOSE_SIGMAS = [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079]
AIC_SIGMAS = [
    0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642,
    0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173,
]  # fmt: skip

KEYPOINT_STATS = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
CROWD_STATS = ["AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard"]


def fields_of(layout: str) -> tuple[tuple[str, int], ...]:
    return WB_FIELDS if layout == "coco_wholebody" else (("keypoints", 0),)


def gt_keypoints(ann: dict, layout: str) -> np.ndarray:
    if layout == "coco_wholebody":
        return np.concatenate([np.asarray(ann[f], float).reshape(-1, 3) for f, _ in WB_FIELDS])
    return np.asarray(ann["keypoints"], float).reshape(-1, 3)


def to_record(image_id: int, kpts: np.ndarray, score: float, layout: str) -> dict:
    """(K, 3) x, y, score -> COCO results record (rounded to keep the files small)."""
    flat = np.round(kpts, 1)
    flat[:, 2] = np.round(kpts[:, 2], 2)
    rec = {"image_id": image_id, "category_id": 1}
    if layout == "coco_wholebody":
        start = 0
        for name, k in WB_FIELDS:
            rec[name] = flat[start : start + k].ravel().tolist()
            start += k
    else:
        rec["keypoints"] = flat.ravel().tolist()
    rec["score"] = round(float(score), 3)
    return rec


def random_pose(rng: np.random.RandomState, box: list[float], k: int) -> np.ndarray:
    """Points spread over a box, with random scores."""
    x, y, w, h = box
    out = np.zeros((k, 3))
    out[:, 0] = x + rng.rand(k) * max(w, 1)
    out[:, 1] = y + rng.rand(k) * max(h, 1)
    out[:, 2] = rng.uniform(0.05, 1.0, k)
    return out


def perturb(gt: dict, layout: str, sigmas: np.ndarray, seed: int, crowd_pile: int | None = None) -> list[dict]:
    rng = np.random.RandomState(seed)
    images = {img["id"]: img for img in gt["images"]}
    k = len(sigmas)
    results = []
    last_score = None
    for n, ann in enumerate(gt["annotations"]):
        kp = gt_keypoints(ann, layout)
        x, y, w, h = ann["bbox"]
        labelled = kp[:, 2] > 0
        if ann.get("iscrowd", 0):
            for _ in range(rng.randint(1, 4)):  # detections inside a crowd region: ignored when they match it
                pose = random_pose(rng, [x + 0.2 * w, y + 0.2 * h, 0.6 * w, 0.6 * h], k)
                results.append(to_record(ann["image_id"], pose, rng.uniform(0.2, 0.9), layout))
            continue
        if rng.rand() < 0.15:
            continue  # missed person
        if not labelled.any():
            if rng.rand() < 0.5:  # detection on a person without labelled keypoints (an ignored GT)
                pose = random_pose(rng, [x, y, w, h], k)
                results.append(to_record(ann["image_id"], pose, rng.uniform(0.1, 0.9), layout))
            continue
        area = ann["area"] if "area" in ann else w * h * 0.53
        level = rng.choice([0.03, 0.1, 0.2, 0.3, 0.45, 0.6, 0.9, 1.5])
        pose = np.zeros((k, 3))
        noise = rng.randn(k, 2) * (2 * sigmas[:, None]) * np.sqrt(area) * level
        pose[:, :2] = np.where(labelled[:, None], kp[:, :2], [x + w / 2, y + h / 2]) + noise
        pose[:, 2] = rng.uniform(0.05, 1.0, k)
        pose[rng.rand(k) < 0.1, 2] = 0.0
        if layout == "coco_wholebody" and n % 5 == 1:
            pose[23:91, 2] = 0.0  # no positive face score: dropped from the face evaluation only
        if n % 11 == 7:
            pose[:, 2] = 0.0  # no positive score at all: dropped everywhere
        score = rng.uniform(0.01, 1.0) if rng.rand() < 0.8 else rng.uniform(0.0, 0.05)
        if last_score is not None and n % 6 == 0:
            score = last_score  # ties
        last_score = score
        rec = to_record(ann["image_id"], pose, score, layout)
        if layout == "coco_wholebody" and n % 3 == 0:
            rec["foot_score"] = round(float(rng.uniform(0.0, 1.0)), 3)
            rec["wholebody_score"] = round(float(rng.uniform(0.0, 1.0)), 3)
        results.append(rec)
        if rng.rand() < 0.15:  # duplicate with more noise and a lower score
            dup = pose.copy()
            dup[:, :2] += rng.randn(k, 2) * (2 * sigmas[:, None]) * np.sqrt(area) * 0.5
            results.append(to_record(ann["image_id"], dup, score * rng.uniform(0.3, 1.0), layout))
    for img_id, img in images.items():
        for _ in range(rng.poisson(0.7)):  # false positives anywhere in the image
            bw, bh = rng.uniform(20, img["width"] / 2), rng.uniform(40, img["height"] / 2)
            box = [rng.uniform(0, img["width"] - bw), rng.uniform(0, img["height"] - bh), bw, bh]
            results.append(to_record(img_id, random_pose(rng, box, k), rng.uniform(0.0, 0.7), layout))
    if crowd_pile is not None:  # more than maxDets=20 detections in one image
        img = images[crowd_pile]
        for _ in range(25):
            box = [rng.uniform(0, img["width"] / 2), rng.uniform(0, img["height"] / 2), 80.0, 160.0]
            results.append(to_record(crowd_pile, random_pose(rng, box, k), rng.uniform(0.0, 1.0), layout))
    return results


def xtcoco_stats(
    gt: dict, results_path: Path, results_edit: str | None, iou_type: str, sigmas: np.ndarray, use_area: bool
) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        gt_path = Path(tmp) / "gt.json"
        gt_path.write_text(json.dumps(gt))
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(gt_path))
            with gzip.open(results_path, "rt") as f:
                results = edit_results(json.load(f), results_edit)
            dets = coco.loadRes(results)
            ev = COCOeval(coco, dets, iou_type, sigmas, use_area)
            ev.params.useSegm = None
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
    return [float(v) for v in ev.stats]


# Ground-truth edits applied in memory before scoring; tests/test_eval_coco.py repeats them by name.
def edit_gt(gt: dict, edit: str | None) -> dict:
    gt = copy.deepcopy(gt)
    if edit == "crowd_index_0.1_0.9":  # fill CrowdPose's easy and hard bins (the fixture has two medium images)
        for img, ci in zip(gt["images"], (0.1, 0.9)):
            img["crowdIndex"] = ci
    elif edit == "iscrowd_default":  # the AIC fixture has no 'iscrowd', which xtcocotools reads unconditionally
        for ann in gt["annotations"]:
            ann.setdefault("iscrowd", 0)
    elif edit == "crowdpose_style":  # crowdIndex spread over the bins, num_keypoints = visible (v = 2) points
        for i, img in enumerate(gt["images"]):
            img["crowdIndex"] = (i % 10) / 10
        for ann in gt["annotations"]:
            ann["num_keypoints"] = int(np.count_nonzero(np.asarray(ann["keypoints"][2::3]) == 2))
    elif edit is not None:
        raise ValueError(edit)
    return gt


def edit_results(results: list[dict], edit: str | None) -> list[dict]:
    """Results edits applied in memory; tests/test_eval_coco.py repeats them by name."""
    results = copy.deepcopy(results)
    if edit == "add_boxes":  # a box makes loadRes take the detection area from it rather than from the keypoints
        for i, r in enumerate(results):
            x, y = r["keypoints"][0::3], r["keypoints"][1::3]
            grow = 1.0 + (i % 4) * 0.25
            r["bbox"] = [min(x), min(y), (max(x) - min(x)) * grow, (max(y) - min(y)) * grow]
    elif edit is not None:
        raise ValueError(edit)
    return results


def case(
    gt: str,
    results: int | str,
    layout: str,
    iou_type: str = "keypoints",
    use_area: bool = True,
    gt_edit: str | None = None,
    results_edit: str | None = None,
    pile: int | None = None,
) -> dict:
    """A scoring case: ``results`` is a seed (make a results file from the GT) or the name of the case whose
    results are reused; ``pile`` is an image that gets more than maxDets=20 detections."""
    return dict(gt=gt, results=results, layout=layout, iou_type=iou_type, use_area=use_area, gt_edit=gt_edit,
                results_edit=results_edit, pile=pile)  # fmt: skip


JULITO = "coco_dev/julito/person_keypoints.json"
MINI = "coco_dev/coco_mini_train/person_keypoints.json"
CROWDPOSE = "fixtures/crowdpose/test_crowdpose.json"
CASES = {
    "coco": case("fixtures/coco/test_coco.json", 1, "coco"),
    "coco_wholebody": case("fixtures/coco/test_coco_wholebody.json", 2, "coco_wholebody", "wholebody"),
    "julito": case(JULITO, 3, "coco"),
    "julito_crowd": case(JULITO, "julito", "coco", "keypoints_crowd", False, gt_edit="crowdpose_style"),
    "coco_mini_train": case(MINI, 4, "coco", pile=493652),
    "coco_mini_train_no_area": case(MINI, "coco_mini_train", "coco", use_area=False),
    "coco_mini_train_boxes": case(MINI, "coco_mini_train", "coco", results_edit="add_boxes"),
    "crowdpose": case(CROWDPOSE, 5, "crowdpose", "keypoints_crowd", False),
    "crowdpose_bins": case(CROWDPOSE, "crowdpose", "crowdpose", "keypoints_crowd", False, "crowd_index_0.1_0.9"),
    "aic": case("fixtures/aic/test_aic.json", 6, "aic", use_area=False, gt_edit="iscrowd_default"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=HERE.parents[3] / "shared")
    args = ap.parse_args()
    data = args.shared / "data"
    meta = json.loads((args.shared / "reference" / "dataset_meta.json").read_text())
    # float32, as MMPose's dataset_meta['sigmas'] (parse_pose_metainfo) that its metrics pass to xtcocotools
    sigma_table = {
        "coco": np.asarray(meta["coco"]["sigmas"], np.float32),
        "coco_wholebody": np.asarray(meta["coco_wholebody"]["sigmas"], np.float32),
        "crowdpose": np.asarray(CROWDPOSE_SIGMAS, np.float32),
        "aic": np.asarray(AIC_SIGMAS, np.float32),
    }
    expected: dict = {
        "generator": "tests/data/eval/make_expectations.py",
        "xtcocotools_version": version("xtcocotools"),
        "numpy_version": np.__version__,
        "cases": {},
    }
    for name, c in CASES.items():
        gt = edit_gt(json.loads((data / c["gt"]).read_text()), c["gt_edit"])
        sigmas = sigma_table[c["layout"]]
        if isinstance(c["results"], int):
            results = perturb(gt, c["layout"], sigmas, c["results"], c["pile"])
            res_path = HERE / f"results_{name}.json.gz"
            with gzip.GzipFile(res_path, "wb", mtime=0) as f:
                f.write(json.dumps(results, separators=(",", ":")).encode())
        else:
            res_path = HERE / f"results_{c['results']}.json.gz"
        entry = {"gt": c["gt"], "gt_edit": c["gt_edit"], "results": res_path.name, "results_edit": c["results_edit"],
                 "layout": c["layout"], "sigmas": sigmas.tolist(), "iou_type": c["iou_type"],
                 "use_area": c["use_area"], "parts": {}}  # fmt: skip
        if c["iou_type"] == "wholebody":
            for part in WB_PARTS:
                a, b = WB_SLICES[part]
                stats = xtcoco_stats(gt, res_path, c["results_edit"], f"keypoints_{part}", sigmas[a:b], c["use_area"])
                entry["parts"][part] = dict(zip(KEYPOINT_STATS, stats))
        else:
            names = CROWD_STATS if c["iou_type"] == "keypoints_crowd" else KEYPOINT_STATS
            stats = xtcoco_stats(gt, res_path, c["results_edit"], c["iou_type"], sigmas, c["use_area"])
            entry["parts"]["body"] = dict(zip(names, stats))
        expected["cases"][name] = entry
    out = HERE / "expected_xtcocotools.json"
    out.write_text(json.dumps(expected, indent=1) + "\n")
    for case, entry in expected["cases"].items():
        print(case, {p: round(s["AP"], 4) for p, s in entry["parts"].items()})


if __name__ == "__main__":
    main()
