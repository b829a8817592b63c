"""The distilled chain-of-thought shape (stage 2's DCOT): the rationale inside `<think>` tags, then the answer,
as UniMedVL's VLM_THINK system prompt expects ("<think> reasoning process here </think> answer here")."""

from __future__ import annotations

import dataclasses

from manifests.records import Record, dataset_text


def render_cot(rationale: str, answer: str) -> str:
    return f"<think>\n{rationale.strip()}\n</think>\n{answer.strip()}"


def with_rationale(record: Record, rationale: str, rationale_from: str) -> Record:
    """A one-turn VQA record with a dataset's rationale attached: its answer becomes `<think>rationale</think>
    answer`, sub-task `<sub>_cot`; `meta.rationale_from` names the rationale's own record."""
    answer = record.message[-1]["value"]
    message = record.message[:-1] + [{"from": "gpt", "value": render_cot(rationale, answer)}]
    return dataclasses.replace(record, message=message, sub_task_type=f"{record.sub_task_type}_cot",
                               source_text=dataset_text(record.source_text, rationale),
                               meta={**record.meta, "rationale_from": rationale_from})
