"""Videos: tracked people moving smoothly through a scene seen by a drifting camera.

A video is a background canvas larger than the frame, a few tracks and a camera path. A track keeps its body,
looks and id for the whole clip; its joint angles follow sums of slow sinusoids around a base pose (plus a gait
cycle while it walks), clipped to the anatomical limits, so consecutive frames differ by small, smooth motions.
Walkers cross the canvas and so enter and leave the frame; others approach or recede, or stay and gesture. The
camera pans, zooms and rolls slowly; the same similarity maps the canvas and the people into each frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from copy import copy
from dataclasses import dataclass, replace

import cv2
import numpy as np

from posedistill.data.synthetic.background import make_background
from posedistill.data.synthetic.config import SynthConfig
from posedistill.data.synthetic.kinematics import HIGH, IDX, IS_ANGLE, LOW, NEUTRAL, limit_pose, sample_pose
from posedistill.data.synthetic.render import Camera, Person, Scene, compose, project, sample_person

_WALK = [IDX[n] for n in ("l_hip_flex", "r_hip_flex", "l_knee", "r_knee", "l_sh_flex", "r_sh_flex")]


@dataclass
class Track:
    """One person's motion in canvas pixels; :meth:`at` gives the person at frame t."""

    person: Person
    base_pose: np.ndarray
    amp: np.ndarray  # (D,) oscillation amplitude of each pose entry
    freq: np.ndarray  # (D,) radians per frame
    phase: np.ndarray  # (D,)
    walk_amp: float  # hip swing (radians); 0 = not walking
    walk_freq: float  # gait cycles, radians per frame
    walk_phase: float
    pos0: np.ndarray  # (2,) pelvis at frame 0
    vel: np.ndarray  # (2,) pixels per frame
    yaw0: float
    yaw_rate: float  # radians per frame
    height0: float
    growth: float  # height factor per frame (approaching > 1)
    roll0: float
    pose_range: float
    depth_range: float

    def at(self, t: int) -> Person:
        p = copy(self.person)
        pose = self.base_pose + self.amp * np.sin(self.freq * t + self.phase)
        if self.walk_amp > 0:
            g = self.walk_freq * t + self.walk_phase
            a = self.walk_amp
            pose[_WALK] += (a * math.sin(g), -a * math.sin(g),
                            a * 0.9 * (1 + math.sin(g - 1.2)), a * 0.9 * (1 - math.sin(g - 1.2)),
                            -0.8 * a * math.sin(g), 0.8 * a * math.sin(g))  # fmt: skip
        p.pose = limit_pose(pose, self.pose_range, self.depth_range)
        p.offset = self.pos0 + self.vel * t
        p.yaw = self.yaw0 + self.yaw_rate * t
        p.height = self.height0 * self.growth**t
        p.roll = self.roll0
        return p


def sample_track(rng: np.random.Generator, cfg: SynthConfig, track_id: int, canvas: tuple[int, int],
                 frames: int) -> Track:  # fmt: skip
    """A walker crossing the canvas, a person approaching or receding, or one gesturing on the spot.

    The canvas is centred on the frame (``cfg.size``) with a margin around it."""
    cw, ch = canvas
    w, h = cfg.size
    person = sample_person(rng, cfg)
    person.track_id = track_id
    kind = rng.choice(3, p=[0.45, 0.2, 0.35])
    height = person.height
    span = HIGH - LOW
    freq = rng.uniform(2 * np.pi / 60, 2 * np.pi / 15, len(span))
    phase = rng.uniform(0, 2 * np.pi, len(span))
    ground = (ch - h) / 2 + rng.uniform(0.7, 1.0) * h  # where the feet are: in the lower part of the frame
    pos0 = np.array([(cw - w) / 2 + rng.uniform(0.1, 0.9) * w, ground - 0.5 * height])
    vel, growth, walk_amp, yaw_rate = np.zeros(2), 1.0, 0.0, 0.0
    if kind == 0:  # walk across: facing the direction of motion, pass the centre at a random time
        speed = rng.uniform(0.5, 1.5) * height / 30.0 * rng.choice([-1.0, 1.0])  # walking .. jogging
        t_centre = rng.uniform(-0.3, 1.3) * frames
        vel = np.array([speed, rng.normal(0, 0.05) * abs(speed)])
        pos0[0] = cw / 2 - speed * t_centre
        yaw0 = math.copysign(math.pi / 2, speed) + rng.normal(0, 0.35)
        base = NEUTRAL.copy()
        walk_amp = math.radians(rng.uniform(15, 30))
        amp_scale = 0.05
    elif kind == 1:  # approach (towards the camera, yaw ~ 0) or recede (yaw ~ pi)
        towards = rng.random() < 0.5
        yaw0 = (0.0 if towards else math.pi) + rng.normal(0, 0.3)
        growth = 1.0 + rng.uniform(0.002, 0.008) * (1 if towards else -1)
        vel = np.array([rng.normal(0, 0.3), 0.0])
        base = NEUTRAL.copy()
        walk_amp = math.radians(rng.uniform(12, 25))
        amp_scale = 0.05
    else:  # gestures on the spot
        yaw0 = person.yaw
        yaw_rate = rng.normal(0, 0.01)
        base = sample_pose(rng, cfg.pose_range, cfg.depth_range, cfg.prototype_prob)
        vel = rng.normal(0, 0.2, 2)
        amp_scale = 0.18
    walk_freq = 2 * np.pi * abs(float(np.hypot(*vel))) / (0.8 * height) if walk_amp else 0.0
    if kind == 1:
        walk_freq = 2 * np.pi / rng.uniform(20, 35)
    amp = rng.uniform(0, 1, len(span)) * span * amp_scale
    amp = np.where(IS_ANGLE, amp, amp * 2.0)  # faces and hands move more (relative to their range)
    roll0 = math.radians(float(np.clip(rng.normal(0, 0.3 * cfg.rotation_std), -30, 30)))
    return Track(person, base, amp, freq, phase, walk_amp, walk_freq, rng.uniform(0, 2 * np.pi), pos0, vel,
                 yaw0, yaw_rate, height, growth, roll0, cfg.pose_range, cfg.depth_range)  # fmt: skip


