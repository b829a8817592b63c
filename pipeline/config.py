"""Recipes: one small dataclass per component, loaded from YAML, written back resolved next to the outputs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from filters.cag.settings import CagSettings, parse_cag
from filters.settings import (AlignmentSettings, FilterSettings, NearDuplicateSettings, RecipeError, build_section,
                              parse_alignment, parse_near_duplicates)
from manifests.images import DECODER
from pipeline.stage2.settings import HqSettings, parse_hq
from pipeline.tasks.settings import TaskSettings, parse_tasks
from sources import SOURCES

DEFAULT_SPLITS = ("train", "unsplit")  # evaluation splits stay out of training builds unless asked for


@dataclass
class ShardSettings:
    max_samples: int = 1000
    max_bytes: int = 1 << 30  # a shard closes before it passes this size
    png_compress_level: int = 6
    # Every shard but a group's last holds at least this fraction of max_samples or max_bytes; between it
    # and the bound, shards end where their samples' key hashes say (pipeline/engine/finalize.py ShardCutter)
    min_fill: float = 0.92

    def __post_init__(self):
        if not 0 < self.min_fill <= 1:
            raise RecipeError(f"shards.min_fill must be in (0, 1], not {self.min_fill!r}")


@dataclass
class ExecutionSettings:
    unit_attempts: int = 2  # in-worker attempts per unit before it is reported as failed
    max_task_retries: int = 3  # Ray re-runs of a task whose worker died
    # A batch (and a Ray Data block) closes at whichever bound comes first, so a worker's memory is
    # bounded by bytes of pixels, not by how large the corpus or its images are.
    batch_size: int = 256  # records
    batch_bytes: int = 64 << 20  # decoded image bytes
    # A source that cannot be read at all (an LFS pointer, an unknown layout): the other sources are
    # built either way; "fail" then exits 1 naming it, "skip" reports it as skipped and exits 0.
    on_source_error: str = "fail"
    # Where on a multi-node cluster each step runs: Ray custom resources per task for "read" (the units),
    # "score" (the task stages: coarse scores, decisions, builders) and "write" (staging), for example
    # {read: {reader: 0.1}, write: {writer: 0.1}}; nodes offer them (`ray start --resources '{"reader": 8}'`).
    # Model actor pools keep their own `resources` (GPUs). Empty: Ray places every step anywhere.
    placement: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self):
        if self.on_source_error not in ("fail", "skip"):
            raise RecipeError(f"execution.on_source_error must be fail or skip, not {self.on_source_error!r}")
        unknown = sorted(set(self.placement) - {"read", "score", "write"})
        if unknown:
            raise RecipeError(f"execution.placement names {unknown}; the steps are read, score and write")
        for step, wanted in self.placement.items():
            if not isinstance(wanted, dict) or not all(
                    isinstance(v, (int, float)) and v > 0 for v in wanted.values()):
                raise RecipeError(f"execution.placement.{step} must map resource names to positive amounts, "
                                  f"for example {{reader: 0.1}}, not {wanted!r}")


@dataclass
class SourceEntry:
    name: str
    path: str | None = None  # overrides discovery under --sources-root
    splits: list[str] = field(default_factory=lambda: list(DEFAULT_SPLITS))
    options: dict[str, Any] = field(default_factory=dict)
    hub: str | None = None  # a Hugging Face Hub repo id (owner/name) to read from the Hub cache


@dataclass
class Recipe:
    name: str
    version: int = 1
    sources: list[SourceEntry] = field(default_factory=list)
    filters: FilterSettings = field(default_factory=FilterSettings)
    shards: ShardSettings = field(default_factory=ShardSettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    alignment: AlignmentSettings = field(default_factory=AlignmentSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)  # interleaved-task builders (pipeline/tasks)
    near_duplicates: NearDuplicateSettings = field(default_factory=NearDuplicateSettings)  # and decontamination
    hq: HqSettings = field(default_factory=HqSettings)  # stage 2: the high-quality subset of a stage-1 build
    cag: CagSettings = field(default_factory=CagSettings)  # stage 2: Caption-Augmented Generation (filters/cag)
    # Licence gate (pipeline/engine/licences.py): "public" refuses credentialed and registration-only
    # sources; None lets every access class in. Not part of the processing digest: it changes no record.
    access: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["access"] is None:  # absent when unset, so recipes without a gate resolve as before
            del data["access"]
        return data

    def processing_digest(self) -> str:
        """Identity of everything that changes per-record output; staged work is reused only under it."""
        relevant = {
            "version": self.version,
            "sources": [{"name": s.name, "options": s.options, **_templates_version(s.name)} for s in self.sources],
            "filters": dataclasses.asdict(self.filters),
            "png": self.shards.png_compress_level,
            "decoder": DECODER,  # how image facts (pixel hash, spread) are decoded: manifests/images.py
        }
        if self.alignment.enabled:  # absent when off, so builds without it keep their digest
            relevant["alignment"] = {**self.alignment.scoring_digest(), "policy": [
                self.alignment.policy_by_family, self.alignment.policy_by_sub_task, self.alignment.policy_by_source]}
        if self.tasks.enabled:  # absent when off, so builds without task builders keep their digest
            relevant["tasks"] = self.tasks.digest()
        if self.near_duplicates.enabled:  # absent when off, so builds without it keep their digest
            relevant["near_duplicates"] = self.near_duplicates.hashing_digest()
        if self.hq.enabled:  # absent when off, as above
            relevant["hq"] = self.hq.digest()
        if self.cag.enabled:
            relevant["cag"] = self.cag.digest()
        return hashlib.blake2b(json.dumps(relevant, sort_keys=True).encode(), digest_size=8).hexdigest()


def _templates_version(name: str) -> dict[str, int]:
    """The source's wording version for the digest; absent at 1, so unchanged sources keep their digest."""
    version = SOURCES[name].templates_version if name in SOURCES else 1
    return {"templates_version": version} if version != 1 else {}


