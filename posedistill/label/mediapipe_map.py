"""MediaPipe Holistic landmarks -> COCO-WholeBody-133 keypoints.

MediaPipe Holistic (legacy ``mp.solutions.holistic``) gives, for the one person it finds in an image:

- ``pose_landmarks``: 33 BlazePose points (:data:`posedistill.layouts.MEDIAPIPE_POSE_NAMES`), each with a
  ``visibility`` (the model's probability that the point is visible in the image);
- ``face_landmarks``: the 468-point face mesh, no per-point score;
- ``left_hand_landmarks`` / ``right_hand_landmarks``: 21 hand points each, no per-point score. ``left`` is the
  person's own left hand (its wrist lies nearer pose landmark 15, ``left_wrist``, than 16 for 114 of 117 hands
  on coco_dev/julito; the exceptions are hands next to each other).

All coordinates are normalised to the image MediaPipe was given (0 = its left / top edge, 1 = its right / bottom
edge). This module maps them onto COCO-WholeBody's 133 points:

=============  ==========  ===================================================================================
WholeBody      points      from
=============  ==========  ===================================================================================
body 0-16      17          pose landmarks with the same names (:func:`posedistill.layouts.get_mapping`)
feet 17-22     6           pose ``left/right_heel`` -> heels, ``left/right_foot_index`` (the tip of the foot,
                           nearly always the big toe) -> big toes; the small toes (18, 21) are never labelled
face 23-90     68          face mesh points :data:`FACE68_FROM_MESH` (iBUG-300W / dlib-68 order)
hands 91-132   21 + 21     hand landmarks as they are: MediaPipe's hand order (wrist, then thumb, index, middle,
                           ring, pinky from base to tip) is COCO-WholeBody's (root, thumb1-4, ..., pinky1-4)
=============  ==========  ===================================================================================

Confidence (``scores``), documented in ``docs/label.md``: the pose ``visibility`` for body and feet; for the
face, the visibility of the pose nose (landmark 0); for each hand, the visibility of the pose wrist of that side
(15 left, 16 right). Face and hands have no per-point score, and MediaPipe finds them from the pose (their
regions of interest are cut around the pose's face and wrists), so their confidence is the confidence that the
anchor point the part hangs on is visible. Without a pose the face and hands would have no anchor; MediaPipe
never returns them without one, and this module then gives them 1.0.

Numpy only; MediaPipe itself is not imported here (the conversion works on any object with ``.landmark[i].x /
.y / .visibility``), so it is testable without MediaPipe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posedistill.layouts import get_mapping

NUM_WHOLEBODY = 133
NUM_POSE = 33
NUM_FACE_MESH = 468
NUM_HAND = 21
FACE_START, LEFT_HAND_START, RIGHT_HAND_START = 23, 91, 112
POSE_NOSE, POSE_LEFT_WRIST, POSE_RIGHT_WRIST = 0, 15, 16

# COCO-WholeBody face point i (iBUG-300W order, 0-based) <- MediaPipe face-mesh index FACE68_FROM_MESH[i].
#
# Source: the mediapipe-468 -> dlib-68 correspondence of PeizhiYan/Mediapipe_2_Dlib_Landmarks
# (``mediapipe2dlib/mp2dlib.py``, Sep. 2024), which gives one mesh point per dlib point except for four points
# it averages from two (jaw 3, 4, 12 and nose 27, 28). Here every point is one mesh index (no averaging), and:
# - jaw 0-16: the face-oval points nearest to nine equal arc-length steps from the ear-level oval point (127 /
#   356) to the chin (152), measured on the 38 faces MediaPipe found in coco_dev/julito (mean arc fractions of
#   the chosen points: 0, .10, .30, .42, .52, .61, .77, .84, 1); the two halves are mirror images of each
#   other. The source differs at 2, 3-4, 6-7 (93, 132/58 and 58/172 averaged, 136, 150, 176) and mirrors.
# - nose bridge 27-30: 168 (level with the upper eyelids, where iBUG puts 27), 197, 5, 4 (the source averages
#   168/6 and 197/195 for 27 and 28).
# Everything else (brows, nose base, eyes, lips) is the source's. Sides follow iBUG: 0-8 and 17-21, 36-41 are
# the person's right (the image's left in a frontal face), as in MediaPipe's FACEMESH_RIGHT_* sets.
FACE68_FROM_MESH: tuple[int, ...] = (
    # jaw, person's right ear level -> chin -> left ear level (0-16)
    127, 234, 132, 58, 172, 136, 149, 176, 152, 400, 378, 365, 397, 288, 361, 454, 356,
    # right brow outer -> inner (17-21), left brow inner -> outer (22-26)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose bridge top -> tip (27-30), nose base right -> left (31-35)
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # right eye: outer corner, upper outer, upper inner, inner corner, lower inner, lower outer (36-41)
    33, 160, 158, 133, 153, 144,
    # left eye: inner corner, upper inner, upper outer, outer corner, lower outer, lower inner (42-47)
    362, 385, 387, 263, 373, 380,
    # outer lips: right corner, upper lip right -> left, left corner, lower lip left -> right (48-59)
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,
    # inner lips: right corner, upper right -> left, left corner, lower left -> right (60-67)
    78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip

# Hands: MediaPipe's 21 hand landmarks are COCO-WholeBody's hand points in the same order.
HAND21_FROM_MEDIAPIPE: tuple[int, ...] = tuple(range(NUM_HAND))


def _pose_to_wholebody() -> np.ndarray:
    """(133,) int: the pose landmark of each WholeBody point, -1 where the pose has none."""
    return np.asarray(get_mapping("mediapipe_pose", "coco_wholebody").src_index, dtype=np.int64)


POSE_FROM_WHOLEBODY: np.ndarray = _pose_to_wholebody()


def landmarks_array(landmarks: Any, expected: int, with_visibility: bool = False) -> np.ndarray | None:
    """A MediaPipe landmark list (``.landmark[i].x / .y`` [/ ``.visibility``]) -> (n, 2) or (n, 3) float64
    normalised x, y [, visibility]; None when ``landmarks`` is None. Raises ValueError on a wrong count."""
    if landmarks is None:
        return None
    points = list(landmarks.landmark)
    if len(points) < expected:
        raise ValueError(f"expected {expected} landmarks, got {len(points)}")
    points = points[:expected]  # the refined face mesh has 478 (10 iris points after the 468)
    if with_visibility:
        return np.array([[p.x, p.y, p.visibility] for p in points], dtype=np.float64)
    return np.array([[p.x, p.y] for p in points], dtype=np.float64)


def holistic_to_wholebody(
    result: Any,
    crop_xywh: tuple[float, float, float, float],
    image_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One MediaPipe Holistic result on a crop -> COCO-WholeBody keypoints in the full image.

    Args:
        result: what ``Holistic.process`` returns (attributes ``pose_landmarks``, ``face_landmarks``,
            ``left_hand_landmarks``, ``right_hand_landmarks``, each None or a landmark list).
        crop_xywh: the crop given to MediaPipe, in image pixels: left, top (its first pixel), width, height
            (pixels); ``(0, 0, W, H)`` for the whole image.
        image_size: (W, H) of the full image.

    Returns:
        keypoints (133, 2) float32 in 0-based image pixels (pixel centres at integers: a normalised ``x`` in the
        crop becomes ``left + x * width - 0.5``), scores (133,) float32 (see the module docstring) and labelled
        (133,) bool: the point was given by MediaPipe and lies inside the image. Unlabelled points hold (0, 0)
        and score 0.
    """
    left, top, cw, ch = (float(v) for v in crop_xywh)
    img_w, img_h = image_size
    norm = np.zeros((NUM_WHOLEBODY, 2), dtype=np.float64)
    scores = np.zeros(NUM_WHOLEBODY, dtype=np.float64)
    given = np.zeros(NUM_WHOLEBODY, dtype=bool)

    pose = landmarks_array(getattr(result, "pose_landmarks", None), NUM_POSE, with_visibility=True)
    if pose is not None:
        defined = POSE_FROM_WHOLEBODY >= 0
        src = POSE_FROM_WHOLEBODY[defined]
        norm[defined] = pose[src, :2]
        scores[defined] = pose[src, 2]
        given[defined] = True

    def anchor(index: int) -> float:
        return float(pose[index, 2]) if pose is not None else 1.0

    parts = (
        ("face_landmarks", NUM_FACE_MESH, FACE_START, FACE68_FROM_MESH, anchor(POSE_NOSE)),
        ("left_hand_landmarks", NUM_HAND, LEFT_HAND_START, HAND21_FROM_MEDIAPIPE, anchor(POSE_LEFT_WRIST)),
        ("right_hand_landmarks", NUM_HAND, RIGHT_HAND_START, HAND21_FROM_MEDIAPIPE, anchor(POSE_RIGHT_WRIST)),
    )
    for attr, count, start, index, score in parts:
        points = landmarks_array(getattr(result, attr, None), count)
        if points is None:
            continue
        sl = slice(start, start + len(index))
        norm[sl] = points[list(index)]
        scores[sl] = score
        given[sl] = True

    # continuous image coordinates (0 = the left edge of the first pixel), then 0-based pixel centres
    xs = left + norm[:, 0] * cw
    ys = top + norm[:, 1] * ch
    inside = np.isfinite(xs) & np.isfinite(ys) & (xs >= 0) & (xs < img_w) & (ys >= 0) & (ys < img_h)
    labelled = given & inside
    keypoints = np.stack([xs - 0.5, ys - 0.5], axis=1)
    keypoints = np.where(labelled[:, None], keypoints, 0.0).astype(np.float32)
    scores = np.where(labelled, np.clip(np.nan_to_num(scores), 0.0, 1.0), 0.0).astype(np.float32)
    return keypoints, scores, labelled
