"""MedMCQA adapter: exact text-only records (answer + explanation) and rejections from the sample tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.medmcqa import Medmcqa
from sources.samples import medmcqa as sample
from tests.source_checks import collect

FIRST = "medmcqa/train/4e1715fe-0bc3-494e-b6eb-2d4617245aef"
SECOND = "medmcqa/train/9b3c0a1e-1111-4c2d-8e5f-000000000002"
DEV = "medmcqa/validate/45258d3d-b974-44dd-a161-c3fccbdadd88"
TEST = "medmcqa/test/84f328d3-fca4-422d-8fb2-19d55eb31503"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids(root):
    assert sorted(collect(Medmcqa(root))) == sorted(
        [FIRST, SECOND, "medmcqa/train/train.json#2", "medmcqa/train/train.json#3", DEV, TEST])


def test_record_with_explanation_exact(root):
    assert collect(Medmcqa(root))[FIRST] == Record(
        id=FIRST, source="medmcqa", split="train", modality="other", task_family="text",
        main_task_type="text_understanding", sub_task_type="medical_qa",
        message=[
            {"from": "human", "value": "A man with a pulmonary abscess has marked leukocytosis with a shift to the "
                                       "left. Which term best describes these findings?\nA. Leukemoid reaction\n"
                                       "B. Leukopenia\nC. Myeloid metaplasia\nD. Neutrophilia"},
            {"from": "gpt", "value": "A. Leukemoid reaction\nExplanation: Very high leukocyte counts resembling "
                                     "leukaemia are called leukemoid reactions."},
        ],
        provenance=["train.json"],
        source_text="A man with a pulmonary abscess has marked leukocytosis with a shift to the left. Which term best "
                    "describes these findings?\nLeukemoid reaction\nLeukopenia\nMyeloid metaplasia\nNeutrophilia\n"
                    "Leukemoid reaction\nVery high leukocyte counts resembling leukaemia are called leukemoid reactions.",
        meta={"language": "en", "answer_idx": "A", "has_explanation": True, "choice_type": "single",
              "subject": "Pathology", "topic": "Inflammation"},
    )


def test_record_without_explanation_and_dev(root):
    items = collect(Medmcqa(root))
    second = items[SECOND]
    assert second.message[1] == {"from": "gpt", "value": "C. Ophthalmic artery"}
    assert second.meta == {"language": "en", "answer_idx": "C", "has_explanation": False, "choice_type": "multi",
                           "subject": "Anatomy", "topic": None}
    dev = items[DEV]
    assert dev.split == "validate" and dev.provenance == ["dev.json"]
    assert dev.message[1]["value"] == ("D. Appendix\nExplanation: Ans. is 'd' i.e., Appendix. The appendix is a "
                                       "frequent site in many series.")


def test_rejections_exact(root):
    items = collect(Medmcqa(root))
    assert items["medmcqa/train/train.json#2"].reason == "malformed_json"
    assert items["medmcqa/train/train.json#3"] == Rejection(
        id="medmcqa/train/train.json#3", source="medmcqa", split="train", reason="malformed_row",
        detail="missing keys ['id']", task_family="text", provenance=["train.json"], main_task_type="text_understanding", sub_task_type="medical_qa")
    assert items[TEST] == Rejection(id=TEST, source="medmcqa", split="test", reason="answer_missing",
                                    detail="cop=None", task_family="text", provenance=["test.json"], main_task_type="text_understanding", sub_task_type="medical_qa")


def test_zero_based_cop_of_an_hf_export(root):
    row = {**sample.TEST[0], "cop": 0, "exp": None}
    (root / "test.json").write_text(json.dumps(row) + "\n" + json.dumps({**row, "id": "x", "cop": -1}) + "\n",
                                    encoding="utf-8")
    items = collect(Medmcqa(root, options={"cop_base": 0}, splits=["test"]))
    assert items[TEST].message[1]["value"] == "A. BCG"
    assert items["medmcqa/test/x"].reason == "answer_missing"


@pytest.mark.parametrize("splits", [["validate"], ["train", "test"]])
def test_split_selection(root, splits):
    source = Medmcqa(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in collect(source).values()} == set(splits)


def test_no_files_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="train.json"):
        Medmcqa(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
