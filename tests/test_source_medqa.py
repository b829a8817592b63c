"""MedQA adapter: exact text-only records and rejections from the sample tree, variants, split selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.medqa import Medqa
from sources.samples import medqa as sample
from tests.source_checks import collect

US = "questions/US"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids_and_outcomes(root):
    items = collect(Medqa(root))
    assert {key: type(value).__name__ for key, value in items.items()} == {
        "medqa/train/train-00000": "Record", "medqa/train/train-00001": "Rejection",
        "medqa/train/train-00002": "Record", "medqa/train/train-00003": "Record",
        "medqa/validate/dev-00000": "Record", "medqa/validate/dev-00001": "Rejection",
        "medqa/test/test-00000": "Record", "medqa/test/test-00001": "Rejection",
    }


def test_record_exact(root):
    record = collect(Medqa(root))["medqa/train/train-00000"]
    assert record == Record(
        id="medqa/train/train-00000", source="medqa", split="train", modality="other", task_family="text",
        main_task_type="text_understanding", sub_task_type="medical_qa",
        message=[
            {"from": "human", "value": "A 23-year-old pregnant woman at 22 weeks gestation presents with burning upon "
                                       "urination. Which of the following is the best treatment for this patient?\n"
                                       "A. Ampicillin\nB. Ceftriaxone\nC. Doxycycline\nD. Nitrofurantoin\n"
                                       "E. Trimethoprim"},
            {"from": "gpt", "value": "D. Nitrofurantoin"},
        ],
        provenance=[f"{US}/train.jsonl"],
        source_text="A 23-year-old pregnant woman at 22 weeks gestation presents with burning upon urination. Which "
                    "of the following is the best treatment for this patient?\nAmpicillin\nCeftriaxone\nDoxycycline\n"
                    "Nitrofurantoin\nTrimethoprim\nNitrofurantoin",
        meta={"language": "en", "answer_idx": "D", "exam": "step2&3", "n_options": 5},
    )
    assert record.input_images == [] and record.output_images == []


def test_other_splits_and_long_vignette(root):
    items = collect(Medqa(root))
    dev = items["medqa/validate/dev-00000"]
    assert dev.message[1] == {"from": "gpt", "value": "C. Radial nerve"}
    assert dev.provenance == [f"{US}/dev.jsonl"] and dev.meta["exam"] == "step1"
    assert items["medqa/test/test-00000"].message[1]["value"] == "A. Thiamine"
    long = items["medqa/train/train-00003"]
    assert len(long.text) > 1024  # the stage-1 recipe rejects it as text_too_long; the adapter keeps it


def test_rejections_exact(root):
    items = collect(Medqa(root))
    assert items["medqa/train/train-00001"].reason == "malformed_json"
    assert items["medqa/validate/dev-00001"] == Rejection(
        id="medqa/validate/dev-00001", source="medqa", split="validate", reason="malformed_row",
        detail="missing keys ['answer_idx']", task_family="text", provenance=[f"{US}/dev.jsonl"], main_task_type="text_understanding", sub_task_type="medical_qa")
    assert items["medqa/test/test-00001"] == Rejection(
        id="medqa/test/test-00001", source="medqa", split="test", reason="answer_not_in_options",
        detail="'F' not in ['A', 'B', 'C', 'D']", task_family="text", provenance=[f"{US}/test.jsonl"], main_task_type="text_understanding", sub_task_type="medical_qa")


def test_four_option_variant(root):
    items = collect(Medqa(root, options={"variant": "4_options"}))
    assert sorted(items) == ["medqa/test/phrases_no_exclude_test-00000", "medqa/train/phrases_no_exclude_train-00000",
                             "medqa/train/phrases_no_exclude_train-00001",
                             "medqa/validate/phrases_no_exclude_dev-00000"]
    record = items["medqa/train/phrases_no_exclude_train-00000"]
    assert record.meta["n_options"] == 4 and record.provenance == [f"{US}/4_options/phrases_no_exclude_train.jsonl"]
    assert record.message[0]["value"].endswith("C. Doxycycline\nD. Nitrofurantoin")


def test_root_at_parent_or_question_folder(root):
    parent = collect(Medqa(root.parent))
    assert parent["medqa/test/test-00000"].provenance == ["data_clean/questions/US/test.jsonl"]
    inner = collect(Medqa(root / US))
    assert inner["medqa/test/test-00000"].provenance == ["test.jsonl"]


@pytest.mark.parametrize("splits", [["validate"], ["train", "test"]])
def test_split_selection(root, splits):
    source = Medqa(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in collect(source).values()} == set(splits)


def test_no_question_files_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="data_clean"):
        Medqa(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
