"""PubMedQA adapter: exact text-only records (context + question -> conclusion + decision), splits, rejections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.pubmedqa import Pubmedqa
from sources.samples import pubmedqa as sample
from tests.source_checks import collect

PQAL = "data/ori_pqal.json"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids_and_splits(root):
    items = collect(Pubmedqa(root))
    assert {key: type(value).__name__ for key, value in items.items()} == {
        "pubmedqa/test/pqal-21645374": "Record", "pubmedqa/train/pqal-16418930": "Record",
        "pubmedqa/train/pqal-10808977": "Rejection", "pubmedqa/train/pqal-9488747": "Rejection",
        "pubmedqa/train/pqal-17208539": "Rejection", "pubmedqa/train/pqaa-25429730": "Record",
        "pubmedqa/train/pqau-14499029": "Record", "pubmedqa/train/pqau-14499030": "Rejection",
    }


def test_labelled_record_exact(root):
    assert collect(Pubmedqa(root))["pubmedqa/test/pqal-21645374"] == Record(
        id="pubmedqa/test/pqal-21645374", source="pubmedqa", split="test", modality="other", task_family="text",
        main_task_type="text_understanding", sub_task_type="medical_qa",
        message=[
            {"from": "human", "value": "Context:\nBACKGROUND: Programmed cell death shapes the perforations of lace "
                                       "plant leaves.\nRESULTS: Mitochondrial dynamics were followed with live-cell "
                                       "imaging across cell stages.\n\nQuestion: Do mitochondria play a role in "
                                       "remodelling lace plant leaves during programmed cell death?"},
            {"from": "gpt", "value": "Mitochondria appear to play an early and critical role in developmental cell "
                                     "death.\nAnswer: yes"},
        ],
        provenance=[PQAL],
        # the dataset's own text (question, contexts, long answer, decision): no "Context:" / "Answer:" wording
        source_text="Do mitochondria play a role in remodelling lace plant leaves during programmed cell death?\n"
                    "Programmed cell death shapes the perforations of lace plant leaves.\nMitochondrial dynamics "
                    "were followed with live-cell imaging across cell stages.\nMitochondria appear to play an early "
                    "and critical role in developmental cell death.\nyes",
        meta={"language": "en", "pmid": "21645374", "subset": "pqal", "final_decision": "yes", "year": "2011",
              "meshes": ["Humans", "Male"]},
    )


def test_labels_shorter_than_contexts_are_dropped(root):
    record = collect(Pubmedqa(root))["pubmedqa/train/pqal-16418930"]
    assert record.message[0]["value"] == ("Context:\nVisual acuity depends on the optotypes used.\nDifferences "
                                          "between the charts were small.\n\nQuestion: Landolt C and snellen e "
                                          "acuity: differences in strabismus amblyopia?")
    assert record.message[1]["value"].endswith("\nAnswer: no")


def test_artificial_and_unlabelled(root):
    items = collect(Pubmedqa(root))
    pqaa = items["pubmedqa/train/pqaa-25429730"]
    assert pqaa.provenance == ["data/ori_pqaa.json"] and pqaa.meta["subset"] == "pqaa"
    assert pqaa.message[1]["value"] == "Statin use was associated with lower mortality.\nAnswer: yes"
    pqau = items["pubmedqa/train/pqau-14499029"]
    assert pqau.message[1] == {"from": "gpt", "value": "Early mobilisation was associated with shorter stays."}
    assert pqau.meta["final_decision"] is None


def test_rejections_exact(root):
    items = collect(Pubmedqa(root))

    def rejection(stem, reason, detail="", provenance=PQAL):
        return Rejection(id=f"pubmedqa/train/{stem}", source="pubmedqa", split="train", reason=reason, detail=detail,
                         task_family="text", provenance=[provenance], main_task_type="text_understanding", sub_task_type="medical_qa")

    assert items["pubmedqa/train/pqal-10808977"] == rejection("pqal-10808977", "answer_invalid",
                                                               "final_decision='probably'")
    assert items["pubmedqa/train/pqal-9488747"] == rejection("pqal-9488747", "malformed_row",
                                                              "missing key 'QUESTION'")
    assert items["pubmedqa/train/pqal-17208539"] == rejection("pqal-17208539", "context_missing")
    assert items["pubmedqa/train/pqau-14499030"] == rejection("pqau-14499030", "answer_missing",
                                                               provenance="data/ori_pqau.json")


def test_without_test_list_pqal_is_unsplit(root):
    (root / "data" / "test_ground_truth.json").unlink()
    items = collect(Pubmedqa(root, options={"subsets": ["pqal"]}))
    assert {item.split for item in items.values()} == {"unsplit"}
    assert "pubmedqa/unsplit/pqal-21645374" in items


def test_split_script_outputs(root):
    (root / "data" / "test_ground_truth.json").unlink()
    (root / "data" / "test_set.json").write_text(json.dumps({"16418930": sample.PQAL["16418930"]}), encoding="utf-8")
    (root / "data" / "pqaa_dev_set.json").write_text(json.dumps({"25429730": {}}), encoding="utf-8")
    items = collect(Pubmedqa(root, splits=["test", "validate"]))
    assert sorted(items) == ["pubmedqa/test/pqal-16418930", "pubmedqa/validate/pqaa-25429730"]


def test_root_at_data_folder(root):
    items = collect(Pubmedqa(root / "data", options={"subsets": ["pqal"]}))
    assert items["pubmedqa/test/pqal-21645374"].provenance == ["ori_pqal.json"]


@pytest.mark.parametrize("splits", [["test"], ["train"]])
def test_split_selection(root, splits):
    source = Pubmedqa(root, splits=splits)
    assert {unit.split for unit in source.work_units()} == set(splits)
    assert {item.split for item in collect(source).values()} == set(splits)


def test_no_files_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="ori_pqal"):
        Pubmedqa(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
