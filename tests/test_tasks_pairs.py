"""IXI T1 <-> T2 pairs by resampling T1 onto the T2 grid through the affines (option `resample_t1`)."""

from __future__ import annotations

import numpy as np
import pytest

from manifests.records import Record
from pipeline.tasks.settings import TaskSettings
from pipeline.stages.task_builders import TaskBuildersStage
from sources import get_source
from sources.io.image import load_pixels
from sources.io.nifti import NiftiVolume, axial_slice, load_nifti, mr_to_uint16
from sources.ixi import resample_onto
from sources.samples import write_sample_tree

T1, T2 = "IXI-T1/IXI002-Guys-0828-T1.nii.gz", "IXI002-Guys-0828-T2.nii.gz"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_sample_tree(tmp_path_factory.mktemp("sources"), ["ixi"])["ixi"]


def test_resampling_follows_the_affines(root):
    t1, t2 = load_nifti(root / T1), load_nifti(root / T2)
    moved = resample_onto(t1, t2)
    assert moved.shape == t2.shape
    # the sample's T2 grid sits 1 mm further along x and y than T1's, and has one more slice: out of view is 0
    shift = np.round(np.linalg.inv(t1.affine) @ t2.affine @ [0, 0, 0, 1])[:3].astype(int)
    assert shift.tolist() == [1, 1, 0]
    assert np.allclose(moved[:-1, :-1, :5], t1.data[1:, 1:, :], atol=1e-2)
    assert not moved[-1].any() and not moved[:, -1].any() and not moved[:, :, 5].any()
    # a non-integer shift interpolates linearly
    half = NiftiVolume(t1.data, t1.affine @ np.diag([1.0, 1.0, 1.0, 1.0]) + np.array(
        [[0, 0, 0, 0.5], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), t1.zooms, t1.original_axcodes)
    between = resample_onto(half, t1)
    assert np.allclose(between[1:-1, :, 2], (t1.data[:-2, :, 2] + t1.data[1:-1, :, 2]) / 2, atol=1e-2)


def test_ixi_t1_t2_pairs_with_the_option(root):
    source = get_source("ixi")(root, {"pairs": [["T1", "T2"]], "resample_t1": True})
    items = {i.id: i for u in source.work_units() for i in source.iter_records(u)}
    kept = {key: r for key, r in items.items() if isinstance(r, Record)}
    assert sorted(r.input_images[0].slice_index for r in kept.values()) == [1, 2, 3, 4]
    t1, t2 = load_nifti(root / T1), load_nifti(root / T2)
    expected = mr_to_uint16(resample_onto(t1, t2))
    stage = TaskBuildersStage(TaskSettings(enabled=True))
    for record in kept.values():
        k = record.input_images[0].slice_index
        assert np.array_equal(load_pixels(record.input_images[0]), axial_slice(expected, k))
        assert np.array_equal(load_pixels(record.output_images[0]), axial_slice(mr_to_uint16(t2.data), k))
        assert record.meta["resampled"] == {"moving": "T1", "onto": "T2", "method": "trilinear", "fill": 0}
        record.status = "kept"
        stage.process(record)
        assert record.status == "kept" and record.meta["task_build"]["params"]["pair"] == ["t1", "t2"]
    without = get_source("ixi")(root, {"pairs": [["T1", "T2"]]})
    reasons = {i.reason for u in without.work_units() for i in without.iter_records(u)}
    assert "pair_grid_mismatch" in reasons  # off by default
