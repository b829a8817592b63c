"""The five task builders on records from the sample trees: texts from the libraries, reproducible
construction, and pixel content (same slice position, documented degradation, mask = source label)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from pipeline.config import RecipeError, load_recipe, parse_recipe
from manifests.records import Record
from pipeline.tasks.settings import TASKS, TaskSettings, parse_tasks
from pipeline.tasks.registry import BUILDERS
from pipeline.stages.task_builders import TaskBuildersStage
from pipeline.tasks.leakage import subject_of
from pipeline.tasks.super_resolution import degrade
from pipeline.tasks.templates import load_library
from sources.io.image import load_pixels
from sources.samples import write_sample_tree
from sources.samples.brats import MARKER_COL0, MARKER_ROWS, MARKER_SIZE, MARKER_STEP

NAMES = ["brats", "ixi", "bci", "icg_cxr", "drive", "samed2d"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict[str, Path]:
    return write_sample_tree(tmp_path_factory.mktemp("sources"), NAMES)


def records(root: Path, name: str, **options) -> dict[str, Record]:
    from sources import get_source

    source = get_source(name)(root, options)
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            if isinstance(item, Record):
                item.status = "kept"  # as the coarse decision leaves them
                out[item.id] = item
    return out


def built(items: dict[str, Record], settings: TaskSettings | None = None) -> dict[str, Record]:
    stage = TaskBuildersStage(settings or TaskSettings(enabled=True))
    items = copy.deepcopy(items)
    for record in items.values():
        stage.process(record)
    return items


def test_every_task_has_a_library_with_many_phrasings():
    assert set(BUILDERS) == set(TASKS)
    for task in TASKS:
        library = load_library(task, 1)
        assert len(library.instructions) >= 6 and len(library.responses) >= 4


def test_cross_modal_same_slice_position_and_rendered_texts(tree):
    source = records(tree["brats"], "brats", pairs=[["t2w", "t2f"]])
    out = built(source)
    assert out
    for record in out.values():
        build = record.meta["task_build"]
        k = record.input_images[0].slice_index
        assert build["params"]["slice_index"] == k == record.output_images[0].slice_index
        assert build["params"]["pair"] == ["t2w", "t2f"]
        # the sample writer drew the slice index into every slice: both images come from slice k
        for image in (record.input_images[0], record.output_images[0]):
            band = load_pixels(image)[MARKER_ROWS: MARKER_ROWS + MARKER_SIZE, : MARKER_COL0 + MARKER_STEP * 10]
            assert (int(np.flatnonzero(band.any(axis=0))[0]) - MARKER_COL0) // MARKER_STEP == k
        assert record.message[0]["value"] == "<image>\n" + build["instruction"]
        assert "T2-weighted MRI" in build["instruction"] and "T2-FLAIR" in build["response"] + build["instruction"]
        assert build["template_id"][0].startswith("cross_modal_synthesis_v2/i")
        assert record.meta["subject_id"] == record.meta["case"]


def test_templates_are_seeded_by_record_and_recipe_seed(tree):
    source = records(tree["brats"], "brats", pairs=[["t2w", "t2f"]])
    first, again = built(source), built(source)
    assert {i: r.message for i, r in first.items()} == {i: r.message for i, r in again.items()}
    other = built(source, TaskSettings(enabled=True, seed=7))
    assert {i: r.meta["task_build"]["template_id"] for i, r in first.items()} != {
        i: r.meta["task_build"]["template_id"] for i, r in other.items()}
    assert len({tuple(r.meta["task_build"]["template_id"]) for r in first.values()}) > 1


def test_slice_policy_rejects_with_a_reason(tree):
    source = records(tree["brats"], "brats", pairs=[["t2w", "t2f"]])
    out = built(source, TaskSettings(enabled=True, slice_stride=1000))
    reasons = {(r.input_images[0].slice_index == 0, r.status, r.reason) for r in out.values()}
    assert all(kept == (status == "kept") for kept, status, _ in reasons)
    assert {reason for _, status, reason in reasons if status == "rejected"} <= {"slice_policy"}


@pytest.mark.parametrize("options", [
    {"factor": 4, "method": "bicubic", "blur_sigma": 0.0, "noise_std": 0.0, "upsample": True},
    {"factor": 4, "method": "bicubic", "blur_sigma": 1.0, "noise_std": 0.01, "upsample": True},
    {"factor": 4, "method": "kspace", "blur_sigma": 0.0, "noise_std": 0.02, "upsample": False},
])
def test_super_resolution_input_is_the_documented_degradation(tree, options):
    from pipeline.tasks.settings import DegradationSettings

    source = records(tree["ixi"], "ixi", pairs=[["T2", "PD"]], super_resolution=["T1", "T2"])
    sr = {i: r for i, r in source.items() if r.main_task_type == "super_resolution"}
    assert sorted({r.meta["contrast"] for r in sr.values()}) == ["T1", "T2"]
    out = built(sr, TaskSettings(enabled=True, seed=3, degradation=DegradationSettings(**options)))
    for record_id, record in out.items():
        params = record.meta["task_build"]["params"]
        hr = load_pixels(record.output_images[0])
        assert np.array_equal(hr, load_pixels(source[record_id].output_images[0]))  # the output is untouched
        low = load_pixels(record.input_images[0])
        assert np.array_equal(low, degrade(hr, params))  # rebuilt from the row's parameters alone
        assert low.shape == (hr.shape if options["upsample"] else (hr.shape[0] // 4, hr.shape[1] // 4))
        assert low.dtype == np.uint16 and not np.array_equal(low, hr)
        name = record.meta["sample_name"]
        assert name == f"{record.meta['volume_id']}-{record.meta['contrast']}_{record.output_images[0].slice_index}"
        assert params["sample_name"] == name and record.meta["subject_id"] == record.meta["subject"]
    seeds = {r.meta["task_build"]["params"]["seed"] for r in out.values()}
    assert len(seeds) == len(out)  # one noise seed per record


def test_degradation_blurs_and_downsamples():
    hr = np.zeros((64, 64), dtype=np.uint16)
    hr[::2, :] = 60000  # a line pattern at the Nyquist rate: a 4x degradation must wash it out
    params = {"factor": 4, "method": "bicubic", "blur_sigma": 0.0, "noise_std": 0.0, "upsample": True, "seed": 1}
    low = degrade(hr, params).astype(np.float64)
    assert low[8:-8, 8:-8].std() < 0.1 * hr.std()
    kspace = degrade(hr, {**params, "method": "kspace", "upsample": False})
    assert kspace.shape == (16, 16) and abs(float(kspace.mean()) - float(hr.mean())) < 0.05 * float(hr.mean())


def test_virtual_staining_names_the_her2_level(tree):
    out = built(records(tree["bci"], "bci"))
    assert out
    for record in out.values():
        level = record.meta["her2_level"]
        assert record.status == "kept" and f"{level}" in record.meta["task_build"]["instruction"]
        assert record.meta["task_build"]["params"]["her2_level"] == level
        assert record.id.endswith(f"_{level}")  # BCI's file name carries the level


def test_counterfactual_keeps_explanation_and_order(tree):
    source = records(tree["icg_cxr"], "icg_cxr")
    out = built(source)
    assert out
    for record in out.values():
        build = record.meta["task_build"]
        assert record.meta["explanation"] in record.message[1]["value"]
        condition = record.meta["condition"]
        assert condition in build["instruction"] or condition.rstrip(". ").lower() in build["instruction"]
        assert build["params"]["output_order"] == "image_then_text"
        assert record.output_images[0].pixel_hash == source[record.id].output_images[0].pixel_hash
        assert record.meta["subject_id"] == f"{record.meta['branch']}/{record.meta['patient']}"


def test_segmentation_mask_matches_the_source_label(tree):
    root = tree["drive"]
    out = built(records(root, "drive"))
    assert out
    for record in out.values():
        build = record.meta["task_build"]
        assert build["fields"]["target"] == "blood vessels" and "blood vessels" in build["instruction"]
        mask = load_pixels(record.output_images[0])
        with PILImage.open(root / build["params"]["mask_source"]) as label:
            expected = np.where(np.asarray(label.convert("L")) > 127, 255, 0).astype(np.uint8)
        assert mask.dtype == np.uint8 and np.array_equal(mask, expected)
        fraction = np.count_nonzero(expected) / expected.size
        assert build["params"]["foreground_fraction"] == pytest.approx(fraction, abs=1e-6)


def test_segmentation_class_name_from_the_label_map(tree):
    out = built(records(tree["samed2d"], "samed2d"))
    targets = {r.meta["task_build"]["fields"]["target"] for r in out.values() if r.status == "kept"}
    assert {"liver", "kidney", "edema"} <= targets
    assert all(set(np.unique(load_pixels(r.output_images[0]))) <= {0, 255} for r in out.values())


def test_empty_mask_is_rejected_unless_asked(tree):
    record = copy.deepcopy(next(iter(records(tree["drive"], "drive").values())))
    from sources.io.image import image_from_array

    record.output_images = [image_from_array(np.zeros((record.input_images[0].height, record.input_images[0].width),
                                                      dtype=np.uint8), source_path="none")]
    rejected = built({record.id: record})[record.id]
    assert (rejected.status, rejected.reason) == ("rejected", "mask_empty")
    kept = built({record.id: record}, TaskSettings(enabled=True, keep_empty_masks=True))[record.id]
    assert kept.status == "kept"


def test_rejected_records_are_not_rebuilt_but_get_their_subject(tree):
    record = copy.deepcopy(next(iter(records(tree["brats"], "brats").values())))
    record.status, record.reason = "rejected", "text_too_short"
    message = list(record.message)
    TaskBuildersStage(TaskSettings(enabled=True)).process(record)
    assert record.message == message and "task_build" not in record.meta and record.meta["subject_id"]
    assert subject_of(Record("x", "bci", "train", "histopathology", "interleaved", "virtual_staining", "",
                             [])) is None


def test_recipe_section():
    recipe = load_recipe("stage3")
    assert recipe.tasks.enabled and recipe.tasks.held_out_splits == ["test"]
    assert parse_tasks(None).enabled is False
    for bad in ({"builders": ["nope"]}, {"degradation": {"method": "nearest"}}, {"refine": {"backend": "nope"}},
                {"colour": 1}, {"leakage": "maybe"}):
        with pytest.raises(RecipeError):
            parse_recipe({"name": "x", "tasks": bad})
    off = parse_recipe({"name": "x"})
    on = parse_recipe({"name": "x", "tasks": {"enabled": True}})
    assert off.processing_digest() != on.processing_digest()
    assert on.processing_digest() == parse_recipe({"name": "x", "tasks": {"enabled": True, "leakage": "off"}}
                                                  ).processing_digest()  # a finalisation rule: no re-staging
