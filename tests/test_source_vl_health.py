"""VL-Health adapter: exact records and rejections from the sample tree (the HF repo's JSON lists, images in a
sibling PubMedVision download), and each quirk of its card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.samples import vl_health as sample
from sources.samples.common import phantom, rng_for, write_jpeg
from sources.vl_health import VlHealth, origin
from tests.source_checks import check_sample_tree, collect

NAME = "vl_health"
ALIGN, INSTR = "Alignment/comprehension/train_data.json", "Instruct/comprehension/medical_vqa.json"
A, I = f"{NAME}/unsplit/Alignment-comprehension-train_data", f"{NAME}/unsplit/Instruct-comprehension-medical_vqa"
OUTCOMES = {
    f"{A}/pubmedvision_PMC3312345_F2": None, f"{A}/004539375": "general_domain",
    f"{A}/llava558k_001234567": "general_domain", f"{A}/pubmedvision_PMC4400001_F1": "missing_file",
    f"{A}/pubmedvision_PMC5500002_F3": None,
    f"{I}/llava_med_17777777_F3": None, f"{I}/pubmedvision_PMC6600003_F1": None, f"{I}/vqa_rad_0042": "missing_file",
    f"{I}/#3": None, f"{I}/#4": None, f"{I}/slake_0007": "absolute_image_path", f"{I}/pathvqa_0003":
        "conversation_malformed",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids_and_outcomes(root):
    items = collect(VlHealth(root))
    assert {key: getattr(item, "reason", None) for key, item in items.items()} == OUTCOMES
    # neither the pre-aligned weights' JSON nor the generation file is read
    assert all(item.provenance[0] in (ALIGN, INSTR) for item in items.values())


def test_caption_record_exact(root):
    record = collect(VlHealth(root))[f"{A}/pubmedvision_PMC3312345_F2"]
    (image,) = record.input_images
    assert record == Record(
        id=f"{A}/pubmedvision_PMC3312345_F2", source=NAME, split="unsplit", modality="other", task_family="i2t",
        main_task_type="image_understanding", sub_task_type="image_captioning",
        message=[{"from": "human", "value": "<image>\nDescribe the image briefly."},
                 {"from": "gpt", "value": sample.ALIGNMENT[0]["conversations"][1]["value"]}],
        input_images=[image], provenance=[ALIGN], source_text="Describe the image briefly.\n"
        + sample.ALIGNMENT[0]["conversations"][1]["value"],
        meta={"vl_health_id": "pubmedvision_PMC3312345_F2", "origin": "pubmedvision",
              "image_paths": ["images/vlh_ct_liver.jpg"], "modality": None, "turns": 2})
    # the image is PubMedVision's own file, byte for byte (a JPEG passes through)
    assert image.encoded == (root.parent / "PubMedVision/images/vlh_ct_liver.jpg").read_bytes()
    assert image.source_path == "images/vlh_ct_liver.jpg"


def test_token_after_question_multi_turn_and_modality_field(root):
    items = collect(VlHealth(root))
    assert items[f"{A}/pubmedvision_PMC5500002_F3"].message[0]["value"] == "<image>\nWhat does this image show?"
    turns = items[f"{I}/llava_med_17777777_F3"]
    assert (turns.sub_task_type, len(turns.message), turns.meta["origin"]) == ("medical_vqa", 4, "llava_med")
    assert turns.message[2] == {"from": "human", "value": "Is the heart enlarged?"}
    histo = items[f"{I}/pubmedvision_PMC6600003_F1"]
    assert (histo.modality, histo.meta["modality"]) == ("other", "Microscopy Images")


def test_repeated_and_missing_ids_take_the_row_index(root):
    items = collect(VlHealth(root))
    assert items[f"{I}/#3"].meta["vl_health_id"] == "pubmedvision_PMC6600003_F1"  # the second of two rows
    assert items[f"{I}/#4"].meta["vl_health_id"] is None


def test_general_domain_rows(root):
    item = collect(VlHealth(root))[f"{A}/004539375"]
    assert item == Rejection(id=f"{A}/004539375", source=NAME, split="unsplit", reason="general_domain",
                             detail="LLaVA-558k row (id '004539375'): general-domain LAION/CC/SBU photo-caption pair, "
                                    "not medical", modality="other", task_family="i2t", provenance=[ALIGN],
                             main_task_type="image_understanding", sub_task_type="image_captioning")
    assert origin({"id": "12", "image": "00453/004539375.jpg"}) == "llava_558k"  # the LLaVA-Pretrain image layout
    assert origin({"id": "pmc_1", "image": "images/pmc_1.jpg"}) == "unknown"
    # the option replaces the digit rule: here only ids starting "gen_" are general
    pattern = collect(VlHealth(root, options={"general_id_pattern": "^gen_"}))
    assert pattern[f"{A}/004539375"].reason == "missing_file"  # now read, and its photo is not there
    with pytest.raises(SourceError, match="general_id_pattern"):
        collect(VlHealth(root, options={"general_id_pattern": "("}))


def test_missing_image_says_where_images_come_from_and_image_roots_finds_it(root, tmp_path):
    item = collect(VlHealth(root))[f"{I}/vqa_rad_0042"]
    assert item.detail == ("synpic42202.jpg: not under ./, PubMedVision/; VL-Health ships no images: get them from "
                           "the originating dataset (vqa_rad) and name its folder in the option image_roots")
    write_jpeg(tmp_path / "vqa_rad_images" / "synpic42202.jpg", phantom(rng_for("vl-test"), 200, 200))
    found = collect(VlHealth(root, options={"image_roots": [str(tmp_path / "vqa_rad_images")]}))[f"{I}/vqa_rad_0042"]
    assert isinstance(found, Record) and found.meta["origin"] == "vqa_rad"
    assert found.provenance == [INSTR]  # an image outside the dataset folder is not provenance
    relative = collect(VlHealth(root, options={"image_roots": ["../vqa_rad_images"]}))[f"{I}/vqa_rad_0042"]
    assert isinstance(relative, Record)
    with pytest.raises(SourceError, match="image_roots"):
        collect(VlHealth(root, options={"image_roots": ["nowhere"]}))


def test_images_inside_the_root_are_provenance(root):
    write_jpeg(root / "synpic42202.jpg", phantom(rng_for("vl-inside"), 200, 200))
    assert collect(VlHealth(root))[f"{I}/vqa_rad_0042"].provenance == [INSTR, "synpic42202.jpg"]


def test_absolute_path_and_file_not_a_list(root):
    assert collect(VlHealth(root))[f"{I}/slake_0007"].detail.startswith("keep the release's relative image paths")
    (root / "Instruct" / "extra.json").write_text(json.dumps({"not": "a list"}), encoding="utf-8")
    items = collect(VlHealth(root))
    assert items[f"{NAME}/unsplit/Instruct-extra"].reason == "malformed_json"
    assert len(items) == len(OUTCOMES) + 1


def test_split_selection_and_layout_error(root, tmp_path):
    assert VlHealth(root, splits=["train"]).work_units() == []
    with pytest.raises(SourceError, match="VL-Health"):
        VlHealth(tmp_path / "empty").work_units()


def test_sample_tree_is_deterministic(tmp_path):
    check_sample_tree(sample, tmp_path)


def test_parquet_rows_with_embedded_images(root):
    """The HF header says "Formats: parquet" (no Parquet file seen): rows in the LLaVA shape with `datasets` Image
    cells are read too, keyed by row number."""
    import io

    import pyarrow as pa
    from PIL import Image as PILImage

    from sources.samples.hub import IMAGE_TYPE, image_cell, parquet_bytes

    buffer = io.BytesIO()
    PILImage.fromarray(phantom(rng_for("vl-parquet"), 200, 200)).save(buffer, format="PNG")
    turns = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
    schema = pa.schema([("id", pa.string()), ("image", IMAGE_TYPE), ("conversations", turns)])
    rows = [{"id": "pubmedvision_x", "image": image_cell(buffer.getvalue(), "x.png"),
             "conversations": [{"from": "human", "value": "<image>\nWhat is shown?"},
                               {"from": "gpt", "value": "An axial CT slice of the chest."}]},
            {"id": "pubmedvision_y", "image": None,
             "conversations": [{"from": "human", "value": "<image>\nAnd here?"}, {"from": "gpt", "value": "Nothing."}]},
            {"id": "004539375", "image": image_cell(buffer.getvalue(), "00453/004539375.jpg"),
             "conversations": [{"from": "human", "value": "<image>\nSummarise."}, {"from": "gpt", "value": "a dog"}]}]
    (root / "Instruct" / "comprehension" / "train-00000-of-00001.parquet").write_bytes(parquet_bytes(rows, schema))
    items = collect(VlHealth(root))
    prefix = f"{NAME}/unsplit/Instruct-comprehension-train-00000-of-00001"
    record = items[f"{prefix}/r0000000"]
    assert isinstance(record, Record) and record.input_images[0].width == 200
    assert record.message == [{"from": "human", "value": "<image>\nWhat is shown?"},
                              {"from": "gpt", "value": "An axial CT slice of the chest."}]
    assert (record.provenance, record.meta["image_paths"]) == (["Instruct/comprehension/train-00000-of-00001.parquet"],
                                                               ["x.png"])
    assert items[f"{prefix}/r0000001"].reason == "malformed_row"
    assert items[f"{prefix}/r0000002"].reason == "general_domain"


def test_images_added_to_an_outside_image_root_change_the_units_inputs(root, tmp_path):
    from pipeline.engine.inputs import StatCache, unit_fingerprint

    (tmp_path / "rad" / "images").mkdir(parents=True)
    adapter = VlHealth(root, options={"image_roots": [str(tmp_path / "rad")]})
    units = adapter.work_units()
    before = [unit_fingerprint(adapter, unit, StatCache(root)) for unit in units]
    write_jpeg(tmp_path / "rad" / "images" / "late.jpg", phantom(rng_for("vl-late"), 200, 200))
    assert all(a != b for a, b in zip(before, [unit_fingerprint(adapter, u, StatCache(root)) for u in units]))
