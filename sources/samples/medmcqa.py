"""MedMCQA sample tree: `medmcqa_data/{train,dev,test}.json` as JSON lines with 1-based `cop`, a row with
explanation, one with a null `exp` and null topic, a multi-choice row, a broken line, a row without an id,
and test rows without answers (as the official release ships them)."""

from __future__ import annotations

import json
from pathlib import Path

TRAIN = [
    {"question": "A man with a pulmonary abscess has marked leukocytosis with a shift to the left. "
                 "Which term best describes these findings?",
     "exp": "Very high leukocyte counts resembling leukaemia are called leukemoid reactions.",
     "cop": 1, "opa": "Leukemoid reaction", "opb": "Leukopenia", "opc": "Myeloid metaplasia", "opd": "Neutrophilia",
     "subject_name": "Pathology", "topic_name": "Inflammation", "id": "4e1715fe-0bc3-494e-b6eb-2d4617245aef",
     "choice_type": "single"},
    {"question": "Which of the following is not a branch of the external carotid artery?", "exp": None, "cop": 3,
     "opa": "Facial artery", "opb": "Lingual artery", "opc": "Ophthalmic artery", "opd": "Occipital artery",
     "subject_name": "Anatomy", "topic_name": None, "id": "9b3c0a1e-1111-4c2d-8e5f-000000000002",
     "choice_type": "multi"},
    {"question": "Drug of choice for malignant hyperthermia is", "exp": "  ", "cop": 4, "opa": "Phenytoin",
     "opb": "Diazepam", "opc": "Propofol", "opd": "Dantrolene", "subject_name": "Anaesthesia",
     "topic_name": "Muscle relaxants", "id": "", "choice_type": "single"},
]
DEV = [
    {"question": "Commonest site of carcinoid tumour in the gastrointestinal tract is", "exp": "Ans. is 'd' "
     "i.e., Appendix. The appendix is a frequent site in many series.", "cop": 4, "opa": "Stomach",
     "opb": "Rectum", "opc": "Ileum", "opd": "Appendix", "subject_name": "Surgery", "topic_name": "Small bowel",
     "id": "45258d3d-b974-44dd-a161-c3fccbdadd88", "choice_type": "single"},
]
TEST = [
    {"question": "Which of the following is a live attenuated vaccine?", "opa": "BCG", "opb": "Tetanus toxoid",
     "opc": "Salk polio", "opd": "Hepatitis B", "subject_name": "Social & Preventive Medicine", "topic_name": None,
     "id": "84f328d3-fca4-422d-8fb2-19d55eb31503", "choice_type": "single"},
]


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write(root: Path) -> Path:
    base = Path(root) / "medmcqa_data"
    train = [json.dumps(row) for row in TRAIN]
    _write(base / "train.json", train[:2] + ['{"question": "cut'] + train[2:])
    _write(base / "dev.json", [json.dumps(row) for row in DEV])
    _write(base / "test.json", [json.dumps(row) for row in TEST])
    return base


HUB_REPO = "openlifescienceai/medmcqa"


def write_hub(root: Path) -> Path:
    """The same rows as `openlifescienceai/medmcqa` holds them (the loading script converted to Parquet):
    `cop` 0-based and -1 on test, test `exp` "", dev.json -> validation; the broken JSON line is absent
    (the script could not have parsed it)."""
    import pyarrow as pa

    from sources.samples.hub import parquet_bytes, write_snapshot

    schema = pa.schema([("id", pa.string()), ("question", pa.string()), ("opa", pa.string()), ("opb", pa.string()),
                        ("opc", pa.string()), ("opd", pa.string()), ("cop", pa.int64()), ("choice_type", pa.string()),
                        ("exp", pa.string()), ("subject_name", pa.string()), ("topic_name", pa.string())])
    out = {}
    for split, rows in (("train", TRAIN), ("validation", DEV), ("test", TEST)):
        converted = [{**{key: row.get(key) for key in schema.names},
                      "cop": -1 if split == "test" else int(row["cop"]) - 1,
                      "exp": "" if split == "test" else row.get("exp")} for row in rows]
        out[f"data/{split}-00000-of-00001.parquet"] = parquet_bytes(converted, schema)
    return write_snapshot(root, HUB_REPO, out)
