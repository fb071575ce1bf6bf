"""Multi-branch heatmap network (OKDHP): shared low-level layers, then N branches of the remaining layers and head,
plus the FAU that mixes the branches' final heatmaps into an ensemble.

Any heatmap model of :mod:`posedistill.models` splits at ``num_shared``:

| model | shared trunk | one branch |
|---|---|---|
| ``hourglass-{n}stack`` | stem + the first ``num_shared`` stacks (0 ≤ num_shared < n) | the other stacks |
| SimpleBaseline / CSPNeXt heatmap | the first ``num_shared`` of ``stages()`` (stem, stages 1-4, head) | the rest |

Every branch is a model spec (``{"name": ..., **build_model keywords}``, K and input size shared), by default the
base model's. Branches may differ in depth or width (OKDHP's unbalanced variant): each one is built as a complete
model and its own first ``num_shared`` parts are dropped. When a branch expects another width than the trunk
produces, a 1×1 conv-BN-ReLU adapter is put between them.

A branch **deploys** to a plain model — ``build_model(**branch_build_args(b))`` with the trunk's and the branch's
weights loaded part by part, no OKDHP code needed — when its own first ``num_shared`` parts have exactly the
trunk's parameter names and shapes and it needs no adapter. Branches of the same family and width always deploy
(e.g. hourglass-4stack and hourglass-6stack on a 2-stack trunk); a branch with an adapter, or a ResNet-34 branch on
a ResNet-18 trunk (its layer1 has more blocks), trains fine but cannot be deployed.

Outputs for a B×3×H×W input (heatmaps B×K×H/4×W/4):

- ``forward_branches(x) -> MultiBranchOutput``: the trunk's stem and output features, the shared hourglass stacks'
  heatmaps, and every branch's heatmaps (intermediate stacks first, final last);
- ``ensemble(out) -> (ensemble, weights B×N×K)`` with the FAU (or the plain mean without one);
- ``forward_all(x)``: the flat list [shared..., branch 0..., branch 1..., ...] (the official 8-output order for the
  4-stack / 2-shared / 3-branch hourglass); ``forward(x)``: the ``default_output`` (a branch's final heatmap or
  the ensemble); ``features(x)``: [stem feature, trunk output].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from posedistill.models.base_models import build_base_model
from posedistill.models.fau import FAU, aggregate
from posedistill.models.hourglass import HourglassStack, StackedHourglass

FAU_INPUTS = ("auto", "stem", "shared")


def split_parts(model: nn.Module, num_shared: int) -> tuple[list[nn.Module], list[nn.Module]]:
    """(shared parts, remaining parts) of a heatmap model, sharing its parameters; see the module docstring."""
    if isinstance(model, StackedHourglass):
        n = len(model.stacks)
        if not 0 <= num_shared < n:
            raise ValueError(f"a {n}-stack hourglass shares 0..{n - 1} stacks, got num_shared={num_shared}")
        return [model.stem, *model.stacks[:num_shared]], list(model.stacks[num_shared:])
    if hasattr(model, "stages"):
        stages = list(model.stages())
        if not 0 < num_shared < len(stages):
            raise ValueError(
                f"{type(model).__name__} has {len(stages)} stages (backbone stages + head); num_shared must be in "
                f"1..{len(stages) - 1}, got {num_shared}"
            )
        return stages[:num_shared], stages[num_shared:]
    raise TypeError(f"{type(model).__name__} cannot be split into branches (no hourglass stacks, no stages())")


def run_parts(parts: Sequence[nn.Module], x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Run parts in order: (last output, heatmaps of the hourglass stacks among them)."""
    heatmaps = []
    for part in parts:
        if isinstance(part, HourglassStack):
            x, h = part(x)
            heatmaps.append(h)
        else:
            x = part(x)
    return x, heatmaps


def _signature(parts: Sequence[nn.Module]) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{i}.{k}", tuple(v.shape)) for i, p in enumerate(parts) for k, v in p.state_dict().items()]


