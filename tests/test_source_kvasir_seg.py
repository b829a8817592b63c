"""Kvasir-SEG adapter: exact records from the sample tree, the lossy-JPEG mask pairing in meta, bounding boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from sources.base import SourceError
from sources.kvasir_seg import KvasirSeg
from sources.samples import kvasir_seg as sample
from tests.source_checks import (check_label_pair, check_rejected_pair, check_sample_tree,
                                       check_two_items_per_image, check_units_chunked, collect)


def _box(xmin: int, ymin: int, xmax: int, ymax: int) -> dict:
    return {"label": "polyp", "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}


def _meta(stem: str | None, fraction: float | None, bboxes: list | None, error: str | None = None) -> dict:
    return {"mask": stem and f"masks/{stem}.jpg", "mask_threshold": 127,
            "mask_foreground_fraction": None if fraction is None else round(fraction, 6), "mask_error": error,
            "bboxes": bboxes, "label": "polyp"}


def _provenance(stem: str) -> list[str]:
    return [f"images/{stem}.jpg", "kavsir_bboxes.json"]


RECORDS = {
    # stem -> (instruction, caption, prompt, provenance, (width, height, channels, format), meta)
    # the mask foreground fractions are the drawn boxes' areas: thresholding undoes the JPEG ringing
    "unsplit/cju0qkwl35piu0993l0dewei2": (
        "What does this endoscopic image show?",
        "Gastrointestinal endoscopy image of a polyp.",
        "Generate an endoscopic image of a polyp.",
        _provenance("cju0qkwl35piu0993l0dewei2"), (200, 176, 3, "jpg"),
        _meta("cju0qkwl35piu0993l0dewei2", 80 * 100 / (176 * 200), [_box(50, 40, 150, 120)])),
    "unsplit/cju0qoxqj9q6s0835b43399p4": (
        "Describe this gastrointestinal endoscopy image.",
        "A polyp, seen on endoscopy.",
        "Create an endoscopy image of a polyp.",
        _provenance("cju0qoxqj9q6s0835b43399p4"), (192, 160, 3, "jpg"),
        _meta("cju0qoxqj9q6s0835b43399p4", (40 * 50 + 60 * 80) / (160 * 192),
              [_box(20, 20, 70, 60), _box(100, 90, 180, 150)])),
    "unsplit/cju0roawvklrq0799vmjorwfv": (  # no mask file; an entry with no boxes
        "What does this endoscopic image show?",
        "Endoscopic image showing a polyp.",
        "Create an endoscopy image of a polyp.",
        _provenance("cju0roawvklrq0799vmjorwfv"), (200, 160, 3, "jpg"),
        _meta(None, None, [], "missing_file")),
    "unsplit/cju0s690hkp960855tjuaqvv0": (  # no bounding-box entry
        "Describe this gastrointestinal endoscopy image.",
        "Gastrointestinal endoscopy image of a polyp.",
        "Generate an endoscopic image of a polyp.",
        _provenance("cju0s690hkp960855tjuaqvv0"), (192, 160, 3, "jpg"),
        _meta("cju0s690hkp960855tjuaqvv0", 70 * 80 / (160 * 192), None)),
}
REJECTED = {
    # stem -> (reason, detail prefix, provenance)
    "unsplit/cju0sxqiclckk08551ycbwhno": (
        "image_undecodable", "images/cju0sxqiclckk08551ycbwhno.jpg: image file is truncated",
        _provenance("cju0sxqiclckk08551ycbwhno")),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_item_gives_two_samples_or_two_rejections(root):
    check_two_items_per_image(KvasirSeg(root), [*RECORDS, *REJECTED])


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    check_label_pair(root, KvasirSeg(root), stem, "endoscopy", RECORDS[stem])


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    check_rejected_pair(KvasirSeg(root), stem, "endoscopy", REJECTED[stem], detail_is_prefix=True)


def test_units_are_chunked_with_stable_ids(root):
    check_units_chunked(KvasirSeg, root)


def test_sample_tree_is_deterministic_and_small(tmp_path):
    check_sample_tree(sample, tmp_path)



def test_masks_are_lossy_and_thresholded(root):
    mask = np.asarray(PILImage.open(root / "masks" / "cju0qkwl35piu0993l0dewei2.jpg"))
    assert not set(np.unique(mask)) <= {0, 255}  # JPEG ringing: never assume {0, 255}
    meta = collect(KvasirSeg(root))["kvasir_seg/unsplit/cju0qkwl35piu0993l0dewei2/caption"].meta
    assert meta["mask_foreground_fraction"] == round(80 * 100 / (176 * 200), 6)  # exactly the drawn box


def test_masks_are_never_samples(root):
    items = collect(KvasirSeg(root))
    assert (root / "masks" / f"{sample.ORPHAN_MASK}.jpg").is_file()
    assert not any(sample.ORPHAN_MASK in key for key in items)


def test_mask_of_another_size_or_undecodable(root):
    stem = "cju0qoxqj9q6s0835b43399p4"
    PILImage.new("L", (100, 100)).save(root / "masks" / f"{stem}.jpg")
    (root / "masks" / "cju0s690hkp960855tjuaqvv0.jpg").write_bytes(b"not a jpeg")
    items = collect(KvasirSeg(root))
    wrong_size = items[f"kvasir_seg/unsplit/{stem}/t2i"].meta
    assert (wrong_size["mask"], wrong_size["mask_error"], wrong_size["mask_foreground_fraction"]) == (
        f"masks/{stem}.jpg", "mask_size_mismatch", None)
    broken = items["kvasir_seg/unsplit/cju0s690hkp960855tjuaqvv0/caption"].meta
    assert (broken["mask"], broken["mask_error"]) == ("masks/cju0s690hkp960855tjuaqvv0.jpg", "image_undecodable")


def test_bbox_file_with_corrected_name_or_absent(root):
    (root / "kavsir_bboxes.json").rename(root / "kvasir_bboxes.json")
    record = collect(KvasirSeg(root))["kvasir_seg/unsplit/cju0qkwl35piu0993l0dewei2/caption"]
    assert record.provenance == ["images/cju0qkwl35piu0993l0dewei2.jpg", "kvasir_bboxes.json"]
    (root / "kvasir_bboxes.json").unlink()
    record = collect(KvasirSeg(root))["kvasir_seg/unsplit/cju0qkwl35piu0993l0dewei2/caption"]
    assert record.provenance == ["images/cju0qkwl35piu0993l0dewei2.jpg"] and record.meta["bboxes"] is None


def test_split_selection_and_errors(root, tmp_path):
    assert KvasirSeg(root, splits=["train"]).work_units() == []
    with pytest.raises(SourceError, match="no images/"):
        KvasirSeg(tmp_path).work_units()
    (root / "kavsir_bboxes.json").write_text("{", encoding="utf-8")
    with pytest.raises(SourceError, match="not valid JSON"):
        KvasirSeg(root).work_units()
