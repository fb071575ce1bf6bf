"""A black-box teacher for logit distillation: a pose model run by the torch-free runtime (ncnn or ONNX, heatmap or
SimCC outputs, e.g. PP-TinyPose 256×192) that gives SimCC logits for the student's training crops.

DWPose stage 1 compares the student's SimCC distributions with the teacher's, bin by bin (``KDLoss``). A runtime
teacher has no backbone features (so no FeaLoss) and may have another input size, normalisation, channel order or
output kind than the student. Per batch of student crops (B×3×h×w, normalised as the dataset does):

1. the crops go back to 0-255 RGB pixels, to the teacher's channel order and normalisation, and, when the teacher
   takes another input size of the same aspect ratio, are rescaled with OpenCV (crop coordinates scale by
   teacher / student size, mmpose's crop convention);
2. the teacher runs (with its flip test when asked: mirrored crops, outputs flipped back, averaged);
3. heatmaps become SimCC probabilities over the student's bins
   (:func:`posedistill.codecs.heatmap_to_simcc.heatmaps_to_simcc`, stride in student pixels), then logits
   ``log(p)/β`` so that KDLoss's ``softmax(β·logits)`` is exactly p; SimCC teachers with the student's bins give
   their logits as they are.

The teacher must predict the student's layout. Outputs are cached like a torch teacher's
(:mod:`posedistill.distill.teacher_cache`, fingerprint :meth:`RuntimeTeacher.fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from posedistill.codecs import build_codec, flip_heatmaps, flip_simcc, heatmaps_to_simcc, simcc_logits
from posedistill.infer.preprocess import MEAN_RGB, STD_RGB


class RuntimeTeacher:
    """A runtime pose model as a frozen SimCC-logit teacher for a student of ``layout`` at ``input_size``.

    Args:
        model: a model file / URL / shipped name (``pp-tinypose``) or a ready ``PoseModel``
            (:func:`posedistill.infer.estimator.load_pose_model`).
        layout: the student's keypoint layout; the teacher must predict it.
        input_size: the student's crop (w, h).
        split_ratio: the student's SimCC bins per pixel.
        beta: the KD temperature multiplier (``KDLoss.beta``): logits are ``log(p)/beta``.
        flip_test: average the teacher over each crop and its mirror image.
        threads: runtime threads.
        student_mean, student_std: the student crops' RGB normalisation (the dataset's).
    """

    def __init__(
        self,
        model: Any,
        layout: str,
        input_size: tuple[int, int],
        split_ratio: float = 2.0,
        beta: float = 10.0,
        flip_test: bool = False,
        threads: int | None = None,
        student_mean: tuple[float, float, float] = MEAN_RGB,
        student_std: tuple[float, float, float] = STD_RGB,
    ) -> None:
        from posedistill.infer.estimator import load_pose_model
        from posedistill.layouts import get_layout

        self.model = load_pose_model(model, threads=threads, progress=False)
        info = self.model.info
        self.info = info
        self.name = f"{Path(info.path).name} ({info.kind}, {info.layout}, {info.input_size[0]}x{info.input_size[1]})"
        if get_layout(info.layout).name != get_layout(layout).name:
            raise ValueError(
                f"{info.path}: the teacher predicts layout {info.layout!r}, the student {layout!r}; logit "
                "distillation compares the same keypoints (pseudo-label other layouts with `posedistill label`)"
            )
        self.input_size = (int(input_size[0]), int(input_size[1]))
        tw, th = info.input_size
        sw, sh = self.input_size
        if abs(tw / th - sw / sh) > 0.01 * sw / sh:
            raise ValueError(
                f"{info.path}: the teacher's input (w, h) = {(tw, th)} and the student's {(sw, sh)} have different "
                "aspect ratios: the same crop cannot feed both"
            )
        self.split_ratio = float(split_ratio)
        self.beta = float(beta)
        self.flip_test = bool(flip_test)
        self.codec = build_codec(info.codec)
        self.num_bins = (int(np.around(sw * self.split_ratio)), int(np.around(sh * self.split_ratio)))
        self.student_mean = np.asarray(student_mean, np.float32)
        self.student_std = np.asarray(student_std, np.float32)
        if info.kind == "simcc":
            got = (round(tw * info.codec.get("split_ratio", 2.0)), round(th * info.codec.get("split_ratio", 2.0)))
            if got != self.num_bins:
                raise ValueError(
                    f"{info.path}: a SimCC teacher must have the student's bins {self.num_bins}, it has {got}"
                )

    def __repr__(self) -> str:
        return f"RuntimeTeacher({self.name}, flip_test={self.flip_test}, bins={self.num_bins})"

    def fingerprint(self, extra: str = "") -> str:
        """Hex digest of the model's files (ncnn: .param and .bin), its contract and the conversion settings."""
        h = hashlib.blake2b(digest_size=16)
        path = Path(self.info.path)
        files = [path, path.with_suffix(".bin")] if path.suffix == ".param" else [path]
        for f in files:
            if f.is_file():
                h.update(hashlib.sha256(f.read_bytes()).digest())
        settings = {
            "kind": self.info.kind, "codec": self.info.codec, "mean": self.info.mean, "std": self.info.std,
            "to_rgb": self.info.to_rgb, "layout": self.info.layout, "input_size": self.input_size,
            "split_ratio": self.split_ratio, "beta": self.beta, "flip_test": self.flip_test,
            "student_mean": self.student_mean.tolist(), "student_std": self.student_std.tolist(),
        }  # fmt: skip
        h.update(json.dumps(settings, sort_keys=True, default=list).encode())
        h.update(extra.encode())
        return h.hexdigest()

    # ------------------------------------------------------------------------------------------ steps
    def teacher_inputs(self, crops: np.ndarray) -> np.ndarray:
        """(B, 3, h, w) student crops (normalised RGB) → (B, 3, h', w') float32 teacher inputs."""
        info = self.info
        same_norm = (
            info.to_rgb and np.allclose(info.mean, self.student_mean) and np.allclose(info.std, self.student_std)
        )
        if same_norm and info.input_size == self.input_size:
            return np.ascontiguousarray(crops, dtype=np.float32)
        pixels = crops * self.student_std[:, None, None] + self.student_mean[:, None, None]  # RGB, 0-255
        if info.input_size != self.input_size:
            (tw, th), (sw, sh) = info.input_size, self.input_size
            # teacher pixel u shows student crop coordinate u·sw/tw (both crops span the same padded box)
            m = np.array([[sw / tw, 0.0, 0.0], [0.0, sh / th, 0.0]], np.float64)
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            pixels = np.stack([
                cv2.warpAffine(np.ascontiguousarray(p.transpose(1, 2, 0)), m, (tw, th), flags=flags,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0).transpose(2, 0, 1)
                for p in pixels
            ])  # fmt: skip
        if not info.to_rgb:
            pixels = pixels[:, ::-1]
        mean = np.asarray(info.mean, np.float32)[:, None, None]
        std = np.asarray(info.std, np.float32)[:, None, None]
        return np.ascontiguousarray((pixels - mean) / std, dtype=np.float32)

    def raw_outputs(self, inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        """The teacher's outputs for (B, 3, h', w') inputs, flip-test averaged when asked."""
        n = len(inputs)
        if not self.flip_test:
            return self.model.run(inputs)
        outs = self.model.run(np.concatenate([inputs, np.ascontiguousarray(inputs[..., ::-1])]))
        flip = self.info.flip_indices
        if self.info.kind == "simcc":
            fx, fy = flip_simcc(outs[0][n:], outs[1][n:], flip)
            return (outs[0][:n] + fx) * 0.5, (outs[1][:n] + fy) * 0.5
        return ((outs[0][:n] + flip_heatmaps(outs[0][n:], flip, shift=not self.info.udp)) * 0.5,)

    def simcc(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, h, w) student crops → teacher SimCC logits (B, K, Wx), (B, K, Wy) float32 for ``KDLoss``."""
        outs = self.raw_outputs(self.teacher_inputs(crops))
        if self.info.kind == "simcc":
            return outs[0].astype(np.float32), outs[1].astype(np.float32)
        scale = np.array(self.input_size, np.float64) / np.array(self.info.input_size, np.float64)
        stride = np.asarray(self.codec.stride, np.float64) * scale  # input pixels per heatmap pixel, student crop
        px, py, _ = heatmaps_to_simcc(outs[0], self.input_size, self.split_ratio, stride=tuple(stride))
        return simcc_logits(px, self.beta), simcc_logits(py, self.beta)

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        """``{"simcc_x", "simcc_y"}`` tensors on ``images``' device for a batch of student crops."""
        x, y = self.simcc(images.detach().to("cpu", torch.float32).numpy())
        return {"simcc_x": torch.from_numpy(x).to(images.device), "simcc_y": torch.from_numpy(y).to(images.device)}
