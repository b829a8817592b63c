"""PMC-OA adapter: exact I2T + T2I records and rejections from the sample tree, split files, layout variants."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from manifests.records import Rejection
from sources.base import SourceError
from sources.pmc_oa import CAPTION_PROMPTS, PmcOa
from sources.samples import pmc_oa as sample
from tests.source_checks import collect

FOLDER = sample.FOLDER
# key -> (caption, pmcid, (width, height))
RECORDS = {
    "PMC212319_Fig3_4": ("Immunofluorescence of HeLa cells showing nuclear staining.", "PMC212319", (256, 256)),
    "PMC1064097_F1_1": ("Axial CT image of the abdomen showing a renal mass.", "PMC1064097", (280, 200)),
    "PMC3000000_F2_2": ("Western blot of lysates from treated cells.", "PMC3000000", (140, 100)),
    "PMC4000000_F5_1#5": ("Kaplan-Meier survival curves of both groups.", "PMC4000000", (224, 224)),
}
# key -> (reason, detail, image)
REJECTED = {
    "PMC4000000_F5_1": ("caption_empty", "'(B)'", "PMC4000000_F5_1.jpg"),
    "PMC5000000_F1_1": ("missing_file", f"{FOLDER}/PMC5000000_F1_1.jpg", "PMC5000000_F1_1.jpg"),
    "PMC212319_Fig3_4#8": ("caption_empty", "''", "PMC212319_Fig3_4.jpg"),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_every_line_gives_two_samples_or_two_rejections(root):
    expected = {f"pmc_oa/unsplit/{key}/{kind}" for key in [*RECORDS, *REJECTED] for kind in ("caption", "t2i")}
    assert set(collect(PmcOa(root))) == expected | {"pmc_oa/unsplit/pmc_oa.jsonl#6"}


@pytest.mark.parametrize("key", sorted(RECORDS))
def test_records_exact(root, key):
    caption, pmcid, size = RECORDS[key]
    items = collect(PmcOa(root))
    image_path = f"{FOLDER}/{key.split('#')[0]}.jpg"
    i2t, t2i = items[f"pmc_oa/unsplit/{key}/caption"], items[f"pmc_oa/unsplit/{key}/t2i"]
    assert (i2t.split, i2t.modality, i2t.task_family, i2t.main_task_type, i2t.sub_task_type) == (
        "unsplit", "other", "i2t", "image_understanding", "image_captioning")
    assert i2t.message[1] == {"from": "gpt", "value": caption}
    assert i2t.message[0]["value"].startswith("<image>\n")
    assert i2t.message[0]["value"].removeprefix("<image>\n") in CAPTION_PROMPTS
    assert (t2i.split, t2i.modality, t2i.task_family, t2i.main_task_type, t2i.sub_task_type) == (
        "unsplit", "other", "t2i", "image_generation", "text_to_image")
    assert t2i.message == [{"from": "human", "value": caption}] and t2i.input_images == []
    for record in (i2t, t2i):
        (image,) = record.images
        assert (image.width, image.height, image.format, image.source_path) == (*size, "jpg", image_path)
        assert image.encoded == (root / image_path).read_bytes()
        assert record.provenance == ["pmc_oa.jsonl", image_path]
        assert record.meta == {"pmcid": pmcid}
    assert i2t.images[0] is not t2i.images[0]


def test_instruction_is_deterministic(root):
    record = collect(PmcOa(root))["pmc_oa/unsplit/PMC212319_Fig3_4/caption"]
    assert record.message[0]["value"] == "<image>\n" + PmcOa.pick("pmc_oa/unsplit/PMC212319_Fig3_4/caption",
                                                                 CAPTION_PROMPTS)


@pytest.mark.parametrize("key", sorted(REJECTED))
def test_rejections_exact(root, key):
    reason, detail, image = REJECTED[key]
    items = collect(PmcOa(root))
    for kind, family, main, sub in (("caption", "i2t", "image_understanding", "image_captioning"),
                                    ("t2i", "t2i", "image_generation", "text_to_image")):
        assert items[f"pmc_oa/unsplit/{key}/{kind}"] == Rejection(
            id=f"pmc_oa/unsplit/{key}/{kind}", source="pmc_oa", split="unsplit", reason=reason, detail=detail,
            task_family=family, provenance=["pmc_oa.jsonl", f"{FOLDER}/{image}"],
            main_task_type=main, sub_task_type=sub)


def test_broken_line(root):
    rejection = collect(PmcOa(root))["pmc_oa/unsplit/pmc_oa.jsonl#6"]
    assert (rejection.reason, rejection.provenance) == ("malformed_row", ["pmc_oa.jsonl"])
    assert rejection.detail.startswith("not JSON")


def test_older_release_split_files_win(root):
    (root / "valid.jsonl").write_text(json.dumps({"image": "PMC1064097_F1_1.jpg", "pmcid": "PMC1064097",
                                                  "url_name": "1471-2121-4-13-3.jpg",
                                                  "caption": "Renal mass on CT."}) + "\n", encoding="utf-8")
    items = collect(PmcOa(root))
    assert set(items) == {"pmc_oa/validate/PMC1064097_F1_1/caption", "pmc_oa/validate/PMC1064097_F1_1/t2i"}
    assert collect(PmcOa(root, splits=["train"])) == {}


@pytest.mark.parametrize("folder", [f"images/{FOLDER}", "images"])
def test_image_folder_variants(root, folder):
    (root / folder).parent.mkdir(exist_ok=True)
    shutil.move(root / FOLDER, root / folder)
    record = collect(PmcOa(root))["pmc_oa/unsplit/PMC212319_Fig3_4/t2i"]
    assert record.provenance == ["pmc_oa.jsonl", f"{folder}/PMC212319_Fig3_4.jpg"]


def test_unreadable_packed_zip_is_a_source_error(root):
    shutil.rmtree(root / FOLDER)
    (root / "images.zip").write_bytes(b"PK")  # a packed zip is read in place (Hub cache), but this one is broken
    with pytest.raises(SourceError, match="images.zip: not a readable zip"):
        PmcOa(root).work_units()


def test_no_jsonl_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="pmc_oa.jsonl"):
        PmcOa(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
