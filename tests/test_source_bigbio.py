"""BigBio PubMedQA adapter: exact CoT records and rejections from the sample tree (bigbio/pubmed_qa's zips), the
Hub's Parquet conversion, and each quirk of its card."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.bigbio import Bigbio
from sources.samples import bigbio as sample
from tests.source_checks import check_sample_tree, collect

NAME = "bigbio"
OUTCOMES = {
    f"{NAME}/train/pqaa-25429730": None, f"{NAME}/train/pqaa-25433161": None,
    f"{NAME}/train/pqaa-25440001": "answer_invalid", f"{NAME}/validate/pqaa-25450002": "rationale_empty",
    f"{NAME}/train/pqal-21645374": None, f"{NAME}/validate/pqal-16418930": None, f"{NAME}/test/pqal-12377809": None,
    f"{NAME}/train/pqau-24160001": None, f"{NAME}/train/pqau-24160002": "answer_missing",
    f"{NAME}/train/pqau-24160003": "malformed_row",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_ids_splits_and_outcomes(root):
    items = collect(Bigbio(root))
    assert {key: getattr(item, "reason", None) for key, item in items.items()} == OUTCOMES


def test_cot_record_exact(root):
    record = collect(Bigbio(root))[f"{NAME}/train/pqaa-25429730"]
    entry = sample.PQAA_TRAIN["25429730"]
    assert record == Record(
        id=f"{NAME}/train/pqaa-25429730", source=NAME, split="train", modality="other", task_family="text",
        main_task_type="text_understanding", sub_task_type="medical_qa_cot",
        message=[{"from": "human", "value": f"Context:\nMETHODS: {entry['CONTEXTS'][0]}\nRESULTS: "
                                            f"{entry['CONTEXTS'][1]}\n\nQuestion: {entry['QUESTION']}"},
                 {"from": "gpt", "value": f"<think>\n{entry['LONG_ANSWER']}\n</think>\nAnswer: yes"}],
        provenance=["pqaa.zip"],
        source_text="\n".join([entry["QUESTION"], *entry["CONTEXTS"], entry["LONG_ANSWER"], "yes"]),
        meta={"language": "en", "pmid": "25429730", "subset": "pqaa", "final_decision": "yes", "year": "2015",
              "meshes": ["Humans"], "cot": "abstract_conclusion"})


def test_labels_shorter_than_contexts_are_dropped(root):
    record = collect(Bigbio(root))[f"{NAME}/train/pqaa-25433161"]
    entry = sample.PQAA_TRAIN["25433161"]
    assert record.message[0]["value"].startswith(f"Context:\n{entry['CONTEXTS'][0]}\n{entry['CONTEXTS'][1]}\n")


def test_unlabelled_rows_plain_qa_or_rejected(root):
    qa = collect(Bigbio(root))[f"{NAME}/train/pqau-24160001"]
    assert (qa.sub_task_type, qa.message[1]["value"], qa.meta["cot"]) == (
        "medical_qa", sample.PQAU["24160001"]["LONG_ANSWER"], None)
    rejected = collect(Bigbio(root, options={"unlabelled": "reject"}))[f"{NAME}/train/pqau-24160001"]
    assert rejected == Rejection(
        id=f"{NAME}/train/pqau-24160001", source=NAME, split="train", reason="label_missing",
        detail="no final_decision (PQA-U); the option unlabelled: qa keeps it as plain QA with the conclusion as "
               "answer", task_family="text", provenance=["pqau.zip"], main_task_type="text_understanding",
        sub_task_type="medical_qa_cot")
    with pytest.raises(SourceError, match="unlabelled"):
        Bigbio(root, options={"unlabelled": "maybe"}).work_units()


def test_test_set_only_when_asked_and_fold_option(root):
    train = Bigbio(root, splits=["train"])
    assert {unit.split for unit in train.work_units()} == {"train"}
    assert f"{NAME}/test/pqal-12377809" not in collect(train)
    fold1 = collect(Bigbio(root, options={"subsets": ["pqal"], "pqal_fold": 1}))
    # fold 1's train set is fold 0's dev set and the reverse: the same 2 non-test PMIDs, other splits
    assert {key: item.split for key, item in fold1.items()} == {
        f"{NAME}/train/pqal-16418930": "train", f"{NAME}/validate/pqal-21645374": "validate",
        f"{NAME}/test/pqal-12377809": "test"}
    with pytest.raises(SourceError, match="pqal_fold"):
        Bigbio(root, options={"pqal_fold": 10}).work_units()


def test_unpacked_files_are_read_like_the_members(root):
    with zipfile.ZipFile(root / "pqaa.zip") as archive:
        archive.extractall(root)
    (root / "pqaa.zip").unlink()
    items = collect(Bigbio(root, options={"subsets": ["pqaa"]}))
    assert items[f"{NAME}/train/pqaa-25429730"].provenance == ["pqaa_train_set.json"]
    assert len(items) == 4


def test_parquet_conversion_gives_the_same_texts(tmp_path):
    zipped = [item for item in collect(Bigbio(sample.write(tmp_path / "zips"))).values()]
    parquet_root = sample.write_parquet(tmp_path / "parquet")
    converted = collect(Bigbio(parquet_root))
    # no PMID in the Parquet rows: ids are the row numbers, in the JSON's order
    assert f"{NAME}/train/pqaa-row0000000" in converted and len(converted) == len(zipped)
    by_split = {}
    for item in zipped:
        by_split.setdefault((item.split, item.id.split("/")[2].split("-")[0]), []).append(item)
    for (split, subset), items in by_split.items():
        for row, original in enumerate(items):
            twin = converted[f"{NAME}/{split}/{subset}-row{row:07d}"]
            assert type(twin) is type(original) and getattr(twin, "reason", None) == getattr(original, "reason", None)
            if isinstance(original, Record):
                assert twin.message == original.message and twin.meta["pmid"] is None
                assert twin.provenance[0].endswith("/0000.parquet")


def test_layout_error(tmp_path):
    with pytest.raises(SourceError, match="bigbio/pubmed_qa"):
        Bigbio(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    check_sample_tree(sample, tmp_path)
