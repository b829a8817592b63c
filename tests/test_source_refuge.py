"""REFUGE adapter: two targets per image from one 0/128/255 mask, glaucoma from folders, nested zips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from manifests.records import Record
from sources.base import SourceError
from sources.refuge import Refuge
from sources.samples import refuge as sample
from tests.source_checks import collect

TRAIN_G = ("Training400/Glaucoma/g0001.jpg", "Annotation-Training400/Disc_Cup_Masks/Glaucoma/g0001.bmp")
TRAIN_N = ("Training400/Non-Glaucoma/n0001.jpg", "Annotation-Training400/Disc_Cup_Masks/Non-Glaucoma/n0001.bmp")
VAL = ("REFUGE-Validation400/REFUGE-Validation400/V0001.jpg", "REFUGE-Validation400-GT/Disc_Cup_Masks/V0001.bmp")
TEST = ("Test400/T0001.jpg", "REFUGE-Test-GT/Disc_Cup_Masks/G/T0001.bmp")
RECORDS = {  # id -> (paths, response, glaucoma, foreground fraction)
    "refuge/train/g0001/optic_disc": (TRAIN_G, "The optic disc has been segmented; the mask is shown below.",
                                      True, 0.0864),
    "refuge/train/g0001/optic_cup": (TRAIN_G, "Sure, this is the optic cup segmentation of the fundus image.",
                                     True, 0.0123),
    "refuge/train/n0001/optic_disc": (TRAIN_N, "Sure, this is the optic disc segmentation of the fundus image.",
                                      False, 0.0909),
    "refuge/train/n0001/optic_cup": (TRAIN_N, "Sure, this is the optic cup segmentation of the fundus image.",
                                     False, 0.0207),
    "refuge/validate/V0001/optic_disc": (VAL, "Sure, this is the optic disc segmentation of the fundus image.",
                                         None, 0.0791),
    "refuge/validate/V0001/optic_cup": (VAL, "Here is the segmentation mask of the optic cup.", None, 0.0117),
    "refuge/test/T0001/optic_disc": (TEST, "The optic disc has been segmented; the mask is shown below.", True,
                                     0.0661),
    "refuge/test/T0001/optic_cup": (TEST, "Here is the segmentation mask of the optic cup.", True, 0.0254),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


def test_every_target_once(root):
    assert sorted(collect(Refuge(root))) == sorted([*RECORDS, "refuge/train/n0002/optic_disc",
                                                    "refuge/train/n0002/optic_cup"])


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    (image_path, mask_path), response, glaucoma, fraction = RECORDS[record_id]
    target = "optic disc" if record_id.endswith("disc") else "optic cup"
    record = collect(Refuge(root))[record_id]
    assert isinstance(record, Record)
    assert (record.split, record.modality, record.task_family) == (record_id.split("/")[1], "fundus", "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("segmentation", "prompt_segmentation")
    assert record.message == [{"from": "human", "value": f"<image>\nPlease help me segment the {target}."},
                              {"from": "gpt", "value": response}]
    assert record.provenance == [image_path, mask_path]
    assert record.meta == {"target": target, "glaucoma": glaucoma, "foreground_fraction": fraction}
    (image,), (mask,) = record.input_images, record.output_images
    assert image.format == "jpg" and image.encoded == (root / image_path).read_bytes()
    stored = np.asarray(PILImage.open(root / mask_path))
    expected = stored <= 150 if target == "optic disc" else stored == 0  # the disc includes the cup
    assert (mask.width, mask.height, mask.channels, mask.bit_depth) == (200, 176, 1, 8)
    assert np.array_equal(mask.pixels, np.where(expected, 255, 0))


def test_missing_mask_rejects_both_targets(root):
    items = collect(Refuge(root))
    for suffix in ("optic_disc", "optic_cup"):
        missing = items[f"refuge/train/n0002/{suffix}"]
        assert (missing.reason, missing.detail, missing.provenance) == (
            "annotation_missing", "no mask for n0002", ["Training400/Non-Glaucoma/n0002.jpg"])


def test_split_selection_and_wrong_root(root, tmp_path):
    assert [u.id for u in Refuge(root, splits=["validate"]).work_units()] == ["refuge/validate/00000"]
    assert Refuge.find_root(root.parent) == root
    with pytest.raises(SourceError):
        Refuge(tmp_path).work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert sum((root / f).stat().st_size for f in files) < 1_000_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
