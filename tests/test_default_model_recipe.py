"""The default-model recipe's bookkeeping (benchmarks/default_model.py): the label cache is keyed by what the labels
depend on, the pool never takes an evaluation image, and the GPU recipe's settings are what the issue asks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
default_model = pytest.importorskip("default_model")


def _coco(tmp_path: Path, name: str, images: list[str]) -> Path:
    """A COCO-17 file with one person per image; the images are written as tiny JPEGs."""
    ims, anns = [], []
    for i, f in enumerate(images, 1):
        path = tmp_path / f
        if not path.exists():
            cv2.imwrite(str(path), np.full((32, 24, 3), 10 * i, np.uint8))
        ims.append({"id": i, "file_name": str(path), "width": 24, "height": 32})
        kp = [12, 16, 2] + [0, 0, 0] * 16
        anns.append({"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "bbox": [2, 2, 20, 28], "area": 560,
                     "keypoints": kp, "num_keypoints": 1})  # fmt: skip
    out = tmp_path / name
    out.write_text(json.dumps({"images": ims, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
    return out


def test_label_fingerprint_follows_the_images_the_teacher_and_the_selection(tmp_path):
    source = _coco(tmp_path, "people.json", ["a.jpg", "b.jpg"])
    job = default_model.LabelJob("pool_x", source, None, "pp-tinypose", True)
    fp = default_model.fingerprint(job, "0.10.21")
    assert fp == default_model.fingerprint(job, "0.10.21")
    assert fp["images"] == 2 and "pp-tinypose_256x192_ncnn.bin" in fp["teachers"] and "mediapipe" not in fp["teachers"]
    # another teacher, another part of the file, another MediaPipe, changed pixels: each changes the key
    assert default_model.fingerprint(default_model.LabelJob("pool_x", source, None, "mediapipe", True), "1") != fp
    assert default_model.fingerprint(default_model.LabelJob("pool_x", source, (0, 1), "pp-tinypose", True), "") != fp
    mp_job = default_model.LabelJob("pool_x", source, None, "body=pp-tinypose,face=mediapipe", True)
    assert default_model.fingerprint(mp_job, "0.10.21") != default_model.fingerprint(mp_job, "0.10.22")
    cv2.imwrite(str(tmp_path / "b.jpg"), np.full((32, 24, 3), 200, np.uint8))
    assert default_model.fingerprint(job, "0.10.21")["images_sha256"] != fp["images_sha256"]


def _wholebody_labels(tmp_path: Path, name: str, files: list[str]) -> Path:
    ims = [{"id": i, "file_name": str(tmp_path / f), "width": 24, "height": 32} for i, f in enumerate(files, 1)]
    anns = [{"id": 7 * i, "image_id": i, "category_id": 1, "bbox": [0, 0, 24, 32]} for i in range(1, len(files) + 1)]
    out = tmp_path / name
    out.write_text(json.dumps({"images": ims, "annotations": anns, "categories": [{"id": 1}]}))
    return out


def test_pool_renumbers_ids_and_refuses_an_evaluation_image(tmp_path):
    a = _wholebody_labels(tmp_path, "a.json", ["1.jpg", "2.jpg"])
    b = _wholebody_labels(tmp_path, "b.json", ["3.jpg"])  # its ids collide with a's
    out = tmp_path / "pool.json"
    assert default_model.merge_pool([a, b], out, held_out=set()) == {"images": 2 + 1, "people": 3}
    pool = json.loads(out.read_text())
    assert [im["id"] for im in pool["images"]] == [1, 2, 3]
    assert [(x["id"], x["image_id"]) for x in pool["annotations"]] == [(1, 1), (2, 2), (3, 3)]
    with pytest.raises(SystemExit, match=r"3\.jpg.*evaluation image"):
        default_model.merge_pool([a, b], tmp_path / "pool2.json", held_out={(tmp_path / "3.jpg").resolve()})
    assert not (tmp_path / "pool2.json").exists()


def test_the_evaluation_people_are_held_out():
    held = default_model.held_out_images()
    assert len(held) == 500 + 70  # LSPet 2501-3000 and the julito photos
    assert all(p.is_file() for p in list(held)[:20])


def test_recipes_cpu_and_gpu():
    cpu, cpu_size = default_model.recipe_sets(gpu=False, smoke=False)
    assert cpu == [] and cpu_size == (144, 192)
    gpu, gpu_size = default_model.recipe_sets(gpu=True, smoke=False)
    assert gpu_size == (192, 256) and "train.device=cuda" in gpu and "train.amp=bf16" in gpu
    assert any(s.startswith("train.num_workers=") for s in gpu)
    smoke, _ = default_model.recipe_sets(gpu=True, smoke=True)
    assert smoke[-4:] == [
        "train.epochs=1",
        "schedule.warmup_iters=5",
        "train.aug_switch_epoch=100",
        "train.batch_size=16",
    ]
