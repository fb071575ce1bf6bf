"""The frame loop (PosePipeline + run) with test doubles, and ``posedistill infer`` end to end on a tiny exported
RTMPose: images from the shared julito set and a short video written here."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from posedistill.cli import main
from posedistill.infer.pipeline import (
    OutputOptions,
    PosePipeline,
    boxes_from_keypoints,
    image_ids_from_coco,
    run,
)
from posedistill.infer.results import PoseResult
from posedistill.infer.smoothing import PoseSmoother
from posedistill.infer.sources import open_source
from posedistill.infer.tracking import PoseTracker
from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[1]
# 17 points spread over a person box, in box-relative coordinates
TEMPLATE = np.random.default_rng(0).uniform(0.1, 0.9, size=(17, 2))


class FakeDetector:
    """Boxes around the bright rectangles of the image."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        mask = (image.max(axis=2) > 128).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (cv2.boundingRect(c) for c in contours)]
        return np.asarray(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32)


class FakeEstimator:
    """Keypoints at fixed places inside each box (the whole image when boxes is None)."""

    layout = "coco"

    def __init__(self) -> None:
        self.boxes_seen: list[np.ndarray | None] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def __call__(self, image: np.ndarray, boxes: np.ndarray | None = None) -> PoseResult:
        h, w = image.shape[:2]
        self.boxes_seen.append(None if boxes is None else np.asarray(boxes).copy())
        boxes = np.array([[0, 0, w, h]], np.float32) if boxes is None else np.asarray(boxes, np.float32)
        kpts = boxes[:, None, :2] + TEMPLATE[None] * (boxes[:, None, 2:] - boxes[:, None, :2])
        n = len(boxes)
        return PoseResult(kpts, np.full((n, 17), 0.9), boxes, np.ones(n), np.full(n, -1), "coco", (h, w))


def _scene(t: int, h: int = 96, w: int = 160) -> np.ndarray:
    """Two bright 'people' moving right and left."""
    img = np.full((h, w, 3), 30, np.uint8)
    for x0 in (10 + 3 * t, 120 - 3 * t):
        img[20:80, x0 : x0 + 24] = 220
    return img


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


# ------------------------------------------------------------------------------------------ the frame loop


def test_boxes_from_keypoints() -> None:
    kpts = np.array([[[10, 20], [30, 60], [500, 500]]], np.float32)
    r = PoseResult(np.pad(kpts, ((0, 0), (0, 14), (0, 0))), np.pad([[0.9, 0.9, 0.1]], ((0, 0), (0, 14))),
                   [[0, 0, 1, 1]], [0.7], [-1], "coco", (100, 100))  # fmt: skip
    boxes, scores, rows = boxes_from_keypoints(r, kpt_thr=0.3, expand=1.5)
    np.testing.assert_allclose(boxes, [[5, 10, 35, 70]])  # extent 20x40 grown 1.5x about (20, 40); low point ignored
    assert scores.tolist() == pytest.approx([0.7]) and rows.tolist() == [0]
    r.scores[0, 1] = 0.0  # one point left: no box
    assert len(boxes_from_keypoints(r)[0]) == 0


def test_pipeline_detects_every_n_frames_and_tracks() -> None:
    det, est = FakeDetector(), FakeEstimator()
    pipe = PosePipeline(est, det, det_every=3, tracker=PoseTracker())
    results = [pipe(_scene(t)) for t in range(9)]
    assert det.calls == 3  # frames 0, 3, 6
    assert all(len(r) == 2 for r in results)
    assert [r.frame_id for r in results] == list(range(9))
    assert all(sorted(r.track_ids.tolist()) == [1, 2] for r in results)
    # the person starting on the left keeps its id
    left_ids = [int(r.track_ids[np.argmin(r.keypoints[:, 0, 0])]) for r in results[:5]]
    assert len(set(left_ids)) == 1
    # between detections the estimator got boxes derived from the previous keypoints, near the true ones
    assert est.boxes_seen[1] is not None and len(est.boxes_seen[1]) == 2
    np.testing.assert_allclose(results[1].box_scores, 0.9)


