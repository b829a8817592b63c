"""MIMIC-CXR-JPG adapter over its sample tree: exact records with sibling reports, a reports_root option, and
the case without reports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.mimic_cxr import INSTRUCTIONS
from sources.mimic_cxr_jpg import LABELS, NO_REPORTS, MimicCxrJpg
from sources.samples import mimic_cxr_jpg as sample

P10 = "files/p10/p10000032"
PA = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
LATERAL = "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962"
AP = "ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c"
TRUNCATED = "3d1c8e0b-5a2f4c71-9e6b0d42-c7a18f35-b2e94d60"
MISSING = sample.LL_MISSING
NO_SECTIONS = "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4"
NO_REPORT = "8f2e6a14-0c3d9b57-e41a7f86-2b5c0d93-a6f7e128"
WRITE = "Write the radiology report for this chest X-ray."
PROVIDE = "Provide the radiology report for this chest radiograph."
FINDINGS_AND_IMPRESSION = (
    "FINDINGS: The lungs are clear without focal consolidation. No pleural effusion or pneumothorax is seen. "
    "The cardiac and mediastinal silhouettes are within normal limits. Dr. ___ was notified on ___ at 10:15.\n"
    "IMPRESSION: No acute cardiopulmonary process."
)
IMPRESSION = "IMPRESSION: Mild pulmonary vascular congestion. Small right pleural effusion is unchanged."


def labels(**values: float) -> dict[str, float | None]:
    return {label: values.get(label.replace(" ", "_")) for label in LABELS}


def study_facts(study: str, view: str | None, meaning: str | None, orientation: str | None) -> dict:
    date, time, procedure = sample.STUDY_FACTS[study]
    return {"ViewPosition": view, "PerformedProcedureStepDescription": procedure,
            "ViewCodeSequence_CodeMeaning": meaning, "PatientOrientationCodeSequence_CodeMeaning": orientation,
            "ProcedureCodeSequence_CodeMeaning": procedure, "StudyDate": date, "StudyTime": time}


NORMAL = labels(No_Finding=1.0)
# dicom_id -> (instruction, report, (width, height), view facts, chexpert, negbio, sections)
RECORDS = {
    PA: (WRITE, FINDINGS_AND_IMPRESSION, (256, 320), ("50414267", "PA", "postero-anterior", "Erect"), NORMAL, NORMAL,
         ["findings", "impression"]),
    LATERAL: (WRITE, FINDINGS_AND_IMPRESSION, (320, 256), ("50414267", "LATERAL", "lateral", None), NORMAL, NORMAL,
              ["findings", "impression"]),
    AP: (PROVIDE, IMPRESSION, (256, 320), ("56699142", "AP", "antero-posterior", None),
         labels(Edema=-1.0, Pleural_Effusion=1.0, Support_Devices=0.0), labels(Edema=1.0, Pleural_Effusion=1.0),
         ["impression"]),
}
# dicom_id -> (split, reason, detail, jpg path)
REJECTED = {
    TRUNCATED: ("train", "image_undecodable",
                f"{P10}/s56699142/{TRUNCATED}.jpg: image file is truncated (0 bytes not processed)",
                f"{P10}/s56699142/{TRUNCATED}.jpg"),
    MISSING: ("train", "missing_file", f"{P10}/s56699142/{MISSING}.jpg", f"{P10}/s56699142/{MISSING}.jpg"),
    NO_SECTIONS: ("validate", "report_missing_sections",
                  "files/p10/p10000764/s57375967.txt: no FINDINGS or IMPRESSION section with text",
                  f"files/p10/p10000764/s57375967/{NO_SECTIONS}.jpg"),
    NO_REPORT: ("test", "missing_report",
                "files/p11/p11000011/s52220000.txt: not found (reports ship in mimic-cxr-reports.zip: unzip it "
                "into the dataset root)",
                f"files/p11/p11000011/s52220000/{NO_REPORT}.jpg"),
}
ORDER = [PA, LATERAL, TRUNCATED, MISSING, AP, NO_SECTIONS, NO_REPORT]  # split, then path


@pytest.fixture
def sources_root(tmp_path: Path) -> Path:
    sample.write(tmp_path)
    return tmp_path


@pytest.fixture
def root(sources_root: Path) -> Path:
    found = MimicCxrJpg.find_root(sources_root)
    assert found == sources_root / "mimic-cxr-jpg/2.0.0"
    return found


def _run(source: MimicCxrJpg) -> list[Record | Rejection]:
    return [item for unit in source.work_units() for item in source.iter_records(unit)]


def _split_of(dicom_id: str) -> str:
    return REJECTED[dicom_id][0] if dicom_id in REJECTED else "train"


def _check(items: list[Record | Rejection], root: Path) -> None:
    assert [item.id for item in items] == [f"mimic_cxr_jpg/{_split_of(d)}/{d}" for d in ORDER]
    by_id = {item.id.rsplit("/", 1)[1]: item for item in items}
    for dicom_id, (instruction, report, size, (study, *view), chexpert, negbio, sections) in RECORDS.items():
        record = by_id[dicom_id]
        path = f"{P10}/s{study}/{dicom_id}.jpg"
        assert isinstance(record, Record)
        assert (record.source, record.split, record.modality, record.task_family) == (
            "mimic_cxr_jpg", "train", "chest_xray", "i2t")
        assert (record.main_task_type, record.sub_task_type) == ("image_understanding", "report_generation")
        assert record.message == [{"from": "human", "value": f"<image>\n{instruction}"},
                                  {"from": "gpt", "value": report}]
        assert instruction == MimicCxrJpg.pick(record.id, INSTRUCTIONS)
        assert record.provenance == [path]
        assert record.meta == {"subject_id": "10000032", "study_id": study, "dicom_id": dicom_id,
                               **study_facts(study, *view), "chexpert": chexpert, "negbio": negbio,
                               "report_path": f"{P10}/s{study}.txt", "sections": sections}
        (image,) = record.input_images
        assert (image.width, image.height, image.format, image.source_path) == (*size, "jpg", path)
        assert image.encoded == (root / path).read_bytes() and image.pixels is None  # JPEG passes through
    for dicom_id, (split, reason, detail, path) in REJECTED.items():
        assert by_id[dicom_id] == Rejection(
            id=f"mimic_cxr_jpg/{split}/{dicom_id}", source="mimic_cxr_jpg", split=split, reason=reason, detail=detail,
            modality="chest_xray", task_family="i2t", provenance=[path], main_task_type="image_understanding",
            sub_task_type="report_generation")
    assert by_id[PA].meta["chexpert"] is not by_id[LATERAL].meta["chexpert"]


def test_records_with_sibling_reports_are_exact(root):
    source = MimicCxrJpg(root)
    assert source.reports_root() == root.parent.parent / "mimic-cxr/2.0.0"
    assert [(unit.id, len(unit.items)) for unit in source.work_units()] == [
        ("mimic_cxr_jpg/train/00000", 5), ("mimic_cxr_jpg/validate/00000", 1), ("mimic_cxr_jpg/test/00000", 1)]
    _check(_run(source), root)


def test_reports_root_option(root, tmp_path):
    elsewhere = tmp_path / "elsewhere/mimic-cxr-reports"
    shutil.move(root.parent.parent / "mimic-cxr/2.0.0", elsewhere)
    _check(_run(MimicCxrJpg(root, options={"reports_root": str(elsewhere)})), root)


def test_reports_root_that_is_not_a_folder_is_a_source_error(root, tmp_path):
    with pytest.raises(SourceError, match="reports_root"):
        MimicCxrJpg(root, options={"reports_root": str(tmp_path / "nowhere")}).reports_root()


def test_without_reports_every_image_is_missing_report(root):
    shutil.rmtree(root.parent.parent / "mimic-cxr")
    source = MimicCxrJpg(root)
    assert source.reports_root() is None
    items = _run(source)
    assert items == [
        Rejection(id=f"mimic_cxr_jpg/{_split_of(d)}/{d}", source="mimic_cxr_jpg", split=_split_of(d),
                  reason="missing_report", detail=NO_REPORTS, modality="chest_xray", task_family="i2t",
                  provenance=[f"files/p{s[:2]}/p{s}/s{st}/{d}.jpg"], main_task_type="image_understanding",
                  sub_task_type="report_generation")
        for d in ORDER for s, st, dicom_id, *_ in sample.IMAGES if dicom_id == d]


def test_without_split_file_everything_is_unsplit(root):
    (root / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    items = _run(MimicCxrJpg(root))
    assert {item.split for item in items} == {"unsplit"} and len(items) == 7
    assert [item.id.rsplit("/", 1)[1] for item in items if isinstance(item, Record)] == [PA, LATERAL, AP]


def test_no_csv_files_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="metadata"):
        MimicCxrJpg(tmp_path).work_units()


@pytest.mark.parametrize("splits", [["validate"], ["train", "test"]])
def test_split_selection(root, splits):
    source = MimicCxrJpg(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in _run(source)} == set(splits)


def test_sample_is_deterministic_and_small(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(tmp_path / "a") for path in (tmp_path / "a").rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(tmp_path / "b") for path in (tmp_path / "b").rglob("*") if path.is_file())
    assert all((tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes() for name in files)
    assert sum((tmp_path / "a" / name).stat().st_size for name in files) < 500_000
    assert first == tmp_path / "a/mimic-cxr-jpg/2.0.0" and second.name == "2.0.0"


def test_reports_are_the_dicom_samples_bytes(tmp_path):
    from sources.samples import mimic_cxr as dicom_sample

    dicom_sample.write(tmp_path / "dicom")
    sample.write(tmp_path / "jpg")
    reports = sorted(path.relative_to(tmp_path / "dicom") for path in (tmp_path / "dicom").rglob("*.txt"))
    assert len(reports) == 3
    assert reports == sorted(path.relative_to(tmp_path / "jpg") for path in (tmp_path / "jpg").rglob("*.txt"))
    assert all((tmp_path / "dicom" / name).read_bytes() == (tmp_path / "jpg" / name).read_bytes() for name in reports)


def test_card_and_roots(tmp_path):
    card = MimicCxrJpg.card
    assert (card.name, card.access, card.modalities, card.tasks) == (
        "mimic_cxr_jpg", "credentialed", ("chest_xray",), ("report_generation",))
    (tmp_path / "physionet.org/files/mimic-cxr-jpg/2.1.0").mkdir(parents=True)
    (tmp_path / "physionet.org/files/mimic-cxr/2.1.0/files").mkdir(parents=True)
    root = MimicCxrJpg.find_root(tmp_path)
    assert root == tmp_path / "physionet.org/files/mimic-cxr-jpg/2.1.0"
    assert MimicCxrJpg(root).reports_root() == tmp_path / "physionet.org/files/mimic-cxr/2.1.0"
