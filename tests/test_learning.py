"""Guard rails against models that do not learn: overfitting, the mean-pose baseline, the collapse check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posedistill.codecs.simcc import SimCCCodec
from posedistill.data.loader import TopDownDataset, collate
from posedistill.data.readers import read_dataset
from posedistill.data.synthetic import generate_dataset
from posedistill.distill.supervised import SupervisedMethod
from posedistill.engine.collapse import COLLAPSE_RATIO, batch_spread, spread_ratio
from posedistill.eval.baseline import beats_baseline, evaluate_mean_pose, fit_mean_pose, place_mean_pose
from posedistill.eval.evaluate import evaluate_predictions
from posedistill.models.builder import build_model

INPUT = (64, 96)  # (w, h): the smallest crop whose final feature map (2x3) RTMPose's head still handles well


@pytest.fixture(scope="module")
def sixteen(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = tmp_path_factory.mktemp("overfit")
    generate_dataset(root, num_images=16, size=(128, 128), people=(1, 1), difficulty="easy", seed=3)
    return read_dataset(root / "annotations.json", layout="coco_wholebody")


def test_rtmpose_overfits_sixteen_wholebody_images(sixteen):
    """RTMPose-t from random weights must fit 16 whole-body people (133 keypoints) closely in 100 steps: a recipe
    or loss bug that makes training collapse to the mean pose fails here. PCK@0.05: at 0.2 the mean pose of 16
    easy one-person images already scores ~0.95."""
    torch.manual_seed(0)
    codec = SimCCCodec(INPUT, (1.22, 1.42), split_ratio=2.0)
    ds = TopDownDataset(sixteen, codec, INPUT, train=False)
    batch = collate([ds[i] for i in range(len(ds))])
    method = SupervisedMethod(build_model("rtmpose-t", 133, input_size=INPUT), codec, "coco_wholebody")
    opt = torch.optim.AdamW(method.parameters(), lr=1e-3, weight_decay=0.0)
    method.train()
    first = None
    for step in range(100):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * min(1.0, (step + 1) / 10)  # short warm-up
        loss = sum(method.losses(batch, 0).values())
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    method.eval()
    kp_crop, scores = method.predict(batch)
    from posedistill.data.transforms import crop_to_image

    kp = crop_to_image(np.asarray(kp_crop), np.asarray(batch["center"]), np.asarray(batch["scale"]), INPUT)
    model = evaluate_predictions(sixteen, kp, np.asarray(scores), "coco_wholebody", metric="pck", alpha=0.05)
    base = evaluate_mean_pose(sixteen, sixteen, "coco_wholebody", metric="pck", alpha=0.05)
    assert float(loss.detach()) < 0.5 * first
    assert model["pck@0.05"] > 0.8, model["pck@0.05"]
    assert beats_baseline(model, base, "pck@0.05", margin=0.3), (model["pck@0.05"], base["pck@0.05"])
    mask = np.asarray(batch["visibility"]) > 0
    assert spread_ratio(np.asarray(kp_crop), np.asarray(batch["keypoints"]), mask, INPUT) > COLLAPSE_RATIO


def test_mean_pose_baseline_by_hand(sixteen):
    inst = sixteen[:2]
    pose = fit_mean_pose(inst)
    for k in (0, 9, 100):  # nose, left wrist, a hand point: average of the box-relative positions where labelled
        rel = [(i.keypoints[k] - i.bbox[:2]) / i.bbox[2:] for i in inst if i.visibility[k] > 0]
        expected = np.mean(rel, axis=0) if rel else np.array([0.5, 0.5])
        np.testing.assert_allclose(pose[k], expected, atol=1e-9)
    placed = place_mean_pose(pose, inst)
    np.testing.assert_allclose(placed[1], inst[1].bbox[:2] + pose * inst[1].bbox[2:], atol=1e-4)
    # the baseline scores what it should: perfect on a single instance it was fit on, where every joint is labelled
    one = evaluate_mean_pose(inst[:1], inst[:1], "coco_wholebody", metric="pck")
    assert one["pck@0.2"] == 1.0


def test_beats_baseline_margin():
    assert beats_baseline({"pck@0.2": 0.9}, {"pck@0.2": 0.7}, "pck@0.2")
    assert not beats_baseline({"pck@0.2": 0.71}, {"pck@0.2": 0.7}, "pck@0.2")
    assert not beats_baseline({}, {"pck@0.2": 0.7}, "pck@0.2")


def test_collapse_ratio_separates_mean_pose_from_tracking():
    rng = np.random.default_rng(0)
    target = rng.uniform(10, 80, (32, 17, 2))
    mask = np.ones((32, 17), bool)
    assert spread_ratio(target + rng.normal(0, 1, target.shape), target, mask, (96, 128)) > 0.9
    collapsed = np.broadcast_to(target.mean(axis=0), target.shape) + rng.normal(0, 0.5, target.shape)
    assert spread_ratio(collapsed, target, mask, (96, 128)) < COLLAPSE_RATIO
    assert np.isnan(batch_spread(target, np.zeros((32, 17), bool), (96, 128)))


def test_trainer_warns_on_collapse(tmp_path: Path, capsys):
    """A model that outputs a constant pose makes the trainer print the collapse warning and log pred_spread."""
    from posedistill.engine.trainer import Trainer

    class Constant(SupervisedMethod):
        def predict(self, batch, flip_test=False):
            b = batch["image"].shape[0]
            return np.full((b, 17, 2), 20.0, np.float32), np.ones((b, 17), np.float32)

    class FakeSet(torch.utils.data.Dataset):
        input_size = (48, 64)

        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> dict:
            g = torch.Generator().manual_seed(i)
            codec = SimCCCodec((48, 64), (1.0, 1.0))
            kp = torch.rand(17, 2, generator=g) * torch.tensor([40.0, 50.0])
            enc = codec.encode(kp.numpy())
            return {"image": torch.rand(3, 64, 48, generator=g), "keypoints": kp, "visibility": torch.full((17,), 2.0),
                    "x_labels": torch.from_numpy(enc["x_labels"]), "y_labels": torch.from_numpy(enc["y_labels"]),
                    "weights": torch.from_numpy(enc["weights"]), "index": i}  # fmt: skip

    from posedistill.engine.config import Config

    cfg = Config()
    cfg.model.input_size = [48, 64]
    cfg.train.epochs = 1
    cfg.train.batch_size = 8
    cfg.train.num_workers = 0
    cfg.train.progress = False
    method = Constant(build_model("rtmpose-t", 17, input_size=(48, 64)), SimCCCodec((48, 64), (1.0, 1.0)), "coco")
    trainer = Trainer(cfg, method, FakeSet(), None, work_dir=tmp_path)
    trainer.fit()
    out = capsys.readouterr().out
    assert "collapse to the mean pose" in out
    import json

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epochs = [r for r in rows if r["type"] == "epoch"]
    assert epochs and epochs[-1]["pred_spread"] < 1e-6