def test_pipeline_without_detector_and_with_nobody() -> None:
    est = FakeEstimator()
    r = PosePipeline(est)(_scene(0))
    assert est.boxes_seen == [None] and len(r) == 1
    est2 = FakeEstimator()
    empty = PosePipeline(est2, FakeDetector())(np.zeros((40, 40, 3), np.uint8))
    assert len(empty) == 0 and empty.layout == "coco" and est2.boxes_seen == []  # no model call for nobody


def test_pipeline_stream_resets_between_videos() -> None:
    est = FakeEstimator()
    pipe = PosePipeline(est, FakeDetector(), tracker=PoseTracker(), smoother=PoseSmoother())
    resets = est.resets
    for _ in range(2):
        ids = [r.track_ids.tolist() for _, r in pipe.stream(open_source([_scene(t) for t in range(4)]))]
        assert sorted(ids[0]) == [1, 2]  # each video starts its ids again
    assert est.resets == resets + 2  # the temporal-model hook ran for each video
    with pytest.raises(ValueError, match="tracker"):
        PosePipeline(est, smoother=PoseSmoother())
    with pytest.raises(ValueError, match="det_every"):
        PosePipeline(est, det_every=0)


def test_run_video_writes_video_and_json(tmp_path: Path) -> None:
    video = _write_video(tmp_path / "walk.mp4", [_scene(t) for t in range(8)])
    pipe = PosePipeline(FakeEstimator(), FakeDetector(), tracker=PoseTracker(), smoother=PoseSmoother())
    out = tmp_path / "out"
    summary = run(pipe, open_source(video), OutputOptions(out_dir=out, json_path=out / "walk.json"), progress=False)
    assert summary.frames == 8 and summary.people == 16 and not summary.interrupted
    cap = cv2.VideoCapture(str(out / "walk.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    cap.release()
    doc = json.loads((out / "walk.json").read_text())
    assert [e["frame_id"] for e in doc["instance_info"]] == list(range(8))
    assert all(sorted(i["track_id"] for i in e["instances"]) == [1, 2] for e in doc["instance_info"])


def test_run_images_openpose_and_interrupt(tmp_path: Path) -> None:
    for t in range(3):
        cv2.imwrite(str(tmp_path / f"{t}.png"), _scene(t))
    pipe = PosePipeline(FakeEstimator(), FakeDetector())
    opts = OutputOptions(
        out_dir=tmp_path / "vis", json_path=tmp_path / "op", json_format="openpose", skeleton="openpose"
    )
    run(pipe, open_source(tmp_path), opts, progress=False)
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    assert sorted(p.name for p in (tmp_path / "op").iterdir()) == [f"{t}_keypoints.json" for t in range(3)]

    def stop(frame, _result) -> None:
        if frame.frame_id == 1:
            raise KeyboardInterrupt

    opts = OutputOptions(json_path=tmp_path / "part.json", flush_interval=3600)
    summary = run(pipe, open_source(tmp_path), opts, progress=False, on_frame=stop)
    assert summary.interrupted and summary.frames == 2
    assert len(json.loads((tmp_path / "part.json").read_text())["instance_info"]) == 2

    def crash(frame, _result) -> None:
        raise RuntimeError("model blew up")

    with pytest.raises(RuntimeError, match="blew up"):
        run(pipe, open_source(tmp_path), OutputOptions(json_path=tmp_path / "c.json", json_format="coco"),
            progress=False, on_frame=crash)  # fmt: skip
    assert len(json.loads((tmp_path / "c.json").read_text())) == 2  # the frame done, its two people


def test_a_frame_whose_picture_fails_is_not_in_the_json(tmp_path: Path, monkeypatch) -> None:
    import posedistill.infer.pipeline as pipeline_module

    for t in range(3):
        cv2.imwrite(str(tmp_path / f"{t}.png"), _scene(t))
    written: list[str] = []

    def write_image(path: Path, image: np.ndarray) -> None:
        if len(written) == 1:
            raise OSError(f"{path}: disk full")
        written.append(path.name)

    monkeypatch.setattr(pipeline_module, "write_image", write_image)
    pipe = PosePipeline(FakeEstimator(), FakeDetector())
    opts = OutputOptions(out_dir=tmp_path / "vis", json_path=tmp_path / "r.json", json_format="coco")
    with pytest.raises(OSError, match="disk full"):
        run(pipe, open_source(tmp_path), opts, progress=False)
    people = json.loads((tmp_path / "r.json").read_text())
    assert written == ["0.jpg"] and len(people) == 2 and {p["image_id"] for p in people} == {people[0]["image_id"]}


def test_image_ids_from_coco(tmp_path: Path) -> None:
    (tmp_path / "gt.json").write_text(json.dumps({"images": [{"id": 19, "file_name": "78.jpg"}]}))
    assert image_ids_from_coco(tmp_path / "gt.json") == {"78.jpg": 19}  # by file name: x.jpg and x.png differ
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(Exception, match=r"bad\.json"):
        image_ids_from_coco(tmp_path / "bad.json")


# ------------------------------------------------------------------------------------ posedistill infer (CLI)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random RTMPose-t (COCO-17, 64x48 input) exported to ONNX with a dynamic batch."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from posedistill.infer.export import export_onnx
    from posedistill.models.builder import build_model

    torch.manual_seed(0)
    model = build_model("rtmpose-t", 17, input_size=(48, 64)).eval()
    return export_onnx(model, tmp_path_factory.mktemp("model") / "tiny.onnx", layout="coco", dynamic_batch=True)


@pytest.fixture(scope="module")
def julito_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small julito photos, copied into a folder."""
    src = shared_path("data", "coco_dev", "julito", "images")
    folder = tmp_path_factory.mktemp("julito")
    for name in ("78.jpg", "1.jpg", "90.jpg"):
        shutil.copy(src / name, folder / name)
    return folder


def test_cli_images_coco_json_evaluates(tiny_onnx: Path, julito_images: Path, tmp_path: Path, capsys) -> None:
    gt = shared_path("data", "coco_dev", "julito", "person_keypoints.json")
    out = tmp_path / "vis"
    rc = main(["infer", str(julito_images), "--model", str(tiny_onnx), "--out", str(out), "--format", "coco",
               "--json", str(tmp_path / "res.json"), "--image-ids", str(gt), "--detector", "none",
               "--quiet"])  # fmt: skip
    assert rc == 0
    assert "done: 3 frames, 3 people" in capsys.readouterr().out
    recs = json.loads((tmp_path / "res.json").read_text())
    ids = image_ids_from_coco(gt)
    assert sorted(r["image_id"] for r in recs) == sorted(ids[n] for n in ("78.jpg", "1.jpg", "90.jpg"))
    for r in recs:
        kp = np.asarray(r["keypoints"]).reshape(17, 3)
        x, y, w, h = r["bbox"]
        # no detector: the box is the whole image; points decode inside the model's crop: the box padded 1.25x
        # and widened to the model's 48:64 aspect ratio, in original-image pixels
        assert [x, y] == [0, 0]
        sw, sh = 1.25 * w, 1.25 * h
        sw, sh = (sw, sw / 0.75) if sw / sh > 0.75 else (sh * 0.75, sh)
        assert (np.abs(kp[:, :2] - [w / 2, h / 2]) <= [sw / 2 + 1, sh / 2 + 1]).all()
    vis = {p.name: cv2.imread(str(p)) for p in out.iterdir()}
    assert sorted(vis) == ["1.jpg", "78.jpg", "90.jpg"]
    assert vis["78.jpg"].shape == cv2.imread(str(julito_images / "78.jpg")).shape
    # the file is a valid COCO results file for the ground truth (random weights: the AP itself is meaningless)
    from posedistill.eval.coco import coco_eval

    stats = coco_eval(gt, tmp_path / "res.json", "coco")
    assert 0.0 <= next(iter(stats.values()))["AP"] <= 1.0


def test_cli_video_tracking_smoothing_mmpose_and_openpose(tiny_onnx: Path, julito_images: Path, tmp_path: Path) -> None:
    base = cv2.resize(cv2.imread(str(julito_images / "78.jpg")), (160, 90))
    frames = [np.roll(base, 2 * t, axis=1) for t in range(6)]
    video = _write_video(tmp_path / "clip.mp4", frames)
    out = tmp_path / "out"
    rc = main(["infer", str(video), "--model", str(tiny_onnx), "--out", str(out), "--format", "mmpose", "--track",
               "--smooth", "oneeuro", "--detector", "none", "--quiet"])  # fmt: skip
    assert rc == 0
    doc = json.loads((out / "clip.json").read_text())
    assert doc["meta_info"]["dataset_name"] == "coco"
    assert [e["frame_id"] for e in doc["instance_info"]] == list(range(6))
    assert all([i["track_id"] for i in e["instances"]] == [1] for e in doc["instance_info"])
    assert np.asarray(doc["instance_info"][0]["instances"][0]["keypoints"]).shape == (17, 2)
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 160
    cap.release()

    rc = main(["infer", str(video), "--model", str(tiny_onnx), "--no-vis", "--format", "openpose", "--json",
               str(tmp_path / "op"), "--skeleton", "openpose", "--black-background", "--detector", "none",
               "--quiet"])  # fmt: skip
    assert rc == 0
    files = sorted((tmp_path / "op").iterdir())
    assert [p.name for p in files][:2] == ["clip_000000_keypoints.json", "clip_000001_keypoints.json"]
    assert len(files) == 6
    person = json.loads(files[0].read_text())["people"][0]
    assert len(person["pose_keypoints_2d"]) == 54 and person["face_keypoints_2d"] == []


@pytest.mark.stress
def test_cli_runtime_is_torch_free(tiny_onnx: Path, tmp_path: Path) -> None:
    """``posedistill infer`` with an ONNX model, tracking and smoothing never imports torch."""
    cv2.imwrite(str(tmp_path / "a.png"), _scene(0))
    code = (
        "import sys; from posedistill.cli import main; "
        f"rc = main(['infer', {str(tmp_path / 'a.png')!r}, '--model', {str(tiny_onnx)!r}, '--out', "
        f"{str(tmp_path / 'o')!r}, '--track', '--smooth', 'oneeuro', '--format', 'openpose', '--quiet']); "
        "print('torch' in sys.modules, rc)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.stdout.strip().splitlines()[-1] == "False 0", out.stderr


def test_cli_errors(tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    assert main(["infer", str(tmp_path / "nope.jpg"), "--model", str(tiny_onnx), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nope.jpg" in err and "no such file" in err
    cv2.imwrite(str(tmp_path / "a.png"), _scene(0))
    assert main(["infer", str(tmp_path / "a.png"), "--model", str(tmp_path / "missing.onnx"), "--quiet"]) == 2
    assert "missing.onnx" in capsys.readouterr().err
    assert main(["infer", str(tmp_path / "a.png"), "--model", str(tiny_onnx), "--det-every", "0", "--quiet"]) == 2


def json_frames(path: Path) -> int:
    """Frames in an MMPose JSON output so far (0 before its first write; the writer replaces it atomically)."""
    return len(json.loads(path.read_text())["instance_info"]) if path.is_file() else 0


@pytest.mark.stress
def test_cli_sigterm_mid_video_finishes_outputs(tiny_onnx: Path, tmp_path: Path) -> None:
    video = _write_video(tmp_path / "long.mp4", [_scene(t % 30, 48, 64) for t in range(3000)], fps=25)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "posedistill", "infer", str(video), "--model", str(tiny_onnx), "--out", str(out),
         "--format", "mmpose", "--track", "--quiet", "--threads", "1"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    # Interrupt once a frame has gone all the way through (JSON and video): the JSON writer's periodic rewrite
    # (every 2 s) holding two frames proves it, on a machine of any speed and load.
    deadline = time.monotonic() + 600
    while json_frames(out / "long.json") < 2:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be interrupted (exit {proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no frame done in 600 s: {proc.communicate()[1]}")
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stdout
    doc = json.loads((out / "long.json").read_text())
    n = len(doc["instance_info"])
    assert 0 < n < 3000
    cap = cv2.VideoCapture(str(out / "long.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n  # the video holds the same frames as the JSON
    cap.release()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
