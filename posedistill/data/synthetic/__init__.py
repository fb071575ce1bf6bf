"""Procedural whole-body data: articulated mannequins rendered with exact COCO-WholeBody labels (133 points).

Images::

    from posedistill.data.synthetic import generate_dataset
    ann = generate_dataset("data/synth", 1000, size=(256, 256), difficulty="medium", seed=0, preview=True)

Videos (tracked people, drifting camera)::

    generate_videos("data/synth", 10, frames=32)   # -> data/synth/videos.json

One scene in memory (tests, on-the-fly training data)::

    image, people = render_sample(np.random.default_rng(0), make_config("hard"))

Modules: ``config`` (settings and the easy / medium / hard presets), ``kinematics`` (body model, joint limits,
forward kinematics), ``face`` and ``hand`` (landmark models), ``appearance``, ``background`` (clutter, occluders,
camera effects), ``draw`` (image + label-buffer primitives), ``render`` (scenes and visibility), ``video``,
``annotations`` (COCO-WholeBody records, streaming JSON writer), ``generate`` (datasets on disk), ``preview``.
"""

from posedistill.data.synthetic.config import DIFFICULTIES, SynthConfig, make_config
from posedistill.data.synthetic.generate import generate_dataset, generate_videos
from posedistill.data.synthetic.preview import contact_sheet, draw_pose
from posedistill.data.synthetic.render import Scene, render_sample, render_scene
from posedistill.data.synthetic.video import render_video

__all__ = [
    "DIFFICULTIES",
    "Scene",
    "SynthConfig",
    "contact_sheet",
    "draw_pose",
    "generate_dataset",
    "generate_videos",
    "make_config",
    "render_sample",
    "render_scene",
    "render_video",
]