@torch.no_grad()
def _probe_channels(parts: Sequence[nn.Module], size: int = 64) -> tuple[int, int]:
    """(channels after the first part, channels after the last) on a small zero input, without touching BN stats."""
    modes = [m.training for m in parts]
    for m in parts:
        m.eval()
    try:
        first = parts[0](torch.zeros(1, 3, size, size))
        last, _ = run_parts(parts[1:], first)
    finally:
        for m, mode in zip(parts, modes):
            m.train(mode)
    return int(first.shape[1]), int(last.shape[1])


@dataclass
class MultiBranchOutput:
    """Everything one forward produces; heatmaps are B×K×h×w."""

    stem: Tensor  # output of the trunk's first part (the official FAU input)
    feature: Tensor  # trunk output, the input of every branch (before its adapter)
    shared: list[Tensor]  # heatmaps of the shared hourglass stacks (empty for other models)
    branches: list[list[Tensor]]  # per branch: every supervised output, the final one last

    def finals(self) -> list[Tensor]:
        """Each branch's final heatmap."""
        return [outs[-1] for outs in self.branches]

    def flat(self) -> list[Tensor]:
        """[shared..., branch 0..., branch 1..., ...]."""
        return [*self.shared, *(h for outs in self.branches for h in outs)]


class Branch(nn.Module):
    """Optional width adapter + the branch's private parts."""

    def __init__(self, parts: Sequence[nn.Module], adapter: nn.Module | None = None) -> None:
        super().__init__()
        self.adapter = adapter
        self.parts = nn.ModuleList(parts)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Shared feature → every supervised heatmap of the branch (one per hourglass stack, else one)."""
        if self.adapter is not None:
            x = self.adapter(x)
        x, heatmaps = run_parts(self.parts, x)
        return heatmaps if heatmaps else [x]


def _adapter(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


def resolve_branch_specs(base: dict[str, Any], num_branches: int, branches: Sequence[dict] | None) -> list[dict]:
    """Full model specs of the branches: ``branches[b]`` (``name`` and/or keywords) merged over ``base``."""
    if "name" not in base:
        raise ValueError(f"the base model spec needs a 'name', got {base}")
    if not branches:
        if num_branches < 2:
            raise ValueError(f"OKDHP needs at least 2 branches, got num_branches={num_branches}")
        return [dict(base) for _ in range(num_branches)]
    if len(branches) < 2:
        raise ValueError(f"OKDHP needs at least 2 branches, got {len(branches)}")
    specs = []
    for b, override in enumerate(branches):
        if not isinstance(override, dict):
            raise ValueError(f"branch {b}: expected a mapping of model overrides, got {override!r}")
        bad = {"num_keypoints", "input_size"} & set(override)
        if bad:
            raise ValueError(f"branch {b}: {sorted(bad)} are shared by every branch; set them on the base model")
        specs.append({**base, **override})
    return specs


class MultiBranchHeatmapModel(nn.Module):
    """Shared trunk + N branches (+ FAU); see the module docstring.

    Args:
        num_keypoints: K.
        input_size: (w, h), metadata for the built models.
        base: spec of the model whose first ``num_shared`` parts form the trunk (``{"name": ..., **keywords}``).
        num_shared: where to split (shared hourglass stacks, or shared entries of ``stages()``).
        branches: full spec of every branch (:func:`resolve_branch_specs`).
        fau: FAU keywords (``channels``, ``hidden``, ``kernel_sizes``), or None for the plain mean of the branches.
        fau_input: ``stem`` (the trunk's first part, as the official code), ``shared`` (the trunk output), or
            ``auto`` (stem for hourglasses, shared otherwise).
        legacy_ensemble: mix the last N outputs of ``forward_all`` as the official code does (which drops
            branch 0's final heatmap and mixes in an intermediate one) instead of every branch's final heatmap.
        default_output: what ``forward`` returns: a branch index or ``"ensemble"``.
        init: called on every full model right after it is built (e.g. to load pretrained weights), before
            the split.
    """

    def __init__(
        self,
        num_keypoints: int,
        input_size: Sequence[int],
        base: dict[str, Any],
        num_shared: int,
        branches: Sequence[dict[str, Any]],
        fau: dict[str, Any] | None = None,
        fau_input: str = "auto",
        legacy_ensemble: bool = False,
        default_output: int | str = 0,
        init: Callable[[nn.Module], None] | None = None,
    ) -> None:
        super().__init__()
        if fau_input not in FAU_INPUTS:
            raise ValueError(f"fau_input must be one of {FAU_INPUTS}, got {fau_input!r}")
        self.num_keypoints = int(num_keypoints)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_shared = int(num_shared)
        self.base_spec = dict(base)
        self.branch_specs = [dict(s) for s in branches]
        self.num_branches = len(self.branch_specs)
        self.legacy_ensemble = bool(legacy_ensemble)

        base_model = self._build(self.base_spec, init)
        self.is_hourglass = isinstance(base_model, StackedHourglass)
        trunk, _ = split_parts(base_model, self.num_shared)
        self.trunk = nn.ModuleList(trunk)
        stem_channels, channels = _probe_channels(trunk)
        trunk_signature = _signature(trunk)

        self.branches = nn.ModuleList()
        self.deployable: list[bool] = []
        self.not_deployable_reason: list[str | None] = []
        for b, spec in enumerate(self.branch_specs):
            model = base_model if b == 0 and spec == self.base_spec else self._build(spec, init)
            if type(model) is not type(base_model):
                raise ValueError(
                    f"branch {b} ({spec['name']}) is a {type(model).__name__}, the trunk a "
                    f"{type(base_model).__name__}: every branch must be of the trunk's model family"
                )
            own_shared, rest = split_parts(model, self.num_shared)
            wanted = _probe_channels(own_shared)[1]
            adapter = _adapter(channels, wanted) if wanted != channels else None
            self.branches.append(Branch(rest, adapter))
            reason = None
            if adapter is not None:
                reason = f"its width {wanted} differs from the trunk's {channels} (it has a channel adapter)"
            elif _signature(own_shared) != trunk_signature:
                reason = f"its own first {self.num_shared} parts differ from the trunk's (layer count or shapes)"
            self.deployable.append(reason is None)
            self.not_deployable_reason.append(reason)

        if fau_input == "auto":
            fau_input = "stem" if self.is_hourglass else "shared"
        self.fau_input = fau_input
        self.fau_args = None if fau is None else dict(fau)
        if fau is None:
            self.fau: FAU | None = None
        else:
            in_ch = stem_channels if fau_input == "stem" else channels
            self.fau = FAU(in_ch, self.num_keypoints, self.num_branches, **fau)
        self.default_output = default_output
        self.check_output(default_output)
        self.build_args = {
            "name": "multibranch",
            "num_keypoints": self.num_keypoints,
            "input_size": list(self.input_size),
            "base": self.base_spec,
            "num_shared": self.num_shared,
            "branches": self.branch_specs,
            "fau": self.fau_args,
            "fau_input": self.fau_input,
            "legacy_ensemble": self.legacy_ensemble,
            "default_output": default_output,
        }

    def _build(self, spec: dict[str, Any], init: Callable[[nn.Module], None] | None) -> nn.Module:
        kw = {k: v for k, v in spec.items() if k != "name"}
        try:
            model = build_base_model(spec["name"], self.num_keypoints, input_size=self.input_size, **kw)
        except TypeError as e:  # keywords of the base model that another family does not take
            raise ValueError(f"cannot build {spec}: {e}") from None
        if init is not None:
            init(model)
        return model

    def check_output(self, which: int | str) -> None:
        if which == "ensemble":
            return
        if isinstance(which, bool) or not isinstance(which, int) or not 0 <= which < self.num_branches:
            raise ValueError(f"output must be 'ensemble' or a branch index 0..{self.num_branches - 1}, got {which!r}")

    # ------------------------------------------------------------------------------------------ forward
    def forward_branches(self, x: Tensor) -> MultiBranchOutput:
        stem = self.trunk[0](x)
        feature, shared = run_parts(self.trunk[1:], stem)
        return MultiBranchOutput(stem, feature, shared, [branch(feature) for branch in self.branches])

    def ensemble_inputs(self, out: MultiBranchOutput) -> list[Tensor]:
        """The N heatmaps the ensemble mixes: every branch's final one (or the official code's last N outputs)."""
        return out.flat()[-self.num_branches :] if self.legacy_ensemble else out.finals()

    def branch_weights(self, out: MultiBranchOutput, detach_input: bool = False) -> Tensor:
        """FAU weights B×N×K (uniform 1/N without an FAU)."""
        ref = out.branches[0][-1]
        if self.fau is None:
            return ref.new_full((ref.shape[0], self.num_branches, self.num_keypoints), 1.0 / self.num_branches)
        feat = out.stem if self.fau_input == "stem" else out.feature
        return self.fau(feat.detach() if detach_input else feat)

    def ensemble(self, out: MultiBranchOutput, detach_input: bool = False) -> tuple[Tensor, Tensor]:
        """(ensemble heatmaps B×K×h×w, branch weights B×N×K)."""
        weights = self.branch_weights(out, detach_input)
        return aggregate(weights, self.ensemble_inputs(out)), weights

    def output(self, x: Tensor, which: int | str) -> Tensor:
        """A branch's final heatmap, or the ensemble."""
        self.check_output(which)
        out = self.forward_branches(x)
        return self.ensemble(out)[0] if which == "ensemble" else out.branches[which][-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.output(x, self.default_output)

    def forward_all(self, x: Tensor) -> list[Tensor]:
        return self.forward_branches(x).flat()

    def features(self, x: Tensor) -> list[Tensor]:
        stem = self.trunk[0](x)
        return [stem, run_parts(self.trunk[1:], stem)[0]]

    # ------------------------------------------------------------------------------------------ deployment
    def branch_build_args(self, b: int) -> dict[str, Any]:
        """``build_model`` keywords of branch ``b`` as a plain model."""
        spec = self.branch_specs[b]
        return {"num_keypoints": self.num_keypoints, "input_size": list(self.input_size), **spec}

    def branch_model(self, b: int) -> nn.Module:
        """Branch ``b`` as a plain model (trunk + branch weights, copied), in this network's train/eval mode.

        Its ``forward`` equals ``out.branches[b][-1]`` and its ``forward_all`` equals ``out.shared +
        out.branches[b]``. Raises ValueError for a branch that cannot be deployed (see the module docstring).
        """
        if not 0 <= b < self.num_branches:
            raise ValueError(f"branch must be in 0..{self.num_branches - 1}, got {b}")
        if not self.deployable[b]:
            raise ValueError(f"branch {b} ({self.branch_specs[b]}) cannot be deployed as a plain model: "
                             f"{self.not_deployable_reason[b]}")  # fmt: skip
        args = self.branch_build_args(b)
        model = build_base_model(**args)
        shared, rest = split_parts(model, self.num_shared)
        for dst, src in [*zip(shared, self.trunk), *zip(rest, self.branches[b].parts)]:
            dst.load_state_dict(src.state_dict())
        device = next(self.parameters()).device
        return model.to(device).train(self.training)


def build_multibranch(
    num_keypoints: int = 17,
    input_size: Sequence[int] = (192, 256),
    base: dict[str, Any] | None = None,
    num_shared: int = 2,
    num_branches: int = 3,
    branches: Sequence[dict[str, Any]] | None = None,
    fau: dict[str, Any] | None = None,
    fau_input: str = "auto",
    legacy_ensemble: bool = False,
    default_output: int | str = 0,
    name: str = "multibranch",
    init: Callable[[nn.Module], None] | None = None,
) -> MultiBranchHeatmapModel:
    """Build from the keywords of ``MultiBranchHeatmapModel.build_args`` (``name`` is ignored). ``branches``
    are per-branch overrides of ``base`` (or full specs); without them ``num_branches`` copies of ``base``."""
    if name != "multibranch":
        raise ValueError(f"not a multi-branch spec: name={name!r}")
    base = dict(base or {"name": "hourglass-4stack"})
    specs = resolve_branch_specs(base, num_branches, branches)
    return MultiBranchHeatmapModel(
        num_keypoints, input_size, base, num_shared, specs, fau=fau, fau_input=fau_input,
        legacy_ensemble=legacy_ensemble, default_output=default_output, init=init,
    )  # fmt: skip
