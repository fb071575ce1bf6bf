"""onnxruntime sessions and the I/O contract of pose-model ONNX files.

The contract is the one of the official RTMPose / DWPose ONNX files that rtmlib and mmdeploy consume:

- one input (named ``input`` by mmdeploy), N×3×H×W float32: the RGB crop, normalised **outside** the graph with
  mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375);
- SimCC models: outputs ``simcc_x`` N×K×(W·r) and ``simcc_y`` N×K×(H·r) (r = split ratio, 2 for RTMPose);
- heatmap models (posedistill export, or any top-down heatmap network): one output ``heatmaps`` N×K×H'×W' (or
  the only rank-4 output), decoded with argmax + DARK (mmpose's / PaddleDetection's test setting) unless the
  metadata says otherwise.

Files written by ``posedistill export`` also carry a JSON ``metadata_props`` entry ``posedistill`` (layout, input
size, codec, normalisation, build arguments). For files without it, the input size comes from the graph, K from
the output shape (17 → coco, 133 → coco_wholebody, 26 → halpe26, …) and the split ratio from W·r / W; an
mmdeploy SDK ``pipeline.json`` next to the file, when present, supplies the normalisation and box padding.

A file without metadata may come with a sidecar (:mod:`posedistill.infer.sidecar`: next to it, or shipped under
``models/sidecars/``), which then supplies names, input size, colour order, normalisation, layout and decoder.

A file that breaks the contract raises :class:`ModelContractError`, which names the file and what was expected.
Batch axis: symbolic (``--dynamic-batch`` exports) → one call for all crops; fixed (official files are batch 1)
→ one call per chunk, logged at debug level.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posedistill.errors import PoseDataError
from posedistill.infer.preprocess import BBOX_PADDING, MEAN_RGB, STD_RGB

log = logging.getLogger(__name__)

METADATA_KEY = "posedistill"
METADATA_FORMAT = "posedistill-onnx"
METADATA_VERSION = 1
SIMCC_OUTPUTS = ("simcc_x", "simcc_y")
HEATMAP_OUTPUT = "heatmaps"
# keypoint count -> layout, for ONNX files that do not say (official RTMPose / DWPose / RTMW releases)
LAYOUT_BY_K = {17: "coco", 133: "coco_wholebody", 26: "halpe26", 136: "halpe", 16: "mpii", 33: "mediapipe_pose"}


class ModelContractError(PoseDataError):
    """A model file that does not follow the pose-model (or detector) I/O contract; names the file."""


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def make_session(
    path: str | Path,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> Any:
    """An ``onnxruntime.InferenceSession`` with intra-op threads = cores (or ``threads``), one inter-op thread and
    every graph optimisation on. Unreadable or invalid files raise :class:`ModelContractError`."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or available_cores())
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if providers is None:
        providers = ["CPUExecutionProvider"]
    else:
        have = set(ort.get_available_providers())
        missing = [p for p in providers if p not in have]
        if missing:
            raise ValueError(f"onnxruntime providers {missing} are not available here; available: {sorted(have)}")
    if not Path(path).is_file():
        raise ModelContractError(path, "no such model file")
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=list(providers))
    except Exception as e:  # InvalidProtobuf, InvalidGraph, Fail: all mean "not a usable ONNX file"
        raise ModelContractError(path, f"onnxruntime cannot load it as an ONNX model: {e}") from None


