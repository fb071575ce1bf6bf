"""Keypoint codecs: targets for training and decoding for inference, numpy only (no torch).

``build_codec`` turns a config dict into a codec::

    build_codec({"type": "simcc", "input_size": [192, 256], "sigma": [4.9, 5.66], "split_ratio": 2.0})
    build_codec({"type": "heatmap", "input_size": [192, 256], "heatmap_size": [48, 64], "sigma": 2.0,
                 "unbiased": True})
"""

from __future__ import annotations

from typing import Any

from posedistill.codecs.heatmap import HeatmapCodec, dark_blur_kernel_size, flip_heatmaps, gaussian_blur
from posedistill.codecs.heatmap_to_simcc import heatmaps_to_simcc, simcc_logits
from posedistill.codecs.simcc import SimCCCodec, flip_simcc

Codec = SimCCCodec | HeatmapCodec

__all__ = [
    "Codec",
    "HeatmapCodec",
    "SimCCCodec",
    "build_codec",
    "dark_blur_kernel_size",
    "flip_heatmaps",
    "flip_simcc",
    "gaussian_blur",
    "heatmaps_to_simcc",
    "simcc_logits",
]

_PAIRS = ("input_size", "heatmap_size", "sigma")


def build_codec(cfg: dict[str, Any]) -> Codec:
    """A codec from ``{"type": "simcc" | "heatmap", **constructor arguments}``; lists become tuples."""
    args = dict(cfg)
    kind = args.pop("type", None)
    for key in _PAIRS:
        if isinstance(args.get(key), list):
            args[key] = tuple(args[key])
    classes: dict[str, type] = {"simcc": SimCCCodec, "heatmap": HeatmapCodec}
    if kind not in classes:
        raise ValueError(f"codec config needs 'type' in {sorted(classes)}, got {kind!r} (config: {cfg!r})")
    try:
        return classes[kind](**args)
    except TypeError as e:  # unknown or missing keys: say which config caused it
        raise ValueError(f"bad {kind} codec config {cfg!r}: {e}") from None
