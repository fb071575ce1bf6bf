"""mmpose / DWPose checkpoints → posedistill state dicts.

Our RTMPose (and CSPNeXt / SimpleBaseline heatmap) modules use mmpose's parameter names, so conversion only
unwraps and selects keys:

- unwrap ``{"state_dict": …}`` (with or without ``meta``, ``optimizer``, …), strip DataParallel's ``module.`` and
  a flattened ``state_dict.`` prefix (as in safetensors exports of a whole checkpoint);
- DWPose distiller checkpoints hold ``teacher.*`` and ``student.*`` models: ``which="student"`` (stage 1's
  deployable model), ``"teacher"``, or ``"two_stage"`` (stage 2's final model: ``teacher.backbone.*`` +
  ``student.head.*``, what ``tools/misc/pth_transfer.py --two_dis`` exports);
- keep ``backbone.*`` and ``head.*``; everything else (``data_preprocessor.*``, the FeaLoss align conv
  ``distill_losses.*``, the unselected model, EMA ``steps``) is dropped and reported.

Loading never runs code: ``.safetensors`` through safetensors, ``.pth`` through ``torch.load(weights_only=True)``
with an allow-list extended only by numpy's array reconstruction (mmpose stores ``dataset_meta`` arrays in
``meta``).
"""

from __future__ import annotations

import logging
import pickle
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from posedistill.errors import PoseDataError

log = logging.getLogger(__name__)

Which = Literal["student", "teacher", "two_stage"]
MODEL_PREFIXES = ("backbone.", "head.")


def _numpy_safe_globals() -> list[Any]:
    """numpy objects needed to rebuild plain arrays and scalars, under their numpy 1 and numpy 2 module names."""
    core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # type: ignore[attr-defined]
    out: list[Any] = [np.ndarray, np.dtype]
    for name in ("_reconstruct", "scalar"):
        fn = getattr(core, name)
        out += [(fn, f"numpy.core.multiarray.{name}"), (fn, f"numpy._core.multiarray.{name}")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return out


def unwrap_state_dict(obj: Any, source: str | Path | None = None) -> dict[str, Tensor]:
    """The tensor dict inside a checkpoint object: ``obj["state_dict"]`` when present, else ``obj`` itself."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise PoseDataError(source, f"expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    out: dict[str, Tensor] = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, Tensor):
            raise PoseDataError(
                source, f"expected str keys and tensor values, got {type(v).__name__}", record=f"key {k!r}"
            )
        out[k] = v
    return out


def _strip(key: str, prefix: str) -> str:
    while key.startswith(prefix):
        key = key[len(prefix) :]
    return key


def split_mmpose_state_dict(
    sd: Mapping[str, Any], which: Which = "student", source: str | Path | None = None
) -> tuple[dict[str, Tensor], list[str]]:
    """(our state dict, sorted list of the dropped original keys). See the module docstring."""
    if which not in ("student", "teacher", "two_stage"):
        raise ValueError(f"which must be 'student', 'teacher' or 'two_stage', got {which!r}")
    flat = unwrap_state_dict(sd, source)
    is_distiller = any(_strip(_strip(k, "state_dict."), "module.").startswith(("student.", "teacher.")) for k in flat)
    if not is_distiller and which != "student":
        raise PoseDataError(
            source, f"which={which!r} needs a DWPose distiller checkpoint (teacher.* / student.* keys); it has none"
        )
    kept: dict[str, Tensor] = {}
    dropped: list[str] = []
    for orig, v in flat.items():
        k = _strip(_strip(orig, "state_dict."), "module.")
        if is_distiller:
            if which == "two_stage":
                if k.startswith("teacher.backbone."):
                    k = k[len("teacher.") :]
                elif k.startswith("student.head."):
                    k = k[len("student.") :]
                else:
                    k = ""
            else:
                k = k[len(which) + 1 :] if k.startswith(which + ".") else ""
            k = _strip(k, "module.")
        if k.startswith(MODEL_PREFIXES):
            kept[k] = v
        else:
            dropped.append(orig)
    if not kept:
        raise PoseDataError(source, f"no backbone.* / head.* weights found for which={which!r}")
    return kept, sorted(dropped)


def summarise_keys(keys: list[str], depth: int = 2) -> str:
    """'teacher.backbone.* (352), distill_losses.loss_fea.* (2)': key counts grouped by their first components."""
    groups = Counter(".".join(k.split(".")[:depth]) + (".*" if k.count(".") >= depth else "") for k in keys)
    return ", ".join(f"{g} ({n})" for g, n in sorted(groups.items()))


def convert_mmpose_state_dict(
    sd: Mapping[str, Any], which: Which = "student", source: str | Path | None = None
) -> dict[str, Tensor]:
    """mmpose / DWPose checkpoint dict → our keys. Dropped keys are logged (``split_mmpose_state_dict`` returns
    them)."""
    kept, dropped = split_mmpose_state_dict(sd, which, source)
    if dropped:
        log.info(
            "%s: kept %d keys, dropped %d: %s", source or "checkpoint", len(kept), len(dropped), summarise_keys(dropped)
        )
    return kept


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint file's raw content, without ever running code: ``.safetensors`` or a torch zip/pickle file."""
    path = Path(path)
    if not path.is_file():
        raise PoseDataError(path, "checkpoint file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        raise PoseDataError(
            path,
            f"refused to load: the pickle needs objects outside the weights-only allow-list ({first}); "
            "re-save the weights as .safetensors from a trusted environment",
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise PoseDataError(path, f"not a readable torch checkpoint: {e}") from e
    if not isinstance(obj, Mapping):
        raise PoseDataError(path, f"expected a dict checkpoint, got {type(obj).__name__}")
    return dict(obj)


def load_mmpose_checkpoint(path: str | Path, which: Which = "student") -> dict[str, Tensor]:
    """Read an mmpose / DWPose ``.pth`` or ``.safetensors`` and convert it to our keys (``model.load_state_dict``
    with ``strict=True`` then checks it fits)."""
    return convert_mmpose_state_dict(read_checkpoint(path), which, source=path)
