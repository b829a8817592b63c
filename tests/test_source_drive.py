"""DRIVE adapter: exact prompt-segmentation records, GIF masks as 0/255, FOV in meta, rejections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from manifests.records import Record
from sources.base import SourceError
from sources.drive import Drive
from sources.samples import drive as sample
from tests.source_checks import collect

ASK = "<image>\nPlease help me segment the blood vessels."
RECORDS = {
    # id -> (split, folder, number, response, vessel fraction, second manual)
    "drive/train/21": ("train", "training", "21", "Here is the segmentation mask of the retinal blood vessels.",
                       0.0594, None),
    "drive/train/22": ("train", "training", "22", "The blood vessels have been segmented; the mask is shown below.",
                       0.0565, None),
    "drive/test/01": ("test", "test", "01", "Sure, this is the vessel segmentation of the fundus image.", 0.0583,
                      "test/2nd_manual/01_manual2.gif"),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


def test_every_image_in_one_place(root):
    assert sorted(collect(Drive(root))) == ["drive/test/01", "drive/test/02", "drive/train/21", "drive/train/22",
                                            "drive/train/23"]


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    split, folder, number, response, vessel_fraction, second = RECORDS[record_id]
    record = collect(Drive(root))[record_id]
    assert isinstance(record, Record)
    assert (record.source, record.split, record.modality, record.task_family) == ("drive", split, "fundus",
                                                                                   "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("segmentation", "prompt_segmentation")
    assert record.message == [{"from": "human", "value": ASK}, {"from": "gpt", "value": response}]
    image_path, manual = f"{folder}/images/{number}_{folder}.tif", f"{folder}/1st_manual/{number}_manual1.gif"
    assert record.provenance == [image_path, manual]
    assert record.meta == {"target": "blood vessels", "annotator": "1st_manual",
                           "fov_mask": f"{folder}/mask/{number}_{folder}_mask.gif", "fov_fraction": 0.6112,
                           "vessel_fraction": vessel_fraction, "second_manual": second}
    (image,), (mask,) = record.input_images, record.output_images
    assert (image.width, image.height, image.channels, image.bit_depth, image.source_path) == (192, 200, 3, 8,
                                                                                               image_path)
    assert np.array_equal(image.pixels, np.asarray(PILImage.open(root / image_path)))
    assert (mask.width, mask.height, mask.channels, mask.bit_depth, mask.source_path) == (192, 200, 1, 8, manual)
    assert mask.pixels.dtype == np.uint8 and set(np.unique(mask.pixels)) == {0, 255}
    stored = np.asarray(PILImage.open(root / manual).convert("L"))  # a palette GIF, read through PIL
    assert PILImage.open(root / manual).mode == "P"
    assert np.array_equal(mask.pixels, np.where(stored > 127, 255, 0))


def test_rejections(root):
    items = collect(Drive(root))
    missing, broken = items["drive/test/02"], items["drive/train/23"]
    assert (missing.reason, missing.detail, missing.provenance) == (
        "annotation_missing", "no test/1st_manual/02_manual1.gif", ["test/images/02_test.tif"])
    assert broken.reason == "image_undecodable" and broken.detail.startswith("training/1st_manual/23_manual1.gif")
    assert (broken.modality, broken.task_family) == ("fundus", "interleaved")


def test_missing_fov_mask_is_unknown(tmp_path):
    root = sample.write(tmp_path)
    (root / "training" / "mask" / "21_training_mask.gif").unlink()
    record = collect(Drive(root))["drive/train/21"]
    assert record.meta["fov_mask"] is None and record.meta["fov_fraction"] is None


def test_split_selection_and_wrong_root(root, tmp_path):
    assert [u.id for u in Drive(root, splits=["test"]).work_units()] == ["drive/test/00000"]
    assert Drive.find_root(root.parent) == root
    with pytest.raises(SourceError):
        Drive(tmp_path).work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert sum((root / f).stat().st_size for f in files) < 300_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
