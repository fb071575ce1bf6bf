"""Checkpoint folders: round trip to identical outputs, atomic replacement, mmpose .pth entry, pickles refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from posedistill.cli import main
from posedistill.engine.checkpoint import (
    CheckpointError,
    is_finished,
    load_model_from_checkpoint,
    load_pretrained,
    load_training_state,
    read_meta,
    resolve_checkpoint,
    save_checkpoint,
)
from posedistill.models.builder import build_model


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("rtmpose-t", 5, input_size=(48, 64))
    with torch.no_grad():  # non-trivial BN statistics and weights, so a lost buffer would show
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                t.add_(torch.randn_like(t) * 0.01)
            if name.endswith("running_var"):
                t.abs_().add_(0.5)
    return model.eval()


def test_round_trip_identical_outputs(tmp_path):
    model = _model()
    x = torch.randn(2, 3, 64, 48)
    save_checkpoint(tmp_path / "ckpt", model, {"layout": "custom5", "input_size": [48, 64], "epoch": 3})
    loaded, meta = load_model_from_checkpoint(tmp_path / "ckpt")
    assert meta["epoch"] == 3 and meta["model"]["build_args"]["name"] == "rtmpose-t"
    assert not loaded.training
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            assert torch.equal(a, b)
    # the folder's files also resolve to it
    assert resolve_checkpoint(tmp_path / "ckpt" / "meta.json") == tmp_path / "ckpt"


def test_is_finished_only_when_the_run_reached_its_epochs(tmp_path):
    model = _model()
    for name, epoch in (("mid", 1), ("end", 2)):
        save_checkpoint(tmp_path / name, model, {"epoch": epoch, "config": {"train": {"epochs": 2}}})
    save_checkpoint(tmp_path / "bare", model, {"epoch": 2})  # no config: cannot tell, so not finished
    assert is_finished(tmp_path / "end")
    assert not is_finished(tmp_path / "mid") and not is_finished(tmp_path / "bare")
    assert not is_finished(tmp_path / "missing")


def test_overwrite_is_atomic_and_interrupted_save_recovers(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "last", model, {"epoch": 1})
    save_checkpoint(tmp_path / "last", model, {"epoch": 2})
    assert read_meta(tmp_path / "last")["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    # a crash between "move the old folder aside" and "move the new one in" leaves only .last.old
    (tmp_path / "last").rename(tmp_path / ".last.old")
    assert resolve_checkpoint(tmp_path / "last") == tmp_path / ".last.old"
    assert read_meta(tmp_path / "last")["epoch"] == 2
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        resolve_checkpoint(tmp_path / "nothing")


def test_mmpose_pth_entry_infers_architecture(tmp_path):
    model = _model()
    pth = tmp_path / "official.pth"
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}  # DataParallel-style keys
    torch.save({"state_dict": sd, "meta": {"dataset_meta": {"sigmas": np.arange(5.0)}}}, pth)
    loaded, meta = load_model_from_checkpoint(pth)
    assert meta["format"] == "mmpose" and loaded.build_args["input_size"] == [48, 64]
    assert loaded.build_args["num_keypoints"] == 5 and loaded.build_args["name"] == "rtmpose-t"
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded(x)[0])
    # the same file initialises a model as "pretrained"
    fresh = build_model("rtmpose-t", 5, input_size=(48, 64))
    missing, unexpected = load_pretrained(fresh, pth)
    assert missing == [] and unexpected == []
    wrong = build_model("rtmpose-t", 7, input_size=(48, 64))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_pretrained(wrong, pth)


class _Payload:
    """Unpickling this object creates ``path``: a stand-in for code execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_malicious_pickles_are_refused_without_running(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"backbone.x": torch.zeros(1)}, "meta": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_model_from_checkpoint(evil)
    with pytest.raises(CheckpointError):
        load_pretrained(_model(), evil)
    assert not marker.exists()

    # a training state carrying a payload: resume refuses it
    save_checkpoint(tmp_path / "last", _model(), {"epoch": 1}, state={"epoch": 1})
    torch.save({"epoch": 1, "rng": _Payload(marker)}, tmp_path / "last" / "state.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_training_state(tmp_path / "last")
    assert not marker.exists()

    # and the command-line entry points
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: rtmpose-t, input_size: [48, 64]}\ncodec: {type: simcc, sigma: [1.5, 1.7]}\n"
        f"data: {{layout: coco, val: [{{path: {tmp_path / 'none.json'}}}]}}\ntrain: {{device: cpu}}\n"
    )
    assert main(["eval", str(cfg), "--checkpoint", str(evil)]) == 2
    assert "refused" in capsys.readouterr().err
    assert (
        main(["train", str(cfg), "--set", f"model.pretrained={evil}", "--set", f"data.train=[{{path: {evil}}}]"]) == 2
    )
    assert not marker.exists()


def test_resume_cli_refuses_malicious_state(tmp_path, capsys):
    from tests.test_engine_cli import make_tiny_lsp, tiny_config

    marker = tmp_path / "pwned"
    cfg = tiny_config(tmp_path, make_tiny_lsp(tmp_path / "lsp", n=20, size=48))
    save_checkpoint(tmp_path / "bad", _model(), {"epoch": 1}, state={"epoch": 1})
    torch.save({"modules": _Payload(marker)}, tmp_path / "bad" / "state.pt")
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "w"), "--resume", str(tmp_path / "bad")]) == 2
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()
    shutil.rmtree(tmp_path / "w", ignore_errors=True)
