"""VQA-RAD adapter: exact records and rejections from the sample tree, the phrase_type split, numeric answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.io.hub import content_key
from sources.samples import vqa_rad as sample
from sources.vqa_rad import VqaRad
from tests.source_checks import collect

JSON = "VQA_RAD Dataset Public.json"
FOLDER = "VQA_RAD Image Folder"
# id -> (split, image, question, answer, answer_type, question_type, phrase_type, organ, (width, height))
RECORDS = {
    "vqa_rad/train/0": ("train", "synpic100.jpg", "Is there evidence of an aortic aneurysm?", "Yes", "closed", "PRES",
                        "freeform", "CHEST", (320, 256)),
    "vqa_rad/train/1": ("train", "synpic100.jpg", "Is an aortic aneurysm present?", "Yes", "closed", "PRES", "para",
                        "CHEST", (320, 256)),
    "vqa_rad/train/2": ("train", "synpic200.jpg", "How many kidneys are seen in this image?", "2", "closed", "COUNT",
                        "freeform", "ABD", (240, 240)),
    "vqa_rad/test/3": ("test", "synpic200.jpg", "What organ is enlarged?", "Liver", "open", "ORGAN", "test_freeform",
                       "ABD", (240, 240)),
    "vqa_rad/test/4": ("test", "synpic200.jpg", "How many lesions are in the liver?", "3", "open", "COUNT",
                       "test_para", "ABD", (240, 240)),
    "vqa_rad/train/5": ("train", "synpic300.jpg", "Is this a small image of the head?", "No", "closed", "OTHER",
                        "freeform", "HEAD", (120, 96)),
}
REJECTED = {
    "vqa_rad/train/6": ("train", "missing_file", f"{FOLDER}/synpic404.jpg", f"{FOLDER}/synpic404.jpg"),
    "vqa_rad/train/7": ("train", "qa_empty", "question='Which side is the effusion on?' answer=''",
                        f"{FOLDER}/synpic100.jpg"),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_row_is_one_record_or_rejection(root):
    assert set(collect(VqaRad(root))) == set(RECORDS) | set(REJECTED)


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    split, image_name, question, answer, answer_type, qtype, phrase, organ, size = RECORDS[record_id]
    record = collect(VqaRad(root))[record_id]
    assert isinstance(record, Record)
    assert (record.source, record.split, record.modality, record.task_family) == ("vqa_rad", split, "other", "i2t")
    assert (record.main_task_type, record.sub_task_type) == ("image_understanding", "medical_vqa")
    assert record.message == [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]
    assert record.provenance == [JSON, f"{FOLDER}/{image_name}"]
    (image,) = record.input_images
    assert (image.width, image.height, image.format) == (*size, "jpg")
    assert image.encoded == (root / FOLDER / image_name).read_bytes()
    qid = record_id.rsplit("/", 1)[1]
    assert record.meta == {"language": "en", "answer_type": answer_type, "question_type": qtype,
                           "phrase_type": phrase, "image_organ": organ, "qid_linked_id": f"link-{int(qid) // 2}",
                           "content_key": content_key(record.split, image.encoded, question, answer)}


@pytest.mark.parametrize("record_id", sorted(REJECTED))
def test_rejections_exact(root, record_id):
    split, reason, detail, image_path = REJECTED[record_id]
    assert collect(VqaRad(root))[record_id] == Rejection(
        id=record_id, source="vqa_rad", split=split, reason=reason, detail=detail, modality="other",
        task_family="i2t", provenance=[JSON, image_path], main_task_type="image_understanding",
        sub_task_type="medical_vqa")


def test_malformed_row(root):
    import json

    rows = json.loads((root / JSON).read_text(encoding="utf-8"))
    (root / JSON).write_text(json.dumps(rows + [{"qid": 9, "question": "No image?"}]), encoding="utf-8")
    assert collect(VqaRad(root, splits=["train"]))[f"vqa_rad/train/{JSON}#8"] == Rejection(
        id=f"vqa_rad/train/{JSON}#8", source="vqa_rad", split="train", reason="malformed_row",
        detail="a row needs qid and image_name", provenance=[JSON],
        # the card's one task: what the row would have become
        task_family="i2t", main_task_type="image_understanding", sub_task_type="medical_vqa")


@pytest.mark.parametrize("splits", [["train"], ["test"]])
def test_split_selection(root, splits):
    source = VqaRad(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in collect(source).values()} == set(splits)


def test_missing_json_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="VQA_RAD Dataset Public.json"):
        VqaRad(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
