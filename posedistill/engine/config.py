"""Training configs: YAML -> typed dataclasses, validated at load.

A config file is flat YAML with the sections below; every key has a default except the data sources' ``path``.
At most one level of inheritance: ``base: other.yaml`` (relative to the file) is read first and the file's keys are
merged over it (mappings merge key by key; lists and scalars replace). ``--set a.b=c`` overrides are applied last;
``c`` is typed as a YAML scalar (``3`` int, ``0.5`` float, ``true`` bool, ``null``, ``[1, 2]`` list), and list items
are addressed by index (``data.train.0.path=...``).

Errors name the file (or the ``--set`` override) that set the offending key, the dotted key and what was expected,
and suggest the closest valid key for a misspelt one::

    configs/x.yaml: key 'train.epoch': unknown key; did you mean 'epochs'?

Relative data paths are resolved against the current directory (run from the repository root, like mmpose).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from posedistill.fileio import atomic_write_text


class ConfigError(ValueError):
    """A config problem; the message names the file (or override) and the dotted key."""


# --------------------------------------------------------------------------------------------------- sections


@dataclass
class ModelConfig:
    """The trained network. ``build_model(name, num_keypoints, input_size=(w, h), **args)``."""

    name: str = "rtmpose-t"
    input_size: list[int] = field(default_factory=lambda: [192, 256], metadata={"len": 2, "min": 1})  # (w, h)
    # posedistill checkpoint (folder or meta.json) or an official mmpose / DWPose .pth to start from; "rtmdet-nano":
    # rtmpose-nano's backbone from the shipped person detector (posedistill.models.rtmdet_backbone)
    pretrained: str | None = None
    # extra keyword arguments of build_model (e.g. {"backbone_only_pretrained": ...})
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceConfig:
    """One annotation source. ``indices``: ``"start:stop"`` (0-based, stop excluded) or a list of indices into the
    reader's instance list (for LSP / LSPet: the image order)."""

    path: str
    format: str | None = None  # None: detected from the file
    image_root: str | None = None
    layout: str | None = None  # source layout when the reader needs it; default data.layout
    indices: str | list[int] | None = None
    # validation with detected boxes (COCO format only): a COCO detection-results file whose person boxes are
    # evaluated against the keypoint annotations of ``path`` (mmpose's bbox_file)
    detections: str | None = None
    detection_score_thr: float = 0.0
    # generate synthetic COCO-WholeBody data into ``path`` first when it does not exist yet:
    # keyword arguments of posedistill.data.synthetic.generate_dataset (num_images, size, people, difficulty, seed)
    synthetic: dict[str, Any] | None = None


@dataclass
class DataConfig:
    layout: str = "coco"
    train: list[SourceConfig] = field(default_factory=list)
    val: list[SourceConfig] = field(default_factory=list)
    # fields of posedistill.data.augment.AugConfig (stage-1 augmentation; stage 2 is derived with .stage2())
    aug: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    type: str = field(default="adamw", metadata={"choices": ("adamw", "adam", "sgd")})
    lr: float = field(default=4e-3, metadata={"min": 0.0})
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999], metadata={"len": 2})
    eps: float = 1e-8
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    norm_decay: bool = False  # decay norm-layer weights/biases too
    bias_decay: bool = False


@dataclass
class ScheduleConfig:
    kind: str = field(default="cosine", metadata={"choices": ("cosine", "step", "constant")})
    warmup_iters: int = field(default=1000, metadata={"min": 0})
    warmup_start_factor: float = field(default=1e-5, metadata={"min": 0.0})
    # None: epochs // 2; >= epochs: no cosine (DWPose stage 2 keeps stage 1's schedule and stops at 60 epochs)
    cosine_begin_epoch: int | None = field(default=None, metadata={"min": 0})
    eta_min_factor: float = 0.05  # cosine floor as a fraction of lr
    milestones: list[int] = field(default_factory=list)  # step: epochs at which lr *= gamma
    gamma: float = 0.1


