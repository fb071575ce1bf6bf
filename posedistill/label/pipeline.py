"""What ``posedistill label`` labels, and the labelling loop.

A :class:`LabelJob` is one image with the people to label in it: their boxes (from annotations) or the whole
image as one person. Jobs come from

- an annotation file (:func:`jobs_from_annotations`): any file ``posedistill.data.readers.read_dataset`` reads
  (COCO / COCO-WholeBody json, LSP ``joints.mat``, ...); every non-crowd person with a non-empty box, in its box;
- images, a folder, a glob or a video (:func:`jobs_from_source`, :func:`posedistill.infer.open_source`), either
  with the boxes of an annotation file matched by image file name (``--boxes``) or the whole image as one person.
  Video frames are written as JPEG files (``frames_dir``), since the labels must name image files.

:func:`label` runs a teacher on every job and collects COCO-WholeBody annotations
(:mod:`posedistill.label.coco_writer`), COCO body results and counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posedistill.data.image_io import read_image
from posedistill.errors import PoseDataError
from posedistill.label.coco_writer import body_result, wholebody_annotation
from posedistill.label.teachers import Teacher

log = logging.getLogger(__name__)

ANNOTATION_SUFFIXES = (".json", ".mat")
# parts counted in the summary: name -> slice of the 133 points
PARTS: dict[str, slice] = {
    "body": slice(0, 17),
    "feet": slice(17, 23),
    "face": slice(23, 91),
    "left_hand": slice(91, 112),
    "right_hand": slice(112, 133),
}


@dataclass
class LabelJob:
    """One image and the people to label in it.

    image_path: the image file (absolute); the file name written to the labels.
    image_id: the id written to the labels and results (the source's integer id, else a running number).
    boxes: (N, 4) float32 person boxes x, y, w, h; None: the whole image is one person.
    source_ids: the people's ids in the source annotations (None for whole-image people).
    image: the pixels when already in memory (video frames), else read from ``image_path``.
    extra: more image fields (``video_id``, ``frame_id``, ``source_id``).
    instances: the source Instances of the boxes (their ground truth, for teachers with ``uses_ground_truth``).
    """

    image_path: Path
    image_id: Any
    boxes: np.ndarray | None = None
    source_ids: list[Any] = field(default_factory=list)
    image: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    instances: list[Any] = field(default_factory=list)


def is_annotation_file(path: str | Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() in ANNOTATION_SUFFIXES


def read_people(path: str | Path, indices: str | None = None, image_root: str | Path | None = None) -> list[Any]:
    """The labelable people of an annotation file: non-crowd instances with a non-empty box. ``indices``
    ("start:stop", 0-based, stop excluded) selects part of the file as in a config's ``data.*.indices``: for LSP /
    LSPet the image order, else the reader's instance order (before the crowd filter)."""
    from posedistill.data.readers import detect_format, read_dataset
    from posedistill.engine.config import parse_indices

    fmt = detect_format(path)
    sel = parse_indices(indices)
    options: dict[str, Any] = {}
    if fmt == "lsp" and isinstance(sel, slice) and sel.stop is not None:
        options["indices"] = [i + 1 for i in range(sel.start or 0, sel.stop)]  # LSP reads 1-based image numbers
        sel = None
    instances = read_dataset(path, format=fmt, image_root=image_root, **options)
    if isinstance(sel, slice):
        instances = instances[sel]
    return [inst for inst in instances if not inst.iscrowd and inst.bbox[2] > 0 and inst.bbox[3] > 0]


def _image_id(source_id: Any, number: int) -> Any:
    """The source's id when it is an integer, else ``number``."""
    if isinstance(source_id, int | np.integer) and not isinstance(source_id, bool):
        return int(source_id)
    return number


def jobs_from_annotations(people: Iterable[Any], whole_image: bool = False) -> list[LabelJob]:
    """One job per image of ``people`` (Instances), in first-seen order, with their boxes (or the whole image)."""
    by_image: dict[str, LabelJob] = {}
    for inst in people:
        key = str(Path(inst.image_path).resolve())
        job = by_image.get(key)
        if job is None:
            number = len(by_image) + 1
            image_id = _image_id(inst.image_id, number)
            extra = {} if image_id == inst.image_id else {"source_id": inst.image_id}
            job = by_image[key] = LabelJob(Path(key), image_id, None if whole_image else np.zeros((0, 4), np.float32),
                                           extra=extra)  # fmt: skip
        if not whole_image:
            job.boxes = np.concatenate([job.boxes, np.asarray(inst.bbox, np.float32).reshape(1, 4)])
            job.source_ids.append(inst.instance_id)
            job.instances.append(inst)
    return list(by_image.values())


def jobs_from_source(
    source: Any, boxes_by_name: dict[str, list[Any]] | None = None, frames_dir: str | Path | None = None
) -> Iterator[LabelJob]:
    """Jobs for the frames of ``source`` (a :class:`posedistill.infer.sources.Source`).

    ``boxes_by_name``: image file name -> Instances to label in it (``--boxes``); images without an entry are
    skipped. None: the whole image is one person. Video frames are written to ``frames_dir`` as
    ``<name>.jpg`` (needed: the labels name image files)."""
    from posedistill.fileio import atomic_write_with

    paths = getattr(source, "paths", None)
    for frame in source:
        extra: dict[str, Any] = {}
        image = None
        if paths is not None:
            path = Path(paths[frame.frame_id]).resolve()
        else:
            if frames_dir is None:
                raise PoseDataError(getattr(source, "name", "source"), "video frames need a folder to be written to")
            import cv2

            path = (Path(frames_dir) / f"{frame.name}.jpg").resolve()
            atomic_write_with(path, lambda tmp, im=frame.image: cv2.imwrite(tmp, im, [cv2.IMWRITE_JPEG_QUALITY, 95]))
            image = frame.image
            extra = {"video_id": 0, "frame_id": frame.frame_id}
        number = frame.frame_id + 1
        if boxes_by_name is None:
            yield LabelJob(path, number, None, image=image, extra=extra)
            continue
        people = boxes_by_name.get(path.name)
        if not people:
            continue
        boxes = np.stack([np.asarray(p.bbox, np.float32) for p in people])
        image_id = _image_id(people[0].image_id, number)
        yield LabelJob(path, image_id, boxes, [p.instance_id for p in people], image=image, extra=extra,
                       instances=list(people))  # fmt: skip


@dataclass
class LabelRun:
    """What :func:`label` produced: COCO ``images`` and ``annotations``, body ``results``, and counts."""

    images: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    people: int = 0
    unlabelled_people: int = 0
    part_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    skipped_images: list[str] = field(default_factory=list)
    teacher_seconds: float = 0.0
    seconds: float = 0.0
    interrupted: bool = False


def xyxy(boxes_xywh: np.ndarray) -> np.ndarray:
    out = np.asarray(boxes_xywh, np.float32).reshape(-1, 4).copy()
    out[:, 2:] += out[:, :2]
    return out


def label(
    jobs: Iterable[LabelJob],
    teacher: Teacher,
    min_score: float = 0.0,
    total: int | None = None,
    progress: bool = True,
) -> LabelRun:
    """Run ``teacher`` on every job; points scored below ``min_score`` become unlabelled. People with no
    labelled point get no annotation (counted in ``unlabelled_people``) and no result. Ctrl-C stops early with
    what is done (``interrupted``)."""
    from tqdm import tqdm

    run = LabelRun()
    t0 = time.perf_counter()
    bar = tqdm(total=total, unit="img", desc="label", disable=not progress, dynamic_ncols=True)
    try:
        for job in jobs:
            try:
                image = job.image if job.image is not None else read_image(job.image_path)
            except PoseDataError as e:
                log.warning("skipping an unreadable image: %s", e)
                run.skipped_images.append(str(job.image_path))
                bar.update(1)
                continue
            h, w = image.shape[:2]
            boxes = np.array([[0, 0, w, h]], np.float32) if job.boxes is None else job.boxes
            t = time.perf_counter()
            if getattr(teacher, "uses_ground_truth", False):  # an ensemble with 'gt': the people's annotations
                out = teacher(image, xyxy(boxes), ground_truth=job.instances or None)  # type: ignore[call-arg]
            else:
                out = teacher(image, xyxy(boxes))
            run.teacher_seconds += time.perf_counter() - t
            run.images.append({"id": job.image_id, "file_name": str(job.image_path), "width": w, "height": h,
                               **job.extra})  # fmt: skip
            for i in range(len(boxes)):
                run.people += 1
                labelled = out.labelled[i] & (out.scores[i] >= min_score)
                if not labelled.any():
                    run.unlabelled_people += 1
                    continue
                for part, sl in PARTS.items():
                    run.part_counts[part] += int(labelled[sl].any())
                ann = wholebody_annotation(
                    len(run.annotations) + 1, job.image_id, boxes[i], out.keypoints[i], out.scores[i], labelled
                )
                if i < len(job.source_ids):
                    ann["source_id"] = job.source_ids[i]
                run.annotations.append(ann)
                if labelled[:17].any():
                    run.results.append(body_result(job.image_id, boxes[i], out.keypoints[i], out.scores[i], labelled))
            bar.update(1)
            bar.set_postfix(people=run.people, labelled=len(run.annotations), refresh=False)
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        bar.close()
    run.seconds = time.perf_counter() - t0
    return run
