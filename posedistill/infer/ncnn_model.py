"""ncnn pose models (``.param`` + ``.bin``) behind the same interface as :class:`~posedistill.infer.onnx_model.
OnnxPoseModel`, so that :class:`~posedistill.infer.estimator.PoseEstimator`, the label teachers and the distillation
teachers run them unchanged.

An ncnn file pair says nothing about its contract (input size, normalisation, channel order, what the output
means), so every ncnn model needs a sidecar (:mod:`posedistill.infer.sidecar`): next to the ``.param`` file, or
shipped in the repository under ``models/sidecars/`` (found by file name or sha256). On load the sidecar's blob
names are checked against the ``.param`` file (ncnn itself would crash on an unknown name), then one dry run at the
sidecar's input size checks the output shapes (K of the layout, heatmap size = input / stride).

The ``ncnn`` Python package (``pip install ncnn``) is part of the ``train`` extra and imported only here, on first
use. ``ncnn.Mat(array)`` wraps a numpy buffer without copying: each crop is kept as a contiguous float32 C×H×W
array until its extractor has run, and every output is copied out before the next crop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posedistill.infer.onnx_model import ModelContractError, sidecar_pose_info
from posedistill.infer.sidecar import (
    ModelSidecar,
    SidecarError,
    check_names,
    ncnn_blobs,
    sidecar_for,
)

NCNN_SUFFIXES = (".param", ".bin")
NCNN_INSTALL_HELP = (
    "ncnn models need the ncnn Python package, which is not installed: pip install ncnn (it is part of the "
    "training extra: pip install 'posedistill[train]')"
)


def import_ncnn() -> Any:
    """``import ncnn``, or an ImportError that names the package and the extra."""
    import os

    # ncnn's OpenMP threads spin-wait between layers by default: on a machine with other busy processes one
    # PP-TinyPose call then takes seconds instead of ~40 ms. Passive waiting must be chosen before the import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import ncnn
    except ImportError:
        raise ImportError(NCNN_INSTALL_HELP) from None
    return ncnn


def is_ncnn_model(path: str | Path) -> bool:
    """A local ``.param`` or ``.bin`` file (the other half of the pair is looked for next to it)."""
    if isinstance(path, str) and "://" in path:
        return False
    p = Path(path)
    return p.suffix.lower() in NCNN_SUFFIXES and p.is_file()


def ncnn_pair(path: str | Path) -> tuple[Path, Path]:
    """(``.param``, ``.bin``) of an ncnn model given as either file; :class:`ModelContractError` if one is missing."""
    p = Path(path)
    param, weights = p.with_suffix(".param"), p.with_suffix(".bin")
    for f, what in ((param, "network description (.param)"), (weights, "weights (.bin)")):
        if not f.is_file():
            raise ModelContractError(p, f"an ncnn model needs its {what} next to it: {f} not found")
    return param, weights


class NcnnPoseModel:
    """A top-down pose network in ncnn format (heatmap or SimCC outputs), CPU only.

    ``run(inputs (N, 3, h, w) float32) -> (heatmaps (N, K, H', W'),)`` or ``(simcc_x (N, K, Wx), simcc_y (N, K,
    Wy))``: one extractor per crop (ncnn has no batch axis), outputs stacked.

    Args:
        path: the ``.param`` or ``.bin`` file (the other one must sit next to it).
        layout: keypoint layout when it should differ from the sidecar's (same K).
        threads: ncnn (OpenMP) threads; default 1. The networks are small and run crop by crop; on cores shared
            with other jobs a multi-threaded ncnn waits at every layer for a descheduled thread (measured: a dry run
            of PP-TinyPose took 10-27 s with 2 threads on 2 busy cores, 0.07 s with 1).
        sidecar: the sidecar (path or parsed); default: looked up (:func:`posedistill.infer.sidecar.find_sidecar`).
    """

    def __init__(
        self,
        path: str | Path,
        layout: str | None = None,
        threads: int | None = None,
        sidecar: str | Path | ModelSidecar | None = None,
    ) -> None:
        self.param, self.weights = ncnn_pair(path)
        self.path = self.param
        sc = sidecar_for(self.param, sidecar, required=True, kind="pose")
        assert sc is not None
        if sc.format != "ncnn":
            raise SidecarError(sc.path, f"format is {sc.format!r}, but {self.param} is an ncnn model", field="format")
        self.sidecar = sc
        inputs, blobs, outputs = ncnn_blobs(self.param)
        check_names(sc, inputs, outputs, self.param, all_blobs=blobs)
        ncnn = import_ncnn()
        self._ncnn = ncnn
        self.threads = int(threads or 1)
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = self.threads
        net.opt.openmp_blocktime = 0  # no spin-waiting: on shared cores a spinning OpenMP team stalls for seconds
        if net.load_param(str(self.param)) != 0:
            raise ModelContractError(self.param, "ncnn cannot parse this .param file")
        if net.load_model(str(self.weights)) != 0:
            raise ModelContractError(self.weights, f"ncnn cannot load these weights for {self.param.name}")
        self.net = net
        w, h = sc.input_size
        shapes = [o.shape for o in self._run_one(np.zeros((3, h, w), np.float32))]
        self.info = sidecar_pose_info(sc, self.param, shapes, layout, metadata={"format": "ncnn", "sidecar": sc.path})
        self._out_shapes = [tuple(s) for s in shapes]

    def __repr__(self) -> str:
        i = self.info
        return (
            f"NcnnPoseModel({str(self.param)!r}, kind={i.kind}, layout={i.layout}, K={i.num_keypoints}, "
            f"input={i.input_size[0]}x{i.input_size[1]}, threads={self.threads})"
        )

    def _run_one(self, chw: np.ndarray) -> list[np.ndarray]:
        """Outputs of one (3, h, w) float32 crop, copied out of ncnn's memory."""
        x = np.ascontiguousarray(chw, dtype=np.float32)  # must outlive the extractor: ncnn.Mat does not copy it
        mat = self._ncnn.Mat(x)
        ex = self.net.create_extractor()
        try:
            ex.input(self.sidecar.input_names[0], mat)
            outs = []
            for name in self.sidecar.output_names:
                ret, out = ex.extract(name)
                if ret != 0:
                    raise ModelContractError(self.param, f"ncnn could not compute output {name!r} (error {ret})")
                outs.append(np.array(out, dtype=np.float32, copy=True))
        finally:
            del ex
        del mat, x
        return outs

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        x = np.asarray(inputs, dtype=np.float32)
        w, h = self.info.input_size
        if x.ndim != 4 or x.shape[1:] != (3, h, w):
            raise ValueError(f"{self.param}: inputs must be N×3×{h}×{w}, got {x.shape}")
        if len(x) == 0:
            return tuple(np.zeros((0, *s), np.float32) for s in self._out_shapes)
        per_crop = [self._run_one(crop) for crop in x]
        return tuple(np.stack([outs[i] for outs in per_crop]) for i in range(len(self.sidecar.output_names)))

    def close(self) -> None:
        """Free the network."""
        net = getattr(self, "net", None)
        if net is not None:
            net.clear()
            self.net = None
