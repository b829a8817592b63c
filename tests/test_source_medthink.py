"""MedThink adapter: exact DCOT VQA records (rationale attached to the VQA-RAD / SLAKE item) from the sample
tree in the real layout, rejections, and the test files kept out of training splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import SourceError
from sources.medthink import Medthink
from sources.samples import medthink as sample
from tests.source_checks import collect


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids_and_outcomes(root):
    items = collect(Medthink(root))
    assert {k: (type(v).__name__, getattr(v, "reason", None)) for k, v in items.items()} == {
        "medthink/train/rad-closed-11": ("Record", None),
        "medthink/train/rad-closed-12": ("Rejection", "answer_not_in_choices"),
        "medthink/train/rad-closed-13": ("Rejection", "rationale_empty"),
        "medthink/train/rad-open-21": ("Record", None),
        "medthink/train/rad-open-22": ("Rejection", "missing_file"),
        "medthink/test/rad-closed-31": ("Record", None),
        "medthink/train/slake-closed-11938": ("Record", None),
        "medthink/train/slake-closed-11939": ("Record", None),
        "medthink/test/slake-closed-11934": ("Record", None),
    }


def test_record_exact(root):
    record = collect(Medthink(root))["medthink/train/rad-closed-11"]
    image = record.input_images[0]
    assert (image.width, image.height, image.format) == (160, 192, "jpg")
    assert image.encoded == (root / "Medthink_Dataset/R-RAD/images/synpic100132.jpg").read_bytes()
    record.input_images = []
    assert record == Record(
        id="medthink/train/rad-closed-11", source="medthink", split="train", modality="other", task_family="i2t",
        main_task_type="image_understanding", sub_task_type="medical_vqa_cot",
        message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nIs there a pleural effusion on the left?"},
                 {"from": "gpt", "value": "<think>\nThe left costophrenic angle is blunted by a meniscus of fluid "
                                          "density, so there is a left pleural effusion.\n</think>\nyes"}],
        provenance=["Medthink_Dataset/R-RAD/closed-end/trainset.json",
                    "Medthink_Dataset/R-RAD/images/synpic100132.jpg"],
        meta={"answer_type": "closed", "attaches_to": "vqa_rad/train/11", "rationale": "medthink",
              "choices": ["yes", "no"]},
        source_text="Is there a pleural effusion on the left?\nThe left costophrenic angle is blunted by a meniscus "
                    "of fluid density, so there is a left pleural effusion.\nyes")


def test_slake_rows_and_open_answers(root):
    items = collect(Medthink(root))
    chest = items["medthink/train/slake-closed-11938"]
    assert chest.modality == "chest_xray" and chest.meta["attaches_to"] == "slake/train/11938"
    assert chest.provenance == ["Medthink_Dataset/R-SLAKE/closed_end/train.json",
                               "Medthink_Dataset/R-SLAKE/images/xmlab102/source.jpg"]
    assert chest.message[1]["value"].endswith("</think>\nChest") and chest.input_images[0].channels == 3
    assert items["medthink/train/slake-closed-11939"].modality == "ct"
    assert items["medthink/train/rad-open-21"].message[1]["value"].endswith("</think>\nthe left lung")
    assert items["medthink/train/rad-open-22"] == Rejection(
        id="medthink/train/rad-open-22", source="medthink", split="train", reason="missing_file",
        detail="R-RAD/images/synpic999999.jpg", task_family="i2t", main_task_type="image_understanding",
        sub_task_type="medical_vqa_cot", provenance=["Medthink_Dataset/R-RAD/open-end/trainset.json", "Medthink_Dataset/R-RAD/images/synpic999999.jpg"])


def test_benchmark_test_files_never_reach_a_training_split(root):
    train = collect(Medthink(root, splits=["train"]))
    assert train and all(item.split == "train" for item in train.values())
    files = {item.provenance[0] for item in train.values()}
    assert not any("test" in name for name in files)
    tests = collect(Medthink(root, splits=["test"]))
    assert sorted(tests) == ["medthink/test/rad-closed-31", "medthink/test/slake-closed-11934"]


def test_root_forms_and_errors(root, tmp_path):
    inner = collect(Medthink(root / "Medthink_Dataset"))
    assert inner["medthink/train/rad-closed-11"].provenance[0] == "R-RAD/closed-end/trainset.json"
    with pytest.raises(SourceError, match="git-lfs"):
        Medthink(tmp_path / "empty").work_units()
    (root / "Medthink_Dataset/R-RAD/open-end/trainset.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(SourceError, match="one JSON object"):
        Medthink(root).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files and all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
