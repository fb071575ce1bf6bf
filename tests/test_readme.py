"""What a user copies from README.md's "A short tour" works: every shell command of the tour runs as written (in a
sandbox that looks like the repository root), with extra arguments appended only to shrink its cost, and the
Python snippet under it runs as written. Commands that take hours or need another environment are listed in
SKIPPED with the reason; the DWPose chain they belong to is checked on paths instead (test_tour_dwpose_chain)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import ROOT, shared_path

README = ROOT / "README.md"
POSEDISTILL = ".venv/bin/posedistill"

# command prefix -> why the test does not run it
SKIPPED = {
    ".venv/bin/torchrun": "DDP runs the full LSPet recipe in two processes (hours on CPU); DDP itself is tested in "
    "test_engine_ddp.py",
    f"{POSEDISTILL} train configs/dwpose/synthetic_teacher_rtmpose-m.yaml": "hours on CPU (RTMPose-m, 80 epochs on "
    "2,000 generated images); test_tour_dwpose_chain checks its paths, a stand-in student takes its place",
    f"{POSEDISTILL} distill configs/dwpose/synthetic_dwpose_m-t_s1.yaml": "hours on CPU (two distillation stages); "
    "test_tour_dwpose_chain checks its paths, a stand-in student takes its place",
    "make mediapipe-env": "installs MediaPipe into a second virtual environment (network, minutes)",
    ".venv-mediapipe/bin/posedistill": "needs the environment `make mediapipe-env` creates",
    f"{POSEDISTILL} bench": "its machine-speed calibration (sgemm in subprocesses) and ONNX export take ~30 s on 2 "
    "shared cores even shrunk; the same command runs in test_export.py::test_bench_command_smoke",
}
# command prefix -> arguments appended to shrink the cost (a later option / --set overrides an earlier one)
_TINY_LSPET = [
    "train.epochs=1", "data.train.0.indices=0:8", "data.val.0.indices=2500:2504", "model.input_size=[48, 64]",
    "train.batch_size=4", "train.num_workers=0", "train.val_interval=1", "schedule.warmup_iters=1",
    "train.progress=false",
]  # fmt: skip
SHRINK = {
    f"{POSEDISTILL} synth": ["--images", "4"],
    f"{POSEDISTILL} train configs/rtmpose-t_lspet.yaml": [a for kv in _TINY_LSPET for a in ("--set", kv)],
    f"{POSEDISTILL} eval configs/rtmpose-t_lspet.yaml": ["--set", "data.val.0.indices=2500:2504"],
}
# what the sandbox holds besides what the tour writes: links into the repository and the user's own files
SANDBOX_LINKS = (".venv", "configs", "models")
USER_FILES = {"my_photo.jpg", "my_video.mp4", "my_people.json", "images"}
STUDENT = "work_dirs/synthetic_dwpose_t-t_s2/best"  # where the skipped distillation ends


def tour() -> tuple[list[str], str]:
    """The shell commands (continuation lines joined, comments dropped) and the Python snippet of the tour."""
    text = README.read_text(encoding="utf-8")
    start = text.index("## A short tour")
    section = text[start : text.index("\n## ", start + 1)]
    bash = re.search(r"```bash\n(.*?)```", section, re.S)
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert bash and python, "the tour has a bash and a python block"
    commands = []
    for line in bash.group(1).replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            commands.append(" ".join(line.split()))
    return commands, python.group(1)


def _matching(table: dict, command: str):
    return next((v for k, v in table.items() if command.startswith(k)), None)


def test_tour_commands_are_accounted_for() -> None:
    commands, _ = tour()
    assert len(commands) >= 12
    assert not [c for c in commands if c.startswith("torchrun")], "bare torchrun is not on PATH: .venv/bin/torchrun"
    for command in commands:
        assert command.split()[0] in (POSEDISTILL, ".venv/bin/torchrun", ".venv-mediapipe/bin/posedistill", "make")
    for prefix in [*SKIPPED, *SHRINK]:
        assert any(c.startswith(prefix) for c in commands), f"{prefix!r} is no longer in the tour"


def test_tour_dwpose_chain() -> None:
    """The skipped DWPose commands fit together: the teacher's run is where stage 1 looks for it, and stage 2's
    run is what strip reads."""
    from posedistill.commands.train import work_dir_for
    from posedistill.engine.config import load_config

    commands, _ = tour()
    train = next(c for c in commands if "train configs/dwpose/" in c).split()
    distill = next(c for c in commands if " distill " in c).split()
    strip = next(c for c in commands if " strip " in c).split()
    teacher_cfg = load_config(ROOT / train[2])
    teacher_run = work_dir_for(teacher_cfg, train[2], None)
    s1, s2 = distill[2], distill[distill.index("--then") + 1]
    assert load_config(ROOT / s1).method.args["teacher"] == f"{teacher_run.as_posix()}/last"
    assert strip[2] == f"{work_dir_for(load_config(ROOT / s2), s2, None).as_posix()}/best" == STUDENT


def _sandbox(tmp_path: Path) -> Path:
    """A folder that looks like the repository root (links to .venv, configs, models; ../shared next to it) and
    holds stand-ins for the user's files."""
    lspet = shared_path("data", "lspet")
    julito = shared_path("data", "coco_dev", "julito")
    root = tmp_path / "repo"
    root.mkdir()
    for name in SANDBOX_LINKS:
        (root / name).symlink_to(ROOT / name)
    (tmp_path / "shared").symlink_to(lspet.parents[1])  # the configs' ../shared/data/...
    names = ["78.jpg", "1.jpg", "90.jpg"]
    (root / "images").mkdir()
    for name in names:
        shutil.copy(julito / "images" / name, root / "images" / name)
    shutil.copy(julito / "images" / "78.jpg", root / "my_photo.jpg")
    gt = json.loads((julito / "person_keypoints.json").read_text())
    images = [im for im in gt["images"] if im["file_name"] in names]
    ids = {im["id"] for im in images}
    gt = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
    (root / "my_people.json").write_text(json.dumps(gt))
    base = cv2.resize(cv2.imread(str(julito / "images" / "78.jpg")), (160, 96))
    writer = cv2.VideoWriter(str(root / "my_video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 96))
    for t in range(5):
        writer.write(np.roll(base, 3 * t, axis=1))
    writer.release()
    return root


def _stand_in_student(root: Path) -> None:
    """An untrained whole-body RTMPose-t checkpoint (48x64) where the skipped distillation would leave its result."""
    import torch

    from posedistill.engine.builders import checkpoint_meta
    from posedistill.engine.checkpoint import save_checkpoint
    from posedistill.engine.config import load_config
    from posedistill.models.builder import build_model

    cfg = load_config(ROOT / "configs/dwpose/synthetic_dwpose_t-t_s2.yaml", ["model.input_size=[48, 64]"])
    torch.manual_seed(0)
    model = build_model("rtmpose-t", 133, input_size=(48, 64)).eval()
    save_checkpoint(root / STUDENT, model, {**checkpoint_meta(cfg), "method": "dwpose"})


def test_tour_runs_as_written(tmp_path: Path) -> None:
    commands, snippet = tour()
    root = _sandbox(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    ran, skipped = [], []
    for command in commands:
        reason = _matching(SKIPPED, command)
        if reason is not None:
            skipped.append((command, reason))
            if command.startswith(f"{POSEDISTILL} distill"):
                _stand_in_student(root)
            continue
        argv = shlex.split(command) + (_matching(SHRINK, command) or [])
        proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, f"{command}\n{proc.stderr[-3000:]}"
        ran.append(command)
    assert len(ran) >= 9 and len(skipped) == len(SKIPPED)

    proc = subprocess.run([sys.executable, "-c", snippet], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    runs = root / "runs"
    for out in ("synth/annotations.json", "t_lspet/best/meta.json", "t_lspet/eval.json", "student/meta.json",
                "student.onnx", "poses.json", "infer/my_video.mp4", "infer/my_photo.jpg", "labels.json",
                "results.json", "my_photo_pose.jpg"):  # fmt: skip
        assert (runs / out).is_file(), out
    # the tour writes into runs/ (and work_dirs/), never loose files in the repository root
    left = {p.name for p in root.iterdir()} - set(SANDBOX_LINKS) - USER_FILES - {"runs", "work_dirs"}
    assert not left, f"the tour left {sorted(left)} in the repository root"
