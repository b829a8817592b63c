"""LLaVA-Med adapter: exact multi-turn records and rejections from the sample tree, `<image>` placement, domains."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.llava_med import LlavaMed, conversation
from sources.samples import llava_med as sample

ALIGN = "data/alignment/llava_med_alignment_500k.json"
INSTRUCT = "data/instruct/llava_med_instruct_60k.json"
# id -> (file, sub task, modality, message, domain, (width, height))
RECORDS = {
    "alignment/15555555_F1": (ALIGN, "image_captioning", "other", [
        {"from": "human", "value": "<image>\nDescribe the image concisely."},
        {"from": "gpt", "value": "Axial contrast-enhanced CT showing a hypodense liver lesion."}], None, (256, 256)),
    "alignment/16666666_F2": (ALIGN, "image_captioning", "other", [
        {"from": "human", "value": "<image>\nProvide a brief description of the given image."},
        {"from": "gpt", "value": "Photomicrograph of the biopsy (H&E, x200)."}], None, (300, 200)),
    "instruct/17777777_F3": (INSTRUCT, "medical_vqa", "chest_xray", [
        {"from": "human", "value": "<image>\nWhat is shown in the image?"},
        {"from": "gpt", "value": "A frontal chest radiograph with a right-sided pleural effusion."},
        {"from": "human", "value": "Which side is affected?"},
        {"from": "gpt", "value": "The right side."}], dict(sample.DOMAIN, chest_xray=True), (288, 320)),
    "instruct/18888888_F4": (INSTRUCT, "medical_vqa", "other", [
        {"from": "human", "value": "<image>\nWhat imaging techniques are compared?"},
        {"from": "gpt", "value": "Side-by-side CT and MRI of the brain."}],
        dict(sample.DOMAIN, mri=True, ct_scan=True), (200, 100)),
}
REJECTED = {
    "instruct/19999999_F5": ("missing_file", "data/images/19999999_F5.jpg", "histopathology", "19999999_F5.jpg"),
    "instruct/12222222_F6": ("conversation_malformed", "fewer than two turns", "other", "12222222_F6.jpg"),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def collect(source: LlavaMed) -> dict[str, Record | Rejection]:
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split == "unsplit"
            out[item.id] = item
    return out


def test_every_item_is_one_record_or_rejection_and_10k_is_not_read(root):
    assert set(collect(LlavaMed(root))) == {f"llava_med/unsplit/{key}" for key in [*RECORDS, *REJECTED]}


@pytest.mark.parametrize("key", sorted(RECORDS))
def test_records_exact(root, key):
    qa_file, sub_task, modality, message, domain, size = RECORDS[key]
    record = collect(LlavaMed(root))[f"llava_med/unsplit/{key}"]
    assert isinstance(record, Record)
    assert (record.source, record.split, record.modality, record.task_family) == ("llava_med", "unsplit", modality,
                                                                                  "i2t")
    assert (record.main_task_type, record.sub_task_type) == ("image_understanding", sub_task)
    assert record.message == message
    assert sum(turn["value"].count("<image>") for turn in record.message) == 1
    image_path = f"data/images/{key.split('/')[1]}.jpg"
    assert record.provenance == [qa_file, image_path]
    (image,) = record.input_images
    assert (image.width, image.height, image.format) == (*size, "jpg")
    assert image.encoded == (root / image_path).read_bytes()
    assert record.meta == {"language": "en", "turns": len(message), "domain": domain}


@pytest.mark.parametrize("key", sorted(REJECTED))
def test_rejections_exact(root, key):
    reason, detail, modality, image = REJECTED[key]
    assert collect(LlavaMed(root))[f"llava_med/unsplit/{key}"] == Rejection(
        id=f"llava_med/unsplit/{key}", source="llava_med", split="unsplit", reason=reason, detail=detail,
        modality=modality, task_family="i2t", provenance=[INSTRUCT, f"data/images/{image}"],
        main_task_type="image_understanding", sub_task_type="medical_vqa")


@pytest.mark.parametrize("turns, problem", [
    ([{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}], "turn 0 is from 'gpt'"),
    ([{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "b"}], "turn 0 is empty"),
    ([{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}],
     "ends on a human turn"),
    ("not a list", "fewer than two turns")])
def test_malformed_conversations(turns, problem):
    assert conversation(turns, images=1) == problem


def test_root_may_be_the_data_folder_itself(root):
    items = collect(LlavaMed(root / "data"))
    assert items["llava_med/unsplit/alignment/15555555_F1"].provenance == [
        "alignment/llava_med_alignment_500k.json", "images/15555555_F1.jpg"]


def test_10k_read_when_60k_absent(root):
    (root / INSTRUCT).unlink()
    keys = {key for key in collect(LlavaMed(root)) if "/instruct/" in key}
    assert keys == {"llava_med/unsplit/instruct/17777777_F3"}


def test_split_selection(root):
    assert LlavaMed(root, splits=["train"]).work_units() == []


def test_no_files_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="alignment"):
        LlavaMed(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
