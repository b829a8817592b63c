"""OmniMedVQA adapter: exact records and rejections from the sample tree, modality mapping, options in the question."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.omnimedvqa import OmniMedVqa, modality
from sources.samples import omnimedvqa as sample

OPEN = "QA_information/Open-access"
ADENO = "What disease is shown in this CT image?\nOptions:\nA. Large cell carcinoma\nB. Adenocarcinoma\nC. Normal\n" \
        "D. Squamous cell carcinoma"
# id -> (qa file, image, modality, question text, answer, (width, height), format, modality_type, question_type)
RECORDS = {
    "Chest CT Scan_0": ("Chest CT Scan", "Images/Chest CT Scan/test/adenocarcinoma/000108 (3).png", "ct", ADENO,
                        "Adenocarcinoma", (256, 256), "png", "CT(Computed Tomography)", "Disease Diagnosis"),
    "Chest CT Scan_1": ("Chest CT Scan", "Images/Chest CT Scan/test/normal/n8.png", "ct",
                        "Is there any abnormality in this image?\nOptions:\nA. Yes.\nB. No.", "No", (256, 240), "png",
                        "CT(Computed Tomography)", "Disease Diagnosis"),
    "Pulmonary Chest MC_0": ("Pulmonary Chest MC", "Images/Pulmonary Chest MC/MCUCXR_0001_0.png", "chest_xray",
                             "What imaging modality is used here?\nOptions:\nA. CT\nB. X-ray\nC. MRI\nD. PET", "X-ray",
                             (288, 320), "png", "X-Ray", "Modality Recognition"),
    "Knee Osteoarthritis_0": ("Knee Osteoarthritis", "Images/Knee Osteoarthritis/2/9001695L.png", "other",
                              "What is the grade of osteoarthritis in this knee?\nOptions:\nA. Doubtful\nB. Severe\n"
                              "C. Minimal\nD. Moderate", "Doubtful", (224, 224), "png", "X-Ray", "Lesion Grading"),
    "RadImageNet_2317": ("RadImageNet", "Images/RadImageNet/Airspace_opacity/lung077022.png", "mri",
                         "What is the term referring to the abnormality observed in the image?\nOptions:\n"
                         "A. Airspace opacity\nB. Nodule\nC. Normal\nD. Interstitial disease", "Airspace opacity",
                         (256, 256), "png", "MR (Mag-netic Resonance Imaging)", "Disease Diagnosis"),
    "OCTID_4": ("OCTID", "Images/OCTID/AMRD/amrd1.jpeg", "oct",
                "What retinal condition is seen in this OCT scan?\nOptions:\nA. Macular hole\nB. Normal\n"
                "C. Diabetic retinopathy\nD. Central serous retinopathy", "Macular hole.", (300, 200), "jpg",
                "OCT (Optical Coherence Tomography", "Disease Diagnosis"),
    "BloodMNIST_1": ("BloodMNIST", "Images/BloodMNIST/eosinophil_12.png", "other",
                     "Which blood cell type is this?\nOptions:\nA. Eosinophil\nB. Neutrophil\nC. Basophil\n"
                     "D. Monocyte", "Eosinophil", (64, 64), "png", "Microscopy Images", "Other Biological Attributes"),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def collect(source: OmniMedVqa) -> dict[str, Record | Rejection]:
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split == "unsplit"
            out[item.id] = item
    return out


def test_every_open_access_item_is_one_record_or_rejection(root):
    expected = {f"omnimedvqa/unsplit/{qid}" for qid in RECORDS} | {"omnimedvqa/unsplit/RadImageNet_9"}
    assert set(collect(OmniMedVqa(root))) == expected


@pytest.mark.parametrize("qid", sorted(RECORDS))
def test_records_exact(root, qid):
    name, image_path, found, question, answer, size, fmt, modality_type, qtype = RECORDS[qid]
    record = collect(OmniMedVqa(root))[f"omnimedvqa/unsplit/{qid}"]
    assert isinstance(record, Record)
    assert (record.source, record.split, record.modality, record.task_family) == (
        "omnimedvqa", "unsplit", found, "i2t")
    assert (record.main_task_type, record.sub_task_type) == ("image_understanding", "medical_vqa")
    assert record.message == [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]
    assert record.provenance == [f"{OPEN}/{name}.json", image_path]
    (image,) = record.input_images
    assert (image.width, image.height, image.format, image.source_path) == (*size, fmt, image_path)
    assert record.meta == {"language": "en", "dataset": name, "question_type": qtype, "modality_type": modality_type}


def test_missing_image(root):
    assert collect(OmniMedVqa(root))["omnimedvqa/unsplit/RadImageNet_9"] == Rejection(
        id="omnimedvqa/unsplit/RadImageNet_9", source="omnimedvqa", split="unsplit", reason="missing_file",
        detail="Images/RadImageNet/normal/missing.png", modality="mri", task_family="i2t",
        provenance=[f"{OPEN}/RadImageNet.json", "Images/RadImageNet/normal/missing.png"],
        main_task_type="image_understanding", sub_task_type="medical_vqa")


def test_restricted_access_only_on_request(root):
    items = collect(OmniMedVqa(root, options={"include_restricted": True}))
    assert items["omnimedvqa/unsplit/ACRIMA_0"] == Rejection(
        id="omnimedvqa/unsplit/ACRIMA_0", source="omnimedvqa", split="unsplit", reason="missing_file",
        detail="Images/ACRIMA/Im001.png", modality="fundus", task_family="i2t",
        provenance=["QA_information/Restricted-access/ACRIMA.json", "Images/ACRIMA/Im001.png"],
        main_task_type="image_understanding", sub_task_type="medical_vqa")


@pytest.mark.parametrize("item, found", [
    ({"modality_type": "ultrasound"}, "ultrasound"), ({"modality_type": "Dermoscopy"}, "dermoscopy"),
    ({"modality_type": "Fundus Photography"}, "fundus"), ({"modality": "CT(Computed Tomography)"}, "ct"),
    ({"modality_type": "X-Ray", "dataset": "COVID-19 CHEST X-RAY"}, "chest_xray"),
    ({"modality_type": "X-Ray", "dataset": "Fracture"}, "other"), ({"modality_type": "unknown"}, "other"),
    ({}, "other")])
def test_modality_mapping(item, found):
    assert modality(item) == found


@pytest.mark.parametrize("item, reason", [
    ({"question_id": "x_1", "image_path": "../etc/passwd"}, "malformed_row"),
    ({"image_path": "Images/a.png"}, "malformed_row"),
    ({"question_id": "x_2", "image_path": "Images/a.png", "question": "Q?", "gt_answer": "Yes", "option_A": "Yes"},
     "qa_empty")])
def test_malformed_items(root, item, reason):
    (root / OPEN / "Odd Set.json").write_text(json.dumps([item]), encoding="utf-8")
    items = collect(OmniMedVqa(root))
    (rejection,) = [value for value in items.values() if value.provenance[0] == f"{OPEN}/Odd Set.json"]
    assert rejection.reason == reason


def test_malformed_json_file(root):
    (root / OPEN / "Broken.json").write_text("{not json", encoding="utf-8")
    rejection = collect(OmniMedVqa(root))[f"omnimedvqa/unsplit/{OPEN}/Broken.json"]
    assert (rejection.reason, rejection.provenance) == ("malformed_json", [f"{OPEN}/Broken.json"])


def test_split_selection(root):
    assert OmniMedVqa(root, splits=["train"]).work_units() == []


def test_no_qa_files_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="Open-access"):
        OmniMedVqa(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
