"""``posedistill predict GT.json --model M [--boxes gt|detect] [--images DIR] [--flip] --out RESULTS.json``

COCO-17 keypoint results for every image of a COCO ground-truth file, ready for ``posedistill coco-eval GT.json
RESULTS.json``. The images are looked up under ``--images DIR``, else ``<GT folder>/images/``, else the GT's folder.

Models: a posedistill checkpoint folder or mmpose ``.pth`` (needs torch), an ONNX file / URL / mmdeploy zip, an
ncnn ``.param`` with its sidecar, or a name: ``default`` (the shipped model, :mod:`posedistill.infer.defaults`),
``pp-tinypose`` (the shipped PP-TinyPose 256×192, ``models/pp-tinypose_256x192/``) or ``mediapipe`` (MediaPipe
Holistic, in its own environment: ``make mediapipe-env``). Keypoints of other layouts are mapped to COCO-17
(:func:`posedistill.layouts.get_mapping`; COCO-WholeBody's first 17 points are COCO-17's).

Boxes: ``gt`` = the GT's non-crowd person boxes (box score 1), ``detect`` = the person boxes of the default
detector (:func:`posedistill.infer.defaults.default_detector`) or ``--detector FILE``, kept as mmpose's evaluation
with detected boxes keeps them rather than as its demo draws them: every person box scoring above ``--det-thr``
(0.1) after an NMS at IoU 0.65 (``--det-nms-thr``, mmdet's test setting; end-to-end graphs have done theirs) goes
to the pose model, and the instance scores and the OKS-NMS below rank and prune them. mmpose keeps every box
(``det_bbox_thr`` 0.0); on coco_dev 0.1 gives the same AP (within 0.001) with a third of the crops, while the demo's
0.3 loses about 0.05 AP on COCO's small and partly hidden people (``docs/benchmarks.md``, real teachers).

Each result is scored as mmpose's CocoMetric does: box score × mean of the (COCO-17) keypoint scores above 0.2,
then OKS-NMS per image at 0.9 (``--nms-thr``; 1 turns it off) with the padded crop box as the OKS area. The file is
written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posedistill.errors import PoseDataError

HELP = "COCO-17 keypoint results of a pose model on the images of a COCO GT file (GT or detected boxes)"

COCO17 = "coco"
BOX_MODES = ("gt", "detect")
KPT_SCORE_THR = 0.2  # mmpose CocoMetric: keypoints scoring above this make the instance score
OKS_NMS_THR = 0.9  # mmpose CocoMetric: nms_mode 'oks_nms', nms_thr 0.9
EVAL_DET_THR = 0.1  # detected boxes for evaluation: see the module docstring
EVAL_DET_NMS_THR = 0.65  # mmdet's test_cfg NMS IoU of RTMDet and YOLOX
MODEL_NAMES = ("default", "pp-tinypose", "mediapipe")
MODEL_HELP = (
    "checkpoint folder / .pth (needs torch), .onnx file / URL / mmdeploy zip, ncnn .param (with its sidecar), "
    "or a name: default (the shipped model), pp-tinypose, mediapipe"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gt", metavar="GT.json", help="COCO keypoint ground truth: its images (and boxes) are used")
    parser.add_argument("--model", required=True, metavar="M", help=MODEL_HELP)
    parser.add_argument("--boxes", choices=BOX_MODES, default="gt",
                        help="gt: the GT's non-crowd person boxes (default); detect: the person detector")  # fmt: skip
    parser.add_argument("--detector", metavar="D", help="--boxes detect: detector ONNX / folder (default: shipped)")
    parser.add_argument("--det-thr", type=float, default=EVAL_DET_THR,
                        help=f"--boxes detect: keep boxes scoring above this (default {EVAL_DET_THR})")  # fmt: skip
    parser.add_argument("--det-nms-thr", type=float, default=EVAL_DET_NMS_THR,
                        help=f"--boxes detect: box NMS IoU threshold (default {EVAL_DET_NMS_THR})")  # fmt: skip
    parser.add_argument("--images", metavar="DIR", help="image folder (default: GT folder/images/ or the GT folder)")
    parser.add_argument("--flip", action="store_true", help="flip test: average each crop with its mirror image")
    parser.add_argument(
        "--nms-thr", type=float, default=OKS_NMS_THR,
        help=f"OKS-NMS threshold per image, as mmpose's CocoMetric (default {OKS_NMS_THR}; 1: off)",
    )  # fmt: skip
    parser.add_argument("--layout", help="the model's keypoint layout when the file does not say")
    parser.add_argument("--threads", type=int, help="onnxruntime / ncnn threads (default: all cores)")
    parser.add_argument("--out", required=True, metavar="RESULTS.json", help="COCO keypoint results (written here)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


# ---------------------------------------------------------------------------------------------- ground truth


@dataclass
class GroundTruthImages:
    """What ``predict`` needs from a COCO GT file.

    images: (image id, image file) in file order; boxes: image id -> (N, 4) float32 xyxy non-crowd person boxes
    (empty when the GT has no annotations for the image, or when boxes were not asked for).
    """

    path: Path
    image_dir: Path
    images: list[tuple[Any, Path]]
    boxes: dict[Any, np.ndarray] = field(default_factory=dict)

    @property
    def num_boxes(self) -> int:
        return sum(len(b) for b in self.boxes.values())


def find_image_dir(gt_path: str | Path, images: str | Path | None = None) -> Path:
    """``images`` when given, else ``<GT folder>/images/`` when it exists, else the GT's folder."""
    if images is not None:
        return Path(images)
    folder = Path(gt_path).resolve().parent
    return folder / "images" if (folder / "images").is_dir() else folder


