"""Static int8 quantization of an exported pose model (onnxruntime's ``quantize_static``, QDQ format).

The int8 file keeps the I/O contract of the float32 export (:mod:`posedistill.infer.onnx_model`): float32 input
``input`` N×3×H×W and float32 outputs (``simcc_x`` / ``simcc_y`` or ``heatmaps``); QuantizeLinear /
DequantizeLinear pairs inside the graph carry the int8 tensors, and onnxruntime fuses them into integer kernels
when it loads the file. The ``posedistill`` metadata is the float32 file's plus an ``int8`` entry (settings,
calibration source, the nodes kept in float32), so ``PoseEstimator`` and ``posedistill infer`` run it unchanged.

Calibration runs the float32 graph on real person crops made with the runtime's own top-down preprocessing
(:func:`posedistill.infer.preprocess.preprocess`: box padding, aspect fix, affine warp, normalisation, exactly as
``PoseEstimator`` feeds the model):

- a COCO json: its non-crowd ground-truth person boxes (images under ``<json folder>/images/`` or next to it);
- a folder of images: the person boxes of the default detector (``models/rtmdet-nano_person``), or the whole
  image as one box where it finds nobody (or when no detector is available).

Settings (measured on an AVX2 CPU without VNNI, ``docs/benchmarks.md``, int8 section): activations uint8
(asymmetric), weights int8 per output channel, 7-bit weights (``reduce_range``), MinMax calibration. The
SimCC head's tail after its convolution (MLP, GAU, cls_x / cls_y) stays float32 (:data:`DEFAULT_KEEP_FP32`,
:func:`fp32_nodes`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posedistill.errors import PoseDataError
from posedistill.fileio import atomic_write_bytes
from posedistill.infer.onnx_model import METADATA_KEY, PoseModelInfo

log = logging.getLogger(__name__)

CALIB_COUNT = 300
INT8_KEY = "int8"
# which nodes stay float32 (fp32_nodes): none; "outputs" = the layers that write the graph outputs (SimCC:
# cls_x / cls_y, heatmaps: the final convolution); "tail" = the outputs and every head node after the head's last
# convolution (SimCC: the MLP, the GAU and the classifiers; heatmaps: the outputs and the norm / activation in
# front of them); "head" = the whole head module
KEEP_FP32 = ("none", "outputs", "tail", "head")
DEFAULT_KEEP_FP32 = "tail"
# ops a graph output may pass through on its way back to the layer that computes it
_PASS_THROUGH = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Add", "Cast"}
_WEIGHT_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose"}
_CALIB_BATCH = 8


# ------------------------------------------------------------------------------------------------ calibration data


def _image_files(folder: Path) -> list[Path]:
    from posedistill.infer.sources import IMAGE_EXTS, _natural_key

    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=_natural_key)


def _coco_boxes(path: Path) -> list[tuple[Path, np.ndarray]]:
    """(image file, (N, 4) xyxy non-crowd person boxes) for every annotated image of a COCO json."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PoseDataError(path, f"--calib: cannot read it as a COCO json file: {e}") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("images"), list)
        or not isinstance(doc.get("annotations"), list)
    ):
        raise PoseDataError(path, "--calib: expected a COCO json object with 'images' and 'annotations' (person "
                            "boxes), or a folder of images")  # fmt: skip
    folder = path.resolve().parent
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    files: dict[Any, Path] = {}
    for i, rec in enumerate(doc["images"]):
        if not isinstance(rec, dict) or "id" not in rec or not isinstance(rec.get("file_name"), str):
            raise PoseDataError(path, "each image needs an id and a file_name", record=f"images[{i}]")
        for cand in (image_dir / rec["file_name"], image_dir / Path(rec["file_name"]).name):
            if cand.is_file():
                files[rec["id"]] = cand
                break
        else:
            raise PoseDataError(path, f"--calib: image {rec['file_name']!r} not found in {image_dir}",
                                record=f"image id={rec['id']}", field="file_name")  # fmt: skip
    boxes: dict[Any, list[list[float]]] = {}
    for i, ann in enumerate(doc["annotations"]):
        box = ann.get("bbox") if isinstance(ann, dict) else None
        if not isinstance(box, list) or len(box) != 4:
            raise PoseDataError(path, f"expected a person box [x, y, w, h], got {box!r}",
                                record=f"annotations[{i}]", field="bbox")  # fmt: skip
        x, y, w, h = (float(v) for v in box)
        if ann.get("iscrowd") or ann.get("image_id") not in files or w < 2 or h < 2:
            continue
        boxes.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
    out = [(files[k], np.asarray(v, np.float32)) for k, v in boxes.items()]
    if not out:
        raise PoseDataError(path, "--calib: no usable person boxes (non-crowd annotations with a bbox of at least "
                            "2×2 px on a listed image)", field="annotations")  # fmt: skip
    return out


