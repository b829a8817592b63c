"""fastMRI adapter: reconstruction slices as deterministic 4x super-resolution pairs, splits, rejections."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.fastmri import Fastmri, degrade
from sources.io.nifti import mr_to_uint16
from sources.samples import fastmri as sample

BRAIN = "brain_multicoil_train/file_brain_AXT2_200_2000019.h5"
KNEE = "multicoil_val/file1000000.h5"
RECORDS = {
    # id -> (split, file, instruction, response, acquisition, anatomy, patient id)
    "fastmri/train/file_brain_AXT2_200_2000019/000": (
        "train", BRAIN, "Generate a 4x super-resolved version of this low-resolution brain MRI slice.",
        "The high-resolution version of this MRI slice has been generated.", "AXT2", "brain", "a3f60019"),
    "fastmri/train/file_brain_AXT2_200_2000019/001": (
        "train", BRAIN, "Increase the resolution of this brain MRI slice by a factor of 4.",
        "The high-resolution version of this MRI slice has been generated.", "AXT2", "brain", "a3f60019"),
    "fastmri/validate/file1000000/001": (
        "validate", KNEE, "Generate a 4x super-resolved version of this low-resolution knee MRI slice.",
        "Here is the 4x super-resolved MRI image.", "CORPD_FBK", "knee", "a3f60000"),
    "fastmri/validate/file1000000/002": (
        "validate", KNEE, "Generate a 4x super-resolved version of this low-resolution knee MRI slice.",
        "Here is the 4x super-resolved MRI image.", "CORPD_FBK", "knee", "a3f60000"),
}
REJECTED = {
    "fastmri/validate/file1000000/000": ("empty_slice", "foreground 0.000 < 0.05", KNEE),
    "fastmri/test/file1000001": ("reconstruction_missing",
                                 "multicoil_test/file1000001.h5: no reconstruction_rss or reconstruction_esc",
                                 "multicoil_test/file1000001.h5"),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


def run(root: Path, **kwargs) -> dict[str, Record | Rejection]:
    source = Fastmri(root, **kwargs)
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split
            out[item.id] = item
    return out


def test_every_slice_and_file_in_one_place(root):
    assert set(run(root)) == set(RECORDS) | set(REJECTED) | {"fastmri/train/broken"}


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    split, path, instruction, response, acquisition, anatomy, patient = RECORDS[record_id]
    record = run(root)[record_id]
    assert (record.source, record.split, record.modality, record.task_family) == ("fastmri", split, "mri",
                                                                                   "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("super_resolution", "super_resolution_4x")
    assert record.message == [{"from": "human", "value": f"<image>\n{instruction}"},
                              {"from": "gpt", "value": response}]
    assert record.provenance == [path]
    assert record.meta == {"target": "reconstruction_rss", "acquisition": acquisition, "anatomy": anatomy,
                           "patient_id": patient, "degradation": {"method": "bicubic_down_up", "factor": 4},
                           "sample_name": f"{Path(path).stem}_{int(record_id[-3:])}"}
    k = int(record_id[-3:])
    with h5py.File(root / path, "r") as handle:
        expected = mr_to_uint16(handle["reconstruction_rss"][()])[k]
    (low,), (high,) = record.input_images, record.output_images
    assert np.array_equal(high.pixels, expected) and np.array_equal(low.pixels, degrade(expected))
    for image in (low, high):
        assert (image.width, image.height, image.bit_depth, image.slice_index, image.source_path) == (
            160, 160, 16, k, path)
    assert not np.array_equal(low.pixels, high.pixels)


def test_rejections(root):
    items = run(root)
    for record_id, (reason, detail, path) in REJECTED.items():
        assert (items[record_id].reason, items[record_id].detail, items[record_id].provenance) == (reason, detail,
                                                                                                   [path])
    assert items["fastmri/train/broken"].reason == "hdf5_unreadable"


def test_degradation_loses_detail_but_keeps_size():
    pixels = (np.indices((64, 64)).sum(axis=0) % 2 * 60000).astype(np.uint16)  # a 1-px checkerboard
    degraded = degrade(pixels)
    assert degraded.shape == pixels.shape and degraded.dtype == np.uint16
    assert degraded.std() < 0.1 * pixels.std()


def test_split_selection_and_wrong_root(root, tmp_path):
    assert [u.id for u in Fastmri(root, splits=["validate"]).work_units()] == ["fastmri/validate/file1000000"]
    assert Fastmri.find_root(root.parent) == root
    with pytest.raises(SourceError):
        Fastmri(tmp_path).work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert len(files) == 4 and sum((root / f).stat().st_size for f in files) < 300_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
