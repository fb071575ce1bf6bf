"""RTMPose against mmpose 1.3.2 reference tensors, state-dict compatibility, checkpoint conversion and loading."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from posedistill.errors import PoseDataError
from posedistill.models import (
    RTMPose,
    build_model,
    convert_mmpose_state_dict,
    count_flops,
    count_params,
    load_mmpose_checkpoint,
    model_names,
    split_mmpose_state_dict,
)
from posedistill.models.rtmpose import flip_simcc_back
from tests.conftest import shared_path

TOL = 1e-5


def _reference(name: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    from safetensors.torch import load_file

    ref_dir = shared_path("reference", "mmpose")
    tensors = load_file(str(ref_dir / f"{name}.safetensors"))
    meta = json.loads((ref_dir / f"{name}.json").read_text())
    sd = {k.removeprefix("state_dict."): v for k, v in tensors.items() if k.startswith("state_dict.")}
    out = {k.removeprefix("out."): v for k, v in tensors.items() if k.startswith("out.")}
    return sd, out, meta


def _decode(simcc_x: torch.Tensor, simcc_y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """mmpose SimCC decode: argmax / split ratio 2, score = min of the two raw maxima, -1 where score <= 0."""
    sx, sy = simcc_x.numpy(), simcc_y.numpy()
    kpts = np.stack([sx.argmax(-1), sy.argmax(-1)], -1).astype(np.float32) / 2.0
    scores = np.minimum(sx.max(-1), sy.max(-1))
    kpts[scores <= 0] = -1
    return kpts, scores


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


@pytest.mark.parametrize("name, num_keypoints", [("rtmpose-t_body", 17), ("rtmpose-t_wholebody", 133)])
def test_matches_mmpose_reference(name: str, num_keypoints: int) -> None:
    sd, out, meta = _reference(name)
    model = build_model("rtmpose-t", num_keypoints, (192, 256)).eval()
    model.load_state_dict(sd, strict=True)
    assert count_params(model) == meta["n_params"]
    x = out["input"]
    flip = meta["flip_indices"]
    with torch.no_grad():
        feats = model.features(x)
        head = model.head
        final = head.final_layer(feats[-1])
        mlp = head.mlp(torch.flatten(final, 2))
        gau = head.gau(mlp)
        sx, sy = model(x)
        fx, fy = flip_simcc_back(*model(x.flip(-1)), flip)
        tx, ty = model.flip_test(x, flip)
        hx, hy = model.head_forward(feats)
    got = {
        "backbone_out": feats[-1],
        "head_final_layer": final,
        "head_mlp": mlp,
        "head_gau": gau,
        "simcc_x": sx,
        "simcc_y": sy,
        "simcc_x_flip": fx,
        "simcc_y_flip": fy,
        "simcc_x_tta": tx,
        "simcc_y_tta": ty,
    }
    diffs = {k: _maxdiff(v, out[k]) for k, v in got.items()}
    assert max(diffs.values()) <= TOL, diffs
    assert torch.equal(hx, sx) and torch.equal(hy, sy)

    for suffix, (lx, ly) in {"": (sx, sy), "_tta": (tx, ty)}.items():
        kpts, scores = _decode(lx, ly)
        assert np.array_equal(kpts, out[f"kpts{suffix}"].numpy())
        assert np.abs(scores - out[f"scores{suffix}"].numpy()).max() <= TOL


def test_load_reference_file_through_converter() -> None:
    """The reference safetensors (flattened ``state_dict.*`` + ``out.*``) loads via load_mmpose_checkpoint."""
    path = shared_path("reference", "mmpose", "rtmpose-t_body.safetensors")
    sd, out, _ = _reference("rtmpose-t_body")
    kept, dropped = split_mmpose_state_dict(load_mmpose_checkpoint(path))
    assert set(kept) == set(sd) and not dropped
    model = RTMPose("t", 17).eval()
    model.load_state_dict(load_mmpose_checkpoint(path), strict=True)
    with torch.no_grad():
        assert _maxdiff(model(out["input"])[0], out["simcc_x"]) <= TOL


def _manifest() -> dict:
    return json.loads(shared_path("reference", "mmpose", "manifest.json").read_text())


def _manifest_build(name: str, entry: dict) -> nn.Module:
    size = name.split("_")[0].removeprefix("rtmpose-")[0]
    _, _, h, w = entry["input_shape"]
    k = entry["state_dict"]["head.final_layer.weight"][0]
    with torch.device("meta"):  # shapes only: building l/x on meta is instant
        return build_model(f"rtmpose-{size}", k, (w, h))


def test_manifest_keys_shapes_and_params() -> None:
    manifest = _manifest()
    assert len(manifest) == 9
    for name, entry in manifest.items():
        model = _manifest_build(name, entry)
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert ours == entry["state_dict"], name
        assert list(ours) == list(entry["state_dict"]), f"{name}: key order differs"
        assert count_params(model) == entry["n_params"], name


# published / measured GFLOPs (MACs) of mmpose 1.3.2's get_flops.py, docs/rtmpose-dwpose.md §9
PUBLISHED_GFLOPS = {
    "rtmpose-t_body": 0.359,
    "rtmpose-s_body": 0.682,
    "rtmpose-m_body": 1.929,
    "rtmpose-l_body": 4.160,
    "rtmpose-t_wholebody": 0.552,
    "rtmpose-s_wholebody": 0.910,
    "rtmpose-m_wholebody": 2.227,
    "rtmpose-l_wholebody": 4.528,
    "rtmpose-l384_wholebody": 10.078,
}


def test_flops_match_published() -> None:
    manifest = _manifest()
    for name, gflops in PUBLISHED_GFLOPS.items():
        model = _manifest_build(name, manifest[name])
        _, _, h, w = manifest[name]["input_shape"]
        assert round(count_flops(model, (1, 3, h, w)) / 1e9, 3) == gflops, name
        # pure conv/linear/matmul MACs are a little lower (BN and pooling terms excluded)
        assert count_flops(model, (1, 3, h, w), mmengine_compatible=False) < gflops * 1e9


def test_flops_scale_with_batch() -> None:
    with torch.device("meta"):
        model = RTMPose("t", 17)
    assert count_flops(model, (4, 3, 256, 192)) == 4 * count_flops(model, (1, 3, 256, 192))


# -- conversion --------------------------------------------------------------------------------------------------


def _two_models() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    a = RTMPose("t", 17).state_dict()
    b = RTMPose("t", 17).state_dict()
    return a, b


def _distiller_checkpoint(teacher: dict, student: dict) -> dict:
    sd = {f"teacher.{k}": v for k, v in teacher.items()}
    sd.update({f"student.{k}": v for k, v in student.items()})
    sd["distill_losses.loss_fea.align.weight"] = torch.zeros(384, 384, 1, 1)
    sd["distill_losses.loss_fea.align.bias"] = torch.zeros(384)
    sd["data_preprocessor.mean"] = torch.zeros(3)
    return {"meta": {"epoch": 3}, "state_dict": {f"module.{k}": v for k, v in sd.items()}}


def _same(x: dict, y: dict) -> bool:
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_convert_distiller_prefixes() -> None:
    teacher, student = _two_models()
    ckpt = _distiller_checkpoint(teacher, student)
    assert _same(convert_mmpose_state_dict(ckpt, "student"), student)
    assert _same(convert_mmpose_state_dict(ckpt, "teacher"), teacher)
    two = convert_mmpose_state_dict(ckpt, "two_stage")
    expected = {k: v for k, v in teacher.items() if k.startswith("backbone.")}
    expected.update({k: v for k, v in student.items() if k.startswith("head.")})
    assert _same(two, expected)
    RTMPose("t", 17).load_state_dict(two, strict=True)

    kept, dropped = split_mmpose_state_dict(ckpt, "student")
    assert "module.distill_losses.loss_fea.align.weight" in dropped
    assert "module.data_preprocessor.mean" in dropped
    assert sum(k.startswith("module.teacher.") for k in dropped) == len(teacher)
    assert len(kept) + len(dropped) == len(ckpt["state_dict"])


def test_convert_plain_checkpoint_and_errors() -> None:
    _, student = _two_models()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in student.items()}, "meta": {}}
    assert _same(convert_mmpose_state_dict(wrapped), student)
    assert _same(convert_mmpose_state_dict(student), student)
    with pytest.raises(PoseDataError, match="distiller"):
        convert_mmpose_state_dict(student, "teacher")
    with pytest.raises(ValueError, match="which"):
        convert_mmpose_state_dict(student, "ema")  # type: ignore[arg-type]
    with pytest.raises(PoseDataError, match="no backbone"):
        convert_mmpose_state_dict({"data_preprocessor.mean": torch.zeros(3)})
    with pytest.raises(PoseDataError, match="tensor"):
        convert_mmpose_state_dict({"backbone.x": [1, 2]})


def test_load_pth_with_numpy_meta(tmp_path: Path) -> None:
    _, student = _two_models()
    path = tmp_path / "ckpt.pth"
    meta = {"dataset_meta": {"sigmas": np.array([0.026, 0.025], dtype=np.float32)}, "epoch": np.int64(3)}
    torch.save({"meta": meta, "state_dict": {f"student.{k}": v for k, v in student.items()}}, path)
    loaded = load_mmpose_checkpoint(path)
    assert _same(loaded, student)
    st = tmp_path / "ckpt.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in student.items()}, str(st))
    assert _same(load_mmpose_checkpoint(st), student)
    with pytest.raises(PoseDataError, match="not found"):
        load_mmpose_checkpoint(tmp_path / "missing.pth")
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(PoseDataError, match=r"truncated\.pth"):
        load_mmpose_checkpoint(bad)


class _Payload:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("fmt", ["torch_zip", "raw_pickle"])
def test_load_refuses_code_payload(tmp_path: Path, fmt: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    obj = {"state_dict": {"backbone.w": torch.zeros(1)}, "meta": _Payload(marker)}
    if fmt == "torch_zip":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(PoseDataError, match="refused"):
        load_mmpose_checkpoint(path)
    assert not marker.exists()


# -- shapes, sizes, flip ------------------------------------------------------------------------------------------


def test_any_input_size_and_keypoint_count() -> None:
    torch.manual_seed(0)
    model = build_model("rtmpose-t", 5, (100, 130), out_indices=(2, 3, 4)).eval()
    x = torch.randn(3, 3, 130, 100)
    with torch.no_grad():
        feats = model.features(x)
        sx, sy = model(x)
        tx, ty = model.flip_test(x, [0, 2, 1, 4, 3])
    assert [f.shape[1] for f in feats] == [96, 192, 384]
    assert feats[-1].shape[-2:] == (5, 4)  # ceil(130/32), ceil(100/32)
    assert sx.shape == tx.shape == (3, 5, 200) and sy.shape == ty.shape == (3, 5, 260)
    assert model.simcc_bins == (200, 260)
    with pytest.raises(ValueError, match="feature map"):
        model(torch.randn(1, 3, 256, 192))


def test_flip_test_is_flip_equivariant() -> None:
    """flip_back(tta(x)) == tta(flip(x)) when flip_indices is an involution (exact in float arithmetic)."""
    torch.manual_seed(0)
    model = RTMPose("t", 17).eval()
    flip = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        tx, ty = model.flip_test(x, flip)
        fx, fy = model.flip_test(x.flip(-1), flip)
    bx, by = flip_simcc_back(tx, ty, flip)
    assert torch.allclose(bx, fx, atol=1e-6) and torch.allclose(by, fy, atol=1e-6)
    with pytest.raises(ValueError, match="flip_indices"):
        flip_simcc_back(tx, ty, [0, 1])


def test_head_init_and_batchnorm_settings() -> None:
    torch.manual_seed(0)
    model = RTMPose("s", 17)
    head = model.head
    assert abs(head.final_layer.weight.std().item() - 0.001) < 1e-4
    assert torch.count_nonzero(head.final_layer.bias) == 0
    for lin in (head.mlp[1], head.gau.uv, head.gau.o, head.cls_x, head.cls_y):
        assert abs(lin.weight.std().item() - 0.01) < 1e-3 and lin.bias is None
    for p in (head.gau.gamma, head.gau.beta):
        assert p.min() >= 0 and p.max() < 1 and p.std() > 0.2
    assert head.mlp[0].g.item() == 1 and head.gau.ln.g.item() == 1
    assert torch.all(head.gau.res_scale.scale == 1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-5 and m.momentum == 0.1 for m in bns)
    assert any(isinstance(m, nn.SiLU) for m in model.backbone.modules())


def test_sizes_table() -> None:
    """Stem / stage channels and block counts per size (docs/rtmpose-dwpose.md §1)."""
    from posedistill.models.cspnext import CSPNEXT_SIZES, cspnext_spec

    expected = {
        "t": ((12, 12, 24), (48, 96, 192, 384), (1, 1, 1, 1)),
        "s": ((16, 16, 32), (64, 128, 256, 512), (1, 2, 2, 1)),
        "m": ((24, 24, 48), (96, 192, 384, 768), (2, 4, 4, 2)),
        "l": ((32, 32, 64), (128, 256, 512, 1024), (3, 6, 6, 3)),
        "x": ((40, 40, 80), (160, 320, 640, 1280), (4, 8, 8, 4)),
    }
    for size, (stem, stages, blocks) in expected.items():
        spec = cspnext_spec(*CSPNEXT_SIZES[size])
        assert (spec.stem_channels, spec.stage_channels, spec.stage_blocks) == (stem, stages, blocks), size


def test_build_model_registry_and_build_args() -> None:
    names = model_names()
    for n in (
        "rtmpose-t",
        "rtmpose-x",
        "simplebaseline-res18",
        "simplebaseline-res50",
        "cspnext-m-heatmap",
        "hourglass-4stack",
    ):
        assert n in names
    with pytest.raises(ValueError, match="unknown model"):
        build_model("rtmpose-q")
    with torch.device("meta"):
        model = build_model("rtmpose-s", 133, (288, 384), out_indices=(3, 4))
        args = json.loads(json.dumps(model.build_args))
        assert args == {"name": "rtmpose-s", "num_keypoints": 133, "input_size": [288, 384], "out_indices": [3, 4]}
        again = build_model(**args)
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert again.head.cls_x.out_features == 576 and again.head.mlp[1].in_features == 108


def test_training_mode_forward_and_gradients() -> None:
    torch.manual_seed(0)
    model = RTMPose("t", 17).train()
    sx, sy = model(torch.randn(2, 3, 256, 192))
    (sx.logsumexp(-1).mean() + sy.logsumexp(-1).mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert model.backbone.stem[0].conv.weight.grad.abs().sum() > 0
