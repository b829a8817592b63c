"""The recipe's `cag:` section: which model writes the three CAG steps, how, and with which prompts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from filters.settings import ModelResources, RecipeError, section_values

STEPS = ("describe", "fuse", "plan")


@dataclass
class CagSettings:
    enabled: bool = False
    backend: str = "transformers"  # or "openai": an OpenAI-compatible server (vLLM, TGI)
    model: str = "google/medgemma-27b-it"  # paper (step 3 names MedGemma-27B-IT); medgemma-4b-it when small
    endpoint: str | None = None  # backend openai: base URL such as http://127.0.0.1:8000/v1
    models_dir: str | None = None  # searched first for the model (by the id's last part)
    # Versioned prompts, filters/prompts/<name>.txt. Step 1 is the QC prompt itself (spec 5.2).
    prompts: dict[str, str] = field(default_factory=lambda: {
        "describe": "medgemma_qc_v1", "fuse": "cag_fuse_v1", "plan": "cag_plan_v1"})
    temperature: float = 0.0  # one deterministic reply per step (not stated in the paper)
    top_p: float = 1.0
    max_new_tokens: dict[str, int] = field(default_factory=lambda: {"describe": 768, "fuse": 512, "plan": 640})
    seed: int = 0
    request_timeout_s: float = 180.0
    max_retries: int = 2
    max_concurrent_requests: int = 8
    fuse_max_chars: int = 1500
    ban_observational_in_think: bool = True  # stricter than the paper (bullets only): the whole reply
    resources: ModelResources = field(default_factory=lambda: ModelResources(num_gpus=1.0, batch_size=4))

    def validate(self) -> None:
        if self.backend not in ("transformers", "openai"):
            raise RecipeError(f"cag.backend must be 'transformers' or 'openai', not {self.backend!r}")
        if self.backend == "openai" and not self.endpoint:
            raise RecipeError("cag.backend openai needs cag.endpoint, e.g. http://127.0.0.1:8000/v1")
        missing = [step for step in STEPS if step not in self.prompts or step not in self.max_new_tokens]
        if missing:
            raise RecipeError(f"cag.prompts and cag.max_new_tokens need an entry for each step; missing {missing}")

    def generation_digest(self, step: str) -> dict[str, Any]:
        """What changes a step's reply for the same inputs: part of its cache key (backend excluded)."""
        return {"model": self.model, "prompt": self.prompts[step], "temperature": self.temperature,
                "top_p": self.top_p, "max_new_tokens": self.max_new_tokens[step], "seed": self.seed}

    def digest(self) -> dict[str, Any]:
        return {"enabled": self.enabled, **{step: self.generation_digest(step) for step in STEPS},
                "rules": [self.fuse_max_chars, self.ban_observational_in_think]}


def parse_cag(values: Any) -> CagSettings:
    values = section_values(CagSettings, values, "cag")
    if values is None:
        return CagSettings()
    defaults = CagSettings()
    if isinstance(values.get("resources"), dict):
        values["resources"] = ModelResources(**{**dataclasses.asdict(defaults.resources), **values["resources"]})
    for key in ("prompts", "max_new_tokens"):
        if isinstance(values.get(key), dict):
            values[key] = {**getattr(defaults, key), **values[key]}
    settings = CagSettings(**values)
    settings.validate()
    return settings
