"""How a mannequin looks: skin, hair, clothes and their patterns. Colours are BGR uint8 triplets (OpenCV order)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Color = tuple[int, int, int]

# Skin tones from light to dark (RGB), jittered per person.
SKIN_RGB = np.array(
    [[255, 224, 196], [241, 194, 150], [224, 172, 105], [198, 134, 66], [160, 105, 60], [120, 75, 40], [80, 50, 30]],
    dtype=np.float64,
)
HAIR_RGB = np.array([[20, 15, 10], [60, 40, 25], [110, 75, 40], [180, 140, 80], [230, 210, 150], [150, 150, 150],
                      [130, 40, 20]], dtype=np.float64)  # fmt: skip


def _bgr(rgb: np.ndarray) -> Color:
    r, g, b = np.clip(rgb, 0, 255).astype(int).tolist()
    return (b, g, r)


def random_color(rng: np.random.Generator, sat: tuple[float, float] = (0.15, 1.0),
                 val: tuple[float, float] = (0.15, 1.0)) -> Color:  # fmt: skip
    """A random BGR colour from a uniform hue and the given saturation / value ranges."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].tolist()
    return (b, g, r)


def shade(c: Color, k: float) -> Color:
    """Colour scaled by k (k < 1 darker), towards white when a dark colour must get lighter."""
    if k <= 1.0:
        return (int(c[0] * k), int(c[1] * k), int(c[2] * k))
    return tuple(int(min(255, v + (255 - v) * (k - 1.0))) for v in c)  # type: ignore[return-value]


def edge_of(c: Color) -> Color:
    """Outline colour: darker, or lighter for colours that are already nearly black."""
    return shade(c, 0.5) if sum(c) > 120 else shade(c, 1.6)


@dataclass
class Appearance:
    skin: Color
    hair: Color
    shirt: Color
    sleeves: Color  # forearms: the shirt colour (long sleeves) or the skin
    trousers: Color
    shins: Color  # the trousers colour or the skin (shorts, skirts)
    shoes: Color
    lips: Color
    iris: Color
    bald: bool
    pattern: str | None  # None, "stripes" (across torso and limbs) or "bands" (cuffs and a belt)
    pattern_color: Color
    pattern_n: int  # number of stripes

    @classmethod
    def sample(cls, rng: np.random.Generator, pattern_prob: float = 0.5) -> Appearance:
        if rng.random() < 0.12:  # a painted mannequin: any skin colour, still readable
            skin = random_color(rng, (0.0, 0.6), (0.35, 1.0))
        else:
            k = rng.uniform(0, len(SKIN_RGB) - 1)
            i = int(k)
            rgb = SKIN_RGB[i] * (1 - (k - i)) + SKIN_RGB[min(i + 1, len(SKIN_RGB) - 1)] * (k - i)
            skin = _bgr(rgb + rng.normal(0, 8, 3))
        hair = _bgr(HAIR_RGB[rng.integers(len(HAIR_RGB))] + rng.normal(0, 10, 3))
        shirt = random_color(rng)
        trousers = random_color(rng, (0.1, 0.9), (0.1, 0.8))
        pattern = None
        if rng.random() < pattern_prob:
            pattern = "stripes" if rng.random() < 0.6 else "bands"
        return cls(
            skin=skin,
            hair=hair,
            shirt=shirt,
            sleeves=shirt if rng.random() < 0.5 else skin,
            trousers=trousers,
            shins=trousers if rng.random() < 0.75 else skin,
            shoes=random_color(rng, (0.0, 0.8), (0.05, 0.7)),
            lips=shade(_bgr(np.array([200.0, 90.0, 90.0]) + rng.normal(0, 20, 3)), rng.uniform(0.6, 1.0)),
            iris=random_color(rng, (0.2, 0.9), (0.05, 0.45)),
            bald=bool(rng.random() < 0.1),
            pattern=pattern,
            pattern_color=random_color(rng),
            pattern_n=int(rng.integers(2, 7)),
        )
