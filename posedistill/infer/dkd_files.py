"""Recognising DKD models from their files, without loading them: :func:`is_dkd_checkpoint` (a checkpoint's
``meta.json``) and :func:`dkd_onnx_role` (an exported ONNX pair's metadata). Torch-free.

A low module: :mod:`posedistill.infer.estimator` uses it to refuse DKD models with a helpful message and
:mod:`posedistill.infer.dkd_estimator` (which re-exports both names) to load them, so neither imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def is_dkd_checkpoint(path: str | Path) -> bool:
    """A posedistill checkpoint folder (or a file in it) whose model is a DKD network. Reads ``meta.json`` only
    (no torch)."""
    if isinstance(path, str) and "://" in path:
        return False
    p = Path(path)
    meta = p / "meta.json" if p.is_dir() else p.with_name("meta.json") if p.is_file() else None
    if meta is None or not meta.is_file():
        return False
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
        return doc["model"]["build_args"]["name"] == "dkd"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def dkd_onnx_role(path: str | Path) -> str | None:
    """``"init"`` / ``"step"`` for a graph of an exported DKD pair (its ``posedistill`` metadata), else None.

    Only files that have their partner next to them (``x.onnx`` with ``x_step.onnx``, or the other way round)
    are opened, so this costs nothing for ordinary ONNX files."""
    p = Path(path)
    if p.suffix != ".onnx" or not p.is_file():
        return None
    partner = p.with_name(f"{p.stem[: -len('_step')]}{p.suffix}") if p.stem.endswith("_step") else None
    if not p.with_name(f"{p.stem}_step{p.suffix}").is_file() and (partner is None or not partner.is_file()):
        return None
    info = _onnx_dkd_info(p)
    return None if info is None else str(info.get("role"))


def _onnx_dkd_info(path: Path) -> dict[str, Any] | None:
    from posedistill.infer.onnx_model import make_session, read_metadata

    meta = read_metadata(make_session(path, threads=1), path) or {}
    dkd = meta.get("dkd")
    return dkd if isinstance(dkd, dict) else None