def parse_recipe(data: dict[str, Any]) -> Recipe:
    if not isinstance(data, dict) or "name" not in data:
        raise RecipeError("a recipe is a mapping with at least a `name`")
    unknown = sorted(set(data) - {"name", "version", "sources", "filters", "shards", "execution", "alignment", "tasks",
                                  "near_duplicates", "hq", "cag", "access"})
    if unknown:
        raise RecipeError(f"recipe: unknown key(s) {unknown}")
    sources = []
    for index, entry in enumerate(data.get("sources") or []):
        if isinstance(entry, str):
            entry = {"name": entry}
        sources.append(build_section(SourceEntry, entry, f"sources[{index}]"))
        options_class = SOURCES.get(sources[-1].name)
        if options_class is not None and isinstance(sources[-1].options, dict):
            try:
                options_class.check_options(sources[-1].options)
            except ValueError as err:
                raise RecipeError(f"sources[{index}] ({sources[-1].name}): {err}") from err
        hub = sources[-1].hub
        if hub is not None and (not isinstance(hub, str) or hub.count("/") != 1 or "" in hub.split("/")):
            raise RecipeError(f"sources[{index}].hub must be a Hub dataset repo id owner/name, got {hub!r}")
    recipe = Recipe(
        name=str(data["name"]),
        version=int(data.get("version", 1)),
        sources=sources,
        filters=build_section(FilterSettings, data.get("filters"), "filters"),
        shards=build_section(ShardSettings, data.get("shards"), "shards"),
        execution=build_section(ExecutionSettings, data.get("execution"), "execution"),
        alignment=parse_alignment(data.get("alignment")),
        tasks=parse_tasks(data.get("tasks")),
        near_duplicates=parse_near_duplicates(data.get("near_duplicates")),
        hq=parse_hq(data.get("hq")),
        cag=parse_cag(data.get("cag")),
        access=data.get("access"),
    )
    if recipe.access not in (None, "public", "any"):
        raise RecipeError(f"recipe: access must be `public` or `any`, not {recipe.access!r}")
    recipe.filters.validate()
    return recipe


def load_recipe(name_or_path: str) -> Recipe:
    """A recipe by bundled name (`stage1`) or by YAML path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist")
        text = path.read_text(encoding="utf-8")
    else:
        bundled = resources.files("pipeline") / "recipes" / f"{name_or_path}.yaml"
        if not bundled.is_file():
            available = sorted(p.name.removesuffix(".yaml") for p in (resources.files("pipeline") / "recipes").iterdir())
            raise RecipeError(f"no bundled recipe {name_or_path!r}; available: {available}, or pass a YAML path")
        text = bundled.read_text(encoding="utf-8")
    try:
        return parse_recipe(yaml.safe_load(text))
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {name_or_path}: invalid YAML: {err}") from err
