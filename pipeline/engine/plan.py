"""The stage plan of a recipe: which stages a build runs, in which order, with which resources.

Every build is: read units (the adapters) -> the stages below -> write staged rows -> finalise (decide,
plan the shards) -> write each shard once (its samples read again).
`unimed build --plan` prints this list without running anything.
"""

from __future__ import annotations

from pathlib import Path

from filters.alignment.pairs import BIOMEDCLIP
from filters.settings import AlignmentSettings
from pipeline.config import Recipe
from pipeline.stages import ALIGNMENT_MODEL_STAGES, CAG_STAGES
from pipeline.stages.alignment_cache_write import AlignmentCacheWriteStage
from pipeline.stages.alignment_prepare import AlignmentPrepareStage
from pipeline.stages.base import ModelStage, Stage
from pipeline.stages.coarse_decision import CoarseDecisionStage
from pipeline.stages.coarse_scores import CoarseScoreStage
from pipeline.stages.near_duplicate_hashes import NearDuplicateHashStage
from pipeline.stages.task_builders import TaskBuildersStage
from pipeline.stages.task_refine import TaskRefineStage


def model_stages(settings: AlignmentSettings, only: str | None = None) -> list[ModelStage]:
    """The alignment models in order: captions, then S, then M, then the optional BiomedCLIP column."""
    captions, similarity, siglip, biomedclip = ALIGNMENT_MODEL_STAGES
    if only == BIOMEDCLIP:
        return [biomedclip(settings)]
    stages: list[ModelStage] = [captions(settings), similarity(settings), siglip(settings)]
    if settings.biomedclip.model:
        stages.append(biomedclip(settings))
    return stages


def alignment_stages(settings: AlignmentSettings, cache_dir: str | None, only: str | None = None) -> list[Stage]:
    """Cache lookup (tasks) -> the model stages (one actor pool each) -> cache write (tasks)."""
    return [AlignmentPrepareStage(settings, cache_dir, only), *model_stages(settings, only),
            AlignmentCacheWriteStage(settings, cache_dir, only)]


def stage_plan(recipe: Recipe, align_cache: Path | str | None, cag_cache: Path | str | None = None) -> list[Stage]:
    """The stages between reading the units and staging the bytes, in the order records flow."""
    stages: list[Stage] = [CoarseScoreStage(recipe.filters), CoarseDecisionStage(recipe.filters)]
    if recipe.tasks.enabled:  # after the decision: builders work on kept records only
        stages.append(TaskBuildersStage(recipe.tasks))
        if recipe.tasks.refine.enabled:  # MedGemma rewrites the rendered texts; the template stays in meta
            stages.append(TaskRefineStage(recipe.tasks.refine))
    if recipe.cag.enabled:  # after the decision: CAG describes, fuses and plans kept T2I records only
        stages.extend(stage(recipe.cag, str(cag_cache) if cag_cache else None) for stage in CAG_STAGES)
    if recipe.near_duplicates.enabled:  # after the texts are final (refinement, CAG), before alignment
        stages.append(NearDuplicateHashStage(recipe.near_duplicates))
    if recipe.alignment.enabled:
        stages.extend(alignment_stages(recipe.alignment, str(align_cache) if align_cache else None))
    return stages


def describe_plan(recipe: Recipe) -> list[dict]:
    """One row per step, in order, with what it asks Ray for (what `unimed build --plan` prints)."""
    rows = [{"stage": "read_units", "runs_as": "tasks", "num_cpus": 1.0, "num_gpus": 0.0, "actors": None,
             "batch_size": f"{recipe.execution.batch_size} records or {recipe.execution.batch_bytes >> 20} MiB"}]
    for stage in stage_plan(recipe, None):
        resources = stage.resources()
        rows.append({"stage": stage.name, "runs_as": "actors" if resources["actors"] else "tasks", **resources})
    rows.append({"stage": "write_staging", "runs_as": "tasks", "num_cpus": 1.0, "num_gpus": 0.0, "actors": None,
                 "batch_size": None})
    rows.append({"stage": "finalize", "runs_as": "driver", "num_cpus": 1.0, "num_gpus": 0.0, "actors": None,
                 "batch_size": None})
    rows.append({"stage": "write_shards", "runs_as": "tasks", "num_cpus": 1.0, "num_gpus": 0.0, "actors": None,
                 "batch_size": f"a shard: {recipe.shards.max_samples} samples or {recipe.shards.max_bytes >> 20} MiB"})
    return rows
