"""PubMedVision adapter: exact I2T (alignment, instruction) and T2I records and rejections from the sample tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.pubmedvision import PubMedVision, modality
from sources.samples import pubmedvision as sample

ALIGN, INSTR, CAPS = ("PubMedVision_Alignment_VQA.json", "PubMedVision_InstructionTuning_VQA.json",
                      "PubMedVision_Original_Caption.json")
MODALITY = {"pmc_a": "ct", "pmc_b": "mri", "pmc_c": "chest_xray", "pmc_d": "other", "pmc_e": "other", "pmc_f": "ct"}
ITEMS = {item_id: (image if isinstance(image, list) else [image], raw, part)
         for item_id, image, raw, part in sample.ITEMS}


def _instruction(item_id: str) -> list[dict]:
    raw = ITEMS[item_id][1].lower()
    tokens = "<image>\n" * len(ITEMS[item_id][0])
    return [{"from": "human", "value": f"{tokens}What is the main finding in this {raw} image?"},
            {"from": "gpt", "value": sample.ALIGNMENT_TEXT[item_id][1]}, {"from": "human", "value": "Is it benign?"},
            {"from": "gpt", "value": "That cannot be decided from the image alone."}]


def _alignment(item_id: str) -> list[dict]:
    question, answer = sample.ALIGNMENT_TEXT[item_id]
    tokens = "<image>\n" * len(ITEMS[item_id][0])
    return [{"from": "human", "value": f"{tokens}{question}"}, {"from": "gpt", "value": answer}]


RECORDS = {  # id stem -> (file, family, sub task, message)
    **{f"alignment/{i}": (ALIGN, "i2t", "image_captioning", _alignment(i)) for i in ("pmc_a", "pmc_b", "pmc_c",
                                                                                      "pmc_d", "pmc_e")},
    **{f"instruction/{i}": (INSTR, "i2t", "medical_vqa", _instruction(i)) for i in ("pmc_a", "pmc_b", "pmc_c",
                                                                                    "pmc_e")},
    "t2i/pmc_a": (CAPS, "t2i", "text_to_image", [{"from": "human", "value": sample.CAPTIONS["pmc_a"]}]),
    "t2i/pmc_d": (CAPS, "t2i", "text_to_image", [{"from": "human", "value": sample.CAPTIONS["pmc_d"]}]),
}
REJECTED = {  # id stem -> (file, family, reason, detail)
    "alignment/pmc_f": (ALIGN, "i2t", "missing_file", "images/pmc_f1.jpg"),
    "instruction/pmc_f": (INSTR, "i2t", "missing_file", "images/pmc_f1.jpg"),
    "instruction/pmc_d": (INSTR, "i2t", "conversation_malformed", "ends on a human turn"),
    "t2i/pmc_b": (CAPS, "t2i", "multi_image_caption", "2 images"),
    "t2i/pmc_c": (CAPS, "t2i", "caption_empty", "''"),
}
TASK_TYPES = {  # id kind -> (main task type, sub task type) the item would have become
    "alignment": ("image_understanding", "image_captioning"),
    "instruction": ("image_understanding", "medical_vqa"),
    "t2i": ("image_generation", "text_to_image"),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def collect(source: PubMedVision) -> dict[str, Record | Rejection]:
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split == "unsplit"
            out[item.id] = item
    return out


def test_every_item_is_one_record_or_rejection(root):
    assert set(collect(PubMedVision(root))) == {f"pubmedvision/unsplit/{key}" for key in [*RECORDS, *REJECTED]}


@pytest.mark.parametrize("key", sorted(RECORDS))
def test_records_exact(root, key):
    qa_file, family, sub_task, message = RECORDS[key]
    item_id = key.split("/")[1]
    paths, raw, part = ITEMS[item_id]
    record = collect(PubMedVision(root))[f"pubmedvision/unsplit/{key}"]
    assert isinstance(record, Record)
    assert (record.source, record.split, record.modality, record.task_family, record.sub_task_type) == (
        "pubmedvision", "unsplit", MODALITY[item_id], family, sub_task)
    assert record.main_task_type == ("image_generation" if family == "t2i" else "image_understanding")
    assert record.message == message
    assert record.provenance == [qa_file, *paths]
    images = record.output_images if family == "t2i" else record.input_images
    assert (record.input_images if family == "t2i" else record.output_images) == []
    assert [image.source_path for image in images] == paths
    assert [image.encoded for image in images] == [(root / path).read_bytes() for path in paths]
    assert [(image.width, image.height) for image in images] == [
        (sample.IMAGES[path][1], sample.IMAGES[path][0]) for path in paths]
    assert record.meta == {"modality": raw, "body_part": part}


@pytest.mark.parametrize("key", sorted(REJECTED))
def test_rejections_exact(root, key):
    qa_file, family, reason, detail = REJECTED[key]
    item_id = key.split("/")[1]
    assert collect(PubMedVision(root))[f"pubmedvision/unsplit/{key}"] == Rejection(
        id=f"pubmedvision/unsplit/{key}", source="pubmedvision", split="unsplit", reason=reason, detail=detail,
        modality=MODALITY[item_id], task_family=family, provenance=[qa_file, *ITEMS[item_id][0]],
        main_task_type=TASK_TYPES[key.split("/")[0]][0], sub_task_type=TASK_TYPES[key.split("/")[0]][1])


@pytest.mark.parametrize("item, found", [
    ({"modality": "Ultrasound"}, "ultrasound"), ({"modality": "Digital Photography"}, "other"),
    ({"modality": "X-Ray", "body_part": "Thorax"}, "chest_xray"), ({"modality": "Endoscopy"}, "endoscopy"),
    ({"modality": "Optical Coherence Tomography"}, "oct"), ({}, "other")])
def test_modality_mapping(item, found):
    assert modality(item) == found


def test_without_caption_file_only_i2t(root):
    (root / CAPS).unlink()
    assert {item.task_family for item in collect(PubMedVision(root)).values()} == {"i2t"}


def test_malformed_item(root):
    (root / CAPS).write_text('[{"id": "x", "image": ["../escape.jpg"], "caption": "A caption."}]', encoding="utf-8")
    assert collect(PubMedVision(root))[f"pubmedvision/unsplit/t2i/{CAPS}#0"].reason == "malformed_row"


def test_split_selection(root):
    assert PubMedVision(root, splits=["train"]).work_units() == []


def test_no_files_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="PubMedVision"):
        PubMedVision(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
