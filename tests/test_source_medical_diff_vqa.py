"""Medical-Diff-VQA adapter over its sample tree (with the MIMIC-CXR-JPG sample): exact records and rejections,
two-image difference questions, the images_root option and the case without MIMIC-CXR-JPG."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.medical_diff_vqa import NO_IMAGES, MedicalDiffVqa
from sources.samples import medical_diff_vqa as sample

CSV = "mimic_pair_questions.csv"
PA = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"  # the frontal of 50414267, listed after its lateral
AP = "ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c"  # the first frontal of 56699142
PA_764 = "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4"
PATHS = {PA: f"files/p10/p10000032/s50414267/{PA}.jpg", AP: f"files/p10/p10000032/s56699142/{AP}.jpg",
         PA_764: f"files/p10/p10000764/s57375967/{PA_764}.jpg"}
PREFACE = "The first image is the reference image (the earlier study), the second the main image (the current one)."
# id -> (human turn, answer, dicom_ids, question_type, subject, ref_id)
RECORDS = {
    "train/56699142_0": ("<image>\nwhat abnormalities are seen in this image?", "edema, pleural effusion", [AP],
                         "abnormality", "10000032", "50414267"),
    "train/56699142_1": ("<image>\nis there pneumothorax?", "no", [AP], "presence", "10000032", "50414267"),
    "train/56699142_2": (f"<image>\n<image>\n{PREFACE} what has changed compared to the reference image?",
                         "the main image has additional findings of edema, and pleural effusion than the reference "
                         "image.", [PA, AP], "difference", "10000032", "50414267"),
    "train/50414267_3": ("<image>\nwhich view is this image?", "PA view", [PA], "view", "10000032", "56699142"),
    "validate/57375967_5": ("<image>\nis there cardiomegaly?", "no", [PA_764], "presence", "10000764", None),
}
# id -> (reason, detail)
REJECTED = {
    "train/56699142_8": ("qa_empty", "row 8"),
    "validate/57375967_4": ("missing_reference", "row 4: blank ref_id"),
    "test/52220000_6": ("no_frontal_image", "main study s52220000"),
    "test/53189527_7": ("study_not_found", "main study s53189527"),
}
ORDER = ["train/56699142_0", "train/56699142_1", "train/56699142_2", "train/50414267_3", "train/56699142_8",
         "validate/57375967_4", "validate/57375967_5", "test/52220000_6", "test/53189527_7"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    sample.write(tmp_path)
    found = MedicalDiffVqa.find_root(tmp_path)
    assert found == tmp_path / "medical-diff-vqa/1.0.0"
    return found


def _run(source: MedicalDiffVqa) -> list[Record | Rejection]:
    return [item for unit in source.work_units() for item in source.iter_records(unit)]


def _check(items: list[Record | Rejection], images_root: Path) -> None:
    assert [item.id for item in items] == [f"medical_diff_vqa/{stem}" for stem in ORDER]
    by_stem = {item.id.split("/", 1)[1]: item for item in items}
    for stem, (human, answer, dicom_ids, question_type, subject, ref_id) in RECORDS.items():
        record = by_stem[stem]
        assert isinstance(record, Record), record
        assert (record.source, record.split, record.modality, record.task_family) == (
            "medical_diff_vqa", stem.split("/")[0], "chest_xray", "i2t")
        assert (record.main_task_type, record.sub_task_type) == ("image_understanding", "medical_vqa")
        assert record.message == [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]
        assert record.provenance == [CSV]
        assert record.meta == {"question_type": question_type, "subject_id": subject,
                               "study_id": stem.split("/")[1].split("_")[0], "ref_id": ref_id, "dicom_ids": dicom_ids,
                               "image_paths": [PATHS[d] for d in dicom_ids]}
        assert [(image.source_path, image.encoded) for image in record.input_images] == [
            (PATHS[d], (images_root / PATHS[d]).read_bytes()) for d in dicom_ids]
        assert all((image.width, image.height, image.format) == (256, 320, "jpg") for image in record.input_images)
    for stem, (reason, detail) in REJECTED.items():
        split = stem.split("/")[0]
        assert by_stem[stem] == Rejection(
            id=f"medical_diff_vqa/{stem}", source="medical_diff_vqa", split=split, reason=reason, detail=detail,
            modality="chest_xray", task_family="i2t", provenance=[CSV], main_task_type="image_understanding",
            sub_task_type="medical_vqa")


def test_records_with_sibling_images_are_exact(root):
    source = MedicalDiffVqa(root)
    assert source.images_root() == root.parent.parent / "mimic-cxr-jpg/2.0.0"
    assert [(unit.id, len(unit.items)) for unit in source.work_units()] == [
        ("medical_diff_vqa/train/00000", 5), ("medical_diff_vqa/validate/00000", 2), ("medical_diff_vqa/test/00000", 2)]
    _check(_run(source), source.images_root())


def test_images_root_option(root, tmp_path):
    elsewhere = tmp_path / "elsewhere/jpg"
    shutil.move(root.parent.parent / "mimic-cxr-jpg/2.0.0", elsewhere)
    _check(_run(MedicalDiffVqa(root, options={"images_root": str(elsewhere)})), elsewhere)


def test_images_root_without_metadata_is_a_source_error(root, tmp_path):
    with pytest.raises(SourceError, match="images_root"):
        MedicalDiffVqa(root, options={"images_root": str(tmp_path)}).images_root()


def test_without_images_every_row_is_rejected(root):
    shutil.rmtree(root.parent.parent / "mimic-cxr-jpg")
    items = _run(MedicalDiffVqa(root))
    assert [item.id for item in items] == [f"medical_diff_vqa/{stem}" for stem in ORDER]
    assert [(item.reason, item.detail, item.provenance) for item in items] == [
        ("qa_empty", "row 8", [CSV]) if stem.endswith("_8") else ("missing_images_root", NO_IMAGES, [CSV])
        for stem in ORDER]


def test_a_broken_image_rejects_the_pair(root):
    (root.parent.parent / "mimic-cxr-jpg/2.0.0" / PATHS[PA]).unlink()
    items = {item.id: item for item in _run(MedicalDiffVqa(root, splits=["train"]))}
    pair = items["medical_diff_vqa/train/56699142_2"]
    assert (pair.reason, pair.detail, pair.provenance) == ("missing_file", PATHS[PA], [CSV])
    assert isinstance(items["medical_diff_vqa/train/56699142_0"], Record)


def test_no_questions_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="mimic_pair_questions.csv"):
        MedicalDiffVqa(tmp_path).work_units()


@pytest.mark.parametrize("splits", [["validate"], ["train", "test"]])
def test_split_selection(root, splits):
    source = MedicalDiffVqa(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in _run(source)} == set(splits)


def test_sample_is_deterministic(tmp_path):
    sample.write(tmp_path / "a")
    sample.write(tmp_path / "b")
    files = sorted(path.relative_to(tmp_path / "a") for path in (tmp_path / "a").rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(tmp_path / "b") for path in (tmp_path / "b").rglob("*") if path.is_file())
    assert all((tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes() for name in files)


def test_card():
    card = MedicalDiffVqa.card
    assert (card.name, card.access, card.modalities, card.tasks) == (
        "medical_diff_vqa", "credentialed", ("chest_xray",), ("medical_vqa",))
