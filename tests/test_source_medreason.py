"""MedReason adapter: exact DCOT records and rejections from the sample tree in the HF repo's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.medreason import Medreason
from sources.samples import medreason as sample
from tests.source_checks import collect

NAME = "medreason"
FILE = "ours_quality_33000.jsonl"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids_and_outcomes(root):
    items = collect(Medreason(root))
    assert {key: (type(v).__name__, getattr(v, "reason", None)) for key, v in items.items()} == {
        f"{NAME}/train/000000": ("Record", None), f"{NAME}/train/000001": ("Record", None),
        f"{NAME}/train/000002": ("Record", None), f"{NAME}/train/000004": ("Record", None),  # line 3 is blank
        f"{NAME}/train/000005": ("Rejection", "malformed_json"), f"{NAME}/train/000006": ("Rejection", "schema"),
        f"{NAME}/train/000007": ("Record", None),
        f"{NAME}/train/000008": ("Rejection", "benchmark_source"),
        f"{NAME}/train/000009": ("Rejection", "benchmark_source"),
        f"{NAME}/train/000010": ("Rejection", "rationale_empty"),
    }


def test_record_exact(root):
    record = collect(Medreason(root))[f"{NAME}/train/000000"]
    row = sample.ROWS[0]
    assert record == Record(
        id=f"{NAME}/train/000000", source=NAME, split="train", modality="other", task_family="text",
        main_task_type="text_understanding", sub_task_type="medical_qa_cot",
        message=[{"from": "human", "value": row["question"] + "\n" + row["options"]},
                 {"from": "gpt", "value": f"<think>\n{row['reasoning']}\n</think>\nAnti-double-stranded DNA"}],
        provenance=[FILE], source_text="\n".join([row["question"], row["options"], row["reasoning"], row["answer"]]),
        meta={"language": "en", "dataset_name": "medqa", "id_in_dataset": 101, "cot": "distilled"})
    assert "Conclusion:" in record.message[1]["value"].split("</think>")[0]  # the conclusion stays inside


def test_options_answers_and_open_questions(root):
    items = collect(Medreason(root))
    medmcqa = items[f"{NAME}/train/000001"]
    assert medmcqa.message[1]["value"].endswith("</think>\n" + sample.ROWS[1]["answer"])  # ". Explanation:" kept
    assert items[f"{NAME}/train/000002"].message[0]["value"] == sample.ROWS[2]["question"]  # options ""
    assert items[f"{NAME}/train/000004"].meta["dataset_name"] == "huatuo"
    scurvy = items[f"{NAME}/train/000007"]  # options given as a JSON object string
    assert scurvy.message[0]["value"] == "Which vitamin deficiency causes scurvy?\nA. Vitamin A\nB. Vitamin C\n" \
                                         "C. Vitamin D"


def test_rejections_exact(root):
    items = collect(Medreason(root))
    assert items[f"{NAME}/train/000008"] == Rejection(
        id=f"{NAME}/train/000008", source=NAME, split="train", reason="benchmark_source",
        detail="dataset_name MedXpertQA (item 5) is an evaluation set", task_family="text",
        main_task_type="text_understanding", sub_task_type="medical_qa_cot", provenance=[FILE])
    assert items[f"{NAME}/train/000006"].detail == ("expected keys ['question', 'options', 'answer', 'reasoning'], "
                                                    "found ['answer', 'options', 'question']")
    assert items[f"{NAME}/train/000010"].detail.startswith("No reasoning path")
    kept = collect(Medreason(root, options={"drop_datasets": []}))  # a recipe may keep them (not for training)
    assert isinstance(kept[f"{NAME}/train/000008"], Record)


def test_layout_errors_and_splits(root):
    assert Medreason(root, splits=["test"]).work_units() == []
    (root / FILE).rename(root / "medreason.jsonl")  # another name: the one JSON lines file at the root
    assert len(collect(Medreason(root))) == 10
    (root / "extra.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(SourceError, match=f"no {FILE}"):
        Medreason(root).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files and all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
