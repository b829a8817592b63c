"""MedDialog (English) adapter: exact dialogue records and rejections from the raw text files' layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.meddialog import Meddialog
from sources.samples import meddialog as sample
from tests.source_checks import collect

NAME = "meddialog"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids_and_outcomes(root):
    items = collect(Meddialog(root))
    assert {key: (type(v).__name__, getattr(v, "reason", None)) for key, v in items.items()} == {
        f"{NAME}/train/healthcaremagic_dialogue_1-000000": ("Record", None),
        f"{NAME}/train/healthcaremagic_dialogue_1-000001": ("Record", None),
        f"{NAME}/train/healthcaremagic_dialogue_1-000002": ("Rejection", "malformed_block"),
        f"{NAME}/train/healthcaremagic_dialogue_2-000000": ("Record", None),
        f"{NAME}/train/icliniq_dialogue-000000": ("Rejection", "dialogue_empty"),
        f"{NAME}/train/icliniq_dialogue-000001": ("Record", None),
    }


def test_record_exact(root):
    record = collect(Meddialog(root))[f"{NAME}/train/healthcaremagic_dialogue_1-000000"]
    patient = ("Hi doctor, I am just wondering what is abutting and abutment of the nerve root means in a back issue. "
               "Please explain. What treatment is required for annular bulging and tear?")
    doctor = ("Hi. I have gone through your query with diligence. Abutment means the disc is touching the nerve root. "
              "Physiotherapy and pain relief are the first steps.")
    assert record == Record(
        id=f"{NAME}/train/healthcaremagic_dialogue_1-000000", source=NAME, split="train", modality="other",
        task_family="text", main_task_type="text_understanding", sub_task_type="medical_dialogue",
        message=[{"from": "human", "value": patient}, {"from": "gpt", "value": doctor}],
        provenance=["healthcaremagic_dialogue_1.txt"], source_text=f"{patient}\n{doctor}",
        meta={"language": "en", "dialogue_id": "1", "site": "healthcaremagic",
              "url": "https://www.healthcaremagic.com/questions/Does-abutment-of-the-nerve-root-mean/1",
              "description": "Q. What does abutment of the nerve root mean?"})


def test_multi_turn_dialogue_ends_on_the_doctor(root):
    record = collect(Meddialog(root))[f"{NAME}/train/healthcaremagic_dialogue_1-000001"]
    assert [t["from"] for t in record.message] == ["human", "gpt", "human", "gpt"]
    assert record.message[-1]["value"] == "Yes, honey soothes the throat and is safe in adults."
    assert "Thanks a lot." not in record.text


def test_rejections_exact(root):
    items = collect(Meddialog(root))
    assert items[f"{NAME}/train/icliniq_dialogue-000000"] == Rejection(
        id=f"{NAME}/train/icliniq_dialogue-000000", source=NAME, split="train", reason="dialogue_empty",
        detail="id=1: no patient turn followed by a doctor reply", task_family="text",
        main_task_type="text_understanding", sub_task_type="medical_dialogue", provenance=["icliniq_dialogue.txt"])
    assert items[f"{NAME}/train/healthcaremagic_dialogue_1-000002"].detail == "id=3: no Dialogue section"


def test_layout_errors_and_splits(root, tmp_path):
    assert Meddialog(root, splits=["test"]).work_units() == []
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no healthcaremagic_dialogue_N.txt"):
        Meddialog(empty).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files and all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
