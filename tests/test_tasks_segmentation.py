"""Prompt segmentation from the mask-bearing sources beyond the dedicated ones: BraTS tumour regions,
BUSI (masks unioned), Kvasir-SEG (lossy JPEG masks thresholded) and ISIC task 1. Every kept mask must
equal its source label, pixel for pixel, after the task builder."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from manifests.records import Record, Rejection
from pipeline.tasks.settings import TaskSettings
from pipeline.stages.task_builders import TaskBuildersStage
from sources import get_source
from sources.io.image import load_pixels
from sources.io.nifti import axial_slice
from sources.samples import brats as brats_sample
from sources.samples import isic as isic_sample
from sources.samples import write_sample_tree

SEG_ONLY = {"captions": False, "segmentation": True}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict[str, Path]:
    return write_sample_tree(tmp_path_factory.mktemp("sources"), ["brats", "busi", "kvasir_seg", "isic"])


def items(root: Path, name: str, **options) -> dict[str, Record | Rejection]:
    source = get_source(name)(root, options)
    return {item.id: item for unit in source.work_units() for item in source.iter_records(unit)}


def built(found: dict[str, Record | Rejection], **settings) -> dict[str, Record]:
    stage = TaskBuildersStage(TaskSettings(enabled=True, **settings))
    out = {}
    for item in found.values():
        if isinstance(item, Record):
            record = copy.deepcopy(item)
            record.status = "kept"  # as the coarse decision leaves them
            stage.process(record)
            out[record.id] = record
    return out


def grey_mask(path: Path, threshold: int = 127) -> np.ndarray:
    with PILImage.open(path) as image:
        return np.where(np.asarray(image.convert("L")) > threshold, 255, 0).astype(np.uint8)


def test_brats_tumour_regions_match_the_seg_volume(tree):
    found = items(tree["brats"], "brats", pairs=[], segmentation=["wt", "tc", "et"])
    out = built(found)
    # canonical label maps as the sample writer drew them; 2021 stores enhancing as 4, the adapter says 3
    expected_labels = {"BraTS2021_00000": brats_sample._labels(brats_sample.TUMOUR_2021, enhancing=4),
                       "BraTS-GLI-00000-000": brats_sample._labels(brats_sample.TUMOUR_2023, enhancing=3)}
    expected_labels["BraTS2021_00000"][expected_labels["BraTS2021_00000"] == 4] = 3
    regions = {"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)}
    seen = set()
    for record in out.values():
        assert record.status == "kept", (record.id, record.reason)
        k, code = record.meta["slice_index"], record.meta["region"]
        mask = load_pixels(record.output_images[0])
        labels = axial_slice(expected_labels[record.meta["case"]], k)
        assert mask.dtype == np.uint8 and np.array_equal(mask, np.where(np.isin(labels, regions[code]), 255, 0))
        # the image is the same axial slice: its marker encodes k
        image = load_pixels(record.input_images[0])
        band = image[brats_sample.MARKER_ROWS: brats_sample.MARKER_ROWS + brats_sample.MARKER_SIZE]
        col = int(np.flatnonzero(band.any(axis=0))[0])
        assert (col - brats_sample.MARKER_COL0) // brats_sample.MARKER_STEP == k
        assert record.input_images[0].bit_depth == 16 and record.output_images[0].slice_index == k
        build = record.meta["task_build"]
        assert build["fields"]["target"] == {"wt": "whole tumor", "tc": "tumor core", "et": "enhancing tumor"}[code]
        assert record.meta["subject_id"] == record.meta["case"]
        seen.add((record.meta["case"], k, code))
    assert seen == {("BraTS2021_00000", 2, "wt"), ("BraTS2021_00000", 2, "tc"), ("BraTS2021_00000", 2, "et"),
                    ("BraTS2021_00000", 3, "wt"), ("BraTS-GLI-00000-000", 2, "wt"), ("BraTS-GLI-00000-000", 2, "tc"),
                    ("BraTS-GLI-00000-000", 2, "et"), ("BraTS-GLI-00000-000", 3, "wt"),
                    ("BraTS-GLI-00000-000", 3, "tc"), ("BraTS-GLI-00000-000", 3, "et")}
    reasons = {item.reason for item in found.values() if isinstance(item, Rejection)}
    assert reasons == {"empty_slice", "slice_without_annotation", "annotation_missing"}  # validation: no seg


def test_brats_segmentation_is_off_by_default_and_checks_its_option(tree):
    from sources.base import SourceError

    assert not any("/seg-" in key for key in items(tree["brats"], "brats"))
    with pytest.raises(SourceError):
        get_source("brats")(tree["brats"], {"segmentation": ["necrosis"]}).work_units()


def test_busi_masks_are_unioned(tree):
    root = tree["busi"]
    found = items(root, "busi", **SEG_ONLY)
    assert all(key.endswith("/segmentation") for key in found)
    out = built(found)
    kept = {key: r for key, r in out.items() if r.status == "kept"}
    assert set(kept) == {"busi/unsplit/benign (1)/segmentation", "busi/unsplit/benign (4)/segmentation",
                         "busi/unsplit/malignant (1)/segmentation"}
    for record in kept.values():
        masks = record.meta["masks"]
        expected = np.where(np.logical_or.reduce([grey_mask(root / path) for path in masks]), 255, 0)
        assert np.array_equal(load_pixels(record.output_images[0]), expected)
        assert record.meta["mask_union"] == (len(masks) > 1)
        assert record.meta["task_build"]["fields"]["target"] == "breast lesion"
    assert len(kept["busi/unsplit/benign (4)/segmentation"].meta["masks"]) == 2
    assert (out["busi/unsplit/normal (1)/segmentation"].reason) == "mask_empty"  # all-zero mask, builder's rule
    assert found["busi/unsplit/malignant (2)/segmentation"].reason == "annotation_missing"


def test_kvasir_seg_lossy_masks_are_thresholded(tree):
    root = tree["kvasir_seg"]
    out = built(items(root, "kvasir_seg", **SEG_ONLY))
    kept = [r for r in out.values() if r.status == "kept"]
    assert len(kept) == 3
    for record in kept:
        with PILImage.open(root / record.meta["masks"][0]) as raw:
            values = np.unique(np.asarray(raw.convert("L")))
        assert set(values.tolist()) - {0, 255}  # JPEG ringing: the stored mask is not binary
        mask = load_pixels(record.output_images[0])
        assert np.array_equal(mask, grey_mask(root / record.meta["masks"][0]))
        assert set(np.unique(mask).tolist()) == {0, 255}


def test_isic_task1_masks(tree):
    root = tree["isic"]
    found = items(root, "isic", **SEG_ONLY)
    assert set(found) == {f"isic/train/2018/{image_id}/segmentation" for image_id in isic_sample.TASK1}
    assert found["isic/train/2018/ISIC_0000005/segmentation"].reason == "missing_file"
    out = built(found)
    assert len(out) == 2
    for record in out.values():
        assert record.status == "kept"
        image_id = record.id.split("/")[3]
        expected = isic_sample.lesion_mask(isic_sample.TASK1[image_id])
        assert np.array_equal(load_pixels(record.output_images[0]), expected)
        assert record.meta["task_build"]["fields"]["target"] == "skin lesion"
    # without the option the task-1 masks are not read, and the captions are unchanged
    assert not any(key.endswith("/segmentation") for key in items(root, "isic"))