@dataclass
class EMAConfig:
    enabled: bool = True
    momentum: float = 2e-4
    gamma: float = 2000.0
    update_buffers: bool = True


@dataclass
class TrainConfig:
    epochs: int = field(default=420, metadata={"min": 1})
    batch_size: int = field(default=32, metadata={"min": 1})  # per process
    num_workers: int = field(default=2, metadata={"min": 0})
    amp: str = field(default="none", metadata={"choices": ("none", "bf16", "fp16")})
    grad_clip: float | None = None  # max L2 norm of all gradients
    checkpoint_interval: int = field(default=10, metadata={"min": 1})
    # 0-based epoch from which the stage-2 augmentation is used (>= epochs: never, as in DWPose stage 2)
    aug_switch_epoch: int | None = field(default=None, metadata={"min": 0})
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:1
    val_interval: int = field(default=10, metadata={"min": 1})
    best_metric: str = "auto"  # auto: AP for OKS layouts, PCK otherwise; or any key of the validation metrics
    log_interval: int = field(default=50, metadata={"min": 1})
    sync_bn: bool = False  # SyncBatchNorm under DDP (CUDA only)
    tensorboard: bool = True  # also write TensorBoard events when the tensorboard package is installed
    progress: bool = True  # tqdm bars (rank 0)
    drop_last: bool = True
    # shuffle the training order each epoch from (seed, epoch). Off, N DDP processes see exactly the global batches
    # of one process with N x batch_size (the torch DistributedSampler's order differs from the 1-process one)
    shuffle: bool = True


@dataclass
class EvalConfig:
    flip_test: bool = True
    batch_size: int | None = None  # default: train.batch_size
    # posedistill.eval.evaluate_predictions's metrics, checked at load: a typo fails before the evaluation runs
    metric: str = field(default="auto", metadata={"choices": ("auto", "coco", "pck", "pckh")})
    args: dict[str, Any] = field(default_factory=dict)  # extra evaluate_predictions keyword arguments


