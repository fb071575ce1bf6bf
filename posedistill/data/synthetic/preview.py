"""Contact sheets: images in a grid with their keypoints and skeleton links drawn in the layout's colours."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from posedistill.fileio import atomic_write_bytes
from posedistill.layouts import COCO_WHOLEBODY, Layout


def draw_pose(
    img: np.ndarray, keypoints: np.ndarray, visibility: np.ndarray, layout: Layout = COCO_WHOLEBODY,
    scale: float = 1.0, bbox: Sequence[float] | None = None,
) -> np.ndarray:  # fmt: skip
    """Draw one person on a BGR image (in place; also returned).

    keypoints (K, 2) in the image's original pixels (multiplied by ``scale`` here), visibility (K,): links between
    labelled points, visible points filled, occluded points hollow. Layout colours are RGB; OpenCV wants BGR.
    """
    kp = np.asarray(keypoints, np.float64) * scale
    vis = np.asarray(visibility)
    t = max(1, round(img.shape[0] / 256))
    if bbox is not None:
        x, y, w, h = (float(v) * scale for v in bbox)
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), (200, 200, 200), 1)
    for (a, b), rgb in zip(layout.links, layout.link_colors):
        if vis[a] > 0 and vis[b] > 0:
            pa = (round(kp[a, 0]), round(kp[a, 1]))
            pb = (round(kp[b, 0]), round(kp[b, 1]))
            cv2.line(img, pa, pb, rgb[::-1], t, cv2.LINE_AA)
    for k in np.nonzero(vis > 0)[0]:
        c = (round(kp[k, 0]), round(kp[k, 1]))
        rgb = layout.keypoint_colors[k]
        r = t + 1 if k < 23 else t
        cv2.circle(img, c, r, rgb[::-1], -1 if vis[k] == 2 else 1, cv2.LINE_AA)
    return img


def contact_sheet(
    images: Sequence[np.ndarray], people: Sequence[Sequence[dict]], cols: int = 4, tile: int = 256,
    layout: Layout = COCO_WHOLEBODY,
) -> np.ndarray:  # fmt: skip
    """A grid of ``tile``-pixel-high tiles; ``people[i]`` holds dicts with ``keypoints`` (K, 2), ``visibility``
    (K,) and optionally ``bbox`` for image i."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    tiles = []
    width = max(round(im.shape[1] * tile / im.shape[0]) for im in images)
    for im, ppl in zip(images, people):
        s = tile / im.shape[0]
        t = cv2.resize(im, (round(im.shape[1] * s), tile), interpolation=cv2.INTER_LINEAR)
        for p in ppl:
            draw_pose(t, p["keypoints"], p["visibility"], layout, s, p.get("bbox"))
        canvas = np.zeros((tile, width, 3), np.uint8)
        canvas[:, : t.shape[1]] = t
        tiles.append(canvas)
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.zeros((rows * tile, min(cols, len(tiles)) * width, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * tile : (r + 1) * tile, c * width : (c + 1) * width] = t
    return sheet


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Encode and write a PNG atomically."""
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, buf.tobytes())
    return Path(path)
