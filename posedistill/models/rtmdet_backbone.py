"""RTMDet-nano's trained CSPNeXt backbone, read out of its ONNX export, as starting weights for ``rtmpose-nano``.

RTMPose as published never trains from random weights: its CSPNeXt starts from a pretrain. The only trained
CSPNeXt we may ship is inside the RTMDet-nano person detector in ``../shared/weights`` (Apache-2.0, OpenMMLab),
exported by mmdeploy with every BatchNorm folded into the conv before it (``W' = W·γ/σ``, ``b' = β − γ·μ/σ``).
This module maps its first 53 Conv nodes, in graph order, onto the convs of ``CSPNeXt(0.33, 0.25,
use_depthwise=True)`` in forward order (shapes checked one by one) and restores a BatchNorm per conv that
reproduces the detector exactly:

- the conv keeps ``W'``; its BN gets ``running_mean = m``, ``running_var = v``, ``γ = √(v + eps)``,
  ``β = m + b'``, where ``m``, ``v`` are the per-channel mean and variance of ``W'·x`` over calibration crops;
- in eval mode the block then computes ``W'·x + b'`` for any input (exact), and in training mode, where BN uses
  the batch's statistics, it computes the same as long as the batch looks like the calibration crops.

The detector reads BGR; RTMPose reads RGB with the same mean and std per colour, so the first conv's input
channels are reversed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from posedistill.models.cspnext import RTMDET_NANO, ConvBNAct, CSPNeXt


def _onnx_convs(path: Path) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(node output name, weight, bias or None) of every Conv node, in graph order."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        if node.input[1] not in inits:
            raise ValueError(f"{path}: Conv node {node.name!r} has no constant weight; not an mmdeploy export")
        bias = inits.get(node.input[2]) if len(node.input) > 2 else None
        out.append((node.output[0], inits[node.input[1]], bias))
    return out


def _forward_order(backbone: CSPNeXt) -> list[nn.Conv2d]:
    """The backbone's convs in the order its forward runs them (the order a trace exports them)."""
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
             for m in backbone.modules() if isinstance(m, nn.Conv2d)]  # fmt: skip
    with torch.no_grad():
        backbone.eval()(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    return order


def load_rtmdet_backbone(backbone: CSPNeXt, onnx_path: str | Path, calib: Tensor) -> int:
    """Overwrite ``backbone`` (a ``CSPNeXt(0.33, 0.25, use_depthwise=True)``) with RTMDet-nano's trained weights.

    ``calib``: B×3×h×w normalised RGB crops (the pose pipeline's input) for the BN statistics. Returns the number
    of convs loaded. ValueError, naming the file and the first conv that differs, if the graph does not fit.
    """
    onnx_path = Path(onnx_path)
    convs = _forward_order(backbone)
    nodes = _onnx_convs(onnx_path)[: len(convs)]
    if len(nodes) < len(convs):
        raise ValueError(f"{onnx_path}: {len(nodes)} Conv nodes, the backbone needs {len(convs)}")
    bn_of = {m.conv: m.bn for m in backbone.modules() if isinstance(m, ConvBNAct)}
    with_bn: list[nn.Conv2d] = []
    with torch.no_grad():
        for i, (conv, (name, w, b)) in enumerate(zip(convs, nodes)):
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ValueError(f"{onnx_path}: Conv {i} ({name}) has weight {w.shape}, the backbone's conv {i} "
                                 f"needs {tuple(conv.weight.shape)}")  # fmt: skip
            weight = torch.from_numpy(w.copy())
            if i == 0:
                weight = weight.flip(1)  # BGR -> RGB input channels
            conv.weight.copy_(weight)
            bias = torch.zeros(w.shape[0]) if b is None else torch.from_numpy(b.copy())
            if conv.bias is not None:  # channel attention: a plain conv with bias
                conv.bias.copy_(bias)
            elif conv in bn_of:
                with_bn.append(conv)
                bn = bn_of[conv]
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)  # b', until the statistics below are known
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)  # BN is the identity plus b' in eval mode
            else:
                raise ValueError(f"backbone conv {i} has neither a bias nor a BatchNorm after it")
    # statistics of W'·x per conv, in eval mode, where every block is already exact
    stats: dict[nn.Conv2d, tuple[Tensor, Tensor]] = {}

    def record(mod: nn.Module, _inp: tuple[Tensor, ...], out: Tensor) -> None:
        stats[mod] = (out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3), unbiased=False))

    hooks = [c.register_forward_hook(record) for c in with_bn]
    with torch.no_grad():
        backbone.eval()(calib)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for conv in with_bn:
            m, v = stats[conv]
            bn = bn_of[conv]
            bn.running_mean.copy_(m)
            bn.running_var.copy_(v)
            bn.weight.copy_(torch.sqrt(v + bn.eps))
            bn.bias.add_(m)  # b' + m
    return len(convs)


