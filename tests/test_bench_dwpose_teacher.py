"""The DWPose gains table with a real teacher (benchmarks/bench_dwpose_teacher.py): its training labels keep only
LSPet's visible joints, its configs build the runs they name, and its summary pairs the seeds it compares."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
bench = pytest.importorskip("bench_dwpose_teacher")

LSPET = ROOT.parent / "shared" / "data" / "lspet" / "joints.mat"


@pytest.mark.skipif(not LSPET.is_file(), reason="needs ../shared/data/lspet")
def test_train_labels_are_coco17_with_only_the_visible_lsp_joints(tmp_path):
    from posedistill.data.readers.lsp import read_lsp
    from posedistill.layouts import map_keypoints

    out = bench.write_train_labels(tmp_path / "labels.json", 1, 12)
    doc = json.loads(out.read_text())
    assert len(doc["annotations"]) == 12 and len(doc["categories"][0]["keypoints"]) == 17
    saw_occluded = False
    for inst, ann in zip(read_lsp(LSPET, indices=range(1, 13)), doc["annotations"], strict=True):
        kp, vis, defined = map_keypoints(inst.keypoints, inst.visibility, "lsp", "coco")
        got = np.asarray(ann["keypoints"], np.float64).reshape(17, 3)
        assert not got[:5, 2].any()  # LSP has no nose, eyes or ears
        assert (got[:, 2] > 0).sum() == ann["num_keypoints"] == int(((vis >= 2) & defined).sum())
        for k in range(17):
            if vis[k] >= 2:
                np.testing.assert_allclose(got[k, :2], kp[k], atol=0.01)
            else:
                saw_occluded |= bool(defined[k])
                assert got[k, 2] == 0 and not got[k, :2].any()
    assert saw_occluded  # the first twelve LSPet people do have occluded joints: the filter was exercised


def test_configs_build_the_three_kinds_of_run():
    from posedistill.engine.config import load_config

    nokd = load_config(bench.CONFIGS / "lspet-body_nokd_rtmpose-nano.yaml")
    s1 = load_config(bench.CONFIGS / "lspet-body_dwpose_pptinypose-nano_s1.yaml")
    s2 = load_config(bench.CONFIGS / "lspet-body_dwpose_nano-nano_s2.yaml")
    assert nokd.method.type == "supervised" and s1.method.type == s2.method.type == "dwpose"
    assert s1.method.args["teacher"] == bench.TEACHER and s1.method.args["stage"] == 1
    assert s2.method.args["stage"] == 2
    # the no-KD and stage-1 runs differ only by the method: same model, input, data, schedule and epochs
    for cfg in (s1, s2):
        assert cfg.model.name == nokd.model.name and tuple(cfg.input_size) == tuple(nokd.input_size)
        assert cfg.data.layout == nokd.data.layout == "coco"
    assert s1.train.epochs == nokd.train.epochs == bench.EPOCHS and s1.optim.lr == nokd.optim.lr
    assert tuple(nokd.input_size) == bench.INPUT_SIZE


def test_summary_pairs_each_seed_with_its_own_reference():
    rows = []
    for seed, (base, s1, s2) in enumerate([(0.50, 0.55, 0.54), (0.40, 0.48, 0.49), (0.60, 0.59, 0.58)]):
        for method, v in (("no-kd", base), ("dwpose-s1", s1), ("dwpose-s2", s2)):
            rows.append({"dataset": "lspet", "method": method, "seed": seed, "metric": "pck@0.2", "value": v})
    rows.append({"dataset": "lspet", "method": "teacher", "seed": None, "metric": "pck@0.2", "value": 0.7})
    by = {s["method"]: s for s in bench.summary(rows)}
    d1 = by["dwpose-s1"]["minus_no-kd"]
    assert d1["pairs"] == 3 and d1["wins"] == 2
    assert d1["mean"] == pytest.approx((0.05 + 0.08 - 0.01) / 3) and d1["min"] == pytest.approx(-0.01)
    d2 = by["dwpose-s2"]["minus_dwpose-s1"]
    assert d2["wins"] == 1 and d2["max"] == pytest.approx(0.01)
    assert by["no-kd"]["min"] == 0.40 and by["no-kd"]["max"] == 0.60 and "minus_no-kd" not in by["no-kd"]
    assert by["teacher"]["seeds"] == 1
    assert "better in 2/3" in bench.table(bench.summary(rows))