def read_metadata(session: Any, path: str | Path) -> dict[str, Any] | None:
    """The ``posedistill`` metadata of a session's model, or None when the file has none."""
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        return None
    try:
        meta = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise ModelContractError(path, f"metadata_props[{METADATA_KEY!r}] is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != METADATA_FORMAT:
        raise ModelContractError(path, f"metadata_props[{METADATA_KEY!r}] is not {METADATA_FORMAT!r} metadata")
    if int(meta.get("version", 0)) > METADATA_VERSION:
        raise ModelContractError(path, f"metadata version {meta['version']} is newer than this posedistill")
    return meta


def read_sdk_pipeline(path: str | Path) -> dict[str, Any]:
    """Normalisation, padding and SimCC settings from an mmdeploy SDK ``pipeline.json`` next to ``path``
    (the folder of an official ONNX zip); {} when there is none or it does not say."""
    pj = Path(path).with_name("pipeline.json")
    if not pj.is_file():
        return {}
    try:
        doc = json.loads(pj.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        log.warning("%s: ignoring unreadable pipeline.json: %s", pj, e)
        return {}
    out: dict[str, Any] = {}
    for task in doc.get("pipeline", {}).get("tasks", []):
        for t in task.get("transforms", []) or []:
            kind = str(t.get("type", "")).lower()
            if kind == "normalize" and "mean" in t and "std" in t:
                out["mean"] = [float(v) for v in t["mean"]]
                out["std"] = [float(v) for v in t["std"]]
                out["to_rgb"] = bool(t.get("to_rgb", True))
            elif kind.endswith("getbboxcenterscale") and "padding" in t:
                out["padding"] = float(t["padding"])
        params = task.get("params") or {}
        if str(params.get("type", "")).lower() == "simcclabel":
            out["simcc_split_ratio"] = float(params.get("simcc_split_ratio", 2.0))
    return out


@dataclass(frozen=True)
class PoseModelInfo:
    """What the runtime needs to know about a pose model (from its metadata or inferred from the graph).

    Attributes:
        path: the model file (or checkpoint) path, for messages.
        kind: ``"simcc"`` (outputs x / y logits) or ``"heatmap"``.
        input_name: the graph's input name.
        output_names: (x, y) output names for SimCC, (heatmaps,) for heatmap models.
        input_size: model input (w, h) in pixels.
        num_keypoints: K.
        layout: keypoint layout name (``posedistill.layouts``).
        codec: ``posedistill.codecs.build_codec`` config that decodes the outputs.
        mean, std: normalisation on 0-255 pixels, in the model's channel order.
        to_rgb: the model expects RGB (BGR images are swapped before normalising).
        padding: box enlargement before cropping.
        batch_size: fixed batch size of the graph, or None for a symbolic (dynamic) batch axis.
        flip_indices: the layout's left/right permutation (flip test).
        metadata: the raw ``posedistill`` metadata ({} for official files).
    """

    path: str
    kind: str
    input_name: str
    output_names: tuple[str, ...]
    input_size: tuple[int, int]
    num_keypoints: int
    layout: str
    codec: dict[str, Any]
    mean: tuple[float, float, float] = MEAN_RGB
    std: tuple[float, float, float] = STD_RGB
    to_rgb: bool = True
    padding: float = BBOX_PADDING
    batch_size: int | None = None
    flip_indices: tuple[int, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def udp(self) -> bool:
        """UDP crops and inverse mapping (mmpose's UDP heatmap models)."""
        return bool(self.codec.get("udp", False))


def _dim(d: Any) -> int | None:
    """A static dimension as int, None for a symbolic or unknown one."""
    return int(d) if isinstance(d, int) and d > 0 else None


def resolve_layout(path: str | Path, num_keypoints: int, layout: str | None) -> tuple[str, tuple[int, ...]]:
    """The layout name (given, or guessed from K) and its flip indices; errors name the file."""
    from posedistill.layouts import get_layout

    name = layout or LAYOUT_BY_K.get(num_keypoints)
    if name is None:
        known = ", ".join(f"{k} → {v}" for k, v in sorted(LAYOUT_BY_K.items()))
        raise ModelContractError(
            path, f"the model predicts {num_keypoints} keypoints and names no layout; give it with --layout NAME "
            f"(layout=NAME in Python; known "
            f"defaults: {known})"
        )  # fmt: skip
    try:
        lay = get_layout(name)
    except KeyError as e:
        raise ModelContractError(path, str(e.args[0])) from None
    if lay.num_keypoints != num_keypoints:
        raise ModelContractError(
            path, f"layout {name!r} has {lay.num_keypoints} keypoints but the model predicts {num_keypoints}"
        )
    return lay.name, tuple(int(i) for i in lay.flip_indices)


def inspect_pose_session(session: Any, path: str | Path, layout: str | None = None) -> PoseModelInfo:
    """Check a session's inputs / outputs against the pose-model contract and describe the model."""
    path = str(path)
    meta = read_metadata(session, path) or {}
    if not meta:  # a file that does not describe itself: a sidecar, when there is one, does
        from posedistill.infer.sidecar import sidecar_for

        sc = sidecar_for(path, kind="pose")
        if sc is not None:
            return info_from_sidecar(session, path, sc, layout)
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    got_in = ", ".join(f"{i.name} {i.shape} {i.type}" for i in inputs)
    got_out = ", ".join(f"{o.name} {o.shape} {o.type}" for o in outputs)
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != "tensor(float)":
        raise ModelContractError(
            path, f"expected one input N×3×H×W float32 (the normalised RGB crop, named 'input' in official "
            f"RTMPose/DWPose files); got inputs: {got_in}"
        )  # fmt: skip
    inp = inputs[0]
    n, c, h, w = (_dim(d) for d in inp.shape)
    if c not in (3, None):
        raise ModelContractError(path, f"input {inp.name!r} must have 3 channels (N×3×H×W), got shape {inp.shape}")
    if meta.get("input_size"):
        w_m, h_m = (int(v) for v in meta["input_size"])
        if (w, h) != (None, None) and (w, h) != (w_m, h_m):
            raise ModelContractError(path, f"metadata input_size (w, h) = {(w_m, h_m)} but the graph takes {inp.shape}")
        w, h = w_m, h_m
    if h is None or w is None:
        raise ModelContractError(
            path, f"input {inp.name!r} has a symbolic height/width {inp.shape} and no posedistill metadata says the "
            "input size; export with a fixed H×W"
        )  # fmt: skip

    by_name = {o.name: o for o in outputs}
    kind = meta.get("kind")
    if kind is None:  # official file: decide by names, then by ranks
        two_rank3 = len(outputs) == 2 and all(len(o.shape) == 3 for o in outputs)
        if all(n_ in by_name for n_ in SIMCC_OUTPUTS) or two_rank3:
            kind = "simcc"
        elif HEATMAP_OUTPUT in by_name or (len(outputs) == 1 and len(outputs[0].shape) == 4):
            kind = "heatmap"
        else:
            raise ModelContractError(
                path, f"expected outputs 'simcc_x' N×K×(W·r) and 'simcc_y' N×K×(H·r) (RTMPose/DWPose) or "
                f"'heatmaps' N×K×H'×W'; got outputs: {got_out}"
            )  # fmt: skip

    sdk = read_sdk_pipeline(path) if not meta else {}
    if kind == "simcc":
        if all(n_ in by_name for n_ in SIMCC_OUTPUTS):
            ox, oy = by_name["simcc_x"], by_name["simcc_y"]
        elif len(outputs) == 2:
            ox, oy = outputs
        else:
            raise ModelContractError(path, f"a SimCC model needs outputs 'simcc_x' and 'simcc_y'; got: {got_out}")
        for o in (ox, oy):
            if len(o.shape) != 3 or o.type != "tensor(float)":
                raise ModelContractError(
                    path, f"SimCC output {o.name!r} must be N×K×bins float32, got {o.shape} {o.type}"
                )
        kx, wx = _dim(ox.shape[1]), _dim(ox.shape[2])
        ky, wy = _dim(oy.shape[1]), _dim(oy.shape[2])
        if ox.name not in SIMCC_OUTPUTS and wx is not None and wy is not None and wx / w != wy / h and wy / w == wx / h:
            ox, oy, kx, ky, wx, wy = oy, ox, ky, kx, wy, wx  # unnamed outputs in y, x order
        k = meta.get("num_keypoints") or kx or ky
        if k is None:
            raise ModelContractError(path, f"cannot tell K: outputs have symbolic keypoint axes ({got_out})")
        if kx not in (None, k) or ky not in (None, k):
            raise ModelContractError(path, f"simcc_x and simcc_y disagree on K: {ox.shape} vs {oy.shape}")
        codec = dict(meta.get("codec") or {})
        if not codec:
            ratio = wx / w if wx is not None else float(sdk.get("simcc_split_ratio", 2.0))
            if wy is not None and abs(wy / h - ratio) > 1e-6:
                raise ModelContractError(
                    path, f"SimCC bins do not fit the input {w}×{h} with one split ratio: x has {wx} bins, y {wy}"
                )
            # σ only shapes training labels and DARK refinement, neither of which runs here
            codec = {"type": "simcc", "input_size": [w, h], "sigma": [4.9, 5.66], "split_ratio": ratio}
        if codec.get("type") != "simcc":
            raise ModelContractError(path, f"SimCC outputs but the metadata codec is {codec.get('type')!r}")
        output_names: tuple[str, ...] = (ox.name, oy.name)
    elif kind == "heatmap":
        o = by_name.get(HEATMAP_OUTPUT) or outputs[0]
        if len(o.shape) != 4 or o.type != "tensor(float)":
            raise ModelContractError(
                path, f"heatmap output {o.name!r} must be N×K×H'×W' float32, got {o.shape} {o.type}"
            )
        k = meta.get("num_keypoints") or _dim(o.shape[1])
        if k is None:
            raise ModelContractError(path, f"cannot tell K: heatmap output {o.name!r} has shape {o.shape}")
        codec = dict(meta.get("codec") or {})
        if not codec:
            hh, hw = _dim(o.shape[2]), _dim(o.shape[3])
            if hh is None or hw is None:
                raise ModelContractError(path, f"heatmap output {o.name!r} has a symbolic size {o.shape}")
            # decoded as mmpose / PaddleDetection test heatmap models: argmax + DARK (σ 2 → blur kernel 11)
            codec = {"type": "heatmap", "input_size": [w, h], "heatmap_size": [hw, hh], "sigma": 2.0, "unbiased": True}
        if codec.get("type") != "heatmap":
            raise ModelContractError(path, f"heatmap output but the metadata codec is {codec.get('type')!r}")
        output_names = (o.name,)
    else:
        raise ModelContractError(path, f"metadata kind must be 'simcc' or 'heatmap', got {kind!r}")

    layout_name, flip = resolve_layout(path, int(k), layout or meta.get("layout"))
    mean = tuple(float(v) for v in meta.get("mean", sdk.get("mean", MEAN_RGB)))
    std = tuple(float(v) for v in meta.get("std", sdk.get("std", STD_RGB)))
    if len(mean) != 3 or len(std) != 3:
        raise ModelContractError(path, f"mean and std need 3 values each, got {mean}, {std}")
    return PoseModelInfo(
        path=path,
        kind=kind,
        input_name=inp.name,
        output_names=output_names,
        input_size=(int(w), int(h)),
        num_keypoints=int(k),
        layout=layout_name,
        codec=codec,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        to_rgb=bool(meta.get("to_rgb", sdk.get("to_rgb", True))),
        padding=float(meta.get("padding", sdk.get("padding", BBOX_PADDING))),
        batch_size=n,
        flip_indices=flip,
        metadata=meta,
    )


def info_from_sidecar(session: Any, path: str | Path, sc: Any, layout: str | None = None) -> PoseModelInfo:
    """Describe an ONNX pose model from its sidecar (:class:`posedistill.infer.sidecar.ModelSidecar`): the names
    must exist in the graph, a static input size must equal the sidecar's, and one dry run at that size must give
    the outputs the sidecar describes."""
    from posedistill.infer.sidecar import SidecarError, check_names

    if sc.format != "onnx":
        raise SidecarError(sc.path, f"format is {sc.format!r}, but {path} is an ONNX model", field="format")
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    check_names(sc, list(inputs), outputs, path)
    inp = inputs[sc.input_names[0]]
    n, _, h, w = (_dim(d) for d in inp.shape) if len(inp.shape) == 4 else (None, None, None, None)
    if (w, h) != (None, None) and (w, h) != tuple(sc.input_size):
        raise SidecarError(
            sc.path, f"input size (w, h) = {tuple(sc.input_size)}, but {path} takes {inp.shape} (N×C×H×W)",
            field="input_size",
        )  # fmt: skip
    sw, sh = sc.input_size
    dry = np.zeros((n or 1, 3, sh, sw), np.float32)
    try:
        outs = session.run(list(sc.output_names), {inp.name: dry})
    except Exception as e:  # onnxruntime's errors for a wrong shape are plain exceptions
        raise SidecarError(sc.path, f"a dry run of {path} at the sidecar's input size failed: {e}",
                           field="input_size") from None  # fmt: skip
    return sidecar_pose_info(sc, path, [o.shape[1:] for o in outs], layout, batch_size=n)


def sidecar_pose_info(
    sc: Any, path: str | Path, shapes: list[tuple[int, ...]], layout: str | None = None,
    batch_size: int | None = None, metadata: dict[str, Any] | None = None,
) -> PoseModelInfo:  # fmt: skip
    """The :class:`PoseModelInfo` of a pose model described by sidecar ``sc``, given its output ``shapes``
    (without the batch dimension) from a dry run; shared by the ONNX and ncnn runners."""
    from posedistill.infer.sidecar import check_pose_outputs

    k = check_pose_outputs(sc, shapes, path)
    layout_name, flip = resolve_layout(path, k, layout or sc.layout)
    w, h = sc.input_size
    return PoseModelInfo(
        path=str(path),
        kind=str(sc.output_kind),
        input_name=sc.input_names[0],
        output_names=tuple(sc.output_names),
        input_size=(int(w), int(h)),
        num_keypoints=k,
        layout=layout_name,
        codec=sc.codec_config(shapes),
        mean=sc.mean or (0.0, 0.0, 0.0),
        std=sc.std or (1.0, 1.0, 1.0),
        to_rgb=sc.to_rgb,
        padding=sc.bbox_padding,
        batch_size=batch_size,
        flip_indices=flip,
        metadata=metadata or {},
    )


class OnnxPoseModel:
    """A pose-model ONNX file under onnxruntime.

    ``run(inputs (N, 3, h, w) float32) -> tuple of outputs`` (``(simcc_x, simcc_y)`` or ``(heatmaps,)``) for all N
    crops of a frame in one call.

    By default all N crops go to onnxruntime in **one** ``session.run`` (chunks of the fixed batch size for
    fixed-batch files such as the official batch-1 exports), with intra-op threads = cores.

    ``workers > 1`` shards the crops over the cores instead: ``workers`` single-threaded sessions each take a
    contiguous share and run it in micro-batches of ``micro_batch``, concurrently (onnxruntime releases the GIL).
    Every crop is computed on its own, so the outputs do not depend on the grouping (up to float summation
    order). On a quiet machine one batched call is faster (``benchmarks/bench_runtime.py``); sharding only paid
    off when the cores were heavily shared with other processes, where a multi-threaded call waits at every
    operator for its slowest thread. Worker sessions are created on first use; each holds a copy of the weights.
    """

    def __init__(
        self,
        path: str | Path,
        layout: str | None = None,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        workers: int | None = None,
        micro_batch: int = 2,
    ) -> None:
        self.path = Path(path)
        self.providers = None if providers is None else list(providers)
        self.threads = int(threads or available_cores())
        self.session = make_session(self.path, self.threads, self.providers)
        self.info = inspect_pose_session(self.session, self.path, layout)
        self.workers = 1 if workers is None else max(1, int(workers))
        self.micro_batch = max(1, int(micro_batch))
        self._worker_sessions: list[Any] = []
        self._pool: ThreadPoolExecutor | None = None
        self._logged_loop = False

    def __repr__(self) -> str:
        i = self.info
        return (
            f"OnnxPoseModel({str(self.path)!r}, kind={i.kind}, layout={i.layout}, K={i.num_keypoints}, "
            f"input={i.input_size[0]}x{i.input_size[1]}, batch={'dynamic' if i.batch_size is None else i.batch_size}, "
            f"threads={self.threads}, workers={self.workers})"
        )

    def _call(self, session: Any, x: np.ndarray) -> list[np.ndarray]:
        return session.run(list(self.info.output_names), {self.info.input_name: x})

    def _run_serial(self, session: Any, x: np.ndarray, chunk: int | None) -> list[list[np.ndarray]]:
        """Outputs of ``x`` on one session in chunks of ``chunk`` crops (None: one call), padding the last chunk up
        to a fixed batch size."""
        b = self.info.batch_size
        step = b or chunk or len(x)
        parts: list[list[np.ndarray]] = []
        for s in range(0, len(x), step):
            part = x[s : s + step]
            n = len(part)
            if b is not None and n < b:
                part = np.concatenate([part, np.zeros((b - n, *x.shape[1:]), np.float32)])
            parts.append([o[:n] for o in self._call(session, part)])
        return parts

    def _run_sharded(self, x: np.ndarray) -> list[list[np.ndarray]]:
        if not self._worker_sessions:
            self._worker_sessions = [make_session(self.path, 1, self.providers) for _ in range(self.workers)]
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="posedistill-ort")
        assert self._pool is not None
        bounds = np.linspace(0, len(x), min(self.workers, len(x)) + 1).round().astype(int)
        jobs = [
            self._pool.submit(self._run_serial, sess, x[a:b], self.micro_batch)
            for sess, a, b in zip(self._worker_sessions, bounds[:-1], bounds[1:])
        ]
        return [part for job in jobs for part in job.result()]

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        w, h = self.info.input_size
        if x.ndim != 4 or x.shape[1:] != (3, h, w):
            raise ValueError(f"{self.path}: inputs must be N×3×{h}×{w}, got {x.shape}")
        if len(x) == 0:
            return self._empty_outputs()
        b = self.info.batch_size
        if b is not None and len(x) != b and not self._logged_loop:
            log.debug("%s has a fixed batch of %d: running %d crops in %d calls", self.path, b, len(x), -(-len(x) // b))
            self._logged_loop = True
        if self.workers > 1 and len(x) > 1:
            parts = self._run_sharded(x)
        else:
            parts = self._run_serial(self.session, x, None)
        if len(parts) == 1:
            return tuple(parts[0])
        return tuple(np.concatenate(p) for p in zip(*parts))

    def close(self) -> None:
        """Stop the worker threads (the sessions are freed with the object)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._worker_sessions = []

    def _empty_outputs(self) -> tuple[np.ndarray, ...]:
        """Zero-crop outputs with the static trailing shape of each output (no call into the graph)."""
        shapes = {o.name: o.shape for o in self.session.get_outputs()}
        return tuple(np.zeros((0, *(_dim(d) or 0 for d in shapes[n][1:])), np.float32) for n in self.info.output_names)
