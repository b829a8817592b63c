"""ROCOv2 adapter: exact records and rejections from the sample tree, split selection, layout variants."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.rocov2 import Rocov2
from sources.samples import rocov2 as sample
from tests.source_checks import collect

ASK_DESCRIBE = "Describe this medical image."
ASK_WRITE = "Write a caption for this radiology image."
ASK_BRIEF = "Provide a brief caption describing the findings in this image."
ASK_SHOW = "What does this image show? Answer with a figure caption."
NO_LICENCE = {"licence": None, "attribution": None, "pmcid": None, "link": None}


def _licence(pmcid: str, attribution: str, licence: str | None) -> dict:
    link = f"https://www.ncbi.nlm.nih.gov/pmc/articles/{pmcid}/"
    return {"licence": licence, "attribution": attribution, "pmcid": pmcid, "link": link}


# id stem -> (split, file prefix, modality, instruction, caption, CUIs, (width, height), licence facts)
RECORDS = {
    "train/ROCOv2_2023_train_000001": ("train", "train", "ct", ASK_SHOW, "Head CT demonstrating left parotiditis.",
                                       ["C0040405", "C0037303"], (256, 192),
                                       _licence("PMC4083729", "Smith J, et al. J Radiol Case Rep. 2014. CC BY 4.0",
                                                "CC BY 4.0")),
    "train/ROCOv2_2023_train_000002": ("train", "train", "mri", ASK_SHOW,
                                       "Axial T2-weighted MRI of the brain showing a hyperintense lesion.",
                                       ["C0024485"], (256, 192),
                                       _licence("PMC5012345", "Doe A, et al. BMC Med Imaging. 2016. CC BY-NC-SA 4.0",
                                                "CC BY-NC-SA 4.0")),
    "train/ROCOv2_2023_train_000003": ("train", "train", "ultrasound", ASK_WRITE,
                                       "Transabdominal ultrasound showing a gallbladder stone.",
                                       ["C0000726", "C0041618"], (256, 192), NO_LICENCE),
    "train/ROCOv2_2023_train_000004": ("train", "train", "chest_xray", ASK_SHOW,
                                       "Frontal radiograph showing right lower lobe consolidation.",
                                       ["C1306645", "C0817096"], (192, 256), NO_LICENCE),
    "train/ROCOv2_2023_train_000005": ("train", "train", "other", ASK_SHOW,
                                       "Plain radiograph of the left knee showing a fracture.",
                                       ["C1306645"], (256, 192), NO_LICENCE),
    "validate/ROCOv2_2023_valid_000001": ("validate", "valid", "ct", ASK_BRIEF,
                                          "Tomodensitométrie abdominale montrant une masse hépatique.",
                                          ["C0040405", "C0000726"], (256, 192),
                                          _licence("PMC6123456", "Martin L, et al. Radiol Case Rep. 2018.", None)),
    "validate/ROCOv2_2023_valid_000002": ("validate", "valid", "other", ASK_WRITE,
                                          "Coronary angiogram showing a stenosis of the right coronary artery.",
                                          ["C0002978"], (160, 96), NO_LICENCE),
    "test/ROCOv2_2023_test_000001": ("test", "test", "other", ASK_DESCRIBE,
                                     "PET-CT showing FDG uptake in a mediastinal lymph node.",
                                     ["C0032743", "C0040405"], (256, 192), NO_LICENCE),
    "test/ROCOv2_2023_test_000002": ("test", "test", "chest_xray", ASK_SHOW, "Lateral chest radiograph.",
                                     ["C1306645"], (256, 192), NO_LICENCE),
    "test/ROCOv2_2023_test_000003": ("test", "test", "other", ASK_SHOW, "Doppler image of the portal vein.",
                                     [], (256, 192), NO_LICENCE),
}
# id stem -> (reason, detail, modality)
REJECTED = {
    "train/ROCOv2_2023_train_000006": ("caption_empty", "'Fig. 3b'", "ct"),
    "train/ROCOv2_2023_train_000007": ("missing_file", "train/ROCOv2_2023_train_000007.jpg", "ct"),
    "validate/ROCOv2_2023_valid_000003": ("caption_empty", "'(A)'", "chest_xray"),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_row_gives_two_samples_or_two_rejections(root):
    items = collect(Rocov2(root))
    expected = {f"rocov2/{stem}/{kind}" for stem in [*RECORDS, *REJECTED] for kind in ("caption", "t2i")}
    assert set(items) == expected


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    split, prefix, modality, instruction, caption, cuis, size, licence = RECORDS[stem]
    items = collect(Rocov2(root))
    image_id = stem.split("/")[1]
    provenance = [f"{prefix}_captions.csv", f"{prefix}/{image_id}.jpg"]
    jpeg = (root / prefix / f"{image_id}.jpg").read_bytes()
    meta = {"cuis": cuis, **licence}

    i2t, t2i = items[f"rocov2/{stem}/caption"], items[f"rocov2/{stem}/t2i"]
    assert isinstance(i2t, Record) and isinstance(t2i, Record)
    assert (i2t.source, i2t.split, i2t.modality, i2t.task_family) == ("rocov2", split, modality, "i2t")
    assert (i2t.main_task_type, i2t.sub_task_type) == ("image_understanding", "image_captioning")
    assert i2t.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": caption}]
    assert i2t.output_images == [] and len(i2t.input_images) == 1
    assert (t2i.source, t2i.split, t2i.modality, t2i.task_family) == ("rocov2", split, modality, "t2i")
    assert (t2i.main_task_type, t2i.sub_task_type) == ("image_generation", "text_to_image")
    assert t2i.message == [{"from": "human", "value": caption}]
    assert t2i.input_images == [] and len(t2i.output_images) == 1
    for record in (i2t, t2i):
        (image,) = record.images
        assert (image.width, image.height, image.format, image.source_path) == (*size, "jpg", provenance[1])
        assert image.encoded == jpeg and image.pixels is None  # the JPEG passes through byte for byte
        assert record.provenance == provenance
        assert record.meta == meta
    assert i2t.images[0] is not t2i.images[0] and i2t.meta is not t2i.meta


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    reason, detail, modality = REJECTED[stem]
    items = collect(Rocov2(root))
    split, image_id = stem.split("/")
    prefix = image_id.split("_")[2]
    for kind, family, main, sub in (("caption", "i2t", "image_understanding", "image_captioning"),
                                    ("t2i", "t2i", "image_generation", "text_to_image")):
        assert items[f"rocov2/{stem}/{kind}"] == Rejection(
            id=f"rocov2/{stem}/{kind}", source="rocov2", split=split, reason=reason, detail=detail,
            modality=modality, task_family=family,
            provenance=[f"{prefix}_captions.csv", f"{prefix}/{image_id}.jpg"],
            main_task_type=main, sub_task_type=sub)


def test_row_without_id_or_caption(root):
    with open(root / "test_captions.csv", "a", encoding="utf-8") as handle:
        handle.write(",An orphan caption.\nROCOv2_2023_test_000004,\n")
    items = collect(Rocov2(root, splits=["test"]))
    assert items["rocov2/test/test_captions.csv#3"] == Rejection(
        id="rocov2/test/test_captions.csv#3", source="rocov2", split="test", reason="malformed_row",
        detail="empty ID", provenance=["test_captions.csv"])
    # An empty caption is rejected before the (missing) image is looked at.
    assert {items[f"rocov2/test/ROCOv2_2023_test_000004/{kind}"].reason for kind in ("caption", "t2i")} == {
        "caption_empty"}


@pytest.mark.parametrize("splits", [["validate"], ["train", "test"]])
def test_split_selection(root, splits):
    source = Rocov2(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in collect(source).values()} == set(splits)


def test_units_are_chunked_with_stable_ids(root):
    source = Rocov2(root, options={"items_per_unit": 3})
    assert [unit.id for unit in source.work_units()] == [
        "rocov2/train/00000", "rocov2/train/00001", "rocov2/train/00002", "rocov2/validate/00000",
        "rocov2/test/00000"]
    assert collect(source).keys() == collect(Rocov2(root)).keys()


@pytest.mark.parametrize("folder", ["train_images/train", "train_images"])
def test_images_unzipped_into_a_folder_named_after_the_zip(root, folder):
    (root / folder).parent.mkdir(exist_ok=True)
    shutil.move(root / "train", root / folder)
    record = collect(Rocov2(root, splits=["train"]))["rocov2/train/ROCOv2_2023_train_000001/caption"]
    assert record.provenance == ["train_captions.csv", f"{folder}/ROCOv2_2023_train_000001.jpg"]
    assert record.input_images[0].encoded == (root / folder / "ROCOv2_2023_train_000001.jpg").read_bytes()


def test_zip_not_unpacked_is_a_source_error(root):
    shutil.rmtree(root / "test")
    (root / "test_images.zip").write_bytes(b"PK")
    with pytest.raises(SourceError, match="unzip test_images.zip"):
        Rocov2(root).work_units()


def test_no_caption_files_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="captions.csv"):
        Rocov2(tmp_path).work_units()


def test_licence_column_read_when_present(root):
    (root / "license_information.csv").write_text(
        "\ufeffImage_ID , License\nROCOv2_2023_test_000002.jpg,CC BY-NC 4.0\n", encoding="utf-8")
    items = collect(Rocov2(root, splits=["test"]))
    assert items["rocov2/test/ROCOv2_2023_test_000002/t2i"].meta == {
        "cuis": ["C1306645"], "licence": "CC BY-NC 4.0", "attribution": None, "pmcid": None, "link": None}


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