@dataclass
class MethodConfig:
    """``type`` names the module ``posedistill.distill.<type>``, whose ``from_config(cfg)`` builds the method;
    ``args`` are that method's own options (validated by it)."""

    type: str = "supervised"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    # posedistill.codecs.build_codec arguments without input_size (taken from model.input_size), e.g.
    # {type: simcc, sigma: [4.9, 5.66], split_ratio: 2.0}
    codec: dict[str, Any] = field(default_factory=lambda: {"type": "simcc"})
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    work_dir: str | None = None  # default: work_dirs/<config file stem>

    @property
    def input_size(self) -> tuple[int, int]:
        """(w, h) of the network input."""
        return int(self.model.input_size[0]), int(self.model.input_size[1])

    def codec_args(self) -> dict[str, Any]:
        return {**self.codec, "input_size": list(self.input_size)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------------- parsing


class _Origins:
    """Which file (or --set override) set each dotted key, for error messages."""

    def __init__(self, default: str):
        self.default = default
        self.by_key: dict[str, str] = {}

    def record(self, data: Any, source: str, prefix: str = "") -> None:
        if prefix:
            self.by_key[prefix] = source
        if isinstance(data, dict):
            for k, v in data.items():
                self.record(v, source, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(data, list):
            for i, v in enumerate(data):
                self.record(v, source, f"{prefix}.{i}")

    def of(self, key: str) -> str:
        parts = key.split(".")
        while parts:
            k = ".".join(parts)
            if k in self.by_key:
                return self.by_key[k]
            parts.pop()
        return self.default

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.of(key)}: key {key!r}: {problem}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is Any:
        return "any value"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {_type_name(args[0])}s" if args else "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", type(None): "null"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, key: str, origins: _Origins) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise origins.error(key, f"expected {_type_name(tp)}, got null")
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key, origins)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise origins.error(key, f"expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if dataclasses.is_dataclass(tp):
        return parse_section(tp, value, key, origins)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise origins.error(key, f"expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
        args = typing.get_args(tp)
        if origin is tuple and args and Ellipsis not in args:
            if len(args) != len(value):
                raise origins.error(key, f"expected a list of {len(args)} values, got {len(value)}")
            return tuple(_convert(v, a, f"{key}.{i}", origins) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_convert(v, item, f"{key}.{i}", origins) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise origins.error(key, f"expected a mapping, got {value!r} ({type(value).__name__})")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise origins.error(key, f"expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _check_meta(value: Any, meta: typing.Mapping[str, Any], key: str, origins: _Origins) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        close = difflib.get_close_matches(str(value), [str(c) for c in meta["choices"]], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise origins.error(key, f"{value!r} is not one of {list(meta['choices'])}{hint}")
    if "len" in meta and len(value) != meta["len"]:
        raise origins.error(key, f"expected {meta['len']} values, got {len(value)}")
    if "min" in meta:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v < meta["min"]:
                raise origins.error(key, f"must be >= {meta['min']}, got {v}")


def parse_section(cls: type, raw: Any, prefix: str, origins: _Origins | str) -> Any:
    """Build dataclass ``cls`` from mapping ``raw``; ``prefix`` is the dotted key of the section (for messages).

    Usable by methods for their own ``method.args`` dataclass: ``parse_section(MyArgs, cfg.method.args,
    "method.args", cfg.source)``.
    """
    if isinstance(origins, str):
        origins = _Origins(origins)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise origins.error(prefix or "<top>", f"expected a mapping, got {raw!r} ({type(raw).__name__})")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for k, v in raw.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in fields:
            close = difflib.get_close_matches(str(k), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(fields)}"
            raise origins.error(key, f"unknown key{hint}")
        value = _convert(v, hints[k], key, origins)
        _check_meta(value, fields[k].metadata, key, origins)
        kwargs[k] = value
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        key = f"{prefix}.{missing[0]}" if prefix else missing[0]
        raise origins.error(key, "missing required key")
    return cls(**kwargs)


def _merge(base: dict, child: dict) -> dict:
    out = dict(base)
    for k, v in child.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; expected a YAML config (configs/*.yaml)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=c"`` -> ("a.b", YAML-typed c)."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. train.epochs=10")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {text}: empty key")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text}: value is not valid YAML: {e}") from None
    return key, parsed


def _new_prefixes(data: dict, key: str) -> list[str]:
    """The dotted prefixes of ``key`` (``a``, ``a.b``, ...) that ``data`` does not hold yet."""
    parts = key.split(".")
    node: Any = data
    for i, p in enumerate(parts):
        if isinstance(node, dict) and node.get(p) is not None:
            node = node[p]
        elif isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        else:
            return [".".join(parts[: j + 1]) for j in range(i, len(parts))]
    return []


def _apply_override(data: dict, key: str, value: Any, label: str) -> None:
    parts = key.split(".")
    node: Any = data
    for i, p in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not p.isdigit() or int(p) >= len(node):
                raise ConfigError(f"{label}: key {where!r}: no list item {p} (the list has {len(node)} items)")
            node = node[int(p)]
        elif isinstance(node, dict):
            if node.get(p) is None:
                node[p] = {}
            node = node[p]
        else:
            raise ConfigError(f"{label}: key {where!r}: cannot set a key inside a {type(node).__name__}")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) > len(node):
            raise ConfigError(f"{label}: key {key!r}: no list item {last} (the list has {len(node)} items)")
        if int(last) == len(node):
            node.append(value)
        else:
            node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"{label}: key {key!r}: cannot set a key inside a {type(node).__name__}")


def config_from_dict(data: dict, source: str = "<config>", origins: _Origins | None = None) -> Config:
    """Validate a plain mapping (already merged) into a :class:`Config`."""
    origins = origins or _Origins(source)
    data = dict(data)
    data.pop("base", None)
    cfg = parse_section(Config, data, "", origins)
    _semantic_checks(cfg, origins)
    cfg.source = source  # type: ignore[attr-defined]
    return cfg


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read ``path`` (and its ``base:``), apply ``--set`` overrides, validate; raises :class:`ConfigError`."""
    path = Path(path)
    own = _read_yaml(path)
    data = own
    origins = _Origins(str(path))
    base_ref = data.get("base")
    if base_ref is not None:
        if not isinstance(base_ref, str):
            raise ConfigError(f"{path}: key 'base': expected a file name, got {base_ref!r}")
        base_path = (path.parent / base_ref).resolve()
        base = _read_yaml(base_path)
        if "base" in base:
            raise ConfigError(
                f"{base_path}: key 'base': this file is already the base of {path}; "
                "configs allow at most one level of inheritance"
            )
        origins.record(base, str(base_path))
        data = _merge(base, {k: v for k, v in data.items() if k != "base"})
    origins.record({k: v for k, v in own.items() if k != "base"}, str(path))
    for text in overrides:
        key, value = parse_override(text)
        label = f"--set {text}"
        new = _new_prefixes(data, key)
        _apply_override(data, key, value, label)
        for prefix in new:  # keys the override created (a misspelt section) are blamed on it, not on the file
            origins.by_key[prefix] = label
        origins.by_key[key] = label
        origins.record(value, label, key)
    cfg = config_from_dict(data, str(path), origins)
    cfg.source = str(path)  # type: ignore[attr-defined]
    return cfg


def _semantic_checks(cfg: Config, origins: _Origins) -> None:
    from posedistill.layouts import get_layout

    try:
        get_layout(cfg.data.layout)
    except (KeyError, ValueError) as e:
        raise origins.error("data.layout", str(e).strip("'\"")) from None
    if not isinstance(cfg.codec.get("type"), str):
        raise origins.error("codec.type", "expected a codec type name such as 'simcc' or 'heatmap'")
    if "input_size" in cfg.codec:
        raise origins.error("codec.input_size", "set model.input_size instead; the codec takes it from there")
    for i, src in enumerate([*cfg.data.train, *cfg.data.val]):
        part = "train" if i < len(cfg.data.train) else "val"
        j = i if part == "train" else i - len(cfg.data.train)
        if isinstance(src.indices, str):
            try:
                parse_indices(src.indices)
            except ValueError as e:
                raise origins.error(f"data.{part}.{j}.indices", str(e)) from None
    if cfg.data.aug:
        try:
            from posedistill.data.augment import AugConfig
        except ImportError:  # data package not installed in this checkout: checked when the dataset is built
            return
        if dataclasses.is_dataclass(AugConfig):
            parse_section(AugConfig, cfg.data.aug, "data.aug", origins)


def parse_indices(spec: str | list[int] | None) -> slice | list[int] | None:
    """``"a:b"`` -> slice(a, b); a list stays a list; None -> None."""
    if spec is None or isinstance(spec, list):
        return spec
    parts = spec.split(":")
    if len(parts) != 2:
        raise ValueError(f"expected 'start:stop' (0-based, stop excluded) or a list of indices, got {spec!r}")
    try:
        start = int(parts[0]) if parts[0].strip() else None
        stop = int(parts[1]) if parts[1].strip() else None
    except ValueError:
        raise ValueError(f"expected integers in 'start:stop', got {spec!r}") from None
    return slice(start, stop)


# --------------------------------------------------------------------------------------------------- dumping


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)


def dump_json(cfg: Config) -> str:
    return json.dumps(cfg.to_dict(), indent=2)


def save_config(cfg: Config, path: str | Path) -> None:
    atomic_write_text(path, dump_yaml(cfg))