@dataclass
class CalibrationSet:
    """Person boxes to calibrate on.

    Attributes:
        source: the ``--calib`` path as given.
        kind: ``"coco"`` (a COCO json) or ``"images"`` (a folder).
        boxes_from: ``"ground truth"``, ``"detector"`` (the whole image where it found nobody) or ``"whole image"``.
        items: [(image file, (n, 4) float32 xyxy boxes), ...], at most ``count`` boxes in all.
    """

    source: str
    kind: str
    boxes_from: str
    items: list[tuple[Path, np.ndarray]]

    @property
    def num_boxes(self) -> int:
        return sum(len(b) for _, b in self.items)

    def describe(self) -> dict[str, Any]:
        """What the int8 metadata records about the calibration data."""
        return {"source": self.source, "kind": self.kind, "boxes": self.boxes_from}


def _spread(n: int, count: int) -> np.ndarray:
    """At most ``count`` indices evenly spaced over range(n)."""
    return np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(int))


def calibration_boxes(source: str | Path, count: int = CALIB_COUNT, detector: Any = "default") -> CalibrationSet:
    """The images and person boxes to calibrate on, at most ``count`` boxes spread evenly over the source.

    Args:
        source: a COCO json (its non-crowd ground-truth boxes; images under ``<json folder>/images/`` or next to
            the json) or a folder of images.
        count: number of boxes wanted (evenly spaced over the source when it has more).
        detector: for a folder: ``"default"`` (the shipped person detector; when it is missing, whole images), a
            callable ``image -> (boxes (N, 4) xyxy, scores (N,))``, or None (the whole image is one box). Images in
            which it finds nobody give the whole image.

    Raises :class:`PoseDataError` naming ``source`` and what was expected when it is missing, neither a COCO json
    nor a folder, holds no images or no usable boxes; ``ValueError`` for ``count`` < 1.
    """
    src = Path(source)
    if count < 1:
        raise ValueError(f"--calib-count {count}: expected at least 1 crop")
    if src.is_file():
        if src.suffix.lower() != ".json":
            raise PoseDataError(src, "--calib: expected a COCO json file (person boxes) or a folder of images")
        flat = [(f, b) for f, boxes in _coco_boxes(src) for b in boxes]
        by_file: dict[Path, list[np.ndarray]] = {}
        for i in _spread(len(flat), count):
            by_file.setdefault(flat[i][0], []).append(flat[i][1])
        return CalibrationSet(str(source), "coco", "ground truth", [(f, np.stack(b)) for f, b in by_file.items()])
    if not src.is_dir():
        raise PoseDataError(src, "--calib: no such file or folder; expected a COCO json file (person boxes) or a "
                            "folder of images")  # fmt: skip
    files = _image_files(src)
    if not files:
        raise PoseDataError(src, "--calib: the folder holds no images (.jpg, .png, ...); expected a folder of "
                            "images or a COCO json file")  # fmt: skip
    from posedistill.data.image_io import read_image

    det = _load_detector(detector)
    out: list[tuple[Path, np.ndarray]] = []
    for i in _spread(len(files), count):
        image = read_image(files[i])
        h, w = image.shape[:2]
        boxes = np.zeros((0, 4), np.float32) if det is None else np.asarray(det(image)[0], np.float32).reshape(-1, 4)
        out.append((files[i], boxes if len(boxes) else np.array([[0, 0, w, h]], np.float32)))
    total = sum(len(b) for _, b in out)
    if total > count:  # thin the boxes evenly
        keep = set(_spread(total, count).tolist())
        thinned, first = [], 0
        for f, boxes in out:
            sel = [j for j in range(len(boxes)) if first + j in keep]
            first += len(boxes)
            if sel:
                thinned.append((f, boxes[sel]))
        out = thinned
    return CalibrationSet(str(source), "images", "whole image" if det is None else "detector", out)


def _load_detector(detector: Any) -> Any:
    if detector is None or callable(detector):
        return detector
    from posedistill.infer.defaults import load_detector

    try:
        return load_detector(detector, threads=1, progress=False)
    except PoseDataError as e:
        log.warning("calibration: no person detector (%s): each image is one whole-image box", e)
        return None


