"""Kvasir v2 adapter: exact records from the sample tree (all eight classes), hidden files, unknown folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manifests.records import Rejection
from sources.base import SourceError
from sources.kvasir import Kvasir
from sources.samples import kvasir as sample
from tests.source_checks import (check_label_pair, check_sample_tree,
                                       check_two_items_per_image, check_units_chunked, collect)

RECORDS = {
    # stem -> (instruction, caption, prompt, provenance, (width, height, channels, format), meta)
    "unsplit/dyed-lifted-polyps/0a7bdce4-ac0d-44ef-93ee-92dfd8fe0b81": (
        "What does this endoscopic image show?",
        "A dyed lifted polyp, seen on endoscopy.",
        "Generate an endoscopic image of a dyed lifted polyp.",
        ["dyed-lifted-polyps/0a7bdce4-ac0d-44ef-93ee-92dfd8fe0b81.jpg"], (200, 160, 3, "jpg"),
        {"label": "dyed-lifted-polyps"}),
    "unsplit/dyed-resection-margins/0a0d2a2d-7c27-4d35-a9b5-3d4c6a8e3f5b": (
        "Describe this gastrointestinal endoscopy image.",
        "Endoscopic image showing dyed resection margins.",
        "A gastrointestinal endoscopy image showing dyed resection margins.",
        ["dyed-resection-margins/0a0d2a2d-7c27-4d35-a9b5-3d4c6a8e3f5b.jpg"], (200, 160, 3, "jpg"),
        {"label": "dyed-resection-margins"}),
    "unsplit/esophagitis/0a2a6c3a-6b43-4b8e-8d09-1c1e5b4f7f21": (
        "What does this endoscopic image show?",
        "Esophagitis, seen on endoscopy.",
        "Generate an endoscopic image of esophagitis.",
        ["esophagitis/0a2a6c3a-6b43-4b8e-8d09-1c1e5b4f7f21.jpg"], (200, 160, 3, "jpg"),
        {"label": "esophagitis"}),
    "unsplit/normal-cecum/0a3b4c2d-2f7e-4a9b-9a6c-7d1e2f3a4b5c": (
        "What does this endoscopic image show?",
        "A normal cecum, seen on endoscopy.",
        "A gastrointestinal endoscopy image showing a normal cecum.",
        ["normal-cecum/0a3b4c2d-2f7e-4a9b-9a6c-7d1e2f3a4b5c.jpg"], (200, 160, 3, "jpg"),
        {"label": "normal-cecum"}),
    "unsplit/normal-pylorus/0a4c5d3e-3a8f-4bac-8b7d-8e2f3a4b5c6d": (
        "What finding or landmark is shown in this endoscopy image?",
        "Endoscopic image showing a normal pylorus.",
        "A gastrointestinal endoscopy image showing a normal pylorus.",
        ["normal-pylorus/0a4c5d3e-3a8f-4bac-8b7d-8e2f3a4b5c6d.jpg"], (200, 160, 3, "jpg"),
        {"label": "normal-pylorus"}),
    "unsplit/normal-z-line/0a5d6e4f-4b9a-4cbd-9c8e-9f3a4b5c6d7e": (
        "What does this endoscopic image show?",
        "A normal Z-line, seen on endoscopy.",
        "Create an endoscopy image of a normal Z-line.",
        ["normal-z-line/0a5d6e4f-4b9a-4cbd-9c8e-9f3a4b5c6d7e.jpg"], (200, 160, 3, "jpg"),
        {"label": "normal-z-line"}),
    "unsplit/polyps/0a6e7f5a-5cab-4dce-8d9f-a04b5c6d7e8f": (
        "Describe this gastrointestinal endoscopy image.",
        "A polyp, seen on endoscopy.",
        "Create an endoscopy image of a polyp.",
        ["polyps/0a6e7f5a-5cab-4dce-8d9f-a04b5c6d7e8f.jpg"], (200, 160, 3, "jpg"),
        {"label": "polyps"}),
    "unsplit/polyps/0b7f8a6b-6dbc-4edf-9eaa-b15c6d7e8f9a": (
        "What finding or landmark is shown in this endoscopy image?",
        "A polyp, seen on endoscopy.",
        "A gastrointestinal endoscopy image showing a polyp.",
        ["polyps/0b7f8a6b-6dbc-4edf-9eaa-b15c6d7e8f9a.jpg"], (200, 176, 3, "jpg"),
        {"label": "polyps"}),
    "unsplit/ulcerative-colitis/0a8a9b7c-7ecd-4fea-8fbb-c26d7e8f9aab": (
        "What does this endoscopic image show?",
        "Gastrointestinal endoscopy image of ulcerative colitis.",
        "Generate an endoscopic image of ulcerative colitis.",
        ["ulcerative-colitis/0a8a9b7c-7ecd-4fea-8fbb-c26d7e8f9aab.jpg"], (200, 160, 3, "jpg"),
        {"label": "ulcerative-colitis"}),
}
REJECTED: dict = {}  # the sample has no unreadable item; see the quirk tests


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_item_gives_two_samples_or_two_rejections(root):
    check_two_items_per_image(Kvasir(root), [*RECORDS, *REJECTED])


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    check_label_pair(root, Kvasir(root), stem, "endoscopy", RECORDS[stem])


def test_units_are_chunked_with_stable_ids(root):
    check_units_chunked(Kvasir, root)


def test_sample_tree_is_deterministic_and_small(tmp_path):
    check_sample_tree(sample, tmp_path)



def test_all_eight_classes_are_captioned():
    assert {stem.split("/")[1] for stem in RECORDS} == {
        "dyed-lifted-polyps", "dyed-resection-margins", "esophagitis", "normal-cecum", "normal-pylorus",
        "normal-z-line", "polyps", "ulcerative-colitis"}


def test_unknown_folder_is_label_unknown_and_hidden_files_are_skipped(root):
    (root / "blurry").mkdir()
    shutil.copy(root / "polyps" / "0a6e7f5a-5cab-4dce-8d9f-a04b5c6d7e8f.jpg", root / "blurry" / "x.jpg")
    items = collect(Kvasir(root))
    stem = "kvasir/unsplit/blurry/x"
    for kind, family, main, sub in (("caption", "i2t", "image_understanding", "classification_caption"),
                                    ("t2i", "t2i", "image_generation", "text_to_image")):
        assert items[f"{stem}/{kind}"] == Rejection(
            id=f"{stem}/{kind}", source="kvasir", split="unsplit", reason="label_unknown", detail="'blurry'",
            modality="endoscopy", task_family=family, provenance=["blurry/x.jpg"],
            main_task_type=main, sub_task_type=sub)
    assert not any(".DS_Store" in key for key in items)


def test_split_selection_and_empty_root(root, tmp_path):
    assert Kvasir(root, splits=["train"]).work_units() == []
    with pytest.raises(SourceError, match="no class folders"):
        Kvasir(tmp_path / "nowhere").work_units()
