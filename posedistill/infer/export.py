"""ONNX export (needs torch and onnx: the ``train`` extra).

The graph follows the contract of the official RTMPose / DWPose ONNX files (see
:mod:`posedistill.infer.onnx_model`): input ``input`` N×3×H×W float32 (RGB, normalised outside the graph),
outputs ``simcc_x`` N×K×(W·r) and ``simcc_y`` N×K×(H·r) for SimCC models, ``heatmaps`` N×K×H'×W' for heatmap
models (SimpleBaseline, CSPNeXt-heatmap, stacked hourglass, an OKDHP branch, a DKD student: any module whose
``forward`` returns one of the two). The batch axis is 1, or symbolic with ``dynamic_batch``.

Everything the runtime needs is embedded as JSON in the model's ``metadata_props`` under ``posedistill``: kind,
layout, K, input size, codec, normalisation, box padding, flip indices and the ``build_model`` arguments.
Exported with the TorchScript exporter (``dynamo=False``), opset 17 by default; the file is written atomically.

A DKD video network exports as two graphs (:func:`export_dkd_onnx`): ``OUT`` runs an initialisation frame
(``input`` → ``heatmaps``, ``features``) and ``OUT`` with ``_step`` before the suffix a tracked frame (``input``,
``prev_features``, ``prev_heatmaps`` → ``heatmaps``, ``features``); :func:`dkd_parity` checks both.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posedistill.fileio import atomic_write_bytes
from posedistill.infer.onnx_model import (
    HEATMAP_OUTPUT,
    LAYOUT_BY_K,
    METADATA_FORMAT,
    METADATA_KEY,
    METADATA_VERSION,
    SIMCC_OUTPUTS,
    resolve_layout,
)
from posedistill.infer.preprocess import BBOX_PADDING, MEAN_RGB, STD_RGB

DEFAULT_OPSET = 17


def _input_size(model: nn.Module, meta: dict[str, Any], input_size: Any) -> tuple[int, int]:
    size = input_size or meta.get("input_size") or (getattr(model, "build_args", None) or {}).get("input_size")
    if size is None:
        raise ValueError("cannot tell the model's input size: pass input_size=(w, h)")
    w, h = (int(v) for v in size)
    return w, h


@torch.no_grad()
def describe_outputs(model: nn.Module, input_size: tuple[int, int]) -> tuple[str, int, list[tuple[int, ...]]]:
    """Run one zero crop through ``model``: ("simcc" | "heatmap", K, per-output shapes without the batch axis)."""
    w, h = input_size
    p = next(model.parameters(), None)
    out = model(torch.zeros(1, 3, h, w, device=p.device if p is not None else "cpu"))
    pair = isinstance(out, tuple | list) and len(out) == 2
    if pair and all(isinstance(t, torch.Tensor) and t.dim() == 3 for t in out):
        return "simcc", int(out[0].shape[1]), [tuple(out[0].shape[1:]), tuple(out[1].shape[1:])]
    if isinstance(out, torch.Tensor) and out.dim() == 4:
        return "heatmap", int(out.shape[1]), [tuple(out.shape[1:])]
    got = type(out).__name__ if not isinstance(out, torch.Tensor) else f"a tensor of shape {tuple(out.shape)}"
    raise ValueError(
        f"cannot export {type(model).__name__}: forward must return (simcc_x B×K×Wx, simcc_y B×K×Wy) or heatmaps "
        f"B×K×H×W, got {got}; wrap multi-output networks so that forward returns the deployed prediction"
    )


def _fix_output_shapes(proto: Any, names: list[str], shapes: list[tuple[int, ...]]) -> None:
    """Write the static K / bins / heatmap sizes into the graph outputs (the tracer leaves some symbolic)."""
    by_name = {o.name: o for o in proto.graph.output}
    for name, shape in zip(names, shapes):
        dims = by_name[name].type.tensor_type.shape.dim
        for d, size in zip(list(dims)[1:], shape):
            d.ClearField("dim_param")
            d.dim_value = int(size)


def export_onnx(
    model: nn.Module,
    out: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    layout: str | None = None,
    input_size: tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    fp16_weights: bool = False,
) -> Path:
    """Export ``model`` (a pose network in eval mode on CPU) to ``out``.

    Args:
        model: network whose ``forward`` gives SimCC logits or heatmaps.
        out: target ``.onnx`` path (written atomically).
        meta: checkpoint-style meta (``layout``, ``input_size``, ``codec``, ``mean``, ``std``, ``model.build_args``)
            to embed; what is missing is inferred (K → layout, output shape → codec).
        layout: layout name (overrides ``meta``).
        input_size: (w, h) (overrides ``meta`` and ``model.build_args``).
        dynamic_batch: symbolic batch axis (one call for all crops of a frame) instead of batch 1.
        opset: ONNX opset (17 by default).
        check: run ``onnx.checker`` on the result.
        fp16_weights: store the float weights as float16 (half the file) with a ``Cast`` to float32 in front of
            each; onnxruntime folds the casts when it loads the model, so it still computes in float32 at full
            speed, and the outputs differ from the float32 file only by the weights' float16 rounding.

    A DKD network (``build_args["name"] == "dkd"``) has no single-graph form: it goes to
    :func:`export_dkd_onnx`, which writes ``out`` (initialisation frame) and :func:`dkd_step_path` (tracked frame);
    ``out`` is returned.
    """
    if is_dkd_model(model):
        init_path, _ = export_dkd_onnx(
            model, out, meta=meta, layout=layout, input_size=input_size, dynamic_batch=dynamic_batch, opset=opset,
            check=check, fp16_weights=fp16_weights,
        )  # fmt: skip
        return init_path
    meta = dict(meta or {})
    model = model.float().cpu().eval()
    w, h = _input_size(model, meta, input_size)
    kind, k, shapes = describe_outputs(model, (w, h))
    layout_name, flip = resolve_layout(str(out), k, layout or meta.get("layout") or LAYOUT_BY_K.get(k))
    codec = dict(meta.get("codec") or {})
    if not codec:
        if kind == "simcc":
            codec = {"type": "simcc", "input_size": [w, h], "sigma": [4.9, 5.66], "split_ratio": shapes[0][1] / w}
        else:
            codec = {"type": "heatmap", "input_size": [w, h], "heatmap_size": [shapes[0][2], shapes[0][1]],
                     "sigma": 2.0}  # fmt: skip
    if codec.get("type") != kind:
        raise ValueError(f"the model outputs {kind} but the codec config is {codec!r}")
    output_names = list(SIMCC_OUTPUTS) if kind == "simcc" else [HEATMAP_OUTPUT]
    info = _runtime_info(model, meta, kind, layout_name, flip, k, (w, h), codec, dynamic_batch, opset)
    proto = _trace(model, (torch.zeros(1, 3, h, w),), ["input"], output_names, opset, dynamic_batch)
    _fix_output_shapes(proto, output_names, shapes)
    out = Path(out)
    _finish(proto, info, out, fp16_weights, check)
    return out


def _runtime_info(
    model: nn.Module, meta: dict[str, Any], kind: str, layout: str, flip: Any, k: int, input_size: tuple[int, int],
    codec: dict[str, Any], dynamic_batch: bool, opset: int,
) -> dict[str, Any]:  # fmt: skip
    """The ``posedistill`` metadata JSON every exported graph carries (what the runtime needs besides the graph)."""
    build_args = getattr(model, "build_args", None) or (meta.get("model") or {}).get("build_args") or {}
    return {
        "format": METADATA_FORMAT,
        "version": METADATA_VERSION,
        "kind": kind,
        "layout": layout,
        "num_keypoints": k,
        "input_size": list(input_size),
        "codec": codec,
        "mean": [float(v) for v in meta.get("mean", MEAN_RGB)],
        "std": [float(v) for v in meta.get("std", STD_RGB)],
        "to_rgb": True,
        "padding": float(meta.get("padding", BBOX_PADDING)),
        "flip_indices": list(flip),
        "build_args": build_args,
        # keypoints its training never labelled (their outputs are untrained): the runtime scores them 0
        "untrained_keypoints": [int(i) for i in meta.get("untrained_keypoints", [])],
        "dynamic_batch": bool(dynamic_batch),
        "opset": int(opset),
    }


def _finish(proto: Any, info: dict[str, Any], out: Path, fp16_weights: bool, check: bool) -> None:
    """Optionally store the weights as float16, embed ``info``, check the graph, write it atomically."""
    import onnx

    if fp16_weights:
        _weights_to_fp16(proto)
        info = {**info, "fp16_weights": True}
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    proto.producer_name = "posedistill"
    if check:
        onnx.checker.check_model(proto)
    atomic_write_bytes(out, proto.SerializeToString())


def _weights_to_fp16(proto: Any, min_elements: int = 16) -> None:
    """Store every float32 initializer with at least ``min_elements`` values as float16 under a new name and put a
    ``Cast`` back to float32, under the old name, at the front of the graph (in place)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    casts, keep = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            keep.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}__fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_fp32"))  # fmt: skip
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    layout: str | None = None,
    which: str = "student",
    fp16_weights: bool = False,
) -> Path:
    """Export a posedistill checkpoint folder or an official mmpose / DWPose ``.pth`` to ONNX."""
    from posedistill.engine.checkpoint import load_model_from_checkpoint

    model, meta = load_model_from_checkpoint(checkpoint, which=which, layout=layout)
    return export_onnx(model, out, meta=meta, layout=layout, dynamic_batch=dynamic_batch, opset=opset,
                       fp16_weights=fp16_weights)  # fmt: skip


