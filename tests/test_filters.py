"""Coarse filters: each rule's score and its recipe-driven decision, in order."""

from __future__ import annotations

import numpy as np
import pytest

from filters import decide_record, score_record
from filters.text_quality import detect_language, garbage_ratio
from filters.settings import FilterSettings
from pipeline.config import RecipeError, parse_recipe
from manifests.records import IMAGE_TOKEN, Record
from sources.io.image import image_from_array
from sources.samples.common import phantom, rng_for


def make_record(pixels=None, text="What modality is used for this image? It is an MRI scan.", meta=None):
    pixels = phantom(rng_for("f"), 256, 256) if pixels is None else pixels
    return Record(id="t/train/1", source="t", split="train", modality="mri", task_family="i2t",
                  main_task_type="image_understanding", sub_task_type="medical_vqa",
                  message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{text}"}],
                  input_images=[image_from_array(pixels, source_path="x.png")], meta=meta or {})


def decided(record, **settings):
    filters = FilterSettings(**settings)
    score_record(record, filters)
    decide_record(record, filters)
    return record.status, record.reason


def test_a_good_record_is_kept_with_scores():
    record = make_record()
    assert decided(record, language="en") == ("kept", None)
    assert record.scores["min_side"] == 256 and record.scores["text_chars"] > 10
    assert record.scores["language"] == "en" and record.scores["pixel_std"] > 0.05


@pytest.mark.parametrize(("record", "settings", "reason"), [
    (make_record(phantom(rng_for("g"), 100, 300)), {}, "image_too_small"),
    (make_record(phantom(rng_for("h"), 130, 1400)), {}, "aspect_ratio"),
    (make_record(np.full((200, 200), 17, np.uint8)), {}, "image_blank"),
    (make_record(text="Yes"), {}, "text_too_short"),
    (make_record(text="x " * 600), {}, "text_too_long"),
    (make_record(text="Normal chest \x00\x01\x02\x03\x04\x05 film \ufffd\ufffd"), {}, "text_garbage"),
    (make_record(text="Tomodensitométrie axiale montrant une masse hépatique volumineuse"), {"language": "en"},
     "language"),
    (make_record(meta={"language": "zh"}), {"language": "en"}, "language"),
    (make_record(phantom(rng_for("i"), 300, 500)), {"oversize": "reject", "max_side": 400}, "image_too_large"),
])
def test_each_rule_rejects_with_its_reason(record, settings, reason):
    assert decided(record, **settings) == ("rejected", reason)
    assert record.detail


def segmentation_record(image, mask):
    return Record(id="t/train/seg", source="t", split="train", modality="ultrasound", task_family="interleaved",
                  main_task_type="segmentation", sub_task_type="prompt_segmentation",
                  message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nSegment the breast lesion."},
                           {"from": "gpt", "value": IMAGE_TOKEN}],
                  input_images=[image_from_array(image, source_path="x.png")],
                  output_images=[image_from_array(mask, source_path="x_mask.png")])


def test_an_empty_mask_is_left_to_the_segmentation_builder():
    textured, empty = phantom(rng_for("s"), 256, 256), np.zeros((256, 256), np.uint8)
    record = segmentation_record(textured, empty)
    assert decided(record) == ("kept", None)  # the builder decides: mask_empty, or keep_empty_masks
    assert record.scores["pixel_std"] > 0.05
    assert decided(segmentation_record(np.full((256, 256), 9, np.uint8), empty)) == ("rejected", "image_blank")
    cross_modal = segmentation_record(textured, empty)
    cross_modal.main_task_type = "cross_modal_synthesis"  # a blank output image of any other task is blank
    assert decided(cross_modal) == ("rejected", "image_blank")


def test_thresholds_come_from_the_recipe():
    record = make_record(phantom(rng_for("j"), 100, 300))
    assert decided(record, min_side=64) == ("kept", None)
    assert decided(make_record(text="Yes"), text_min_chars=3) == ("kept", None)


def test_first_failing_rule_wins_in_fixed_order():
    record = make_record(np.full((50, 50), 3, np.uint8), text="Yes")
    assert decided(record) == ("rejected", "image_too_small")


def test_language_and_garbage_helpers():
    assert detect_language("Axial CT of the abdomen shows a hypodense liver lesion.", ("en", "fr"))[0] == "en"
    assert detect_language("这张图片的成像方式是什么?", ("en", "zh"))[0] == "zh"
    assert garbage_ratio("clean text") == 0.0
    assert garbage_ratio("ab\x00\x01") == 0.5


def test_recipe_validation_names_the_bad_key():
    with pytest.raises(RecipeError, match="unknown key"):
        parse_recipe({"name": "x", "filters": {"min_sidee": 3}})
    with pytest.raises(RecipeError, match="oversize"):
        parse_recipe({"name": "x", "filters": {"oversize": "shrink"}})
