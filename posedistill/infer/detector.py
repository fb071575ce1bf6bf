"""Person detector (ONNX): YOLOX (rtmlib / DWPose) and RTMDet (mmdeploy end2end export) graphs.

Both contracts letterbox the **BGR uint8** image into the model input: scale by ``r = min(H_in / h, W_in / w)``,
resize to ``(int(w·r), int(h·r))`` with bilinear interpolation, paste at the top-left of a canvas filled with 114
(so the padding is at the bottom / right) and feed 1×3×H_in×W_in float32. They differ in size and normalisation
(:class:`DetectorContract`):

- **yolox** (rtmlib's): 640×640 for graphs with a symbolic size (the fixed-size YOLOX-nano / -tiny files say
  416×416 themselves), raw 0–255 pixels, no normalisation;
- **rtmdet** (mmdeploy's RTMDet-nano export, dynamic input): 320×320, ``(pixel − [103.53, 116.28, 123.675]) /
  [57.375, 57.12, 58.395]`` per BGR channel.

The contract comes from the ``contract`` argument, else the model's sidecar (``kind: detector``, see
:mod:`posedistill.infer.sidecar`: ``model.json`` next to ``models/rtmdet-nano_person/model.onnx``), else an mmdeploy
SDK ``pipeline.json`` next to the file (its Normalize step), else the file name: a file (or its folder) named
``rtmdet*`` is RTMDet, anything else YOLOX.

Two output formats are recognised from the graph:

- **end2end** (mmdeploy exports, RTMDet and the YOLOX SDK zips): outputs ``dets`` 1×N×5 (x1, y1, x2, y2, score
  in input pixels) and ``labels`` 1×N (0 = person), NMS inside the graph;
- **raw** (Megvii / DWPose ``yolox_l.onnx``): one output 1×M×(5+C) of grid predictions (cx, cy, log w, log h
  offsets, objectness, C class scores) over strides 8, 16, 32, M = Σ (H_in/s)·(W_in/s). Decoded as
  ``xy = (p + grid)·s``, ``wh = exp(p)·s``, score = objectness × class score.

Then, as mmpose's ``demo/topdown_demo_with_mmdet.py``: keep the person boxes (label / class 0) scoring above
``score_thr`` (0.3), greedy NMS at IoU ``nms_thr`` (0.3, with the +1 pixel-area convention of mmpose's numpy
``nms``), map back to image pixels (divide by ``r``) and clip to the image. Highest score first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posedistill.infer.onnx_model import ModelContractError, make_session, read_sdk_pipeline

YOLOX_STRIDES = (8, 16, 32)
PAD_VALUE = 114
# mmpose demo/topdown_demo_with_mmdet.py: --bbox-thr 0.3, --nms-thr 0.3, --det-cat-id 0 (person)
SCORE_THR = 0.3
NMS_THR = 0.3
PERSON_LABEL = 0
MODEL_FILE = "model.onnx"  # the ONNX file of a detector folder (models/rtmdet-nano_person/)


@dataclass(frozen=True)
class DetectorContract:
    """How a detector graph wants its input.

    name: ``"yolox"`` or ``"rtmdet"`` (or where a custom contract comes from, e.g. its sidecar file).
    input_size: letterbox size (w, h) for graphs with a symbolic input size; a fixed-size graph sets its own.
    mean, std: per-channel normalisation in the channel order fed to the graph, or None for raw 0–255 pixels.
    to_rgb: feed RGB instead of BGR.
    pad_value: letterbox fill.
    """

    name: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    to_rgb: bool = False
    pad_value: int = PAD_VALUE


YOLOX = DetectorContract("yolox", (640, 640))
RTMDET = DetectorContract("rtmdet", (320, 320), (103.53, 116.28, 123.675), (57.375, 57.12, 58.395))
CONTRACTS: dict[str, DetectorContract] = {c.name: c for c in (YOLOX, RTMDET)}


def find_contract(path: str | Path, contract: str | DetectorContract | None = None) -> DetectorContract:
    """The contract of the detector file ``path``: ``contract`` when given (a name of :data:`CONTRACTS` or a
    :class:`DetectorContract`), else its sidecar, else the normalisation of an mmdeploy ``pipeline.json`` next to
    it, else RTMDet for files or folders named ``rtmdet*`` and YOLOX for the rest."""
    if isinstance(contract, DetectorContract):
        return contract
    if contract is not None:
        try:
            return CONTRACTS[str(contract).lower()]
        except KeyError:
            raise ValueError(f"unknown detector contract {contract!r}; known: {sorted(CONTRACTS)}") from None
    from posedistill.infer.sidecar import sidecar_for

    sc = sidecar_for(path, kind="detector")
    if sc is not None:
        return DetectorContract(Path(sc.path).name, sc.input_size, sc.mean, sc.std, sc.to_rgb, int(sc.pad_value))
    p = Path(path)
    base = RTMDET if any(part.lower().startswith("rtmdet") for part in (p.name, p.parent.name)) else YOLOX
    sdk = read_sdk_pipeline(p)
    if "mean" in sdk:
        mean, std = tuple(sdk["mean"]), tuple(sdk["std"])
        return DetectorContract(base.name, base.input_size, mean, std, bool(sdk.get("to_rgb", False)))  # type: ignore[arg-type]
    return base


def letterbox(image: np.ndarray, input_size: tuple[int, int], pad_value: int = PAD_VALUE) -> tuple[np.ndarray, float]:
    """(H, W, 3) uint8 image → (H_in, W_in, 3) uint8 letterboxed canvas and the scale ``r`` (input_size = (w, h)).

    The resized image sits at the top-left; the rest (bottom / right) is ``pad_value``."""
    w_in, h_in = int(input_size[0]), int(input_size[1])
    h, w = image.shape[:2]
    r = min(h_in / h, w_in / w)
    canvas = np.full((h_in, w_in, *image.shape[2:]), pad_value, dtype=np.uint8)
    nw, nh = max(1, int(w * r)), max(1, int(h * r))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas[:nh, :nw] = resized.reshape(nh, nw, *image.shape[2:])
    return canvas, r


def unletterbox_boxes(boxes: np.ndarray, ratio: float, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """(N, 4) xyxy boxes in letterboxed-input pixels → original-image pixels (divide by ``ratio``); with
    ``image_shape`` (h, w) they are clipped to [0, w] × [0, h]."""
    out = (np.asarray(boxes, dtype=np.float32).reshape(-1, 4) / np.float32(ratio)).astype(np.float32)
    if image_shape is not None:
        h, w = image_shape
        out[:, 0::2] = np.clip(out[:, 0::2], 0, w)
        out[:, 1::2] = np.clip(out[:, 1::2], 0, h)
    return out


def yolox_grid(input_size: tuple[int, int], strides: Sequence[int] = YOLOX_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Cell offsets (M, 2) as (x, y) and strides (M, 1) of the YOLOX grids, stride by stride, row-major."""
    w_in, h_in = int(input_size[0]), int(input_size[1])
    grids, st = [], []
    for s in strides:
        hs, ws = h_in // s, w_in // s
        xv, yv = np.meshgrid(np.arange(ws), np.arange(hs))
        grids.append(np.stack([xv, yv], axis=-1).reshape(-1, 2))
        st.append(np.full((hs * ws, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(st).astype(np.float32)


def decode_yolox(raw: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Raw YOLOX predictions (M, 5+C) → xyxy boxes (M, 4) in input pixels and class scores (M, C) =
    objectness × class probability."""
    grid, strides = yolox_grid(input_size)
    p = np.asarray(raw, dtype=np.float32)
    if p.shape[0] != grid.shape[0]:
        raise ValueError(f"YOLOX output has {p.shape[0]} predictions, the {input_size} grids have {grid.shape[0]}")
    xy = (p[:, :2] + grid) * strides
    wh = np.exp(p[:, 2:4]) * strides
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
    return boxes.astype(np.float32), (p[:, 4:5] * p[:, 5:]).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float) -> np.ndarray:
    """Greedy NMS; returns kept indices, highest score first. IoU uses the +1 pixel area convention of mmpose's,
    DWPose's and rtmlib's numpy NMS: area = (x2 − x1 + 1)(y2 − y1 + 1)."""
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_thr]
    return np.asarray(keep, dtype=np.int64)


def detector_file(model: str | Path) -> str | Path:
    """A detector folder (``models/rtmdet-nano_person/``) → its ``model.onnx``; anything else as it is."""
    if isinstance(model, str) and "://" in model:
        return model
    p = Path(model)
    return p / MODEL_FILE if p.is_dir() else model


class PersonDetector:
    """Person boxes from a YOLOX or RTMDet ONNX file (path, detector folder, URL or mmdeploy SDK zip).

    ``det(image_bgr) -> (boxes (N, 4) float32 xyxy image pixels, scores (N,) float32)``, highest score first.

    Args:
        model: ONNX path / folder holding ``model.onnx`` / URL / SDK zip (see
            :func:`posedistill.infer.hub.resolve_model`).
        contract: ``"yolox"``, ``"rtmdet"`` or a :class:`DetectorContract`; None: :func:`find_contract`.
        score_thr: keep person boxes scoring above this (0.3, mmpose's demo).
        nms_thr: IoU threshold of the NMS over the kept boxes (0.3, mmpose's demo).
        threads, providers: onnxruntime session settings (default: all cores, CPU).
        sha256, cache_dir, progress: download options.
        input_size: letterbox size (w, h) for graphs with a symbolic input size (default: the contract's); a
            fixed-size graph sets it itself.
    """

    def __init__(
        self,
        model: str | Path,
        contract: str | DetectorContract | None = None,
        score_thr: float = SCORE_THR,
        nms_thr: float = NMS_THR,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        sha256: str | None = None,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        from posedistill.infer.hub import resolve_model

        self.path = resolve_model(detector_file(model), sha256=sha256, cache_dir=cache_dir, progress=progress)
        self.contract = find_contract(self.path, contract)
        self.score_thr = float(score_thr)
        self.nms_thr = float(nms_thr)
        self.session = make_session(self.path, threads, providers)
        self._inspect(input_size)
        c = self.contract
        self._mean = None if c.mean is None else np.asarray(c.mean, np.float32)
        self._inv_std = None if c.std is None else (1.0 / np.asarray(c.std, np.float32)).astype(np.float32)

    def __repr__(self) -> str:
        return (
            f"PersonDetector({str(self.path)!r}, contract={self.contract.name}, format={self.format}, "
            f"input={self.input_size})"
        )

    def _inspect(self, input_size: tuple[int, int] | None) -> None:
        path = str(self.path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        got = f"inputs: {[(i.name, i.shape, i.type) for i in inputs]}; outputs: {[(o.name, o.shape) for o in outputs]}"
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != "tensor(float)":
            raise ModelContractError(path, f"a person detector needs one 1×3×H×W float32 input; got {got}")
        _, c, h, w = inputs[0].shape
        if isinstance(c, int) and c != 3:
            raise ModelContractError(path, f"a person detector needs a 1×3×H×W input; got {got}")
        fixed = isinstance(h, int) and isinstance(w, int)
        if fixed and input_size is not None and tuple(input_size) != (w, h):
            raise ModelContractError(path, f"input_size {tuple(input_size)} given but the graph takes {w}×{h}")
        self.input_name = inputs[0].name
        # a graph with a symbolic H×W (mmdeploy "dynamic" exports) runs at the given size, else the contract's
        self.input_size = (int(w), int(h)) if fixed else tuple(int(v) for v in (input_size or self.contract.input_size))
        names = [o.name for o in outputs]
        if "dets" in names and "labels" in names:
            self.format = "end2end"
            self.output_names = ["dets", "labels"]
        elif len(outputs) == 1 and len(outputs[0].shape) == 3:
            m, ch = outputs[0].shape[1], outputs[0].shape[2]
            expect_m = len(yolox_grid(self.input_size)[0])
            if (isinstance(ch, int) and ch < 6) or (isinstance(m, int) and m != expect_m):
                raise ModelContractError(
                    path, f"raw YOLOX output must be 1×{expect_m}×(5+C) for a {self.input_size} (w, h) input; got {got}"
                )
            self.format = "raw"
            self.output_names = names
        else:
            raise ModelContractError(
                path, f"expected detector outputs 'dets' 1×N×5 + 'labels' 1×N (mmdeploy end2end) or one raw YOLOX "
                f"grid output 1×M×(5+C); got {got}"
            )  # fmt: skip

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """(H, W, 3) BGR uint8 → (1, 3, H_in, W_in) float32 network input and the letterbox scale."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 BGR image, got shape {image.shape} dtype {image.dtype}")
        canvas, r = letterbox(image, self.input_size, self.contract.pad_value)
        x = canvas[..., ::-1] if self.contract.to_rgb else canvas
        x = x.astype(np.float32)
        if self._mean is not None:
            x -= self._mean
        if self._inv_std is not None:
            x *= self._inv_std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), r

    def postprocess(
        self, outputs: list[Any], ratio: float, image_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs → person boxes in image pixels (clipped to ``image_shape`` (h, w) when given) and their
        scores, highest first."""
        if self.format == "end2end":
            dets = np.asarray(outputs[0], dtype=np.float32).reshape(-1, 5)
            labels = np.asarray(outputs[1]).reshape(-1)
            keep = (labels == PERSON_LABEL) & (dets[:, 4] > self.score_thr)
            boxes, scores = dets[keep, :4], dets[keep, 4]
        else:
            raw = np.asarray(outputs[0], dtype=np.float32)[0]
            all_boxes, cls_scores = decode_yolox(raw, self.input_size)
            person = cls_scores[:, PERSON_LABEL]
            keep = person > self.score_thr
            boxes, scores = all_boxes[keep], person[keep]
        order = nms(boxes, scores, self.nms_thr)
        boxes, scores = boxes[order], scores[order]
        return unletterbox_boxes(boxes, ratio, image_shape), scores.astype(np.float32).reshape(-1)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, r = self.preprocess(image)
        outputs = self.session.run(self.output_names, {self.input_name: x})
        return self.postprocess(outputs, r, image.shape[:2])


# The former name, kept for existing code: the contract (YOLOX or RTMDet) is picked from the file.
YOLOXDetector = PersonDetector
