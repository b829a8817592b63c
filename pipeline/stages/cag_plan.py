"""Stage `cag_plan`: Caption-Augmented Generation step 3, the
thinking-enhanced response for T2I with planning (a <think> plan, then the bullets)."""

from __future__ import annotations

from typing import ClassVar

from pipeline.stages.base import CagStage


class CagPlanStage(CagStage):
    name: ClassVar[str] = "cag_plan"
    step: ClassVar[str] = "plan"
