"""PoseTrack18 COCO-style video annotations -> :class:`Instance` records.

A PoseTrack18 file (one per video, or merged, as mmpose's ``posetrack18_val.json``) is COCO-style with video
fields: images carry ``vid_id``, ``frame_id`` (``1<video:6><frame:4>``), ``nframes``, ``is_labeled`` and
``ignore_regions_x`` / ``ignore_regions_y``; annotations carry ``track_id`` and ``bbox_head``. Keypoints use the
``posetrack18`` layout (COCO-17 with head_bottom / head_top for the eyes) and ``v`` is 1 for every labelled joint
(PoseTrack records no occlusion), kept as is.

Only labelled frames (``is_labeled``) give instances. Per instance: ``video_id`` = ``vid_id`` (a string such as
``"012834"``), ``frame_index`` = the frame number within the video (0-based, as in the file names ``000000.jpg``),
``track_id``, ``head_box`` (x1, y1, x2, y2) from ``bbox_head`` and ``extra["ignore_regions"]`` (list of (N, 2)
polygons, x, y) for the evaluator. Image paths are relative to the dataset root (``images/val/<video>/...``),
which is found above the annotation file when ``image_root`` is None.
"""

from __future__ import annotations

from pathlib import Path

from posedistill.data.instance import Instance
from posedistill.data.readers.coco import coco_instances
from posedistill.data.readers.common import load_json


def posetrack_instances(
    data: dict, path: str | Path, image_root: str | Path | None = None, layout: str = "posetrack18"
) -> list[Instance]:
    """Instances of the labelled frames of an already parsed PoseTrack18 file."""
    instances = coco_instances(data, path, image_root=image_root, layout=layout)
    return [inst for inst in instances if inst.extra.get("is_labeled", True)]


def read_posetrack18(
    json_file: str | Path, image_root: str | Path | None = None, layout: str = "posetrack18"
) -> list[Instance]:
    """Read a PoseTrack18 annotation file (see the module docstring).

    Args:
        json_file: a per-video file (``annotations/val/012834_mpii_test.json``) or a merged one.
        image_root: the dataset root the ``file_name`` paths are relative to; by default found by looking for
            the images next to, above and two levels above the file.
        layout: ``posetrack18`` (the default) or another 17-keypoint layout to read the points as.
    """
    return posetrack_instances(load_json(json_file), json_file, image_root=image_root, layout=layout)
