"""Models shipped in the repository's ``models/`` folder that can be given by name wherever a model file is taken
(``PoseEstimator("pp-tinypose")``, ``posedistill infer --model``, ``label --teacher``, DWPose teachers):
:func:`posedistill.infer.hub.resolve_model` turns a name that is not an existing path into its file here.

- ``pp-tinypose`` (= ``pp-tinypose_256x192``): PP-TinyPose 256×192, a COCO-17 heatmap network in ncnn format
  (PaddleDetection, Apache-2.0; model card ``models/pp-tinypose_256x192/README.md``), a teacher;
- ``rtmpose-nano_wholebody``: the default whole-body model (:mod:`posedistill.infer.defaults`).
"""

from __future__ import annotations

from pathlib import Path

from posedistill.errors import PoseDataError

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
# name (lower case) -> file relative to models/
NAMED_MODELS = {
    "pp-tinypose": "pp-tinypose_256x192/pp-tinypose_256x192_ncnn.param",
    "pp-tinypose_256x192": "pp-tinypose_256x192/pp-tinypose_256x192_ncnn.param",
    "rtmpose-nano_wholebody": "rtmpose-nano_wholebody/model.onnx",
}


def named_model(name: str) -> str | None:
    """The file of a shipped model given by name (:data:`NAMED_MODELS`, case-insensitive), or None for other names.
    Raises :class:`PoseDataError` when the name is known but its file is missing (an install without ``models/``)."""
    rel = NAMED_MODELS.get(str(name).strip().lower())
    if rel is None:
        return None
    path = MODELS_DIR / rel
    if not path.is_file():
        raise PoseDataError(
            str(path), f"the shipped model {name!r} is missing (it ships with a source checkout of posedistill, in "
            "models/); pass its file path instead", field="model",
        )  # fmt: skip
    return str(path)
