"""``build_model(name, num_keypoints, input_size, **kw)``: a plain dict of constructors, one entry per model name.

| name | model | output for a w×h input |
|---|---|---|
| ``rtmpose-{t,s,m,l,x}`` | :class:`RTMPose` (CSPNeXt + RTMCC head) | SimCC logits B×K×2w, B×K×2h |
| ``simplebaseline-res{18,34,50,101,152}`` | ResNet + 3 deconvs | heatmaps B×K×h/4×w/4 |
| ``cspnext-{t,s,m,l,x}-heatmap`` | CSPNeXt + 3 deconvs (mmpose's ``cspnext-*_udp`` models) | heatmaps B×K×h/4×w/4 |
| ``hourglass-{1..8}stack`` | :class:`StackedHourglass` (FPD / OKDHP layout) | heatmaps B×K×h/4×w/4 per stack |

``input_size`` is (w, h). Only RTMPose depends on it (its head is sized for the stride-32 map); heatmap models take
any size and keep it only as metadata. Extra keywords go to the model's constructor (e.g. ``out_indices``,
``channels``). Every model gets ``model.build_args``, a JSON-ready dict with which ``build_model(**build_args)``
rebuilds it (what a checkpoint's meta.json stores).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from torch import nn

from posedistill.models.cspnext import CSPNEXT_SIZES, CSPNeXt
from posedistill.models.heatmap_head import HeatmapHead
from posedistill.models.heatmap_model import TopdownHeatmapModel
from posedistill.models.hourglass import StackedHourglass
from posedistill.models.resnet import RESNET_DEPTHS, ResNet
from posedistill.models.rtmpose import RTMPose


def _rtmpose(size: str, num_keypoints: int, input_size: Sequence[int], **kw: Any) -> nn.Module:
    return RTMPose(size, num_keypoints, input_size, **kw)


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


def _multibranch(num_keypoints: int, input_size: Sequence[int], **kw: Any) -> nn.Module:
    # OKDHP's multi-branch training network; imported here because multibranch.py builds on this module
    from posedistill.models.multibranch import build_multibranch

    return build_multibranch(num_keypoints=num_keypoints, input_size=input_size, **kw)


def _dkd(num_keypoints: int, input_size: Sequence[int], **kw: Any) -> nn.Module:
    # DKD's video network (initializer + encoder + kernel distillator); lazy for the same reason
    from posedistill.models.dkd import build_dkd

    return build_dkd(num_keypoints, input_size, **kw)


MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    **{f"rtmpose-{s}": partial(_rtmpose, s) for s in CSPNEXT_SIZES},
    **{f"simplebaseline-res{d}": partial(_simplebaseline, d) for d in RESNET_DEPTHS},
    **{f"cspnext-{s}-heatmap": partial(_cspnext_heatmap, s) for s in CSPNEXT_SIZES},
    **{f"hourglass-{n}stack": partial(_hourglass, n) for n in range(1, 9)},
    "multibranch": _multibranch,
    "dkd": _dkd,
}

# SimCC models: forward -> (simcc_x, simcc_y); everything else returns heatmaps
SIMCC_MODELS = frozenset(n for n in MODEL_BUILDERS if n.startswith("rtmpose-"))


def model_names() -> list[str]:
    return sorted(MODEL_BUILDERS)


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise TypeError(f"build_model keyword values must be JSON-serialisable, got {type(v).__name__}")


def build_model(name: str, num_keypoints: int = 17, input_size: Sequence[int] = (192, 256), **kw: Any) -> nn.Module:
    """Build a randomly initialised model by name (nothing is downloaded). ``input_size`` is (w, h)."""
    if name not in MODEL_BUILDERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    if len(input_size) != 2 or min(int(s) for s in input_size) < 1:
        raise ValueError(f"input_size must be (w, h) with positive sizes, got {tuple(input_size)}")
    input_size = (int(input_size[0]), int(input_size[1]))
    build_args = _jsonable({"name": name, "num_keypoints": num_keypoints, "input_size": input_size, **kw})
    model = MODEL_BUILDERS[name](num_keypoints=num_keypoints, input_size=input_size, **kw)
    model.build_args = build_args
    return model
