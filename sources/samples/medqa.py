"""MedQA sample tree: `data_clean/questions/US/{train,dev,test}.jsonl` (5 options), the 4-option variant,
`US_qbank.jsonl`, a Mainland folder that is not read, a broken JSON line, a line without `answer_idx`,
an `answer_idx` that names no option, a blank line, and one vignette longer than 1024 characters."""

from __future__ import annotations

import json
from pathlib import Path

OPTIONS = {"A": "Ampicillin", "B": "Ceftriaxone", "C": "Doxycycline", "D": "Nitrofurantoin", "E": "Trimethoprim"}
TRAIN = [
    {"question": "A 23-year-old pregnant woman at 22 weeks gestation presents with burning upon urination. "
                 "Which of the following is the best treatment for this patient?",
     "answer": "Nitrofurantoin", "options": OPTIONS, "meta_info": "step2&3", "answer_idx": "D"},
    {"question": "A 3-month-old infant has a high-pitched cry and a rash. Which enzyme is deficient?",
     "answer": "Galactocerebrosidase", "options": {"A": "Hexosaminidase A", "B": "Galactocerebrosidase",
                                                   "C": "Arylsulfatase A", "D": "Sphingomyelinase",
                                                   "E": "Glucocerebrosidase"},
     "meta_info": "step1", "answer_idx": "B"},
    {"question": "A 60-year-old man presents with chest pain radiating to the back. " * 20
                 + "What is the most likely diagnosis?",
     "answer": "Aortic dissection", "options": {"A": "Aortic dissection", "B": "Pericarditis", "C": "Pneumothorax",
                                                "D": "Esophageal rupture", "E": "Myocardial infarction"},
     "meta_info": "step2&3", "answer_idx": "A"},
]
DEV = [
    {"question": "Which nerve is injured in a midshaft humerus fracture with wrist drop?", "answer": "Radial nerve",
     "options": {"A": "Axillary nerve", "B": "Median nerve", "C": "Radial nerve", "D": "Ulnar nerve",
                 "E": "Musculocutaneous nerve"}, "meta_info": "step1", "answer_idx": "C"},
    {"question": "Which drug is first line for absence seizures?", "answer": "Ethosuximide",
     "options": {"A": "Ethosuximide", "B": "Phenytoin"}, "meta_info": "step1"},  # no answer_idx
]
TEST = [
    {"question": "Which vitamin deficiency causes Wernicke encephalopathy?", "answer": "Thiamine",
     "options": {"A": "Thiamine", "B": "Niacin", "C": "Folate", "D": "Cobalamin", "E": "Pyridoxine"},
     "meta_info": "step1", "answer_idx": "A"},
    {"question": "Which test confirms the diagnosis of celiac disease?", "answer": "Biopsy",
     "options": {"A": "Serology", "B": "Stool test", "C": "Breath test", "D": "Biopsy"},
     "meta_info": "step2&3", "answer_idx": "F"},  # names no option
]


def _lines(rows: list[dict]) -> list[str]:
    return [json.dumps(row, ensure_ascii=False) for row in rows]


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _four(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        options = {k: v for k, v in row["options"].items() if k != "E"}
        out.append({**row, "options": options, "metamap_phrases": ["phrase"]})
    return out


def write(root: Path) -> Path:
    base = Path(root) / "data_clean"
    us = base / "questions" / "US"
    _write(us / "train.jsonl", _lines(TRAIN[:1]) + ['{"question": "truncated line'] + _lines(TRAIN[1:]))
    _write(us / "dev.jsonl", _lines(DEV) + [""])
    _write(us / "test.jsonl", _lines(TEST))
    _write(us / "US_qbank.jsonl", _lines(TRAIN + DEV[:1] + TEST[:1]))
    four = us / "4_options"
    _write(four / "phrases_no_exclude_train.jsonl", _lines(_four(TRAIN[:2])))
    _write(four / "phrases_no_exclude_dev.jsonl", _lines(_four(DEV[:1])))
    _write(four / "phrases_no_exclude_test.jsonl", _lines(_four(TEST[:1])))
    _write(base / "questions" / "Mainland" / "train.jsonl", ['{"question": "不读", "options": {}, "answer_idx": "A"}'])
    _write(base / "textbooks" / "en" / "Anatomy_Gray.txt", ["Anatomy text."])
    return base


HUB_REPO = "GBaker/MedQA-USMLE-4-options"


def write_hub(root: Path) -> Path:
    """`GBaker/MedQA-USMLE-4-options`: the 4_options train and test files at the repo root, no dev (medqa.md)."""
    from sources.samples.hub import original_files, write_snapshot

    files = original_files(write)
    return write_snapshot(root, HUB_REPO, {f"phrases_no_exclude_{stem}.jsonl":
                                           files[f"questions/US/4_options/phrases_no_exclude_{stem}.jsonl"]
                                           for stem in ("train", "test")})
