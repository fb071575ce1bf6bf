"""Checkpoints: a folder that rebuilds the model on its own, and never runs code when read.

::

    <name>/
      weights.safetensors   the deployable model's weights (the EMA weights when EMA is on)
      meta.json             format, model name + build arguments, layout, input size, codec, method, epoch,
                            metrics, the full config
      state.pt              (training checkpoints only) raw weights of the trained modules, optimizer, scheduler,
                            EMA, AMP scaler, RNG states, epoch: what exact resume needs. Read with
                            ``torch.load(weights_only=True)``: tensors and plain containers only.

A folder is written under a temporary name and renamed into place, so a reader (or a resumed run after a crash)
sees either the previous complete checkpoint or the new complete one. If a crash falls between moving the old
folder aside and moving the new one in, :func:`resolve_checkpoint` finds the old one.

``load_model_from_checkpoint`` also accepts an official mmpose / DWPose ``.pth`` file through
``posedistill.models.convert.load_mmpose_checkpoint`` (also ``weights_only``: a pickle that needs anything but
tensors, plain containers and numpy arrays is refused before any of it runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from posedistill.fileio import atomic_open, atomic_write_json, atomic_write_with

WEIGHTS = "weights.safetensors"
META = "meta.json"
STATE = "state.pt"
FORMAT = "posedistill-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the path and the problem."""


# ------------------------------------------------------------------------------------------------ writing


def _tensor_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, unshared copies (safetensors refuses tensors that share memory)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere (e.g. some network file systems)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_dir_atomically(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp_dir)`` then move ``tmp_dir`` to ``target``, replacing any previous folder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_dir(tmp)
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


def model_meta(model: nn.Module) -> dict[str, Any]:
    """What rebuilds ``model``: ``build_args`` (keyword arguments of ``posedistill.models.build_model``)."""
    args = getattr(model, "build_args", None)
    if not isinstance(args, dict):
        raise CheckpointError(
            f"{type(model).__name__} has no build_args dict; build it with posedistill.models.build_model so that "
            "checkpoints can rebuild it"
        )
    return {"class": type(model).__name__, "build_args": json.loads(json.dumps(args))}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    meta: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint folder ``path``: ``model``'s state dict, ``meta`` (plus format fields) and optionally the
    training ``state``. ``model`` must carry ``build_args``; the caller swaps EMA weights in beforehand."""
    weights = _tensor_dict(model.state_dict())
    full_meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_meta(model),
        **meta,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
        "training_state": state is not None,
    }

    def write(tmp: Path) -> None:
        atomic_write_with(tmp / WEIGHTS, lambda p: save_file(weights, p, metadata={"format": "pt"}))
        if state is not None:
            with atomic_open(tmp / STATE, "wb") as f:
                torch.save(state, f)
        atomic_write_json(tmp / META, full_meta, indent=2)

    return write_dir_atomically(path, write)


# ------------------------------------------------------------------------------------------------ reading


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder for ``path`` (the folder or one of its files); falls back to the folder moved aside
    by an interrupted save. Raises :class:`CheckpointError` when there is none."""
    p = Path(path)
    if p.is_file() and p.name in (WEIGHTS, META, STATE):
        p = p.parent
    if p.is_dir():
        if not (p / META).is_file():
            raise CheckpointError(f"{p}: not a posedistill checkpoint folder (no {META})")
        return p
    old = p.with_name(f".{p.name}.old")
    if (old / META).is_file():
        return old
    if p.exists():  # say what it is: "no such checkpoint" for an existing file sends the user looking for typos
        raise CheckpointError(
            f"{p}: is a file, not a checkpoint: expected a posedistill checkpoint folder (with {META} and "
            f"{WEIGHTS}) or an mmpose / DWPose .pth / .pt / .ckpt / .safetensors file"
        )
    raise CheckpointError(f"{p}: no such checkpoint")


