"""PubMedQA sample tree: a `pubmedqa/` clone with `data/ori_pqal.json` (a test PMID, a train PMID with
LABELS shorter than CONTEXTS, an invalid decision, an entry without QUESTION, one without CONTEXTS),
`data/test_ground_truth.json`, a short PQA-A file and a PQA-U file (no final_decision; one entry with
no LONG_ANSWER). Entries are invented, in the real key order."""

from __future__ import annotations

from pathlib import Path

from sources.samples.common import write_json


def _entry(question, contexts, labels, decision, long_answer, year="2011", preds=True):
    entry = {"QUESTION": question, "CONTEXTS": contexts, "LABELS": labels, "MESHES": ["Humans", "Male"],
             "YEAR": year}
    if preds:
        entry.update({"reasoning_required_pred": decision, "reasoning_free_pred": decision})
    if decision is not None:
        entry["final_decision"] = decision
    if long_answer is not None:
        entry["LONG_ANSWER"] = long_answer
    return entry


PQAL = {
    "21645374": _entry("Do mitochondria play a role in remodelling lace plant leaves during programmed cell death?",
                       ["Programmed cell death shapes the perforations of lace plant leaves.",
                        "Mitochondrial dynamics were followed with live-cell imaging across cell stages."],
                       ["BACKGROUND", "RESULTS"], "yes",
                       "Mitochondria appear to play an early and critical role in developmental cell death."),
    "16418930": _entry("Landolt C and snellen e acuity: differences in strabismus amblyopia?",
                       ["Visual acuity depends on the optotypes used.", "Differences between the charts were small."],
                       ["BACKGROUND"], "no", "The charts gave only a slight overestimation with the Snellen E.",
                       year="2006"),
    "10808977": _entry("Can tailored interventions increase mammography use?", ["A randomized field trial."],
                       ["DESIGN"], "probably", "Telephone counselling worked best."),
    "9488747": {"CONTEXTS": ["Infants became pale in the bath."], "final_decision": "yes"},
    "17208539": _entry("Are transanal pull-through results equal to transabdominal ones?", [], [], "no",
                       "Continence was better with the abdominal approach."),
}
TEST_GROUND_TRUTH = {"21645374": "yes", "12377809": "yes"}
PQAA = {
    "25429730": _entry("Is statin use associated with lower mortality after sepsis?",
                       ["Retrospective cohort of adults admitted with sepsis."], ["METHODS"], "yes",
                       "Statin use was associated with lower mortality.", year="2014", preds=False),
}
PQAU = {
    "14499029": _entry("Does early mobilisation shorten hospital stay after hip fracture surgery?",
                       ["Patients were mobilised within 24 hours.", "Length of stay was compared."],
                       ["METHODS", "RESULTS"], None, "Early mobilisation was associated with shorter stays.",
                       preds=False),
    "14499030": _entry("Is vitamin D status related to falls?", ["Serum levels were measured."], ["METHODS"], None,
                       None, preds=False),
}


def write(root: Path) -> Path:
    base = Path(root) / "pubmedqa"
    write_json(base / "data" / "ori_pqal.json", PQAL)
    write_json(base / "data" / "test_ground_truth.json", TEST_GROUND_TRUTH)
    write_json(base / "data" / "ori_pqaa.json", PQAA)
    write_json(base / "data" / "ori_pqau.json", PQAU)
    (base / "preprocess").mkdir(parents=True, exist_ok=True)
    (base / "preprocess" / "split_dataset.py").write_text("# official split script (not run here)\n", encoding="utf-8")
    (base / "README.md").write_text("# PubMedQA\n", encoding="utf-8")
    return base


HUB_REPO = "qiaojin/PubMedQA"


def write_hub(root: Path) -> Path:
    """The same entries as `qiaojin/PubMedQA` holds them (pubmed_qa.py converted to Parquet): one file per
    config, split `train` only, pubid = the PMID as an int, CONTEXTS/LABELS/MESHES in the `context` struct,
    YEAR dropped, no final_decision column in pqa_unlabeled; an entry without QUESTION could not be built and
    is absent; no test PMID list."""
    import pyarrow as pa

    from sources.samples.hub import parquet_bytes, write_snapshot

    out = {}
    for config, entries, labelled in (("pqa_labeled", PQAL, True), ("pqa_artificial", PQAA, True),
                                      ("pqa_unlabeled", PQAU, False)):
        context = pa.struct([("contexts", pa.list_(pa.string())), ("labels", pa.list_(pa.string())),
                             ("meshes", pa.list_(pa.string()))])
        fields = [("pubid", pa.int32()), ("question", pa.string()), ("context", context), ("long_answer", pa.string())]
        schema = pa.schema(fields + ([("final_decision", pa.string())] if labelled else []))
        rows = []
        for pmid, entry in entries.items():
            if "QUESTION" not in entry:
                continue
            row = {"pubid": int(pmid), "question": entry["QUESTION"], "long_answer": entry.get("LONG_ANSWER"),
                   "context": {"contexts": entry["CONTEXTS"], "labels": entry["LABELS"], "meshes": entry["MESHES"]}}
            if labelled:
                row["final_decision"] = entry.get("final_decision")
            rows.append(row)
        out[f"{config}/train-00000-of-00001.parquet"] = parquet_bytes(rows, schema)
    return write_snapshot(root, HUB_REPO, out)