def calibration_crops(calib: CalibrationSet | str | Path, info: PoseModelInfo, count: int = CALIB_COUNT) -> np.ndarray:
    """Model inputs for calibration: (N, 3, h, w) float32 crops of the boxes of ``calib`` (a
    :class:`CalibrationSet`, or a source for :func:`calibration_boxes`), N <= ``count``, made exactly as
    ``PoseEstimator`` makes them (:func:`posedistill.infer.preprocess.preprocess` with the model's input size,
    normalisation, colour order, box padding and UDP setting)."""
    from posedistill.data.image_io import read_image
    from posedistill.infer.preprocess import preprocess

    if not isinstance(calib, CalibrationSet):
        calib = calibration_boxes(calib, count)
    crops = [
        preprocess(read_image(f), boxes, info.input_size, info.mean, info.std, to_rgb=info.to_rgb,
                   padding=info.padding, udp=info.udp).inputs
        for f, boxes in calib.items
    ]  # fmt: skip
    return np.concatenate(crops)[:count]


class CropReader:
    """onnxruntime ``CalibrationDataReader`` over an array of crops: ``{input_name: crops[i : i + batch]}`` per
    call, then None; ``rewind`` starts over."""

    def __init__(self, input_name: str, crops: np.ndarray, batch: int) -> None:
        self.input_name, self.crops, self.batch = input_name, np.ascontiguousarray(crops, np.float32), max(1, batch)
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self.crops):
            return None
        part = self.crops[self._i : self._i + self.batch]
        self._i += self.batch
        return {self.input_name: part}

    def rewind(self) -> None:
        self._i = 0

    def __iter__(self) -> CropReader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item

    def __len__(self) -> int:
        return -(-len(self.crops) // self.batch)


# ------------------------------------------------------------------------------------------------ the graph


def output_layers(proto: Any) -> list[str]:
    """Names of the nodes that compute the graph outputs: from each output back through reshapes, transposes and
    bias adds to the nearest MatMul / Gemm / Conv / ConvTranspose, every node on the way included (SimCC:
    ``/head/cls_x/MatMul``, ``/head/cls_y/MatMul``; heatmaps: the final convolution)."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    inits = {i.name for i in proto.graph.initializer}
    found: list[str] = []
    for out in proto.graph.output:
        stack = [out.name]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node.name in found:
                continue
            found.append(node.name)
            if node.op_type in _WEIGHT_OPS:
                continue
            if node.op_type in _PASS_THROUGH:
                stack += [i for i in node.input if i and i not in inits and i in producer]
    return found


def fp32_nodes(proto: Any, keep: str | Sequence[str] = DEFAULT_KEEP_FP32) -> list[str]:
    """The nodes to leave in float32 (``nodes_to_exclude``).

    Args:
        proto: the float32 ``onnx.ModelProto``.
        keep: ``"none"``; ``"outputs"`` (:func:`output_layers`); ``"head"``: every node whose name lies under the
            module of the output layers (``/head/...`` in posedistill exports: SimCC's final convolution, MLP, GAU
            and classifiers, or a heatmap head's deconvolutions and final convolution); ``"tail"``: the output
            layers and the head's nodes after its last convolution that is not one of them (SimCC: everything but
            the final convolution, the half of the head that is not a convolution; heatmaps: the output layers);
            or explicit node names.

    Measured on RTMPose-t (``docs/benchmarks.md``, int8 section): quantizing SimCC's classifiers puts 1-bin
    steps into the logits that the argmax decode turns into keypoint jumps ("none" → "outputs" is the largest
    gain), and the GAU's attention and ScaleNorms are the next largest error ("tail"); the final convolution
    is where "head" pays most of its speed.
    """
    if not isinstance(keep, str):
        names = {n.name for n in proto.graph.node}
        missing = [k for k in keep if k not in names]
        if missing:
            raise ValueError(f"nodes to keep in float32 not in the graph: {missing}")
        return list(keep)
    if keep not in KEEP_FP32:
        raise ValueError(f"keep_fp32 must be one of {KEEP_FP32} or a list of node names, got {keep!r}")
    if keep == "none":
        return []
    outs = output_layers(proto)
    if keep == "outputs":
        return outs
    prefixes = {n.split("/")[1] for n in outs if n.startswith("/") and n.count("/") >= 2}
    if not prefixes:  # names without module paths: the output layers are all we can tell
        return outs
    head = [n for n in proto.graph.node if n.name.startswith("/") and n.name.split("/")[1] in prefixes]
    if keep == "head":
        return [n.name for n in head]
    # "tail": the nodes (in the graph's topological order) after the head's last convolution that is not an
    # output layer
    convs = [i for i, n in enumerate(head) if n.op_type in ("Conv", "ConvTranspose") and n.name not in outs]
    start = convs[-1] + 1 if convs else 0
    tail = [n.name for n in head[start:]]
    return tail + [n for n in outs if n not in tail]


def _restore_fp32_weights(proto: Any) -> int:
    """Undo ``export_onnx(fp16_weights=True)``: every ``Cast`` to float32 of a float16 initializer becomes a
    float32 initializer again (quantization reads float32 weights). Returns the number restored."""
    from onnx import TensorProto, numpy_helper

    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    drop, new = [], []
    for node in graph.node:
        src = inits.get(node.input[0]) if node.op_type == "Cast" and node.input else None
        if src is None or src.data_type != TensorProto.FLOAT16:
            continue
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if to != TensorProto.FLOAT:
            continue
        new.append(numpy_helper.from_array(numpy_helper.to_array(src).astype(np.float32), node.output[0]))
        drop.append(node)
    if not drop:
        return 0
    used = {i for n in graph.node if n not in drop for i in n.input}
    keep_inits = [i for i in graph.initializer if i.name in used or i.name not in {d.input[0] for d in drop}]
    del graph.initializer[:]
    graph.initializer.extend(keep_inits + new)
    nodes = [n for n in graph.node if n not in drop]
    del graph.node[:]
    graph.node.extend(nodes)
    return len(new)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization reports through the root logger (a warning per call about pre-processing it then
    gets, progress lines at info level): silence it below errors for the duration."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def read_posedistill_metadata(proto: Any, path: str | Path) -> dict[str, Any]:
    """The ``posedistill`` metadata of an ONNX ModelProto; a :class:`PoseDataError` when there is none."""
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    raise PoseDataError(path, "no posedistill metadata: int8 quantization takes a file written by posedistill export")


def quantize_onnx(
    src: str | Path,
    out: str | Path,
    crops: np.ndarray,
    *,
    keep_fp32: str | Sequence[str] = DEFAULT_KEEP_FP32,
    per_channel: bool = True,
    reduce_range: bool = True,
    activation_type: str = "uint8",
    weight_type: str = "int8",
    calibration: dict[str, Any] | None = None,
) -> Path:
    """Quantize the posedistill float32 ONNX ``src`` to int8 (QDQ) at ``out``, written atomically.

    Args:
        src: a single-graph ``posedistill export`` file (SimCC or heatmap; float16-stored weights are restored to
            float32 first). DKD graphs and files already quantized are refused.
        out: the int8 ``.onnx`` to write.
        crops: (N, 3, h, w) float32 calibration inputs (:func:`calibration_crops`).
        keep_fp32: nodes left in float32 (:func:`fp32_nodes`).
        per_channel: one weight scale per output channel.
        reduce_range: 7-bit weights (no int16 saturation in the u8×s8 multiply-adds of AVX2 CPUs without VNNI).
        activation_type, weight_type: ``"uint8"`` or ``"int8"``.
        calibration: what to record about the calibration data (source path, kind), stored in the metadata.

    Calibration is MinMax (each activation's range over all crops; the histogram methods hold every activation of
    every crop in memory, gigabytes at 256×192). Returns ``out``. The metadata gains ``int8``: ``{"format": "qdq",
    "activations", "weights", "per_channel", "reduce_range", "calibrate_method", "keep_fp32", "fp32_nodes",
    "calibration": {..., "crops": N}, "onnxruntime"}``.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, out = Path(src), Path(out)
    proto = onnx.load(str(src))
    info = read_posedistill_metadata(proto, src)
    if info.get("dkd"):
        raise ValueError(f"{src}: a DKD graph (two-graph video model) cannot be quantized to int8; export the "
                         "per-frame models without --int8")  # fmt: skip
    if info.get(INT8_KEY):
        raise ValueError(f"{src}: already quantized to int8")
    if info.get("kind") not in ("simcc", "heatmap"):
        raise ValueError(f"{src}: metadata kind {info.get('kind')!r}; int8 export supports simcc and heatmap models")
    x = np.ascontiguousarray(crops, np.float32)
    w, h = (int(v) for v in info["input_size"])
    if x.ndim != 4 or x.shape[1:] != (3, h, w) or len(x) == 0:
        raise ValueError(f"calibration crops must be N×3×{h}×{w} with N >= 1, got {x.shape}")
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    if activation_type not in types or weight_type not in types:
        raise ValueError(f"activation_type and weight_type must be in {list(types)}")
    _restore_fp32_weights(proto)
    if not isinstance(keep_fp32, str):
        fp32_nodes(proto, keep_fp32)  # names check against the graph as exported
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    batch = _CALIB_BATCH if not batch_dim.dim_value else int(batch_dim.dim_value)
    if batch_dim.dim_value and batch > 1:
        x = x[: len(x) // batch * batch] if len(x) >= batch else np.concatenate([x] * -(-batch // len(x)))[:batch]
    with tempfile.TemporaryDirectory(prefix="posedistill-int8-") as tmp, _quiet_root_logger():
        fp32_path, pre_path, int8_path = (Path(tmp) / f"{n}.onnx" for n in ("fp32", "pre", "int8"))
        onnx.save(proto, str(fp32_path))
        # onnxruntime's recommended preparation: shape inference and constant folding (node names are kept)
        quant_pre_process(str(fp32_path), str(pre_path))
        pre = onnx.load(str(pre_path))
        present = {n.name for n in pre.graph.node}  # pre-processing folds the Constant nodes away
        exclude = fp32_nodes(pre, keep_fp32 if isinstance(keep_fp32, str) else [k for k in keep_fp32 if k in present])
        quantize_static(
            str(pre_path), str(int8_path), CropReader(proto.graph.input[0].name, x, batch),
            quant_format=QuantFormat.QDQ, per_channel=per_channel, reduce_range=reduce_range,
            activation_type=types[activation_type], weight_type=types[weight_type], nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod.MinMax,
            # MinMax keeps only each batch's per-tensor min / max, so all crops fit in memory at once. (Not
            # CalibMaxIntermediateOutputs: onnxruntime 1.32 drops each full chunk without merging its ranges.)
        )  # fmt: skip
        qproto = onnx.load(str(int8_path))
    opset = max((o.version for o in qproto.opset_import if o.domain in ("", "ai.onnx")), default=info.get("opset"))
    meta = {
        **info,
        "opset": int(opset),
        INT8_KEY: {
            "format": "qdq",
            "activations": activation_type,
            "weights": weight_type,
            "per_channel": bool(per_channel),
            "reduce_range": bool(reduce_range),
            "calibrate_method": "minmax",
            "keep_fp32": keep_fp32 if isinstance(keep_fp32, str) else "custom",
            "fp32_nodes": exclude,
            "calibration": {**(calibration or {}), "crops": len(x)},
            "onnxruntime": ort.__version__,
        },
    }
    meta.pop("fp16_weights", None)
    del qproto.metadata_props[:]
    entry = qproto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    qproto.producer_name = "posedistill"
    onnx.checker.check_model(qproto)
    atomic_write_bytes(out, qproto.SerializeToString())
    return out


def quantize_with_calibration(
    src: str | Path,
    out: str | Path,
    calib: CalibrationSet | str | Path,
    count: int = CALIB_COUNT,
    **kwargs: Any,
) -> Path:
    """:func:`calibration_crops` of ``calib`` for the model ``src``, then :func:`quantize_onnx` (``kwargs``), the
    metadata recording the calibration source. Returns ``out``."""
    from posedistill.infer.onnx_model import OnnxPoseModel

    if not isinstance(calib, CalibrationSet):
        calib = calibration_boxes(calib, count)
    crops = calibration_crops(calib, OnnxPoseModel(src, threads=1).info, count)
    return quantize_onnx(src, out, crops, calibration=calib.describe(), **kwargs)


def argmax_agreement(ref: Sequence[np.ndarray], got: Sequence[np.ndarray], kind: str, tol: int = 1) -> dict[str, float]:
    """How often two models' outputs (``OnnxPoseModel.run`` tuples on the same crops) pick the same place.

    SimCC (``ref`` = (x N×K×Wx, y N×K×Wy)): a keypoint agrees when the argmax bins of x and of y both differ by at
    most ``tol``. Heatmaps (``ref`` = (N×K×H'×W',)): when the argmax cells differ by at most ``tol`` in each axis.
    Returns ``{"agree": share of the N·K keypoints, "mean_offset": mean of the larger per-axis offset in bins}``.
    """
    if kind == "simcc":
        d = np.maximum(np.abs(ref[0].argmax(-1) - got[0].argmax(-1)), np.abs(ref[1].argmax(-1) - got[1].argmax(-1)))
    elif kind == "heatmap":
        n, k, _, w = ref[0].shape
        a, b = ref[0].reshape(n, k, -1).argmax(-1), got[0].reshape(n, k, -1).argmax(-1)
        d = np.maximum(np.abs(a // w - b // w), np.abs(a % w - b % w))
    else:
        raise ValueError(f"kind must be simcc or heatmap, got {kind!r}")
    return {"agree": float((d <= tol).mean()), "mean_offset": float(d.mean())}


def is_int8(info: PoseModelInfo) -> bool:
    """The model is a posedistill int8 export."""
    return bool(info.metadata.get(INT8_KEY))
