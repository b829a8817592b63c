"""InternVL medical adapter: exact records and rejections from the sample tree (the medical JSONL, images unpacked
from the split archive), and each quirk of its card."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.internvl_medical import ANNOTATION, UNPACK, InternvlMedical
from sources.io.image import load_pixels
from sources.samples import internvl_medical as sample
from tests.source_checks import check_sample_tree, collect

NAME = "internvl_medical"
OUTCOMES = {
    f"{NAME}/unsplit/0000000": None, f"{NAME}/unsplit/0000001": None, f"{NAME}/unsplit/0000002": None,
    f"{NAME}/unsplit/0000003": "missing_file", f"{NAME}/unsplit/0000004": "malformed_json",
    f"{NAME}/unsplit/0000005": "conversation_malformed", f"{NAME}/unsplit/0000006": "malformed_row",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids_and_outcomes(root):
    items = collect(InternvlMedical(root))
    assert {key: getattr(item, "reason", None) for key, item in items.items()} == OUTCOMES


def test_record_exact(root):
    record = collect(InternvlMedical(root))[f"{NAME}/unsplit/0000000"]
    (image,) = record.input_images
    path = "Chest-Xray/pneumonia/person1_virus_6.png"
    assert record == Record(
        id=f"{NAME}/unsplit/0000000", source=NAME, split="unsplit", modality="chest_xray", task_family="i2t",
        main_task_type="image_understanding", sub_task_type="medical_vqa",
        message=[{"from": "human", "value": "<image>\nWhat disease does this chest radiograph show?\nA. Normal\n"
                                            "B. Pneumonia"}, {"from": "gpt", "value": "B. Pneumonia"}],
        input_images=[image], provenance=[ANNOTATION, f"images/medical_images/{path}"],
        source_text="What disease does this chest radiograph show?\nA. Normal\nB. Pneumonia\nB. Pneumonia",
        meta={"internvl_id": 0, "image_paths": [path], "turns": 2})
    assert (image.width, image.height, image.format) == (256, 256, "png")


def test_multi_image_row_and_numbered_labels(root):
    record = collect(InternvlMedical(root))[f"{NAME}/unsplit/0000001"]
    assert len(record.input_images) == 2 and record.modality == "fundus"
    assert record.message[0]["value"] == "<image>\n<image>\nWhich eye shows more severe retinopathy?"


def test_path_with_the_archive_top_folder(root):
    record = collect(InternvlMedical(root))[f"{NAME}/unsplit/0000002"]
    assert record.provenance[1] == "images/medical_images/CT/KiTS/case_00012_slice_120.png"
    assert record.meta["image_paths"] == ["medical_images/CT/KiTS/case_00012_slice_120.png"]


def test_missing_image_names_the_folders(root):
    assert collect(InternvlMedical(root))[f"{NAME}/unsplit/0000003"] == Rejection(
        id=f"{NAME}/unsplit/0000003", source=NAME, split="unsplit", reason="missing_file",
        detail="Dermoscopy/ISIC/ISIC_0000000.png: not under images/medical_images/, images/, ./", modality="dermoscopy",
        task_family="i2t", provenance=[ANNOTATION], main_task_type="image_understanding", sub_task_type="medical_vqa")


def test_only_the_split_archive_says_how_to_unpack_it_and_the_command_works(root):
    unpacked = {f"images/medical_images/{p}": (root / "images/medical_images" / p).read_bytes() for p in sample.IMAGES}
    shutil.rmtree(root / "images" / "medical_images")
    for name, data in sample.split_archive(unpacked).items():
        (root / name).write_bytes(data)
    items = collect(InternvlMedical(root))
    waiting = items[f"{NAME}/unsplit/0000000"]
    assert (waiting.reason, waiting.detail) == ("images_not_unpacked", "the images are still in the split archive: "
                                                f"run `{UNPACK}` in the dataset folder")
    assert {getattr(v, "reason", None) for k, v in items.items() if k.endswith(("0", "1", "2", "3"))} == {
        "images_not_unpacked"}
    # the documented command, as a user runs it in the dataset folder
    subprocess.run(UNPACK, shell=True, cwd=root, check=True)
    after = collect(InternvlMedical(root))
    assert {key: getattr(item, "reason", None) for key, item in after.items()} == OUTCOMES
    original = unpacked["images/medical_images/Chest-Xray/pneumonia/person1_virus_6.png"]
    with PILImage.open(io.BytesIO(original)) as picture:
        assert np.array_equal(load_pixels(after[f"{NAME}/unsplit/0000000"].input_images[0]), np.asarray(picture))


def test_images_root_option(root, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.move(root / "images" / "medical_images", moved)
    items = collect(InternvlMedical(root, options={"images_root": str(moved)}))
    assert {key: getattr(item, "reason", None) for key, item in items.items()} == OUTCOMES
    assert items[f"{NAME}/unsplit/0000000"].provenance == [ANNOTATION]  # outside the dataset folder
    with pytest.raises(SourceError, match="images_root"):
        collect(InternvlMedical(root, options={"images_root": "nowhere"}))


def test_the_meta_list_and_other_domains_are_not_read(root):
    units = InternvlMedical(root).work_units()
    assert {unit.items[0]["file"] for unit in units} == {ANNOTATION}
    (root / "train_meta" / "internvl_1_2_finetune_medical.json").write_text("not even JSON")
    assert collect(InternvlMedical(root)).keys() == OUTCOMES.keys()


def test_layout_error_and_split_selection(root, tmp_path):
    assert InternvlMedical(root, splits=["train"]).work_units() == []
    with pytest.raises(SourceError, match="medical_sft_sample500k"):
        InternvlMedical(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    check_sample_tree(sample, tmp_path)
