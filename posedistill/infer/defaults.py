"""The model that ``PoseEstimator()`` and ``posedistill infer`` use when none is given: the whole-body
RTMPose-t that the real-image cascade (``benchmarks/bench_cascade.py``) distilled, shipped in the repository's
``models/`` folder (model card: ``models/README.md``) so that both work offline out of the box.

The folder holds the ONNX file the torch-free runtime loads (float16 weights, float32 compute) and the same
weights as a posedistill checkpoint (``weights.safetensors`` + ``meta.json``) for ``eval``, fine-tuning and
re-export. ``$POSEDISTILL_DEFAULT_MODEL`` points elsewhere (a file, URL or checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path

from posedistill.errors import PoseDataError

DEFAULT_MODEL_NAME = "rtmpose-t_wholebody-cascade"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL_NAME
DEFAULT_ONNX = "model.onnx"


def default_model() -> str:
    """Path (or URL) of the default pose model; raises :class:`PoseDataError` naming the file when it is missing."""
    env = os.environ.get("POSEDISTILL_DEFAULT_MODEL")
    if env:
        return env
    path = DEFAULT_MODEL_DIR / DEFAULT_ONNX
    if not path.is_file():
        raise PoseDataError(
            str(path), "the default model is missing (it ships with a source checkout of posedistill); pass a model "
            "explicitly (an .onnx file, URL or checkpoint) or set POSEDISTILL_DEFAULT_MODEL", field="model",
        )  # fmt: skip
    return str(path)
