"""sources.shapes.captions: the shared label -> caption / prompt helper of the classification sources."""

from __future__ import annotations

import numpy as np
import pytest

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source
from sources.io.image import ImageDecodeError, image_from_array
from sources.shapes.captions import LabelTemplates, caption_rejections, label_records, label_rejections


class Toy(Source):
    card = DatasetCard(name="toy", title="Toy", modalities=("dermoscopy",), tasks=("classification_caption",),
                       licence="none", access="open", url="", citation="", root_names=("toy",))


TEMPLATES = LabelTemplates(
    labels={"nv": "a melanocytic nevus", "akiec": "an actinic keratosis"},
    instructions=("What does this dermoscopic image show?", "Describe this dermoscopy image."),
    captions=("Dermoscopic image of {label}.", "{Label} seen on dermoscopy."),
    prompts=("Generate a dermoscopy image of {label}.", "A dermoscopic image of {label}."),
    prompt_labels={"nv": "a benign melanocytic nevus"},
)


@pytest.fixture
def image():
    return image_from_array(np.full((160, 200, 3), 7, np.uint8), source_path="imgs/a.jpg")


def test_two_records_exact(image):
    source = Toy("/nowhere")
    caption, t2i = label_records(source, "toy/train/a", "train", "dermoscopy", image, "nv", TEMPLATES,
                                 provenance=["meta.csv", "imgs/a.jpg"], meta={"age": 40.0})
    assert isinstance(caption, Record) and isinstance(t2i, Record)
    assert (caption.id, caption.source, caption.split, caption.modality, caption.task_family) == (
        "toy/train/a/caption", "toy", "train", "dermoscopy", "i2t")
    assert (caption.main_task_type, caption.sub_task_type) == ("image_understanding", "classification_caption")
    instruction = Source.pick("toy/train/a/caption", TEMPLATES.instructions, salt="instruction")
    text = Source.pick("toy/train/a/caption", TEMPLATES.captions, salt="caption").format(
        label="a melanocytic nevus", Label="A melanocytic nevus")
    assert caption.message == [{"from": "human", "value": f"<image>\n{instruction}"},
                               {"from": "gpt", "value": text}]
    assert caption.input_images == [image] and caption.output_images == []
    assert (t2i.id, t2i.task_family, t2i.main_task_type, t2i.sub_task_type) == (
        "toy/train/a/t2i", "t2i", "image_generation", "text_to_image")
    prompt = Source.pick("toy/train/a/t2i", TEMPLATES.prompts, salt="prompt").format(
        label="a benign melanocytic nevus")
    assert t2i.message == [{"from": "human", "value": prompt}]
    assert t2i.input_images == [] and t2i.output_images == [image]
    for record in (caption, t2i):
        assert record.provenance == ["meta.csv", "imgs/a.jpg"]
        assert record.meta == {"age": 40.0, "label": "nv"}
    assert caption.input_images[0] is not t2i.output_images[0] and caption.meta is not t2i.meta


def test_phrasings_vary_across_ids_and_are_deterministic(image):
    source = Toy("/nowhere")
    texts = set()
    for index in range(40):
        first = label_records(source, f"toy/train/{index}", "train", "dermoscopy", image, "akiec", TEMPLATES)
        second = label_records(source, f"toy/train/{index}", "train", "dermoscopy", image, "akiec", TEMPLATES)
        assert [r.message for r in first] == [r.message for r in second]
        texts.add(first[0].message[1]["value"])
        assert first[1].message[0]["value"] in {"Generate a dermoscopy image of an actinic keratosis.",
                                                 "A dermoscopic image of an actinic keratosis."}
    assert texts == {"Dermoscopic image of an actinic keratosis.", "An actinic keratosis seen on dermoscopy."}


def test_decode_error_and_unknown_label_reject_both(image):
    source = Toy("/nowhere")
    missing = label_records(source, "toy/test/b", "test", "dermoscopy", ImageDecodeError("missing_file", "imgs/b.jpg"),
                            "nv", TEMPLATES, provenance=["meta.csv", "imgs/b.jpg"])
    assert missing == [
        Rejection(id="toy/test/b/caption", source="toy", split="test", reason="missing_file", detail="imgs/b.jpg",
                  modality="dermoscopy", task_family="i2t", provenance=["meta.csv", "imgs/b.jpg"],
                  main_task_type="image_understanding", sub_task_type="classification_caption"),
        Rejection(id="toy/test/b/t2i", source="toy", split="test", reason="missing_file", detail="imgs/b.jpg",
                  modality="dermoscopy", task_family="t2i", provenance=["meta.csv", "imgs/b.jpg"],
                  main_task_type="image_generation", sub_task_type="text_to_image"),
    ]
    unknown = label_records(source, "toy/test/c", "test", "dermoscopy", image, "xyz", TEMPLATES)
    assert [(r.id, r.reason, r.detail) for r in unknown] == [
        ("toy/test/c/caption", "label_unknown", "'xyz'"), ("toy/test/c/t2i", "label_unknown", "'xyz'")]
    assert [r.task_family for r in label_rejections(source, "toy/test/d", "test", "label_missing")] == ["i2t", "t2i"]


def test_caption_rejections_carry_the_captioning_task_types():
    """A captioned image (ROCO, PMC-OA, ...) that fails is rejected as what `caption_records` would have made:
    image_captioning, not the label sources' classification_caption."""
    source = Toy("/nowhere")
    assert [(r.id, r.task_family, r.main_task_type, r.sub_task_type, r.modality, r.provenance)
            for r in caption_rejections(source, "toy/test/e", "test", "caption_empty", "''", modality="ct",
                                        provenance=["captions.txt"])] == [
        ("toy/test/e/caption", "i2t", "image_understanding", "image_captioning", "ct", ["captions.txt"]),
        ("toy/test/e/t2i", "t2i", "image_generation", "text_to_image", "ct", ["captions.txt"]),
    ]
    assert [r.sub_task_type for r in label_rejections(source, "toy/test/e", "test", "label_missing")] == [
        "classification_caption", "text_to_image"]


def test_templates_need_every_role():
    with pytest.raises(ValueError, match="prompts"):
        LabelTemplates(labels={"a": "b"}, instructions=("x",), captions=("y",), prompts=())
