"""ICG-CXR adapter: exact interleaved records (prior + prompt -> follow-up image + interpretation), rejections."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Rejection
from sources.base import SourceError
from sources.icg_cxr import IcgCxr
from sources.samples import icg_cxr as sample
from tests.source_checks import collect

CHEX = "chexpertplus/pa/1/train/p00023/i01s0001-i04s0002"
MIMIC = "mimic_cxr/pa/1/p10/p10000032/i01s50414267-i02s53189527"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def _paths(folder: str) -> list[str]:
    name = folder.rsplit("/", 1)[1]
    return [f"{folder}/{name}.json", f"{folder}/{name}-ref-reg.png", f"{folder}/{name}-flu-reg.png"]


def test_ids(root):
    assert sorted(collect(IcgCxr(root))) == sorted([
        "icg_cxr/train/chexpertplus/p00023/i01s0001-i04s0002", "icg_cxr/train/chexpertplus/p00025/i02s0003-i03s0004",
        "icg_cxr/unsplit/mimic_cxr/p10000032/i01s50414267-i02s53189527",
        "icg_cxr/unsplit/mimic_cxr/p10000980/i03s51967283-i04s54935705",
        "icg_cxr/unsplit/mimic_cxr/p10001122/i01s50000001-i02s50000002",
        "icg_cxr/unsplit/mimic_cxr/p11000011/i01s52000001-i02s52000002"])


@pytest.mark.parametrize("folder, record_id, instruction, response, meta", [
    (CHEX, "icg_cxr/train/chexpertplus/p00023/i01s0001-i04s0002",
     "Given this chest X-ray and the following disease progression, generate the follow-up chest X-ray and describe "
     "the radiological changes. Progression: Pleural effusion worsens on the right.",
     "Increased right pleural effusion. Unchanged cardiomediastinal silhouette.",
     {"branch": "chexpertplus", "patient": "p00023", "prior_study": "0001", "follow_up_study": "0002",
      "prior_order": 1, "follow_up_order": 4, "output_order": "image_then_text",
      "condition": "Pleural effusion worsens on the right.",
      "explanation": "Increased right pleural effusion. Unchanged cardiomediastinal silhouette."}),
    (MIMIC, "icg_cxr/unsplit/mimic_cxr/p10000032/i01s50414267-i02s53189527",
     "Given this chest X-ray and the following disease progression, generate the follow-up chest X-ray and describe "
     "the radiological changes. Progression: New left lower lobe consolidation develops.",
     "New consolidation in the left lower lobe. No pneumothorax.",
     {"branch": "mimic_cxr", "patient": "p10000032", "prior_study": "50414267", "follow_up_study": "53189527",
      "prior_order": 1, "follow_up_order": 2, "output_order": "image_then_text",
      "condition": "New left lower lobe consolidation develops.",
      "explanation": "New consolidation in the left lower lobe. No pneumothorax."}),
])
def test_records_exact(root, folder, record_id, instruction, response, meta):
    record = collect(IcgCxr(root))[record_id]
    paths = _paths(folder)
    assert (record.source, record.split, record.modality, record.task_family) == (
        "icg_cxr", record_id.split("/")[1], "chest_xray", "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("counterfactual_generation", "disease_progression")
    assert record.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": response}]
    assert record.provenance == paths and record.meta == meta
    (prior,), (follow_up,) = record.input_images, record.output_images
    assert (prior.source_path, follow_up.source_path) == (paths[1], paths[2])
    assert (prior.width, prior.height, prior.format) == (256, 256, "png") and prior.pixel_hash != follow_up.pixel_hash


@pytest.mark.parametrize("folder, split, reason, detail", [
    ("chexpertplus/pa/1/train/p00025/i02s0003-i03s0004", "train", "response_empty", ""),
    ("mimic_cxr/pa/1/p10/p10000980/i03s51967283-i04s54935705", "unsplit", "missing_file",
     "mimic_cxr/pa/1/p10/p10000980/i03s51967283-i04s54935705/i03s51967283-i04s54935705-flu-reg.png"),
    ("mimic_cxr/pa/1/p10/p10001122/i01s50000001-i02s50000002", "unsplit", "malformed_row",
     "needs keys 'progression-description' and 'changes-of-findings'"),
    ("mimic_cxr/pa/1/p11/p11000011/i01s52000001-i02s52000002", "unsplit", "pair_size_mismatch",
     "prior 256x256 vs follow-up 224x224"),
])
def test_rejections_exact(root, folder, split, reason, detail):
    parts = folder.split("/")
    record_id = f"icg_cxr/{split}/{parts[0]}/{parts[-2]}/{parts[-1]}"
    assert collect(IcgCxr(root))[record_id] == Rejection(
        id=record_id, source="icg_cxr", split=split, reason=reason, detail=detail, modality="chest_xray",
        task_family="interleaved", provenance=_paths(folder), main_task_type="counterfactual_generation",
        sub_task_type="disease_progression")


def test_broken_json_and_empty_prompt(root):
    (root / CHEX / "i01s0001-i04s0002.json").write_text("{not json", encoding="utf-8")
    name = MIMIC.rsplit("/", 1)[1]
    (root / MIMIC / f"{name}.json").write_text(
        '{"progression-description": "  ", "changes-of-findings": "x"}', encoding="utf-8")
    items = collect(IcgCxr(root))
    assert items["icg_cxr/train/chexpertplus/p00023/i01s0001-i04s0002"].reason == "malformed_json"
    assert items[f"icg_cxr/unsplit/mimic_cxr/p10000032/{name}"].reason == "instruction_empty"


@pytest.mark.parametrize("splits", [["train"], ["unsplit"]])
def test_split_selection(root, splits):
    source = IcgCxr(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in collect(source).values()} == set(splits)


def test_no_pairs_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="icg-cxr-v1"):
        IcgCxr(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
