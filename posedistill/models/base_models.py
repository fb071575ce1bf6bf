"""The base architectures (RTMPose, SimpleBaseline, CSPNeXt-heatmap, stacked hourglass) and
:func:`build_base_model`, which builds one by name with its ``build_args``.

This module sits below the composite networks: :mod:`posedistill.models.multibranch` (OKDHP) and
:mod:`posedistill.models.dkd` (DKD) assemble base models from here, and :func:`posedistill.models.builder.build_model`,
the top-level dispatcher, adds those two on top. Keeping the base builders here is what lets ``builder`` import the
composite networks without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from torch import nn

from posedistill.models.cspnext import CSPNEXT_SIZES, RTMDET_NANO, CSPNeXt
from posedistill.models.heatmap_head import HeatmapHead
from posedistill.models.heatmap_model import TopdownHeatmapModel
from posedistill.models.hourglass import StackedHourglass
from posedistill.models.resnet import RESNET_DEPTHS, ResNet
from posedistill.models.rtmpose import RTMPose


def _rtmpose(size: str, num_keypoints: int, input_size: Sequence[int], **kw: Any) -> nn.Module:
    return RTMPose(size, num_keypoints, input_size, **kw)


def _rtmpose_nano(num_keypoints: int, input_size: Sequence[int], **kw: Any) -> nn.Module:
    """RTMPose head on RTMDet-nano's backbone, so that the detector's trained weights can initialise it."""
    d, w = RTMDET_NANO
    return RTMPose("nano", num_keypoints, input_size, deepen_factor=d, widen_factor=w, use_depthwise=True, **kw)


def _heatmap_head_kw(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: kw.pop(k) for k in ("deconv_out_channels", "deconv_kernel_sizes") if k in kw}


def _simplebaseline(depth: int, num_keypoints: int, input_size: Sequence[int], **kw: Any) -> nn.Module:
    head_kw = _heatmap_head_kw(kw)
    backbone = ResNet(depth, **kw)
    return TopdownHeatmapModel(backbone, HeatmapHead(backbone.out_channels[-1], num_keypoints, **head_kw))


def _cspnext_heatmap(size: str, num_keypoints: int, input_size: Sequence[int], **kw: Any) -> nn.Module:
    head_kw = _heatmap_head_kw(kw)
    deepen, widen = CSPNEXT_SIZES[size]
    backbone = CSPNeXt(deepen, widen, **kw)
    return TopdownHeatmapModel(backbone, HeatmapHead(backbone.out_channels[-1], num_keypoints, **head_kw))


def _hourglass(num_stacks: int, num_keypoints: int, input_size: Sequence[int], **kw: Any) -> nn.Module:
    return StackedHourglass(num_stacks, num_keypoints, **kw)


BASE_MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    **{f"rtmpose-{s}": partial(_rtmpose, s) for s in CSPNEXT_SIZES},
    "rtmpose-nano": _rtmpose_nano,
    **{f"simplebaseline-res{d}": partial(_simplebaseline, d) for d in RESNET_DEPTHS},
    **{f"cspnext-{s}-heatmap": partial(_cspnext_heatmap, s) for s in CSPNEXT_SIZES},
    **{f"hourglass-{n}stack": partial(_hourglass, n) for n in range(1, 9)},
}


def jsonable(v: Any) -> Any:
    """``v`` with tuples as lists and dict keys as strings; TypeError for anything JSON cannot hold."""
    if isinstance(v, tuple | list):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise TypeError(f"build_model keyword values must be JSON-serialisable, got {type(v).__name__}")


def build_from(
    builders: dict[str, Callable[..., nn.Module]],
    name: str,
    num_keypoints: int,
    input_size: Sequence[int],
    **kw: Any,
) -> nn.Module:
    """Build ``name`` with ``builders[name]``, checking the arguments and setting ``model.build_args``."""
    if name not in builders:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(builders))}")
    if len(input_size) != 2 or min(int(s) for s in input_size) < 1:
        raise ValueError(f"input_size must be (w, h) with positive sizes, got {tuple(input_size)}")
    input_size = (int(input_size[0]), int(input_size[1]))
    build_args = jsonable({"name": name, "num_keypoints": num_keypoints, "input_size": input_size, **kw})
    model = builders[name](num_keypoints=num_keypoints, input_size=input_size, **kw)
    model.build_args = build_args
    return model


def build_base_model(
    name: str, num_keypoints: int = 17, input_size: Sequence[int] = (192, 256), **kw: Any
) -> nn.Module:
    """Build a randomly initialised base model by name (the parts of OKDHP's and DKD's networks)."""
    return build_from(BASE_MODEL_BUILDERS, name, num_keypoints, input_size, **kw)
