"""The recipe's `tasks:` section: which interleaved-task builders run, and every knob that changes a sample.

Everything here is in the processing digest (a change re-stages), except `leakage` and
`held_out_splits`, which act at finalisation on manifest columns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from filters.settings import RecipeError
from pipeline.tasks.templates import latest_version

TASKS = ("cross_modal_synthesis", "super_resolution", "virtual_staining", "counterfactual_generation",
         "segmentation")


@dataclass
class DegradationSettings:
    """The documented low-resolution model of super-resolution inputs (seeded per record)."""

    factor: int = 4  # paper: 4x
    method: str = "bicubic"  # "bicubic" (image-domain) or "kspace" (MR: keep the central 1/factor of k-space)
    blur_sigma: float = 0.0  # Gaussian blur before downsampling, in high-resolution pixels
    noise_std: float = 0.0  # Gaussian noise on the low-resolution image, as a fraction of full scale
    upsample: bool = True  # bicubic back to the HR size: one grid for both images, and the 128 px rule holds


@dataclass
class RefineSettings:
    """MedGemma rewriting of the rendered texts (the paper's second step; pipeline/tasks/refine.py)."""

    enabled: bool = False
    backend: str = "transformers"  # local Gemma3 text generation, or "openai": an OpenAI-compatible server
    model: str = "google/medgemma-27b-it"  # hub id or local directory (resolved offline, filters/models.py)
    models_dir: str | None = None  # where `model` may sit by its last path part
    endpoint: str | None = None  # backend openai: base URL such as http://127.0.0.1:8000/v1
    prompt: str = "refine_v1"  # pipeline/tasks/templates/<prompt>.yaml
    temperature: float = 0.7  # not stated in the paper; sampling is what gives the variety
    top_p: float = 0.95
    max_new_tokens: int = 256
    seed: int = 0  # with the batch's (transformers) or record's (openai) ids, the sampling seed
    max_growth: float = 3.0  # a rewrite longer than this x the template (+ 80 chars) is `refine_too_long`
    # Slot values that must survive verbatim (case-insensitive) where the template had them: the facts.
    keep_fields: dict[str, list[str]] = field(default_factory=lambda: {
        "segmentation": ["target"], "virtual_staining": ["level"], "counterfactual_generation": ["explanation"],
        "super_resolution": ["factor"], "cross_modal_synthesis": []})
    request_timeout_s: float = 120.0
    max_retries: int = 2
    max_concurrent_requests: int = 8
    num_gpus: float = 1.0  # per actor (transformers backend); 0 for the openai backend
    num_cpus: float = 1.0
    actors: int = 1
    batch_size: int = 8
    dtype: str = "auto"


@dataclass
class TaskSettings:
    enabled: bool = False
    seed: int = 0  # with the record id, seeds template choice and degradation noise
    builders: list[str] = field(default_factory=lambda: list(TASKS))  # which main task types are (re)built
    templates: dict[str, int] = field(default_factory=dict)  # task -> library version (default: the latest)
    slice_range: list[int] | None = None  # [first, last] slice index kept for volume tasks (inclusive)
    slice_stride: int = 1  # keep slices whose index is a multiple of this
    keep_empty_masks: bool = False  # segmentation: an all-background mask is `mask_empty` unless this is set
    degradation: DegradationSettings = field(default_factory=DegradationSettings)
    refine: RefineSettings = field(default_factory=RefineSettings)
    leakage: str = "subject"  # "subject": no training row of a subject seen in a held-out split; or "off"
    held_out_splits: list[str] = field(default_factory=lambda: ["test"])
    # Held-out rows read only to know their subjects: rejected as `held_out_split` (a training build).
    held_out_reference_only: bool = True

    def version(self, task: str) -> int:
        return int(self.templates.get(task, latest_version(task)))

    def digest(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["templates"] = {task: self.version(task) for task in TASKS}  # resolved: a new library re-stages
        for key in ("leakage", "held_out_splits", "held_out_reference_only"):
            values.pop(key)
        return values


def parse_tasks(values: Any) -> TaskSettings:
    if values is None:
        return TaskSettings()
    if not isinstance(values, dict):
        raise RecipeError(f"tasks must be a mapping, got {type(values).__name__}")
    values = dict(values)
    nested = {"degradation": DegradationSettings, "refine": RefineSettings}
    for key, cls in nested.items():
        section = values.get(key) or {}
        unknown = sorted(set(section) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise RecipeError(f"tasks.{key}: unknown key(s) {unknown}")
        values[key] = cls(**section)
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(TaskSettings)})
    if unknown:
        raise RecipeError(f"tasks: unknown key(s) {unknown}")
    settings = TaskSettings(**values)
    bad = sorted(set(settings.builders) - set(TASKS)) + sorted(set(settings.templates) - set(TASKS))
    if bad:
        raise RecipeError(f"tasks: unknown task(s) {bad}; known: {list(TASKS)}")
    if settings.degradation.method not in ("bicubic", "kspace") or settings.degradation.factor < 1:
        raise RecipeError("tasks.degradation: method must be 'bicubic' or 'kspace' and factor >= 1")
    if settings.leakage not in ("subject", "off"):
        raise RecipeError(f"tasks.leakage must be 'subject' or 'off', not {settings.leakage!r}")
    if settings.slice_range is not None and len(settings.slice_range) != 2:
        raise RecipeError("tasks.slice_range must be [first, last]")
    refine = settings.refine
    if refine.backend not in ("transformers", "openai"):
        raise RecipeError(f"tasks.refine.backend must be 'transformers' or 'openai', not {refine.backend!r}")
    if refine.enabled and refine.backend == "openai" and not refine.endpoint:
        raise RecipeError("tasks.refine: backend openai needs `endpoint` (e.g. http://127.0.0.1:8000/v1)")
    if sorted(set(refine.keep_fields) - set(TASKS)):
        raise RecipeError(f"tasks.refine.keep_fields: unknown task(s) {sorted(set(refine.keep_fields) - set(TASKS))}")
    return settings
