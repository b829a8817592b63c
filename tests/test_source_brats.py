"""The BraTS adapter on its sample tree: exact ids, slice pairing, labels, orientation, splits, failures."""

from __future__ import annotations

import gzip
import shutil
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.brats import INSTRUCTIONS, RESPONSES, Brats
from sources.samples import brats as sample
from sources.samples.brats import MARKER_COL0, MARKER_ROWS, MARKER_SIZE, MARKER_STEP, RAS_AFFINE, write, write_case

OLD = "brats/train/BraTS2021_00000/t2w-t2f"
NEW = "brats/train/BraTS-GLI-00000-000/t2w-t2f"
VAL = "brats/validate/BraTS-GLI-00001-000/t2w-t2f"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("sources"))


def run(root: Path, **kwargs) -> list[Record | Rejection]:
    source = Brats(root, **kwargs)
    return [out for unit in source.work_units() for out in source.iter_records(unit)]


def by_id(outputs) -> dict:
    return {out.id: out for out in outputs}


def marker_slice(pixels: np.ndarray) -> int:
    """Read back the slice index the sample writer drew at the top-left of the displayed image."""
    band = pixels[MARKER_ROWS : MARKER_ROWS + MARKER_SIZE, : MARKER_COL0 + MARKER_STEP * 10]
    columns = np.flatnonzero(band.any(axis=0))
    assert len(columns) == MARKER_SIZE and pixels[:MARKER_ROWS].max() == 0
    return (int(columns[0]) - MARKER_COL0) // MARKER_STEP


def test_find_root_covers_all_downloads(tree, tmp_path):
    assert Brats.find_root(tree) == tree
    assert Brats.find_root(tree / sample.TRAIN_2021) == tree / sample.TRAIN_2021  # pointed at one download
    assert Brats.find_root(tmp_path) is None
    (tmp_path / "Slake1.0").mkdir()
    nested = tmp_path / "BraTS" / sample.TRAIN_2023
    shutil.copytree(tree / sample.TRAIN_2023, nested)  # sources/BraTS/<download>/ is found too
    assert Brats.find_root(tmp_path) == tmp_path
    assert [u.id for u in Brats(tmp_path).work_units()] == ["brats/train/BraTS-GLI-00000-000"]


def test_card():
    card = Brats.card
    assert card.name == "brats" and card.access == "registration" and card.modalities == ("mri",)
    assert card.tasks == ("cross_modal_synthesis", "prompt_segmentation")
    assert "uncertain" in card.licence
    assert sample.TRAIN_2021 in card.root_names and sample.VALIDATION_2023 in card.root_names


def test_work_units_one_per_case(tree):
    units = Brats(tree).work_units()
    assert [(u.id, u.split) for u in units] == [
        ("brats/train/BraTS-GLI-00000-000", "train"),
        ("brats/validate/BraTS-GLI-00001-000", "validate"),
        ("brats/train/BraTS2021_00000", "train"),
    ]
    old = units[2].items[0]
    assert old["naming"] == "2021" and old["folder"] == f"{sample.TRAIN_2021}/BraTS2021_00000"
    assert old["files"] == {"t2f": "BraTS2021_00000_flair.nii.gz", "t1n": "BraTS2021_00000_t1.nii.gz",
                            "t1c": "BraTS2021_00000_t1ce.nii.gz", "t2w": "BraTS2021_00000_t2.nii.gz",
                            "seg": "BraTS2021_00000_seg.nii.gz"}
    assert "seg" not in units[1].items[0]["files"]


def test_exact_ids_and_every_slice_in_one_place(tree):
    outputs = run(tree)
    records = sorted(o.id for o in outputs if isinstance(o, Record))
    empty = sorted(o.id for o in outputs if isinstance(o, Rejection))
    assert records == sorted([f"{OLD}/{k:03d}" for k in (1, 2, 3)] + [f"{NEW}/{k:03d}" for k in (1, 2, 3, 4)]
                             + [f"{VAL}/{k:03d}" for k in (1, 2, 3, 4)])
    # Slices 0 and 5 are empty everywhere; the 2021 FLAIR slice 4 holds a 2.6% blob (< 5%).
    assert empty == sorted([f"{OLD}/{k:03d}" for k in (0, 4, 5)] + [f"{NEW}/{k:03d}" for k in (0, 5)]
                           + [f"{VAL}/{k:03d}" for k in (0, 5)])
    assert {o.reason for o in outputs if isinstance(o, Rejection)} == {"empty_slice"}
    assert len(outputs) == len({o.id for o in outputs}) == 3 * 6
    assert "t2w=0.479 t2f=0.026" in by_id(outputs)[f"{OLD}/004"].detail


