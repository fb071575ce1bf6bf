"""The trainer on a toy regression method: logging, checkpoints, AMP on CPU, and exact resume after SIGKILL.

The toy pieces are importable (``python -m tests.test_engine_trainer WORK_DIR ...`` runs a training in a child
process), so the resume test can kill a real run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.utils.data import Dataset

from posedistill.data.augment import sample_rng
from posedistill.distill.base import Method
from posedistill.engine.checkpoint import load_training_state, read_meta
from posedistill.engine.config import config_from_dict
from posedistill.engine.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


class ToyNet(nn.Module):
    def __init__(self, dim: int = 6, hidden: int = 16, out: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, out)
        self.register_buffer("seen", torch.zeros(()))  # a float buffer the EMA averages
        self.build_args = {"name": "toy", "dim": dim, "hidden": hidden, "out": out}

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.seen += 1
        return self.fc2(torch.relu(self.norm(self.fc1(x))))


class ToyData(Dataset):
    """Fixed inputs and targets; per-sample noise from ``sample_rng(seed, epoch, index)`` (like augmentation)."""

    def __init__(self, n: int = 48, seed: int = 0) -> None:
        g = np.random.default_rng(123)
        self.x = g.normal(size=(n, 6)).astype(np.float32)
        self.y = (self.x @ g.normal(size=(6, 3))).astype(np.float32)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        noise = sample_rng(self.seed, self.epoch, i).normal(scale=0.1, size=6).astype(np.float32)
        return {"image": torch.from_numpy(self.x[i] + noise), "target": torch.from_numpy(self.y[i]), "index": i}


class ToyMethod(Method):
    def __init__(self) -> None:
        super().__init__()
        self.net = ToyNet()

    def models(self) -> dict[str, nn.Module]:
        return {"student": self.net}

    def losses(self, batch: dict[str, Any], epoch: int) -> dict[str, Tensor]:
        pred = self.net(batch["image"])
        return {
            "loss_mse": (pred - batch["target"]).pow(2).mean(),
            "loss_l1": 0.1 * (pred - batch["target"]).abs().mean(),
        }

    def export_model(self) -> nn.Module:
        return self.net


def toy_config(epochs: int = 4, **train: Any) -> Any:
    return config_from_dict(
        {
            "data": {"layout": "coco"},
            "optim": {"lr": 0.01, "weight_decay": 0.01},
            "schedule": {"warmup_iters": 5, "cosine_begin_epoch": 1},
            "train": {
                "epochs": epochs,
                "batch_size": 8,
                "num_workers": 0,
                "device": "cpu",
                "log_interval": 2,
                "checkpoint_interval": 2,
                "progress": False,
                "tensorboard": False,
                **train,
            },
        }
    )


def run_toy(
    work_dir: Path,
    epochs: int,
    resume: bool = False,
    block_at: tuple[int, int] | None = None,
    **train: Any,
) -> dict:
    """``block_at=(epoch, iteration)``: after that optimizer step, write ``work_dir/blocked`` and wait to be killed."""
    torch.manual_seed(0)
    method = ToyMethod()

    def hook(_trainer: Trainer, epoch: int, i: int) -> None:
        if (epoch, i) == block_at:
            (work_dir / "blocked").write_text(f"{epoch} {i}")
            time.sleep(3600)  # the test kills the process here

    trainer = Trainer(toy_config(epochs, **train), method, ToyData(), work_dir=work_dir, on_iteration=hook,
                      verbose=False)  # fmt: skip
    return trainer.fit(resume=resume)


# ------------------------------------------------------------------------------------------------ tests
def test_training_logs_and_checkpoints(tmp_path):
    run_toy(tmp_path, epochs=4)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(train) == 4 * 3 and len(epochs) == 4  # 6 iterations per epoch, logged every 2
    for r in train:
        assert {"loss", "loss_mse", "loss_l1", "lr", "time", "data_time", "epoch", "iter", "global_iter"} <= set(r)
        assert r["loss"] == pytest.approx(r["loss_mse"] + r["loss_l1"], rel=1e-5)
    assert [r["global_iter"] for r in train][:3] == [2, 4, 6]
    # the logged lr is the one of the window's last iteration: warm-up over 5 iterations, cosine from epoch 1
    assert train[0]["lr"] == pytest.approx(0.01 * (1e-5 + (1 - 1e-5) * 1 / 4))
    assert train[-1]["lr"] == pytest.approx(0.01 * (0.05 + 0.95 * (1 + math.cos(math.pi * 17 / 18)) / 2))
    assert epochs[-1]["loss"] < epochs[0]["loss"]

    for name in ("last", "epoch_2", "epoch_4"):
        assert (tmp_path / name / "weights.safetensors").is_file() and (tmp_path / name / "state.pt").is_file()
    meta = read_meta(tmp_path / "last")
    assert meta["epoch"] == 4 and meta["global_iter"] == 24 and meta["ema"] is True
    assert meta["model"]["build_args"]["name"] == "toy" and meta["config"]["train"]["epochs"] == 4
    # weights.safetensors holds the EMA weights; state.pt the raw ones and the EMA separately
    state = load_training_state(tmp_path / "last")
    weights = load_file(tmp_path / "last" / "weights.safetensors")
    for k, v in weights.items():
        assert torch.equal(v, state["ema"]["module"][f"student.{k}"]), k
    assert not torch.equal(weights["fc1.weight"], state["modules"]["student"]["fc1.weight"])
    assert state["epoch"] == 4 and state["scheduler"]["last_iter"] == 24
    assert (tmp_path / "config.yaml").is_file()
    assert not list(tmp_path.glob(".*"))  # no temporary folders left behind


def test_amp_bf16_on_cpu(tmp_path):
    out = run_toy(tmp_path, epochs=1, amp="bf16", grad_clip=1.0)
    assert out["work_dir"] == str(tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    assert all(np.isfinite(r["loss"]) for r in train)
    assert all(r["grad_norm"] > 0 for r in train)


class _Aug:
    def __init__(self, stage: int = 1) -> None:
        self.stage = stage

    def stage2(self) -> _Aug:
        return _Aug(2)


class SwitchData(ToyData):
    """Records the augmentation stage that each epoch's samples were drawn with."""

    def __init__(self) -> None:
        super().__init__()
        self.aug = _Aug(1)
        self.seen: dict[int, int] = {}

    def set_aug(self, aug: _Aug) -> None:
        self.aug = aug

    def __getitem__(self, i: int) -> dict[str, Any]:
        self.seen[self.epoch] = self.aug.stage
        return super().__getitem__(i)


