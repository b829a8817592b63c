"""Stage `cag_describe`: Caption-Augmented Generation step 1,
the structured four-level description of the image alone (the QC prompt)."""

from __future__ import annotations

from typing import ClassVar

from pipeline.stages.base import CagStage


class CagDescribeStage(CagStage):
    name: ClassVar[str] = "cag_describe"
    step: ClassVar[str] = "describe"
