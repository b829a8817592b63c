"""HAM10000 adapter: exact label-caption records from the sample tree, the metadata file's name variants."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.ham10000 import Ham10000
from sources.samples import ham10000 as sample

WHAT_TYPE = "What type of skin lesion is shown in this dermoscopic image?"
DESCRIBE = "Describe this dermoscopy image."
DIAGNOSIS = "What is the diagnosis of the lesion in this dermoscopic image?"
BOWEN = "an actinic keratosis or intraepithelial carcinoma (Bowen's disease)"


def _meta(lesion, dx_type, age, sex, site, dataset, label):
    return {"lesion_id": lesion, "dx_type": dx_type, "age": age, "sex": sex, "localization": site,
            "dataset": dataset, "label": label}


# image id -> (part, instruction, caption, prompt, meta)
RECORDS = {
    "ISIC_0027419": (1, DIAGNOSIS, "Dermoscopy showing a benign keratosis-like lesion.",
                     "A dermoscopic image of a benign keratosis-like lesion.",
                     _meta("HAM_0000118", "histo", 80.0, "male", "scalp", "vidir_modern", "bkl")),
    "ISIC_0025030": (1, WHAT_TYPE, "Dermoscopy showing a benign keratosis-like lesion.",
                     "Create a dermoscopic photograph of a benign keratosis-like lesion.",
                     _meta("HAM_0000118", "histo", 80.0, "male", "scalp", "vidir_modern", "bkl")),
    "ISIC_0026769": (1, DIAGNOSIS, "Dermoscopy showing a melanocytic nevus.",
                     "A dermoscopic image of a benign melanocytic nevus.",
                     _meta("HAM_0002730", "follow_up", None, None, None, "vidir_molemax", "nv")),
    "ISIC_0031633": (2, WHAT_TYPE, "Dermoscopy showing a melanoma.", "Create a dermoscopic photograph of a melanoma.",
                     _meta("HAM_0001466", "histo", 75.0, "male", "ear", "rosendahl", "mel")),
    "ISIC_0032013": (2, DESCRIBE, f"Dermoscopic image of {BOWEN}.", f"Generate a dermoscopy image of {BOWEN}.",
                     _meta("HAM_0002761", "histo", 65.0, "female", "face", "rosendahl", "akiec")),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def collect(source: Ham10000) -> dict[str, Record | Rejection]:
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == unit.split == "unsplit"
            out[item.id] = item
    return out


def test_every_row_gives_two_samples_or_two_rejections(root):
    expected = {f"ham10000/unsplit/{image_id}/{kind}" for image_id in [*RECORDS, "ISIC_0033084"]
                for kind in ("caption", "t2i")}
    assert set(collect(Ham10000(root))) == expected


@pytest.mark.parametrize("image_id", sorted(RECORDS))
def test_records_exact(root, image_id):
    part, instruction, caption, prompt, meta = RECORDS[image_id]
    items = collect(Ham10000(root))
    image_path = f"HAM10000_images_part_{part}/{image_id}.jpg"
    i2t, t2i = items[f"ham10000/unsplit/{image_id}/caption"], items[f"ham10000/unsplit/{image_id}/t2i"]
    assert (i2t.source, i2t.modality, i2t.task_family, i2t.main_task_type, i2t.sub_task_type) == (
        "ham10000", "dermoscopy", "i2t", "image_understanding", "classification_caption")
    assert i2t.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": caption}]
    assert (t2i.modality, t2i.task_family, t2i.main_task_type, t2i.sub_task_type) == (
        "dermoscopy", "t2i", "image_generation", "text_to_image")
    assert t2i.message == [{"from": "human", "value": prompt}]
    for record in (i2t, t2i):
        (image,) = record.images
        assert (image.width, image.height, image.format, image.source_path) == (200, 150, "jpg", image_path)
        assert image.encoded == (root / image_path).read_bytes()
        assert record.provenance == ["HAM10000_metadata", image_path]
        assert record.meta == meta


def test_image_in_no_part_folder_rejects_both(root):
    items = collect(Ham10000(root))
    for kind, family, main, sub in (("caption", "i2t", "image_understanding", "classification_caption"),
                                    ("t2i", "t2i", "image_generation", "text_to_image")):
        assert items[f"ham10000/unsplit/ISIC_0033084/{kind}"] == Rejection(
            id=f"ham10000/unsplit/ISIC_0033084/{kind}", source="ham10000", split="unsplit", reason="missing_file",
            detail="ISIC_0033084.jpg in no images part folder", modality="dermoscopy", task_family=family,
            provenance=["HAM10000_metadata"], main_task_type=main, sub_task_type=sub)


def test_kaggle_metadata_name_and_split_selection(root):
    (root / "HAM10000_metadata").rename(root / "HAM10000_metadata.csv")
    items = collect(Ham10000(root))
    assert items["ham10000/unsplit/ISIC_0031633/caption"].provenance == [
        "HAM10000_metadata.csv", "HAM10000_images_part_2/ISIC_0031633.jpg"]
    assert Ham10000(root, splits=["train"]).work_units() == []


def test_zipped_part_and_missing_metadata_are_source_errors(root, tmp_path):
    shutil.rmtree(root / "HAM10000_images_part_2")
    (root / "HAM10000_images_part_2.zip").write_bytes(b"PK")
    with pytest.raises(SourceError, match="unzip HAM10000_images_part_2.zip"):
        Ham10000(root).work_units()
    with pytest.raises(SourceError, match="HAM10000_metadata"):
        Ham10000(tmp_path / "empty").work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
