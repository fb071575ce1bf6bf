"""``posedistill train`` and ``posedistill eval`` end to end on tiny generated data (LSP-14 and COCO-17)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import yaml

from posedistill.cli import main
from posedistill.engine.checkpoint import load_training_state, read_meta

# a 14-joint stick figure (LSP order) in unit coordinates: ankles, knees, hips, wrists, elbows, shoulders, neck, head
LSP_FIGURE = np.array(
    [[0.35, 0.95], [0.37, 0.75], [0.40, 0.55], [0.60, 0.55], [0.63, 0.75], [0.65, 0.95], [0.20, 0.50],
     [0.25, 0.38], [0.35, 0.25], [0.65, 0.25], [0.75, 0.38], [0.80, 0.50], [0.50, 0.20], [0.50, 0.05]]
)  # fmt: skip
LINKS = [(0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8), (9, 10), (10, 11), (8, 9), (2, 3), (12, 13), (8, 2), (9, 3)]


def draw_people(n: int, size: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` images with one stick figure each; joints (n, 14, 2) in 0-based pixels."""
    rng = np.random.default_rng(seed)
    images, joints = [], []
    for _ in range(n):
        img = np.full((size, size, 3), 40, np.uint8)
        scale = rng.uniform(0.5, 0.8) * size
        offset = rng.uniform(0, size - scale, 2)
        pts = LSP_FIGURE * scale + offset + rng.normal(0, 1.0, (14, 2))
        for a, b in LINKS:
            cv2.line(img, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), (200, 180, 60), 2)
        for i, p in enumerate(pts):
            cv2.circle(img, (int(p[0]), int(p[1])), 2, (30 + 15 * i, 255 - 12 * i, 90), -1)
        images.append(img)
        joints.append(pts)
    return images, np.asarray(joints)


