"""Frame sources (images, folders, globs, videos, arrays; clear errors) and writers that never leave a truncated
file, including when the writing process is killed."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from posedistill.errors import PoseDataError
from posedistill.infer.results import PoseResult
from posedistill.infer.sources import open_source
from posedistill.infer.writers import JsonResultWriter, OpenPoseWriter, VideoWriter, image_id_for, write_image

ROOT = Path(__file__).resolve().parents[1]


def _image(value: int, h: int = 24, w: int = 32) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _video(path: Path, n: int, fps: float = 10.0, size: tuple[int, int] = (32, 24)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), 20 * i % 250, np.uint8))
    writer.release()
    return path


def _result(frame_id: int, n: int = 1) -> PoseResult:
    rng = np.random.default_rng(frame_id)
    return PoseResult(
        rng.uniform(0, 30, (n, 17, 2)),
        rng.uniform(0, 1, (n, 17)),
        np.tile([1.0, 2.0, 20.0, 22.0], (n, 1)),
        np.full(n, 0.8),
        np.arange(n),
        "coco",
        (24, 32),
        frame_id=frame_id,
    )


# ------------------------------------------------------------------------------------------------ sources


def _touch(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_image_file_source(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), _image(7))
    src = open_source(tmp_path / "a.png")
    assert src.kind == "image" and len(src) == 1 and not src.is_video
    frames = list(src)
    assert [(f.frame_id, f.name, f.timestamp) for f in frames] == [(0, "a", None)]
    assert frames[0].image.shape == (24, 32, 3) and frames[0].image[0, 0, 0] == 7


def test_folder_and_glob_sources_in_natural_order(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"{i}.png"), _image(i))
    (tmp_path / "notes.txt").write_text("not an image")
    folder = open_source(str(tmp_path))
    assert folder.kind == "folder" and [f.name for f in folder] == ["1", "2", "10"]
    glob = open_source(str(tmp_path / "*.png"))
    assert glob.kind == "glob" and [int(f.image[0, 0, 0]) for f in glob] == [1, 2, 10]


def test_glob_name_collisions_get_unique_names(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "1.png"), _image(3))
    names = [f.name for f in open_source(str(tmp_path / "*" / "1.png"))]
    assert names == ["a_1", "b_1"]


def test_video_source(tmp_path: Path) -> None:
    src = open_source(_video(tmp_path / "clip.mp4", 5))
    assert src.kind == "video" and src.is_video and src.fps == pytest.approx(10.0) and len(src) == 5
    frames = list(src)
    assert [f.frame_id for f in frames] == [0, 1, 2, 3, 4]
    assert frames[2].name == "clip_000002" and frames[2].timestamp == pytest.approx(0.2)
    assert frames[0].image.shape == (24, 32, 3)


def test_array_source() -> None:
    src = open_source([_image(1), _image(2)])
    assert [f.name for f in src] == ["array_000000", "array_000001"]
    with pytest.raises(PoseDataError, match="uint8"):
        open_source([np.zeros((4, 4), np.float32)])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.jpg", "no such file or folder"),
        (lambda d: str(d / "*.jpg"), "matches no image files"),
        (lambda d: d, "contains no images"),
        (lambda d: _touch(d / "x.dat", b"123"), "unknown file type"),
        (lambda d: _touch(d / "v.mp4", b""), "video"),
        (lambda d: _touch(d / "v.avi", b"not a video at all"), "video"),
    ],
    ids=["missing", "empty-glob", "empty-folder", "unknown-ext", "empty-video-file", "garbage-video"],
)
def test_source_errors_name_the_path(tmp_path: Path, make, message: str) -> None:
    target = make(tmp_path)
    with pytest.raises(PoseDataError, match=message) as info:
        open_source(target)
    assert str(Path(str(target)).name) in str(info.value)


def test_missing_webcam_is_an_error() -> None:
    with pytest.raises(PoseDataError, match="webcam 97: cannot open the camera"):
        open_source("97")


def test_video_with_zero_frames_is_an_error(tmp_path: Path) -> None:
    path = _video(tmp_path / "empty.mp4", 0)
    with pytest.raises(PoseDataError) as info:
        open_source(path)
    assert "empty.mp4" in str(info.value)


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "1.jpg"), _image(5))
    cv2.imwrite(str(tmp_path / "3.jpg"), _image(6))
    data = (tmp_path / "1.jpg").read_bytes()
    (tmp_path / "2.jpg").write_bytes(data[: len(data) // 2])  # truncated
    # alone, it is an error naming the file
    with pytest.raises(PoseDataError, match=r"2\.jpg.*truncated"):
        next(iter(open_source(tmp_path / "2.jpg")))
    # in a folder, it is skipped (with a warning) and the others are read, as training does
    source = open_source(tmp_path)
    assert [(f.frame_id, f.name) for f in source] == [(0, "1"), (2, "3")]
    assert source.skipped == [str(tmp_path / "2.jpg")]
    # a folder of nothing but unreadable images is an error
    (tmp_path / "1.jpg").write_bytes(b"junk")
    (tmp_path / "3.jpg").write_bytes(b"junk")
    with pytest.raises(PoseDataError, match="none of the 3 images"):
        list(open_source(tmp_path))


# ------------------------------------------------------------------------------------------------ writers


def test_json_writer_mmpose_is_valid_after_every_flush(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    with JsonResultWriter(path, "mmpose", flush_every=2) as w:
        w.add(_result(0), name="f0")
        assert not path.exists()
        w.add(_result(1), name="f1")
        doc = json.loads(path.read_text())
        assert [e["frame_id"] for e in doc["instance_info"]] == [0, 1]
        w.add(_result(2), name="f2")
    doc = json.loads(path.read_text())
    assert doc["meta_info"]["dataset_name"] == "coco" and len(doc["meta_info"]["keypoint_info"]) == 17
    assert [e["name"] for e in doc["instance_info"]] == ["f0", "f1", "f2"]
    inst = doc["instance_info"][2]["instances"][0]
    np.testing.assert_allclose(inst["keypoints"], _result(2).keypoints[0], atol=1e-3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_json_writer_coco(tmp_path: Path) -> None:
    path = tmp_path / "res.json"
    with JsonResultWriter(path, "coco") as w:
        w.add(_result(0, n=2), name="000000000139")
        w.add(PoseResult.empty("coco", (24, 32), frame_id=1), name="empty")
        w.add(_result(2), name="clip_000002")
    recs = json.loads(path.read_text())
    assert [r["image_id"] for r in recs] == [139, 139, 2]
    assert all(len(r["keypoints"]) == 51 for r in recs)
    assert image_id_for("42", 7) == 42 and image_id_for("a42", 7) == 7


def test_json_writer_with_no_frames_and_bad_format(tmp_path: Path) -> None:
    with JsonResultWriter(tmp_path / "none.json", "coco"):
        pass
    assert json.loads((tmp_path / "none.json").read_text()) == []
    with JsonResultWriter(tmp_path / "none2.json", "mmpose", layout="coco_wholebody"):
        pass
    assert json.loads((tmp_path / "none2.json").read_text())["instance_info"] == []
    with pytest.raises(ValueError, match="unknown JSON format"):
        JsonResultWriter(tmp_path / "x.json", "openpose")  # type: ignore[arg-type]


def test_json_writer_keeps_frames_done_when_the_loop_crashes(tmp_path: Path) -> None:
    path = tmp_path / "crash.json"
    with pytest.raises(RuntimeError, match="boom"), JsonResultWriter(path, "mmpose", flush_interval=3600) as w:
        for i in range(5):
            if i == 3:
                raise RuntimeError("boom")
            w.add(_result(i))
    assert len(json.loads(path.read_text())["instance_info"]) == 3


_WRITER_SCRIPT = """
import signal, sys, time
# a process started from a non-interactive shell's background job inherits SIGINT ignored, and Python then keeps
# it ignored; Ctrl-C is what this test sends, so give it Python's usual handler
signal.signal(signal.SIGINT, signal.default_int_handler)
from posedistill.infer.pipeline import sigterm_as_keyboard_interrupt
from posedistill.infer.writers import JsonResultWriter
from posedistill.infer.results import PoseResult
import numpy as np

