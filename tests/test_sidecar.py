"""Sidecars (posedistill.infer.sidecar): the shipped ones, lookup (next to the model, repo by name / sha256), the
schema's errors, and the checks against the model (blob names in the ncnn .param, input size by a dry run, ONNX
graphs)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from posedistill.infer.sidecar import (
    REPO_SIDECAR_DIR,
    SidecarError,
    find_sidecar,
    load_sidecar,
    ncnn_blobs,
    parse_sidecar,
    sidecar_for,
)
from tests.conftest import ROOT, shared_path

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SHIPPED = ROOT / "models" / "pp-tinypose_256x192"
PARAM = SHIPPED / "pp-tinypose_256x192_ncnn.param"
OUT_BLOB = "save_infer_model/scale_0.tmp_1"


def _pose_doc(**over) -> dict:
    doc = json.loads((SHIPPED / "pp-tinypose_256x192_ncnn.json").read_text())
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not ...}


def _copy_model(tmp_path: Path, name: str = "tp") -> Path:
    for suffix in (".param", ".bin"):
        shutil.copy(PARAM.with_suffix(suffix), tmp_path / f"{name}{suffix}")
    return tmp_path / f"{name}.param"


def test_shipped_sidecars_parse_and_agree():
    names = sorted(p.name for p in REPO_SIDECAR_DIR.glob("*.json"))
    assert names == ["pp-tinypose_128x96_ncnn.json", "pp-tinypose_256x192_ncnn.json", "rtmdet-nano_person.json",
                     "yolox_nano_8xb8-300e_humanart-40f6f0d0.json"]  # fmt: skip
    scs = {n: load_sidecar(REPO_SIDECAR_DIR / n) for n in names}
    tp = scs["pp-tinypose_256x192_ncnn.json"]
    assert (tp.kind, tp.format, tp.output_kind, tp.layout, tp.decoder) == ("pose", "ncnn", "heatmap", "coco",
                                                                          "argmax+dark")  # fmt: skip
    assert tp.input_size == (192, 256) and tp.color == "rgb" and tp.to_rgb and tp.std == (58.395, 57.12, 57.375)
    assert scs["pp-tinypose_128x96_ncnn.json"].input_size == (96, 128)
    in_folder = load_sidecar(SHIPPED / "pp-tinypose_256x192_ncnn.json")
    assert replace(in_folder, path="") == replace(tp, path="")  # the model folder's copy says the same
    rtm, yolox = scs["rtmdet-nano_person.json"], scs["yolox_nano_8xb8-300e_humanart-40f6f0d0.json"]
    assert rtm.kind == yolox.kind == "detector" and rtm.output_names == yolox.output_names == ("dets", "labels")
    assert rtm.input_size == (320, 320) and rtm.color == "bgr" and rtm.mean == (103.53, 116.28, 123.675)
    assert yolox.input_size == (416, 416) and yolox.mean is None and yolox.std is None and yolox.pad_value == 114
    assert rtm.resize == "letterbox" and rtm.output_kind is None


def test_shared_weights_find_their_repo_sidecars():
    weights = shared_path("weights")
    for f, sidecar in [
        ("pp-tinypose_256x192_ncnn.param", "pp-tinypose_256x192_ncnn.json"),
        ("pp-tinypose_128x96_ncnn.bin", "pp-tinypose_128x96_ncnn.json"),  # the .bin stands for its .param
        ("rtmdet-nano_person.onnx", "rtmdet-nano_person.json"),
        ("yolox_nano_8xb8-300e_humanart-40f6f0d0.onnx", "yolox_nano_8xb8-300e_humanart-40f6f0d0.json"),
    ]:
        assert find_sidecar(weights / f) == REPO_SIDECAR_DIR / sidecar
    det = sidecar_for(weights / "rtmdet-nano_person.onnx", kind="detector")
    assert det is not None and det.input_size == (320, 320)
    with pytest.raises(SidecarError, match="detector model"):
        sidecar_for(weights / "rtmdet-nano_person.onnx", kind="pose")


def test_lookup_next_to_the_model_by_name_and_by_sha(tmp_path):
    assert find_sidecar(PARAM) == SHIPPED / "pp-tinypose_256x192_ncnn.json"  # next to it
    renamed = _copy_model(tmp_path, "renamed")
    assert find_sidecar(renamed) == REPO_SIDECAR_DIR / "pp-tinypose_256x192_ncnn.json"  # by sha256
    (tmp_path / "renamed.json").write_text(json.dumps({"not": "a sidecar"}))  # no 'kind': passed over
    assert find_sidecar(renamed) == REPO_SIDECAR_DIR / "pp-tinypose_256x192_ncnn.json"
    (tmp_path / "renamed.yaml").write_text("kind: pose\n")
    assert find_sidecar(renamed) == tmp_path / "renamed.yaml"
    # same file name as a repo sidecar but other content: not that sidecar
    other = tmp_path / "o"
    other.mkdir()
    same_name = other / "pp-tinypose_256x192_ncnn.param"
    same_name.write_text(PARAM.read_text() + "\n")
    assert find_sidecar(same_name) is None
    with pytest.raises(SidecarError, match="no sidecar describes"):
        sidecar_for(same_name, required=True)


def test_schema_errors_name_the_file_and_field(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(SidecarError, match="no such sidecar file"):
        load_sidecar(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{kind: pose")
    with pytest.raises(SidecarError, match="not valid JSON"):
        load_sidecar(bad)
    with pytest.raises(SidecarError, match=r"unknown field\(s\) \['colour'\]"):
        parse_sidecar(_pose_doc(colour="rgb"), "x.json")
    with pytest.raises(SidecarError, match="'pad_value' is a detector field"):
        parse_sidecar(_pose_doc(pad_value=114), "x.json")
    with pytest.raises(SidecarError, match=r"missing required field\(s\) \['layout'\]"):
        parse_sidecar(_pose_doc(layout=...), "x.json")
    with pytest.raises(SidecarError, match=r"x.json: field 'input_size': must be \[w, h\]"):
        parse_sidecar(_pose_doc(input_size=[192]), "x.json")
    with pytest.raises(SidecarError, match="field 'layout'"):
        parse_sidecar(_pose_doc(layout="klingon"), "x.json")
    with pytest.raises(SidecarError, match="field 'color'"):
        parse_sidecar(_pose_doc(color="grey"), "x.json")
    with pytest.raises(SidecarError, match="field 'mean'"):
        parse_sidecar(_pose_doc(mean=None), "x.json")
    with pytest.raises(SidecarError, match="field 'kind'"):
        parse_sidecar({"kind": "segmenter"}, "x.json")
    with pytest.raises(SidecarError, match="one heatmap output"):
        parse_sidecar(_pose_doc(output_names=["a", "b"]), "x.json")
    y = tmp_path / "ok.yaml"
    y.write_text("kind: detector\nformat: onnx\ninput_names: [input]\noutput_names: [dets, labels]\n"
                 "input_size: [640, 640]\ncolor: bgr\nmean: null\nstd: null\n")  # fmt: skip
    det = load_sidecar(y)
    assert det.kind == "detector" and det.pad_value == 114 and det.mean is None


def test_ncnn_blob_names_and_input_size_are_checked(tmp_path):
    pytest.importorskip("ncnn")
    from posedistill.infer.ncnn_model import NcnnPoseModel

    inputs, blobs, outputs = ncnn_blobs(PARAM)
    assert inputs == ["image"] and outputs == [OUT_BLOB] and len(blobs) > 500
    model = _copy_model(tmp_path)
    side = tmp_path / "tp.json"
    side.write_text(json.dumps(_pose_doc(output_names=["heatmaps"], model_file=..., sha256=...)))
    with pytest.raises(SidecarError, match=r"field 'output_names': unknown output name 'heatmaps'.*" + OUT_BLOB):
        NcnnPoseModel(model)  # checked against the .param: ncnn itself would abort on an unknown blob
    side.write_text(json.dumps(_pose_doc(input_names=["input"], model_file=..., sha256=...)))
    with pytest.raises(SidecarError, match="unknown input name 'input'"):
        NcnnPoseModel(model)
    side.write_text(json.dumps(_pose_doc(input_size=[96, 128], model_file=..., sha256=...)))
    with pytest.raises(SidecarError, match=r"field 'input_size'.*48×64 heatmaps.*\(192, 256\)"):
        NcnnPoseModel(model)  # the 256x192 network with the 128x96 model's contract
    side.write_text(json.dumps(_pose_doc(layout="lsp", model_file=..., sha256=...)))
    with pytest.raises(SidecarError, match="layout 'lsp' has 14 keypoints"):
        NcnnPoseModel(model)
    side.write_text(json.dumps(_pose_doc(format="onnx", model_file=..., sha256=...)))
    with pytest.raises(SidecarError, match="format"):
        NcnnPoseModel(model)
    (tmp_path / "tp.bin").unlink()
    with pytest.raises(ValueError, match=r"weights \(\.bin\)"):
        NcnnPoseModel(model)
    not_param = tmp_path / "x.param"
    not_param.write_text("hello\n")
    with pytest.raises(SidecarError, match="7767517"):
        ncnn_blobs(not_param)


class _Heat:
    """A tiny heatmap 'network' for ONNX export: stride-4 average pooling, then a 1x1 conv to K maps."""

    def __new__(cls, k: int = 17):
        import torch

        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Conv2d(3, k, 1))


def _export_heatmap_onnx(path: Path, h: int = 64, w: int = 48, names=("img", "out"), dynamic: bool = False) -> Path:
    torch = pytest.importorskip("torch")
    axes = {names[0]: {0: "n", 2: "h", 3: "w"}} if dynamic else None
    torch.onnx.export(_Heat().eval(), (torch.zeros(1, 3, h, w),), str(path), dynamo=False, input_names=[names[0]],
                      output_names=[names[1]], dynamic_axes=axes)  # fmt: skip
    return path


def test_onnx_sidecar_supplies_the_contract_and_is_checked(tmp_path):
    from posedistill.infer.onnx_model import OnnxPoseModel

    onnx = _export_heatmap_onnx(tmp_path / "hm.onnx", dynamic=True)
    doc = {"kind": "pose", "format": "onnx", "input_names": ["img"], "output_names": ["out"], "input_size": [48, 64],
           "color": "bgr", "mean": None, "std": None, "output_kind": "heatmap", "layout": "coco",
           "decoder": "argmax+quarter", "bbox_padding": 1.2}  # fmt: skip
    (tmp_path / "hm.json").write_text(json.dumps(doc))
    info = OnnxPoseModel(onnx, threads=1).info
    assert info.kind == "heatmap" and info.output_names == ("out",) and info.input_size == (48, 64)
    assert not info.to_rgb and info.mean == (0, 0, 0) and info.std == (1, 1, 1) and info.padding == 1.2
    assert info.codec == {"type": "heatmap", "input_size": [48, 64], "heatmap_size": [12, 16], "sigma": 2.0,
                          "unbiased": False, "udp": False}  # fmt: skip
    (tmp_path / "hm.json").write_text(json.dumps({**doc, "output_names": ["heatmaps"]}))
    with pytest.raises(SidecarError, match=r"unknown output name 'heatmaps'.*\['out'\]"):
        OnnxPoseModel(onnx, threads=1)
    (tmp_path / "hm.json").write_text(json.dumps({**doc, "heatmap_stride": 8}))
    with pytest.raises(SidecarError, match="field 'input_size'"):
        OnnxPoseModel(onnx, threads=1)
    fixed = _export_heatmap_onnx(tmp_path / "fixed.onnx")
    (tmp_path / "fixed.json").write_text(json.dumps({**doc, "input_size": [96, 128]}))
    with pytest.raises(SidecarError, match=r"input size \(w, h\) = \(96, 128\), but .* takes \[1, 3, 64, 48\]"):
        OnnxPoseModel(fixed, threads=1)
    detector = {k: doc[k] for k in ("format", "input_names", "output_names", "input_size", "color")}
    (tmp_path / "fixed.json").write_text(json.dumps({**detector, "kind": "detector"}))
    with pytest.raises(SidecarError, match="detector model"):
        OnnxPoseModel(fixed, threads=1)
    # without a sidecar and without metadata: the graph says it all, decoded with DARK
    plain = OnnxPoseModel(_export_heatmap_onnx(tmp_path / "plain.onnx"), threads=1)
    assert plain.info.codec["unbiased"] is True and plain.info.to_rgb and plain.info.layout == "coco"
