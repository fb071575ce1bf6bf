"""Generator settings: one dataclass, three difficulty presets.

Every random choice of the generator is drawn within the ranges below, so a difficulty is nothing more than a
:class:`SynthConfig` value. ``make_config("hard", size=(320, 240), people=(2, 4))`` starts from a preset and
overrides fields.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

DIFFICULTIES = ("easy", "medium", "hard")


@dataclass(frozen=True)
class SynthConfig:
    """What one generated image may contain.

    Sizes are in pixels, angles in degrees, probabilities in [0, 1]. ``scale`` is the standing height of a person
    as a fraction of the image height. ``pose_range`` shrinks every joint range towards its neutral value
    (1 = the full anatomical range); ``depth_range`` does the same for the out-of-image-plane motions only (0 =
    a flat, frontal pose, 1 = full 3-D).
    """

    difficulty: str = "medium"
    size: tuple[int, int] = (256, 256)  # width, height
    people: tuple[int, int] = (1, 3)
    scale: tuple[float, float] = (0.45, 0.9)
    rotation_std: float = 15.0  # in-plane rotation of a person, normal, clipped at 3 std
    front_prob: float = 0.7  # facing the camera within +-front_yaw; otherwise any yaw (side, back)
    front_yaw: float = 35.0
    pitch: float = 12.0  # lean towards / away from the camera, uniform +-
    pose_range: float = 0.8
    depth_range: float = 0.7
    prototype_prob: float = 0.6  # start from a named pose (walk, squat, wave...) rather than a uniform sample
    perspective_prob: float = 0.3  # weak-perspective foreshortening of near parts
    focal: tuple[float, float] = (2.5, 5.0)  # focal length in person heights when perspective is on
    truncation_prob: float = 0.15  # person allowed to stick out of the image
    overlap_prob: float = 0.35  # next person placed next to the previous one (mutual occlusion)
    shapes: tuple[int, int] = (3, 10)  # random background shapes
    distractors: tuple[int, int] = (0, 2)  # limb-, hand- and head-like background objects
    occluder_prob: float = 0.2  # a foreground object in front of the people
    background_contrast: float = 0.6  # colour variation across the background (0 = one flat colour)
    texture: float = 0.5  # strength of the background noise texture
    blur_prob: float = 0.3
    blur_sigma: float = 1.0
    noise_std: float = 4.0
    lighting: float = 0.25  # strength of the lighting gradient and colour cast
    jpeg_quality: tuple[int, int] = (80, 95)
    camera_drift: float = 0.6  # videos: how far the camera pans, zooms and rolls (0 = a fixed camera)
    min_part_px: float = 8.0  # faces / hands smaller than this are left unlabelled, as annotators do
    clothing_pattern_prob: float = 0.5

    def __post_init__(self) -> None:
        w, h = self.size
        if w < 16 or h < 16:
            raise ValueError(f"image size {self.size} is too small: both sides must be at least 16 pixels")
        lo, hi = self.people
        if lo < 0 or hi < lo:
            raise ValueError(f"people range {self.people} must satisfy 0 <= min <= max")
        if hi > 2000:
            raise ValueError(f"at most 2000 people per image, got {hi}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale range {self.scale} must satisfy 0 < min <= max")
        q0, q1 = self.jpeg_quality
        if not 1 <= q0 <= q1 <= 100:
            raise ValueError(f"jpeg_quality {self.jpeg_quality} must satisfy 1 <= min <= max <= 100")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


_PRESETS: dict[str, dict[str, Any]] = {
    # One big, mostly frontal person on a calm background: a sanity-check level.
    "easy": dict(
        people=(1, 1), scale=(0.7, 0.92), rotation_std=4.0, front_prob=1.0, front_yaw=20.0, pitch=5.0,
        pose_range=0.5, depth_range=0.3, prototype_prob=0.8, perspective_prob=0.0, truncation_prob=0.0,
        overlap_prob=0.0, shapes=(0, 3), distractors=(0, 0), occluder_prob=0.0, background_contrast=0.25,
        texture=0.15, blur_prob=0.0, blur_sigma=0.0, noise_std=1.5, lighting=0.1, jpeg_quality=(90, 95),
        clothing_pattern_prob=0.3, camera_drift=0.3,
    ),
    "medium": {},
    # Crowds, small people, any orientation, foreshortening, clutter that looks like body parts, bad pictures.
    "hard": dict(
        people=(2, 4), scale=(0.28, 0.85), rotation_std=35.0, front_prob=0.45, front_yaw=45.0, pitch=25.0,
        pose_range=1.0, depth_range=1.0, prototype_prob=0.4, perspective_prob=0.6, focal=(1.6, 4.0),
        truncation_prob=0.3, overlap_prob=0.45, shapes=(6, 16), distractors=(2, 5), occluder_prob=0.35,
        background_contrast=0.9, texture=0.9, blur_prob=0.5, blur_sigma=1.6, noise_std=7.0, lighting=0.4,
        jpeg_quality=(60, 90), clothing_pattern_prob=0.7, camera_drift=1.0,
    ),
}  # fmt: skip


def make_config(
    difficulty: str = "medium",
    size: tuple[int, int] | None = None,
    people: tuple[int, int] | None = None,
    **overrides: Any,
) -> SynthConfig:
    """The preset of ``difficulty`` with ``size``, ``people`` and any other field overridden."""
    if difficulty not in _PRESETS:
        raise ValueError(f"unknown difficulty {difficulty!r}; choose one of {', '.join(DIFFICULTIES)}")
    fields: dict[str, Any] = dict(_PRESETS[difficulty], difficulty=difficulty)
    if size is not None:
        fields["size"] = (int(size[0]), int(size[1]))
    if people is not None:
        fields["people"] = (int(people[0]), int(people[1]))
    fields.update(overrides)
    return replace(SynthConfig(), **fields)