def test_late_training_augmentation_switch(tmp_path):
    data = SwitchData()
    Trainer(toy_config(4, aug_switch_epoch=2), ToyMethod(), data, work_dir=tmp_path, verbose=False).fit()
    assert data.seen == {0: 1, 1: 1, 2: 2, 3: 2}
    # a resumed run sets the stage from the epoch it starts at
    data2 = SwitchData()
    Trainer(toy_config(4, aug_switch_epoch=3), ToyMethod(), data2, work_dir=tmp_path, verbose=False).fit(
        resume=tmp_path / "epoch_2"
    )
    assert data2.seen == {2: 1, 3: 2}


def test_fp16_on_cpu_is_refused(tmp_path):
    with pytest.raises(ValueError, match="bf16 on CPU"):
        run_toy(tmp_path, epochs=1, amp="fp16")


def _child(work_dir: Path, epochs: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.test_engine_trainer", str(work_dir), str(epochs), *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: float = 600) -> None:  # generous: a loaded machine
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out


@pytest.mark.stress
def test_resume_after_sigkill_is_exact(tmp_path):
    epochs = 6
    reference = tmp_path / "reference"
    killed = tmp_path / "killed"
    ref = _child(reference, epochs)
    # the victim stops in the middle of epoch 3 (after its 4th step, past the checkpoint of epoch 2) and says so;
    # it is killed there, however slow the machine is, rather than at a time that a loaded machine may not keep
    victim = _child(killed, epochs, "--block-at", "2", "3")
    deadline = time.monotonic() + 600
    while not (killed / "blocked").is_file():
        if victim.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {victim.communicate()[0]}")
        if time.monotonic() > deadline:
            victim.kill()
            pytest.fail(f"the run did not reach epoch 3 in 600 s: {victim.communicate()[0]}")
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert json.loads((killed / "last" / "meta.json").read_text())["epoch"] == 2
    # the unsaved steps of epoch 3 were logged: the resumed run must not log them twice
    assert any(json.loads(x)["global_iter"] > 12 for x in (killed / "metrics.jsonl").read_text().splitlines())
    _finish(_child(killed, epochs, "--resume"))
    _finish(ref)

    for name in ("weights.safetensors",):
        a = load_file(reference / "last" / name)
        b = load_file(killed / "last" / name)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    sa, sb = load_training_state(reference / "last"), load_training_state(killed / "last")
    for k, v in sa["modules"]["student"].items():
        torch.testing.assert_close(sb["modules"]["student"][k], v, rtol=0, atol=1e-6)
    assert sa["global_iter"] == sb["global_iter"] == epochs * 6
    # the resumed log has no duplicated iterations
    its = [json.loads(x)["global_iter"] for x in (killed / "metrics.jsonl").read_text().splitlines()]
    train_its = [i for i, line in zip(its, (killed / "metrics.jsonl").read_text().splitlines()) if '"train"' in line]
    assert train_its == sorted(set(train_its)) and train_its[-1] == epochs * 6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("epochs", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--block-at", type=int, nargs=2, metavar=("EPOCH", "ITER"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    block_at = tuple(args.block_at) if args.block_at else None
    run_toy(args.work_dir, args.epochs, resume=args.resume, block_at=block_at)


if __name__ == "__main__":
    main()
