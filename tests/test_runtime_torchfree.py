"""The runtime without torch: a subprocess whose import system refuses ``torch`` runs PoseEstimator (and the
detector, the Wholebody/Body presets and ``posedistill bench`` on an ONNX file) end to end, gets the same
keypoints as this torch-enabled process, never imports torch, and explains what to do with a checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from posedistill.engine.checkpoint import save_checkpoint
from posedistill.infer.estimator import PoseEstimator
from posedistill.infer.export import export_onnx
from posedistill.models import build_model

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
ROOT = Path(__file__).resolve().parents[1]

BLOCK_TORCH = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this test ({name})")
        return None
sys.meta_path.insert(0, _NoTorch())
"""

SCRIPT = """
import json, sys
import numpy as np
import posedistill.infer as pi
from posedistill.infer import PoseEstimator, Wholebody, Body, YOLOXDetector, PoseResult
args = json.loads(sys.argv[1])
est = PoseEstimator(args["pose"])
res = est(args["image"], boxes=args["boxes"])
assert isinstance(res, PoseResult)
coco = res.to_coco(image_id=1)
out = {"keypoints": res.keypoints.tolist(), "scores": res.scores.tolist(), "n_coco": len(coco)}
# detector + pose model, and the rtmlib-style presets with local files
det = PoseEstimator(args["pose"], detector=args["det"])(args["image"])
out["det_boxes"] = det.boxes.tolist()
kp, sc = Body(det=args["det"], pose=args["pose"])(np.ascontiguousarray(__import__("cv2").imread(args["image"])))
out["body_shape"] = list(kp.shape)
kp18, _ = Body(det=args["det"], pose=args["pose"], to_openpose=True)(__import__("cv2").imread(args["image"]))
out["openpose_shape"] = list(kp18.shape)
# a checkpoint needs torch: the error says what to do
try:
    PoseEstimator(args["ckpt"])
    out["ckpt_error"] = None
except ImportError as e:
    out["ckpt_error"] = str(e)
# the bench command on an ONNX file, onnxruntime rows only
from posedistill.cli import main
out["bench_rc"] = main(["bench", args["pose"], "--backend", "ort", "--warmup", "0", "--iters", "2", "--batch", "1",
                        "2", "--persons", "2", "--json", args["bench_json"]])
out["torch_imported"] = any(m == "torch" or m.startswith("torch.") for m in sys.modules)
print("RESULT " + json.dumps(out))
"""


@pytest.mark.stress
def test_runtime_runs_without_torch(tmp_path):
    from tests.test_detector import RectEnd2End, _export

    torch.manual_seed(0)
    model = build_model("rtmpose-t", 17, (192, 256)).eval()
    with torch.no_grad():
        for lin in (model.head.cls_x, model.head.cls_y, model.head.mlp[1]):
            torch.nn.init.normal_(lin.weight, std=1.0)
    pose = export_onnx(model, tmp_path / "pose.onnx", dynamic_batch=True)
    det = tmp_path / "det.onnx"
    _export(RectEnd2End(np.zeros((0, 6), np.float32)), det)
    ckpt = save_checkpoint(tmp_path / "ckpt", model, {"layout": "coco", "input_size": [192, 256]})
    img = np.random.default_rng(0).integers(0, 200, (360, 480, 3), dtype=np.uint8)
    img[50:300, 100:250, 2] = 255  # a red "person" for the toy detector
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), img)
    boxes = [[100.0, 50.0, 250.0, 300.0], [300.0, 20.0, 470.0, 340.0]]
    args = {"pose": str(pose), "det": str(det), "ckpt": str(ckpt), "image": str(image), "boxes": boxes,
            "bench_json": str(tmp_path / "bench.json")}  # fmt: skip

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    code = textwrap.dedent(BLOCK_TORCH) + textwrap.dedent(SCRIPT)
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])

    assert out["torch_imported"] is False
    ref = PoseEstimator(pose)(img, boxes=boxes)
    np.testing.assert_allclose(np.array(out["keypoints"]), ref.keypoints, atol=1e-4)
    np.testing.assert_allclose(np.array(out["scores"]), ref.scores, rtol=1e-5, atol=1e-6)
    assert out["n_coco"] == 2
    np.testing.assert_allclose(out["det_boxes"], [[100, 50, 250, 300]], atol=1.01)
    assert out["body_shape"] == [1, 17, 2] and out["openpose_shape"] == [1, 18, 2]
    msg = out["ckpt_error"]
    assert msg is not None and str(ckpt) in msg and "posedistill[train]" in msg and "posedistill export" in msg
    assert out["bench_rc"] == 0
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert {r["backend"] for r in bench["model_latency"]} == {"onnxruntime"} and bench["gflops"] is None
    assert bench["machine"]["torch"] is None and bench["machine"]["matmul_gflops_all_threads"] > 0


@pytest.mark.stress
def test_import_is_lazy_and_torch_free():
    code = textwrap.dedent(BLOCK_TORCH) + textwrap.dedent("""
        import sys
        import posedistill.infer as pi
        names = [n for n in pi.__all__ if n not in ("export_onnx", "export_checkpoint", "export_dkd_onnx",
                                                    "TorchPoseModel", "VideoPoseEstimator")]  # these need torch
        for n in names:
            getattr(pi, n)
        try:
            pi.export_onnx
        except ImportError as e:
            print("EXPORT_NEEDS_TORCH", e)
        print("TORCH" if "torch" in sys.modules else "NO_TORCH")
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NO_TORCH" in proc.stdout and "EXPORT_NEEDS_TORCH" in proc.stdout
