"""Config loading: typed sections, errors that name the file and key, --set overrides, one base level, dumping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from posedistill.engine.config import (
    Config,
    ConfigError,
    config_from_dict,
    dump_json,
    dump_yaml,
    load_config,
    parse_indices,
    parse_override,
)

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, data: dict | str) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


MINIMAL = {
    "model": {"name": "rtmpose-t", "input_size": [48, 64]},
    "data": {"layout": "coco", "train": [{"path": "ann.json", "format": "coco"}]},
    "train": {"epochs": 3, "batch_size": 4},
}


def test_minimal_config_types_and_defaults(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", MINIMAL))
    assert isinstance(cfg, Config)
    assert cfg.input_size == (48, 64)
    assert cfg.train.epochs == 3 and cfg.train.amp == "none"
    assert cfg.data.train[0].path == "ann.json" and cfg.data.train[0].format == "coco"
    assert cfg.optim.type == "adamw" and cfg.schedule.warmup_iters == 1000 and cfg.ema.momentum == 2e-4
    assert cfg.codec_args() == {"type": "simcc", "input_size": [48, 64]}
    assert cfg.source == str(tmp_path / "c.yaml")


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    bad = {**MINIMAL, "train": {"epoch": 3}}
    path = write(tmp_path / "bad.yaml", bad)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg and "'train.epoch'" in msg and "did you mean 'epochs'" in msg


def test_unknown_section_and_nested_source_key(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'optimizer': unknown key; did you mean 'optim'"):
        load_config(write(tmp_path / "a.yaml", {**MINIMAL, "optimizer": {"lr": 1}}))
    bad = {**MINIMAL, "data": {"train": [{"path": "x", "img_root": "y"}]}}
    with pytest.raises(ConfigError, match=r"key 'data.train.0.img_root': unknown key; did you mean 'image_root'"):
        load_config(write(tmp_path / "b.yaml", bad))


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        ({"train": {"epochs": "ten"}}, "train.epochs", "expected an integer, got 'ten'"),
        ({"train": {"epochs": 2.5}}, "train.epochs", "expected an integer"),
        ({"optim": {"lr": "fast"}}, "optim.lr", "expected a number"),
        ({"ema": {"enabled": "yes please"}}, "ema.enabled", "expected true/false"),
        ({"train": {"amp": "bf61"}}, "train.amp", "did you mean 'bf16'"),
        ({"model": {"input_size": [192]}}, "model.input_size", "expected 2 values"),
        ({"train": {"epochs": 0}}, "train.epochs", "must be >= 1"),
        ({"data": {"layout": "cocoo", "train": []}}, "data.layout", "unknown keypoint layout"),
        ({"data": {"train": [{"format": "coco"}]}}, "data.train.0.path", "missing required key"),
        ({"data": {"train": [{"path": "a", "indices": "1-5"}]}}, "data.train.0.indices", "start:stop"),
        ({"codec": {"type": "simcc", "input_size": [1, 2]}}, "codec.input_size", "model.input_size"),
    ],
)
def test_mistyped_values(tmp_path, section, value, expected):
    path = write(tmp_path / "t.yaml", {**MINIMAL, **section})
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and f"'{value}'" in str(e.value) and expected in str(e.value)


def test_yaml11_float_strings_accepted(tmp_path):
    # PyYAML reads 1e-3 (no dot) as a string; float fields accept it
    path = write(tmp_path / "f.yaml", "optim:\n  lr: 1e-3\n  weight_decay: 5e-2\n")
    cfg = load_config(path)
    assert cfg.optim.lr == pytest.approx(1e-3) and cfg.optim.weight_decay == pytest.approx(0.05)


def test_overrides_typed_and_validated(tmp_path):
    path = write(tmp_path / "c.yaml", MINIMAL)
    cfg = load_config(
        path,
        [
            "train.epochs=7",
            "optim.lr=0.5",
            "ema.enabled=false",
            "train.grad_clip=null",
            "model.input_size=[96, 128]",
            "data.train.0.path=/abs/ann.json",
            "train.device=cpu",
            "method.args.beta=5",
        ],
    )
    assert cfg.train.epochs == 7 and cfg.optim.lr == 0.5 and cfg.ema.enabled is False
    assert cfg.train.grad_clip is None and cfg.input_size == (96, 128)
    assert cfg.data.train[0].path == "/abs/ann.json" and cfg.train.device == "cpu"
    assert cfg.method.args == {"beta": 5}
    with pytest.raises(ConfigError, match=r"--set train\.epoch=3: key 'train\.epoch': unknown key; did you mean"):
        load_config(path, ["train.epoch=3"])
    with pytest.raises(ConfigError, match=r"--set train\.epochs=abc: key 'train\.epochs': expected an integer"):
        load_config(path, ["train.epochs=abc"])
    with pytest.raises(ConfigError, match="no list item 3"):
        load_config(path, ["data.train.3.path=x"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(path, ["train.epochs"])


def test_parse_override_yaml_scalars():
    assert parse_override("a.b=3") == ("a.b", 3)
    assert parse_override("a=0.5") == ("a", 0.5)
    assert parse_override("a=true") == ("a", True)
    assert parse_override("a=null") == ("a", None)
    assert parse_override("a=[1, 2]") == ("a", [1, 2])
    assert parse_override("a=x=y") == ("a", "x=y")
    assert parse_override("a.b=") == ("a.b", None)


def test_base_inheritance_one_level(tmp_path):
    write(tmp_path / "base.yaml", {**MINIMAL, "optim": {"lr": 0.004, "weight_decay": 0.05}})
    child = write(
        tmp_path / "child.yaml", {"base": "base.yaml", "optim": {"weight_decay": 0.0}, "train": {"epochs": 9}}
    )
    cfg = load_config(child)
    assert cfg.optim.lr == 0.004 and cfg.optim.weight_decay == 0.0  # mappings merge key by key
    assert cfg.train.epochs == 9 and cfg.train.batch_size == 4  # batch_size still comes from the base file
    grand = write(tmp_path / "grand.yaml", {"base": "child.yaml"})
    with pytest.raises(ConfigError, match="at most one level of inheritance"):
        load_config(grand)
    # an error in a key set by the base names the base file
    write(tmp_path / "badbase.yaml", {**MINIMAL, "train": {"epochs": "x"}})
    c2 = write(tmp_path / "c2.yaml", {"base": "badbase.yaml", "optim": {"lr": 0.1}})
    with pytest.raises(ConfigError, match=r"badbase\.yaml: key 'train\.epochs'"):
        load_config(c2)


def test_dump_round_trip(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", MINIMAL), ["train.epochs=5"])
    again = config_from_dict(yaml.safe_load(dump_yaml(cfg)))
    assert again.to_dict() == cfg.to_dict()
    assert json.loads(dump_json(cfg))["train"]["epochs"] == 5


def test_parse_indices():
    assert parse_indices("0:2500") == slice(0, 2500)
    assert parse_indices(":10") == slice(None, 10)
    assert parse_indices([1, 3]) == [1, 3]
    with pytest.raises(ValueError):
        parse_indices("a:b")


def test_aug_section_validated_against_augconfig(tmp_path):
    ok = load_config(write(tmp_path / "a.yaml", {**MINIMAL, "data": {**MINIMAL["data"], "aug": {"flip_prob": 0.1}}}))
    assert ok.data.aug == {"flip_prob": 0.1}
    bad = {**MINIMAL, "data": {**MINIMAL["data"], "aug": {"flip_prb": 0.1}}}
    with pytest.raises(ConfigError, match=r"'data\.aug\.flip_prb': unknown key; did you mean 'flip_prob'"):
        load_config(write(tmp_path / "b.yaml", bad))


def test_repository_configs_load_with_the_published_recipe():
    files = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(files) >= 19
    cfgs = {f.stem: load_config(f) for f in files}
    for name, cfg in cfgs.items():
        assert cfg.model.name == f"rtmpose-{name[8]}", name
        assert (cfg.optim.type, cfg.optim.lr, cfg.schedule.warmup_start_factor) == ("adamw", 4e-3, 1e-5), name
    for size in "tsml":
        for res, sigma in (("256x192", [4.9, 5.66]), ("384x288", [6.0, 6.93])):
            body, wb = cfgs[f"rtmpose-{size}_coco-{res}"], cfgs[f"rtmpose-{size}_coco-wholebody-{res}"]
            w, h = (int(v) for v in res.split("x")[::-1])
            assert body.input_size == wb.input_size == (w, h) and body.codec["sigma"] == wb.codec["sigma"] == sigma
            assert (body.train.epochs, body.train.aug_switch_epoch, body.schedule.cosine_begin_epoch) == (420, 390, 210)
            assert (wb.train.epochs, wb.train.aug_switch_epoch, wb.schedule.cosine_begin_epoch) == (270, 240, 135)
            assert body.train.batch_size == 256 and wb.train.batch_size == (64 if res == "256x192" else 32)
            assert body.optim.weight_decay == (0.0 if size in "ts" else 0.05) and wb.optim.weight_decay == 0.05
            assert body.ema.enabled == (size != "t") and wb.ema.enabled
            assert body.data.layout == "coco" and wb.data.layout == "coco_wholebody"
            assert wb.data.val[0].detections is not None
    lsp = cfgs["rtmpose-t_lspet"]
    assert lsp.data.layout == "lsp" and lsp.data.train[0].indices == "0:2500" and lsp.data.val[0].indices == "2500:3000"
    assert lsp.data.train[0].path == "../shared/data/lspet/joints.mat"
