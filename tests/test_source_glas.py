"""GlaS adapter: exact records, instance maps binarised at > 0, stripped Grade.csv, testA/testB -> test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from manifests.records import Record
from sources.base import SourceError
from sources.glas import Glas
from sources.samples import glas as sample
from tests.source_checks import collect

ASK = "<image>\nPlease help me segment the glands."
A = "Sure, this is the gland segmentation of the histology image."
B = "The glands have been segmented; the mask is shown below."
RECORDS = {  # id -> (response, part, patient, grade, Sirinukunwattana grade, glands, fraction)
    "glas/train/train_1": (A, "train", "1", "malignant", "poorly differentiated", 2, 0.0594),
    "glas/train/train_2": (B, "train", None, None, None, 3, 0.0731),
    "glas/test/testA_1": (A, "testA", "4", "benign", "adenomatous", 5, 0.1388),
    "glas/test/testB_1": (B, "testB", "2", "malignant", "moderately differentiated", 6, 0.185),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


def test_every_tile_once(root):
    assert sorted(collect(Glas(root))) == ["glas/test/testA_1", "glas/test/testB_1", "glas/train/train_1",
                                           "glas/train/train_2", "glas/train/train_3"]


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    response, part, patient, grade, grade_s, count, fraction = RECORDS[record_id]
    record = collect(Glas(root))[record_id]
    stem = record_id.rsplit("/", 1)[1]
    assert isinstance(record, Record)
    assert (record.split, record.modality, record.task_family) == (record_id.split("/")[1], "histopathology",
                                                                    "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("segmentation", "prompt_segmentation")
    assert record.message == [{"from": "human", "value": ASK}, {"from": "gpt", "value": response}]
    assert record.provenance == [f"{stem}.bmp", f"{stem}_anno.bmp"]
    assert record.meta == {"target": "glands", "part": part, "patient_id": patient, "grade_glas": grade,
                           "grade_sirinukunwattana": grade_s, "gland_count": count, "foreground_fraction": fraction}
    (image,), (mask,) = record.input_images, record.output_images
    assert (image.width, image.height, image.channels) == (200, 168, 3)
    assert np.array_equal(image.pixels, np.asarray(PILImage.open(root / f"{stem}.bmp")))
    stored = np.asarray(PILImage.open(root / f"{stem}_anno.bmp"))
    assert stored.max() == count  # instance ids, far below 127
    assert (mask.width, mask.height, mask.channels, mask.bit_depth) == (200, 168, 1, 8)
    assert np.array_equal(mask.pixels, np.where(stored > 0, 255, 0))


def test_missing_annotation(root):
    missing = collect(Glas(root))["glas/train/train_3"]
    assert (missing.reason, missing.detail, missing.provenance) == ("annotation_missing", "no train_3_anno.bmp",
                                                                    ["train_3.bmp"])


def test_without_grade_csv_grades_are_unknown(tmp_path):
    root = sample.write(tmp_path)
    (root / "Grade.csv").unlink()
    meta = collect(Glas(root))["glas/test/testA_1"].meta
    assert (meta["patient_id"], meta["grade_glas"], meta["grade_sirinukunwattana"]) == (None, None, None)


def test_split_selection_and_wrong_root(root, tmp_path):
    assert [u.id for u in Glas(root, splits=["test"]).work_units()] == ["glas/test/00000"]
    assert Glas.find_root(root.parent) == root
    with pytest.raises(SourceError):
        Glas(tmp_path).work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert sum((root / f).stat().st_size for f in files) < 1_000_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
