"""KiTS adapter: KiTS19 z-first volumes reoriented, HU window, per-target masks, rejections, exact records."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.kits import Kits
from sources.samples import kits as sample
from tests.source_checks import collect

IMAGING, SEG = "data/case_00000/imaging.nii.gz", "data/case_00000/segmentation.nii.gz"
BASE = "kits/train/case_00000"
RECORDS = {  # id -> (target, label values, slice, response, foreground fraction)
    f"{BASE}/000/kidney": ("kidney", [1, 2, 3], 0, "Sure, this is the kidney segmentation of the CT slice.", 0.0375),
    f"{BASE}/000/kidney_cyst": ("kidney cyst", [3], 0, "Here is the segmentation mask of the kidney cyst.", 0.0025),
    f"{BASE}/001/kidney": ("kidney", [1, 2, 3], 1, "Here is the segmentation mask of the kidney.", 0.0375),
    f"{BASE}/001/kidney_tumor": ("kidney tumor", [2], 1,
                                 "The kidney tumor has been segmented; the mask is shown below.", 0.0057),
    f"{BASE}/002/kidney": ("kidney", [1, 2, 3], 2, "The kidney has been segmented; the mask is shown below.", 0.0375),
    f"{BASE}/002/kidney_tumor": ("kidney tumor", [2], 2, "Here is the segmentation mask of the kidney tumor.",
                                 0.0057),
    f"{BASE}/003/kidney": ("kidney", [1, 2, 3], 3, "Sure, this is the kidney segmentation of the CT slice.", 0.0375),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def items(root) -> dict[str, Record | Rejection]:
    return collect(Kits(root))


def canonical_slice(path: Path, k: int) -> np.ndarray:
    """Axial slice k of the volume reoriented to RAS, radiological display order (independent of the loader)."""
    data = nib.as_closest_canonical(nib.load(path)).get_fdata()
    return np.rot90(data[:, :, k])[:, ::-1]


def test_every_item_once(items):
    assert sorted(items) == sorted([*RECORDS, f"{BASE}/001/kidney_cyst", f"{BASE}/004", "kits/train/case_00001",
                                    "kits/test/case_00210"])


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, items, record_id):
    target, values, k, response, fraction = RECORDS[record_id]
    record = items[record_id]
    assert isinstance(record, Record)
    assert (record.source, record.split, record.modality, record.task_family) == ("kits", "train", "ct",
                                                                                  "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("segmentation", "prompt_segmentation")
    assert record.message == [{"from": "human", "value": f"<image>\nPlease help me segment the {target}."},
                              {"from": "gpt", "value": response}]
    assert record.provenance == [IMAGING, SEG]
    assert record.meta == {"target": target, "label_values": values, "case": "case_00000", "slice_index": k,
                           "ct_window": [-160.0, 240.0], "foreground_fraction": fraction}
    (image,), (mask,) = record.input_images, record.output_images
    assert (image.width, image.height, image.bit_depth, image.channels) == (160, 160, 16, 1)
    assert (image.slice_index, image.slice_axis, mask.slice_index, mask.source_path) == (k, "axial", k, SEG)
    hu = canonical_slice(root / IMAGING, k)
    assert np.array_equal(image.pixels, np.round((np.clip(hu, -160, 240) + 160) / 400 * 65535).astype(np.uint16))
    labels = np.rint(canonical_slice(root / SEG, k))
    assert mask.bit_depth == 8 and np.array_equal(mask.pixels, np.where(np.isin(labels, values), 255, 0))


def test_stored_z_first_volume_is_reoriented(root, items):
    # Stored slice 0 (z-first, -z direction) is canonical slice 4: the one without labels.
    stored = np.asarray(nib.load(root / SEG).dataobj)
    assert stored.shape == (5, 160, 160) and not stored[0].any()
    assert items[f"{BASE}/004"].reason == "slice_without_annotation"


def test_rejections(items):
    small = items[f"{BASE}/001/kidney_cyst"]
    assert (small.reason, small.detail) == ("target_too_small", "9 kidney cyst pixels < 16")
    mismatch = items["kits/train/case_00001"]
    assert (mismatch.reason, mismatch.detail) == ("mask_size_mismatch",
                                                  "imaging (160, 160, 5) vs segmentation (160, 150, 5)")
    test_case = items["kits/test/case_00210"]
    assert (test_case.reason, test_case.split, test_case.provenance) == (
        "annotation_missing", "test", ["data/case_00210/imaging.nii.gz"])
    assert (test_case.modality, test_case.task_family) == ("ct", "interleaved")


def test_window_option_and_minimum(root):
    items = collect(Kits(root, {"ct_window": "wide", "min_target_pixels": 1}))
    assert items[f"{BASE}/001/kidney_cyst"].meta["ct_window"] == [-1000.0, 1000.0]
    with pytest.raises(SourceError):
        Kits(root, {"ct_window": "lung"}).work_units()


def test_kits23_layout(tmp_path):
    base = tmp_path / "kits23"
    case = base / "dataset" / "case_00400"
    sample._nifti(case / "imaging.nii.gz", sample.ct_volume(sample.rng_for("k23")))
    sample._nifti(case / "segmentation.nii.gz", sample.label_map())
    items = collect(Kits(base))
    assert items["kits/train/case_00400/003/kidney"].provenance == ["dataset/case_00400/imaging.nii.gz",
                                                                   "dataset/case_00400/segmentation.nii.gz"]


def test_split_selection_and_wrong_root(root, tmp_path):
    assert [u.id for u in Kits(root, splits=["test"]).work_units()] == ["kits/test/00000"]
    assert Kits.find_root(root.parent) == root
    with pytest.raises(SourceError):
        Kits(tmp_path).work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert sum((root / f).stat().st_size for f in files) < 1_000_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
