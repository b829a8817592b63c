"""The recipe's `hq:` section: which stage-1 build, which families are ranked, how much is kept."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from filters.settings import RecipeError, build_section
from manifests.records import TASK_FAMILIES

SCOPES = ("modality", "source", "global")
CAG_ROLES = ("t2i", "plan")


@dataclass
class HqSettings:
    enabled: bool = False
    build: str | None = "build/stage1"  # a finished stage-1 build (`unimed build --hq-build DIR` overrides)
    score: str = "align_final"  # a manifest column: the stored S_final
    keep_fraction: float = 0.5  # of each scope's scored kept rows, best first
    scope: str = "modality"  # ranked within (task family, modality); or source, or global (family only)
    ranked_families: list[str] = field(default_factory=lambda: ["i2t", "t2i"])
    replay_families: list[str] = field(default_factory=lambda: ["interleaved", "text"])  # every kept row
    splits: list[str] = field(default_factory=lambda: ["train", "unsplit"])
    t2i_original: bool = True  # also replay the chosen T2I rows with their original caption
    cag_roles: list[str] = field(default_factory=lambda: list(CAG_ROLES))  # CAG rows per chosen T2I row
    items_per_unit: int = 256

    def validate(self) -> None:
        if not 0.0 < self.keep_fraction <= 1.0:
            raise RecipeError(f"hq.keep_fraction must be in (0, 1], not {self.keep_fraction}")
        if self.scope not in SCOPES:
            raise RecipeError(f"hq.scope must be one of {SCOPES}, not {self.scope!r}")
        for key in ("ranked_families", "replay_families"):
            unknown = sorted(set(getattr(self, key)) - set(TASK_FAMILIES))
            if unknown:
                raise RecipeError(f"hq.{key}: unknown task families {unknown}; known {list(TASK_FAMILIES)}")
        if set(self.ranked_families) & set(self.replay_families):
            raise RecipeError("hq: a family is either ranked or replayed whole, not both")
        if sorted(set(self.cag_roles) - set(CAG_ROLES)):
            raise RecipeError(f"hq.cag_roles: known roles are {list(CAG_ROLES)}")
        if self.enabled and not self.build:
            raise RecipeError("hq.build: name the finished stage-1 build, e.g. build/stage1")

    def digest(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values.pop("build")  # where the build lies is not what it holds; unit ids carry the content
        return values


def parse_hq(values: Any) -> HqSettings:
    settings = build_section(HqSettings, values, "hq")
    settings.validate()
    return settings
