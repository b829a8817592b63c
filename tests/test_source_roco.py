"""ROCO v1 adapter: exact caption / t2i records and rejections from the sample tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Rejection
from sources.base import SourceError
from sources.roco import Roco
from sources.samples import roco as sample
from tests.source_checks import collect

DESCRIBE = "Describe this medical image."
WRITE = "Write a caption for this radiology image."
BRIEF = "Provide a brief caption describing the findings in this image."
NO_LICENCE = {"pmc_file": None, "licence": None}
# id stem -> (folder, subset, modality, instruction, caption, licence facts)
RECORDS = {
    "train/ROCO_00020": ("train", "radiology", "ct", WRITE,
                         "Axial computed tomography scan of the pelvis showing a diffuse infiltration.",
                         {"pmc_file": "PMC4083729_AMHSR-4-14-g002.jpg", "licence": "CC BY-NC-SA"}),
    "train/ROCO_00027": ("train", "radiology", "mri", WRITE,
                         "Sagittal T2-weighted MRI of the lumbar spine showing disc herniation.", NO_LICENCE),
    "train/ROCO_00031": ("train", "radiology", "ultrasound", BRIEF,
                         "Ultrasound of the right kidney showing hydronephrosis.", NO_LICENCE),
    "validate/ROCO_70001": ("validation", "radiology", "other", DESCRIBE,
                            "Scanner abdominal montrant une masse hépatique.",
                            {"pmc_file": "PMC3000001_fig1.jpg", "licence": "CC BY"}),
    "validate/ROCO_70002": ("validation", "radiology", "other", DESCRIBE,
                            "PET-CT showing increased uptake in a mediastinal node.", NO_LICENCE),
    "test/ROCO_75001": ("test", "radiology", "chest_xray", BRIEF, "Chest x-ray showing a right upper lobe mass.",
                        NO_LICENCE),
}
NON_RADIOLOGY = ("train/ROCO_81900", ("train", "non-radiology", "other", BRIEF,
                                      "Photograph of the surgical specimen after resection.", NO_LICENCE))
# id stem -> (reason, detail, modality)
REJECTED = {
    "train/ROCO_00045": ("caption_empty", "'Fig. 2'", "other"),
    "train/ROCO_00052": ("missing_file", "data/train/radiology/images/ROCO_00052.jpg", "chest_xray"),
}
MALFORMED = "roco/test/data/test/radiology/captions.txt#1"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_line_gives_two_samples_or_rejections(root):
    expected = {f"roco/{stem}/{kind}" for stem in [*RECORDS, *REJECTED] for kind in ("caption", "t2i")}
    assert set(collect(Roco(root))) == expected | {MALFORMED}


@pytest.mark.parametrize("stem", sorted(RECORDS) + [NON_RADIOLOGY[0]])
def test_records_exact(root, stem):
    folder, subset, modality, instruction, caption, licence = dict([NON_RADIOLOGY], **RECORDS)[stem]
    items = collect(Roco(root, options={"include_non_radiology": True}))
    split, roco_id = stem.split("/")
    image_path = f"data/{folder}/{subset}/images/{roco_id}.jpg"
    i2t, t2i = items[f"roco/{stem}/caption"], items[f"roco/{stem}/t2i"]
    assert (i2t.source, i2t.split, i2t.modality, i2t.task_family, i2t.sub_task_type) == (
        "roco", split, modality, "i2t", "image_captioning")
    assert i2t.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": caption}]
    assert (t2i.split, t2i.modality, t2i.task_family, t2i.main_task_type, t2i.sub_task_type) == (
        split, modality, "t2i", "image_generation", "text_to_image")
    assert t2i.message == [{"from": "human", "value": caption}]
    for record in (i2t, t2i):
        (image,) = record.images
        assert (image.width, image.height, image.format, image.source_path) == (240, 180, "jpg", image_path)
        assert image.encoded == (root / image_path).read_bytes()
        assert record.provenance == [f"data/{folder}/{subset}/captions.txt", image_path]
        assert record.meta == {"subset": subset, **licence}


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    reason, detail, modality = REJECTED[stem]
    items = collect(Roco(root))
    roco_id = stem.split("/")[1]
    for kind, family, main, sub in (("caption", "i2t", "image_understanding", "image_captioning"),
                                    ("t2i", "t2i", "image_generation", "text_to_image")):
        assert items[f"roco/{stem}/{kind}"] == Rejection(
            id=f"roco/{stem}/{kind}", source="roco", split="train", reason=reason, detail=detail,
            modality=modality, task_family=family,
            provenance=["data/train/radiology/captions.txt", f"data/train/radiology/images/{roco_id}.jpg"],
            main_task_type=main, sub_task_type=sub)


def test_line_without_tab(root):
    assert collect(Roco(root, splits=["test"]))[MALFORMED] == Rejection(
        id=MALFORMED, source="roco", split="test", reason="malformed_row", detail="no TAB between ROCO id and caption",
        provenance=["data/test/radiology/captions.txt"])


def test_units_split_selection_and_errors(root, tmp_path):
    assert [unit.id for unit in Roco(root, options={"include_non_radiology": True}).work_units()] == [
        "roco/train/radiology/00000", "roco/train/non-radiology/00000", "roco/validate/radiology/00000",
        "roco/test/radiology/00000"]
    assert {unit.split for unit in Roco(root, splits=["validate"]).work_units()} == {"validate"}
    with pytest.raises(SourceError, match="roco-dataset"):
        Roco(tmp_path / "nothing").work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
