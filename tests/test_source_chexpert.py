"""CheXpert adapter: exact records from the sample tree; positive, negative, uncertain and blank observations."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manifests.records import Rejection
from sources.base import SourceError
from sources.chexpert import Chexpert
from sources.samples import chexpert as sample
from tests.source_checks import (check_label_pair, check_rejected_pair, check_sample_tree,
                                       check_two_items_per_image, check_units_chunked, collect)

OBSERVATIONS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
                "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                "Fracture", "Support Devices")


def _meta(patient: str, study: str, view: str, ap_pa, sex: str, age: int, label: str, default=None, **states) -> dict:
    """The expected meta; `states` names observations with "_" for spaces, the rest get `default`."""
    observations = {name: states.get(name.replace(" ", "_"), default) for name in OBSERVATIONS}
    return {"patient": patient, "study": study, "view": view, "ap_pa": ap_pa, "sex": sex, "age": age,
            "observations": observations, "label": label}


P2 = {"Cardiomegaly": "positive", "Lung_Opacity": "negative", "Edema": "uncertain", "Pleural_Effusion": "positive"}
RECORDS = {
    # stem -> (instruction, caption, prompt, provenance, (width, height, channels, format), meta)
    "train/patient00001/study1/view1_frontal": (
        "What findings does this chest X-ray show?",
        "Frontal chest X-ray with no finding.",
        "A frontal chest X-ray showing no finding.",
        ["train.csv", "train/patient00001/study1/view1_frontal.jpg"], (200, 240, 1, "jpg"),
        _meta("patient00001", "study1", "frontal", "AP", "female", 68, "No Finding", No_Finding="positive")),
    "train/patient00002/study2/view1_frontal": (
        "What findings does this chest X-ray show?",
        "Cardiomegaly and pleural effusion on a frontal chest X-ray.",
        "Generate a frontal chest X-ray with cardiomegaly and pleural effusion.",
        ["train.csv", "train/patient00002/study2/view1_frontal.jpg"], (200, 240, 1, "jpg"),
        _meta("patient00002", "study2", "frontal", "AP", "female", 87, "Cardiomegaly;Pleural Effusion", **P2)),
    "train/patient00002/study2/view2_lateral": (
        "Describe the findings in this chest radiograph.",
        "Lateral chest X-ray: cardiomegaly and pleural effusion.",
        "A lateral chest X-ray showing cardiomegaly and pleural effusion.",
        ["train.csv", "train/patient00002/study2/view2_lateral.jpg"], (200, 240, 1, "jpg"),
        _meta("patient00002", "study2", "lateral", None, "female", 87, "Cardiomegaly;Pleural Effusion", **P2)),
    "train/patient00005/study1/view1_frontal": (
        "List the findings visible on this chest X-ray.",
        "Frontal chest X-ray: support devices.",
        "A frontal chest X-ray showing support devices.",
        ["train.csv", "train/patient00005/study1/view1_frontal.jpg"], (200, 240, 1, "jpg"),
        _meta("patient00005", "study1", "frontal", "AP", "male", 55, "Support Devices", No_Finding="positive",
              Support_Devices="positive")),
    "validate/patient64541/study1/view1_frontal": (
        "List the findings visible on this chest X-ray.",
        "Frontal chest X-ray: cardiomegaly, lung opacity, edema and support devices.",
        "A frontal chest X-ray showing cardiomegaly, lung opacity, edema and support devices.",
        ["valid.csv", "valid/patient64541/study1/view1_frontal.jpg"], (200, 240, 1, "jpg"),
        _meta("patient64541", "study1", "frontal", "AP", "male", 73, "Cardiomegaly;Lung Opacity;Edema;Support Devices",
              "negative", Cardiomegaly="positive", Lung_Opacity="positive", Edema="positive",
              Support_Devices="positive")),
    "validate/patient64542/study1/view1_frontal": (
        "Describe the findings in this chest radiograph.",
        "Frontal chest X-ray: no finding.",
        "Create a frontal chest X-ray with no finding.",
        ["valid.csv", "valid/patient64542/study1/view1_frontal.jpg"], (200, 240, 1, "jpg"),
        _meta("patient64542", "study1", "frontal", "PA", "male", 70, "No Finding", "negative", No_Finding="positive")),
}
REJECTED = {
    # stem -> (reason, detail, provenance)
    "train/patient00003/study1/view1_frontal": (
        "no_positive_label", "uncertain: Atelectasis", ["train.csv", "train/patient00003/study1/view1_frontal.jpg"]),
    "train/patient00004/study1/view1_frontal": (
        "missing_file", "train/patient00004/study1/view1_frontal.jpg",
        ["train.csv", "train/patient00004/study1/view1_frontal.jpg"]),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_item_gives_two_samples_or_two_rejections(root):
    check_two_items_per_image(Chexpert(root), [*RECORDS, *REJECTED])


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    check_label_pair(root, Chexpert(root), stem, "chest_xray", RECORDS[stem])


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    check_rejected_pair(Chexpert(root), stem, "chest_xray", REJECTED[stem])


def test_units_are_chunked_with_stable_ids(root):
    check_units_chunked(Chexpert, root)


def test_sample_tree_is_deterministic_and_small(tmp_path):
    check_sample_tree(sample, tmp_path)



def test_uncertain_stays_uncertain(root):
    items = collect(Chexpert(root))
    record = items["chexpert/train/patient00002/study2/view1_frontal/caption"]
    assert record.meta["observations"]["Edema"] == "uncertain"
    assert "edema" not in record.text.lower()  # never positive ...
    assert "no " not in record.message[1]["value"].lower()  # ... nor negative
    assert items["chexpert/train/patient00003/study1/view1_frontal/caption"].reason == "no_positive_label"


def test_integer_values_and_full_size_folder_name(root, tmp_path):
    full = tmp_path / "CheXpert-v1.0"
    shutil.copytree(root, full)
    (full / "valid.csv").write_text(
        (root / "valid.csv").read_text(encoding="utf-8").replace("CheXpert-v1.0-small/", "CheXpert-v1.0/")
        .replace(",1.0", ",1").replace(",0.0", ",0"), encoding="utf-8")
    assert ",1," in (full / "valid.csv").read_text(encoding="utf-8")
    items = collect(Chexpert(full, splits=["validate"]))
    assert {key: item.message for key, item in items.items()} == {
        key: item.message for key, item in collect(Chexpert(root, splits=["validate"])).items()}


@pytest.mark.parametrize("splits", [["train"], ["validate"]])
def test_split_selection(root, splits):
    assert {item.split for item in collect(Chexpert(root, splits=splits)).values()} == set(splits)


def test_bad_path_row_and_missing_csvs(root, tmp_path):
    with open(root / "valid.csv", "a", encoding="utf-8") as handle:
        handle.write("view1.jpg,Male,70,Frontal,PA" + ",0.0" * 14 + "\n")
    items = collect(Chexpert(root, splits=["validate"]))
    assert items["chexpert/validate/valid.csv#2"] == Rejection(
        id="chexpert/validate/valid.csv#2", source="chexpert", split="validate", reason="malformed_row",
        detail="Path 'view1.jpg'", modality="chest_xray", provenance=["valid.csv"])
    with pytest.raises(SourceError, match="train.csv or valid.csv"):
        Chexpert(tmp_path).work_units()
