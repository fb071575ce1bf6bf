"""The result of one frame: keypoints, scores, boxes and track ids, with converters to COCO, OpenPose and MMPose
JSON, a drawing method and an Ultralytics-like view.

Conventions (``docs`` peers-and-conventions §4.3):

- coordinates are **x before y**, in pixels of the original image (not the model crop, not normalised);
- ``scores`` are the model's keypoint scores. For RTMPose/DWPose (SimCC heads) they are the raw maxima of the
  SimCC logits, **not probabilities**: they are usually in about [0, 1] for confident points but can exceed 1 or
  be negative; heatmap models give heatmap maxima. Thresholds such as ``kpt_thr=0.3`` follow MMPose/DWPose and
  only make sense relative to the model;
- ``box_scores`` are the detector's scores (1.0 when the box was the whole image or given by the user);
- ``track_ids`` are stable ids from :class:`posedistill.infer.tracking.PoseTracker`, ``-1`` when untracked.

Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# These moved to keypoint_sets.py (shared with draw.py); re-exported under their old names.
from posedistill.infer.keypoint_sets import OPENPOSE18_FROM_COCO as OPENPOSE18_FROM_COCO
from posedistill.infer.keypoint_sets import OPENPOSE18_NAMES as OPENPOSE18_NAMES
from posedistill.infer.keypoint_sets import WB_FACE as _WB_FACE
from posedistill.infer.keypoint_sets import WB_LHAND as _WB_LHAND
from posedistill.infer.keypoint_sets import WB_RHAND as _WB_RHAND
from posedistill.infer.keypoint_sets import openpose18 as openpose18
from posedistill.infer.keypoint_sets import to_layout as to_layout
from posedistill.infer.keypoint_sets import to_wholebody as _wholebody
from posedistill.layouts import get_layout

# COCO-WholeBody splits as xtcocotools / CocoWholeBodyMetric read them
_WB_COCO_SPLITS = (
    ("keypoints", slice(0, 17)),
    ("foot_kpts", slice(17, 23)),
    ("face_kpts", _WB_FACE),
    ("lefthand_kpts", _WB_LHAND),
    ("righthand_kpts", _WB_RHAND),
)
_DECIMALS = 3  # JSON outputs: 1/1000 pixel is plenty and keeps files small


def _round(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype=np.float64), _DECIMALS).tolist()


def _interleave(xy: np.ndarray, s: np.ndarray) -> list[float]:
    """(K, 2), (K,) -> flat [x, y, s] * K as rounded Python floats."""
    return _round(np.concatenate([xy, s[:, None]], axis=1).reshape(-1))


@dataclass
class PoseResult:
    """Poses of the people in one image or video frame.

    keypoints:   (N, K, 2) float32, x then y, original-image pixels
    scores:      (N, K) float32, model keypoint scores (raw SimCC logit maxima for RTMPose: not in [0, 1])
    boxes:       (N, 4) float32 person boxes x1, y1, x2, y2 in pixels
    box_scores:  (N,) float32 detector scores
    track_ids:   (N,) int64 stable track ids, -1 = untracked
    layout:      keypoint layout name (``posedistill.layouts.get_layout``)
    image_shape: (height, width) of the original image
    frame_id:    frame index in a video / image sequence, None for a lone image
    """

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    track_ids: np.ndarray
    layout: str
    image_shape: tuple[int, int]
    frame_id: int | None = None

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.box_scores = np.asarray(self.box_scores, dtype=np.float32).reshape(-1)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        self.image_shape = (int(self.image_shape[0]), int(self.image_shape[1]))
        k = get_layout(self.layout).num_keypoints
        n = self.keypoints.shape[0] if self.keypoints.ndim == 3 else -1
        if self.keypoints.ndim != 3 or self.keypoints.shape[1:] != (k, 2):
            raise ValueError(f"keypoints must be (N, {k}, 2) for layout {self.layout!r}, got {self.keypoints.shape}")
        expected = {"scores": (n, k), "boxes": (n, 4), "box_scores": (n,), "track_ids": (n,)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must be {shape} for {n} people, got {getattr(self, name).shape}")

    # ------------------------------------------------------------------------------------------- construction
    @classmethod
    def empty(cls, layout: str, image_shape: tuple[int, int], frame_id: int | None = None) -> PoseResult:
        """A result with no people."""
        k = get_layout(layout).num_keypoints
        return cls(
            keypoints=np.zeros((0, k, 2), np.float32),
            scores=np.zeros((0, k), np.float32),
            boxes=np.zeros((0, 4), np.float32),
            box_scores=np.zeros((0,), np.float32),
            track_ids=np.zeros((0,), np.int64),
            layout=layout,
            image_shape=image_shape,
            frame_id=frame_id,
        )

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray | list) -> PoseResult:
        """A result with the selected people (int, slice, index array or boolean mask)."""
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return PoseResult(
            keypoints=self.keypoints[index],
            scores=self.scores[index],
            boxes=self.boxes[index],
            box_scores=self.box_scores[index],
            track_ids=self.track_ids[index],
            layout=self.layout,
            image_shape=self.image_shape,
            frame_id=self.frame_id,
        )

    def copy(self) -> PoseResult:
        return self[np.arange(len(self))]

    # ------------------------------------------------------------------------------------ Ultralytics-like view
    @property
    def xy(self) -> np.ndarray:
        """(N, K, 2) keypoints in pixels, x then y."""
        return self.keypoints

    @property
    def xyn(self) -> np.ndarray:
        """(N, K, 2) keypoints normalised by the image width and height (x / w, y / h)."""
        h, w = self.image_shape
        return self.keypoints / np.asarray([max(w, 1), max(h, 1)], dtype=np.float32)

    @property
    def conf(self) -> np.ndarray:
        """(N, K) keypoint scores (see the module docstring for their range)."""
        return self.scores

    @property
    def xyxy(self) -> np.ndarray:
        """(N, 4) boxes x1, y1, x2, y2 in pixels."""
        return self.boxes

    @property
    def xywh(self) -> np.ndarray:
        """(N, 4) boxes x, y (top-left), width, height in pixels (the COCO convention)."""
        out = self.boxes.copy()
        out[:, 2:] -= out[:, :2]
        return out

    # ---------------------------------------------------------------------------------------------- exports
    def instance_scores(self, kpt_score_thr: float = 0.2) -> np.ndarray:
        """(N,) person scores as MMPose's CocoMetric computes them (score_mode 'bbox_keypoint'): the box score
        times the mean of the keypoint scores above ``kpt_score_thr`` (0 when none is above)."""
        valid = self.scores > kpt_score_thr
        n_valid = valid.sum(axis=1)
        mean = np.where(n_valid > 0, (self.scores * valid).sum(axis=1) / np.maximum(n_valid, 1), 0.0)
        return (self.box_scores * mean).astype(np.float32)

    def to_coco(
        self, image_id: int | str | None = None, category_id: int = 1, kpt_score_thr: float = 0.2
    ) -> list[dict[str, Any]]:
        """COCO keypoint results, one dict per person: ``image_id`` (default: the frame index, 0 for a lone image),
        ``category_id``, flat ``keypoints`` [x, y, score] * 17, ``bbox`` [x, y, w, h], ``score`` (see
        :meth:`instance_scores`) and ``track_id``.

        Whole-body layouts are split as xtcocotools / CocoWholeBodyMetric expect: ``keypoints`` (17),
        ``foot_kpts`` (6), ``face_kpts`` (68), ``lefthand_kpts`` (21), ``righthand_kpts`` (21). Other layouts put all
        their keypoints in ``keypoints``.
        """
        if image_id is None:
            image_id = 0 if self.frame_id is None else int(self.frame_id)
        person_scores = self.instance_scores(kpt_score_thr)
        splits = _WB_COCO_SPLITS if self.layout == "coco_wholebody" else (("keypoints", slice(None)),)
        xywh = self.xywh
        out = []
        for i in range(len(self)):
            rec: dict[str, Any] = {"image_id": image_id, "category_id": category_id}
            for key, sl in splits:
                rec[key] = _interleave(self.keypoints[i, sl], self.scores[i, sl])
            rec["bbox"] = _round(xywh[i])
            rec["score"] = round(float(person_scores[i]), 6)
            rec["track_id"] = int(self.track_ids[i])
            out.append(rec)
        return out

    def to_openpose(
        self,
        include_body: bool = True,
        include_face: bool = True,
        include_hands: bool = True,
        face_70: bool = False,
        kpt_thr: float | None = None,
        version: float = 1.3,
    ) -> dict[str, Any]:
        """OpenPose JSON for this frame (openpose ``doc/02_output.md``), plus ControlNet's ``canvas_height`` /
        ``canvas_width``.

        ``pose_keypoints_2d`` is the OpenPose-18 body (see :func:`openpose18`), flat [x, y, c] * 18; face (68 iBUG
        points, or 70 with ``face_70``: OpenPose's two pupils, filled with the right then the left COCO eye) and
        hands come from whole-body layouts and are empty lists otherwise. The include switches apply to the data
        (an excluded part is written as ``[]``, as OpenPose does when a detector is off), not only to drawings.
        With ``kpt_thr`` set, points scoring below it are written as 0, 0, 0 (OpenPose's "not detected").
        ``person_id`` is ``[track_id]`` (OpenPose writes a list; -1 when untracked).
        """

        def flat(k: np.ndarray, s: np.ndarray) -> list[float]:
            if kpt_thr is not None:
                low = s < kpt_thr
                k = np.where(low[:, None], 0.0, k)
                s = np.where(low, 0.0, s)
            return _interleave(k, s)

        body_k, body_s = openpose18(self.keypoints, self.scores, self.layout)
        wb = _wholebody(self.keypoints, self.scores, self.layout) if (include_face or include_hands) else None
        people = []
        for i in range(len(self)):
            person: dict[str, Any] = {"person_id": [int(self.track_ids[i])]}
            person["pose_keypoints_2d"] = flat(body_k[i], body_s[i]) if include_body else []
            face: list[float] = []
            left: list[float] = []
            right: list[float] = []
            if wb is not None:
                wk, ws = wb
                if include_face:
                    fk, fs = wk[i, _WB_FACE], ws[i, _WB_FACE]
                    if face_70:  # OpenPose point 68 is the right pupil, 69 the left one
                        fk = np.concatenate([fk, wk[i, [2, 1]]], axis=0)
                        fs = np.concatenate([fs, ws[i, [2, 1]]], axis=0)
                    face = flat(fk, fs)
                if include_hands:
                    left = flat(wk[i, _WB_LHAND], ws[i, _WB_LHAND])
                    right = flat(wk[i, _WB_RHAND], ws[i, _WB_RHAND])
            person.update(
                face_keypoints_2d=face,
                hand_left_keypoints_2d=left,
                hand_right_keypoints_2d=right,
                pose_keypoints_3d=[],
                face_keypoints_3d=[],
                hand_left_keypoints_3d=[],
                hand_right_keypoints_3d=[],
            )
            people.append(person)
        h, w = self.image_shape
        return {"version": version, "people": people, "canvas_height": h, "canvas_width": w}

    def to_json(self, name: str | None = None) -> dict[str, Any]:
        """One MMPose-demo ``instance_info`` entry: ``{"frame_id", "instances": [{"keypoints": [[x, y], ...],
        "keypoint_scores": [...], "bbox": [[x1, y1, x2, y2]], "bbox_score", "track_id"}]}`` (``track_id`` is our
        addition; ``name``, the image or frame name, is added when given)."""
        instances = [
            {
                "keypoints": _round(self.keypoints[i]),
                "keypoint_scores": _round(self.scores[i]),
                "bbox": [_round(self.boxes[i])],
                "bbox_score": round(float(self.box_scores[i]), 6),
                "track_id": int(self.track_ids[i]),
            }
            for i in range(len(self))
        ]
        entry: dict[str, Any] = {"frame_id": 0 if self.frame_id is None else int(self.frame_id)}
        if name is not None:
            entry["name"] = name
        entry["instances"] = instances
        return entry

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """One row per person, Ultralytics-style, for CSV / DataFrame users: ``name`` ("person"), ``class`` (0),
        ``confidence`` (box score), ``box`` {x1, y1, x2, y2}, ``track_id`` (-1 untracked) and ``keypoints``
        {x: [...], y: [...], visible: [...]} where ``visible`` holds the keypoint scores. ``normalize`` divides
        coordinates by the image width / height."""
        h, w = self.image_shape
        sx, sy = (1.0 / max(w, 1), 1.0 / max(h, 1)) if normalize else (1.0, 1.0)
        rows = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            rows.append(
                {
                    "name": "person",
                    "class": 0,
                    "confidence": round(float(self.box_scores[i]), decimals),
                    "box": {
                        "x1": round(x1 * sx, decimals),
                        "y1": round(y1 * sy, decimals),
                        "x2": round(x2 * sx, decimals),
                        "y2": round(y2 * sy, decimals),
                    },
                    "track_id": int(self.track_ids[i]),
                    "keypoints": {
                        "x": np.round(self.keypoints[i, :, 0].astype(np.float64) * sx, decimals).tolist(),
                        "y": np.round(self.keypoints[i, :, 1].astype(np.float64) * sy, decimals).tolist(),
                        "visible": np.round(self.scores[i].astype(np.float64), decimals).tolist(),
                    },
                }
            )
        return rows

    # ---------------------------------------------------------------------------------------------- drawing
    def plot(
        self,
        image: np.ndarray,
        kpt_thr: float = 0.3,
        skeleton: str = "mmpose",
        black_background: bool = False,
        show_boxes: bool | None = None,
        show_track_ids: bool | None = None,
        include_face: bool = True,
        include_hands: bool = True,
        radius: int | None = None,
        thickness: int | None = None,
    ) -> np.ndarray:
        """Draw this result on a copy of ``image`` (H, W, 3) BGR uint8 and return it (BGR).

        skeleton: ``"mmpose"`` (layout colours, as MMPose renders them) or ``"openpose"`` (the ControlNet / DWPose
        style). ``black_background`` draws on a black canvas of the image's size. ``show_boxes`` and
        ``show_track_ids`` default to True for the MMPose style and False for OpenPose (ControlNet inputs hold the
        skeleton only); track ids are written at the box corner.
        """
        from posedistill.infer import draw

        return draw.draw_result(
            image,
            self,
            kpt_thr=kpt_thr,
            skeleton=skeleton,
            black_background=black_background,
            show_boxes=show_boxes,
            show_track_ids=show_track_ids,
            include_face=include_face,
            include_hands=include_hands,
            radius=radius,
            thickness=thickness,
        )
