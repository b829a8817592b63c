"""The distilled chain-of-thought shape (stage 2's DCOT): the rationale inside `<think>` tags, then the answer,
as UniMedVL's VLM_THINK system prompt expects ("<think> reasoning process here </think> answer here")."""

from __future__ import annotations


def render_cot(rationale: str, answer: str) -> str:
    return f"<think>\n{rationale.strip()}\n</think>\n{answer.strip()}"
