"""IXI adapter: flat and per-tarball layouts, grid-mismatch and missing-contrast rejections, exact slice records."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.ixi import Ixi
from sources.samples import ixi as sample

GUYS = "ixi/unsplit/IXI002-Guys-0828"
HH = "ixi/unsplit/IXI012-HH-1211"
T1, T2, PD = "IXI-T1/IXI002-Guys-0828-T1.nii.gz", "IXI002-Guys-0828-T2.nii.gz", "IXI002-Guys-0828-PD.nii.gz"
PD_NAME = "proton density-weighted"
MESSAGES = {
    1: (f"Synthesize a {PD_NAME} MRI of the same slice from the given T2-weighted scan.",
        f"The {PD_NAME} version of this MRI slice has been generated."),
    2: (f"Using the provided T2-weighted MRI scan, produce a {PD_NAME} image.",
        f"Here is the synthesized {PD_NAME} image of the same slice."),
    3: (f"Generate the corresponding {PD_NAME} image from this T2-weighted brain MRI slice.",
        f"The {PD_NAME} version of this MRI slice has been generated."),
    4: (f"Using the provided T2-weighted MRI scan, produce a {PD_NAME} image.",
        f"Here is the synthesized {PD_NAME} image of the same slice."),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


def run(root: Path, **kwargs) -> dict[str, Record | Rejection]:
    source = Ixi(root, **kwargs)
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split == "unsplit"
            out[item.id] = item
    return out


def test_units_pair_files_by_volume_id_across_folders(root):
    units = Ixi(root).work_units()
    assert [u.id for u in units] == [GUYS, HH]
    assert units[0].items == (("IXI002-Guys-0828", {"PD": PD, "T2": T2, "T1": T1}),)
    assert units[1].items == (("IXI012-HH-1211", {"PD": "IXI012-HH-1211-PD.nii.gz",
                                                  "T1": "IXI-T1/IXI012-HH-1211-T1.nii.gz"}),)


def test_exact_rejections(root):
    rejected = {k: (v.reason, v.detail, v.provenance) for k, v in run(root).items() if isinstance(v, Rejection)}
    assert rejected == {
        # the sagittal T1 (stored PIR) reoriented is 160x176x5: not the T2 grid
        f"{GUYS}/T1-T2": ("pair_grid_mismatch", "T1 (160, 176, 5) vs T2 (160, 176, 6), or their affines differ",
                          [T1, T2]),
        f"{GUYS}/T2-PD/000": ("empty_slice", "foreground T2=0.000 PD=0.000 < 0.05", [T2, PD]),
        f"{GUYS}/T2-PD/005": ("empty_slice", "foreground T2=0.000 PD=0.000 < 0.05", [T2, PD]),
        f"{HH}/T1-T2": ("missing_volume", "no T2 for IXI012-HH-1211", ["IXI-T1/IXI012-HH-1211-T1.nii.gz"]),
        f"{HH}/T2-PD": ("missing_volume", "no T2 for IXI012-HH-1211", ["IXI012-HH-1211-PD.nii.gz"]),
    }


@pytest.mark.parametrize("k", sorted(MESSAGES))
def test_records_exact(root, k):
    record = run(root)[f"{GUYS}/T2-PD/{k:03d}"]
    assert (record.source, record.split, record.modality, record.task_family) == ("ixi", "unsplit", "mri",
                                                                                   "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("cross_modal_synthesis", "mri_t2_to_pd")
    instruction, response = MESSAGES[k]
    assert record.message == [{"from": "human", "value": f"<image>\n{instruction}"},
                              {"from": "gpt", "value": response}]
    assert record.provenance == [T2, PD]
    assert record.meta == {"volume_id": "IXI002-Guys-0828", "subject": "IXI002", "site": "Guys",
                           "source_contrast": "T2", "target_contrast": "PD", "orientation": "LPS"}
    for image, path in zip(record.images, record.provenance, strict=True):
        assert (image.width, image.height, image.bit_depth, image.channels) == (160, 176, 16, 1)
        assert (image.slice_index, image.slice_axis, image.source_path) == (k, "axial", path)
        row = image.pixels[sample.MARKER_ROW]
        marked = np.flatnonzero(row == row.max())
        assert (int(marked[0]) - sample.MARKER_COL0) // sample.MARKER_STEP == k  # input and target: same slice


def test_pairs_option(root):
    items = run(root, options={"pairs": [["pd", "t2"]]})
    records = sorted(k for k, v in items.items() if isinstance(v, Record))
    assert records == [f"{GUYS}/PD-T2/{k:03d}" for k in (1, 2, 3, 4)]
    assert items[f"{GUYS}/PD-T2/001"].sub_task_type == "mri_pd_to_t2"
    with pytest.raises(SourceError):
        Ixi(root, options={"pairs": [["T1", "MRA"]]}).work_units()


def test_one_flat_folder_and_split_selection(root, tmp_path):
    flat = tmp_path / "IXI"
    flat.mkdir()
    for path in root.rglob("*.nii.gz"):
        shutil.copy(path, flat / path.name)
    assert sorted(run(flat)) == sorted(run(root))
    assert Ixi(root, splits=["train"]).work_units() == []
    assert Ixi.find_root(root.parent) == root
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError):
        Ixi(tmp_path / "empty").work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert len(files) == 6 and sum((root / f).stat().st_size for f in files) < 500_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_super_resolution_option(root):
    from sources.fastmri import degrade

    items = run(root, options={"pairs": [], "super_resolution": ["t1", "T2"]})
    records = {k: v for k, v in items.items() if isinstance(v, Record)}
    assert sorted(records) == [f"{volume}/sr-{c}/{k:03d}" for volume, contrasts in ((GUYS, ("T1", "T2")), (HH, ("T1",)))
                               for c in contrasts for k in (1, 2, 3, 4)]
    assert items[f"{HH}/sr-T2"].reason == "missing_volume"
    assert items[f"{GUYS}/sr-T2/000"].reason == "empty_slice"
    record = records[f"{GUYS}/sr-T2/003"]
    assert (record.main_task_type, record.sub_task_type) == ("super_resolution", "super_resolution_4x")
    assert record.meta["sample_name"] == "IXI002-Guys-0828-T2_3" and record.meta["subject"] == "IXI002"
    hr = record.output_images[0].pixels
    assert np.array_equal(record.input_images[0].pixels, degrade(hr))
    # the marker drawn at column 4 + 8k of display row 2 places the output at slice k
    assert hr[sample.MARKER_ROW, sample.MARKER_COL0 + sample.MARKER_STEP * 3] == hr.max()
    with pytest.raises(SourceError):
        Ixi(root, options={"super_resolution": ["MRA"]}).work_units()