def make_tiny_lsp(root: Path, n: int = 20, size: int = 64, seed: int = 0) -> Path:
    """An LSPet-style folder: ``images/im00001.jpg``... and ``joints.mat`` (14 x 3 x N, 1-based, 1 = visible)."""
    images, joints = draw_people(n, size, seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        cv2.imwrite(str(root / "images" / f"im{i + 1:05d}.jpg"), img)
    mat = np.concatenate([joints + 1.0, np.ones((n, 14, 1))], axis=2).transpose(1, 2, 0)
    scipy.io.savemat(root / "joints.mat", {"joints": mat})
    return root / "joints.mat"


def tiny_config(tmp: Path, mat: Path, **sections: dict) -> Path:
    cfg = {
        "model": {"name": "rtmpose-t", "input_size": [48, 64]},
        "codec": {"type": "simcc", "sigma": [1.5, 1.7], "split_ratio": 2.0},
        "data": {
            "layout": "lsp",
            "train": [{"format": "lsp", "path": str(mat), "indices": "0:16"}],
            "val": [{"format": "lsp", "path": str(mat), "indices": "16:20"}],
        },
        "optim": {"lr": 0.004},
        "schedule": {"warmup_iters": 2},
        "ema": {"enabled": True},
        "train": {"epochs": 2, "batch_size": 4, "num_workers": 0, "device": "cpu", "val_interval": 1,
                  "checkpoint_interval": 2, "log_interval": 2, "progress": False, "aug_switch_epoch": 1},
        "eval": {"flip_test": True, "batch_size": 4},
    }  # fmt: skip
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(config, work dir) of a 2-epoch run of rtmpose-t at 48x64 on 16 tiny LSP images."""
    tmp = tmp_path_factory.mktemp("cli")
    cfg = tiny_config(tmp, make_tiny_lsp(tmp / "lsp"))
    work = tmp / "work"
    assert main(["train", str(cfg), "--work-dir", str(work), "--set", "train.seed=3"]) == 0
    return cfg, work


def test_train_cli_writes_checkpoints_and_metrics(trained):
    _, work = trained
    for name in ("last", "best", "epoch_2"):
        assert (work / name / "weights.safetensors").is_file(), name
    assert not (work / "best" / "state.pt").exists()  # best is for deployment, last/epoch_N for resuming
    meta = read_meta(work / "best")
    assert meta["layout"] == "lsp" and meta["input_size"] == [48, 64] and meta["method"] == "supervised"
    assert meta["model"]["build_args"] == {"name": "rtmpose-t", "num_keypoints": 14, "input_size": [48, 64]}
    assert meta["config"]["train"]["seed"] == 3  # the --set override is recorded
    assert meta["codec"]["type"] == "simcc" and meta["best"]["metric"] == "pck@0.2"
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in records if r["type"] == "val"]
    assert [r["epoch"] for r in vals] == [0, 1]
    assert all(0.0 <= r["pck@0.2"] <= 1.0 and "epe" in r for r in vals)
    train = [r for r in records if r["type"] == "train"]
    assert {"loss", "loss_kpt", "lr", "time"} <= set(train[0])
    assert load_training_state(work / "last")["epoch"] == 2


def test_eval_cli_table_json_and_dump(trained, tmp_path, capsys):
    cfg, work = trained
    out, dump = tmp_path / "metrics.json", tmp_path / "results.json"
    rc = main(["eval", str(cfg), "--checkpoint", str(work / "best"), "--dump", str(dump), "--out", str(out),
               "--no-flip-test", "--per-joint"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "head_top" in text and "pck@0.2" in text  # --per-joint: the tables on the terminal too
    result = json.loads(out.read_text())
    assert result["flip_test"] is False and result["metrics"]["metric"] == "pck"
    assert len(result["metrics"]["pck@0.2/per_joint"]) == 14
    records = json.loads(dump.read_text())
    assert len(records) == 4 and len(records[0]["keypoints"]) == 14 * 3
    # the checkpoint's validation metric is what eval reproduces with the same flip setting
    rc = main(["eval", str(cfg), "--checkpoint", str(work / "best"), "--out", str(out), "--flip-test"])
    assert rc == 0
    assert "head_top" not in capsys.readouterr().out  # without --per-joint they are in the JSON only
    best = read_meta(work / "best")["metrics"]
    assert json.loads(out.read_text())["metrics"]["pck@0.2"] == pytest.approx(best["pck@0.2"])


def test_cli_errors_name_the_key(tmp_path, capsys):
    cfg = tiny_config(tmp_path, tmp_path / "missing.mat")
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "data.train.0.path" in err and "missing.mat" in err
    assert main(["train", str(cfg), "--set", "train.epoch=3"]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err


def coco_people(tmp: Path, name: str, n: int, seed: int = 1) -> Path:
    """A COCO-17 file of ``n`` 96x96 stick-figure images (in ``tmp/img``): only shoulders to ankles are labelled,
    the face points never are (the LSP figure has none)."""
    images, joints = draw_people(n, 96, seed=seed)
    (tmp / "img").mkdir(exist_ok=True)
    anns, imgs = [], []
    for i, (img, pts) in enumerate(zip(images, joints)):
        cv2.imwrite(str(tmp / "img" / f"{i}.jpg"), img)
        kp = np.zeros((17, 3))
        kp[5:17, :2] = pts[[9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]]  # shoulders..ankles from the LSP figure
        kp[5:17, 2] = 2
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        imgs.append({"id": i + 1, "file_name": str(tmp / "img" / f"{i}.jpg"), "width": 96, "height": 96})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 12,
                     "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                     "area": float((x1 - x0) * (y1 - y0)), "keypoints": kp.ravel().tolist()})  # fmt: skip
    out = tmp / name
    out.write_text(json.dumps({"images": imgs, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
    return out


def test_train_records_the_keypoints_no_label_trains(tmp_path, capsys):
    """COCO-17 people labelled from the shoulders down: the face points get no signal, the checkpoint says so and
    the runtime scores them 0."""
    from posedistill.infer import PoseEstimator

    train = coco_people(tmp_path, "train.json", 8)
    cfg = tiny_config(tmp_path, tmp_path / "unused.mat", train={"epochs": 1, "aug_switch_epoch": None})
    data = yaml.safe_load(cfg.read_text())
    data["data"] = {"layout": "coco", "train": [{"format": "coco", "path": str(train)}], "val": []}
    cfg.write_text(yaml.safe_dump(data))
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "w")]) == 0
    assert "keypoints [0, 1, 2, 3, 4] get no training signal" in capsys.readouterr().out
    assert read_meta(tmp_path / "w" / "last")["untrained_keypoints"] == [0, 1, 2, 3, 4]
    est = PoseEstimator(str(tmp_path / "w" / "last"), detector=None, progress=False)
    res = est(cv2.imread(str(tmp_path / "img" / "0.jpg")), boxes=np.array([[0, 0, 96, 96]], np.float32))
    assert not res.scores[0, :5].any() and res.scores[0, 5:].any()


def test_eval_cli_mmpose_pth_on_coco(tmp_path):
    """An official-style mmpose .pth (state_dict + meta with numpy arrays) evaluated with COCO AP."""
    import torch

    from posedistill.models.builder import build_model

    gt = coco_people(tmp_path, "val.json", 6)
    model = build_model("rtmpose-t", 17, input_size=(48, 64))
    pth = tmp_path / "rtmpose-t_official.pth"
    sd = {k: v for k, v in model.state_dict().items()}
    torch.save({"state_dict": sd, "meta": {"dataset_meta": {"sigmas": np.ones(17)}}}, pth)
    cfg = tmp_path / "coco.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"name": "rtmpose-t", "input_size": [192, 256]},  # replaced by the checkpoint's 48x64
        "codec": {"type": "simcc", "sigma": [1.5, 1.7]},
        "data": {"layout": "coco", "val": [{"path": str(gt), "image_root": str(tmp_path / "img")}]},
        "train": {"device": "cpu", "num_workers": 0},
    }))  # fmt: skip
    out = tmp_path / "m.json"
    assert main(["eval", str(cfg), "--checkpoint", str(pth), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["metric"] == "coco" and {"AP", "AP50", "AR", "body/AP"} <= set(metrics)


def test_eval_cli_detected_boxes(tmp_path):
    """Detected-box evaluation (mmpose's bbox_file) with the mmpose reference RTMPose-t weights as a .pth."""
    import torch
    from safetensors.torch import load_file

    from tests.conftest import shared_path

    coco = shared_path("data", "fixtures", "coco")
    ref = load_file(shared_path("reference", "mmpose", "rtmpose-t_body.safetensors"))
    pth = tmp_path / "rtmpose-t_body.pth"
    torch.save({"state_dict": {k[len("state_dict.") :]: v for k, v in ref.items() if k.startswith("state_dict.")}}, pth)
    dets = json.loads((coco / "test_coco_det_AP_H_56.json").read_text())
    cfg = tmp_path / "det.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"name": "rtmpose-t", "input_size": [192, 256]},
        "codec": {"type": "simcc", "sigma": [4.9, 5.66]},
        "data": {"layout": "coco", "val": [{"path": str(coco / "test_coco.json"), "image_root": str(coco),
                                            "detections": str(coco / "test_coco_det_AP_H_56.json"),
                                            "detection_score_thr": 0.3}]},
        "train": {"device": "cpu", "num_workers": 0}, "eval": {"batch_size": 16},
    }))  # fmt: skip
    out = tmp_path / "m.json"
    assert main(["eval", str(cfg), "--checkpoint", str(pth), "--out", str(out), "--no-flip-test"]) == 0
    result = json.loads(out.read_text())
    assert result["num_instances"] == sum(d["category_id"] == 1 and d["score"] >= 0.3 for d in dets) > 0
    assert result["metrics"]["metric"] == "coco" and -1 <= result["metrics"]["AP"] <= 1


