"""OCT2017 adapter: exact records and rejections from the sample tree, the Kaggle val/ split,
nested Mendeley layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sources.base import SourceError
from sources.oct2017 import Oct2017
from sources.samples import oct2017 as sample
from tests.source_checks import (check_label_pair, check_rejected_pair, check_sample_tree,
                                       check_two_items_per_image, check_units_chunked, collect)

RECORDS = {
    # stem -> (instruction, caption, prompt, provenance, (width, height, channels, format), meta)
    "train/CNV/CNV-1016042-1": (
        "Describe this retinal OCT B-scan.",
        "Retinal optical coherence tomography (OCT) image showing choroidal neovascularization.",
        "A retinal optical coherence tomography image with choroidal neovascularization.",
        ["train/CNV/CNV-1016042-1.jpeg"], (256, 248, 1, "jpg"),
        {"patient": "1016042", "label": "CNV"}),
    "train/DME/DME-1072015-1": (
        "What does this retinal OCT image show?",
        "Retinal OCT B-scan with diabetic macular edema.",
        "Create a retinal OCT scan showing diabetic macular edema.",
        ["train/DME/DME-1072015-1.jpeg"], (256, 248, 1, "jpg"),
        {"patient": "1072015", "label": "DME"}),
    "train/DRUSEN/DRUSEN-1001666-1": (
        "What does this retinal OCT image show?",
        "Retinal OCT B-scan with drusen.",
        "A retinal optical coherence tomography image with drusen.",
        ["train/DRUSEN/DRUSEN-1001666-1.jpeg"], (384, 248, 1, "jpg"),
        {"patient": "1001666", "label": "DRUSEN"}),
    "train/NORMAL/NORMAL-1001666-1": (
        "Describe this retinal OCT B-scan.",
        "Retinal OCT B-scan with a normal retina.",
        "Generate a retinal OCT B-scan showing a normal retina.",
        ["train/NORMAL/NORMAL-1001666-1.jpeg"], (256, 248, 1, "jpg"),
        {"patient": "1001666", "label": "NORMAL"}),
    "train/NORMAL/normal scan": (
        "What does this retinal OCT image show?",
        "Retinal optical coherence tomography (OCT) image showing a normal retina.",
        "Generate a retinal OCT B-scan showing a normal retina.",
        ["train/NORMAL/normal scan.jpeg"], (256, 248, 1, "jpg"),
        {"patient": None, "label": "NORMAL"}),
    "test/CNV/CNV-53018-1": (
        "Describe this retinal OCT B-scan.",
        "Retinal OCT B-scan with choroidal neovascularization.",
        "Generate a retinal OCT B-scan showing choroidal neovascularization.",
        ["test/CNV/CNV-53018-1.jpeg"], (256, 248, 1, "jpg"),
        {"patient": "53018", "label": "CNV"}),
    "test/NORMAL/NORMAL-5171640-1": (
        "Describe this retinal OCT B-scan.",
        "Retinal optical coherence tomography (OCT) image showing a normal retina.",
        "A retinal optical coherence tomography image with a normal retina.",
        ["test/NORMAL/NORMAL-5171640-1.jpeg"], (256, 248, 1, "jpg"),
        {"patient": "5171640", "label": "NORMAL"}),
    "validate/DME/DME-9925591-1": (
        "Which diagnosis does this optical coherence tomography scan of the retina show?",
        "Retinal optical coherence tomography (OCT) image showing diabetic macular edema.",
        "Generate a retinal OCT B-scan showing diabetic macular edema.",
        ["val/DME/DME-9925591-1.jpeg"], (256, 248, 1, "jpg"),
        {"patient": "9925591", "label": "DME"}),
}
REJECTED = {
    # stem -> (reason, detail, provenance)
    "train/DRUSEN/DRUSEN-1001666-2": (
        "image_undecodable", "train/DRUSEN/DRUSEN-1001666-2.jpeg: image file is truncated",
        ["train/DRUSEN/DRUSEN-1001666-2.jpeg"]),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_item_gives_two_samples_or_two_rejections(root):
    check_two_items_per_image(Oct2017(root), [*RECORDS, *REJECTED])


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    check_label_pair(root, Oct2017(root), stem, "oct", RECORDS[stem])


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    check_rejected_pair(Oct2017(root), stem, "oct", REJECTED[stem], detail_is_prefix=True)


def test_units_are_chunked_with_stable_ids(root):
    check_units_chunked(Oct2017, root)


def test_sample_tree_is_deterministic_and_small(tmp_path):
    check_sample_tree(sample, tmp_path)



@pytest.mark.parametrize("nesting", ["CellData/OCT", "ZhangLabData/CellData/OCT", "OCT2017 ", "oct2017/OCT2017 "])
def test_nested_download_layouts(root, tmp_path, nesting):
    download = tmp_path / "download"
    shutil.copytree(root, download / nesting)
    items = collect(Oct2017(download))
    assert set(items) == set(collect(Oct2017(root)))
    assert items["oct2017/test/CNV/CNV-53018-1/caption"].provenance == [f"{nesting}/test/CNV/CNV-53018-1.jpeg"]


def test_unknown_class_folder_is_label_unknown(root):
    (root / "test" / "CSR").mkdir()
    shutil.copy(root / "test" / "CNV" / "CNV-53018-1.jpeg", root / "test" / "CSR" / "CSR-1-1.jpeg")
    items = collect(Oct2017(root, splits=["test"]))
    assert items["oct2017/test/CSR/CSR-1-1/caption"].reason == "label_unknown"
    assert items["oct2017/test/CSR/CSR-1-1/t2i"].detail == "'CSR'"


@pytest.mark.parametrize("splits", [["validate"], ["train", "test"]])
def test_split_selection(root, splits):
    assert {item.split for item in collect(Oct2017(root, splits=splits)).values()} == set(splits)


def test_no_split_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no train/ or test/"):
        Oct2017(tmp_path).work_units()
