import json

import pytest

from posedistill.layouts import COCO, COCO_WHOLEBODY, get_layout
from tests.conftest import shared_path


@pytest.mark.parametrize("layout", [COCO, COCO_WHOLEBODY], ids=lambda x: x.name)
def test_layout_equals_reference_meta(layout):
    ref = json.loads(shared_path("reference", "dataset_meta.json").read_text())[layout.name]
    assert layout.num_keypoints == ref["num_keypoints"]
    assert list(layout.keypoint_names) == ref["keypoint_names"]
    assert list(layout.flip_indices) == ref["flip_indices"]
    assert list(layout.upper_body_ids) == ref["upper_body_ids"]
    assert list(layout.lower_body_ids) == ref["lower_body_ids"]
    assert layout.sigmas == pytest.approx(ref["sigmas"], abs=1e-7)
    assert layout.joint_weights == pytest.approx(ref["joint_weights"], abs=1e-6)
    pairs = {tuple(sorted(p)) for p in ref["flip_pairs"] if p[0] != p[1]}
    assert set(layout.flip_pairs) == pairs


def test_wholebody_parts_and_links():
    parts = COCO_WHOLEBODY.parts
    assert [(s.start, s.stop) for s in parts.values()] == [(0, 17), (17, 23), (23, 91), (91, 112), (112, 133), (0, 133)]
    assert len(COCO.links) == 19 and len(COCO_WHOLEBODY.links) == 65
    assert len(COCO_WHOLEBODY.flip_pairs) == 61


def test_unknown_layout_message():
    with pytest.raises(KeyError, match="unknown keypoint layout 'nope'"):
        get_layout("nope")
