"""Coarse filters: each rule's score and its recipe-driven decision, in order."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from filters import decide_record, score_record
from filters.text_quality import detect_language, garbage_ratio
from filters.settings import FilterSettings
from pipeline.config import RecipeError, parse_recipe
from manifests.records import IMAGE_TOKEN, Record
from manifests.schema import MANIFEST_SCHEMA, record_row
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


# The paper's 10-1024 character rule judges the dataset's own text (Record.source_text), not the wording an
# adapter or a task builder wraps around it (issue #12, point 1).
LONG_INSTRUCTION = ("Look carefully at the medical image below and answer the clinical question about it in as "
                    "few words as the answer needs, without restating the question.")


def text_record(source_text, answer, family="i2t", instruction=LONG_INSTRUCTION):
    return Record(id="t/train/2", source="t", split="train", modality="mri", task_family=family,
                  main_task_type="image_understanding", sub_task_type="medical_vqa",
                  message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{instruction}"},
                           {"from": "gpt", "value": answer}],
                  input_images=[image_from_array(phantom(rng_for("t"), 256, 256), source_path="x.png")],
                  source_text=source_text)


def test_short_dataset_text_with_a_long_builder_instruction_is_too_short():
    record = text_record("Yes", "Yes")
    assert decided(record) == ("rejected", "text_too_short")
    assert record.scores["text_chars"] > 100  # the whole sample would pass the rule
    assert (record.scores["source_text_chars"], record.scores["text_rule"]) == (3, "source_text")
    assert record.detail == "3 characters of dataset text < 10"


def test_long_dataset_text_is_judged_by_its_own_length():
    report = " ".join(["The lungs are clear without focal consolidation."] * 20)  # 999 characters
    record = text_record(report, report)
    assert decided(record) == ("kept", None)
    assert record.scores["text_chars"] > 1024  # the instruction pushes the whole sample past the limit
    assert (record.scores["source_text_chars"], record.scores["text_rule"]) == (len(report), "source_text")
    longer = text_record(report + " " + report, "See the report.", instruction="Describe.")
    assert decided(longer) == ("rejected", "text_too_long")  # a short sample carrying a long dataset text
    assert longer.scores["source_text_chars"] == 2 * len(report) + 1 > 1024 > longer.scores["text_chars"]


def test_interleaved_samples_are_exempt_from_the_length_rule():
    short = segmentation_record(phantom(rng_for("u"), 256, 256), np.zeros((256, 256), np.uint8))
    short.message[0]["value"] = f"{IMAGE_TOKEN}\nMask."  # only builder wording, under 10 characters
    assert decided(short) == ("kept", None)
    assert (short.scores["text_rule"], short.scores["source_text_chars"]) == ("exempt_interleaved", None)
    assert short.scores["text_chars"] == 5
    wordy = text_record(None, "x " * 600, family="interleaved")
    assert decided(wordy) == ("kept", None) and wordy.scores["text_rule"] == "exempt_interleaved"
    row = record_row(wordy, "CC-BY-4.0", "open", "u0")
    assert (row["text_rule"], row["source_text_chars"]) == ("exempt_interleaved", None)


def test_control_characters_in_a_caption_are_cleaned_and_the_manifest_says_so():
    """Light cleaning (issue #12, point 6): a NUL and other control characters inside a caption leave the
    training text and the dataset text; the manifest row counts them (text_cleaned) and names them
    (meta.text_cleaning)."""
    caption = "Axial CT\x00 of the abdomen\x07 shows a hypodense\x1b liver\u200b lesion.\x00"
    record = text_record(caption, caption, instruction="Describe the image.")
    assert decided(record, language="en") == ("kept", None)
    clean = "Axial CT of the abdomen shows a hypodense liver lesion."
    assert record.message[1]["value"] == record.source_text == clean
    assert record.scores["text_cleaned"] == 10  # 5 in the answer turn, 5 in the dataset text
    assert record.meta["text_cleaning"] == {"U+0000": 4, "U+0007": 2, "U+001B": 2, "U+200B": 2}
    row = record_row(record, "CC-BY-4.0", "open", "u0")
    table = pa.Table.from_pylist([row], schema=MANIFEST_SCHEMA)  # the row fits the manifest's columns
    assert table.column("text_cleaned").to_pylist() == [10]
    assert json.loads(row["meta"])["text_cleaning"]["U+0000"] == 4
    message = json.loads(row["sample"])["message"]
    assert message[1]["value"] == clean and "\x00" not in row["sample"]
    assert row["source_text_chars"] == len(clean) and row["garbage_ratio"] == 0.0
    untouched = text_record("Axial CT of the abdomen.", "Axial CT of the abdomen.")
    score_record(untouched, FilterSettings())
    assert untouched.scores["text_cleaned"] == 0 and "text_cleaning" not in untouched.meta