@dataclass
class CameraPath:
    """A slow pan / zoom / roll around the canvas centre; :meth:`at` gives frame t's world-to-image similarity."""

    canvas: tuple[int, int]
    size: tuple[int, int]
    pan_amp: np.ndarray  # (2,) pixels
    pan_freq: np.ndarray  # (2,)
    pan_phase: np.ndarray  # (2,)
    zoom_amp: float
    zoom_freq: float
    roll_amp: float  # radians
    roll_freq: float

    @classmethod
    def sample(cls, rng: np.random.Generator, canvas: tuple[int, int], size: tuple[int, int], drift: float,
               margin: float) -> CameraPath:  # fmt: skip
        return cls(
            canvas, size,
            pan_amp=rng.uniform(0.2, 0.5, 2) * margin * drift, pan_freq=rng.uniform(2 * np.pi / 300, 2 * np.pi / 80, 2),
            pan_phase=rng.uniform(0, 2 * np.pi, 2), zoom_amp=0.08 * drift * rng.uniform(0.3, 1.0),
            zoom_freq=rng.uniform(2 * np.pi / 300, 2 * np.pi / 100), roll_amp=math.radians(3.0) * drift * rng.random(),
            roll_freq=rng.uniform(2 * np.pi / 300, 2 * np.pi / 100),
        )  # fmt: skip

    def at(self, t: int) -> Camera:
        centre = np.array(self.canvas, np.float64) / 2 + self.pan_amp * np.sin(self.pan_freq * t + self.pan_phase)
        zoom = 1.0 + self.zoom_amp * math.sin(self.zoom_freq * t)
        rot = self.roll_amp * math.sin(self.roll_freq * t)
        c, s = math.cos(rot) * zoom, math.sin(rot) * zoom
        tx = self.size[0] / 2 - (c * centre[0] - s * centre[1])
        ty = self.size[1] / 2 - (s * centre[0] + c * centre[1])
        return zoom, rot, tx, ty


def camera_matrix(camera: Camera) -> np.ndarray:
    """(2, 3) affine matrix of a camera similarity, for cv2.warpAffine."""
    zoom, rot, tx, ty = camera
    c, s = math.cos(rot) * zoom, math.sin(rot) * zoom
    return np.array([[c, -s, tx], [s, c, ty]])


def render_video(rng: np.random.Generator, cfg: SynthConfig, frames: int, keep_layers: bool = False) -> Iterator[Scene]:
    """Yield ``frames`` scenes of one clip; people records carry their ``track_id`` (0, 1, ... per clip).

    Foreground occluders are left out of videos (they would pop in and out); people still occlude each other.
    """
    w, h = cfg.size
    margin = 0.25 * max(w, h)
    canvas = (int(w + 2 * margin), int(h + 2 * margin))
    vcfg = replace(cfg, occluder_prob=0.0)
    background = make_background(rng, vcfg, size=canvas)
    lo, hi = cfg.people
    tracks = [sample_track(rng, vcfg, k, canvas, frames) for k in range(int(rng.integers(lo, hi + 1)))]
    path = CameraPath.sample(rng, canvas, (w, h), cfg.camera_drift, margin)
    look_seed = int(rng.integers(2**62))
    for t in range(frames):
        camera = path.at(t)
        bg = cv2.warpAffine(background, camera_matrix(camera), (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        persons = [tr.at(t) for tr in tracks]
        projs = [project(p, camera) for p in persons]
        yield compose(rng, vcfg, bg, persons, projs, keep_layers, look_rng=np.random.default_rng(look_seed))