@torch.no_grad()
def parity(model: nn.Module, onnx_path: str | Path, inputs: np.ndarray, threads: int | None = None) -> dict[str, float]:
    """Compare onnxruntime with PyTorch on ``inputs`` (N, 3, h, w): per output, the max absolute difference
    divided by the max absolute PyTorch value (``rel_<name>``) and the max absolute difference (``abs_<name>``)."""
    from posedistill.infer.onnx_model import OnnxPoseModel

    ort_model = OnnxPoseModel(onnx_path, threads=threads)
    got = ort_model.run(inputs)
    ref = model.float().cpu().eval()(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)))
    ref = ref if isinstance(ref, tuple | list) else (ref,)
    out: dict[str, float] = {}
    for name, a, b in zip(ort_model.info.output_names, got, ref):
        b = b.numpy()
        diff = float(np.abs(a - b).max())
        out[f"abs_{name}"] = diff
        out[f"rel_{name}"] = diff / max(float(np.abs(b).max()), 1e-12)
    return out


# ------------------------------------------------------------------------------------------------ DKD: two graphs
DKD_STEP_SUFFIX = "_step"
DKD_STEP_INPUTS = ("input", "prev_features", "prev_heatmaps")
DKD_OUTPUTS = (HEATMAP_OUTPUT, "features")


