"""EyePACS adapter: exact records and rejections from the sample tree, the test solution file,
file extensions, archives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sources.base import SourceError
from sources.eyepacs import Eyepacs
from sources.samples import eyepacs as sample
from tests.source_checks import (check_label_pair, check_rejected_pair, check_sample_tree,
                                       check_two_items_per_image, check_units_chunked, collect)

RECORDS = {
    # stem -> (instruction, caption, prompt, provenance, (width, height, channels, format), meta)
    "train/10_left": (
        "Describe this colour fundus photograph.",
        "Retinal fundus image with no diabetic retinopathy.",
        "Generate a colour fundus photograph showing no diabetic retinopathy.",
        ["trainLabels.csv", "train/10_left.jpeg"], (176, 160, 3, "jpg"),
        {"patient": "10", "eye": "left", "usage": None, "label": "0"}),
    "train/10_right": (
        "Describe this colour fundus photograph.",
        "Retinal fundus image with no diabetic retinopathy.",
        "Create a fundus image of an eye with no diabetic retinopathy.",
        ["trainLabels.csv", "train/10_right.jpeg"], (176, 160, 3, "jpg"),
        {"patient": "10", "eye": "right", "usage": None, "label": "0"}),
    "train/13_left": (
        "Describe this colour fundus photograph.",
        "Colour fundus photograph showing moderate non-proliferative diabetic retinopathy.",
        "Generate a colour fundus photograph showing moderate non-proliferative diabetic retinopathy.",
        ["trainLabels.csv", "train/13_left.jpeg"], (176, 168, 3, "jpg"),
        {"patient": "13", "eye": "left", "usage": None, "label": "2"}),
    "train/15_left": (
        "What grade of diabetic retinopathy does this fundus photograph show?",
        "Fundus photograph with proliferative diabetic retinopathy.",
        "A retinal fundus photograph with proliferative diabetic retinopathy.",
        ["trainLabels.csv", "train/15_left.jpeg"], (168, 160, 3, "jpg"),
        {"patient": "15", "eye": "left", "usage": None, "label": "4"}),
    "test/1_left": (
        "Describe this colour fundus photograph.",
        "Colour fundus photograph showing severe non-proliferative diabetic retinopathy.",
        "A retinal fundus photograph with severe non-proliferative diabetic retinopathy.",
        ["retinopathy_solution.csv", "test/1_left.jpeg"], (176, 160, 3, "jpg"),
        {"patient": "1", "eye": "left", "usage": "Private", "label": "3"}),
    "test/1_right": (
        "What grade of diabetic retinopathy does this fundus photograph show?",
        "Fundus photograph with no diabetic retinopathy.",
        "Create a fundus image of an eye with no diabetic retinopathy.",
        ["retinopathy_solution.csv", "test/1_right.jpeg"], (176, 160, 3, "jpg"),
        {"patient": "1", "eye": "right", "usage": "Public", "label": "0"}),
}
REJECTED = {
    # stem -> (reason, detail, provenance)
    "train/16_left": ("missing_file", "train/16_left.jpeg", ["trainLabels.csv", "train/16_left.jpeg"]),
    "train/17_right": ("label_unknown", "'7'", ["trainLabels.csv", "train/17_right.jpeg"]),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_item_gives_two_samples_or_two_rejections(root):
    check_two_items_per_image(Eyepacs(root), [*RECORDS, *REJECTED])


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    check_label_pair(root, Eyepacs(root), stem, "fundus", RECORDS[stem])


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    check_rejected_pair(Eyepacs(root), stem, "fundus", REJECTED[stem])


def test_units_are_chunked_with_stable_ids(root):
    check_units_chunked(Eyepacs, root)


def test_sample_tree_is_deterministic_and_small(tmp_path):
    check_sample_tree(sample, tmp_path)



def test_test_split_needs_the_solution_file(root):
    (root / "retinopathy_solution.csv").unlink()
    items = collect(Eyepacs(root))
    assert {item.split for item in items.values()} == {"train"}  # sampleSubmission.csv is never read


def test_jpg_extension_and_name_outside_the_pattern(root):
    (root / "train" / "10_left.jpeg").rename(root / "train" / "10_left.jpg")
    with open(root / "trainLabels.csv", "a", encoding="utf-8") as handle:
        handle.write("extra,1\n")
    shutil.copy(root / "train" / "13_left.jpeg", root / "train" / "extra.jpeg")
    items = collect(Eyepacs(root, splits=["train"]))
    assert items["eyepacs/train/10_left/caption"].provenance == ["trainLabels.csv", "train/10_left.jpg"]
    assert items["eyepacs/train/extra/t2i"].meta == {"patient": None, "eye": None, "usage": None, "label": "1"}


@pytest.mark.parametrize("splits", [["train"], ["test"]])
def test_split_selection(root, splits):
    assert {item.split for item in collect(Eyepacs(root, splits=splits)).values()} == set(splits)


def test_split_archives_and_missing_labels_are_source_errors(root, tmp_path):
    shutil.rmtree(root / "test")
    (root / "test.zip.001").write_bytes(b"PK")
    with pytest.raises(SourceError, match=r"join and unzip test.zip.00\*"):
        Eyepacs(root).work_units()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="trainLabels.csv"):
        Eyepacs(tmp_path / "empty").work_units()
