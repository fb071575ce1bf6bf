"""Heatmap models: SimpleBaseline (ResNet), CSPNeXt heatmap, stacked hourglass. Shapes, sizes, splits, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from posedistill.models import (
    CSPNeXt,
    HourglassStack,
    ResNet,
    StackedHourglass,
    build_model,
    count_flops,
    count_params,
    hourglass_stem,
    run_stacks,
)

# (name, extra build kwargs, input h×w). Deconv-head models need multiples of 32, the hourglass multiples of 4
# and at least 64 (four 2× poolings from stride 4).
HEATMAP_CASES = [
    ("simplebaseline-res18", {}, (128, 96)),
    ("simplebaseline-res50", {}, (64, 64)),
    ("cspnext-t-heatmap", {}, (96, 128)),
    ("hourglass-2stack", {"channels": 64}, (128, 96)),
    ("hourglass-1stack", {"channels": 32}, (80, 68)),
]


@pytest.mark.parametrize("name, kw, hw", HEATMAP_CASES)
def test_heatmap_shapes(name: str, kw: dict, hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    h, w = hw
    model = build_model(name, num_keypoints=13, input_size=(w, h), **kw).eval()
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        out = model(x)
        outs = model.forward_all(x)
        feats = model.features(x)
    assert out.shape == (1, 13, h // 4, w // 4)
    assert torch.equal(outs[-1], out)
    assert len(outs) == (int(name.split("-")[1][0]) if name.startswith("hourglass") else 1)
    assert all(o.shape == out.shape for o in outs)
    assert isinstance(feats, list) and feats and all(f.shape[0] == 1 for f in feats)


def test_hourglass_stacks_and_features() -> None:
    torch.manual_seed(0)
    model = StackedHourglass(num_stacks=3, num_keypoints=16, channels=64).eval()
    assert [s.merge for s in model.stacks] == [True, True, False]
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        outs = model.forward_all(x)
        feats = model.features(x)
        final = model(x)
    assert len(outs) == 3 and all(o.shape == (1, 16, 64, 64) for o in outs)
    assert torch.equal(final, outs[-1])
    assert len(feats) == 4 and all(f.shape == (1, 64, 64, 64) for f in feats)
    # the last feature map is what the last stack scores
    assert torch.allclose(model.stacks[-1].score(feats[-1]), final)
    # running stem + stacks by hand (what OKDHP's branches do) gives the same outputs
    with torch.no_grad():
        _, by_hand = run_stacks(model.stacks, model.stem(x))
    assert all(torch.equal(a, b) for a, b in zip(by_hand, outs))


def test_hourglass_odd_input_size() -> None:
    """Sizes that are not multiples of 64 still work (upsampling to the skip branch's size)."""
    model = StackedHourglass(num_stacks=1, num_keypoints=4, channels=32).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 200, 136))
    assert out.shape == (1, 4, 50, 34)


def test_hourglass_sizes_match_okdhp() -> None:
    """Parameter counts of the FPD/OKDHP hourglass (docs/okdhp-dkd.md A.3), K = 16, width 256."""
    with torch.device("meta"):
        assert round(count_params(StackedHourglass(4, 16)) / 1e6, 2) == 13.02
        assert round(count_params(StackedHourglass(8, 16)) / 1e6, 2) == 25.59
        assert round(count_params(hourglass_stem(256)) / 1e6, 2) == 0.51
        shared = [HourglassStack(256, 16, merge=True) for _ in range(2)]
        branch = [HourglassStack(256, 16, merge=True), HourglassStack(256, 16, merge=False)]
        assert round(sum(count_params(s) for s in shared) / 1e6, 2) == 6.29
        assert round(sum(count_params(s) for s in branch) / 1e6, 2) == 6.22
        # conv MACs at 256×256 (A.3: 15.36 G for 4 stacks, 8.99 G for 2, 28.09 G for 8)
        for n, gmacs in ((2, 8.99), (4, 15.36), (8, 28.09)):
            macs = count_flops(StackedHourglass(n, 16), (1, 3, 256, 256), mmengine_compatible=False)
            assert round(macs / 1e9, 2) == gmacs, n


def test_resnet_sizes() -> None:
    """ResNet backbones without the classifier: torchvision's counts minus fc."""
    with torch.device("meta"):
        assert count_params(ResNet(18)) == 11_689_512 - 513_000
        assert count_params(ResNet(50)) == 25_557_032 - 2_049_000
        assert round(count_params(build_model("simplebaseline-res50")) / 1e6, 1) == 34.0  # mmpose model zoo
    names = [n for n, _ in ResNet(18).named_parameters()]
    assert names[:2] == ["conv1.weight", "bn1.weight"] and "layer4.1.bn2.bias" in names
    assert "layer2.0.downsample.0.weight" in names


def test_backbone_out_indices() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 128, 96)
    for backbone in (ResNet(18, out_indices=(0, 1, 2, 3, 4)), CSPNeXt(0.167, 0.375, out_indices=(0, 1, 2, 3, 4))):
        with torch.no_grad():
            feats = backbone.eval()(x)
        first_stride = 4 if isinstance(backbone, ResNet) else 2  # ResNet's stem includes the max-pool
        assert [f.shape[-1] for f in feats] == [96 // s for s in (first_stride, 4, 8, 16, 32)]
        assert tuple(f.shape[1] for f in feats) == backbone.out_channels
    with pytest.raises(ValueError, match="out_indices"):
        ResNet(18, out_indices=(5,))


@pytest.mark.parametrize("name", ["simplebaseline-res18", "cspnext-t-heatmap"])
def test_split_into_shared_and_rest(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 17).eval()
    shared, rest = model.split(2)
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        assert torch.equal(rest(shared(x)), model(x))
    ids = {id(p) for p in model.parameters()}
    assert {id(p) for p in shared.parameters()} | {id(p) for p in rest.parameters()} == ids
    assert not {id(p) for p in shared.parameters()} & {id(p) for p in rest.parameters()}
    with pytest.raises(ValueError, match="num_shared"):
        model.split(0)


def test_heatmap_head_matches_mmpose_names_and_init() -> None:
    torch.manual_seed(0)
    model = build_model("cspnext-m-heatmap", 17)
    keys = [k for k in model.state_dict() if k.startswith("head.")]
    assert "head.deconv_layers.0.weight" in keys and "head.deconv_layers.7.running_var" in keys
    assert "head.final_layer.bias" in keys
    assert abs(model.head.deconv_layers[0].weight.std().item() - 0.001) < 1e-4
    assert model.backbone.out_channels == (768,)


@pytest.mark.parametrize("name", ["simplebaseline-res18", "cspnext-t-heatmap", "hourglass-2stack"])
def test_gradients_flow(name: str) -> None:
    torch.manual_seed(0)
    kw = {"channels": 32} if name.startswith("hourglass") else {}
    model = build_model(name, 5, **kw).train()
    outs = model.forward_all(torch.randn(2, 3, 64, 64))
    sum((o - 1.0).pow(2).mean() for o in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad.abs().sum() > 0