path, fmt = sys.argv[1], sys.argv[2]
with sigterm_as_keyboard_interrupt():
    try:
        with JsonResultWriter(path, fmt, flush_every=1) as w:
            for i in range(10_000):
                r = PoseResult(np.full((1, 17, 2), i), np.ones((1, 17)), [[0, 0, 5, 5]], [1.0], [1], "coco", (9, 9), i)
                w.add(r, name=str(i))
                print(i, flush=True)
                time.sleep(0.01)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


@pytest.mark.stress
@pytest.mark.parametrize(
    ("sig", "fmt"),
    [(signal.SIGTERM, "mmpose"), (signal.SIGINT, "coco"), (signal.SIGKILL, "mmpose"), (signal.SIGKILL, "coco")],
    ids=["term-mmpose", "int-coco", "kill-mmpose", "kill-coco"],
)
def test_killed_writer_leaves_valid_json(tmp_path: Path, sig: signal.Signals, fmt: str) -> None:
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(_WRITER_SCRIPT))
    out = tmp_path / "out.json"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), fmt], stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None
    # Signal once the child reports frame 5 done (it has its handlers by then). A thread reads its output, so a
    # child that hangs cannot block the test; the deadline is generous for a loaded machine (the child's start
    # imports numpy and OpenCV, seconds when idle).
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    done = -1
    deadline = time.monotonic() + 300
    while done < 5:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"the writer reported {done + 1} frames in 300 s (exit code {proc.poll()})")
        if line.strip().isdigit():
            done = int(line)
    proc.send_signal(sig)
    proc.wait(timeout=300)
    reader.join(timeout=60)  # the rest of its output, up to the end of the pipe
    rest = ""
    while not lines.empty():
        rest += lines.get()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert "interrupted" in rest and proc.returncode == 0  # the writer was closed in order
    doc = json.loads(out.read_text())  # valid JSON in every case
    frames = doc["instance_info"] if fmt == "mmpose" else doc
    assert len(frames) >= done + 1  # every frame reported done is in the file
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")] or sig == signal.SIGKILL


