"""MedPix 2.0 adapter: exact caption records and rejections from the sample tree, split-file rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manifests.records import Rejection
from sources.base import SourceError
from sources.medpix2 import Medpix2
from sources.samples import medpix2 as sample
from tests.source_checks import collect

WRITE = "Write a caption for this radiology image."
BRIEF = "Provide a brief description of this medical image."


def _meta(case, scan, plane, sex, age, part):
    return {"case_id": case, "scan": scan, "plane": plane, "sex": sex, "age": age, "location": "Genitourinary",
            "location_category": "Reproductive and Urinary System", "acr_codes": "8.3", "figure_part": part}


# id -> (split file, modality, prompt, caption, (width, height), meta)
RECORDS = {
    "train/MPX1009_synpic46283": ("train", "ct", WRITE, "Coronal CT shows a large left renal mass with central necrosis.",
                                  (256, 256), _meta("MPX1009", "CT - noncontrast", "Coronal", "male", 73, None)),
    "train/MPX1009_synpic46296": ("train", "mri", BRIEF, "Axial T2 image shows a hyperintense renal lesion.",
                                  (200, 240), _meta("MPX1009", "MR - T2 weighted", "Axial", "male", 73, "2")),
    "validate/MPX2483_synpic27408": ("dev", "ct", WRITE,
                                     "Non-contrast CT of the head shows enlarged lateral ventricles.", (100, 100),
                                     _meta("MPX2483", "CT - noncontrast", "Axial", "male", 17, None)),
    "test/MPX1301_synpic26169": ("test", "ct", BRIEF,
                                 "Axial CT at L3 shows a lytic lesion of the left posterior elements.", (256, 224),
                                 _meta("MPX1301", "CT w/contrast (IV)", "Other View (see caption)", None, 0, None)),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids(root):
    assert sorted(collect(Medpix2(root))) == sorted(
        [f"medpix2/{stem}" for stem in RECORDS] + ["medpix2/train/MPX1024_synpic40274", "medpix2/train/MPX1024_synpic40275",
                                                   "medpix2/validate/splitted_dataset/descriptions_dev.jsonl#1"])


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    suffix, modality, prompt, caption, size, meta = RECORDS[stem]
    record = collect(Medpix2(root))[f"medpix2/{stem}"]
    name = stem.split("/")[1]
    assert (record.source, record.split, record.modality, record.task_family) == (
        "medpix2", stem.split("/")[0], modality, "i2t")
    assert (record.main_task_type, record.sub_task_type) == ("image_understanding", "image_captioning")
    assert record.message == [{"from": "human", "value": f"<image>\n{prompt}"}, {"from": "gpt", "value": caption}]
    assert record.provenance == [f"splitted_dataset/descriptions_{suffix}.jsonl", f"images/{name}.png"]
    (image,) = record.input_images
    assert (image.width, image.height, image.format, image.source_path) == (*size, "png", f"images/{name}.png")
    assert record.output_images == [] and record.meta == meta


def test_rejections_exact(root):
    items = collect(Medpix2(root))
    train = "splitted_dataset/descriptions_train.jsonl"
    assert items["medpix2/train/MPX1024_synpic40274"] == Rejection(
        id="medpix2/train/MPX1024_synpic40274", source="medpix2", split="train", reason="caption_empty",
        detail="'N/A'", modality="ct", task_family="i2t", provenance=[train, "images/MPX1024_synpic40274.png"],
        main_task_type="image_understanding", sub_task_type="image_captioning")
    assert items["medpix2/train/MPX1024_synpic40275"] == Rejection(
        id="medpix2/train/MPX1024_synpic40275", source="medpix2", split="train", reason="missing_file",
        detail="images/MPX1024_synpic40275.png", modality="ct", task_family="i2t",
        provenance=[train, "images/MPX1024_synpic40275.png"], main_task_type="image_understanding",
        sub_task_type="image_captioning")
    broken = items["medpix2/validate/splitted_dataset/descriptions_dev.jsonl#1"]
    assert (broken.reason, broken.provenance) == ("malformed_json", ["splitted_dataset/descriptions_dev.jsonl"])


def test_train_parts_read_only_without_the_whole_train_file(root):
    (root / "splitted_dataset" / "descriptions_train.jsonl").unlink()
    items = collect(Medpix2(root, splits=["train"]))
    assert sorted(items) == ["medpix2/train/MPX1009_synpic46283", "medpix2/train/MPX1009_synpic46296",
                             "medpix2/train/MPX1024_synpic40274", "medpix2/train/MPX1024_synpic40275"]
    assert items["medpix2/train/MPX1009_synpic46283"].provenance[0] == "splitted_dataset/descriptions_train_1.jsonl"
    assert items["medpix2/train/MPX1024_synpic40274"].provenance[0] == "splitted_dataset/descriptions_train_2.jsonl"


@pytest.mark.parametrize("name", ["Descriptions.json", "Description.json"])
def test_without_splits_the_whole_file_is_unsplit(root, name):
    shutil.rmtree(root / "splitted_dataset")
    if name != "Descriptions.json":
        (root / "Descriptions.json").rename(root / name)
    items = collect(Medpix2(root))
    assert {item.split for item in items.values()} == {"unsplit"} and len(items) == 6
    assert items["medpix2/unsplit/MPX1009_synpic46283"].provenance == [name, "images/MPX1009_synpic46283.png"]


def test_root_at_the_repository_clone(root):
    items = collect(Medpix2(root.parent, splits=["test"]))
    assert items["medpix2/test/MPX1301_synpic26169"].provenance == [
        "MedPix-2-0/splitted_dataset/descriptions_test.jsonl", "MedPix-2-0/images/MPX1301_synpic26169.png"]


@pytest.mark.parametrize("splits", [["validate"], ["train", "test"]])
def test_split_selection(root, splits):
    source = Medpix2(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in collect(source).values()} == set(splits)


def test_no_layout_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="MedPix-2-0"):
        Medpix2(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
