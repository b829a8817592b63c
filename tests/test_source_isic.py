"""ISIC adapter: exact label-caption records per challenge year from the sample tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.isic import Isic
from sources.samples import isic as sample

WHAT_TYPE = "What type of skin lesion is shown in this dermoscopic image?"
DESCRIBE = "Describe this dermoscopy image."
DIAGNOSIS = "What is the diagnosis of the lesion in this dermoscopic image?"
T17, I17 = "ISIC-2017_Training_Part3_GroundTruth.csv", "ISIC-2017_Training_Data"
T18 = "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv"
I18 = "ISIC2018_Task3_Training_Input"
T19, I19 = "ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Input"
T20 = "ISIC_2020_Training_GroundTruth_v2.csv"


def _2020(patient, sex, age, site, verdict, label):
    return {"year": "2020", "patient_id": patient, "sex": sex, "age": age, "site": site, "benign_malignant": verdict,
            "label": label}


# id stem -> (table, image path, instruction, caption, prompt, meta)
RECORDS = {
    "2017/ISIC_0000000": (T17, f"{I17}/ISIC_0000000.jpg", WHAT_TYPE, "Dermoscopic image of a melanocytic nevus.",
                          "Generate a dermoscopy image of a benign melanocytic nevus.",
                          {"year": "2017", "label": "nv"}),
    "2017/ISIC_0000002": (T17, f"{I17}/ISIC_0000002.jpg", WHAT_TYPE, "Dermoscopic image of a melanoma.",
                          "Generate a dermoscopy image of a melanoma.", {"year": "2017", "label": "mel"}),
    "2017/ISIC_0012090": (T17, f"{I17}/ISIC_0012090.jpg", WHAT_TYPE, "Dermoscopy showing a seborrheic keratosis.",
                          "A dermoscopic image of a seborrheic keratosis.", {"year": "2017", "label": "sk"}),
    "2018/ISIC_0024306": (T18, f"{I18}/ISIC_0024306.jpg", DIAGNOSIS, "Dermoscopic image of a melanocytic nevus.",
                          "Create a dermoscopic photograph of a benign melanocytic nevus.",
                          {"year": "2018", "label": "nv"}),
    "2019/ISIC_0000004": (T19, f"{I19}/ISIC_0000004_downsampled.jpg", DIAGNOSIS, "A melanoma, seen on dermoscopy.",
                          "Generate a dermoscopy image of a melanoma.", {"year": "2019", "label": "mel"}),
    "2019/ISIC_0053453": (T19, f"{I19}/ISIC_0053453.jpg", DESCRIBE, "Dermoscopy showing a squamous cell carcinoma.",
                          "A dermoscopic image of a squamous cell carcinoma.", {"year": "2019", "label": "scc"}),
    "2020/ISIC_2637011": (T20, "train/ISIC_2637011.jpg", WHAT_TYPE, "Dermoscopy showing a benign skin lesion.",
                          "Create a dermoscopic photograph of a benign skin lesion.",
                          _2020("IP_7279968", "male", 45.0, "head/neck", "benign", "benign")),
    "2020/ISIC_0149568": (T20, "train/ISIC_0149568.jpg", DIAGNOSIS, "Dermoscopy showing a melanoma.",
                          "Generate a dermoscopy image of a melanoma.",
                          _2020("IP_0962375", "female", 55.0, "upper extremity", "malignant", "mel")),
    "2020/ISIC_0015719": (T20, "train/ISIC_0015719.jpg", DESCRIBE, "A lentigo, seen on dermoscopy.",
                          "Generate a dermoscopy image of a lentigo.",
                          _2020("IP_3075186", None, None, None, "benign", "lentigo")),
}
# id stem -> (table, image path, reason, detail)
REJECTED = {
    "2018/ISIC_0024331": (T18, f"{I18}/ISIC_0024331.jpg", "missing_file", f"{I18}/ISIC_0024331.jpg"),
    "2019/ISIC_0053460": (T19, f"{I19}/ISIC_0053460.jpg", "label_missing", f"{T19} row 2"),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def collect(source: Isic) -> dict[str, Record | Rejection]:
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split == "train"
            out[item.id] = item
    return out


def test_every_row_gives_two_items(root):
    expected = {f"isic/train/{stem}/{kind}" for stem in [*RECORDS, *REJECTED] for kind in ("caption", "t2i")}
    assert set(collect(Isic(root))) == expected


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    table, image_path, instruction, caption, prompt, meta = RECORDS[stem]
    items = collect(Isic(root))
    i2t, t2i = items[f"isic/train/{stem}/caption"], items[f"isic/train/{stem}/t2i"]
    assert (i2t.source, i2t.modality, i2t.task_family, i2t.main_task_type, i2t.sub_task_type) == (
        "isic", "dermoscopy", "i2t", "image_understanding", "classification_caption")
    assert i2t.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": caption}]
    assert (t2i.task_family, t2i.sub_task_type, t2i.message) == ("t2i", "text_to_image",
                                                                 [{"from": "human", "value": prompt}])
    for record in (i2t, t2i):
        (image,) = record.images
        assert (image.width, image.height, image.format, image.source_path) == (200, 150, "jpg", image_path)
        assert image.encoded == (root / image_path).read_bytes()
        assert record.provenance == [table, image_path]
        assert record.meta == meta


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    table, image_path, reason, detail = REJECTED[stem]
    items = collect(Isic(root))
    for kind, family, main, sub in (("caption", "i2t", "image_understanding", "classification_caption"),
                                    ("t2i", "t2i", "image_generation", "text_to_image")):
        assert items[f"isic/train/{stem}/{kind}"] == Rejection(
            id=f"isic/train/{stem}/{kind}", source="isic", split="train", reason=reason, detail=detail,
            modality="dermoscopy", task_family=family, provenance=[table, image_path],
            main_task_type=main, sub_task_type=sub)


def test_units_per_year_and_split_selection(root, tmp_path):
    assert [unit.id for unit in Isic(root).work_units()] == [
        "isic/train/2017/00000", "isic/train/2018/00000", "isic/train/2019/00000", "isic/train/2020/00000"]
    assert Isic(root, splits=["test"]).work_units() == []
    with pytest.raises(SourceError, match="ground-truth CSV"):
        Isic(tmp_path / "nothing").work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