def test_train_cli_heatmap_model(tmp_path, capsys):
    """The supervised method with a heatmap codec and model (MSE), validated with flip test."""
    cfg = tiny_config(
        tmp_path,
        make_tiny_lsp(tmp_path / "lsp", n=20, size=48),
        # stride 32 needs multiples of 32; slim deconvolutions through model.args keep it fast
        model={"name": "cspnext-t-heatmap", "input_size": [64, 64], "args": {"deconv_out_channels": [32, 32, 32]}},
        train={"epochs": 1, "aug_switch_epoch": None},
    )
    text = cfg.read_text().replace("type: simcc", "type: heatmap").replace("sigma:\n  - 1.5\n  - 1.7", "sigma: 2.0")
    cfg.write_text(text.replace("split_ratio: 2.0", "heatmap_size: [16, 16]"))
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "w")]) == 0
    meta = read_meta(tmp_path / "w" / "last")
    assert meta["codec"]["type"] == "heatmap" and "pck@0.2" in meta["metrics"]
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "w2"), "--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err


def test_train_cli_synthetic_wholebody(tmp_path):
    """Synthetic COCO-WholeBody sources are generated on first use; validation reports every whole-body part."""
    synth = {"size": [96, 96], "people": [1, 1], "difficulty": "easy"}
    cfg = tiny_config(tmp_path, tmp_path / "unused.mat", train={"epochs": 1, "aug_switch_epoch": None})
    data = yaml.safe_load(cfg.read_text())
    data["data"] = {
        "layout": "coco_wholebody",
        "train": [{"format": "coco", "path": str(tmp_path / "syn/train/annotations.json"),
                   "synthetic": {**synth, "num_images": 8, "seed": 0}}],
        "val": [{"format": "coco", "path": str(tmp_path / "syn/val/annotations.json"),
                 "synthetic": {**synth, "num_images": 3, "seed": 1}}],
    }  # fmt: skip
    cfg.write_text(yaml.safe_dump(data))
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "w")]) == 0
    assert len(list((tmp_path / "syn/train/images").glob("*.jpg"))) == 8
    metrics = read_meta(tmp_path / "w" / "last")["metrics"]
    for part in ("body", "foot", "face", "lefthand", "righthand", "wholebody"):
        assert f"{part}/AP" in metrics, part
    assert metrics["AP"] == metrics["wholebody/AP"]


def test_synthetic_video_sources_are_generated_on_first_use(tmp_path):
    """The shipped DKD configs name synthetic *video* sources (``num_videos``): reading one generates the clips."""
    from posedistill.engine.builders import read_source
    from posedistill.engine.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "dkd" / "dkd_synthetic-video.yaml")
    src = cfg.data.train[0]
    src.path = str(tmp_path / "train" / "videos.json")
    src.synthetic = {**src.synthetic, "num_videos": 2, "frames": 3, "size": [96, 96]}
    instances = read_source(src, "coco")
    assert (tmp_path / "train" / "videos.json").is_file()
    assert {i.video_id for i in instances} == {1, 2} and {i.frame_index for i in instances} == {0, 1, 2}
