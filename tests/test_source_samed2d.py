"""SA-Med2D adapter: one prompt-segmentation record per (image, mask), class names from the mapping, rejections."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.samed2d import Samed2d, modality_of
from sources.samples import samed2d as sample

CT, MR, DERM = sample.CT, sample.MR, sample.DERM
RECORDS = {
    # id -> (modality, class text, response, meta)
    f"samed2d/unsplit/{CT}/0000_001": ("ct", "liver", "Here is the segmentation mask of the liver.",
                                       {"class_name": "liver", "target": "liver", "class_index": 0, "instance": 1,
                                        "dataset": "AbdomenCT1K", "modality_code": "ct_00", "case": "Case_00011",
                                        "axis": "x", "slice": 40}),
    f"samed2d/unsplit/{CT}/0001_001": ("ct", "kidney", "Sure, this is the kidney segmentation.",
                                       {"class_name": "kidney", "target": "kidney", "class_index": 1, "instance": 1,
                                        "dataset": "AbdomenCT1K", "modality_code": "ct_00", "case": "Case_00011",
                                        "axis": "x", "slice": 40}),
    f"samed2d/unsplit/{MR}/0000_001": ("mri", "edema", "Segmentation of the edema is complete; the mask is shown below.",
                                       {"class_name": "edema", "target": "edema", "class_index": 0, "instance": 1,
                                        "dataset": "BraTS2021", "modality_code": "mr_t2w",
                                        "case": "BraTS2021_00000", "axis": "z", "slice": 77}),
}
REJECTED = {
    f"samed2d/unsplit/{CT}/0004_001": ("union_class", "union_liver_kidney", "ct"),
    f"samed2d/unsplit/{CT}/0009_001": ("class_unknown", "class 9 not in the mapping of AbdomenCT1K", "ct"),
    f"samed2d/unsplit/{DERM}/0000_001": ("missing_file", f"masks/{DERM}--0000_001.png", "dermoscopy"),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


def run(root: Path, **kwargs) -> dict[str, Record | Rejection]:
    source = Samed2d(root, **kwargs)
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split == "unsplit"
            out[item.id] = item
    return out


def paths_of(record_id: str) -> list[str]:
    stem, suffix = record_id.split("/")[2:]
    return ["SAMed2D_v1.json", f"images/{stem}.png", f"masks/{stem}--{suffix}.png"]


def test_every_mask_in_one_place(root):
    assert set(run(root)) == set(RECORDS) | set(REJECTED)


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    modality, name, response, meta = RECORDS[record_id]
    record = run(root)[record_id]
    assert (record.source, record.split, record.modality, record.task_family) == ("samed2d", "unsplit", modality,
                                                                                   "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("segmentation", "prompt_segmentation")
    assert record.message == [{"from": "human", "value": f"<image>\nPlease help me segment the {name}."},
                              {"from": "gpt", "value": response}]
    assert record.provenance == paths_of(record_id)
    assert record.meta == meta
    (image,), (mask,) = record.input_images, record.output_images
    assert (image.width, image.height, image.source_path) == (160, 160, record.provenance[1])
    assert (mask.width, mask.height, mask.channels, mask.source_path) == (160, 160, 1, record.provenance[2])
    stored = np.asarray(PILImage.open(root / record.provenance[2]))
    assert np.array_equal(mask.pixels, np.where(stored > 0, 255, 0)) and set(np.unique(mask.pixels)) == {0, 255}


@pytest.mark.parametrize("record_id", sorted(REJECTED))
def test_rejections_exact(root, record_id):
    rejection = run(root)[record_id]
    assert (rejection.reason, rejection.detail, rejection.modality) == REJECTED[record_id]
    assert rejection.provenance == paths_of(record_id) and rejection.task_family == "interleaved"


def test_union_classes_on_request(root):
    record = run(root, options={"include_union": True})[f"samed2d/unsplit/{CT}/0004_001"]
    assert record.message[0]["value"] == "<image>\nPlease help me segment the liver kidney."
    assert record.meta["class_name"] == "union_liver_kidney"


def test_annotations_folder_layout(root, tmp_path):
    moved = tmp_path / "sa_med2d"
    shutil.copytree(root, moved)
    (moved / "annotations").mkdir()
    for name in ("SAMed2D_v1.json", "SAMed2D_v1_class_mapping_id.json"):
        (moved / name).rename(moved / "annotations" / name)
    record = run(moved)[f"samed2d/unsplit/{CT}/0000_001"]
    assert record.provenance[0] == "annotations/SAMed2D_v1.json"
    assert Samed2d.find_root(tmp_path) == moved


def test_malformed_mask_name(tmp_path):
    root = sample.write(tmp_path)
    index = json.loads((root / "SAMed2D_v1.json").read_text())
    index[f"images/{MR}.png"].append("masks/something_else.png")
    (root / "SAMed2D_v1.json").write_text(json.dumps(index))
    rejection = run(root)[f"samed2d/unsplit/{MR}/something_else"]
    assert rejection.reason == "malformed_name"


def test_modality_prefixes_and_wrong_root(tmp_path):
    assert [modality_of(p) for p in ("ct_cbf", "mr_flair", "x_ray", "pet_00", "fundus_photography",
                                     "ultrasound_00", "endoscopy_00")] == [
        "ct", "mri", "other", "other", "fundus", "ultrasound", "endoscopy"]
    with pytest.raises(SourceError):
        Samed2d(tmp_path).work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert len(files) == 10 and sum((root / f).stat().st_size for f in files) < 200_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
