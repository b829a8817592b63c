"""IU X-ray adapter: exact report records and rejections from the Kaggle-layout sample tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.iu_xray import IuXray
from sources.samples import iu_xray as sample

PROVIDE = "Provide the radiology report for this chest radiograph."
WHAT = "What does this chest X-ray show? Answer with a report."
WRITE = "Write the radiology report for this chest X-ray."
REPORT_1 = ("FINDINGS: The cardiac silhouette and mediastinum size are within normal limits. There is no pulmonary "
            "edema. There is no focal consolidation. There are no XXXX of a pleural effusion. There is no evidence "
            "of pneumothorax.\nIMPRESSION: Normal chest x-XXXX.")
META_1 = {"uid": "1", "sections": ["findings", "impression"], "deid_tokens": 2, "mesh": "normal",
          "problems": "normal", "indication": "Positive TB test", "comparison": "None."}
# image id -> (instruction, report, (width, height), meta)
RECORDS = {
    "1_IM-0001-4001": (PROVIDE, REPORT_1, (180, 200), {**META_1, "projection": "Frontal"}),
    "1_IM-0001-3001": (WHAT, REPORT_1, (220, 200), {**META_1, "projection": "Lateral"}),
    "2_IM-0652-1001": (PROVIDE, "FINDINGS: Borderline cardiomegaly. Midline sternotomy XXXX. Enlarged pulmonary "
                       "arteries. Clear lungs.\nIMPRESSION: Enlarged pulmonary arteries and borderline cardiomegaly.",
                       (180, 200),
                       {"uid": "2", "projection": "Frontal", "sections": ["findings", "impression"], "deid_tokens": 1,
                        "mesh": "Cardiomegaly/borderline;Pulmonary Artery/enlarged",
                        "problems": "Cardiomegaly;Pulmonary Artery", "indication": "Preop bariatric surgery.",
                        "comparison": "None."}),
    # NaN findings: the impression alone.
    "3_IM-1384-1001": (WRITE, "IMPRESSION: No acute pulmonary findings.", (180, 200),
                       {"uid": "3", "projection": "Frontal", "sections": ["impression"], "deid_tokens": 0,
                        "mesh": "normal", "problems": "normal",
                        "indication": "rib pain after a XXXX, XXXX XXXX steps this XXXX.", "comparison": "None."}),
}
# image id -> (reason, detail)
REJECTED = {
    "4_IM-2050-1001": ("report_missing_sections", "uid 4: no findings or impression text"),
    "5_IM-2117-1003002": ("missing_file", "images/images_normalized/5_IM-2117-1003002.dcm.png"),
    "7_IM-2263-1001": ("missing_report", "uid 7 not in indiana_reports.csv"),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def collect(source: IuXray) -> dict[str, Record | Rejection]:
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split == "unsplit"
            out[item.id] = item
    return out


def test_every_image_row_and_imageless_report_has_one_item(root):
    expected = {f"iu_xray/unsplit/{stem}" for stem in [*RECORDS, *REJECTED, "report-6"]}
    assert set(collect(IuXray(root))) == expected


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    instruction, report, size, meta = RECORDS[stem]
    record = collect(IuXray(root))[f"iu_xray/unsplit/{stem}"]
    image_path = f"images/images_normalized/{stem}.dcm.png"
    assert (record.source, record.modality, record.task_family, record.main_task_type, record.sub_task_type) == (
        "iu_xray", "chest_xray", "i2t", "image_understanding", "report_generation")
    assert record.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": report}]
    assert record.output_images == []
    (image,) = record.input_images
    assert (image.width, image.height, image.format, image.bit_depth, image.source_path) == (
        *size, "png", 8, image_path)
    assert record.provenance == ["indiana_reports.csv", "indiana_projections.csv", image_path]
    assert record.meta == meta


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    reason, detail = REJECTED[stem]
    assert collect(IuXray(root))[f"iu_xray/unsplit/{stem}"] == Rejection(
        id=f"iu_xray/unsplit/{stem}", source="iu_xray", split="unsplit", reason=reason, detail=detail,
        modality="chest_xray", task_family="i2t",
        provenance=["indiana_reports.csv", "indiana_projections.csv", f"images/images_normalized/{stem}.dcm.png"],
        main_task_type="image_understanding", sub_task_type="report_generation")


def test_report_without_images(root):
    assert collect(IuXray(root))["iu_xray/unsplit/report-6"] == Rejection(
        id="iu_xray/unsplit/report-6", source="iu_xray", split="unsplit", reason="no_images",
        detail="uid 6 has no row in indiana_projections.csv", modality="chest_xray", task_family="i2t",
        provenance=["indiana_reports.csv"], main_task_type="image_understanding", sub_task_type="report_generation")


def test_find_root_needs_the_reports_file(root, tmp_path):
    assert IuXray.find_root(tmp_path) == root
    other = tmp_path / "other"
    (other / "archive").mkdir(parents=True)
    assert IuXray.find_root(other) is None
    with pytest.raises(SourceError, match="indiana_reports.csv"):
        IuXray(other / "archive").work_units()


def test_split_selection_and_chunking(root):
    assert IuXray(root, splits=["test"]).work_units() == []
    units = IuXray(root, options={"items_per_unit": 3}).work_units()
    assert [unit.id for unit in units] == ["iu_xray/unsplit/00000", "iu_xray/unsplit/00001", "iu_xray/unsplit/00002"]


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
