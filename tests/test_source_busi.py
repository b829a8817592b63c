"""BUSI adapter: exact records from the sample tree, names with spaces, masks paired in meta,
greyscale stored as RGB."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from sources.base import SourceError
from sources.busi import Busi
from sources.io.image import load_pixels
from sources.samples import busi as sample
from tests.source_checks import (check_label_pair, check_sample_tree,
                                       check_two_items_per_image, check_units_chunked, collect)

RECORDS = {
    # stem -> (instruction, caption, prompt, provenance, (width, height, channels, format), meta)
    "unsplit/benign (1)": (
        "Is the breast tissue in this ultrasound image normal, or does it show a benign or malignant lesion?",
        "Ultrasound of the breast showing a benign breast lesion.",
        "A breast ultrasound image with a benign breast lesion.",
        ["benign/benign (1).png"], (192, 176, 1, "png"),
        {"masks": ["benign/benign (1)_mask.png"], "label": "benign"}),
    "unsplit/benign (4)": (
        "Is the breast tissue in this ultrasound image normal, or does it show a benign or malignant lesion?",
        "A benign breast lesion on breast ultrasound.",
        "Generate a breast ultrasound image showing a benign breast lesion.",
        ["benign/benign (4).png"], (176, 160, 1, "png"),
        {"masks": ["benign/benign (4)_mask.png", "benign/benign (4)_mask_1.png"], "label": "benign"}),
    "unsplit/malignant (1)": (
        "Is the breast tissue in this ultrasound image normal, or does it show a benign or malignant lesion?",
        "A malignant breast lesion on breast ultrasound.",
        "Generate a breast ultrasound image showing a malignant breast lesion.",
        ["malignant/malignant (1).png"], (160, 192, 1, "png"),
        {"masks": ["malignant/malignant (1)_mask.png"], "label": "malignant"}),
    "unsplit/malignant (2)": (
        "What does this breast ultrasound image show?",
        "Breast ultrasound image showing a malignant breast lesion.",
        "Generate a breast ultrasound image showing a malignant breast lesion.",
        ["malignant/malignant (2).png"], (160, 160, 1, "png"),
        {"masks": [], "label": "malignant"}),
    "unsplit/normal (1)": (
        "Is the breast tissue in this ultrasound image normal, or does it show a benign or malignant lesion?",
        "Breast ultrasound image showing normal breast tissue.",
        "Generate a breast ultrasound image showing normal breast tissue.",
        ["normal/normal (1).png"], (192, 160, 1, "png"),
        {"masks": ["normal/normal (1)_mask.png"], "label": "normal"}),
}
REJECTED: dict = {}  # the sample has no unreadable item; see the quirk tests


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_item_gives_two_samples_or_two_rejections(root):
    check_two_items_per_image(Busi(root), [*RECORDS, *REJECTED])


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    check_label_pair(root, Busi(root), stem, "ultrasound", RECORDS[stem])


def test_units_are_chunked_with_stable_ids(root):
    check_units_chunked(Busi, root)


def test_sample_tree_is_deterministic_and_small(tmp_path):
    check_sample_tree(sample, tmp_path)



def test_masks_are_never_samples_and_orphans_are_ignored(root):
    items = collect(Busi(root))
    assert not any("_mask" in key for key in items)
    assert (root / "benign" / "benign (9)_mask.png").is_file() and "busi/unsplit/benign (9)/caption" not in items


def test_rgb_with_colour_stays_rgb(root):
    pixels = np.asarray(PILImage.open(root / "benign" / "benign (1).png")).copy()
    pixels[0, 0] = (255, 0, 0)
    PILImage.fromarray(pixels).save(root / "benign" / "benign (1).png")
    (image,) = collect(Busi(root))["busi/unsplit/benign (1)/caption"].images
    assert image.channels == 3 and np.array_equal(load_pixels(image), pixels)


def test_unknown_class_folder_is_label_unknown(root):
    (root / "unlabelled").mkdir()
    shutil.copy(root / "normal" / "normal (1).png", root / "unlabelled" / "case (1).png")
    items = collect(Busi(root))
    assert {items[f"busi/unsplit/case (1)/{kind}"].reason for kind in ("caption", "t2i")} == {"label_unknown"}


def test_split_selection_and_empty_root(root, tmp_path):
    assert Busi(root, splits=["test"]).work_units() == []
    with pytest.raises(SourceError, match="no class folders"):
        Busi(tmp_path / "nowhere").work_units()
