"""APTOS 2019 adapter: exact records and rejections from the sample tree, grades,
the ungraded test split, layout variants."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sources.base import SourceError
from sources.aptos2019 import Aptos2019
from sources.samples import aptos2019 as sample
from tests.source_checks import (check_label_pair, check_rejected_pair, check_sample_tree,
                                       check_two_items_per_image, check_units_chunked, collect)

RECORDS = {
    # stem -> (instruction, caption, prompt, provenance, (width, height, channels, format), meta)
    "train/000c1434d8d7": (
        "What grade of diabetic retinopathy does this fundus photograph show?",
        "Colour fundus photograph showing moderate non-proliferative diabetic retinopathy.",
        "Create a fundus image of an eye with moderate non-proliferative diabetic retinopathy.",
        ["train.csv", "train_images/000c1434d8d7.png"], (176, 168, 3, "png"),
        {"label": "2"}),
    "train/001639a390f0": (
        "What grade of diabetic retinopathy does this fundus photograph show?",
        "Retinal fundus image with proliferative diabetic retinopathy.",
        "Generate a colour fundus photograph showing proliferative diabetic retinopathy.",
        ["train.csv", "train_images/001639a390f0.png"], (176, 160, 3, "png"),
        {"label": "4"}),
    "train/0024cdab0c1e": (
        "Grade the diabetic retinopathy in this retinal fundus image.",
        "Retinal fundus image with mild non-proliferative diabetic retinopathy.",
        "Generate a colour fundus photograph showing mild non-proliferative diabetic retinopathy.",
        ["train.csv", "train_images/0024cdab0c1e.png"], (176, 176, 3, "png"),
        {"label": "1"}),
    "train/002c21358ce6": (
        "Grade the diabetic retinopathy in this retinal fundus image.",
        "Retinal fundus image with no diabetic retinopathy.",
        "Generate a colour fundus photograph showing no diabetic retinopathy.",
        ["train.csv", "train_images/002c21358ce6.png"], (168, 160, 3, "png"),
        {"label": "0"}),
}
REJECTED = {
    # stem -> (reason, detail, provenance)
    "train/005b95c28852": ("missing_file", "train_images/005b95c28852.png",
                           ["train.csv", "train_images/005b95c28852.png"]),
    "train/0083ee8054ee": ("label_unknown", "'5'", ["train.csv", "train_images/0083ee8054ee.png"]),
    "train/0097f532ac9f": ("label_missing", "blank diagnosis", ["train.csv", "train_images/0097f532ac9f.png"]),
    "test/0005cfc8afb6": ("label_missing", "test.csv has no grades", ["test.csv", "test_images/0005cfc8afb6.png"]),
    "test/003f0afdcd15": ("label_missing", "test.csv has no grades", ["test.csv", "test_images/003f0afdcd15.png"]),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_item_gives_two_samples_or_two_rejections(root):
    check_two_items_per_image(Aptos2019(root), [*RECORDS, *REJECTED])


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    check_label_pair(root, Aptos2019(root), stem, "fundus", RECORDS[stem])


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    check_rejected_pair(Aptos2019(root), stem, "fundus", REJECTED[stem])


def test_units_are_chunked_with_stable_ids(root):
    check_units_chunked(Aptos2019, root)


def test_sample_tree_is_deterministic_and_small(tmp_path):
    check_sample_tree(sample, tmp_path)



def test_sample_submission_is_never_read_as_labels(root):
    (root / "test.csv").unlink()
    items = collect(Aptos2019(root))
    assert not any(item.split == "test" for item in items.values())


def test_grade_written_as_float_and_header_with_bom(root):
    (root / "train.csv").write_text("\ufeffid_code , diagnosis\n000c1434d8d7,2.0\n", encoding="utf-8")
    items = collect(Aptos2019(root, splits=["train"]))
    assert set(items) == {"aptos2019/train/000c1434d8d7/caption", "aptos2019/train/000c1434d8d7/t2i"}
    assert items["aptos2019/train/000c1434d8d7/caption"].meta == {"label": "2"}


@pytest.mark.parametrize("splits", [["train"], ["test"], ["validate"]])
def test_split_selection(root, splits):
    assert {item.split for item in collect(Aptos2019(root, splits=splits)).values()} == (
        set(splits) - {"validate"})


def test_zipped_images_and_missing_csvs_are_source_errors(root, tmp_path):
    shutil.rmtree(root / "train_images")
    (root / "train_images.zip").write_bytes(b"PK")
    with pytest.raises(SourceError, match="unzip train_images.zip"):
        Aptos2019(root).work_units()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="train.csv"):
        Aptos2019(tmp_path / "empty").work_units()


def test_colored_images_variant_is_unsplit(root, tmp_path):
    variant = tmp_path / "variant"
    (variant / "colored_images" / "Severe").mkdir(parents=True)
    shutil.copy(root / "train_images" / "000c1434d8d7.png", variant / "colored_images" / "Severe" / "000c1434d8d7.png")
    items = collect(Aptos2019(variant))
    record = items["aptos2019/unsplit/000c1434d8d7/caption"]
    assert record.meta == {"label": "3"} and record.provenance == ["colored_images/Severe/000c1434d8d7.png"]
    assert "severe non-proliferative diabetic retinopathy" in record.message[1]["value"]
    assert collect(Aptos2019(variant, splits=["train"])) == {}
