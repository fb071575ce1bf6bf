"""The mean-pose baseline as a row of every evaluation table (issue #14): ``posedistill eval`` prints it next to
the model, writes it to the metrics file and warns when the model does not beat it; the helpers the benchmarks
share. (The baseline itself, fitting and placing, is tested in test_learning.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from posedistill.cli import main
from posedistill.eval.baseline import (
    MARGIN,
    NAME,
    baseline_warning,
    evaluate_mean_pose,
    format_baseline,
    headline_key,
    row_warnings,
)
from tests.test_engine_cli import make_tiny_lsp, tiny_config

# ---------------------------------------------------------------------------------------------- helpers


def test_headline_key_follows_the_metric():
    coco = {"metric": "coco", "num_instances": 3, "AP": 0.1, "AP50": 0.2, "body/AP": 0.1, "face/AP": 0.0}
    assert headline_key(coco) == "AP"
    mpii = {"metric": "pckh", "num_instances": 3, "pckh@0.5": 0.8, "pckh@0.1": 0.2, "pckh@0.5/head": 0.9, "epe": 3.0}
    assert headline_key(mpii) == "pckh@0.5"
    lsp = {"metric": "pck", "pck@0.2": 0.5, "pck@0.2/per_joint": [0.5], "tpck@0.2": 0.3, "epe": 4.0}
    assert headline_key(lsp) == "pck@0.2"
    assert headline_key({"metric": "pck", "epe": 4.0, "num_instances": 2}) is None
    assert headline_key({"face/AP": 0.3}) is None  # a part's AP is not the headline


def test_baseline_warning_and_margin():
    base = {"pck@0.2": 0.70, "epe": 9.0}
    assert baseline_warning({"pck@0.2": 0.70 + MARGIN + 1e-9}, base) is None
    line = baseline_warning({"pck@0.2": 0.71}, base, name="ckpt/best")
    assert line is not None and line.startswith("warning: ckpt/best does not beat the mean-pose baseline on pck@0.2")
    assert "0.7100 vs 0.7000" in line
    assert baseline_warning({"pck@0.2": 0.9}, base, margin=0.3) is not None  # the margin is a parameter
    assert baseline_warning({"AP": 0.0}, {"pck@0.2": 0.7}) is None  # nothing to compare: no warning
    assert "missing" in baseline_warning({"pck@0.2": None, "AP": 0.0}, base, key="pck@0.2")


def test_format_baseline_is_one_line_of_accuracies():
    line = format_baseline({"metric": "pck", "num_instances": 4, "pck@0.2": 0.5, "pck@0.2/per_joint": [0.5] * 14,
                            "tpck@0.2": 0.25, "epe": 7.5}, "mean-pose baseline (16 training people)")  # fmt: skip
    assert line == "mean-pose baseline (16 training people): pck@0.2 0.5000  tpck@0.2 0.2500"


def test_row_warnings_one_per_row_below_its_group_baseline():
    rows = [
        {"dataset": "lspet", "metric": "pck@0.2", "method": NAME, "seed": None, "value": 0.40},
        {"dataset": "lspet", "metric": "pck@0.2", "method": "baseline", "seed": 0, "value": 0.50},
        {"dataset": "lspet", "metric": "pck@0.2", "method": "baseline", "seed": 1, "value": 0.41},
        {"dataset": "lspet", "metric": "AP", "method": "baseline", "seed": 1, "value": 0.0},  # no baseline: not judged
        {"dataset": "synthetic", "metric": "pck@0.2", "method": "dwpose-s1", "seed": 0, "value": 0.3},  # other group
    ]
    warnings = row_warnings(rows)
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: baseline seed 1 (lspet) does not beat the mean-pose baseline on pck@0.2")
    rows.append({"dataset": "synthetic", "metric": "pck@0.2", "method": NAME, "value": 0.9})
    assert len(row_warnings(rows)) == 2
    assert row_warnings(rows, margin=-1.0) == []


# ---------------------------------------------------------------------------------------------- posedistill eval


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Tiny LSP data (16 train, 4 val people, all the same stick figure, so the mean pose scores high) and an
    untrained RTMPose-t checkpoint (48x64), which does not beat it."""
    import torch

    from posedistill.engine.builders import checkpoint_meta
    from posedistill.engine.checkpoint import save_checkpoint
    from posedistill.engine.config import load_config
    from posedistill.models.builder import build_model

    tmp = tmp_path_factory.mktemp("baseline")
    mat = make_tiny_lsp(tmp / "lsp")
    cfg = tiny_config(tmp, mat, eval={"flip_test": False, "batch_size": 4})
    torch.manual_seed(0)
    model = build_model("rtmpose-t", 14, input_size=(48, 64)).eval()
    ckpt = save_checkpoint(tmp / "ckpt", model, checkpoint_meta(load_config(cfg)))
    return SimpleNamespace(tmp=tmp, mat=mat, cfg=cfg, ckpt=ckpt)


