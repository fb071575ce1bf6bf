"""Backgrounds, clutter and the camera's imperfections.

Everything here is cheap on purpose (a few small random grids resized by OpenCV, a handful of filled shapes) so
that a 256x256 scene costs well under a millisecond of background. Distractors are drawn into the background
(no label); occluders are drawn in front of the people and labelled :data:`OCCLUDER`.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from posedistill.data.synthetic import draw
from posedistill.data.synthetic.appearance import SKIN_RGB, edge_of, random_color
from posedistill.data.synthetic.config import SynthConfig

OCCLUDER = 65535  # label value of foreground objects


def make_background(rng: np.random.Generator, cfg: SynthConfig, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 BGR: a smooth colour field, a noise texture, random shapes and body-part-like distractors."""
    w, h = size or cfg.size
    k = int(rng.integers(2, 6))
    spread = 20.0 + 130.0 * cfg.background_contrast
    base = rng.uniform(40, 215, 3)
    grid = base + rng.uniform(-spread, spread, (k, k, 3))
    if rng.random() < 0.5:  # muted scenes: pull the colours towards their grey level
        grid = 0.35 * grid + 0.65 * grid.mean(axis=2, keepdims=True)
    grid = np.clip(grid, 0, 255).astype(np.float32)
    # Colour field and noise texture are summed at the texture's resolution, then upsampled once.
    cell = int(rng.integers(3, 24))
    small_size = (w // cell + 2, h // cell + 2)
    small = cv2.resize(grid, small_size, interpolation=cv2.INTER_LINEAR)
    if cfg.texture > 0:
        noise = rng.normal(0.0, 25.0 * cfg.texture, (small_size[1], small_size[0], 3)).astype(np.float32)
        if rng.random() < 0.5:  # grey texture (stone, paper) rather than coloured noise
            noise[..., 1:] = noise[..., :1]
        small += noise
    img = cv2.resize(np.clip(small, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(cfg.shapes[0], cfg.shapes[1] + 1))):
        random_shape(rng, img)
    for _ in range(int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1))):
        distractor(rng, img)
    return img


def random_shape(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray | None = None, label: int = 0) -> None:
    """One circle / rectangle / polygon / line / ellipse anywhere in the image."""
    h, w = img.shape[:2]
    color = random_color(rng)
    edge = edge_of(color)
    size = rng.uniform(0.04, 0.35) * min(w, h)
    c = rng.uniform([0, 0], [w, h])
    kind = int(rng.integers(5))
    if kind == 0:
        draw.ellipse(img, lab, c, (size / 2, size / 2), 0.0, color, edge, label)
    elif kind == 1:
        draw.ellipse(img, lab, c, (size / 2, size * rng.uniform(0.1, 0.5)), rng.uniform(0, 180), color, edge, label)
    elif kind == 2:  # rotated rectangle / polygon
        n = int(rng.integers(3, 7))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = size / 2 * rng.uniform(0.5, 1.0, n)
        pts = c + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], axis=1)
        draw.hull(img, lab, pts, color, edge, label)
    elif kind == 3:
        p1 = c + rng.normal(0, size, 2)
        draw.capsule(img, lab, c, p1, size * 0.05 + 0.5, size * 0.05 + 0.5, color, edge, label)
    else:
        x0, y0 = c
        x1, y1 = c + rng.uniform(0.2, 1.0, 2) * size
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        draw.hull(img, lab, pts, color, edge, label)


