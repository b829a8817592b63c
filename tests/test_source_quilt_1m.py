"""Quilt-1M adapter: exact I2T + T2I records and rejections from the sample tree, list columns, split mapping."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manifests.records import Rejection
from sources.base import SourceError
from sources.quilt_1m import CAPTION_PROMPTS, Quilt1m, literal_list
from sources.samples import quilt_1m as sample
from tests.source_checks import collect

LOOKUP = "quilt_1M_lookup.csv"
VIDEO = sample.VIDEO_IMAGE
# id stem -> (image, caption, meta, (width, height))
RECORDS = {
    "train/0": (VIDEO, "Sheets of atypical melanocytes with prominent nucleoli in the dermis.",
                {"subset": "quilt", "pathology": ["Dermatopathology"], "umls_ids": ["C0025201", "C0012640"],
                 "magnification": 20.0}, (320, 256)),
    "train/1": (VIDEO, "Low power view of the same lesion showing an asymmetric silhouette.",
                {"subset": "quilt", "pathology": ["Dermatopathology"], "umls_ids": None, "magnification": None},
                (320, 256)),
    "validate/2": ("00001000010913.jpg", "Colon adenocarcinoma with cribriform glands, H&E.",
                   {"subset": "openpath", "pathology": None, "umls_ids": None, "magnification": None}, (240, 240)),
    "train/3": ("PMC3000000_F1_1.jpg", "Renal biopsy, PAS stain, mesangial expansion.",
                {"subset": "pubmed", "pathology": None, "umls_ids": None, "magnification": 40.0}, (120, 100)),
}
REJECTED = {"train/4": ("caption_empty", "''", "laion_000123.jpg"),
            "train/5": ("missing_file", "quilt_1m/missing_0001.jpg", "missing_0001.jpg")}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_row_gives_two_samples_or_two_rejections(root):
    expected = {f"quilt_1m/{stem}/{kind}" for stem in [*RECORDS, *REJECTED] for kind in ("caption", "t2i")}
    assert set(collect(Quilt1m(root))) == expected


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    image_name, caption, meta, size = RECORDS[stem]
    split = stem.split("/")[0]
    items = collect(Quilt1m(root))
    i2t, t2i = items[f"quilt_1m/{stem}/caption"], items[f"quilt_1m/{stem}/t2i"]
    instruction = Quilt1m.pick(f"quilt_1m/{stem}/caption", CAPTION_PROMPTS)
    assert (i2t.split, i2t.modality, i2t.task_family, i2t.main_task_type, i2t.sub_task_type) == (
        split, "histopathology", "i2t", "image_understanding", "image_captioning")
    assert i2t.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": caption}]
    assert (t2i.split, t2i.modality, t2i.task_family, t2i.main_task_type, t2i.sub_task_type) == (
        split, "histopathology", "t2i", "image_generation", "text_to_image")
    assert t2i.message == [{"from": "human", "value": caption}] and t2i.input_images == []
    for record in (i2t, t2i):
        (image,) = record.images
        assert (image.width, image.height, image.format) == (*size, "jpg")
        assert image.encoded == (root / "quilt_1m" / image_name).read_bytes()
        assert record.provenance == [LOOKUP, f"quilt_1m/{image_name}"]
        assert record.meta == meta


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    reason, detail, image_name = REJECTED[stem]
    items = collect(Quilt1m(root))
    for kind, family, main, sub in (("caption", "i2t", "image_understanding", "image_captioning"),
                                    ("t2i", "t2i", "image_generation", "text_to_image")):
        assert items[f"quilt_1m/{stem}/{kind}"] == Rejection(
            id=f"quilt_1m/{stem}/{kind}", source="quilt_1m", split="train", reason=reason, detail=detail,
            modality="histopathology", task_family=family, provenance=[LOOKUP, f"quilt_1m/{image_name}"],
            main_task_type=main, sub_task_type=sub)


@pytest.mark.parametrize("raw, parsed", [("['a', 'b']", ["a", "b"]), ("", None), ("not a list", None),
                                         ("__import__('os')", None), ("'text'", None)])
def test_literal_list(raw, parsed):
    assert literal_list(raw) == parsed


def test_unknown_split_and_bad_image_path(root):
    with open(root / LOOKUP, "a", encoding="utf-8") as handle:
        handle.write("6,A caption of reasonable length.,../x.jpg,quilt,,,,,,,,1,1\n")
    items = collect(Quilt1m(root, splits=["unsplit"]))
    assert set(items) == {"quilt_1m/unsplit/6/caption", "quilt_1m/unsplit/6/t2i"}
    assert items["quilt_1m/unsplit/6/t2i"].reason == "malformed_row"


def test_images_folder_variant(root):
    shutil.move(root / "quilt_1m", root / "images")
    record = collect(Quilt1m(root, splits=["validate"]))["quilt_1m/validate/2/caption"]
    assert record.provenance == [LOOKUP, "images/00001000010913.jpg"]


@pytest.mark.parametrize("splits", [["validate"], ["train"]])
def test_split_selection(root, splits):
    source = Quilt1m(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in collect(source).values()} == set(splits)


def test_no_lookup_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match=LOOKUP):
        Quilt1m(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
