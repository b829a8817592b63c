"""PathVQA adapter: exact records and rejections from the sample tree, the safe unpickler, split selection."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.io.hub import content_key
from sources.pathvqa import PathVqa
from sources.samples import pathvqa as sample
from tests.source_checks import collect

# id -> (pickle, image path, question, answer, answer_type, (width, height))
RECORDS = {
    "pathvqa/train/0": ("qas/train/train_qa.pkl", "images/train/train_0000.jpg",
                        "Does this image show the liver with fatty change?", "yes", "closed", (256, 256)),
    "pathvqa/train/1": ("qas/train/train_qa.pkl", "images/train/train_0001.jpg", "What is present in the lumen?",
                        "thrombus", "open", (300, 200)),
    "pathvqa/validate/0": ("qas/val/val_qa.pkl", "images/val/val_0000.jpg", "How is the epithelium arranged?",
                           "in glands", "open", (320, 240)),
    "pathvqa/test/0": ("qas/test/test_qa.pkl", "images/test/test_0000.jpg", "Is this a small histology image?",
                       "yes", "closed", (110, 100)),
}
REJECTED = {
    "pathvqa/train/2": ("qa_empty", "question='Where are these cells located?' answer=''",
                        ["qas/train/train_qa.pkl", "images/train/train_0000.jpg"]),
    "pathvqa/train/3": ("missing_file", "images/train/train_0042.jpg",
                        ["qas/train/train_qa.pkl", "images/train/train_0042.jpg"]),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_row_is_one_record_or_rejection(root):
    assert set(collect(PathVqa(root))) == set(RECORDS) | set(REJECTED)


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    pkl, image_path, question, answer, answer_type, size = RECORDS[record_id]
    record = collect(PathVqa(root))[record_id]
    assert isinstance(record, Record)
    assert (record.source, record.split, record.modality, record.task_family) == (
        "pathvqa", record_id.split("/")[1], "histopathology", "i2t")
    assert (record.main_task_type, record.sub_task_type) == ("image_understanding", "medical_vqa")
    assert record.message == [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]
    assert record.provenance == [pkl, image_path]
    (image,) = record.input_images
    assert (image.width, image.height, image.format) == (*size, "jpg")
    assert image.encoded == (root / image_path).read_bytes()
    assert record.meta == {"language": "en", "image_id": Path(image_path).stem, "answer_type": answer_type,
                           "content_key": content_key(record.split, image.encoded, question, answer)}


@pytest.mark.parametrize("record_id", sorted(REJECTED))
def test_rejections_exact(root, record_id):
    reason, detail, provenance = REJECTED[record_id]
    assert collect(PathVqa(root))[record_id] == Rejection(
        id=record_id, source="pathvqa", split="train", reason=reason, detail=detail, modality="histopathology",
        task_family="i2t", provenance=provenance, main_task_type="image_understanding", sub_task_type="medical_vqa")


def test_pickle_with_a_class_is_refused_not_run(root):
    # OrderedDict needs a global lookup: the unpickler must refuse it rather than import anything.
    (root / "qas/test/test_qa.pkl").write_bytes(pickle.dumps([OrderedDict(image="test_0000")]))
    items = collect(PathVqa(root, splits=["test"]))
    (rejection,) = items.values()
    assert (rejection.id, rejection.reason, rejection.provenance) == (
        "pathvqa/test/qas/test/test_qa.pkl", "malformed_pickle", ["qas/test/test_qa.pkl"])
    assert "collections" in rejection.detail


def test_row_that_is_not_a_dict(root):
    (root / "qas/test/test_qa.pkl").write_bytes(pickle.dumps(["test_0000"]))
    assert collect(PathVqa(root, splits=["test"]))["pathvqa/test/0"] == Rejection(
        id="pathvqa/test/0", source="pathvqa", split="test", reason="malformed_row",
        detail="a row needs a string `image`", modality="histopathology", provenance=["qas/test/test_qa.pkl"],
        # the card's one task: what the row would have become
        task_family="i2t", main_task_type="image_understanding", sub_task_type="medical_vqa")


@pytest.mark.parametrize("splits", [["validate"], ["train", "test"]])
def test_split_selection(root, splits):
    source = PathVqa(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in collect(source).values()} == set(splits)


def test_no_pickles_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="_qa.pkl"):
        PathVqa(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