def is_dkd_model(model: nn.Module) -> bool:
    """A DKD video network (:class:`posedistill.models.dkd.DKDNet`, ``build_args["name"] == "dkd"``)."""
    from posedistill.models.dkd import DKDNet

    return isinstance(model, DKDNet) or (getattr(model, "build_args", None) or {}).get("name") == "dkd"


def dkd_step_path(out: str | Path) -> Path:
    """The tracked-frame graph next to the initialisation graph ``out``: ``pose.onnx`` → ``pose_step.onnx``."""
    p = Path(out)
    return p.with_name(f"{p.stem}{DKD_STEP_SUFFIX}{p.suffix or '.onnx'}")


class _AnyBatchStep(nn.Module):
    """:class:`~posedistill.models.dkd.DKDStep` with a batch-independent matching, for ``dynamic_batch`` graphs.

    The network's matching folds the batch into the groups of one grouped convolution, and ONNX stores a
    convolution's group count as a constant: the traced batch. Here the current features are unfolded into
    their k×k patches (B×(C·k·k)×(h·w)) and each person's kernels multiply them in one batched matmul, which the
    graph runs for any batch. The same sums as the convolution, in another order (float rounding only).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.encoder, self.distillator, self.matching = net.encoder, net.distillator, net.matching

    def forward(
        self, images: torch.Tensor, prev_features: torch.Tensor, prev_heatmaps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(heatmaps B×K×h×w, features B×C×h×w) of a tracked frame, as ``DKDStep``."""
        import torch.nn.functional as F

        features = self.encoder(images)  # B×C×h×w
        kernels = self.distillator(prev_features, prev_heatmaps)  # B×K×C×k×k (per_joint) or B×C×k×k (depthwise)
        m = self.matching
        if m.static is not None:
            kernels = kernels + m.static.to(kernels.dtype)
        b, c, h, w = features.shape
        k = m.kernel_size
        patches = F.unfold(features, k, padding=k // 2)  # B×(C·k·k)×(h·w)
        if m.mode == "per_joint":
            heatmaps = torch.bmm(kernels.flatten(2), patches).reshape(b, -1, h, w)  # B×K×h×w
            return heatmaps + m.bias.to(features.dtype)[:, None, None], features
        taps = patches.reshape(b, c, k * k, h * w) * kernels.reshape(b, c, k * k, 1)
        return m.head(taps.sum(dim=2).reshape(b, c, h, w)), features


def _trace(
    module: nn.Module, args: tuple[torch.Tensor, ...], input_names: list[str], output_names: list[str], opset: int,
    dynamic_batch: bool,
) -> Any:  # fmt: skip
    """TorchScript-export ``module`` on ``args`` into an in-memory ONNX ModelProto."""
    import onnx

    buf = io.BytesIO()
    dynamic_axes = {n: {0: "batch"} for n in [*input_names, *output_names]} if dynamic_batch else None
    with warnings.catch_warnings():  # tracer chatter about shape checks and the legacy exporter
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, buf, dynamo=False, input_names=input_names, output_names=output_names,
            opset_version=int(opset), dynamic_axes=dynamic_axes, do_constant_folding=True,
        )  # fmt: skip
    return onnx.load_from_string(buf.getvalue())


