"""GMAI-VL-5.5M adapter: exact T2I records and rejections from the sample tree (JSONL annotations, images in the
OpenSource zip chunks), I2T subsets on request, and each quirk of its card."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.gmai_vl import GmaiVl, modality_from_words
from sources.io.image import load_pixels
from sources.samples import gmai_vl as sample
from tests.source_checks import check_sample_tree, collect

NAME = "gmai_vl"
OPEN, CLOSED = sample.OPEN, sample.CLOSED
CAPTION = f"{OPEN}/annotations/GMAI-MM-Caption-1.7M.jsonl"
C, N = f"{NAME}/unsplit/opensource-caption", f"{NAME}/unsplit/non_opensource-caption"
OUTCOMES = {  # line 4 is blank: no row
    f"{C}/00000000": None, f"{C}/00000001": None, f"{C}/00000002": "multi_image_caption",
    f"{C}/00000003": "missing_file", f"{C}/00000005": "malformed_json", f"{C}/00000006": None,
    f"{C}/00000007": None, f"{N}/00000000": "images_not_distributed",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def _member(root: Path, member: str) -> bytes:
    for path in sorted((root / OPEN / "zips").glob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            if member in archive.namelist():
                return archive.read(member)
    raise KeyError(member)


def test_ids_and_outcomes(root):
    items = collect(GmaiVl(root))
    assert {key: getattr(item, "reason", None) for key, item in items.items()} == OUTCOMES


def test_tiff_caption_is_t2i_with_lossless_16_bit_pixels(root):
    record = collect(GmaiVl(root))[f"{C}/00000000"]
    (image,) = record.output_images
    row = sample.CAPTION[0]
    assert record == Record(
        id=f"{C}/00000000", source=NAME, split="unsplit", modality="histopathology", task_family="t2i",
        main_task_type="image_generation", sub_task_type="text_to_image",
        message=[{"from": "human", "value": row["conversations"][1]["value"]}], output_images=[image],
        provenance=[CAPTION, f"{OPEN}/zips/images_chunk_001.zip"], source_text=row["conversations"][1]["value"],
        meta={"gmai_id": row["id"], "part": "opensource", "subset": "caption", "source_dataset": "crc100k",
              "task_path": "2d/cls", "image_paths": [row["image"]]})
    member = row["image"].removeprefix("images/")  # the zip member has no leading images/
    with PILImage.open(io.BytesIO(_member(root, member))) as original:
        assert np.array_equal(load_pixels(image), np.asarray(original))
    assert (image.bit_depth, image.format, image.source_path) == (16, "png", row["image"])


def test_list_image_chunks_language_and_chest(root):
    items = collect(GmaiVl(root))
    ct = items[f"{C}/00000001"]  # `image` given as a list of one
    assert (ct.modality, ct.provenance[1], ct.meta["source_dataset"]) == ("ct", f"{OPEN}/zips/images_chunk_001.zip",
                                                                           "AMOS_CT")
    assert items[f"{C}/00000006"].message[0]["value"].startswith("这是一张皮肤镜图像")  # Chinese kept as written
    cxr = items[f"{C}/00000007"]
    assert (cxr.modality, cxr.provenance[1]) == ("chest_xray", f"{OPEN}/zips/images_chunk_002.zip")
    assert items[f"{C}/00000002"].detail == "2 images"


def test_missing_member_and_malformed_line(root):
    items = collect(GmaiVl(root))
    assert items[f"{C}/00000003"] == Rejection(
        id=f"{C}/00000003", source=NAME, split="unsplit", reason="missing_file",
        detail=f"images/2d/cls/fundus/APTOS/images/missing_0001.png: not in {OPEN}/zips/*.zip", modality="fundus",
        task_family="t2i", provenance=[CAPTION], main_task_type="image_generation", sub_task_type="text_to_image")
    assert items[f"{C}/00000005"].detail.startswith("line 5: not JSON:")


def test_members_stored_with_the_images_prefix_are_found_too(root):
    chunk = root / OPEN / "zips" / "images_chunk_001.zip"
    with zipfile.ZipFile(chunk) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    from sources.samples.hub import zip_bytes

    chunk.write_bytes(zip_bytes({f"images/{name}": data for name, data in members.items()}))
    assert collect(GmaiVl(root)).keys() == OUTCOMES.keys()
    assert isinstance(collect(GmaiVl(root))[f"{C}/00000000"], Record)


def test_unpacked_images_folder_is_read_instead_of_the_zips(root):
    for path in sorted((root / OPEN / "zips").glob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            archive.extractall(root / OPEN / "images")
        path.unlink()
    record = collect(GmaiVl(root))[f"{C}/00000000"]
    assert record.provenance == [CAPTION, f"{OPEN}/{sample.TIF}"]


def test_non_opensource_rows_name_where_the_images_come_from(root, tmp_path):
    item = collect(GmaiVl(root))[f"{N}/00000000"]
    assert item.detail.startswith(f"{CLOSED} ships annotations only: obtain the LIDC-IDRI images from the original")
    assert (item.modality, item.provenance) == ("ct", [f"{CLOSED}/annotations/GMAI-MM-Caption-1.7M.jsonl"])
    obtained = tmp_path / "obtained"
    path = obtained / sample.NON_OPEN[0]["image"]
    path.parent.mkdir(parents=True)
    PILImage.fromarray(np.full((200, 200), 90, np.uint8)).save(path)
    record = collect(GmaiVl(root, options={"non_opensource_images": str(obtained)}))[f"{N}/00000000"]
    assert isinstance(record, Record) and record.output_images[0].width == 200


def test_instruct_and_percept_are_i2t_on_request(root):
    items = collect(GmaiVl(root, options={"subsets": ["instruct", "percept"]}))
    assert sorted(items) == [f"{NAME}/unsplit/opensource-instruct/00000000",
                             f"{NAME}/unsplit/opensource-instruct/00000001",
                             f"{NAME}/unsplit/opensource-percept/00000000"]
    vqa = items[f"{NAME}/unsplit/opensource-instruct/00000000"]
    assert (vqa.task_family, vqa.sub_task_type, vqa.modality, len(vqa.input_images)) == ("i2t", "medical_vqa",
                                                                                         "chest_xray", 1)
    assert vqa.message[0]["value"] == "<image>\nWhat abnormality is seen?" and len(vqa.message) == 4
    grounding = items[f"{NAME}/unsplit/opensource-percept/00000000"]
    assert grounding.message[1]["value"] == "<ref>liver</ref><box>[[120, 80, 230, 190]]</box>"
    with pytest.raises(SourceError, match="subsets"):
        GmaiVl(root, options={"subsets": ["text"]}).work_units()


def test_text_only_files_are_never_read(root):
    units = GmaiVl(root, options={"subsets": ["caption", "instruct", "percept"]}).work_units()
    assert all("GMAI_Text" not in unit.items[0]["file"] for unit in units)


def test_line_ranges_bound_units_and_change_no_item(root):
    small = GmaiVl(root, options={"items_per_unit": 3})
    units = small.work_units()
    assert [(u.items[0]["first_line"], u.items[0]["lines"]) for u in units] == [(0, 3), (3, 3), (6, 2), (0, 1)]
    assert {k: getattr(v, "reason", None) for k, v in collect(small).items()} == OUTCOMES


@pytest.mark.parametrize("words, found", [
    (["CT", "AMOS_CT"], "ct"), (["MRI", "BraTS"], "mri"), (["X-ray", "MURA"], "other"),
    (["X-ray", "ChestXray-NIHCC"], "chest_xray"), (["fundus photography", "APTOS"], "fundus"), (["PET", "x"], "other")])
def test_modality_from_path_words(words, found):
    assert modality_from_words(words) == found


def test_layout_error_and_split_selection(root, tmp_path):
    assert GmaiVl(root, splits=["train"]).work_units() == []
    with pytest.raises(SourceError, match="GMAI-VL-5.5M"):
        GmaiVl(tmp_path).work_units()
    (root / OPEN / "annotations" / "GMAI-MM-Caption-1.7M.jsonl").write_text(json.dumps({"image": 3}) + "\n")
    assert collect(GmaiVl(root))[f"{C}/00000000"].reason == "malformed_row"


def test_sample_tree_is_deterministic(tmp_path):
    check_sample_tree(sample, tmp_path)
