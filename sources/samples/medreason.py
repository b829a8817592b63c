"""MedReason sample tree: the HF repo's README and `ours_quality_33000.jsonl` (JSON lines, fields as
docs/sources/medreason.md gives them): a medqa row with "Answer Choices:" options, a medmcqa row whose answer
carries ". Explanation:", a pubmedqa row, an open huatuo row (options ""), a row whose options are a JSON object
string, MedXpertQA and LastHumanity rows (evaluation sets), a failed generation ("No reasoning path"), a line
that is not JSON, a row without `reasoning`, a blank line and a trailing newline."""

from __future__ import annotations

import json
from pathlib import Path

REASONING = ("Finding reasoning paths:\n1. {a} -> {b}\n\nReasoning Process:\n{why}\n\nConclusion:\n{end}")
ROWS = [
    {"question": "A 23-year-old woman has fever, joint pain and a malar rash. Which antibody is most specific?",
     "options": "Answer Choices:\nA. Antinuclear antibody\nB. Anti-double-stranded DNA\nC. Anti-histone\n"
                "D. Rheumatoid factor",
     "answer": "Anti-double-stranded DNA",
     "reasoning": REASONING.format(a="systemic lupus erythematosus", b="anti-dsDNA antibody",
                                   why="The picture is lupus; ANA is sensitive, anti-dsDNA is specific.",
                                   end="Anti-double-stranded DNA is the most specific of the choices."),
     "dataset_name": "medqa", "id_in_dataset": 101},
    {"question": "Which nerve supplies the deltoid muscle?",
     "options": "Answer Choices:\nA. Radial nerve\nB. Axillary nerve\nC. Musculocutaneous nerve\nD. Ulnar nerve",
     "answer": "Axillary nerve. Explanation: The axillary nerve (C5, C6) supplies the deltoid and teres minor.",
     "reasoning": REASONING.format(a="deltoid", b="axillary nerve", why="The deltoid is innervated by C5-C6 "
                                   "through the axillary nerve.", end="The axillary nerve."),
     "dataset_name": "medmcqa", "id_in_dataset": "b5c3-17"},
    {"question": "Does metformin reduce cardiovascular events in overweight type 2 diabetes?", "options": "",
     "answer": "The final decision is: yes. Metformin lowered the rate of diabetes-related end points.",
     "reasoning": REASONING.format(a="metformin", b="cardiovascular disease", why="Trials in overweight patients "
                                   "showed fewer macrovascular events.", end="Yes."),
     "dataset_name": "pubmedqa_labeled", "id_in_dataset": 3},
    {"question": "What is the first step in managing a patient with suspected anaphylaxis?", "options": "",
     "answer": "Give intramuscular adrenaline and secure the airway.",
     "reasoning": REASONING.format(a="anaphylaxis", b="epinephrine", why="Adrenaline reverses the vasodilation "
                                   "and bronchospasm; delay raises mortality.", end="Intramuscular adrenaline."),
     "dataset_name": "huatuo", "id_in_dataset": 77},
    {"question": "Which vitamin deficiency causes scurvy?",
     "options": json.dumps({"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D"}),
     "answer": "Vitamin C",
     "reasoning": REASONING.format(a="scurvy", b="ascorbic acid", why="Collagen synthesis needs vitamin C.",
                                   end="Vitamin C."),
     "dataset_name": "MMLU", "id_in_dataset": 12},
    {"question": "A benchmark question about renal physiology.", "options": "Answer Choices:\nA. x\nB. y",
     "answer": "x", "reasoning": REASONING.format(a="kidney", b="nephron", why="...", end="x."),
     "dataset_name": "MedXpertQA", "id_in_dataset": 5},
    {"question": "A benchmark question from Humanity's Last Exam.", "options": "", "answer": "z",
     "reasoning": REASONING.format(a="a", b="b", why="...", end="z."),
     "dataset_name": "LastHumanity", "id_in_dataset": 9},
    {"question": "Which enzyme is deficient in phenylketonuria?", "options": "", "answer": "Phenylalanine hydroxylase",
     "reasoning": "No reasoning path. Too many paths.", "dataset_name": "medqa", "id_in_dataset": 202},
]


def write(root: Path) -> Path:
    base = Path(root) / "MedReason"
    base.mkdir(parents=True, exist_ok=True)
    (base / "README.md").write_text("---\nlicense: apache-2.0\ntask_categories:\n- question-answering\n---\n",
                                    encoding="utf-8")
    lines = [json.dumps(row, ensure_ascii=False) for row in ROWS[:3]]
    lines += ["", json.dumps(ROWS[3], ensure_ascii=False), "{not json",
              json.dumps({"question": "Where is the reasoning?", "options": "", "answer": "Nowhere."})]
    lines += [json.dumps(row, ensure_ascii=False) for row in ROWS[4:]]
    (base / "ours_quality_33000.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return base
