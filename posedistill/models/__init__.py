"""posedistill.models: RTMPose (CSPNeXt + RTMCC head), heatmap models (SimpleBaseline, CSPNeXt, stacked
hourglass), mmpose checkpoint conversion, parameter/FLOP counting.

Every estimator has ``forward(x)`` (SimCC pair or heatmaps) and ``features(x) -> list[Tensor]``; heatmap models
also have ``forward_all(x)`` (every supervised output). ``build_model(name, num_keypoints, input_size)`` builds one
by name; see :mod:`posedistill.models.builder` for the names.
"""

from posedistill.models.builder import MODEL_BUILDERS, SIMCC_MODELS, build_model, model_names
from posedistill.models.complexity import count_flops, count_params
from posedistill.models.convert import (
    convert_mmpose_state_dict,
    load_mmpose_checkpoint,
    read_checkpoint,
    split_mmpose_state_dict,
)
from posedistill.models.cspnext import CSPNEXT_SIZES, CSPNeXt
from posedistill.models.heatmap_head import HeatmapHead
from posedistill.models.heatmap_model import TopdownHeatmapModel
from posedistill.models.hourglass import HourglassStack, StackedHourglass, hourglass_stem, run_stacks
from posedistill.models.resnet import ResNet
from posedistill.models.rtmcc_head import GAU, RTMCCHead, ScaleNorm
from posedistill.models.rtmpose import RTMPose, flip_simcc_back, flip_test_simcc

__all__ = [
    "CSPNEXT_SIZES",
    "GAU",
    "MODEL_BUILDERS",
    "SIMCC_MODELS",
    "CSPNeXt",
    "HeatmapHead",
    "HourglassStack",
    "RTMCCHead",
    "RTMPose",
    "ResNet",
    "ScaleNorm",
    "StackedHourglass",
    "TopdownHeatmapModel",
    "build_model",
    "convert_mmpose_state_dict",
    "count_flops",
    "count_params",
    "flip_simcc_back",
    "flip_test_simcc",
    "hourglass_stem",
    "load_mmpose_checkpoint",
    "model_names",
    "read_checkpoint",
    "run_stacks",
    "split_mmpose_state_dict",
]
