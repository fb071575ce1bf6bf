"""``torchrun --nproc_per_node 2 -m posedistill train`` (gloo, CPU) ends with the weights of one process at the same
global batch.

Conditions for equality, all documented in the engine: a model without batch statistics (BN would normalise over
each process's half batch; use ``train.sync_bn`` on CUDA), a loss that averages over the batch (DDP averages the
gradients of the processes; RTMPose's KLDiscretLoss sums over the batch, as mmpose's multi-GPU recipes do), and
``train.shuffle: false`` (torch's DistributedSampler shuffles in another order than the 1-process sampler). The
toy method below is loaded by ``method.type: tests.test_engine_ddp``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from posedistill.codecs import build_codec
from posedistill.distill.supervised import SupervisedMethod
from posedistill.engine.checkpoint import load_training_state

ROOT = Path(__file__).resolve().parents[1]


class TinySimCC(nn.Module):
    """Two strided convs with GroupNorm (no batch statistics) and two linear SimCC classifiers."""

    def __init__(self, num_keypoints: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        w, h = input_size
        self.k, self.bins = num_keypoints, (2 * w, 2 * h)
        self.conv1 = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.GroupNorm(2, 8)
        self.conv2 = nn.Conv2d(8, 8, 4, stride=4)
        feat = 8 * (h // 16) * (w // 16)
        self.fx = nn.Linear(feat, num_keypoints * 2 * w)
        self.fy = nn.Linear(feat, num_keypoints * 2 * h)
        self.build_args = {"name": "tiny-simcc", "num_keypoints": num_keypoints, "input_size": [w, h]}

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.conv2(torch.relu(self.norm(self.conv1(x)))).flatten(1)
        return self.fx(f).view(-1, self.k, self.bins[0]), self.fy(f).view(-1, self.k, self.bins[1])


class MeanKL(SupervisedMethod):
    def losses(self, batch: dict[str, Any], epoch: int) -> dict[str, Tensor]:
        return {"loss_kpt": super().losses(batch, epoch)["loss_kpt"] / batch["image"].shape[0]}


def from_config(cfg: Any) -> MeanKL:
    from posedistill.layouts import get_layout

    model = TinySimCC(get_layout(cfg.data.layout).num_keypoints, cfg.input_size)
    return MeanKL(model, build_codec(cfg.codec_args()), cfg.data.layout)


# what a port taken between being found free and being bound looks like (another test run on the same machine)
PORT_TAKEN = ("address already in use", "eaddrinuse")


def _run(cmd: list[str], work_dir: Path, timeout: float = 900, attempts: int = 3) -> None:
    """Run a training command; generous timeout for a loaded machine. torchrun's ``--standalone`` rendezvous and
    gloo bind port 0 (the kernel picks a free port), so a port clash is not expected; if one happens anyway the
    run is retried from scratch, any other failure fails the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for attempt in range(1, attempts + 1):
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        output = proc.stdout[-3000:] + proc.stderr[-3000:]
        if proc.returncode == 0:
            return
        if attempt == attempts or not any(t in output.lower() for t in PORT_TAKEN):
            pytest.fail(f"exit code {proc.returncode} (attempt {attempt}): {output}")
        shutil.rmtree(work_dir, ignore_errors=True)


@pytest.mark.stress
def test_two_gloo_processes_match_one(tmp_path):
    from tests.test_engine_cli import make_tiny_lsp, tiny_config

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
        if torchrun is None:
            pytest.skip("torchrun not found next to the interpreter")
    cfg = tiny_config(
        tmp_path,
        make_tiny_lsp(tmp_path / "lsp", n=20, size=48),
        method={"type": "tests.test_engine_ddp"},
        train={"epochs": 2, "shuffle": False, "grad_clip": 5.0, "aug_switch_epoch": 1},
        optim={"lr": 0.01, "weight_decay": 0.01},
    )
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    _run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "posedistill", "train", str(cfg),
          "--work-dir", str(ddp), "--set", "train.batch_size=4"], ddp)  # fmt: skip
    _run([sys.executable, "-m", "posedistill", "train", str(cfg), "--work-dir", str(single),
          "--set", "train.batch_size=8"], single)  # fmt: skip

    a, b = load_file(ddp / "last" / "weights.safetensors"), load_file(single / "last" / "weights.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
    sa, sb = load_training_state(ddp / "last"), load_training_state(single / "last")
    assert sa["world_size"] == 2 and sb["world_size"] == 1 and len(sa["rng"]) == 2
    assert sa["global_iter"] == sb["global_iter"] == 4  # 16 samples / global batch 8 x 2 epochs
    for k, v in sb["modules"]["student"].items():
        torch.testing.assert_close(sa["modules"]["student"][k], v, rtol=0, atol=1e-5)
    # rank 0 alone writes the log; validation gathered every instance from both processes
    records = [json.loads(x) for x in (ddp / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    assert [r["global_iter"] for r in train] == [2, 4]
    vals = [r for r in records if r["type"] == "val"]
    assert len(vals) == 2 and all(r["num_instances"] == 4 for r in vals)
    single_train = [json.loads(x) for x in (single / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    for r, s in zip(train, single_train):
        assert r["loss"] == pytest.approx(s["loss"], rel=1e-4)
