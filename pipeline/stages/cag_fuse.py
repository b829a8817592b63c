"""Stage `cag_fuse`: Caption-Augmented Generation step 2,
description + original caption -> one T2I prompt paragraph and the flagged abnormalities."""

from __future__ import annotations

from typing import ClassVar

from pipeline.stages.base import CagStage


class CagFuseStage(CagStage):
    name: ClassVar[str] = "cag_fuse"
    step: ClassVar[str] = "fuse"
