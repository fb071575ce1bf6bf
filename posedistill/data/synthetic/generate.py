"""Write synthetic datasets to disk: JPEG files plus one COCO-WholeBody JSON, streamed so memory stays flat.

Output of :func:`generate_dataset` (``file_name`` is relative to the folder holding the JSON)::

    DIR/annotations.json      COCO-WholeBody: images, annotations, categories, info (config, seed, statistics)
    DIR/images/000001.jpg ...
    DIR/preview.png           with preview=True: a contact sheet of the first 16 images, poses drawn

Output of :func:`generate_videos`::

    DIR/videos.json           the same format; images carry video_id, frame_id (0-based), nframes;
                              annotations carry track_id; a "videos" list names each clip
    DIR/videos/000001/000000.jpg ...
    DIR/preview_videos.png    with preview=True: 16 frames spread over the first clip

Image ``i`` (0-based) is drawn from ``numpy.random.default_rng([seed, 0, i])`` and video ``v`` from
``default_rng([seed, 1, v])``, so the same seed writes the same bytes whatever the number of workers, and any
slice of a dataset can be regenerated on its own.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posedistill import __version__
from posedistill.data.synthetic.annotations import LAYOUT_NAME, CocoWriter, to_annotation, write_file
from posedistill.data.synthetic.config import SynthConfig, make_config
from posedistill.data.synthetic.render import render_scene
from posedistill.data.synthetic.video import render_video

PREVIEW_COUNT = 16
_PARTS = {"body": (0, 17), "foot": (17, 23), "face": (23, 91), "lefthand": (91, 112), "righthand": (112, 133)}


class Stats:
    """Counts of visible / occluded / outside / unlabelled keypoints per part, over all written people."""

    def __init__(self) -> None:
        self.images = 0
        self.people = 0
        self.counts = {p: np.zeros(4, np.int64) for p in _PARTS}  # visible, occluded, outside, unlabelled

    def add(self, people: list[dict]) -> None:
        self.images += 1
        for person in people:
            self.people += 1
            v, outside = person["visibility"], person["outside"]
            for part, (a, b) in _PARTS.items():
                pv, po = v[a:b], outside[a:b]
                self.counts[part] += (
                    int((pv == 2).sum()), int((pv == 1).sum()), int(((pv == 0) & po).sum()),
                    int(((pv == 0) & ~po).sum()),
                )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """Fractions per part and over all 133 points, plus the raw counts."""
        names = ("visible", "occluded", "outside", "unlabelled")
        total = sum(self.counts.values())
        out: dict[str, Any] = {"images": self.images, "people": self.people}
        for part, c in [*self.counts.items(), ("all", total)]:
            n = max(int(c.sum()), 1)
            out[part] = {k: round(int(x) / n, 4) for k, x in zip(names, c)} | {"count": int(c.sum())}
        return out


def _digits(n: int) -> int:
    return max(6, len(str(n)))


def _image_job(args: tuple[SynthConfig, int, int, str, int]) -> tuple[dict, list[dict]]:
    """Render image ``index``, write its JPEG, return its COCO image entry and person records."""
    cfg, seed, index, out_dir, digits = args
    scene = render_scene(np.random.default_rng([seed, 0, index]), cfg)
    image_id = index + 1
    name = f"images/{image_id:0{digits}d}.jpg"
    _write_jpeg(Path(out_dir) / name, scene.image, scene.jpeg_quality)
    entry = {"id": image_id, "file_name": name, "width": cfg.size[0], "height": cfg.size[1]}
    return entry, scene.people


def _video_job(args: tuple[SynthConfig, int, int, int, str, int]) -> list[tuple[dict, list[dict]]]:
    """Render video ``index`` (all its frames), write the JPEGs, return (frame entry, person records) per frame."""
    cfg, seed, index, frames, out_dir, digits = args
    video_id = index + 1
    folder = f"videos/{video_id:0{digits}d}"
    (Path(out_dir) / folder).mkdir(parents=True, exist_ok=True)
    fd = _digits(frames)
    out = []
    for t, scene in enumerate(render_video(np.random.default_rng([seed, 1, index]), cfg, frames)):
        name = f"{folder}/{t:0{fd}d}.jpg"
        _write_jpeg(Path(out_dir) / name, scene.image, scene.jpeg_quality)
        entry = {"file_name": name, "width": cfg.size[0], "height": cfg.size[1], "video_id": video_id,
                 "frame_id": t, "nframes": frames}  # fmt: skip
        out.append((entry, scene.people))
    return out


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    write_file(path, buf.tobytes())


def _run(job: Callable, tasks: Iterable, workers: int, block: int) -> Iterator:
    """Results of ``job`` over ``tasks`` in order; with workers > 1 a process pool works through blocks of
    ``block`` tasks at a time, so no more than one block of results is ever held."""
    if workers <= 1:
        yield from map(job, tasks)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        it = iter(tasks)
        while chunk := [t for _, t in zip(range(block), it)]:
            yield from pool.map(job, chunk, chunksize=max(1, len(chunk) // (4 * workers)))


def _progress(items: Iterable, total: int, unit: str, enabled: bool) -> Iterable:
    """``items`` behind a tqdm bar on stderr when ``enabled`` (thousands of images take minutes)."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, unit=unit, desc="synth", dynamic_ncols=True)


