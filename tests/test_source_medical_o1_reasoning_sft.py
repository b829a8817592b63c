"""medical-o1-reasoning-SFT adapter: exact DCOT records and rejections from the sample tree, configs, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.medical_o1_reasoning_sft import MedicalO1ReasoningSft
from sources.samples import medical_o1_reasoning_sft as sample
from tests.source_checks import collect

NAME = "medical_o1_reasoning_sft"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids_and_outcomes(root):
    items = collect(MedicalO1ReasoningSft(root))
    assert {key: (type(v).__name__, getattr(v, "reason", None)) for key, v in items.items()} == {
        f"{NAME}/train/en-000000": ("Record", None), f"{NAME}/train/en-000001": ("Record", None),
        f"{NAME}/train/en-000002": ("Rejection", "rationale_empty"),
        f"{NAME}/train/en-000003": ("Rejection", "answer_missing"),
        f"{NAME}/train/en-000004": ("Rejection", "schema"), f"{NAME}/train/en-000005": ("Rejection", "schema"),
    }


def test_record_exact(root):
    record = collect(MedicalO1ReasoningSft(root))[f"{NAME}/train/en-000000"]
    row = sample.EN[0]
    assert record == Record(
        id=f"{NAME}/train/en-000000", source=NAME, split="train", modality="other", task_family="text",
        main_task_type="text_understanding", sub_task_type="medical_qa_cot",
        message=[{"from": "human", "value": row["Question"]},
                 {"from": "gpt", "value": "<think>\nAlright, the haemoglobin is very low and the reticulocytes are "
                                          "low too, so the marrow is not responding.\n\nA febrile illness just before "
                                          "points to a virus that stops red cell production.\n</think>\n"
                                          + row["Response"]}],
        provenance=["medical_o1_sft.json"], meta={"language": "en", "config": "en", "cot": "distilled"},
        source_text="\n".join([row["Question"], "Alright, the haemoglobin is very low and the reticulocytes are low "
                               "too, so the marrow is not responding.\n\nA febrile illness just before points to a "
                               "virus that stops red cell production.", row["Response"]]))
    unicode = collect(MedicalO1ReasoningSft(root))[f"{NAME}/train/en-000001"]
    assert "—" in unicode.message[0]["value"] and "15°" in unicode.message[1]["value"]


def test_rejections_exact(root):
    items = collect(MedicalO1ReasoningSft(root))
    assert items[f"{NAME}/train/en-000004"] == Rejection(
        id=f"{NAME}/train/en-000004", source=NAME, split="train", reason="schema",
        detail="expected keys ['Question', 'Complex_CoT', 'Response'], found ['complex_cot', 'question', 'response']",
        task_family="text", main_task_type="text_understanding", sub_task_type="medical_qa_cot",
        provenance=["medical_o1_sft.json"])
    assert items[f"{NAME}/train/en-000005"].detail.endswith("found str")


def test_configs(root):
    zh = collect(MedicalO1ReasoningSft(root, options={"config": "zh"}))
    assert list(zh) == [f"{NAME}/train/zh-000000"]
    assert zh[f"{NAME}/train/zh-000000"].meta["language"] == "zh"
    mix = collect(MedicalO1ReasoningSft(root, options={"config": "en_mix"}))
    assert len(mix) == 2 and all(r.provenance == ["medical_o1_sft_mix.json"] for r in mix.values())
    with pytest.raises(SourceError, match="config must be one of"):
        MedicalO1ReasoningSft(root, options={"config": "fr"}).work_units()
    assert MedicalO1ReasoningSft(root, splits=["test"]).work_units() == []


def test_json_lines_file_is_a_clear_error(root):
    (root / "medical_o1_sft.json").write_text('{"Question": "a"}\n{"Question": "b"}\n', encoding="utf-8")
    with pytest.raises(SourceError, match="not JSON lines"):
        MedicalO1ReasoningSft(root).work_units()
    with pytest.raises(SourceError, match="no medical_o1_sft.json"):
        MedicalO1ReasoningSft(root / "README.md").work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files and all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