def read_meta(path: str | Path) -> dict[str, Any]:
    d = resolve_checkpoint(path)
    try:
        meta = json.loads((d / META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{d / META}: unreadable checkpoint meta: {e}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{d / META}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    if int(meta.get("version", 0)) > VERSION:
        raise CheckpointError(f"{d / META}: checkpoint version {meta['version']} is newer than this posedistill")
    return meta


def is_finished(path: str | Path) -> bool:
    """Whether the posedistill checkpoint at ``path`` ends its run: its ``epoch`` equals the ``train.epochs`` of the
    config it was trained with. A ``last`` written after every epoch exists long before the run is over, so its mere
    presence does not say that; False also when there is no readable checkpoint."""
    try:
        meta = read_meta(path)
        return int(meta["epoch"]) == int(meta["config"]["train"]["epochs"])
    except (CheckpointError, KeyError, TypeError, ValueError):
        return False


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    d = resolve_checkpoint(path)
    try:
        return load_file(d / WEIGHTS, device=str(device))
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"{d / WEIGHTS}: cannot read weights: {e}") from None


def load_training_state(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The resume state; pickles are read with ``weights_only=True`` (no code runs)."""
    d = resolve_checkpoint(path)
    f = d / STATE
    if not f.is_file():
        raise CheckpointError(f"{d}: has no {STATE}; only 'last' and 'epoch_*' checkpoints can resume a run")
    try:
        return torch.load(f, map_location=device, weights_only=True)
    except Exception as e:  # UnpicklingError for anything but tensors and plain containers
        raise CheckpointError(f"{f}: refused or unreadable training state: {e}") from None


def is_mmpose_checkpoint(path: str | Path) -> bool:
    """An official mmpose / DWPose file (``.pth`` and friends, or a loose ``.safetensors``) rather than a folder."""
    p = Path(path)
    return p.is_file() and p.suffix in (".pth", ".pt", ".ckpt", ".safetensors") and p.name not in (WEIGHTS, STATE)


def build_model_from_meta(meta: dict[str, Any]) -> nn.Module:
    from posedistill.models.builder import build_model

    return build_model(**dict(meta["model"]["build_args"]))


# CSPNeXt stem width -> RTMPose size (``rtmpose-dwpose.md`` §1)
_RTMPOSE_STEM = {12: "t", 16: "s", 24: "m", 32: "l", 40: "x"}
# keypoint count -> layout, for official checkpoints that do not say
_LAYOUT_BY_K = {17: "coco", 133: "coco_wholebody", 14: "lsp"}


def infer_rtmpose_build_args(state: dict[str, torch.Tensor], source: str | Path) -> dict[str, Any]:
    """``build_model`` arguments of an RTMPose state dict: size from the stem width, K from the head's final conv,
    input size from the SimCC bins (split ratio 2)."""
    try:
        stem = int(state["backbone.stem.0.conv.weight"].shape[0])
        k = int(state["head.final_layer.weight"].shape[0])
        wx = int(state["head.cls_x.weight"].shape[0])
        wy = int(state["head.cls_y.weight"].shape[0])
    except KeyError as e:
        raise CheckpointError(
            f"{source}: not an RTMPose checkpoint (no {e.args[0]}); pass model=<name> (and num_keypoints, "
            "input_size) to load other architectures"
        ) from None
    if stem not in _RTMPOSE_STEM:
        raise CheckpointError(f"{source}: unknown CSPNeXt stem width {stem}; pass model=<name>")
    return {"name": f"rtmpose-{_RTMPOSE_STEM[stem]}", "num_keypoints": k, "input_size": [wx // 2, wy // 2]}


def read_mmpose_state_dict(path: str | Path, which: str = "student") -> dict[str, torch.Tensor]:
    """An official checkpoint's weights under our names (``weights_only`` loading; refusals become
    :class:`CheckpointError`)."""
    from posedistill.models.convert import load_mmpose_checkpoint

    try:
        return load_mmpose_checkpoint(path, which=which)
    except Exception as e:  # PoseDataError for refused pickles / wrong content
        raise CheckpointError(f"{path}: cannot use this mmpose checkpoint: {e}") from e


def load_model_from_checkpoint(
    path: str | Path,
    device: str | torch.device = "cpu",
    which: str = "student",
    model: str | None = None,
    num_keypoints: int | None = None,
    input_size: tuple[int, int] | list[int] | None = None,
    layout: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint folder, or of an official mmpose / DWPose ``.pth``, in eval mode.

    Returns ``(model, meta)``. For a folder ``meta`` is its ``meta.json``. For a ``.pth`` the architecture is
    inferred for RTMPose (or given by ``model`` / ``num_keypoints`` / ``input_size``), ``which`` picks the
    student / teacher / two-stage model of DWPose distiller checkpoints, and ``meta`` holds ``model``,
    ``layout`` (given, or guessed from K: 17 coco, 133 coco_wholebody, 14 lsp) and ``input_size``.
    """
    if not is_mmpose_checkpoint(path):
        meta = read_meta(path)
        net = build_model_from_meta(meta)
        state = load_weights(path)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{resolve_checkpoint(path) / WEIGHTS}: weights do not fit the model "
                f"{meta['model']['build_args']}: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        return net.to(device).eval(), meta

    from posedistill.models.builder import build_model

    state = read_mmpose_state_dict(path, which)
    if model is None:
        args = infer_rtmpose_build_args(state, path)
    else:
        if num_keypoints is None:
            raise CheckpointError(f"{path}: pass num_keypoints together with model={model!r}")
        args = {"name": model, "num_keypoints": num_keypoints, "input_size": list(input_size or (192, 256))}
    if input_size is not None:
        args["input_size"] = [int(input_size[0]), int(input_size[1])]
    net = build_model(**args)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {args}: {e}") from None
    lay = layout or _LAYOUT_BY_K.get(int(args["num_keypoints"]))
    meta = {
        "format": "mmpose",
        "model": model_meta(net),
        "layout": lay,
        "input_size": list(net.build_args["input_size"]),
        "source": str(path),
    }
    return net.to(device).eval(), meta


def load_pretrained(
    model: nn.Module, path: str | Path, which: str = "student", strict: bool = False
) -> tuple[list[str], list[str]]:
    """Initialise ``model`` from a posedistill checkpoint or an mmpose ``.pth`` (e.g. a backbone-only CSPNeXt);
    returns (missing, unexpected) keys. Shape mismatches always raise."""
    state = read_mmpose_state_dict(path, which) if is_mmpose_checkpoint(path) else load_weights(path)
    own = model.state_dict()
    bad = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if bad:
        k = bad[0]
        raise CheckpointError(
            f"{path}: {len(bad)} tensors do not fit the model, e.g. {k}: {tuple(state[k].shape)} vs "
            f"{tuple(own[k].shape)}"
        )
    missing, unexpected = model.load_state_dict(state, strict=strict)
    return list(missing), list(unexpected)
