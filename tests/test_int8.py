"""int8 export (``posedistill export --int8``, :mod:`posedistill.infer.quantize`): QDQ graph with the head's tail in
float32, the float32 file's I/O contract and metadata plus an ``int8`` entry, the runtime runs it unchanged, its
argmax agrees with float32, and a bad ``--calib`` fails with a message naming the path."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from posedistill.cli import main
from posedistill.data.synthetic.generate import generate_dataset
from posedistill.engine.checkpoint import save_checkpoint
from posedistill.infer import PoseEstimator
from posedistill.infer.export import export_onnx
from posedistill.infer.onnx_model import METADATA_KEY, OnnxPoseModel
from posedistill.infer.quantize import (
    CalibrationSet,
    argmax_agreement,
    calibration_boxes,
    calibration_crops,
    fp32_nodes,
    is_int8,
    quantize_onnx,
    quantize_with_calibration,
)
from posedistill.models import build_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
SIZE = (64, 96)  # (w, h): small, and the smallest crop whose 2×3 final map RTMPose's head handles well
CALIB_N = 12


def _rtmpose() -> nn.Module:
    torch.manual_seed(0)
    m = build_model("rtmpose-t", 17, SIZE).eval()
    with torch.no_grad():  # O(1) logits with distinct peaks, as a trained head has (a fresh one's are ~flat)
        for lin in (m.head.cls_x, m.head.cls_y, m.head.mlp[1]):
            nn.init.normal_(lin.weight, std=1.0)
    return m


def _dims(v) -> list:
    return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]


def _io(path) -> tuple[list, list, dict]:
    proto = onnx.load(str(path))

    def desc(vs):
        return [(v.name, v.type.tensor_type.elem_type, _dims(v)) for v in vs]

    meta = json.loads(next(p.value for p in proto.metadata_props if p.key == METADATA_KEY))
    return desc(proto.graph.input), desc(proto.graph.output), meta


def _offsets(ref, got) -> np.ndarray:
    """(N, K) larger of the x / y argmax offsets in bins between two SimCC outputs."""
    return np.maximum(*(np.abs(a.argmax(-1) - b.argmax(-1)) for a, b in zip(ref, got)))


def _clear_peaks(ref, thr: float) -> np.ndarray:
    """(N, K) keypoints whose x and y logits both peak more than ``thr`` × their range above every bin further
    than one bin from the peak."""
    ok = np.ones(ref[0].shape[:2], bool)
    for a in ref:
        far = np.abs(np.arange(a.shape[-1]) - a.argmax(-1)[..., None]) > 1
        ok &= a.max(-1) - np.where(far, a, -np.inf).max(-1) > thr * (a.max(-1) - a.min(-1))
    return ok


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    torch.set_num_threads(1)
    ann = generate_dataset(root / "synth", 4, size=(128, 128), people=(1, 2), seed=0)
    model = _rtmpose()
    fp32 = export_onnx(model, root / "fp32.onnx", dynamic_batch=True)
    int8 = quantize_with_calibration(fp32, root / "int8.onnx", ann, CALIB_N)
    return {"root": root, "ann": ann, "model": model, "fp32": fp32, "int8": int8}


def test_qdq_graph_keeps_the_simcc_tail_in_float32(data):
    proto = onnx.load(str(data["int8"]))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") > 20
    producer = {o: n for n in proto.graph.node for o in n.output}
    inits = {i.name: i for i in proto.graph.initializer}
    consumers = {i for n in proto.graph.node if n.op_type == "QuantizeLinear" for i in n.input}

    def weight_dtype(node):  # the weight input: a float32 initializer, or an int8 one behind a DequantizeLinear
        w = node.input[1]
        if w in inits:
            return inits[w].data_type
        dq = producer[w]
        assert dq.op_type == "DequantizeLinear"
        return inits[dq.input[0]].data_type

    nodes = {n.name: n for n in proto.graph.node}
    kept = json.loads(next(p.value for p in proto.metadata_props if p.key == METADATA_KEY))["int8"]["fp32_nodes"]
    assert {"/head/cls_x/MatMul", "/head/cls_y/MatMul"} <= set(kept)
    assert any(k.startswith("/head/gau/") for k in kept) and "/head/final_layer/Conv" not in kept
    for name in ("/head/cls_x/MatMul", "/head/cls_y/MatMul", "/head/gau/uv/MatMul", "/head/mlp/mlp.1/MatMul"):
        assert weight_dtype(nodes[name]) == onnx.TensorProto.FLOAT, name
        assert not any(o in consumers for o in nodes[name].output), f"{name}'s output is quantized"
    # the backbone and the head's convolution are int8
    assert weight_dtype(nodes["/head/final_layer/Conv"]) == onnx.TensorProto.INT8
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert convs and all(weight_dtype(n) == onnx.TensorProto.INT8 for n in convs)
    # the graph outputs come straight from the float32 classifiers
    assert {producer[o.name].name for o in proto.graph.output} == {"/head/cls_x/MatMul", "/head/cls_y/MatMul"}
    assert data["int8"].stat().st_size < 0.45 * data["fp32"].stat().st_size


def test_contract_and_metadata_match_the_float32_export(data):
    ins32, outs32, meta32 = _io(data["fp32"])
    ins8, outs8, meta8 = _io(data["int8"])
    assert ins8 == ins32 == [("input", onnx.TensorProto.FLOAT, ["batch", 3, 96, 64])]
    assert outs8 == outs32 == [("simcc_x", 1, ["batch", 17, 128]), ("simcc_y", 1, ["batch", 17, 192])]
    q = meta8.pop("int8")
    assert meta8 == meta32  # layout, codec, normalisation, build args, opset ... all unchanged
    assert q["format"] == "qdq" and q["activations"] == "uint8" and q["weights"] == "int8"
    assert q["per_channel"] is True and q["reduce_range"] is True and q["keep_fp32"] == "tail"
    assert q["calibration"] == {"source": str(data["ann"]), "kind": "coco", "boxes": "ground truth", "crops": 6}
    assert is_int8(OnnxPoseModel(data["int8"]).info) and not is_int8(OnnxPoseModel(data["fp32"]).info)


def test_runtime_runs_it_and_argmax_stays_close_to_float32(data):
    m32, m8 = OnnxPoseModel(data["fp32"], threads=1), OnnxPoseModel(data["int8"], threads=1)
    assert m8.info.kind == "simcc" and m8.info.input_size == SIZE and m8.info.batch_size is None
    crops = calibration_crops(data["ann"], m32.info, CALIB_N)  # real person crops, fixed
    assert crops.shape == (6, 3, 96, 64)
    ref, got = m32.run(crops), m8.run(crops)
    assert all(o.dtype == np.float32 for o in got)
    for a, b in zip(ref, got):  # the logits as a whole
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    # argmax: random weights leave many near-ties (a median top-2 margin of ~5% of the logit range), which any
    # rounding flips; where float32 has a clear peak, int8 must find it
    clear = _clear_peaks(ref, 0.05)
    assert clear.sum() >= 10
    assert _offsets(ref, got)[clear].max() <= 1
    assert argmax_agreement(ref, got, "simcc", tol=1)["agree"] >= 0.6
    # quantizing the SimCC tail as well loses even the clear peaks: the check tells the settings apart
    none = quantize_onnx(data["fp32"], data["root"] / "none.onnx", crops, keep_fp32="none")
    assert (_offsets(ref, OnnxPoseModel(none, threads=1).run(crops))[clear] <= 1).mean() < 0.5

    image = cv2.imread(str(data["ann"].parent / "images" / "000001.jpg"))
    boxes = np.array([[10, 4, 60, 110], [60, 10, 120, 120]], np.float32)
    r32 = PoseEstimator(data["fp32"], detector=None, threads=1)(image, boxes=boxes)
    r8 = PoseEstimator(data["int8"], detector=None, threads=1)(image, boxes=boxes)
    assert r8.keypoints.shape == (2, 17, 2) and r8.scores.shape == (2, 17)
    # SimCC bins are half a crop pixel; a crop pixel here is ~1.2 image pixels
    assert np.median(np.abs(r8.keypoints - r32.keypoints)) <= 2.0


def test_infer_command_runs_the_int8_file(data, tmp_path):
    out = tmp_path / "res.json"
    img = data["ann"].parent / "images" / "000002.jpg"
    assert main(["infer", str(img), "--model", str(data["int8"]), "--detector", "none", "--json", str(out),
                 "--no-vis", "--quiet", "--threads", "1"]) == 0  # fmt: skip
    inst = json.loads(out.read_text())["instance_info"][0]["instances"]
    assert len(inst) == 1 and len(inst[0]["keypoints"]) == 17


def test_export_command_int8(data, tmp_path, capsys):
    meta = {"layout": "coco", "input_size": list(SIZE), "model": {"build_args": data["model"].build_args}}
    ckpt = save_checkpoint(tmp_path / "ckpt", data["model"], meta)
    out = tmp_path / "m.onnx"
    rc = main(["export", str(ckpt), "--out", str(out), "--int8", "--calib", str(data["ann"]), "--calib-count", "4"])
    cap = capsys.readouterr()
    text = cap.out
    assert rc == 0, cap.err
    assert "parity onnxruntime vs PyTorch" in text and "int8 QDQ" in text and "/head/cls_x/MatMul" in text
    assert "argmax within 1 bin" in text
    info = OnnxPoseModel(out).info
    assert info.batch_size == 1 and info.metadata["int8"]["calibration"]["crops"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "m.onnx"]  # no float32 or temp file left


def test_folder_calibration_uses_detector_boxes_or_the_whole_image(data, tmp_path):
    folder = tmp_path / "imgs"
    shutil.copytree(data["ann"].parent / "images", folder)
    (folder / "notes.txt").write_text("not an image")
    whole = calibration_boxes(folder, 3, detector=None)
    assert whole.kind == "images" and whole.boxes_from == "whole image" and whole.num_boxes == 3
    assert all(np.array_equal(b, [[0, 0, 128, 128]]) for _, b in whole.items)

    def two_people(image):
        return np.array([[0, 0, 50, 100], [60, 0, 120, 120]], np.float32), np.ones(2, np.float32)

    det = calibration_boxes(folder, 5, detector=two_people)
    assert det.boxes_from == "detector" and det.num_boxes == 5 and len(det.items) == 4  # 8 boxes thinned to 5
    coco = calibration_boxes(data["ann"], 100)
    assert isinstance(coco, CalibrationSet) and coco.num_boxes == 6 and coco.boxes_from == "ground truth"


def test_heatmap_model_and_float16_stored_weights(tmp_path, data):
    torch.manual_seed(0)
    model = build_model("cspnext-t-heatmap", 17, (48, 64)).eval()
    fp16 = export_onnx(model, tmp_path / "hm16.onnx", dynamic_batch=True, fp16_weights=True)
    m32 = OnnxPoseModel(fp16, threads=1)
    crops = calibration_crops(data["ann"], m32.info, CALIB_N)
    out = quantize_onnx(fp16, tmp_path / "hm8.onnx", crops, calibration={"source": "synthetic"})
    proto = onnx.load(str(out))
    assert not any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    meta = OnnxPoseModel(out).info.metadata
    assert "fp16_weights" not in meta and meta["kind"] == "heatmap"
    assert "/head/final_layer/Conv" in meta["int8"]["fp32_nodes"]
    assert fp32_nodes(onnx.load(str(fp16)), "outputs") == ["/head/final_layer/Conv"]
    res = PoseEstimator(out, detector=None, threads=1)(np.zeros((64, 48, 3), np.uint8))
    assert res.keypoints.shape == (1, 17, 2)


# ------------------------------------------------------------------------------------------------ errors


def _fails(capsys, *argv, expect: tuple[str, ...]) -> None:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posedistill export: error:") and all(e in err for e in expect), err


def test_bad_calib_names_the_path_and_what_was_expected(data, tmp_path, capsys):
    ckpt = tmp_path / "no_checkpoint_needed"  # --calib is checked before the model loads
    out = tmp_path / "o.onnx"
    missing = tmp_path / "nowhere"
    _fails(capsys, "export", ckpt, "--out", out, "--int8", "--calib", missing,
           expect=(str(missing), "COCO json", "folder of images"))  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(capsys, "export", ckpt, "--out", out, "--int8", "--calib", empty, expect=(str(empty), "no images"))
    txt = tmp_path / "boxes.txt"
    txt.write_text("1 2 3 4")
    _fails(capsys, "export", ckpt, "--out", out, "--int8", "--calib", txt, expect=(str(txt), "COCO json"))
    not_coco = tmp_path / "list.json"
    not_coco.write_text("[1, 2]")
    _fails(capsys, "export", ckpt, "--out", out, "--int8", "--calib", not_coco,
           expect=(str(not_coco), "'images' and 'annotations'"))  # fmt: skip
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    _fails(capsys, "export", ckpt, "--out", out, "--int8", "--calib", broken, expect=(str(broken), "COCO json"))
    doc = json.loads(data["ann"].read_text())
    doc["images"][0]["file_name"] = "images/gone.jpg"
    lost = tmp_path / "lost.json"
    lost.write_text(json.dumps(doc))
    _fails(capsys, "export", ckpt, "--out", out, "--int8", "--calib", lost, expect=(str(lost), "gone.jpg", "not found"))
    doc = json.loads(data["ann"].read_text())
    for a in doc["annotations"]:
        a["iscrowd"] = 1
    crowd = data["ann"].parent / "crowd.json"
    crowd.write_text(json.dumps(doc))
    _fails(capsys, "export", ckpt, "--out", out, "--int8", "--calib", crowd, expect=(str(crowd), "no usable"))
    assert not out.exists()


def test_int8_option_combinations(data, tmp_path, capsys):
    ckpt, out, ann = tmp_path / "ckpt", tmp_path / "o.onnx", data["ann"]
    _fails(capsys, "export", ckpt, "--out", out, "--int8", expect=("--int8 needs", "--calib"))
    _fails(capsys, "export", ckpt, "--out", out, "--calib", ann, expect=("--calib", "add --int8"))
    _fails(capsys, "export", ckpt, "--out", out, "--int8", "--calib", ann, "--fp16-weights", expect=("--fp16-weights",))
    _fails(capsys, "export", ckpt, "--out", out, "--int8", "--calib", ann, "--calib-count", "0",
           expect=("--calib-count 0",))  # fmt: skip


def test_dkd_and_already_quantized_files_are_refused(data, tmp_path, capsys):
    from tests.test_dkd_runtime import tiny_net, write_checkpoint

    ckpt = write_checkpoint(tmp_path / "dkd", tiny_net())
    _fails(capsys, "export", ckpt, "--out", tmp_path / "d.onnx", "--int8", "--calib", data["ann"],
           expect=("DKD", "--int8", "without --int8"))  # fmt: skip
    assert not (tmp_path / "d.onnx").exists()
    crops = np.zeros((2, 3, 96, 64), np.float32)
    with pytest.raises(ValueError, match="already quantized"):
        quantize_onnx(data["int8"], tmp_path / "twice.onnx", crops)
    with pytest.raises(ValueError, match="N×3×96×64"):
        quantize_onnx(data["fp32"], tmp_path / "bad.onnx", crops[:, :, :64])


def test_bench_times_float32_and_int8_side_by_side(data, tmp_path, monkeypatch, capsys):
    import posedistill.commands.bench as bench_mod

    # the machine-speed calibration (sgemm in subprocesses) is test_export.py's business, and slow
    monkeypatch.setattr(bench_mod, "matmul_gflops", lambda *a, **k: {"numpy": 100.0, "torch": None, "best": 100.0})
    out = tmp_path / "bench.json"
    rc = main(["bench", "rtmpose-t", "--input-size", "64", "96", "--backend", "ort", "--warmup", "1", "--iters", "2",
               "--batch", "1", "2", "--persons", "2", "--threads", "1", "--int8", str(data["ann"]),
               "--calib-count", "4", "--json", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    res = json.loads(out.read_text())
    rows = {(r["backend"], r["batch"], r["mode"]) for r in res["model_latency"]}
    assert {("onnxruntime", 1, "one call"), ("onnxruntime-int8", 1, "one call"),
            ("onnxruntime-int8", 2, "one call")} <= rows  # fmt: skip
    assert ("onnxruntime-int8", 2, "batched") in {(r["backend"], r["persons"], r["mode"]) for r in res["end_to_end"]}
    assert res["int8"]["calibration"]["crops"] == 4 and "/head/cls_x/MatMul" in res["int8"]["fp32_nodes"]
    isa = res["machine"]["isa"]
    assert set(isa) == {"cpu", "avx2", "avx512f", "avx512_vnni", "avx_vnni", "vnni"}
    assert "int8 instruction sets" in text and "onnxruntime-int8" in text
