"""Evaluation: COCO OKS AP / AR (COCO-WholeBody parts, CrowdPose), PCK / PCKh, OKS-NMS and rescoring.

Numpy and pycocotools only (no torch). :func:`evaluate_predictions` is the entry point for model predictions on
a dataset's records; :func:`coco_eval` scores a COCO results file.
"""

from posedistill.eval.coco import (
    CROWD_STAT_NAMES,
    STAT_NAMES,
    coco_eval,
    eval_parts,
    format_table,
    results_to_coco,
    write_coco_results,
)
from posedistill.eval.evaluate import build_coco_gt, evaluate_predictions
from posedistill.eval.nms import oks_iou, oks_nms, rescore_instances
from posedistill.eval.pck import auc, bbox_norm, epe, head_norm, mpii_pckh, pck, torso_norm

__all__ = [
    "CROWD_STAT_NAMES",
    "STAT_NAMES",
    "auc",
    "bbox_norm",
    "build_coco_gt",
    "coco_eval",
    "epe",
    "eval_parts",
    "evaluate_predictions",
    "format_table",
    "head_norm",
    "mpii_pckh",
    "oks_iou",
    "oks_nms",
    "pck",
    "rescore_instances",
    "results_to_coco",
    "torso_norm",
    "write_coco_results",
]
