"""The curriculum schedule: the three training stages, their steps and task-family weights (spec 6).

A `CurriculumStage` is a stage of training (foundation, instruction, unified), not a build stage
(pipeline/stages/). Weights are relative, normalised the way Bagel's PackedDataset does.
"""


from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from manifests.records import TASK_FAMILIES


FAMILIES = TASK_FAMILIES  # ("i2t", "t2i", "interleaved", "text")


@dataclass(frozen=True)
class CurriculumStage:
    number: int
    name: str
    steps: int
    weights: dict[str, float]  # relative sampling weights per task family (P3 T12)


CURRICULUM_STAGES: dict[int, CurriculumStage] = {
    1: CurriculumStage(1, "foundation", 85_000, {"i2t": 75, "t2i": 25, "interleaved": 0, "text": 5}),
    2: CurriculumStage(2, "instruction", 120_000, {"i2t": 40, "t2i": 45, "interleaved": 10, "text": 5}),
    3: CurriculumStage(3, "unified", 70_000, {"i2t": 37, "t2i": 35, "interleaved": 25, "text": 3}),
}


def normalised(weights: dict[str, float]) -> dict[str, float]:
    """Probabilities from relative weights, as Bagel does: cumsum(w) / sum(w) as the cumulative table."""
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError(f"weights {weights} sum to {total}; at least one must be positive")
    return {name: float(w) / total for name, w in weights.items()}


@dataclass(frozen=True)
class Schedule:
    """Stages in order, each lasting `round(steps * scale)` optimiser steps (at least 1)."""

    stages: tuple[CurriculumStage, ...]
    scale: float = 1.0

    @classmethod
    def of(cls, numbers: Sequence[int], scale: float = 1.0) -> "Schedule":
        return cls(tuple(CURRICULUM_STAGES[n] for n in numbers), scale)

    def stage_steps(self) -> list[int]:
        return [max(1, round(stage.steps * self.scale)) for stage in self.stages]

    @property
    def total_steps(self) -> int:
        return sum(self.stage_steps())

    def boundaries(self) -> list[int]:
        """The first step of each stage."""
        return list(np.cumsum([0] + self.stage_steps()[:-1]).tolist())

    def stage_index(self, step: int) -> int:
        starts = self.boundaries()
        for index in range(len(starts) - 1, -1, -1):
            if step >= starts[index]:
                return index
        raise ValueError(f"negative step {step}")
