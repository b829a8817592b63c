"""PMC-VQA adapter: exact records and rejections from the sample tree, choice parsing, column variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.pmc_vqa import PmcVqa, choice_text
from sources.samples import pmc_vqa as sample
from tests.source_checks import collect

# id -> (csv, image path, question, answer, label, choices, (width, height))
RECORDS = {
    "pmc_vqa/train/train/0": ("train.csv", "images/figures/PMC1064097_F1.jpg",
                              "What uptake pattern is seen in the thyroid?", "Focal uptake pattern", "B",
                              ["Diffuse uptake pattern", "Focal uptake pattern", "No uptake", "Peripheral uptake"],
                              (256, 256)),
    "pmc_vqa/train/train/1": ("train.csv", "images/figures/PMC212319_Fig3_4.jpg", "Which imaging modality was used?",
                              "CT scan", "C", ["MRI", "Ultrasound", "CT scan", "PET"], (320, 200)),
    "pmc_vqa/train/train/2": ("train.csv", "images/figures/PMC555555_F2.jpg", "What is the size of the lesion?",
                              "2 cm", "D", ["1 cm", "2 cm", "3 cm"], (200, 90)),
    "pmc_vqa/test/test/0": ("test.csv", "images/PMC777777_F3.jpg", "What stain was used?", "H&E", "A",
                            ["H&E", "PAS", "Gram", "Giemsa"], (240, 240)),
    "pmc_vqa/train/train_2/0": ("train_2.csv", "images_2/figures/PMC1065321_F6.jpg",
                                "What plane is this image acquired in?", "Axial", "C",
                                ["Sagittal", "Coronal", "Axial", "Oblique"], (256, 256)),
}
REJECTED = {
    "pmc_vqa/train/train/3": ("missing_file", "images/figures/PMC404040_F9.jpg",
                              ["train.csv", "images/figures/PMC404040_F9.jpg"]),
    "pmc_vqa/train/train/4": ("qa_empty", "question='' answer='Yes'",
                              ["train.csv", "images/figures/PMC100100_F1.jpg"]),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_row_is_one_record_or_rejection_and_test_clean_is_not_read(root):
    assert set(collect(PmcVqa(root))) == set(RECORDS) | set(REJECTED)


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    csv_name, image_path, question, answer, label, choices, size = RECORDS[record_id]
    record = collect(PmcVqa(root))[record_id]
    assert isinstance(record, Record)
    assert (record.source, record.split, record.modality, record.task_family) == (
        "pmc_vqa", record_id.split("/")[1], "other", "i2t")
    assert (record.main_task_type, record.sub_task_type) == ("image_understanding", "medical_vqa")
    assert record.message == [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]
    assert record.provenance == [csv_name, image_path]
    (image,) = record.input_images
    assert (image.width, image.height, image.format) == (*size, "jpg")
    assert image.encoded == (root / image_path).read_bytes()
    assert record.meta == {"answer_label": label, "choices": choices}


@pytest.mark.parametrize("record_id", sorted(REJECTED))
def test_rejections_exact(root, record_id):
    reason, detail, provenance = REJECTED[record_id]
    assert collect(PmcVqa(root))[record_id] == Rejection(
        id=record_id, source="pmc_vqa", split="train", reason=reason, detail=detail, task_family="i2t",
        provenance=provenance, main_task_type="image_understanding", sub_task_type="medical_vqa")


@pytest.mark.parametrize("raw, text", [("A:Diffuse uptake", "Diffuse uptake"), (" B:Focal", "Focal"),
                                       ("C.Axial", "Axial"), ("D: 2  cm", "2 cm"), ("D:", ""), ("MRI", "MRI")])
def test_choice_prefix_removed(raw, text):
    assert choice_text(raw) == text


def test_empty_figure_path(root):
    with open(root / "test.csv", "a", encoding="utf-8") as handle:
        handle.write('1,,Is there a figure?,Yes,A:Yes,B:No,C:,D:,A\n')
    assert collect(PmcVqa(root, splits=["test"]))["pmc_vqa/test/test/1"] == Rejection(
        id="pmc_vqa/test/test/1", source="pmc_vqa", split="test", reason="malformed_row",
        detail="empty Figure_path", provenance=["test.csv"],
        # the card's one task: what the row would have become
        task_family="i2t", main_task_type="image_understanding", sub_task_type="medical_vqa")


@pytest.mark.parametrize("splits", [["train"], ["test"]])
def test_split_selection(root, splits):
    source = PmcVqa(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in collect(source).values()} == set(splits)


def test_no_csv_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="train.csv"):
        PmcVqa(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
