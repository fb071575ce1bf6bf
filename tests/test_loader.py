"""TopDownDataset / build_loader: shapes, normalisation, targets, determinism, bad images."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from posedistill.codecs.simcc import SimCCCodec
from posedistill.data.augment import AugConfig
from posedistill.data.instance import Instance, make_instance
from posedistill.data.loader import (
    MEAN_RGB,
    STD_RGB,
    EpochSampler,
    TopDownDataset,
    build_loader,
    collate,
    one_opencv_thread,
    set_epoch,
)
from posedistill.data.transforms import bbox_xywh_to_cs, topdown_affine
from posedistill.engine.trainer import Trainer
from posedistill.errors import PoseDataError
from posedistill.layouts import get_layout
from tests.test_engine_trainer import ToyMethod, toy_config

COCO = get_layout("coco")
SIZE = (192, 256)
NO_AUG = AugConfig(
    flip_prob=0.0, half_body_prob=0.0, shift_prob=0.0, scale_prob=0.0, rotate_prob=0.0, hue_delta=0,
    saturation_delta=0, value_delta=0, blur_prob=0.0, median_blur_prob=0.0, dropout_prob=0.0,
)  # fmt: skip


def _codec() -> SimCCCodec:
    return SimCCCodec(SIZE, (4.9, 5.66))


class OnesCodec:
    """Minimal codec: a weight of one per labelled keypoint and the keypoints themselves as a target."""

    def encode(self, keypoints: np.ndarray, visibility: np.ndarray) -> dict[str, np.ndarray]:
        return {"coords": keypoints.astype(np.float32), "keypoint_weights": (visibility > 0).astype(np.float32)}


def _write_images(root: Path, n: int) -> list[Instance]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = rng.integers(0, 256, (90 + 10 * i, 120, 3), dtype=np.uint8)
        path = root / f"img{i}.jpg"
        cv2.imwrite(str(path), img)
        kp = rng.uniform([20, 10], [100, 80], (17, 2)).astype(np.float32)
        vis = np.full(17, 2.0, np.float32)
        vis[i % 17] = 0
        out.append(make_instance(str(path), [15, 8, 90, 75], kp, vis, "coco", image_id=i, instance_id=100 + i))
    return out


@pytest.fixture
def instances(tmp_path: Path) -> list[Instance]:
    return _write_images(tmp_path, 6)


def _make_bad(instances: list[Instance], tmp_path: Path) -> list[Instance]:
    """Instance 1 -> corrupt bytes, 3 -> truncated JPEG, 4 -> missing file."""
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    data = Path(instances[3].image_path).read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) - 2])
    insts = list(instances)
    for i, name in [(1, "corrupt.jpg"), (3, "truncated.jpg"), (4, "missing.jpg")]:
        insts[i] = make_instance(
            str(tmp_path / name), insts[i].bbox, insts[i].keypoints, insts[i].visibility, "coco", image_id=i
        )
    return insts


def test_val_sample_shapes_and_normalisation(instances):
    ds = TopDownDataset(instances, _codec(), SIZE, train=False)
    s = ds[2]
    assert s["image"].shape == (3, 256, 192) and s["image"].dtype == torch.float32
    assert s["x_labels"].shape == (17, 384) and s["y_labels"].shape == (17, 512)
    assert s["weights"].shape == (17,) and s["weights"].dtype == torch.float32
    assert s["weights"][2] == 0 and s["weights"].sum() == 16
    # the crop, independently: centre/scale ×1.25, aspect fix, warp, BGR -> RGB, (x - mean) / std
    inst = instances[2]
    img = cv2.imread(inst.image_path)
    c, sc = bbox_xywh_to_cs(inst.bbox, 1.25)
    ref = topdown_affine(img, inst.keypoints, c, sc, 0.0, SIZE)
    rgb = ref.image[..., ::-1].astype(np.float32)
    expected = ((rgb - np.float32(MEAN_RGB)) / np.float32(STD_RGB)).transpose(2, 0, 1)
    np.testing.assert_array_equal(s["image"].numpy(), expected)
    np.testing.assert_allclose(s["keypoints"].numpy(), ref.keypoints)
    np.testing.assert_allclose(s["center"], c)
    np.testing.assert_allclose(s["scale"], ref.scale)
    assert s["scale"][0] / s["scale"][1] == pytest.approx(192 / 256)
    assert (s["image_id"], s["instance_id"], s["index"], s["flip"], s["skipped"]) == (2, 102, 2, False, 0)
    # the SimCC targets equal the codec applied to the crop keypoints
    enc = _codec().encode(ref.keypoints, (inst.visibility > 0).astype(np.float32))
    np.testing.assert_array_equal(s["x_labels"].numpy(), enc["x_labels"])
    # border pixels (outside the image) are black before normalisation
    c0 = s["image"][:, 0, 0].numpy()
    np.testing.assert_allclose(c0, -np.float32(MEAN_RGB) / np.float32(STD_RGB), rtol=1e-6)


def test_constant_colour_normalises_to_known_values(tmp_path: Path):
    img = np.empty((100, 100, 3), np.uint8)
    img[:] = (10, 20, 30)  # B, G, R
    cv2.imwrite(str(tmp_path / "c.png"), img)
    inst = make_instance(str(tmp_path / "c.png"), [30, 30, 40, 40], np.full((17, 2), 50.0), np.ones(17), "coco")
    s = TopDownDataset([inst], _codec(), SIZE, train=False)[0]
    centre = s["image"][:, 128, 96].numpy()
    np.testing.assert_allclose(centre, [(30 - 123.675) / 58.395, (20 - 116.28) / 57.12, (10 - 103.53) / 57.375])


def test_weights_times_instance_weights_and_flipped(instances):
    kw = np.linspace(0.1, 1.7, 17).astype(np.float32)
    inst = instances[0]
    inst.keypoint_weights = kw
    always_flip = AugConfig(**{**NO_AUG.__dict__, "flip_prob": 1.0})
    ds = TopDownDataset([inst], OnesCodec(), SIZE, train=True, aug=always_flip)
    s = ds[0]
    assert s["flip"] is True
    idx = list(COCO.flip_indices)
    expected = kw[idx] * (inst.visibility[idx] > 0)
    np.testing.assert_allclose(s["keypoint_weights"].numpy(), expected)
    assert "weights" not in s  # the codec's own weight key is kept
    # the flipped crop keypoints: mirrored in the image, left/right swapped
    w_img = cv2.imread(inst.image_path).shape[1]
    flipped = inst.keypoints[idx].copy()
    flipped[:, 0] = w_img - 1 - flipped[:, 0]
    c, sc = bbox_xywh_to_cs(inst.bbox, 1.25)
    c[0] = w_img - 1 - c[0]
    ref = topdown_affine(np.zeros((1, 1, 3), np.uint8), flipped, c, sc, 0.0, SIZE)
    np.testing.assert_allclose(s["keypoints"].numpy(), ref.keypoints, atol=1e-4)


def test_train_determinism_and_epochs(instances):
    ds = TopDownDataset(instances, _codec(), SIZE, train=True, seed=7)
    a, b = ds[3], ds[3]
    for key in ("image", "x_labels", "y_labels", "weights", "keypoints"):
        assert torch.equal(a[key], b[key]), key
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["image"], a["image"])
    ds.set_epoch(0)
    assert torch.equal(ds[3]["image"], a["image"])
    other = TopDownDataset(instances, _codec(), SIZE, train=True, seed=8)
    assert not torch.equal(other[3]["image"], a["image"])
    ds.set_aug(AugConfig().stage2())
    assert ds.aug.rotate_factor == 60.0
    with pytest.raises(ValueError):
        TopDownDataset(instances, _codec(), SIZE, train=False).set_aug(AugConfig())


def test_bad_images_skipped_and_counted_in_training(instances, tmp_path: Path, caplog):
    insts = _make_bad(instances, tmp_path)
    ds = TopDownDataset(insts, _codec(), SIZE, train=True, seed=0)
    with caplog.at_level(logging.WARNING, logger="posedistill.data.loader"):
        s = ds[1]
    assert s["skipped"] >= 1 and s["index"] not in (1, 3, 4)
    assert ds.skipped == s["skipped"]
    assert "corrupt.jpg" in caplog.text
    assert s["image"].shape == (3, 256, 192)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="posedistill.data.loader"):
        again = ds[1]
    assert torch.equal(again["image"], s["image"]) and again["index"] == s["index"]  # same replacement
    assert "corrupt.jpg" not in caplog.text  # warned once
    assert ds.skipped == 2 * s["skipped"]
    with caplog.at_level(logging.WARNING, logger="posedistill.data.loader"):
        ds[3]
        ds[4]
    assert "truncated.jpg" in caplog.text and "missing.jpg" in caplog.text
    assert {Path(p).name for p in ds.bad_images} >= {"corrupt.jpg", "truncated.jpg", "missing.jpg"}


@pytest.mark.parametrize(("index", "name"), [(1, "corrupt.jpg"), (3, "truncated.jpg"), (4, "missing.jpg")])
def test_bad_images_raise_in_validation(instances, tmp_path: Path, index: int, name: str):
    ds = TopDownDataset(_make_bad(instances, tmp_path), _codec(), SIZE, train=False)
    with pytest.raises(PoseDataError, match=name):
        ds[index]


def test_all_images_bad_raises(tmp_path: Path):
    insts = [make_instance(str(tmp_path / f"gone{i}.jpg"), [0, 0, 10, 10], np.zeros((17, 2)), np.ones(17), "coco")
             for i in range(3)]  # fmt: skip
    ds = TopDownDataset(insts, _codec(), SIZE, train=True, max_retries=5)
    with pytest.raises(PoseDataError, match="unreadable"):
        ds[0]


class ThreadSpyCodec(SimCCCodec):
    """The SimCC codec, also reporting the OpenCV thread count that the sample was built with."""

    def encode(self, keypoints: np.ndarray, visibility: np.ndarray) -> dict[str, np.ndarray]:
        return {**super().encode(keypoints, visibility), "cv2_threads": np.array([cv2.getNumThreads()])}


@pytest.fixture
def opencv_threads():
    """Run the test with a multi-threaded OpenCV in this process (what a training script gets by default)."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    yield 3
    cv2.setNumThreads(before)