def calibration_crops(annotations: str | Path, input_size: tuple[int, int], count: int = 64) -> Tensor:
    """count×3×h×w normalised crops of the first ``count`` people of a COCO(-WholeBody) file, made as the
    validation pipeline makes them (ground-truth box, no augmentation)."""
    from posedistill.data.readers import read_dataset

    people = read_dataset(annotations)[:count]
    if not people:
        raise ValueError(f"{annotations}: no people to calibrate the BatchNorm statistics on")
    return instance_crops(people, input_size)


def instance_crops(people: list, input_size: tuple[int, int]) -> Tensor:
    """N×3×h×w normalised crops of ``people`` (Instances) as the validation pipeline makes them."""
    from posedistill.codecs.simcc import SimCCCodec
    from posedistill.data.loader import TopDownDataset, collate

    # the dataset wants a codec for its targets; only the crops are used here
    ds = TopDownDataset(people, SimCCCodec(input_size, (2.0, 2.0)), input_size, train=False)
    return collate([ds[i] for i in range(len(ds))])["image"]


#: ``model.pretrained`` value that starts ``rtmpose-nano``'s backbone from the shipped RTMDet-nano detector
PRETRAINED_NAME = "rtmdet-nano"


def init_from_detector(model: nn.Module, people: list, input_size: tuple[int, int], count: int = 64) -> int:
    """Load RTMDet-nano's backbone (the default detector's ONNX) into ``model.backbone``, BN statistics from the
    crops of the first ``count`` of ``people``; returns the number of convs loaded. ValueError when the model has
    no RTMDet-nano-shaped backbone or there are no people."""
    from posedistill.infer.defaults import default_detector

    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, CSPNeXt):  # another CSPNeXt size fails load_rtmdet_backbone's shape check
        raise ValueError(f"{PRETRAINED_NAME!r} starts the CSPNeXt of rtmpose-nano (RTMDet-nano's backbone); this "
                         f"model has {type(backbone).__name__}")  # fmt: skip
    if not people:
        raise ValueError(f"{PRETRAINED_NAME!r}: no training people to calibrate the BatchNorm statistics on")
    onnx_path, crops = default_detector(), instance_crops(list(people[:count]), input_size)
    try:
        return load_rtmdet_backbone(backbone, onnx_path, crops)
    except ValueError as e:
        raise ValueError(f"{PRETRAINED_NAME!r} fits only rtmpose-nano (RTMDet-nano's CSPNeXt): {e}") from None


def write_rtmdet_pretrained(out: str | Path, onnx_path: str | Path, calib: Tensor) -> Path:
    """Write ``backbone.*`` weights of ``rtmpose-nano`` initialised from RTMDet-nano (safetensors, atomically), for
    ``model.pretrained``; the head stays at its own init when the file is loaded."""
    from safetensors.torch import save_file

    from posedistill.fileio import atomic_write_with

    backbone = CSPNeXt(*RTMDET_NANO, use_depthwise=True)
    load_rtmdet_backbone(backbone, onnx_path, calib)
    state = {f"backbone.{k}": v.contiguous() for k, v in backbone.state_dict().items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(out, lambda p: save_file(state, str(p), metadata={"source": Path(onnx_path).name}))
    return out