def export_dkd_onnx(
    net: nn.Module,
    out: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    layout: str | None = None,
    input_size: tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    fp16_weights: bool = False,
) -> tuple[Path, Path]:
    """Export a DKD network (:class:`~posedistill.models.dkd.DKDNet`) as its two per-frame graphs.

    - ``out`` (initialisation frame, :class:`~posedistill.models.dkd.DKDInit`): ``input`` N×3×H×W →
      ``heatmaps`` N×K×h×w (the initializer's), ``features`` N×C×h×w (the encoder's);
    - :func:`dkd_step_path` (``<out stem>_step.onnx``, a tracked frame, :class:`~posedistill.models.dkd.DKDStep`):
      ``input`` N×3×H×W, ``prev_features`` N×C×h×w, ``prev_heatmaps`` N×K×h×w → ``heatmaps``, ``features``.

    Both carry the ``posedistill`` metadata of :func:`export_onnx` (kind ``heatmap``: the initialisation file also
    runs as a per-frame heatmap model) plus ``"dkd": {"role": "init" | "step", "reinit_every",
    "min_confidence", "step_file" | "init_file" (the other file's name), "feature_channels", "heatmap_size"}``.
    With ``dynamic_batch`` the step graph matches kernels with a batch-independent formulation
    (:class:`_AnyBatchStep`); with batch 1 it is the network's own grouped convolution. The arguments are those of
    :func:`export_onnx`; each file is written atomically. Returns (init path, step path).
    """

    from posedistill.models.dkd import DKDInit, DKDStep

    if not is_dkd_model(net) or not hasattr(net, "initial"):
        raise ValueError(f"export_dkd_onnx exports DKD networks (posedistill.models.dkd.DKDNet), got "
                         f"{type(net).__name__}")  # fmt: skip
    if int(opset) < 11:
        raise ValueError(f"a DKD graph needs ONNX opset >= 11 (the distillator unfolds its patches), got {opset}")
    meta = dict(meta or {})
    net = net.float().cpu().eval()
    w, h = _input_size(net, meta, input_size)
    x = torch.zeros(1, 3, h, w)
    with torch.no_grad():
        heatmaps, features = net.initial(x)
    k, c = int(heatmaps.shape[1]), int(features.shape[1])
    hh, hw = int(heatmaps.shape[2]), int(heatmaps.shape[3])
    init_path = Path(out)
    step_path = dkd_step_path(init_path)
    if step_path == init_path:
        raise ValueError(f"{out}: cannot name the step graph next to it")
    layout_name, flip = resolve_layout(str(out), k, layout or meta.get("layout") or LAYOUT_BY_K.get(k))
    codec = dict(meta.get("codec") or {"type": "heatmap", "input_size": [w, h], "heatmap_size": [hw, hh],
                                       "sigma": 2.0})  # fmt: skip
    if codec.get("type") != "heatmap":
        raise ValueError(f"a DKD network outputs heatmaps but the codec config is {codec!r}")
    base = _runtime_info(net, meta, "heatmap", layout_name, flip, k, (w, h), codec, dynamic_batch, opset)
    dkd = {"reinit_every": net.reinit_every, "min_confidence": net.min_confidence, "feature_channels": c,
           "heatmap_size": [hw, hh]}  # fmt: skip
    out_shapes = [(k, hh, hw), (c, hh, hw)]
    step = _AnyBatchStep(net) if dynamic_batch else DKDStep(net)
    graphs = [
        (init_path, DKDInit(net).eval(), (x,), ["input"], {"role": "init", "step_file": step_path.name}),
        (step_path, step.eval(), (x, features, heatmaps), list(DKD_STEP_INPUTS),
         {"role": "step", "init_file": init_path.name}),
    ]  # fmt: skip
    for path, module, args, input_names, role in graphs:
        proto = _trace(module, args, input_names, list(DKD_OUTPUTS), opset, dynamic_batch)
        _fix_output_shapes(proto, list(DKD_OUTPUTS), out_shapes)
        _finish(proto, {**base, "dkd": {**role, **dkd}}, path, fp16_weights, check)
    return init_path, step_path