def _image_file(image_dir: Path, file_name: str) -> Path | None:
    for cand in (image_dir / file_name, image_dir / Path(file_name).name):
        if cand.is_file():
            return cand
    return None


def read_ground_truth(
    gt_path: str | Path, images: str | Path | None = None, need_boxes: bool = True
) -> GroundTruthImages:
    """Images (and, with ``need_boxes``, non-crowd person boxes) of a COCO GT file.

    Raises :class:`PoseDataError` naming the file and the field for a file without images, an image that is not
    under the image folder, or (``need_boxes``) a file without annotated boxes."""
    path = Path(gt_path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise PoseDataError(path, "no such ground-truth file") from None
    except (OSError, ValueError) as e:
        raise PoseDataError(path, f"cannot read a COCO JSON file: {e}") from None
    if not isinstance(doc, dict):
        raise PoseDataError(path, f"expected a COCO object with images and annotations, got {type(doc).__name__}")
    recs = doc.get("images")
    if not isinstance(recs, list) or not recs:
        raise PoseDataError(path, "no images: predict needs the list of images [{id, file_name}, ...]",
                            field="images")  # fmt: skip
    image_dir = find_image_dir(path, images)
    out = GroundTruthImages(path, image_dir, [])
    for i, rec in enumerate(recs):
        if not isinstance(rec, dict) or "id" not in rec or not isinstance(rec.get("file_name"), str):
            raise PoseDataError(path, "each image needs an id and a file_name", record=f"images[{i}]",
                                field="file_name" if isinstance(rec, dict) and "id" in rec else "id")  # fmt: skip
        file = _image_file(image_dir, rec["file_name"])
        if file is None:
            raise PoseDataError(path, f"image {rec['file_name']!r} not found in {image_dir} (pass --images DIR)",
                                record=f"image id={rec['id']}", field="file_name")  # fmt: skip
        out.images.append((rec["id"], file))
    if not need_boxes:
        return out
    anns = doc.get("annotations")
    if not isinstance(anns, list) or not anns:
        raise PoseDataError(path, "no annotations: --boxes gt needs the annotated person boxes (or use --boxes "
                            "detect)", field="annotations")  # fmt: skip
    by_image: dict[Any, list[list[float]]] = {image_id: [] for image_id, _ in out.images}
    for i, ann in enumerate(anns):
        record = f"annotation id={ann.get('id', i)}" if isinstance(ann, dict) else f"annotations[{i}]"
        box = ann.get("bbox") if isinstance(ann, dict) else None
        if not isinstance(box, list) or len(box) != 4:
            raise PoseDataError(path, f"expected a person box [x, y, w, h], got {box!r} (or use --boxes detect)",
                                record=record, field="bbox")  # fmt: skip
        if ann.get("iscrowd") or ann.get("image_id") not in by_image:
            continue
        x, y, w, h = (float(v) for v in box)
        by_image[ann["image_id"]].append([x, y, x + w, y + h])
    out.boxes = {k: np.asarray(v, np.float32).reshape(-1, 4) for k, v in by_image.items()}
    return out


# ---------------------------------------------------------------------------------------------- models


@dataclass
class KeypointModel:
    """A pose model behind one call: ``run(image_bgr, boxes (N, 4) xyxy) -> keypoints (N, K, 2) image pixels,
    scores (N, K)`` in ``layout``; ``input_size`` (w, h) of its crops when it has one (for the OKS-NMS areas)."""

    name: str
    layout: str
    run: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    input_size: tuple[int, int] | None = None
    close: Callable[[], None] | None = None


def _mediapipe_model() -> KeypointModel:
    from posedistill.label.teachers import MediaPipeTeacher

    teacher = MediaPipeTeacher()

    def run(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = teacher(image, boxes)
        return out.keypoints, np.where(out.labelled, out.scores, 0.0).astype(np.float32)

    return KeypointModel(teacher.name, "coco_wholebody", run, None, teacher.close)


def model_path(spec: str) -> str:
    """A model name → its file: ``default`` → the shipped default, a shipped model's name (``pp-tinypose``,
    :data:`posedistill.infer.named_models.NAMED_MODELS`) → its file; anything else as it is."""
    from posedistill.infer.defaults import default_model
    from posedistill.infer.named_models import named_model

    if spec.lower() == "default":
        return default_model()
    return named_model(spec) or spec


def load_keypoint_model(
    spec: str, flip: bool = False, threads: int | None = None, layout: str | None = None, progress: bool = True
) -> KeypointModel:
    """The model named by ``spec`` (see :data:`MODEL_HELP`) as a :class:`KeypointModel`."""
    if spec.lower() in ("mediapipe", "mediapipe-holistic", "holistic"):
        if flip:
            raise ValueError("--flip is not available for MediaPipe (it finds its own landmarks on each crop)")
        return _mediapipe_model()
    from posedistill.infer.estimator import PoseEstimator

    path = model_path(spec)
    est = PoseEstimator(path, detector=None, layout=layout, flip_test=flip, threads=threads, progress=progress)
    name = spec if spec.lower() in MODEL_NAMES else Path(str(spec)).name
    return KeypointModel(name + (" +flip" if flip else ""), est.layout, est.predict, est.input_size)


def to_coco17(keypoints: np.ndarray, scores: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2), (N, K) of ``layout`` → (N, 17, 2), (N, 17) COCO-17; points the layout lacks get score 0."""
    from posedistill.layouts import get_mapping

    try:
        kp, sc, _ = get_mapping(layout, COCO17).apply(keypoints, scores)
    except KeyError as e:
        raise ValueError(f"the model's keypoint layout {layout!r} cannot be scored as COCO-17: {e.args[0]}") from None
    return kp.astype(np.float32), sc.astype(np.float32)


# ---------------------------------------------------------------------------------------------- prediction


@dataclass
class PredictRun:
    """COCO results and where the time went: ``detect_s`` / ``pose_s`` summed over the images."""

    records: list[dict[str, Any]] = field(default_factory=list)
    images: int = 0
    people: int = 0
    detect_s: float = 0.0
    pose_s: float = 0.0


def crop_areas(boxes: np.ndarray, input_size: tuple[int, int] | None) -> np.ndarray:
    """(N, 4) xyxy → (N,) area of the padded (1.25) crop box fitted to the model's aspect ratio, mmpose's OKS-NMS
    area."""
    from posedistill.eval.evaluate import padded_box_areas

    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    return padded_box_areas(xywh, input_size=input_size)


def predict_coco(
    gt: GroundTruthImages,
    model: KeypointModel,
    boxes: str = "gt",
    detector: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    nms_thr: float | None = OKS_NMS_THR,
    progress: bool = True,
    read: Callable[[Path], np.ndarray] | None = None,
) -> PredictRun:
    """COCO-17 keypoint results of ``model`` on every image of ``gt``, with GT boxes (``boxes="gt"``) or the boxes
    of ``detector`` (``"detect"``), scored and OKS-NMS'd as mmpose's CocoMetric (``nms_thr`` None or >= 1: no NMS).
    ``read(file) -> BGR image`` (default :func:`posedistill.data.image_io.read_image`) lets a caller cache images."""
    from tqdm import tqdm

    from posedistill.data.image_io import read_image
    from posedistill.eval.coco import results_to_coco
    from posedistill.eval.nms import oks_nms, rescore_instances
    from posedistill.layouts import get_layout

    if boxes not in BOX_MODES:
        raise ValueError(f"boxes must be one of {BOX_MODES}, got {boxes!r}")
    if boxes == "detect" and detector is None:
        raise ValueError("boxes='detect' needs a detector")
    sigmas = get_layout(COCO17).sigmas_array().astype(np.float32)
    out = PredictRun()
    for image_id, file in tqdm(gt.images, desc=f"predict {model.name}", unit="image", disable=not progress,
                               dynamic_ncols=True, file=sys.stderr):  # fmt: skip
        image = (read or read_image)(file)
        if boxes == "gt":
            b = gt.boxes.get(image_id, np.zeros((0, 4), np.float32))
            box_scores = np.ones(len(b), np.float32)
        else:
            assert detector is not None
            t0 = time.perf_counter()
            b, box_scores = detector(image)
            out.detect_s += time.perf_counter() - t0
            b = np.asarray(b, np.float32).reshape(-1, 4)
            box_scores = np.asarray(box_scores, np.float32).reshape(-1)
        out.images += 1
        if len(b) == 0:
            continue
        t0 = time.perf_counter()
        kp, sc = model.run(image, b)
        out.pose_s += time.perf_counter() - t0
        out.people += len(b)
        kp, sc = to_coco17(np.asarray(kp, np.float32), np.asarray(sc, np.float32), model.layout)
        inst = rescore_instances(box_scores, sc, KPT_SCORE_THR)
        keep = np.arange(len(b))
        if nms_thr is not None and nms_thr < 1:
            keep = np.sort(oks_nms(kp, inst, crop_areas(b, model.input_size), sigmas, nms_thr))
        out.records += results_to_coco([image_id] * len(keep), kp[keep], sc[keep], inst[keep], COCO17)
    return out


def run(args: argparse.Namespace) -> int:
    """Errors the user can fix end as one line (``posedistill predict: error: ...``) and exit status 2: option
    values and the output path are checked before any work, then the GT file, the detector and the model."""
    from posedistill.commands._common import check_range
    from posedistill.fileio import atomic_write_json, check_writable_output

    def fail(message: str) -> int:
        print(f"posedistill predict: error: {message}", file=sys.stderr)
        return 2

    check_range(args.nms_thr, "--nms-thr", 0.0, 1.0)
    check_range(args.det_thr, "--det-thr", 0.0, 1.0)
    check_range(args.det_nms_thr, "--det-nms-thr", 0.0, 1.0)
    check_range(args.threads, "--threads", 1)
    check_writable_output(args.out, "file", "--out")
    model = None
    try:
        gt = read_ground_truth(args.gt, args.images, need_boxes=args.boxes == "gt")
        detector = None
        if args.boxes == "detect":
            from posedistill.infer.defaults import load_detector

            detector = load_detector(
                args.detector or "default", threads=args.threads, progress=not args.quiet,
                score_thr=args.det_thr, nms_thr=args.det_nms_thr,
            )  # fmt: skip
        model = load_keypoint_model(args.model, args.flip, args.threads, args.layout, progress=not args.quiet)
        result = predict_coco(gt, model, args.boxes, detector, args.nms_thr, progress=not args.quiet)
        atomic_write_json(args.out, result.records)
    except (PoseDataError, ValueError, ImportError, FileNotFoundError) as e:
        return fail(str(e))
    except KeyError as e:
        return fail(str(e.args[0]) if e.args else str(e))
    finally:
        if model is not None and model.close is not None:
            model.close()
    per_image = 1000.0 * (result.detect_s + result.pose_s) / max(result.images, 1)
    per_person = 1000.0 * result.pose_s / max(result.people, 1)
    print(f"{len(result.records)} results for {result.images} images ({result.people} people, {args.boxes} boxes; "
          f"{per_image:.1f} ms/image, {per_person:.1f} ms/person) -> {args.out}")  # fmt: skip
    return 0