@pytest.mark.stress
def test_workers_fork_and_spawn_give_the_same_batches_and_report_skips(instances, tmp_path: Path, opencv_threads):
    # A sample depends only on (seed, epoch, index): in-process, forked and spawned workers give the same bits.
    # OpenCV's multi-threaded warps and blurs differ by a grey level at a few pixels from the single-threaded ones
    # (under load), so every process must build samples at one OpenCV thread; the spy codec checks that directly.
    insts = _make_bad(instances, tmp_path) + instances  # 9 samples, three of them bad
    batches = {}
    for workers, context in ((0, None), (2, "fork"), (2, "spawn")):
        ds = TopDownDataset(insts, ThreadSpyCodec(SIZE, (4.9, 5.66)), SIZE, train=True, seed=3)
        loader = build_loader(ds, batch_size=4, shuffle=True, num_workers=workers, seed=3,
                              multiprocessing_context=context)  # fmt: skip
        set_epoch(loader, 2)
        got = list(loader)
        batches[context] = got
        if workers == 0:  # the main process built the samples and got its own thread count back
            assert cv2.getNumThreads() == opencv_threads
        assert all(int(t) == 1 for b in got for t in b["cv2_threads"]), context
        reported = sum(sum(b["skipped"]) for b in got)
        assert reported >= 3
        assert ds.skipped == reported  # counted across worker processes
    for context in ("fork", "spawn"):
        assert len(batches[context]) == len(batches[None]) == 3
        for b0, b in zip(batches[None], batches[context]):
            assert b0["index"] == b["index"] and b0["skipped"] == b["skipped"]
            for key, value in b0.items():
                if isinstance(value, torch.Tensor):
                    assert torch.equal(value, b[key]), (context, key)
    b = batches[None][0]
    assert b["image"].shape == (4, 3, 256, 192) and b["x_labels"].shape == (4, 17, 384)
    assert b["center"].shape == (4, 2) and isinstance(b["image_id"], list) and len(b["flip"]) == 4


