"""YOLOX person detector (ONNX), in the formats that DWPose and rtmlib run.

Pre-processing (both formats): letterbox the **BGR uint8** image into the model input (640×640 by default):
scale by ``r = min(H_in / h, W_in / w)``, resize to ``(int(w·r), int(h·r))`` with bilinear interpolation, paste
at the top-left of a canvas filled with 114, feed as 1×3×H_in×W_in float32 with **no normalisation**.

Two output formats are recognised from the graph:

- **end2end** (mmdeploy SDK zips such as ``yolox_m_8xb8-300e_humanart``): outputs ``dets`` 1×N×5
  (x1, y1, x2, y2, score in input pixels) and ``labels`` 1×N, NMS inside the graph;
- **raw** (Megvii / DWPose ``yolox_l.onnx``): one output 1×M×(5+C) of grid predictions (cx, cy, log w, log h
  offsets, objectness, C class scores) over strides 8, 16, 32, M = Σ (H_in/s)·(W_in/s). Decoded as
  ``xy = (p + grid)·s``, ``wh = exp(p)·s``, score = objectness × class score, then per-class NMS (IoU 0.45 with
  the +1 pixel-area convention of DWPose's numpy NMS).

Boxes are mapped back by dividing by ``r``; person boxes (class 0) scoring above ``score_thr`` (0.3, DWPose's
final threshold) are returned, highest score first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posedistill.infer.onnx_model import ModelContractError, make_session

YOLOX_STRIDES = (8, 16, 32)
PAD_VALUE = 114


def letterbox(image: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """(H, W, 3) uint8 image → (H_in, W_in, 3) uint8 letterboxed canvas and the scale ``r`` (input_size = (w, h)).

    The resized image sits at the top-left; the rest is 114."""
    w_in, h_in = int(input_size[0]), int(input_size[1])
    h, w = image.shape[:2]
    r = min(h_in / h, w_in / w)
    canvas = np.full((h_in, w_in, *image.shape[2:]), PAD_VALUE, dtype=np.uint8)
    nw, nh = int(w * r), int(h * r)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas[:nh, :nw] = resized.reshape(nh, nw, *image.shape[2:])
    return canvas, r


def unletterbox_boxes(boxes: np.ndarray, ratio: float) -> np.ndarray:
    """(N, 4) xyxy boxes in letterboxed-input pixels → original-image pixels (divide by ``ratio``)."""
    return (np.asarray(boxes, dtype=np.float32) / np.float32(ratio)).astype(np.float32)


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
    """Greedy NMS; returns kept indices, highest score first. IoU uses the +1 pixel area convention of DWPose's
    and rtmlib's numpy NMS: area = (x2 − x1 + 1)(y2 − y1 + 1)."""
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


class YOLOXDetector:
    """Person boxes from a YOLOX ONNX file (path, URL or mmdeploy SDK zip).

    ``det(image_bgr) -> (boxes (N, 4) float32 xyxy image pixels, scores (N,) float32)``, highest score first.

    Args:
        model: ONNX path / URL / SDK zip (see :func:`posedistill.infer.hub.resolve_model`).
        score_thr: keep person boxes scoring above this (0.3 as DWPose).
        nms_thr: IoU threshold of the NMS for raw-grid models (0.45 as DWPose / rtmlib).
        threads, providers: onnxruntime session settings (default: all cores, CPU).
        sha256, cache_dir, progress: download options.
        input_size: letterbox size (w, h) for graphs with a symbolic input size (default 640×640); a fixed-size
            graph sets it itself.
    """

    def __init__(
        self,
        model: str | Path,
        score_thr: float = 0.3,
        nms_thr: float = 0.45,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        sha256: str | None = None,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        from posedistill.infer.hub import resolve_model

        self.path = resolve_model(model, sha256=sha256, cache_dir=cache_dir, progress=progress)
        self.score_thr = float(score_thr)
        self.nms_thr = float(nms_thr)
        self.session = make_session(self.path, threads, providers)
        self._inspect(input_size)

    def __repr__(self) -> str:
        return f"YOLOXDetector({str(self.path)!r}, format={self.format}, input={self.input_size})"

    def _inspect(self, input_size: tuple[int, int] | None) -> None:
        path = str(self.path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        got = f"inputs: {[(i.name, i.shape, i.type) for i in inputs]}; outputs: {[(o.name, o.shape) for o in outputs]}"
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != "tensor(float)":
            raise ModelContractError(path, f"a YOLOX detector needs one 1×3×H×W float32 input; got {got}")
        _, c, h, w = inputs[0].shape
        if isinstance(c, int) and c != 3:
            raise ModelContractError(path, f"a YOLOX detector needs a 1×3×H×W input; got {got}")
        fixed = isinstance(h, int) and isinstance(w, int)
        if fixed and input_size is not None and tuple(input_size) != (w, h):
            raise ModelContractError(path, f"input_size {tuple(input_size)} given but the graph takes {w}×{h}")
        self.input_name = inputs[0].name
        # a graph with a symbolic H×W (mmdeploy "dynamic" exports) runs at the given size, 640×640 by default
        self.input_size = (int(w), int(h)) if fixed else tuple(int(v) for v in (input_size or (640, 640)))
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
                path, f"expected YOLOX outputs 'dets' 1×N×5 + 'labels' 1×N (mmdeploy end2end) or one raw grid output "
                f"1×M×(5+C); got {got}"
            )  # fmt: skip

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """(H, W, 3) BGR uint8 → (1, 3, H_in, W_in) float32 network input and the letterbox scale."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 BGR image, got shape {image.shape} dtype {image.dtype}")
        canvas, r = letterbox(image, self.input_size)
        return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32), r

    def postprocess(self, outputs: list[Any], ratio: float) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs → person boxes in image pixels and their scores (highest first)."""
        if self.format == "end2end":
            dets = np.asarray(outputs[0], dtype=np.float32).reshape(-1, 5)
            labels = np.asarray(outputs[1]).reshape(-1)
            keep = (labels == 0) & (dets[:, 4] > self.score_thr)
            boxes, scores = dets[keep, :4], dets[keep, 4]
            order = np.argsort(-scores, kind="stable")
            boxes, scores = boxes[order], scores[order]
        else:
            raw = np.asarray(outputs[0], dtype=np.float32)[0]
            all_boxes, cls_scores = decode_yolox(raw, self.input_size)
            person = cls_scores[:, 0]
            cand = person > self.score_thr
            boxes, scores = all_boxes[cand], person[cand]
            keep = nms(boxes, scores, self.nms_thr)
            boxes, scores = boxes[keep], scores[keep]
        return unletterbox_boxes(boxes, ratio).reshape(-1, 4), scores.astype(np.float32).reshape(-1)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, r = self.preprocess(image)
        outputs = self.session.run(self.output_names, {self.input_name: x})
        return self.postprocess(outputs, r)