def test_openpose_writer_one_file_per_frame(tmp_path: Path) -> None:
    folder = tmp_path / "op"
    with OpenPoseWriter(folder, include_face=False) as w:
        w.add(_result(0, n=2), "clip_000000")
        w.add(_result(1), "clip_000001")
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["clip_000000_keypoints.json", "clip_000001_keypoints.json"]
    doc = json.loads((folder / files[0]).read_text())
    assert len(doc["people"]) == 2 and len(doc["people"][0]["pose_keypoints_2d"]) == 54


def test_video_writer_renames_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "out" / "annotated.mp4"
    w = VideoWriter(path, fps=12)
    for i in range(6):
        w.write(_image(30 * i))
    w.write(_image(200, h=48, w=64))  # another size: resized to the first
    assert not path.exists() and len(list(path.parent.iterdir())) == 1  # only the hidden partial file
    w.close()
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12)
    cap.release()
    assert [p.name for p in path.parent.iterdir()] == ["annotated.mp4"]
    empty = VideoWriter(tmp_path / "none.mp4")
    empty.close()
    assert not (tmp_path / "none.mp4").exists()


def test_write_image_atomic(tmp_path: Path) -> None:
    write_image(tmp_path / "sub" / "x.png", _image(9))
    assert cv2.imread(str(tmp_path / "sub" / "x.png"))[0, 0, 0] == 9
    with pytest.raises(Exception):  # noqa: B017 - OpenCV's own error type varies by version
        write_image(tmp_path / "y.unknownext", _image(9))
    assert [p.name for p in tmp_path.iterdir()] == ["sub"]
