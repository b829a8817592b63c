"""CheXpert Plus adapter: exact report records and rejections from the sample tree, `.jpg` -> `.png` paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manifests.records import Rejection
from sources.base import SourceError
from sources.chexpert_plus import ChexpertPlus
from sources.samples import chexpert_plus as sample
from tests.source_checks import collect

PROVIDE = "Provide the radiology report for this chest radiograph."
WHAT = "What does this chest X-ray show? Answer with a report."
WRITE = "Write the radiology report for this chest X-ray."
TABLE = "df_chexpert_plus_240401.csv"
REPORT_1 = "FINDINGS: THE LUNGS ARE CLEAR. NO PLEURAL EFFUSION.\nIMPRESSION: 1. NO ACUTE CARDIOPULMONARY PROCESS."


def _meta(patient, order, view, ap_pa, age, sex, sections):
    return {"patient_id": patient, "report_order": order, "frontal_lateral": view, "ap_pa": ap_pa, "age": age,
            "sex": sex, "sections": sections}


# record id -> (png path, instruction, report, (width, height, bit depth), meta)
RECORDS = {
    "train/patient42142_study5_view1_frontal": (
        "train/patient42142/study5/view1_frontal", PROVIDE, REPORT_1, (170, 200, 8),
        _meta("patient42142", "5", "Frontal", "PA", 62.0, "Female", ["findings", "impression"])),
    "train/patient42142_study5_view2_lateral": (
        "train/patient42142/study5/view2_lateral", WHAT, REPORT_1, (230, 200, 8),
        _meta("patient42142", "5", "Lateral", None, 62.0, "Female", ["findings", "impression"])),
    "train/patient00002_study1_view1_frontal": (
        "train/patient00002/study1/view1_frontal", WRITE,
        "IMPRESSION: Interval placement of a right internal jugular central line.", (170, 200, 16),
        _meta("patient00002", "1", "Frontal", "AP", 87.0, "Male", ["impression"])),
    "validate/patient64541_study1_view1_frontal": (
        "valid/patient64541/study1/view1_frontal", PROVIDE,
        "FINDINGS: Mild cardiomegaly.\nIMPRESSION: Mild pulmonary edema.", (170, 200, 8),
        _meta("patient64541", "1", "Frontal", "AP", None, None, ["findings", "impression"])),
}
REJECTED = {
    "train/patient00003_study2_view1_frontal": ("train/patient00003/study2/view1_frontal", "report_missing_sections",
                                                "no section_findings or section_impression text"),
    "train/patient00004_study1_view1_frontal": ("train/patient00004/study1/view1_frontal", "missing_file",
                                                "PNG/train/patient00004/study1/view1_frontal.png"),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_row_has_one_item(root):
    assert set(collect(ChexpertPlus(root))) == {f"chexpert_plus/{key}" for key in [*RECORDS, *REJECTED]}


@pytest.mark.parametrize("key", sorted(RECORDS))
def test_records_exact(root, key):
    stem, instruction, report, (width, height, depth), meta = RECORDS[key]
    record = collect(ChexpertPlus(root))[f"chexpert_plus/{key}"]
    png = f"PNG/{stem}.png"
    assert (record.source, record.split, record.modality, record.task_family) == (
        "chexpert_plus", key.split("/")[0], "chest_xray", "i2t")
    assert (record.main_task_type, record.sub_task_type) == ("image_understanding", "report_generation")
    assert record.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": report}]
    (image,) = record.input_images
    assert (image.width, image.height, image.bit_depth, image.format, image.source_path) == (
        width, height, depth, "png", png)
    assert record.provenance == [TABLE, png]
    assert record.meta == meta


@pytest.mark.parametrize("key", sorted(REJECTED))
def test_rejections_exact(root, key):
    stem, reason, detail = REJECTED[key]
    assert collect(ChexpertPlus(root))[f"chexpert_plus/{key}"] == Rejection(
        id=f"chexpert_plus/{key}", source="chexpert_plus", split="train", reason=reason, detail=detail,
        modality="chest_xray", task_family="i2t", provenance=[TABLE, f"PNG/{stem}.png"],
        main_task_type="image_understanding", sub_task_type="report_generation")


def test_nested_png_folder(root):
    (root / "PNG").rename(root / "inner")
    (root / "PNG").mkdir()
    shutil.move(root / "inner", root / "PNG" / "PNG")
    items = collect(ChexpertPlus(root, splits=["validate"]))
    record = items["chexpert_plus/validate/patient64541_study1_view1_frontal"]
    assert record.provenance == [TABLE, "PNG/PNG/valid/patient64541/study1/view1_frontal.png"]


def test_split_selection_and_missing_csv(root, tmp_path):
    assert {unit.split for unit in ChexpertPlus(root, splits=["validate"]).work_units()} == {"validate"}
    assert [unit.id for unit in ChexpertPlus(root).work_units()] == ["chexpert_plus/train/00000",
                                                                      "chexpert_plus/validate/00000"]
    with pytest.raises(SourceError, match="df_chexpert_plus"):
        ChexpertPlus(tmp_path / "nothing").work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
