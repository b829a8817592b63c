"""CVC-ClinicDB adapter: exact prompt-segmentation records from the sample, masks 0/255, rejections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.cvc_clinicdb import CvcClinicDb
from sources.samples import cvc_clinicdb as sample

ASK = "<image>\nPlease help me segment the polyp."
RECORDS = {  # id -> (frame, response, foreground fraction)
    "cvc_clinicdb/unsplit/1": ("1", "Sure, this is the polyp segmentation of the colonoscopy frame.", 0.0577),
    "cvc_clinicdb/unsplit/2": ("2", "Sure, this is the polyp segmentation of the colonoscopy frame.", 0.0462),
    "cvc_clinicdb/unsplit/10": ("10", "The polyp has been segmented; the mask is shown below.", 0.0945),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


def collect(source: CvcClinicDb) -> dict[str, Record | Rejection]:
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split == "unsplit"
            out[item.id] = item
    return out


def test_every_frame_once_in_numeric_order(root):
    assert list(collect(CvcClinicDb(root))) == [f"cvc_clinicdb/unsplit/{n}" for n in (1, 2, 3, 4, 5, 10)]


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    frame, response, fraction = RECORDS[record_id]
    record = collect(CvcClinicDb(root))[record_id]
    assert isinstance(record, Record)
    assert (record.source, record.modality, record.task_family) == ("cvc_clinicdb", "endoscopy", "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("segmentation", "prompt_segmentation")
    assert record.message == [{"from": "human", "value": ASK}, {"from": "gpt", "value": response}]
    image_path, mask_path = f"Original/{frame}.tif", f"Ground Truth/{frame}.tif"
    assert record.provenance == [image_path, mask_path]
    assert record.meta == {"target": "polyp", "frame": frame, "foreground_fraction": fraction}
    (image,), (mask,) = record.input_images, record.output_images
    assert (image.width, image.height, image.channels, image.bit_depth) == (192, 160, 3, 8)
    assert np.array_equal(image.pixels, np.asarray(PILImage.open(root / image_path)))
    assert (mask.width, mask.height, mask.channels, mask.source_path) == (192, 160, 1, mask_path)
    assert set(np.unique(mask.pixels)) == {0, 255}
    assert np.array_equal(mask.pixels, np.asarray(PILImage.open(root / mask_path)))


def test_rejections(root):
    items = collect(CvcClinicDb(root))
    assert (items["cvc_clinicdb/unsplit/3"].reason, items["cvc_clinicdb/unsplit/3"].provenance) == (
        "annotation_missing", ["Original/3.tif"])
    assert (items["cvc_clinicdb/unsplit/4"].reason, items["cvc_clinicdb/unsplit/4"].detail) == (
        "mask_empty", "Ground Truth/4.tif has no polyp pixel")
    wrong = items["cvc_clinicdb/unsplit/5"]
    assert (wrong.reason, wrong.detail) == ("mask_size_mismatch", "image 192x160 vs mask 180x150")
    assert (wrong.modality, wrong.task_family) == ("endoscopy", "interleaved")


def test_kaggle_copies_read_tif_only(tmp_path):
    base = tmp_path / "CVC-ClinicDB"
    for copy, ext in (("TIF", "tif"), ("PNG", "png")):
        for folder in ("Original", "Ground Truth"):
            (base / copy / folder).mkdir(parents=True)
        pixels = sample.phantom(sample.rng_for(copy), 160, 192, channels=3)
        PILImage.fromarray(pixels).save(base / copy / "Original" / f"7.{ext}")
        PILImage.fromarray(sample.polyp_mask(sample.rng_for(copy))).save(base / copy / "Ground Truth" / f"7.{ext}")
    (record,) = collect(CvcClinicDb(base)).values()
    assert record.id == "cvc_clinicdb/unsplit/7" and record.provenance == ["TIF/Original/7.tif",
                                                                            "TIF/Ground Truth/7.tif"]


def test_split_selection_and_wrong_root(root, tmp_path):
    assert CvcClinicDb(root, splits=["train"]).work_units() == []
    assert CvcClinicDb.find_root(root.parent) == root
    with pytest.raises(SourceError):
        CvcClinicDb(tmp_path).work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert sum((root / f).stat().st_size for f in files) < 1_000_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
