"""COCO-WholeBody records for generated people, and a JSON writer whose memory does not grow with the dataset.

Annotation fields follow COCO-WholeBody (Jin et al. 2020): 17 body points in ``keypoints``, ``foot_kpts`` (6),
``face_kpts`` (68), ``lefthand_kpts`` (21), ``righthand_kpts`` (21), each a flat ``[x, y, v] * K`` list,
``face_box`` / ``lefthand_box`` / ``righthand_box`` ([x, y, w, h], zeros when invalid), the ``*_valid`` flags,
``bbox``, ``area``, ``num_keypoints`` (labelled body points), ``iscrowd``, ``category_id``, ``image_id``, ``id``;
video annotations add ``track_id``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from posedistill.fileio import atomic_open
from posedistill.layouts import COCO, COCO_WHOLEBODY

PARTS = (("keypoints", 0, 17), ("foot_kpts", 17, 23), ("face_kpts", 23, 91), ("lefthand_kpts", 91, 112),
         ("righthand_kpts", 112, 133))  # fmt: skip


def person_category() -> dict[str, Any]:
    """The COCO person category: the 17 body keypoint names and the 1-based skeleton, as COCO-WholeBody ships it."""
    return {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(COCO.keypoint_names),
        "skeleton": [[a + 1, b + 1] for a, b in COCO.links],
    }


def _flat(xy: np.ndarray, v: np.ndarray) -> list:
    out: list = []
    for (x, y), vv in zip(np.round(xy.astype(np.float64), 2).tolist(), v.tolist()):
        out += (x, y, vv)
    return out


def _box(b: np.ndarray) -> list[float]:
    return np.round(np.asarray(b, np.float64), 2).tolist()


def to_annotation(person: dict, image_id: int, ann_id: int) -> dict[str, Any]:
    """One COCO-WholeBody annotation from a person record of :func:`render.annotate`."""
    kp, vis = person["keypoints"], person["visibility"].astype(int)
    ann: dict[str, Any] = {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0}
    for name, a, b in PARTS:
        ann[name] = _flat(kp[a:b], vis[a:b])
    ann.update(
        bbox=_box(person["bbox"]),
        area=round(float(person["area"]), 2),
        num_keypoints=int(person["num_keypoints"]),
        face_box=_box(person["face_box"]),
        lefthand_box=_box(person["lefthand_box"]),
        righthand_box=_box(person["righthand_box"]),
        face_valid=bool(person["face_valid"]),
        lefthand_valid=bool(person["lefthand_valid"]),
        righthand_valid=bool(person["righthand_valid"]),
        foot_valid=bool(person["foot_valid"]),
    )
    if person.get("track_id") is not None:
        ann["track_id"] = int(person["track_id"])
    return ann


def _dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class CocoWriter:
    """Stream ``images`` and ``annotations`` entries to temporary files next to ``path``; :meth:`close` joins them
    into one COCO JSON written atomically. Nothing appears at ``path`` unless the whole file is complete.

    >>> with CocoWriter(out / "annotations.json") as w:
    ...     w.add_image({...}); w.add_annotation({...})
    ...     w.close(info={...})
    """

    def __init__(self, path: str | Path, categories: list[dict] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.categories = categories if categories is not None else [person_category()]
        self.videos: list[dict] = []
        self.num_images = 0
        self.num_annotations = 0
        # Unnamed temporary files (closed, hence removed, by close() / discard() / the with-block).
        self._parts: dict[str, IO[str]] = {
            k: tempfile.TemporaryFile("w+", encoding="utf-8", dir=self.path.parent, prefix=f".{k}.")  # noqa: SIM115
            for k in ("images", "annotations")
        }
        self._closed = False

    def add_image(self, entry: dict) -> None:
        self._write("images", entry, self.num_images)
        self.num_images += 1

    def add_annotation(self, entry: dict) -> None:
        self._write("annotations", entry, self.num_annotations)
        self.num_annotations += 1

    def add_video(self, entry: dict) -> None:
        self.videos.append(entry)

    def _write(self, key: str, entry: dict, count: int) -> None:
        self._parts[key].write(("," if count else "") + "\n" + _dump(entry))

    def close(self, info: dict | None = None) -> Path:
        """Assemble and atomically write the JSON; returns its path."""
        with atomic_open(self.path, "w", encoding="utf-8") as f:
            f.write('{"info":' + _dump(info or {}) + ',"licenses":[],"categories":' + _dump(self.categories))
            if self.videos:
                f.write(',"videos":[' + ",\n".join(_dump(v) for v in self.videos) + "]")
            for key in ("images", "annotations"):
                part = self._parts[key]
                part.seek(0)
                f.write(f',"{key}":[')
                shutil.copyfileobj(part, f, 1 << 20)
                f.write("\n]")
            f.write("}\n")
        self.discard()
        self._closed = True
        return self.path

    def discard(self) -> None:
        for part in self._parts.values():
            part.close()

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.discard()


def write_file(path: Path, data: bytes) -> None:
    """Temp file + rename, without the fsync of :func:`posedistill.fileio.atomic_write_bytes`: a reader never
    sees half an image, and a dataset that a crash could truncate is regenerated, not recovered. (An fsync per
    image would cost more than rendering it.)"""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


LAYOUT_NAME = COCO_WHOLEBODY.name
