"""BigBio PubMedQA sample tree: `bigbio/pubmed_qa` as `--local-dir bigbio/pubmed_qa` leaves it, with the three
zips holding the member files the loading script names (dicts keyed by PMID).

Quirks in the tree: PQA-A train and dev; PQA-L fold 0 and fold 1 train/dev sets (fold 1 not read) and the test set;
PQA-U without final_decision, one entry without LONG_ANSWER; LABELS shorter than CONTEXTS; a decision outside
yes/no/maybe; a labelled entry without LONG_ANSWER; an entry without QUESTION. `write_parquet` writes the Hub's
Parquet conversion of the same entries (`refs/convert/parquet` layout, no PMID column)."""

from __future__ import annotations

import json
from pathlib import Path

BASE = "bigbio/pubmed_qa"


def _entry(question: str, contexts: list[str], labels: list[str], decision: str | None, long_answer: str | None,
           year: str | None = "2015") -> dict:
    entry = {"QUESTION": question, "CONTEXTS": contexts, "LABELS": labels, "MESHES": ["Humans"], "YEAR": year,
             "reasoning_required_pred": "yes", "reasoning_free_pred": "yes"}
    if decision is not None:
        entry["final_decision"] = decision
    if long_answer is not None:
        entry["LONG_ANSWER"] = long_answer
    return entry


PQAA_TRAIN = {
    "25429730": _entry("Does early mobilisation shorten hospital stay after hip fracture surgery?",
                       ["Patients mobilised within 24 hours were compared with later mobilisation.",
                        "Median stay was 8 versus 11 days."], ["METHODS", "RESULTS"], "yes",
                       "Early mobilisation was associated with a shorter hospital stay."),
    "25433161": _entry("Is serum ferritin a marker of disease activity in adult-onset Still's disease?",
                       ["Ferritin was measured in 40 patients at flare and remission.",
                        "Levels fell with remission in most patients."], ["OBJECTIVE"], "maybe",
                       "Ferritin tracks activity in many, but not all, patients."),
    "25440001": _entry("Does vitamin D supplementation prevent falls?", ["A randomised trial of 500 adults."],
                       ["METHODS"], "perhaps", "The effect was unclear."),
}
PQAA_DEV = {
    "25450002": _entry("Is smoking associated with delayed fracture healing?",
                       ["Healing time was compared between smokers and non-smokers."], ["METHODS"], "yes", None),
}
PQAL_FOLD0_TRAIN = {
    "21645374": _entry("Do mitochondria play a role in remodelling lace plant leaves during programmed cell death?",
                       ["Programmed cell death forms perforations in lace plant leaves.",
                        "Mitochondrial dynamics were followed by live imaging."], ["BACKGROUND", "RESULTS"], "yes",
                       "Mitochondria appear to take part in the cell death that shapes the leaf."),
}
PQAL_FOLD0_DEV = {
    "16418930": _entry("Are complex coronary lesions more frequent in patients with diabetes?",
                       ["Angiograms of 300 patients were reviewed."], ["METHODS"], "no",
                       "Lesion complexity did not differ by diabetes status."),
}
PQAL_FOLD1_TRAIN = dict(PQAL_FOLD0_DEV)
PQAL_TEST = {
    "12377809": _entry("Is anorectal endosonography valuable in dyschesia?",
                       ["Forty patients with dyschesia underwent endosonography."], ["METHODS"], "yes",
                       "Endosonography showed the cause in most patients."),
}
PQAU = {
    "24160001": _entry("Does ambient temperature affect emergency admissions for asthma?",
                       ["Daily admissions were linked to temperature records."], ["METHODS"], None,
                       "Cold days were followed by more admissions.", year=None),
    "24160002": _entry("Is sleep duration linked to obesity in adolescents?", ["A cohort of 2000 adolescents."],
                       ["METHODS"], None, None, year=None),
    "24160003": {"CONTEXTS": ["An entry without its question."], "LABELS": ["METHODS"], "MESHES": []},
}
ZIPS = {
    "pqaa.zip": {"pqaa_train_set.json": PQAA_TRAIN, "pqaa_dev_set.json": PQAA_DEV},
    "pqal.zip": {"pqal_fold0/train_set.json": PQAL_FOLD0_TRAIN, "pqal_fold0/dev_set.json": PQAL_FOLD0_DEV,
                 "pqal_fold1/train_set.json": PQAL_FOLD1_TRAIN, "pqal_fold1/dev_set.json": PQAL_FOLD0_TRAIN,
                 "pqal_test_set.json": PQAL_TEST},
    "pqau.zip": {"ori_pqau.json": PQAU},
}
PARQUET = {  # config/split -> entries
    "pubmed_qa_artificial_source/train": PQAA_TRAIN, "pubmed_qa_artificial_source/validation": PQAA_DEV,
    "pubmed_qa_labeled_fold0_source/train": PQAL_FOLD0_TRAIN,
    "pubmed_qa_labeled_fold0_source/validation": PQAL_FOLD0_DEV,
    "pubmed_qa_labeled_fold0_source/test": PQAL_TEST, "pubmed_qa_unlabeled_source/train": PQAU,
}


def _files() -> dict[str, bytes]:
    from sources.samples.hub import zip_bytes

    files = {"README.md": b"---\nlicense: mit\n---\n# PubMedQA (BigBio sample)\n",
             "pubmed_qa.py": b"# the BigBio loading script (not run by the adapter)\n"}
    for name, members in ZIPS.items():
        files[name] = zip_bytes({member: json.dumps(value, indent=1).encode() for member, value in members.items()})
    return files


def write(root: Path) -> Path:
    base = Path(root) / BASE
    for name, data in _files().items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)
    return base


def parquet_files() -> dict[str, bytes]:
    """The Hub's Parquet conversion (`refs/convert/parquet`): source-schema columns, one row per entry in the
    JSON's order, no PMID column."""
    import pyarrow as pa

    from sources.samples.hub import parquet_bytes

    strings = pa.list_(pa.string())
    schema = pa.schema([("QUESTION", pa.string()), ("CONTEXTS", strings), ("LABELS", strings), ("MESHES", strings),
                        ("YEAR", pa.string()), ("reasoning_required_pred", pa.string()),
                        ("reasoning_free_pred", pa.string()), ("final_decision", pa.string()),
                        ("LONG_ANSWER", pa.string())])
    files = {}
    for folder, entries in PARQUET.items():
        rows = [{name: entry.get(name) for name in schema.names} for entry in entries.values()]
        files[f"{folder}/0000.parquet"] = parquet_bytes(rows, schema)
    return files


def write_parquet(root: Path) -> Path:
    base = Path(root) / BASE
    for name, data in parquet_files().items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)
    return base


HUB_REPO = "bigbio/pubmed_qa"


def write_hub(root: Path) -> Path:
    """`bigbio/pubmed_qa` (main) in a Hub cache: the same files."""
    from sources.samples.hub import write_snapshot

    return write_snapshot(root, HUB_REPO, _files())