def _skin(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = np.clip(SKIN_RGB[rng.integers(len(SKIN_RGB))] + rng.normal(0, 10, 3), 0, 255).astype(int).tolist()
    return (b, g, r)


def distractor(rng: np.random.Generator, img: np.ndarray) -> None:
    """Something that looks like a body part but belongs to no labelled person: a limb, a hand or a head."""
    h, w = img.shape[:2]
    s = rng.uniform(0.3, 0.9) * h  # the height of the person it would belong to
    c = rng.uniform([0, 0], [w, h])
    kind = int(rng.integers(3))
    color = _skin(rng) if rng.random() < 0.5 else random_color(rng)
    edge = edge_of(color)
    if kind == 0:  # a two-segment limb
        a = rng.uniform(0, 2 * np.pi)
        p1 = c + 0.2 * s * np.array([np.cos(a), np.sin(a)])
        a += rng.uniform(-2.0, 2.0)
        p2 = p1 + 0.17 * s * np.array([np.cos(a), np.sin(a)])
        draw.capsule(img, None, c, p1, 0.04 * s, 0.03 * s, color, edge)
        draw.capsule(img, None, p1, p2, 0.03 * s, 0.02 * s, color, edge)
    elif kind == 1:  # a hand: palm and five strokes
        r = 0.03 * s
        draw.ellipse(img, None, c, (r, 1.2 * r), rng.uniform(0, 180), color, edge)
        a0 = rng.uniform(0, 2 * np.pi)
        for f in range(5):
            a = a0 + (f - 2) * 0.35
            tip = c + 3.2 * r * np.array([np.cos(a), np.sin(a)])
            draw.polyline(img, None, np.stack([c, tip]), max(1.0, 0.5 * r), color, edge)
    else:  # a head with eyes
        r = 0.06 * s
        draw.ellipse(img, None, c, (0.75 * r, r), rng.uniform(-30, 30), color, edge)
        for dx in (-0.3, 0.3):
            draw.ellipse(img, None, c + (dx * r, -0.1 * r), (0.12 * r, 0.08 * r), 0.0, (30, 30, 30), (0, 0, 0), 0, 0)


def draw_occluders(
    rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, boxes: list[np.ndarray], cfg: SynthConfig
) -> None:
    """Foreground objects (posts, boxes, blobs) in front of the people, labelled OCCLUDER.

    ``boxes`` are the people's (x0, y0, x1, y1) extents; an occluder is placed over one of them so that it
    actually hides something.
    """
    if not boxes or rng.random() >= cfg.occluder_prob:
        return
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 3))):
        x0, y0, x1, y1 = boxes[int(rng.integers(len(boxes)))]
        c = rng.uniform([x0, y0], [max(x0, x1), max(y0, y1)])
        color = random_color(rng, (0.0, 0.7), (0.2, 0.9))
        edge = edge_of(color)
        bw, bh = max(x1 - x0, 4.0), max(y1 - y0, 4.0)
        kind = int(rng.integers(3))
        if kind == 0:  # a vertical or tilted post
            a = rng.normal(np.pi / 2, 0.3)
            d = np.array([np.cos(a), np.sin(a)]) * max(h, w)
            r = rng.uniform(0.04, 0.12) * bw
            draw.capsule(img, lab, c - d, c + d, r, r, color, edge, OCCLUDER)
        elif kind == 1:  # a box rising from below (a table, a car bonnet, a wall)
            top = y0 + rng.uniform(0.45, 0.9) * bh
            pts = np.array([[c[0] - bw * rng.uniform(0.2, 0.8), top], [c[0] + bw * rng.uniform(0.2, 0.8), top],
                            [c[0] + bw, h + 10.0], [c[0] - bw, h + 10.0]])  # fmt: skip
            draw.hull(img, lab, pts, color, edge, OCCLUDER)
        else:
            axes = (bw * rng.uniform(0.08, 0.25), bh * rng.uniform(0.05, 0.15))
            draw.ellipse(img, lab, c, axes, rng.uniform(0, 180), color, edge, OCCLUDER)


@lru_cache(maxsize=4)
def _noise_bank(h: int, w: int) -> np.ndarray:
    """A fixed field of unit Gaussian noise, larger than the image; frames crop it at random offsets."""
    return np.random.default_rng(20240917).standard_normal((h + 64, w + 64, 3), dtype=np.float32)


def finish(
    rng: np.random.Generator, img: np.ndarray, cfg: SynthConfig, noise_rng: np.random.Generator | None = None
) -> np.ndarray:
    """Camera effects on the rendered uint8 image: blur, lighting gradient and colour cast (drawn from ``rng``),
    sensor noise (from ``noise_rng``, default ``rng``; a video passes the same ``rng`` state for every frame so
    only the noise changes)."""
    h, w = img.shape[:2]
    noise_rng = rng if noise_rng is None else noise_rng
    out = img
    if cfg.blur_prob > 0 and rng.random() < cfg.blur_prob:
        if rng.random() < 0.7:
            sigma = rng.uniform(0.4, max(0.5, cfg.blur_sigma))
            out = cv2.GaussianBlur(out, (0, 0), sigma)
        else:  # motion blur along a random direction
            n = int(rng.integers(3, 3 + int(3 * cfg.blur_sigma) + 1))
            kernel = np.zeros((n, n), np.float32)
            a = rng.uniform(0, np.pi)
            c = (n - 1) / 2
            cv2.line(kernel, (round(c - c * np.cos(a)), round(c - c * np.sin(a))),
                     (round(c + c * np.cos(a)), round(c + c * np.sin(a))), 1.0, 1)  # fmt: skip
            out = cv2.filter2D(out, -1, kernel / kernel.sum())
    gain = rng.uniform(1.0 - cfg.lighting, 1.0 + cfg.lighting, (2, 2, 3)).astype(np.float32)
    gain *= np.float32(rng.uniform(1.0 - cfg.lighting / 2, 1.0 + cfg.lighting / 2))
    field = cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
    f = out.astype(np.float32) * field
    std = rng.uniform(0.0, cfg.noise_std)
    if std > 0.3:
        bank = _noise_bank(h, w)
        oy, ox = (int(v) for v in noise_rng.integers(0, 64, 2))
        f += bank[oy : oy + h, ox : ox + w] * np.float32(std)
    return np.clip(f, 0, 255).astype(np.uint8)
