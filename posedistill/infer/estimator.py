"""``PoseEstimator``: image (+ boxes or a detector) → :class:`~posedistill.infer.results.PoseResult`, torch-free
for ONNX models.

::

    from posedistill.infer import PoseEstimator
    est = PoseEstimator("rtmpose-m.onnx")                        # or a URL / mmdeploy zip / checkpoint folder
    res = est(image_bgr, boxes=np.array([[x1, y1, x2, y2], ...]))  # boxes=None: the person detector
    res.keypoints  # (N, K, 2) original-image pixels;  res.scores (N, K)

Per frame: boxes (given, from the detector, or the whole image) → mmpose's top-down pre-processing
(:mod:`posedistill.infer.preprocess`) → **one** model call for all crops (chunked only for fixed-batch ONNX
files) → optional flip test → codec decode (the training code's numpy decoders) → back to image pixels.

A checkpoint (posedistill folder or official mmpose ``.pth``) runs under PyTorch when torch is installed (the
``train`` extra); without torch the estimator says how to export it to ONNX instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from posedistill.codecs import build_codec, flip_heatmaps, flip_simcc

# dkd_files and image_input are shared with dkd_estimator.py, which builds on this module (no import cycle);
# as_bgr stays importable from here.
from posedistill.infer.dkd_files import dkd_onnx_role, is_dkd_checkpoint
from posedistill.infer.image_input import as_bgr as as_bgr
from posedistill.infer.onnx_model import (
    LAYOUT_BY_K,
    OnnxPoseModel,
    PoseModelInfo,
    resolve_layout,
)
from posedistill.infer.preprocess import (
    BBOX_PADDING,
    MEAN_RGB,
    STD_RGB,
    keypoints_to_image,
    normalise_lut,
    preprocess,
)
from posedistill.infer.results import PoseResult

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")


class PoseModel(Protocol):
    """Anything that runs a pose network on normalised crops: ``info`` describes it, ``run`` maps
    (N, 3, h, w) float32 → ``(simcc_x, simcc_y)`` or ``(heatmaps,)`` as numpy arrays."""

    info: PoseModelInfo

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, ...]: ...


def is_checkpoint(path: str | Path) -> bool:
    """A posedistill checkpoint folder (or a file in one) or an official mmpose / DWPose weights file."""
    if isinstance(path, str) and "://" in path:
        return False
    p = Path(path)
    return (
        (p.is_dir() and (p / "meta.json").is_file())
        or (p.is_file() and p.suffix in CHECKPOINT_SUFFIXES)
        or (p.is_file() and p.name == "meta.json")
    )


def _require_torch(path: str | Path) -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"{path} is a PyTorch checkpoint and torch is not installed. Either export it to ONNX "
            f"(`posedistill export {path} --format onnx --out model.onnx`, on a machine with posedistill[train]) and "
            "pass the .onnx file, or install the training extra: pip install 'posedistill[train]'"
        ) from None
    return torch


class TorchPoseModel:
    """A PyTorch pose network behind the :class:`PoseModel` interface (used for checkpoints and benchmarks)."""

    def __init__(self, module: Any, info: PoseModelInfo, device: str = "cpu") -> None:
        torch = _require_torch(info.path)
        self._torch = torch
        self.module = module.to(device).eval()
        self.device = device
        self.info = info

    @classmethod
    def from_module(
        cls, module: Any, meta: dict[str, Any] | None = None, layout: str | None = None, device: str = "cpu",
        path: str = "<module>",
    ) -> TorchPoseModel:  # fmt: skip
        """Describe ``module`` (a ``build_model`` network) from checkpoint-style ``meta`` (layout, input_size,
        codec, mean, std) and its ``build_args``; missing pieces are inferred with one forward pass."""
        torch = _require_torch(path)
        meta = dict(meta or {})
        args = dict(getattr(module, "build_args", None) or meta.get("model", {}).get("build_args", {}))
        w, h = (int(v) for v in (meta.get("input_size") or args.get("input_size") or (192, 256)))
        module = module.to(device).eval()
        with torch.no_grad():
            out = module(torch.zeros(1, 3, h, w, device=device))
        if isinstance(out, tuple | list) and len(out) == 2 and all(t.dim() == 3 for t in out):
            kind, k = "simcc", int(out[0].shape[1])
            names: tuple[str, ...] = ("simcc_x", "simcc_y")
            default_codec = {"type": "simcc", "input_size": [w, h], "sigma": [4.9, 5.66],
                             "split_ratio": float(out[0].shape[2]) / w}  # fmt: skip
        elif isinstance(out, torch.Tensor) and out.dim() == 4:
            kind, k = "heatmap", int(out.shape[1])
            names = ("heatmaps",)
            default_codec = {"type": "heatmap", "input_size": [w, h],
                             "heatmap_size": [int(out.shape[3]), int(out.shape[2])], "sigma": 2.0}  # fmt: skip
        else:
            raise ValueError(f"{path}: the model's forward must return (simcc_x, simcc_y) or B×K×H×W heatmaps")
        codec = dict(meta.get("codec") or default_codec)
        layout_name, flip = resolve_layout(path, k, layout or meta.get("layout") or LAYOUT_BY_K.get(k))
        info = PoseModelInfo(
            path=str(path),
            kind=kind,
            input_name="input",
            output_names=names,
            input_size=(w, h),
            num_keypoints=k,
            layout=layout_name,
            codec=codec,
            mean=tuple(float(v) for v in meta.get("mean", MEAN_RGB)),  # type: ignore[arg-type]
            std=tuple(float(v) for v in meta.get("std", STD_RGB)),  # type: ignore[arg-type]
            to_rgb=True,
            padding=float(meta.get("padding", BBOX_PADDING)),
            batch_size=None,
            flip_indices=flip,
            metadata={
                **({"build_args": args} if args else {}),
                "untrained_keypoints": [int(i) for i in meta.get("untrained_keypoints", [])],
            },
        )
        return cls(module, info, device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, layout: str | None = None, device: str = "cpu") -> TorchPoseModel:
        _require_torch(path)
        from posedistill.engine.checkpoint import load_model_from_checkpoint

        module, meta = load_model_from_checkpoint(path, device=device, layout=layout)
        return cls.from_module(module, meta, layout=layout, device=device, path=str(path))

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        torch = self._torch
        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(self.device))
        outs = out if isinstance(out, tuple | list) else (out,)
        return tuple(t.float().cpu().numpy() for t in outs)


def load_pose_model(
    model: str | Path | PoseModel,
    layout: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> PoseModel:
    """An ONNX file / URL / SDK zip → :class:`OnnxPoseModel`; an ncnn ``.param`` / ``.bin`` (with a sidecar) →
    :class:`~posedistill.infer.ncnn_model.NcnnPoseModel`; a shipped model's name (``pp-tinypose``,
    :data:`posedistill.infer.named_models.NAMED_MODELS`) → its file; a checkpoint → :class:`TorchPoseModel`; a ready
    :class:`PoseModel` is returned as it is."""
    if hasattr(model, "run") and hasattr(model, "info"):
        return model  # type: ignore[return-value]
    if is_checkpoint(model):  # type: ignore[arg-type]
        if is_dkd_checkpoint(model):  # type: ignore[arg-type]
            raise ValueError(
                f"{model} is a DKD video checkpoint: it runs frame after frame with per-person state, which the "
                "per-frame PoseEstimator does not keep. Use posedistill.infer.dkd_estimator.DKDPoseEstimator."
                "from_checkpoint (`posedistill infer --model` picks it for DKD checkpoints)"
            )
        return TorchPoseModel.from_checkpoint(model, layout=layout, device=device)  # type: ignore[arg-type]
    from posedistill.infer.hub import resolve_model

    path = resolve_model(model, sha256=sha256, cache_dir=cache_dir, progress=progress)  # type: ignore[arg-type]
    if dkd_onnx_role(path) == "step":
        raise ValueError(
            f"{path} is the tracked-frame graph of an exported DKD model; run the pair with posedistill.infer."
            "dkd_estimator.DKDPoseEstimator.from_onnx (`posedistill infer --model` picks it)"
        )
    from posedistill.infer.ncnn_model import NcnnPoseModel, is_ncnn_model

    if is_ncnn_model(path):  # .param / .bin pair, contract from its sidecar
        return NcnnPoseModel(path, layout=layout, threads=threads)
    if providers is None and device.startswith("cuda"):
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return OnnxPoseModel(path, layout=layout, threads=threads, providers=providers, workers=workers)


Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class PoseEstimator:
    """Top-down pose estimation on whole images.

    Args:
        model: pose model: ONNX path, URL or mmdeploy SDK zip (official RTMPose / DWPose files work as they are),
            a posedistill checkpoint folder or mmpose ``.pth`` (needs torch), or a :class:`PoseModel`. None: the
            shipped whole-body RTMPose-t (:mod:`posedistill.infer.defaults`).
        detector: person detector for calls without boxes: ``"default"`` (the shipped RTMDet-nano,
            :func:`posedistill.infer.defaults.default_detector`, loaded on first use), a YOLOX / RTMDet ONNX path /
            folder / URL / zip (:class:`~posedistill.infer.detector.PersonDetector`) or any callable ``image ->
            (boxes (N, 4) xyxy, scores (N,))``. None (or ``"none"``): the whole frame is one person.
        layout: keypoint layout name when the model does not say (ONNX files without metadata with an unusual K).
        flip_test: average the outputs of each crop and its mirror image (mmpose's test-time flip; doubles the
            work). Off by default, as in mmdeploy / rtmlib and the published latencies.
        device: ``"cpu"`` or ``"cuda"`` (onnxruntime-gpu / torch with CUDA).
        threads: onnxruntime intra-op threads (default: all cores of this process).
        providers: explicit onnxruntime execution providers.
        sha256, cache_dir, progress: download options for URLs (see :func:`posedistill.infer.hub.resolve_model`).
        det_score_thr, det_nms_thr: detector thresholds when ``detector`` is a path or ``"default"`` (mmpose's demo:
            score > 0.3, NMS IoU 0.3).
        workers: 1 (default): all crops of a frame in one onnxruntime call; > 1: shard them over that many
            single-threaded sessions (see :class:`OnnxPoseModel`).
    """

    def __init__(
        self,
        model: str | Path | PoseModel | None = None,
        detector: str | Path | Detector | None = "default",
        *,
        layout: str | None = None,
        flip_test: bool = False,
        device: str = "cpu",
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        sha256: str | None = None,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        det_score_thr: float = 0.3,
        det_nms_thr: float = 0.3,
        workers: int | None = None,
    ) -> None:
        if model is None:
            from posedistill.infer.defaults import default_model

            model = default_model()
        self.model = load_pose_model(model, layout, device, threads, providers, sha256, cache_dir, progress, workers)
        self.info = self.model.info
        self.flip_test = bool(flip_test)
        self.codec = build_codec(self.info.codec)
        self._lut = normalise_lut(self.info.mean, self.info.std)
        # keypoints the model's training never labelled (e.g. the small toes, which MediaPipe has no landmark for):
        # their outputs are untrained, so they are reported with score 0 rather than an arbitrary one
        self._untrained = np.asarray(self.info.metadata.get("untrained_keypoints", []), np.int64)
        self._det_args: dict[str, Any] = {
            "score_thr": det_score_thr, "nms_thr": det_nms_thr, "threads": threads, "providers": providers,
            "cache_dir": cache_dir, "progress": progress,
        }  # fmt: skip
        if isinstance(detector, str) and detector.lower() == "none":
            detector = None
        self._detector = detector
        if detector is not None and not callable(detector) and str(detector).lower() != "default":
            self._detector = self.detector  # an explicit file: load it now, so that a bad one fails here

    @property
    def detector(self) -> Detector | None:
        """The person detector (the shipped default is loaded on first use), or None: the whole frame."""
        if self._detector is not None and not callable(self._detector):
            from posedistill.infer.defaults import default_detector
            from posedistill.infer.detector import PersonDetector

            spec = self._detector
            path = default_detector() if str(spec).lower() == "default" else spec
            self._detector = PersonDetector(path, **self._det_args)
        return self._detector

    @detector.setter
    def detector(self, value: Detector | None) -> None:
        self._detector = value

    def __repr__(self) -> str:
        return f"PoseEstimator(model={self.model!r}, detector={self._detector!r}, flip_test={self.flip_test})"

    @property
    def layout(self) -> str:
        return self.info.layout

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input (w, h)."""
        return self.info.input_size

    @property
    def num_keypoints(self) -> int:
        return self.info.num_keypoints

    # ------------------------------------------------------------------------------------------ the stages
    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes (N, 4) xyxy and scores (N,): the detector's, or the whole frame with score 1."""
        if self.detector is not None:
            boxes, scores = self.detector(image)
            return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1)
        h, w = image.shape[:2]
        return np.array([[0, 0, w, h]], np.float32), np.ones(1, np.float32)

    def infer_crops(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, h, w) normalised crops → keypoints (N, K, 2) in crop pixels and scores (N, K): one model call
        (with the mirrored crops in the same batch under flip test), then the codec's decode."""
        n = len(inputs)
        if self.flip_test:
            inputs = np.concatenate([inputs, inputs[..., ::-1]])
        outs = self.model.run(inputs)
        if self.info.kind == "simcc":
            x, y = outs[0], outs[1]
            if self.flip_test:
                fx, fy = flip_simcc(x[n:], y[n:], self.info.flip_indices)
                x, y = (x[:n] + fx) * 0.5, (y[:n] + fy) * 0.5
            return self.codec.decode(x, y)
        hm = outs[0]
        if self.flip_test:
            hm = (hm[:n] + flip_heatmaps(hm[n:], self.info.flip_indices, shift=not self.info.udp)) * 0.5
        return self.codec.decode(hm)

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (N, K, 2) in image pixels and scores (N, K) for the (N, 4) xyxy ``boxes`` of ``image``."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        k = self.info.num_keypoints
        if len(boxes) == 0:
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        batch = preprocess(
            image, boxes, self.info.input_size, self.info.mean, self.info.std, to_rgb=self.info.to_rgb,
            padding=self.info.padding, udp=self.info.udp, lut=self._lut,
        )  # fmt: skip
        kp_crop, scores = self.infer_crops(batch.inputs)
        keypoints = keypoints_to_image(kp_crop, batch.centers, batch.scales, self.info.input_size, self.info.udp)
        scores = scores.astype(np.float32)
        scores[:, self._untrained] = 0.0
        return keypoints, scores

    def __call__(
        self,
        image: np.ndarray | str | Path,
        boxes: np.ndarray | Sequence[Sequence[float]] | None = None,
        box_scores: np.ndarray | Sequence[float] | None = None,
        frame_id: int | None = None,
    ) -> PoseResult:
        """Poses of the people in ``image``.

        Args:
            image: (H, W, 3) uint8 **BGR** image (OpenCV order; grey and BGRA are converted), or an image file path.
            boxes: (N, 4) person boxes x1, y1, x2, y2 in pixels. None: the detector's boxes, or the whole frame
                when there is no detector. An empty array gives an empty result.
            box_scores: (N,) scores of the given boxes (default 1).
            frame_id: stored in the result (video frames).

        Returns:
            :class:`PoseResult` with keypoints (N, K, 2) in original-image pixels, scores (N, K), the boxes, their
            scores and track ids −1 (tracking is :mod:`posedistill.infer.tracking`'s job).
        """
        if isinstance(image, str | Path):
            from posedistill.data.image_io import read_image

            image = read_image(image)
        image = as_bgr(image)
        if boxes is None:
            boxes_arr, scores_arr = self.detect(image)
        else:
            boxes_arr = np.asarray(boxes, np.float32).reshape(-1, 4)
            scores_arr = (
                np.ones(len(boxes_arr), np.float32) if box_scores is None
                else np.asarray(box_scores, np.float32).reshape(-1)
            )  # fmt: skip
            if len(scores_arr) != len(boxes_arr):
                raise ValueError(f"{len(boxes_arr)} boxes but {len(scores_arr)} box scores")
        h, w = image.shape[:2]
        if len(boxes_arr) == 0:
            return PoseResult.empty(self.info.layout, (h, w), frame_id)
        keypoints, scores = self.predict(image, boxes_arr)
        return PoseResult(
            keypoints=keypoints,
            scores=scores,
            boxes=boxes_arr,
            box_scores=scores_arr,
            track_ids=np.full(len(boxes_arr), -1, np.int64),
            layout=self.info.layout,
            image_shape=(h, w),
            frame_id=frame_id,
        )