def _config(config: SynthConfig | None, difficulty: str, size: tuple[int, int] | None,
            people: tuple[int, int] | None) -> SynthConfig:  # fmt: skip
    if config is not None:
        return config
    return make_config(difficulty, size=size, people=people)


def _info(cfg: SynthConfig, seed: int, stats: Stats, what: str) -> dict[str, Any]:
    return {
        "description": f"posedistill synthetic whole-body {what} ({cfg.difficulty})",
        "version": __version__,
        "layout": LAYOUT_NAME,
        "seed": seed,
        "config": cfg.to_dict(),
        "stats": stats.summary(),
    }


def generate_dataset(
    out_dir: str | Path,
    num_images: int,
    size: tuple[int, int] | None = (256, 256),
    people: tuple[int, int] | None = None,
    difficulty: str = "medium",
    seed: int = 0,
    preview: bool = False,
    workers: int = 1,
    config: SynthConfig | None = None,
    progress: bool = False,
) -> Path:
    """Write ``num_images`` synthetic images and ``annotations.json`` under ``out_dir``; returns the JSON path.

    ``size`` is (width, height); ``people`` (min, max) per image defaults to the difficulty's; a full
    ``config`` overrides difficulty / size / people. ``progress``: a tqdm bar on stderr. See the module docstring
    for the layout on disk.
    """
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    cfg = _config(config, difficulty, size, people)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    stats = Stats()
    digits = _digits(num_images)
    first: list[tuple[str, list[dict]]] = []
    with CocoWriter(out / "annotations.json") as writer:
        tasks = ((cfg, seed, i, str(out), digits) for i in range(num_images))
        results = _run(_image_job, tasks, workers, block=256 * max(1, workers))
        for entry, ppl in _progress(results, num_images, "img", progress):
            writer.add_image(entry)
            for person in ppl:
                writer.add_annotation(to_annotation(person, entry["id"], writer.num_annotations + 1))
            stats.add(ppl)
            if preview and len(first) < PREVIEW_COUNT:
                first.append((entry["file_name"], ppl))
        path = writer.close(info=_info(cfg, seed, stats, "images"))
    if preview and first:
        _write_preview(out, out / "preview.png", first)
    return path


def generate_videos(
    out_dir: str | Path,
    num_videos: int,
    frames: int,
    size: tuple[int, int] | None = (256, 256),
    people: tuple[int, int] | None = None,
    difficulty: str = "medium",
    seed: int = 0,
    preview: bool = False,
    workers: int = 1,
    config: SynthConfig | None = None,
    progress: bool = False,
) -> Path:
    """Write ``num_videos`` clips of ``frames`` frames and ``videos.json`` under ``out_dir``; returns the JSON path.

    Image ids run 1, 2, ... over all frames of all clips; ``video_id`` is 1-based, ``frame_id`` 0-based within
    its clip, ``track_id`` 0-based within its clip. ``progress``: a tqdm bar (clips) on stderr.
    """
    if num_videos < 0 or frames < 1:
        raise ValueError(f"need num_videos >= 0 and frames >= 1, got {num_videos} and {frames}")
    cfg = _config(config, difficulty, size, people)
    out = Path(out_dir)
    stats = Stats()
    digits = _digits(num_videos)
    sample: list[tuple[str, list[dict]]] = []
    step = max(1, frames // PREVIEW_COUNT)
    with CocoWriter(out / "videos.json") as writer:
        tasks = ((cfg, seed, v, frames, str(out), digits) for v in range(num_videos))
        clips = _run(_video_job, tasks, workers, block=4 * max(1, workers))
        for clip in _progress(clips, num_videos, "clip", progress):
            video_id = clip[0][0]["video_id"]
            writer.add_video({"id": video_id, "name": f"{video_id:0{digits}d}", "nframes": frames,
                              "width": cfg.size[0], "height": cfg.size[1]})  # fmt: skip
            for entry, ppl in clip:
                entry = {"id": writer.num_images + 1, **entry}
                writer.add_image(entry)
                for person in ppl:
                    writer.add_annotation(to_annotation(person, entry["id"], writer.num_annotations + 1))
                stats.add(ppl)
                if preview and video_id == 1 and entry["frame_id"] % step == 0 and len(sample) < PREVIEW_COUNT:
                    sample.append((entry["file_name"], ppl))
        path = writer.close(info=_info(cfg, seed, stats, "videos"))
    if preview and sample:
        _write_preview(out, out / "preview_videos.png", sample)
    return path


def _write_preview(root: Path, path: Path, items: list[tuple[str, list[dict]]]) -> Path:
    from posedistill.data.synthetic.preview import contact_sheet, write_png

    images = [cv2.imread(str(root / name), cv2.IMREAD_COLOR) for name, _ in items]
    return write_png(path, contact_sheet(images, [ppl for _, ppl in items], cols=4))