def _expected_baseline(mat: Path, val: slice) -> dict:
    from posedistill.data.readers import training_instances
    from posedistill.data.readers.lsp import read_lsp

    train = training_instances(read_lsp(mat, indices=range(1, 17)))
    insts = read_lsp(mat, indices=range(val.start + 1, val.stop + 1))
    return evaluate_mean_pose(train, insts, "lsp", metric="pck", input_size=(48, 64))


def test_eval_prints_writes_and_warns(tiny: SimpleNamespace, tmp_path: Path, capsys, one_torch_thread):
    out = tmp_path / "m.json"
    assert main(["eval", str(tiny.cfg), "--checkpoint", str(tiny.ckpt), "--out", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    payload = json.loads(out.read_text())
    base, model = payload["baseline"], payload["metrics"]
    expected = _expected_baseline(tiny.mat, slice(16, 20))
    assert base["metrics"]["pck@0.2"] == pytest.approx(expected["pck@0.2"]) and expected["pck@0.2"] > 0.5
    assert base["metrics"]["num_instances"] == model["num_instances"] == 4
    assert base["key"] == "pck@0.2" and base["margin"] == MARGIN and base["beaten"] is False
    assert base["num_train_instances"] == 16 and base["fitted_on"] == [f"{tiny.mat} [0:16]"]
    assert f"mean-pose baseline (16 training people): pck@0.2 {expected['pck@0.2']:.4f}" in stdout
    assert model["pck@0.2"] < expected["pck@0.2"] + MARGIN  # an untrained network: no better than the mean pose
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "does not beat the mean-pose baseline on pck@0.2" in warnings[0], stderr
    assert str(tiny.ckpt) in warnings[0]
    assert max(len(line) for line in stdout.splitlines()) < 200


def test_eval_no_baseline(tiny: SimpleNamespace, tmp_path: Path, capsys, one_torch_thread):
    out = tmp_path / "m.json"
    assert main(["eval", str(tiny.cfg), "--checkpoint", str(tiny.ckpt), "--out", str(out), "--no-baseline"]) == 0
    stdout, stderr = capsys.readouterr()
    assert json.loads(out.read_text())["baseline"] is None
    assert "mean-pose baseline is skipped (--no-baseline)" in stdout and "mean-pose baseline (" not in stdout
    assert "warning:" not in stderr


def test_eval_without_train_data_skips_with_a_note(tiny: SimpleNamespace, tmp_path: Path, capsys, one_torch_thread):
    out = tmp_path / "m.json"
    missing = tmp_path / "nowhere" / "joints.mat"
    assert main(["eval", str(tiny.cfg), "--checkpoint", str(tiny.ckpt), "--out", str(out), "--set",
                 f"data.train.0.path={missing}"]) == 0  # fmt: skip
    stdout, stderr = capsys.readouterr()
    notes = [line for line in stdout.splitlines() if "mean-pose baseline" in line]
    assert notes == [f"note: the mean-pose baseline is skipped: data.train source {missing} not found"]
    assert json.loads(out.read_text())["baseline"] is None and "warning:" not in stderr
    assert main(["eval", str(tiny.cfg), "--checkpoint", str(tiny.ckpt), "--out", str(out), "--set",
                 "data.train=[]"]) == 0  # fmt: skip
    assert "no data.train source" in capsys.readouterr().out


def test_eval_baseline_scores_the_people_the_model_was_scored_on(tiny: SimpleNamespace, tmp_path: Path, capsys,
                                                                  one_torch_thread):  # fmt: skip
    """A validation image that cannot be read leaves its person out of the model's scoring: out of the
    baseline's too."""
    lsp = tmp_path / "lsp"
    shutil.copytree(tiny.mat.parent, lsp)
    (lsp / "images" / "im00018.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "m.json"
    assert main(["eval", str(tiny.cfg), "--checkpoint", str(tiny.ckpt), "--out", str(out), "--set",
                 f"data.val.0.path={lsp / 'joints.mat'}"]) == 0  # fmt: skip
    payload = json.loads(out.read_text())
    assert payload["metrics"]["skipped_instances"] == [1]
    assert payload["metrics"]["num_instances"] == payload["baseline"]["metrics"]["num_instances"] == 3
    from posedistill.data.readers import training_instances
    from posedistill.data.readers.lsp import read_lsp

    train = training_instances(read_lsp(tiny.mat, indices=range(1, 17)))
    kept = [read_lsp(tiny.mat, indices=[i])[0] for i in (17, 19, 20)]
    expected = evaluate_mean_pose(train, kept, "lsp", metric="pck")
    assert payload["baseline"]["metrics"]["pck@0.2"] == pytest.approx(expected["pck@0.2"])


def test_eval_no_warning_for_a_model_that_beats_it(tiny: SimpleNamespace, tmp_path: Path, capsys, monkeypatch):
    """A model that predicts the ground truth beats the baseline: no warning, ``beaten`` true. (At PCK@0.2 the
    mean pose of these identical stick figures scores 1.0, which nothing beats: eval.args.alpha makes it strict,
    and reaches the baseline's scoring too.)"""
    import posedistill.engine.evaluation as evaluation
    from posedistill.eval.evaluate import evaluate_predictions

    def perfect(method, dataset, layout, *, metric, metric_args, instances, **kw):
        kp = np.stack([inst.keypoints for inst in instances]).astype(np.float32)
        sc = np.ones(kp.shape[:2], np.float32)
        args = {"input_size": tuple(dataset.input_size), **metric_args}
        return evaluate_predictions(instances, kp, sc, layout, metric=metric, **args), kp, sc

    monkeypatch.setattr(evaluation, "evaluate", perfect)
    out = tmp_path / "m.json"
    assert main(["eval", str(tiny.cfg), "--checkpoint", str(tiny.ckpt), "--out", str(out), "--set",
                 "eval.args.alpha=0.02"]) == 0  # fmt: skip
    stdout, stderr = capsys.readouterr()
    assert "warning:" not in stderr and "mean-pose baseline (16 training people): pck@0.02" in stdout
    payload = json.loads(out.read_text())
    base = payload["baseline"]
    assert base["key"] == "pck@0.02" and base["beaten"] is True
    assert payload["metrics"]["pck@0.02"] == 1.0 > base["metrics"]["pck@0.02"] + MARGIN


def test_eval_wholebody_prints_the_baseline_per_part(tmp_path: Path, capsys, one_torch_thread):
    import torch

    from posedistill.engine.builders import checkpoint_meta
    from posedistill.engine.checkpoint import save_checkpoint
    from posedistill.engine.config import load_config
    from posedistill.models.builder import build_model

    assert main(["synth", "--out", str(tmp_path / "synth"), "--images", "4", "--size", "64", "64", "--difficulty",
                 "easy", "--quiet"]) == 0  # fmt: skip
    ann = tmp_path / "synth" / "annotations.json"
    cfg = tiny_config(tmp_path, ann, data={"layout": "coco_wholebody", "train": [{"path": str(ann)}],
                                           "val": [{"path": str(ann)}]},
                      eval={"flip_test": False, "batch_size": 4})  # fmt: skip
    torch.manual_seed(0)
    model = build_model("rtmpose-t", 133, input_size=(48, 64)).eval()
    ckpt = save_checkpoint(tmp_path / "ckpt", model, checkpoint_meta(load_config(cfg)))
    out = tmp_path / "m.json"
    capsys.readouterr()
    assert main(["eval", str(cfg), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    lines = stdout.splitlines()
    at = lines.index("mean-pose baseline, per part:")
    assert lines[at + 1].split()[:3] == ["part", "AP", "AP50"]
    assert [line.split()[0] for line in lines[at + 3 : at + 9]] == ["body", "foot", "face", "lefthand", "righthand",
                                                                    "wholebody"]  # fmt: skip
    row = [line for line in lines if line.startswith("mean-pose baseline (")]
    assert len(row) == 1 and " AP " in row[0] and "body/AP" not in row[0] and len(row[0]) < 200, row
    base = json.loads(out.read_text())["baseline"]
    assert base["key"] == "AP" and "face/AP" in base["metrics"] and base["metrics"]["metric"] == "coco"
    assert "does not beat the mean-pose baseline on AP" in stderr  # the same people it was fitted on, untrained model
