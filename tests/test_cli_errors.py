"""A new user's bad inputs (issue "Reliability", part 3): each gets one line on stderr that names the file or the
option and what was expected, exit status 2, no traceback and no half-written output; bad images among many are
skipped with a warning; results are never silently wrong; the terminal stays readable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from posedistill.cli import main
from posedistill.errors import UsageError
from posedistill.fileio import check_writable_output, file_mode
from tests.conftest import ROOT
from tests.test_engine_cli import make_tiny_lsp, tiny_config


def fails(capsys: pytest.CaptureFixture, *argv: object, expect: tuple[str, ...] = (), early: bool = True) -> str:
    """Run the CLI; it must exit 2 with exactly one error line containing ``expect`` and, when ``early``, before
    printing anything on stdout (no work was done); returns that line."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert not (early and out.strip()), out
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    for text in expect:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Tiny LSP data and config, an untrained RTMPose-t checkpoint (48x64) and its ONNX file, a folder of two
    images, and ``blocker``: a regular file, so that ``blocker/sub/...`` cannot be created (tests run as root,
    for whom a read-only folder is still writable)."""
    import torch

    from posedistill.engine.builders import checkpoint_meta
    from posedistill.engine.checkpoint import save_checkpoint
    from posedistill.engine.config import load_config
    from posedistill.infer.export import export_onnx
    from posedistill.models.builder import build_model

    tmp = tmp_path_factory.mktemp("cli_errors")
    mat = make_tiny_lsp(tmp / "lsp")
    cfg = tiny_config(tmp, mat, train={"epochs": 1})
    torch.manual_seed(0)
    model = build_model("rtmpose-t", 14, input_size=(48, 64)).eval()
    meta = checkpoint_meta(load_config(cfg))
    ckpt = save_checkpoint(tmp / "ckpt", model, meta)
    onnx = export_onnx(model, tmp / "tiny.onnx", meta=meta, dynamic_batch=True)
    images = tmp / "images"
    images.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(tmp / "lsp" / "images" / f"im0000{1 + (name == 'b.jpg')}.jpg", images / name)
    blocker = tmp / "file.txt"
    blocker.write_text("a file, not a folder\n")
    return SimpleNamespace(tmp=tmp, mat=mat, cfg=cfg, ckpt=ckpt, onnx=onnx, images=images, blocker=blocker)


# ------------------------------------------------------------------------------------- unwritable outputs

# case -> (argv with OUT for the bad path, what the bad path must be: file / dir, the option named)
UNWRITABLE = {
    "infer --out": (lambda e: ["infer", e.images, "--model", e.onnx, "--out", "OUT", "--quiet"], "dir", "--out"),
    "infer --json": (
        lambda e: ["infer", e.images, "--model", e.onnx, "--out", e.tmp / "vis_never", "--json", "OUT", "--quiet"],
        "file",
        "--json",
    ),
    "synth --out": (lambda e: ["synth", "--out", "OUT", "--images", "2"], "dir", "--out"),
    "train --work-dir": (lambda e: ["train", e.cfg, "--work-dir", "OUT"], "dir", "--work-dir"),
    "eval --out": (lambda e: ["eval", e.cfg, "--checkpoint", e.ckpt, "--out", "OUT"], "file", "--out"),
    "eval --dump": (
        lambda e: ["eval", e.cfg, "--checkpoint", e.ckpt, "--out", e.tmp / "m_never.json", "--dump", "OUT"],
        "file",
        "--dump",
    ),
    "strip OUT": (lambda e: ["strip", e.ckpt, "OUT"], "dir", "OUT"),
    "deploy OUT": (lambda e: ["deploy", e.ckpt, "OUT"], "dir", "OUT"),
    "export --out": (lambda e: ["export", e.ckpt, "--out", "OUT"], "file", "--out"),
    "label --out": (lambda e: ["label", e.images, "--teacher", e.onnx, "--out", "OUT", "--quiet"], "file", "--out"),
    "label --results": (
        lambda e: [
            "label",
            e.images,
            "--teacher",
            e.onnx,
            "--out",
            e.tmp / "labels_never.json",
            "--results",
            "OUT",
            "--quiet",
        ],
        "file",
        "--results",
    ),
    "bench --json": (lambda e: ["bench", "rtmpose-t", "--json", "OUT", "--iters", "1"], "file", "--json"),
    "demo --out": (lambda e: ["demo", "--out", "OUT"], "dir", "--out"),
}
NEVER_WRITTEN = ("vis_never", "m_never.json", "labels_never.json")


@pytest.mark.parametrize("case", sorted(UNWRITABLE))
@pytest.mark.parametrize("how", ["under_a_file", "wrong_kind"])
def test_unwritable_output_fails_before_any_work(env: SimpleNamespace, capsys, case: str, how: str) -> None:
    argv, kind, option = UNWRITABLE[case]
    if how == "under_a_file":  # file.txt/sub/...: a missing parent that cannot be created
        bad, expect = env.blocker / "sub" / ("out" if kind == "dir" else "out.json"), "is a file, not a folder"
    elif kind == "dir":
        bad, expect = env.blocker, "expected a folder"
    else:
        bad, expect = env.images, "expected a file name"
    before = env.blocker.read_text()
    fails(capsys, *[bad if a == "OUT" else a for a in argv(env)], expect=(option, str(bad), expect))
    assert env.blocker.read_text() == before and sorted(p.name for p in env.images.iterdir()) == ["a.jpg", "b.jpg"]
    assert not [n for n in NEVER_WRITTEN if (env.tmp / n).exists()]  # the other outputs were not written first


def test_check_writable_output_read_only_and_permissions(tmp_path: Path, monkeypatch) -> None:
    assert check_writable_output(tmp_path / "new" / "x.json") == tmp_path / "new" / "x.json"
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(UsageError, match=r"--json .*x\.json: cannot write in .*(read-only|permission denied)"):
        check_writable_output(tmp_path / "x.json", "file", "--json")
    monkeypatch.setattr(os, "statvfs", lambda p: SimpleNamespace(f_flag=os.ST_RDONLY))
    with pytest.raises(UsageError, match="the file system is read-only"):
        check_writable_output(tmp_path / "d", "dir", "--out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (the check follows os.access)")
def test_check_writable_output_real_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(UsageError, match="permission denied"):
            check_writable_output(ro / "x.json", "file", "--json")
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------------------------------- bad validation images


ONE_BATCH = ["--set", "data.train.0.indices=0:4"]  # one training iteration: the validation is what is tested


def _bad_copy(env: SimpleNamespace, dest: Path, bad: list[int]) -> Path:
    """The tiny config on a copy of the LSP data whose images ``bad`` (1-based) are truncated JPEGs."""
    shutil.copytree(env.mat.parent, dest)
    for i in bad:
        img = dest / "images" / f"im{i:05d}.jpg"
        img.write_bytes(img.read_bytes()[:100])
    text = env.cfg.read_text().replace(str(env.mat), str(dest / "joints.mat"))
    cfg = dest / "bad.yaml"
    cfg.write_text(text)
    return cfg


def test_bad_validation_image_is_skipped_in_train_and_eval(env: SimpleNamespace, tmp_path: Path, capsys,
                                                           caplog) -> None:  # fmt: skip
    cfg = _bad_copy(env, tmp_path / "lsp", bad=[18])  # validation is images 17-20
    work = tmp_path / "work"
    # a DataLoader worker, as the user had it: the error used to end the epoch before its checkpoint
    rc = main(["train", str(cfg), "--work-dir", str(work), "--set", "train.num_workers=1", *ONE_BATCH])
    assert rc == 0
    out = capsys.readouterr().out
    assert (work / "last" / "meta.json").is_file() and (work / "best" / "meta.json").is_file()
    assert "num_skipped 1" in out
    assert any("im00018.jpg" in r.getMessage() and "skipping" in r.getMessage() for r in caplog.records)
    dump = tmp_path / "dump.json"
    rc = main(["eval", str(cfg), "--checkpoint", str(work / "last"), "--out", str(tmp_path / "m.json"), "--dump",
               str(dump)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert metrics["num_instances"] == 3 and metrics["num_skipped"] == 1
    assert len(json.loads(dump.read_text())) == 3  # no zero prediction for the unreadable image


def test_unreadable_validation_keeps_the_epoch(env: SimpleNamespace, tmp_path: Path, capsys) -> None:
    cfg = _bad_copy(env, tmp_path / "lsp", bad=[17, 18, 19, 20])
    work = tmp_path / "work"
    fails(capsys, "train", cfg, "--work-dir", work, *ONE_BATCH, expect=("none of the 4 validation items",),
          early=False)  # fmt: skip
    assert json.loads((work / "last" / "meta.json").read_text())["epoch"] == 1  # the epoch's training is kept


# ------------------------------------------------------------------------------- values checked up front


def test_train_binary_file(tmp_path: Path, capsys) -> None:
    binary = tmp_path / "model.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    fails(capsys, "train", binary, expect=(str(binary), "not a text file", "YAML config"))


def test_eval_unknown_metric_fails_before_evaluating(env: SimpleNamespace, capsys) -> None:
    line = fails(capsys, "eval", env.cfg, "--checkpoint", env.ckpt, "--set", "eval.metric=nosuch",
                 expect=("--set eval.metric=nosuch", "'nosuch' is not one of"))  # fmt: skip
    assert "'pck'" in line  # the valid choices


def test_set_blames_the_option_not_the_file(env: SimpleNamespace, capsys) -> None:
    line = fails(capsys, "train", env.cfg, "--set", "nosuchsection.x=1", expect=("--set nosuchsection.x=1",))
    assert str(env.cfg) not in line


def test_export_opset_out_of_range(env: SimpleNamespace, tmp_path: Path, capsys) -> None:
    fails(capsys, "export", env.ckpt, "--out", tmp_path / "x.onnx", "--opset", "5", expect=("--opset 5", "from 7"))
    assert not (tmp_path / "x.onnx").exists()


def test_demo_size_too_small(tmp_path: Path, capsys) -> None:
    fails(capsys, "demo", "--size", "8", "--out", tmp_path / "demo", expect=("--size 8", "at least 16"))
    assert not (tmp_path / "demo").exists()


def test_bad_option_values(env: SimpleNamespace, tmp_path: Path, capsys) -> None:
    fails(capsys, "strip", env.ckpt, tmp_path / "s", "--layout", "nosuchlayout",
          expect=("--layout nosuchlayout", "known: "))  # fmt: skip
    fails(capsys, "infer", env.images, "--model", env.onnx, "--kpt-thr", "5", expect=("--kpt-thr 5", "[0, 1]"))
    fails(capsys, "infer", env.images, "--model", env.onnx, "--no-vis", expect=("--no-vis", "--json"))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ strip OUT


def test_strip_refuses_an_existing_non_checkpoint(env: SimpleNamespace, tmp_path: Path, capsys) -> None:
    photo = tmp_path / "photo.jpg"
    shutil.copy(env.images / "a.jpg", photo)
    data = photo.read_bytes()
    fails(capsys, "strip", env.ckpt, photo, expect=("photo.jpg", "is an existing file; expected a folder"))
    assert photo.read_bytes() == data
    fails(capsys, "strip", env.ckpt, env.images, expect=("not a posedistill checkpoint",))
    assert sorted(p.name for p in env.images.iterdir()) == ["a.jpg", "b.jpg"]
    # an existing checkpoint is what OUT may replace
    out = tmp_path / "stripped"
    assert main(["strip", str(env.ckpt), str(out)]) == 0
    assert main(["strip", str(env.ckpt), str(out)]) == 0


# ------------------------------------------------------------------------------------------------ infer


def test_infer_unreadable_image_writes_nothing(env: SimpleNamespace, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "notimage.jpg"
    bad.write_text("not an image")
    fails(capsys, "infer", bad, "--model", env.onnx, "--json", tmp_path / "p.json", "--out", tmp_path / "vis",
          "--quiet", expect=("notimage.jpg", "cannot decode"))  # fmt: skip
    assert not (tmp_path / "p.json").exists() and not list((tmp_path / "vis").glob("*.jpg"))


def test_infer_folder_skips_a_bad_image(env: SimpleNamespace, tmp_path: Path, capsys, caplog) -> None:
    folder = tmp_path / "photos"
    shutil.copytree(env.images, folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff junk")
    rc = main(["infer", str(folder), "--model", str(env.onnx), "--detector", "none", "--out", str(tmp_path / "vis"),
               "--json", str(tmp_path / "p.json"), "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "done: 2 frames" in out and "skipped 1 unreadable images" in out and "broken.jpg" in out
    assert any("broken.jpg" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == ["a.jpg", "b.jpg"]


def test_infer_same_stem_gives_unique_outputs(env: SimpleNamespace, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    image = cv2.imread(str(env.images / "a.jpg"))
    for name in ("x.jpg", "x.jpeg", "x.png"):
        cv2.imwrite(str(folder / name), image)
    rc = main(["infer", str(folder), "--model", str(env.onnx), "--detector", "none", "--out", str(tmp_path / "vis"),
               "--json", str(tmp_path / "p.json"), "--quiet"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == ["x.jpeg.jpg", "x.jpg.jpg", "x.png.jpg"]
    names = [e["name"] for e in json.loads((tmp_path / "p.json").read_text())["instance_info"]]
    assert sorted(names) == ["x.jpeg", "x.jpg", "x.png"]


def test_infer_image_ids_never_guessed(env: SimpleNamespace, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("7.jpg", "7.png", "139.jpg"):
        cv2.imwrite(str(folder / name), cv2.imread(str(env.images / "a.jpg")))
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 1, "file_name": "val/7.jpg"}, {"id": 2, "file_name": "7.png"}]}))
    common = ["--model", env.onnx, "--detector", "none", "--format", "coco", "--image-ids", gt, "--quiet"]
    # 139.jpg is not in gt.json: its file-name number would be another image's id
    fails(capsys, "infer", folder, *common, "--json", tmp_path / "r.json", "--out", tmp_path / "vis",
          expect=("--image-ids", "139.jpg", "not in"))  # fmt: skip
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "vis").exists()
    (folder / "139.jpg").unlink()
    assert main(["infer", str(folder), *map(str, common), "--json", str(tmp_path / "r.json"), "--no-vis"]) == 0
    ids = sorted(r["image_id"] for r in json.loads((tmp_path / "r.json").read_text()))
    assert ids == [1, 2]  # matched by file name: 7.jpg and 7.png are different images


# ---------------------------------------------------------------------------------------------- messages


def test_not_a_checkpoint_says_what_it_is(env: SimpleNamespace, tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    for argv in (["eval", env.cfg, "--checkpoint", notes], ["export", notes, "--out", tmp_path / "x.onnx"]):
        line = fails(capsys, *argv, expect=("notes.txt", "is a file, not a checkpoint", "expected"))
        assert "no such checkpoint" not in line


def test_onnx_without_layout_names_the_cli_option(env: SimpleNamespace, tmp_path: Path, capsys) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 48])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 64, 48])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "identity", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "identity.onnx")
    fails(capsys, "infer", env.images / "a.jpg", "--model", tmp_path / "identity.onnx", "--detector", "none",
          "--no-vis", "--json", tmp_path / "p.json", expect=("identity.onnx", "--layout"))  # fmt: skip
    assert not (tmp_path / "p.json").exists()


def test_mediapipe_help_names_the_make_target() -> None:
    from posedistill.label.teachers import MEDIAPIPE_INSTALL_HELP

    assert "make mediapipe-env" in MEDIAPIPE_INSTALL_HELP
    assert ".venv-mediapipe/bin/posedistill" in MEDIAPIPE_INSTALL_HELP
    assert "/work/" not in MEDIAPIPE_INSTALL_HELP


def test_errors_are_one_line_without_traceback_in_a_real_process(env: SimpleNamespace, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "posedistill", "synth", "--out", str(env.blocker), "--images", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"posedistill synth: error: --out {env.blocker}: is an existing file; expected a folder"
    ]


# ------------------------------------------------------------------------------------------------- noise


def test_eval_per_joint_tables_only_when_asked(env: SimpleNamespace, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.json"
    assert main(["eval", str(env.cfg), "--checkpoint", str(env.ckpt), "--out", str(out), "--no-flip-test"]) == 0
    text = capsys.readouterr().out
    assert "head_top" not in text and "pck@0.2" in text and max(len(line) for line in text.splitlines()) < 200
    assert len(json.loads(out.read_text())["metrics"]["pck@0.2/per_joint"]) == 14  # in the JSON
    assert main(["eval", str(env.cfg), "--checkpoint", str(env.ckpt), "--out", str(out), "--per-joint"]) == 0
    assert "head_top" in capsys.readouterr().out


def test_wholebody_validation_line_is_short(tmp_path: Path, capsys) -> None:
    """COCO-WholeBody: the per-part AP / AR (60 numbers) stay out of the epoch's line (they are in metrics.jsonl)."""
    assert main(["synth", "--out", str(tmp_path / "synth"), "--images", "4", "--size", "64", "64", "--difficulty",
                 "easy", "--quiet"]) == 0  # fmt: skip
    ann = tmp_path / "synth" / "annotations.json"
    cfg = tiny_config(tmp_path, ann, data={"layout": "coco_wholebody", "train": [{"path": str(ann)}],
                                           "val": [{"path": str(ann)}]},
                      train={"epochs": 1, "batch_size": 2}, eval={"flip_test": False, "batch_size": 4})  # fmt: skip
    capsys.readouterr()
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "work")]) == 0
    val = [line for line in capsys.readouterr().out.splitlines() if "val epoch" in line]
    assert len(val) == 1 and "AP" in val[0] and "body/AP" not in val[0] and len(val[0]) < 250, val
    record = [json.loads(line) for line in (tmp_path / "work" / "metrics.jsonl").read_text().splitlines()][-1]
    assert "face/AP" in record