def test_one_opencv_thread_lowers_and_restores_and_leaves_single_threaded_opencv_alone(monkeypatch):
    calls: list[int] = []
    real = cv2.setNumThreads
    monkeypatch.setattr(cv2, "setNumThreads", lambda n: (calls.append(n), real(n)))
    real(3)
    try:
        with one_opencv_thread():
            assert cv2.getNumThreads() == 1
            with one_opencv_thread():  # nested (or another thread's sample): one switch for all
                assert cv2.getNumThreads() == 1
            assert cv2.getNumThreads() == 1
        assert cv2.getNumThreads() == 3 and calls == [1, 3]
        # already single-threaded (a forked DataLoader worker): the inherited pool is never touched
        real(1)
        calls.clear()
        with one_opencv_thread():
            pass
        assert calls == [] and cv2.getNumThreads() == 1
        # an exception inside the block still restores the caller's count
        real(3)
        with pytest.raises(RuntimeError), one_opencv_thread():
            raise RuntimeError
        assert cv2.getNumThreads() == 3
    finally:
        real(1)


class RecordingMethod(ToyMethod):
    """The toy method fed with image batches; records a digest of every batch's pixels per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[int, list[tuple[list[int], str]]] = {}

    def losses(self, batch: dict[str, Any], epoch: int) -> dict[str, torch.Tensor]:
        digest = hashlib.sha256(batch["image"].numpy().tobytes()).hexdigest()
        self.seen.setdefault(epoch, []).append((list(batch["index"]), digest))
        x = batch["image"].flatten(1)[:, :6]
        return {"loss": self.net(x).pow(2).mean()}

    def predict(self, batch: dict[str, Any], flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
        kp = batch["keypoints"].numpy().astype(np.float32)  # a perfect pose model: no trainer warning
        return kp, np.ones(kp.shape[:2], np.float32)


@pytest.mark.stress
def test_resume_with_another_worker_count_sees_the_same_samples(instances, tmp_path: Path, opencv_threads):
    def run(workers: int, resume: Path | None) -> dict[int, list[tuple[list[int], str]]]:
        method = RecordingMethod()
        ds = TopDownDataset(instances, _codec(), SIZE, train=True, seed=5)
        cfg = toy_config(3, batch_size=3, num_workers=workers, checkpoint_interval=1)
        Trainer(cfg, method, ds, work_dir=tmp_path / "run", verbose=False).fit(resume=resume)
        return method.seen

    full = run(0, None)  # in-process samples, with the test's multi-threaded OpenCV
    resumed = run(2, tmp_path / "run" / "epoch_1")  # forked workers from epoch 1 on
    assert sorted(resumed) == [1, 2]
    assert resumed[1] == full[1] and resumed[2] == full[2]
    assert full[1] != full[2]  # each epoch draws new augmentations


def test_collate_keeps_meta_lists():
    samples = [{"t": torch.ones(2), "a": np.zeros(3), "s": f"x{i}", "n": i} for i in range(3)]
    out = collate(samples)
    assert out["t"].shape == (3, 2) and out["a"].shape == (3, 3)
    assert out["s"] == ["x0", "x1", "x2"] and out["n"] == [0, 1, 2]


def test_epoch_sampler_is_seeded_permutation():
    s = EpochSampler(50, shuffle=True, seed=1)
    e0 = list(s)
    assert sorted(e0) == list(range(50)) and e0 == list(s)
    s.set_epoch(1)
    assert list(s) != e0
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


@pytest.mark.stress
def test_distributed_sampler(instances, tmp_path: Path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        ds = TopDownDataset(instances, _codec(), SIZE, train=False)
        loader = build_loader(ds, batch_size=2, shuffle=True, num_workers=0, seed=0, distributed=True)
        set_epoch(loader, 3)
        assert loader.sampler.epoch == 3 and ds.epoch == 3
        assert sorted(i for b in loader for i in b["index"]) == list(range(6))
    finally:
        dist.destroy_process_group()


def test_mixed_layouts_rejected(instances):
    other = make_instance("x.jpg", [0, 0, 1, 1], np.zeros((14, 2)), np.ones(14), "lsp")
    with pytest.raises(ValueError, match="mix layouts"):
        TopDownDataset([*instances, other], _codec(), SIZE, train=False)


@pytest.mark.stress
def test_spawned_worker_reports_skips(instances, tmp_path: Path):
    # the shared counter and bad-image flags must also survive pickling into spawned workers (macOS, Windows)
    insts = _make_bad(instances, tmp_path)
    ds = TopDownDataset(insts, _codec(), SIZE, train=True, seed=0)
    loader = build_loader(ds, batch_size=6, shuffle=False, num_workers=1, multiprocessing_context="spawn")
    batch = next(iter(loader))
    assert sum(batch["skipped"]) >= 3 and ds.skipped == sum(batch["skipped"])
    assert {Path(p).name for p in ds.bad_images} == {"corrupt.jpg", "truncated.jpg", "missing.jpg"}


def test_heatmap_codec_targets_pass_through(instances):
    from posedistill.codecs.heatmap import HeatmapCodec

    codec = HeatmapCodec(SIZE, (48, 64), sigma=2.0)
    s = TopDownDataset(instances, codec, SIZE, train=True, seed=1)[0]
    assert s["heatmaps"].shape == (17, 64, 48) and s["heatmaps"].dtype == torch.float32
    enc = codec.encode(s["keypoints"].numpy(), (s["visibility"].numpy() > 0).astype(np.float32))
    np.testing.assert_array_equal(s["heatmaps"].numpy(), enc["heatmaps"])
    np.testing.assert_array_equal(s["weights"].numpy(), enc["weights"])


def test_build_loader_stops_the_opencv_pool_before_forking_workers():
    """Forked workers hang in OpenCV's inherited thread pool (pthread_cond_destroy) unless the parent is
    single-threaded before the fork; build_loader must arrange that whenever it will fork workers."""
    import cv2

    from posedistill.data.loader import build_loader

    cv2.setNumThreads(2)
    try:
        build_loader(list(range(4)), batch_size=2, shuffle=False, num_workers=0)
        assert cv2.getNumThreads() == 2  # no workers: leave the caller's OpenCV alone
        build_loader(list(range(4)), batch_size=2, shuffle=False, num_workers=2)
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(1)