@torch.no_grad()
def dkd_parity(
    net: nn.Module, init_path: str | Path, step_path: str | Path, inputs: np.ndarray, threads: int | None = None
) -> dict[str, float]:
    """Compare both DKD graphs under onnxruntime with PyTorch: the initialisation graph on ``inputs``
    (N, 3, h, w), then the step graph on the inputs mirrored left-right with PyTorch's initialisation outputs as
    the previous state. Keys ``rel_<graph>_<output>`` (max absolute difference / max absolute PyTorch value) and
    ``abs_<graph>_<output>``, graph ``init`` or ``step``."""
    from posedistill.infer.onnx_model import make_session

    net = net.float().cpu().eval()
    x = np.ascontiguousarray(inputs, dtype=np.float32)
    x2 = np.ascontiguousarray(x[..., ::-1])
    ref_h, ref_f = net.initial(torch.from_numpy(x))
    ref_init = (ref_h, ref_f)
    ref_step = net.step(torch.from_numpy(x2), ref_f, ref_h)
    init = make_session(init_path, threads)
    step = make_session(step_path, threads)
    got_init = init.run(list(DKD_OUTPUTS), {"input": x})
    feeds = {"input": x2, "prev_features": ref_f.numpy(), "prev_heatmaps": ref_h.numpy()}
    got_step = step.run(list(DKD_OUTPUTS), feeds)
    out: dict[str, float] = {}
    for graph, got, ref in (("init", got_init, ref_init), ("step", got_step, ref_step)):
        for name, a, b in zip(DKD_OUTPUTS, got, ref):
            b = b.numpy()
            diff = float(np.abs(a - b).max())
            out[f"abs_{graph}_{name}"] = diff
            out[f"rel_{graph}_{name}"] = diff / max(float(np.abs(b).max()), 1e-12)
    return out
