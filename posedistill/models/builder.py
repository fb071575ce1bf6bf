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
from typing import Any

from torch import nn

from posedistill.models.base_models import BASE_MODEL_BUILDERS, build_from
from posedistill.models.dkd import build_dkd
from posedistill.models.multibranch import build_multibranch

# builder is the top of the models layer: the base architectures live in base_models.py, which the composite
# networks below (multibranch.py, dkd.py) build on, so importing those two here makes no cycle.


def _multibranch(num_keypoints: int, input_size: Sequence[int], **kw: Any) -> nn.Module:
    # OKDHP's multi-branch training network
    return build_multibranch(num_keypoints=num_keypoints, input_size=input_size, **kw)


def _dkd(num_keypoints: int, input_size: Sequence[int], **kw: Any) -> nn.Module:
    # DKD's video network (initializer + encoder + kernel distillator)
    return build_dkd(num_keypoints, input_size, **kw)


MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    **BASE_MODEL_BUILDERS,
    "multibranch": _multibranch,
    "dkd": _dkd,
}

# SimCC models: forward -> (simcc_x, simcc_y); everything else returns heatmaps
SIMCC_MODELS = frozenset(n for n in MODEL_BUILDERS if n.startswith("rtmpose-"))


def model_names() -> list[str]:
    return sorted(MODEL_BUILDERS)


def build_model(name: str, num_keypoints: int = 17, input_size: Sequence[int] = (192, 256), **kw: Any) -> nn.Module:
    """Build a randomly initialised model by name (nothing is downloaded). ``input_size`` is (w, h)."""
    return build_from(MODEL_BUILDERS, name, num_keypoints, input_size, **kw)
