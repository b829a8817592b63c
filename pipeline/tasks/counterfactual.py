"""Counterfactual generation: a CXR + a progression instruction -> the edited CXR, then the explanation.

ICG-CXR (ProgEmu) gives the prior image, the follow-up image, the progression prompt (`meta.condition`)
and the interpretation of the changes (the adapter's response turn). UniMedVL's counterfactual loader
reads the output image first, then the explanation text; `params.output_order` records that. Pairs from
MIMIC-CXR prior/current studies whose reports differ in one finding are not built yet.
"""

from __future__ import annotations

from typing import Any

from manifests.records import Record
from pipeline.tasks.base import Problem, TaskBuilder


class Counterfactual(TaskBuilder):
    task = "counterfactual_generation"

    def construct(self, record: Record) -> dict[str, Any] | Problem:
        condition = " ".join(str(record.meta.get("condition") or "").split())
        explanation = " ".join(str(record.meta.get("explanation") or "").split())
        if not condition:
            return "instruction_empty", "meta.condition holds no progression prompt"
        if not explanation:
            return "response_empty", "meta.explanation holds no interpretation text"
        return {"output_order": "image_then_text", "prior_study": record.meta.get("prior_study"),
                "follow_up_study": record.meta.get("follow_up_study")}

    def fields(self, record: Record) -> dict[str, str]:
        condition = " ".join(str(record.meta["condition"]).split())
        clause = condition.rstrip(". ")
        if self.library.version == 1:  # v1 lower-cased the whole clause (PICC -> picc); kept for v1 outputs
            clause = clause.lower()
        elif clause[:1].isupper() and not clause[1:2].isupper():
            clause = clause[:1].lower() + clause[1:]
        return {"condition": condition, "condition_clause": clause,
                "explanation": " ".join(str(record.meta["explanation"]).split())}
