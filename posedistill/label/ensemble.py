"""Teacher ensembles by body part: each keypoint group of COCO-WholeBody from the teacher best at it, and the
dataset's ground truth first wherever it has a label.

A spec names, per group, the teacher that labels it::

    body=pp-tinypose:flip,feet+face+hands=mediapipe,gt

- entries are separated by commas; ``PARTS=TEACHER`` gives the parts (joined by ``+``) to a teacher, which is any
  single ``--teacher`` value (``mediapipe``, ``pp-tinypose``, a model file, each with its ``:flip`` option);
- parts: ``body`` (0-16), ``feet`` (17-22), ``face`` (23-90), ``left_hand`` (91-111), ``right_hand`` (112-132),
  ``hands`` (both hands), ``all`` (everything);
- ``gt`` (or ``gt=PARTS``): the ground truth of the annotation file being labelled wins over the teachers on every
  (or those) part(s), point by point, wherever it is labelled (visibility > 0); elsewhere the teacher's point stays.
  ``gt:visible`` (or ``gt:visible=PARTS``) lets only the points it marks visible (visibility 2) win: for datasets
  whose occluded points are guesses, such as LSPet (on its images 1–100, 148 of the 151 occluded limb joints lie
  more than 0.3 × the box from PP-TinyPose's point, against 83 of the 1,049 visible ones).

The same spec as a YAML (``.yaml`` / ``.yml``) or JSON file::

    parts:
      body: pp-tinypose:flip
      feet+face+hands: mediapipe
    gt: true            # or false, or a list / '+'-joined string of parts
    gt_visible_only: false   # true: only ground-truth points marked visible win (``gt:visible``)

Parts no entry names stay unlabelled. A teacher named by several entries runs once per image. Confidences: each
teacher's own per-keypoint score; ground-truth points score 1. The label pipeline turns them into
``keypoint_scores`` and so into training weights (``docs/label.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posedistill.label.teacher_output import NUM_WHOLEBODY, Teacher, TeacherOutput, to_wholebody

# COCO-WholeBody-133 keypoint groups
PART_SLICES: dict[str, slice] = {
    "body": slice(0, 17),
    "feet": slice(17, 23),
    "face": slice(23, 91),
    "left_hand": slice(91, 112),
    "right_hand": slice(112, 133),
}
PART_ALIASES: dict[str, tuple[str, ...]] = {
    "foot": ("feet",),
    "hands": ("left_hand", "right_hand"),
    "lefthand": ("left_hand",),
    "righthand": ("right_hand",),
    "all": tuple(PART_SLICES),
    "wholebody": tuple(PART_SLICES),
}
GT = "gt"
GT_VISIBLE = "gt:visible"
SPEC_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def parse_parts(text: str | Sequence[str], where: str = "teacher spec") -> tuple[str, ...]:
    """``"feet+face+hands"`` (or a list of names) → ``("feet", "face", "left_hand", "right_hand")``, in
    COCO-WholeBody order; ValueError naming the unknown part."""
    names = text.split("+") if isinstance(text, str) else list(text)
    out: set[str] = set()
    for raw in names:
        name = str(raw).strip().lower().replace("-", "_")
        if name in PART_SLICES:
            out.add(name)
        elif name in PART_ALIASES:
            out.update(PART_ALIASES[name])
        else:
            known = sorted([*PART_SLICES, *PART_ALIASES])
            raise ValueError(f"{where}: unknown part {raw!r}; parts are {known}")
    if not out:
        raise ValueError(f"{where}: no part given")
    return tuple(p for p in PART_SLICES if p in out)


@dataclass(frozen=True)
class EnsembleSpec:
    """A parsed spec: ``teachers`` maps each single-teacher spec to its parts (each part at most once), ``gt_parts``
    the parts where ground truth wins, ``gt_visible_only`` whether only its points marked visible do."""

    teachers: tuple[tuple[str, tuple[str, ...]], ...]
    gt_parts: tuple[str, ...] = ()
    gt_visible_only: bool = False

    def describe(self) -> str:
        entries = [f"{'+'.join(parts)}={spec}" for spec, parts in self.teachers]
        if self.gt_parts:
            gt = GT_VISIBLE if self.gt_visible_only else GT
            entries.append(gt if set(self.gt_parts) == set(PART_SLICES) else f"{gt}={'+'.join(self.gt_parts)}")
        return ",".join(entries)


def _build_spec(
    entries: Sequence[tuple[str | Sequence[str], str]], gt: tuple[str, ...], where: str, gt_visible_only: bool = False
) -> EnsembleSpec:
    owner: dict[str, str] = {}
    by_teacher: dict[str, list[str]] = {}
    for parts_text, teacher in entries:
        teacher = str(teacher).strip()
        if not teacher:
            raise ValueError(f"{where}: parts {parts_text!r} have no teacher")
        if teacher.lower() in (GT, GT_VISIBLE):
            raise ValueError(f"{where}: write ground truth as 'gt' or 'gt=PARTS', not 'PARTS=gt'")
        for part in parse_parts(parts_text, where):
            if part in owner:
                raise ValueError(f"{where}: part {part!r} is given to two teachers ({owner[part]!r}, {teacher!r})")
            owner[part] = teacher
            by_teacher.setdefault(teacher, []).append(part)
    if not by_teacher and not gt:
        raise ValueError(f"{where}: names no teacher and no ground truth")
    ordered = tuple((t, tuple(p for p in PART_SLICES if p in ps)) for t, ps in by_teacher.items())
    return EnsembleSpec(ordered, gt, gt_visible_only and bool(gt))


def parse_spec_string(spec: str) -> EnsembleSpec:
    """Parse ``"body=pp-tinypose:flip,feet+face+hands=mediapipe,gt"`` (see the module docstring)."""
    where = f"teacher spec {spec!r}"
    entries: list[tuple[str, str]] = []
    gt: tuple[str, ...] = ()
    visible_only = False
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.lower() in (GT, GT_VISIBLE):
            gt, visible_only = tuple(PART_SLICES), item.lower() == GT_VISIBLE
            continue
        if "=" not in item:
            raise ValueError(f"{where}: entry {item!r} is neither 'PARTS=TEACHER' nor 'gt' / 'gt:visible'")
        left, right = item.split("=", 1)
        if left.strip().lower() in (GT, GT_VISIBLE):
            gt, visible_only = parse_parts(right, where), left.strip().lower() == GT_VISIBLE
        else:
            entries.append((left, right))
    return _build_spec(entries, gt, where, visible_only)


def parse_spec_file(path: str | Path) -> EnsembleSpec:
    """Parse a YAML / JSON spec file (``parts:`` mapping, optional ``gt:``)."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as e:  # OSError, JSON / YAML errors
        raise ValueError(f"{where}: cannot read the teacher spec: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: a teacher spec file is a mapping with 'parts' (and optionally 'gt')")
    unknown = sorted(set(doc) - {"parts", "gt", "gt_visible_only"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; a teacher spec has 'parts' and 'gt'")
    parts = doc.get("parts") or {}
    if not isinstance(parts, dict):
        raise ValueError(f"{where}: 'parts' must map part names ('body', 'feet+face+hands', ...) to teachers")
    gt_value = doc.get("gt", False)
    if gt_value is True:
        gt: tuple[str, ...] = tuple(PART_SLICES)
    elif gt_value in (False, None):
        gt = ()
    elif isinstance(gt_value, str | list):
        gt = parse_parts(gt_value, f"{where}: key 'gt'")
    else:
        raise ValueError(f"{where}: key 'gt' must be true, false, or parts, got {gt_value!r}")
    visible_only = doc.get("gt_visible_only", False)
    if not isinstance(visible_only, bool):
        raise ValueError(f"{where}: key 'gt_visible_only' must be true or false, got {visible_only!r}")
    return _build_spec([(str(k), str(v)) for k, v in parts.items()], gt, where, visible_only)


def is_ensemble_spec(spec: str) -> bool:
    """A spec file (``.yaml`` / ``.yml`` / ``.json``), ``gt``, or a string with ``,`` / ``PARTS=`` entries."""
    s = spec.strip()
    path = Path(s)
    if path.suffix.lower() in SPEC_FILE_SUFFIXES and path.is_file():
        return True
    if s.lower() in (GT, GT_VISIBLE) or "," in s:
        return True
    if "=" in s:
        left = s.split("=", 1)[0].strip()
        try:
            parse_parts(left)
        except ValueError:
            return left.lower() in (GT, GT_VISIBLE)
        return True
    return False


def parse_spec(spec: str) -> EnsembleSpec:
    """A spec string or the path of a spec file."""
    path = Path(spec.strip())
    if path.suffix.lower() in SPEC_FILE_SUFFIXES and path.is_file():
        return parse_spec_file(path)
    return parse_spec_string(spec)


def ground_truth_wholebody(
    instances: Sequence[Any | None], n: int, min_visibility: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of ``n`` people as COCO-WholeBody: keypoints (n, 133, 2) float32 and labelled (n, 133) bool.

    ``instances[i]`` is a :class:`posedistill.data.instance.Instance` (any layout that maps onto COCO-WholeBody
    or COCO-17) or None; labelled = visibility >= ``min_visibility`` (1: every labelled point, 2: visible ones)
    and defined by the layout map."""
    kp = np.zeros((n, NUM_WHOLEBODY, 2), np.float32)
    labelled = np.zeros((n, NUM_WHOLEBODY), bool)
    for i, inst in enumerate(list(instances)[:n]):
        if inst is None:
            continue
        vis = (np.asarray(inst.visibility) >= min_visibility).astype(np.float32)
        k, s, defined = to_wholebody(np.asarray(inst.keypoints, np.float32)[None], vis[None], inst.layout)
        kp[i] = k[0]
        labelled[i] = defined & (s[0] > 0)
    return kp, labelled


class EnsembleTeacher:
    """Each COCO-WholeBody part from its own teacher, ground truth first where given.

    Args:
        members: (teacher, parts) pairs; each part in at most one pair.
        gt_parts: parts where the ground truth (passed to the call) wins, point by point.
        gt_score: the confidence of a ground-truth point.
        gt_visible_only: only ground-truth points marked visible (visibility 2) win.

    Called as ``teacher(image, boxes, ground_truth=None)``: ``ground_truth`` is one
    :class:`~posedistill.data.instance.Instance` (or None) per box, which the label pipeline passes to teachers
    whose ``uses_ground_truth`` is True.
    """

    def __init__(
        self,
        members: Sequence[tuple[Teacher, Sequence[str]]],
        gt_parts: Sequence[str] = (),
        gt_score: float = 1.0,
        gt_visible_only: bool = False,
    ) -> None:
        seen: set[str] = set()
        self.members: list[tuple[Teacher, tuple[str, ...]]] = []
        for teacher, parts in members:
            parts = parse_parts(list(parts), "EnsembleTeacher")
            if seen & set(parts):
                raise ValueError(f"EnsembleTeacher: parts {sorted(seen & set(parts))} are given to two teachers")
            seen.update(parts)
            self.members.append((teacher, parts))
        self.gt_parts = parse_parts(list(gt_parts), "EnsembleTeacher") if gt_parts else ()
        self.gt_score = float(gt_score)
        self.gt_min_visibility = 2 if gt_visible_only else 1
        self.uses_ground_truth = bool(self.gt_parts)
        desc = [f"{'+'.join(p)}: {t.name}" for t, p in self.members]
        if self.gt_parts:
            which = "visible ground truth" if gt_visible_only else "ground truth"
            desc.append(f"{which} first on {'+'.join(self.gt_parts)}")
        self.name = "ensemble (" + "; ".join(desc) + ")"
        self._mask = {tuple(p): self._part_mask(p) for _, p in self.members}
        self._gt_mask = self._part_mask(self.gt_parts)

    @staticmethod
    def _part_mask(parts: Sequence[str]) -> np.ndarray:
        mask = np.zeros(NUM_WHOLEBODY, bool)
        for p in parts:
            mask[PART_SLICES[p]] = True
        return mask

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, ground_truth: Sequence[Any | None] | None = None
    ) -> TeacherOutput:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        out = TeacherOutput.empty(len(boxes))
        if len(boxes) == 0:
            return out
        for teacher, parts in self.members:
            got = teacher(image, boxes)
            m = self._mask[parts]
            out.keypoints[:, m] = got.keypoints[:, m]
            out.scores[:, m] = got.scores[:, m]
            out.labelled[:, m] = got.labelled[:, m]
        if ground_truth is not None and self.gt_parts:
            kp, lab = ground_truth_wholebody(ground_truth, len(boxes), self.gt_min_visibility)
            use = lab & self._gt_mask[None, :]
            out.keypoints[use] = kp[use]
            out.scores[use] = self.gt_score
            out.labelled[use] = True
        out.keypoints[~out.labelled] = 0.0
        out.scores[~out.labelled] = 0.0
        return out

    def close(self) -> None:
        for teacher, _ in self.members:
            close = getattr(teacher, "close", None)
            if close is not None:
                close()


def load_ensemble(spec: str | EnsembleSpec, make_teacher: Callable[[str], Teacher]) -> EnsembleTeacher:
    """An :class:`EnsembleTeacher` from a spec (string, file path or parsed), building each distinct single teacher
    once with ``make_teacher(single_spec)``."""
    parsed = spec if isinstance(spec, EnsembleSpec) else parse_spec(spec)
    members = [(make_teacher(t), parts) for t, parts in parsed.teachers]
    return EnsembleTeacher(members, parsed.gt_parts, gt_visible_only=parsed.gt_visible_only)
