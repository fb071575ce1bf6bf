"""Config -> the pieces the trainer and ``posedistill eval`` need: the method, the datasets, checkpoint meta.

Data sources (``data.train`` / ``data.val``) are read with ``posedistill.data.readers.read_dataset``; ``indices``
selects part of a source (for LSP / LSPet the image order: ``"0:2500"`` = images 1-2500); a source with a
``synthetic`` section is generated first when its ``path`` does not exist. Training keeps what a top-down trainer
uses (``training_instances``: no crowd, a labelled joint, a non-empty box); validation predicts every instance
that can be cropped and scores against all of them (crowd regions included, as COCO evaluation wants).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posedistill.engine.config import Config, ConfigError, SourceConfig, parse_indices, parse_section


@dataclass
class ValData:
    """A validation dataset plus what is scored: ``instances`` (all), ``rows[i]`` = instance of item ``i``, and
    extra ``evaluate_predictions`` arguments (``gt_file`` when the boxes are detections)."""

    dataset: Any
    instances: list
    rows: np.ndarray
    metric_args: dict[str, Any]


def build_method(cfg: Config) -> Any:
    """``posedistill.distill.<method.type>.from_config(cfg)``; a dotted ``type`` names any importable module."""
    name = cfg.method.type
    module_name = name if "." in name else f"posedistill.distill.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ConfigError(
                f"{getattr(cfg, 'source', '<config>')}: key 'method.type': no method module {module_name!r}"
            ) from None
        raise
    if not hasattr(module, "from_config"):
        raise ConfigError(f"{getattr(cfg, 'source', '<config>')}: key 'method.type': {module_name} has no from_config")
    return module.from_config(cfg)


def _prepare_synthetic(src: SourceConfig, where: str, key: str) -> None:
    """Generate the synthetic dataset into ``src.path`` (its folder) unless it already exists: images
    (``generate_dataset``), or video clips when the settings name ``num_videos`` (``generate_videos``)."""
    if src.synthetic is None or Path(src.path).exists():
        return
    from posedistill.data.synthetic import generate_dataset, generate_videos

    out_dir = Path(src.path).parent if Path(src.path).suffix else Path(src.path)
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in src.synthetic.items()}
    try:
        (generate_videos if "num_videos" in args else generate_dataset)(out_dir, **args)
    except TypeError as e:
        raise ConfigError(f"{where}: key '{key}.synthetic': {e}") from None
    if not Path(src.path).exists():
        raise ConfigError(f"{where}: key '{key}.path': the synthetic generator did not create {src.path}")


def read_source(src: SourceConfig, layout: str, where: str = "<config>", key: str = "data") -> list:
    """The instances of one source (``indices`` applied)."""
    from posedistill.data.readers import detect_format, read_dataset

    _prepare_synthetic(src, where, key)
    path = Path(src.path)
    if not path.exists():
        raise ConfigError(
            f"{where}: key '{key}.path': {path.resolve()} does not exist (relative paths are resolved against the "
            "current directory)"
        )
    fmt = src.format or detect_format(path)
    indices = parse_indices(src.indices)
    options: dict[str, Any] = {}
    if fmt == "lsp" and indices is not None and (isinstance(indices, list) or indices.stop is not None):
        # LSP reads only the wanted images (1-based numbers)
        numbers = list(range(indices.start or 0, indices.stop)) if isinstance(indices, slice) else indices
        options["indices"] = [int(i) + 1 for i in numbers]
        indices = None
    src_layout = src.layout or layout
    try:
        instances = read_dataset(path, format=fmt, layout=src_layout if fmt == "coco" else None,
                                 image_root=src.image_root, **options)  # fmt: skip
    except ValueError as e:
        raise ConfigError(f"{where}: key '{key}': {e}") from e
    if indices is not None:
        instances = instances[indices] if isinstance(indices, slice) else [instances[i] for i in indices]
    wrong = {inst.layout for inst in instances} - {layout}
    if wrong:
        raise ConfigError(
            f"{where}: key '{key}': {path} has layout {sorted(wrong)} but data.layout is {layout!r}; set data.layout "
            "to match (or the source's layout)"
        )
    return instances


def read_sources(cfg: Config, split: str) -> list:
    where = getattr(cfg, "source", "<config>")
    out: list = []
    for i, src in enumerate(getattr(cfg.data, split)):
        out.extend(read_source(src, cfg.data.layout, where, f"data.{split}.{i}"))
    return out


def aug_config(cfg: Config) -> Any:
    from posedistill.data.augment import AugConfig

    return parse_section(AugConfig, cfg.data.aug, "data.aug", getattr(cfg, "source", "<config>"))


def build_codec_from_config(cfg: Config) -> Any:
    from posedistill.codecs import build_codec

    try:
        return build_codec(cfg.codec_args())
    except ValueError as e:
        raise ConfigError(f"{getattr(cfg, 'source', '<config>')}: key 'codec': {e}") from None


def build_train_set(cfg: Config, codec: Any = None) -> Any:
    from posedistill.data.loader import TopDownDataset
    from posedistill.data.readers import training_instances

    where = getattr(cfg, "source", "<config>")
    if not cfg.data.train:
        raise ConfigError(f"{where}: key 'data.train': no training source; add one (path, format, image_root)")
    instances = training_instances(read_sources(cfg, "train"))
    if not instances:
        raise ConfigError(f"{where}: key 'data.train': the sources hold no usable training instance")
    return TopDownDataset(
        instances, codec or build_codec_from_config(cfg), cfg.input_size, train=True, aug=aug_config(cfg),
        seed=cfg.train.seed, layout=cfg.data.layout,
    )  # fmt: skip


def detection_instances(src: SourceConfig, layout: str, where: str, key: str) -> list:
    """One instance per detected person box of ``src.detections`` on the images of the COCO file ``src.path``
    (keypoints empty, ``extra['bbox_score']`` = the detector's score)."""
    from posedistill.data.instance import make_instance
    from posedistill.data.readers.common import find_image_root, load_json
    from posedistill.data.readers.detections import read_coco_detections
    from posedistill.layouts import get_layout

    if (src.format or "coco") != "coco":
        raise ConfigError(f"{where}: key '{key}.detections': detected boxes need a COCO-format source")
    for p, k in ((src.path, "path"), (src.detections, "detections")):
        if not Path(p).is_file():
            raise ConfigError(f"{where}: key '{key}.{k}': {Path(p).resolve()} does not exist")
    gt = load_json(src.path)
    images = {img["id"]: img for img in gt.get("images", [])}
    root = (
        Path(src.image_root)
        if src.image_root
        else find_image_root(src.path, (im["file_name"] for im in images.values()))
    )
    k = get_layout(layout).num_keypoints
    out = []
    for img_id, boxes in read_coco_detections(src.detections, min_score=src.detection_score_thr).items():
        if img_id not in images:
            raise ConfigError(f"{where}: key '{key}.detections': image id {img_id!r} is not in {src.path}")
        img = images[img_id]
        for j, (x, y, w, h, score) in enumerate(boxes):
            out.append(
                make_instance(
                    str(root / img["file_name"]), [x, y, w, h], np.zeros((k, 2)), np.zeros(k), layout,
                    image_size=(int(img.get("width", 0)), int(img.get("height", 0))), image_id=img_id,
                    instance_id=j, area=float(w * h), extra={"bbox_score": float(score)},
                )
            )  # fmt: skip
    return out


def build_val_data(cfg: Config, codec: Any = None) -> ValData | None:
    """The validation data, or None when ``data.val`` is empty."""
    from posedistill.data.loader import TopDownDataset

    if not cfg.data.val:
        return None
    where = getattr(cfg, "source", "<config>")
    metric_args: dict[str, Any] = {}
    if any(src.detections for src in cfg.data.val):
        if len(cfg.data.val) != 1:
            raise ConfigError(f"{where}: key 'data.val': detected boxes work with a single validation source")
        src = cfg.data.val[0]
        instances = detection_instances(src, cfg.data.layout, where, "data.val.0")
        metric_args["gt_file"] = src.path
    else:
        instances = read_sources(cfg, "val")
    rows = np.asarray(
        [i for i, inst in enumerate(instances) if not inst.iscrowd and inst.bbox[2] > 0 and inst.bbox[3] > 0],
        dtype=np.int64,
    )
    if len(rows) == 0:
        raise ConfigError(f"{getattr(cfg, 'source', '<config>')}: key 'data.val': no instance to evaluate")
    dataset = TopDownDataset(
        [instances[i] for i in rows], codec or build_codec_from_config(cfg), cfg.input_size, train=False,
        seed=cfg.train.seed, layout=cfg.data.layout,
    )  # fmt: skip
    return ValData(dataset, instances, rows, metric_args)


def checkpoint_meta(cfg: Config) -> dict[str, Any]:
    """What ``eval`` / ``export`` / ``infer`` need besides the model: layout, input size, codec."""
    from posedistill.data.loader import MEAN_RGB, STD_RGB
    from posedistill.layouts import get_layout

    layout = get_layout(cfg.data.layout)
    return {
        "layout": layout.name,
        "num_keypoints": layout.num_keypoints,
        "input_size": list(cfg.input_size),
        "codec": cfg.codec_args(),
        "flip_indices": list(layout.flip_indices),
        "mean": list(MEAN_RGB),  # on 0-255 RGB pixels, after BGR -> RGB
        "std": list(STD_RGB),
    }
