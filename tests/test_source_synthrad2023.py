"""SynthRAD2023 adapter: exact MR->CT and CBCT->CT slice records, mask skipping, HU windows, failures."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.io.nifti import axial_slice
from sources.samples import synthrad2023 as sample
from sources.synthrad2023 import Synthrad2023, hu_to_uint16

MR = "synthrad2023/train/1BA001/mr-ct"
CB = "synthrad2023/train/2PA001/cbct-ct"
MR_FILES = ["Task1/brain/1BA001/mr.nii.gz", "Task1/brain/1BA001/ct.nii.gz", "Task1/brain/1BA001/mask.nii.gz"]
CB_FILES = ["Task2/pelvis/2PA001/cbct.nii.gz", "Task2/pelvis/2PA001/ct.nii.gz", "Task2/pelvis/2PA001/mask.nii.gz"]
MESSAGES = {
    f"{MR}/001": ("Translate this MRI image of the brain into a synthetic CT image.",
                  "Here is the synthesized CT image of the same slice."),
    f"{MR}/002": ("Synthesize a CT scan of the same brain slice from the given MRI image.",
                  "The synthetic CT of this slice has been generated."),
    f"{CB}/003": ("Generate the corresponding CT image from this CBCT slice of the pelvis.",
                  "The synthetic CT of this slice has been generated."),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


def run(root: Path, **kwargs) -> dict[str, Record | Rejection]:
    source = Synthrad2023(root, **kwargs)
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split
            out[item.id] = item
    return out


def marker_slice(pixels: np.ndarray) -> int:
    row = pixels[sample.MARKER_ROW, : sample.MARKER_COL0 + sample.MARKER_STEP * 6]
    columns = np.flatnonzero(row > row.min())
    assert len(columns) == sample.MARKER_SIZE
    return (int(columns[0]) - sample.MARKER_COL0) // sample.MARKER_STEP


def test_exact_ids_and_rejections(root):
    items = run(root)
    records = sorted(k for k, v in items.items() if isinstance(v, Record))
    assert records == [f"{MR}/{k:03d}" for k in (1, 2, 3)] + [f"{CB}/{k:03d}" for k in (1, 2, 3)]
    rejected = {k: (v.reason, v.detail, v.provenance) for k, v in items.items() if isinstance(v, Rejection)}
    assert rejected == {
        f"{MR}/000": ("outside_mask", "mask covers 0.000 < 0.05", MR_FILES[:2]),
        f"{CB}/000": ("outside_mask", "mask covers 0.000 < 0.05", CB_FILES[:2]),
        "synthrad2023/train/1BA002/mr-ct": ("missing_volume", "no ct in Task1/brain/1BA002",
                                            ["Task1/brain/1BA002/mr.nii.gz"]),
    }


@pytest.mark.parametrize("record_id", sorted(MESSAGES))
def test_record_content(root, record_id):
    record = run(root)[record_id]
    task1 = record_id.startswith(MR)
    instruction, response = MESSAGES[record_id]
    assert (record.source, record.split, record.modality, record.task_family) == ("synthrad2023", "train", "ct",
                                                                                   "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("cross_modal_synthesis",
                                                             "mr_to_ct" if task1 else "cbct_to_ct")
    assert record.message == [{"from": "human", "value": f"<image>\n{instruction}"},
                              {"from": "gpt", "value": response}]
    assert record.provenance == (MR_FILES if task1 else CB_FILES)
    assert record.meta == {"patient": "1BA001" if task1 else "2PA001", "task": 1 if task1 else 2,
                           "region": "brain" if task1 else "pelvis", "centre": "A",
                           "input_modality": "mri" if task1 else "ct", "ct_window": [-1000.0, 1000.0],
                           "mask_fraction": 0.4836, "orientation": "LPS" if task1 else "RAS"}
    k = int(record_id[-3:])
    for image, path in zip(record.images, record.provenance, strict=False):
        assert (image.width, image.height, image.bit_depth, image.channels) == (160, 176, 16, 1)
        assert (image.slice_index, image.slice_axis, image.source_path) == (k, "axial", path)
        assert image.pixels.dtype == np.uint16 and marker_slice(image.pixels) == k


def test_ct_is_windowed_in_hu(root):
    record = run(root)[f"{MR}/002"]
    ct = nib.as_closest_canonical(nib.load(root / MR_FILES[1])).get_fdata()
    expected = hu_to_uint16(axial_slice(ct, 2), (-1000.0, 1000.0))
    assert np.array_equal(record.output_images[0].pixels, expected)
    assert record.output_images[0].pixels.min() == 0  # -1000 HU background
    assert hu_to_uint16(np.array([-2000.0, -160.0, 240.0, 5000.0]), (-160.0, 240.0)).tolist() == [0, 0, 65535, 65535]


def test_ct_window_option(root):
    record = run(root, options={"ct_window": "soft_tissue"})[f"{CB}/001"]
    assert record.meta["ct_window"] == [-160.0, 240.0]
    assert run(root, options={"ct_window": [-500, 500]})[f"{CB}/001"].meta["ct_window"] == [-500.0, 500.0]
    with pytest.raises(SourceError):
        Synthrad2023(root, options={"ct_window": "lung"}).work_units()


def test_grid_mismatch(tmp_path):
    root = sample.write(tmp_path)
    nib.save(nib.Nifti1Image(np.zeros((160, 170, 4), np.int16), sample.RAS_PELVIS_AFFINE),
             root / "Task2/pelvis/2PA001/cbct.nii.gz")
    rejection = run(root)[CB]
    assert rejection.reason == "pair_grid_mismatch" and "cbct (160, 170, 4)" in rejection.detail
    assert not any(key.startswith(f"{CB}/") for key in run(root))


def test_find_root_and_splits(root, tmp_path):
    assert Synthrad2023.find_root(root.parent) == root
    assert Synthrad2023.find_root(root) == root  # Task1/ and Task2/ straight under the sources root
    assert Synthrad2023.find_root(tmp_path) is None
    assert Synthrad2023(root, splits=["test"]).work_units() == []
    with pytest.raises(SourceError):
        Synthrad2023(tmp_path).work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert len(files) == 9 and sum((root / f).stat().st_size for f in files) < 600_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
