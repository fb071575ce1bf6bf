"""Pseudo-labelling with black-box teachers (``posedistill label``).

- :mod:`~posedistill.label.teachers`: the teachers (MediaPipe Holistic, checkpoints and ONNX pose models), each
  ``teacher(image_bgr, boxes_xyxy)`` -> COCO-WholeBody-133 keypoints, confidences and labelled flags;
- :mod:`~posedistill.label.mediapipe_map`: MediaPipe Holistic landmarks -> COCO-WholeBody-133 (the face-mesh ->
  iBUG-68 index map included);
- :mod:`~posedistill.label.pipeline`: what is labelled (annotation files, images, videos) and the loop;
- :mod:`~posedistill.label.coco_writer`: the COCO-WholeBody annotations (with ``keypoint_scores``) and COCO
  results.

Torch-free (a checkpoint teacher imports torch); MediaPipe is imported only by the MediaPipe teacher. See
``docs/label.md``.
"""