def test_record_content(tree):
    record = by_id(run(tree))[f"{OLD}/002"]
    assert (record.source, record.split, record.modality) == ("brats", "train", "mri")
    assert record.task_family == "interleaved"
    assert (record.main_task_type, record.sub_task_type) == ("cross_modal_synthesis", "mri_t2w_to_t2f")
    human, gpt = record.message
    assert human["from"] == "human" and gpt["from"] == "gpt"
    assert human["value"].startswith("<image>\n")
    texts = {t.format(src="T2-weighted", dst="T2-FLAIR") for t in INSTRUCTIONS}
    assert human["value"][len("<image>\n"):] in texts
    assert gpt["value"] in {t.format(dst="T2-FLAIR", code="t2f") for t in RESPONSES}
    folder = f"{sample.TRAIN_2021}/BraTS2021_00000"
    assert record.provenance == [f"{folder}/BraTS2021_00000_t2.nii.gz", f"{folder}/BraTS2021_00000_flair.nii.gz"]
    for image, path in zip(record.images, record.provenance):
        assert (image.width, image.height, image.bit_depth, image.channels) == (160, 192, 16, 1)
        assert image.pixels.dtype == np.uint16 and image.pixels.flags.c_contiguous
        assert (image.slice_index, image.slice_axis, image.source_path) == (2, "axial", path)
    assert record.meta == {"case": "BraTS2021_00000", "naming": "2021", "download": sample.TRAIN_2021,
                           "grade": None, "orientation": "LPS", "tumour_labels": [1, 2, 3]}


def test_the_paper_example_is_among_the_phrasings():
    assert INSTRUCTIONS[0].format(src="T2-weighted", dst="T2-FLAIR") == (
        "Using the provided T2-weighted MRI scan, produce a T2-FLAIR image.")
    assert RESPONSES[0].format(dst="T2-FLAIR", code="t2f") == (
        "Done. Presented here is the synthesized T2-FLAIR (t2f) MRI.")


def test_input_and_output_come_from_the_same_slice(tree):
    for record in (o for o in run(tree) if isinstance(o, Record)):
        k = record.input_images[0].slice_index
        assert marker_slice(record.input_images[0].pixels) == k == marker_slice(record.output_images[0].pixels)
        assert record.id.endswith(f"/{k:03d}")