def test_synth_shows_progress(tmp_path: Path, capsys) -> None:
    assert main(["synth", "--out", str(tmp_path), "--images", "3", "--size", "32", "32"]) == 0
    err = capsys.readouterr().err
    assert "synth" in err and "3/3" in err


class _ShortVideo:
    """A video source whose container promised more frames than it holds (the bar used to end at 5/8)."""

    kind, name, is_video, fps = "video", "clip", True, 10.0

    def __len__(self) -> int:
        return 8

    def __iter__(self):
        from posedistill.infer.sources import Frame

        for i in range(5):
            yield Frame(i, f"clip_{i:06d}", np.full((48, 64, 3), 40 * i, np.uint8), i / 10)

    def close(self) -> None:
        pass


def test_video_bar_total_and_file_mode(tmp_path: Path, capsys) -> None:
    from posedistill.infer.pipeline import OutputOptions, PosePipeline, run
    from posedistill.infer.results import PoseResult

    class Nobody:
        layout = "coco"

        def __call__(self, image, boxes=None):
            return PoseResult.empty("coco", image.shape[:2])

    summary = run(PosePipeline(Nobody()), _ShortVideo(), OutputOptions(out_dir=tmp_path), progress=True)
    err = capsys.readouterr().err
    assert summary.frames == 5 and "5/5" in err and "5/8" not in err.splitlines()[-1]
    assert (tmp_path / "clip.mp4").stat().st_mode & 0o777 == file_mode()


def test_to_coco_without_image_id() -> None:
    from posedistill.infer.results import PoseResult

    res = PoseResult(np.zeros((1, 17, 2)), np.ones((1, 17)), np.array([[0, 0, 10, 10]], np.float32), np.ones(1),
                     np.full(1, -1), "coco", (20, 20))  # fmt: skip
    assert res.to_coco()[0]["image_id"] == 0
    res.frame_id = 7
    assert res.to_coco()[0]["image_id"] == 7 and res.to_coco(139)[0]["image_id"] == 139