def test_labels_in_the_2023_convention(tree):
    outputs = by_id(run(tree))
    old = {k: outputs[f"{OLD}/{k:03d}"].meta["tumour_labels"] for k in (1, 2, 3)}
    new = {k: outputs[f"{NEW}/{k:03d}"].meta["tumour_labels"] for k in (1, 2, 3, 4)}
    assert old == {1: [], 2: [1, 2, 3], 3: [2]}  # the stored label 4 (enhancing tumour) reads as 3
    assert new == {1: [], 2: [1, 2, 3], 3: [2, 3], 4: []}
    assert outputs[f"{VAL}/002"].meta["tumour_labels"] is None  # validation: no seg file
    stored = nib.load(tree / sample.TRAIN_2021 / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz").get_fdata()
    assert set(np.unique(stored)) == {0, 1, 2, 4}


def test_orientation_lps_and_ras_storage_give_identical_images(tmp_path):
    lps = write_case(tmp_path / "lps" / "BraTS2021_TrainingData", "BraTS2021_00000", "2021", sample.TUMOUR_2021)
    ras = write_case(tmp_path / "ras" / "BraTS2021_TrainingData", "BraTS2021_00000", "2021", sample.TUMOUR_2021,
                     affine=RAS_AFFINE)
    assert nib.aff2axcodes(nib.load(next(lps.glob("*_t2.nii.gz"))).affine) == ("L", "P", "S")
    assert nib.aff2axcodes(nib.load(next(ras.glob("*_t2.nii.gz"))).affine) == ("R", "A", "S")
    from_lps = [o for o in run(tmp_path / "lps") if isinstance(o, Record)]
    from_ras = [o for o in run(tmp_path / "ras") if isinstance(o, Record)]
    assert [r.id for r in from_lps] == [r.id for r in from_ras] and len(from_lps) == 4
    for a, b in zip(from_lps, from_ras):
        assert [i.pixel_hash for i in a.images] == [i.pixel_hash for i in b.images]
    # Radiological display: the tumour (patient right, anterior of centre) sits up and left of centre.
    pixels = by_id(from_lps)["brats/train/BraTS2021_00000/t2w-t2f/002"].input_images[0].pixels
    rows, cols = np.nonzero(pixels[10:] >= 0.9 * pixels.max())
    assert rows.mean() + 10 < 96 and cols.mean() < 80


def test_split_selection(tree):
    assert [u.id for u in Brats(tree, splits=["validate"]).work_units()] == ["brats/validate/BraTS-GLI-00001-000"]
    assert [u.split for u in Brats(tree, splits=["train"]).work_units()] == ["train", "train"]
    assert Brats(tree, splits=["test"]).work_units() == []


def test_2018_grade_folders_and_uncompressed_2020(tmp_path):
    write_case(tmp_path / "MICCAI_BraTS_2018_Data_Training" / "HGG", "Brats18_2013_2_1", "2021", sample.TUMOUR_2021)
    write_case(tmp_path / "MICCAI_BraTS_2018_Data_Training" / "LGG", "Brats18_2013_0_1", "2021", None)
    write_case(tmp_path / "MICCAI_BraTS2020_ValidationData", "BraTS20_Validation_001", "2021", None, suffix=".nii")
    units = Brats(Brats.find_root(tmp_path)).work_units()
    assert [(u.id, u.items[0]["grade"]) for u in units] == [  # downloads in name order, then HGG before LGG
        ("brats/validate/BraTS20_Validation_001", None),
        ("brats/train/Brats18_2013_2_1", "HGG"), ("brats/train/Brats18_2013_0_1", "LGG")]
    assert units[0].items[0]["files"]["t2f"] == "BraTS20_Validation_001_flair.nii"
    outputs = run(tmp_path)
    assert Counter(type(o).__name__ for o in outputs) == Counter(Record=12, Rejection=6)


def test_case_folders_directly_under_the_root(tree, tmp_path):
    shutil.copytree(tree / sample.TRAIN_2021 / "BraTS2021_00000", tmp_path / "BraTS2021_00000")
    assert Brats.find_root(tmp_path) == tmp_path
    assert [u.id for u in Brats(tmp_path).work_units()] == ["brats/unsplit/BraTS2021_00000"]


def test_missing_volume(tmp_path):
    write(tmp_path)
    (tmp_path / sample.TRAIN_2023 / "BraTS-GLI-00000-000" / "BraTS-GLI-00000-000-t2f.nii.gz").unlink()
    outputs = [o for o in run(tmp_path) if "BraTS-GLI-00000-000" in o.id]
    assert len(outputs) == 1
    assert (outputs[0].id, outputs[0].reason) == (NEW, "missing_volume")
    assert "t2f" in outputs[0].detail


def test_unreadable_volume_and_grid_mismatch(tmp_path):
    write(tmp_path)
    old = tmp_path / sample.TRAIN_2021 / "BraTS2021_00000"
    data = (old / "BraTS2021_00000_t2.nii.gz").read_bytes()
    (old / "BraTS2021_00000_t2.nii.gz").write_bytes(gzip.compress(gzip.decompress(data)[:5000]))
    new = tmp_path / sample.TRAIN_2023 / "BraTS-GLI-00000-000"
    smaller = nib.Nifti1Image(np.ones((160, 180, 6), np.int16), sample.LPS_AFFINE)
    nib.save(smaller, new / "BraTS-GLI-00000-000-t2f.nii.gz")
    outputs = by_id(run(tmp_path))
    assert outputs[OLD].reason == "nifti_unreadable"
    assert outputs[NEW].reason == "pair_grid_mismatch"
    assert sum(1 for key in outputs if key.startswith((OLD, NEW))) == 2


def test_duplicate_case_across_downloads(tree, tmp_path):
    shutil.copytree(tree / sample.TRAIN_2021, tmp_path / sample.TRAIN_2021)
    shutil.copytree(tree / sample.TRAIN_2021, tmp_path / "BraTS2021_TrainingData")  # the same data, renamed
    outputs = run(tmp_path)
    duplicates = [o for o in outputs if isinstance(o, Rejection) and o.reason == "duplicate_case"]
    assert [d.id for d in duplicates] == [f"brats/train/BraTS2021_00000@{sample.TRAIN_2021}"]
    assert len(outputs) == len({o.id for o in outputs}) == 6 + 1


def test_recipe_options(tree):
    outputs = run(tree, options={"pairs": [["t2", "flair"], ["t1n", "t1c"]], "slice_stride": 2,
                                 "min_foreground_fraction": 0.01})
    old = sorted(o.id for o in outputs if isinstance(o, Record) and "BraTS2021" in o.id)
    # stride 2 samples slices 0, 2, 4; at a 1% threshold the 2.6% FLAIR blob in slice 4 is kept
    assert old == ["brats/train/BraTS2021_00000/t1n-t1c/002", "brats/train/BraTS2021_00000/t1n-t1c/004",
                   f"{OLD}/002", f"{OLD}/004"]
    assert {o.sub_task_type for o in outputs if isinstance(o, Record)} == {"mri_t2w_to_t2f", "mri_t1n_to_t1c"}
    with pytest.raises(SourceError):
        Brats(tree, options={"pairs": [["t2w", "seg"]]}).work_units()


def test_deterministic(tree):
    first, second = run(tree), run(tree)
    assert [(o.id, getattr(o, "message", None)) for o in first] == [(o.id, getattr(o, "message", None)) for o in second]
    assert [[i.pixel_hash for i in o.images] for o in first if isinstance(o, Record)] == \
        [[i.pixel_hash for i in o.images] for o in second if isinstance(o, Record)]


def test_sample_tree_is_small_and_deterministic(tree, tmp_path):
    write(tmp_path)
    files = sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())
    assert len(files) == 14
    assert sum((tree / f).stat().st_size for f in files) < 2_000_000
    assert all((tree / f).read_bytes() == (tmp_path / f).read_bytes() for f in files)
