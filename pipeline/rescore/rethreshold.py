"""Decide again without scoring again: new alignment settings applied to an existing build.

The staged rows of a build carry the raw alignment scores; normalisation, lambda and the cut are
not part of the processing digest, so the same staged rows serve any of them. `rethreshold` re-runs
finalisation with the new settings: statuses and the manifest change, and no model is loaded or called.
A shard's boundaries depend only on its own samples (pipeline/engine/finalize.py), so only the shards
whose kept samples change are rewritten: members of samples still kept are copied out of the shard that
held them; a sample kept now that was rejected before has no pixels in the build and is read again from
its source, its unit only (pipeline/engine/reread.py). The cost follows the samples that change, not
the build's pixel bytes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from manifests import storage
from pipeline.engine.build import (BuildReport, ResolvedSource, _benchmarks_digest, _write_resolved_config,
                                   _write_stats, source_locations)
from pipeline.engine.rerun import forget_finalisation, listing_digest, record_finalisation
from pipeline.config import RecipeError, parse_recipe
from pipeline.engine.finalize import finalize
from pipeline.engine.reread import MissingPixels
from sources.io.files import source_path

DECISION_KEYS = ("normalize", "normalize_scope", "m_score", "lambda_s", "keep_fraction", "keep_scope", "unscored")


def load_build_recipe(build_dir: Path | str):
    fs, root = storage.filesystem(build_dir)
    path = storage.join(root, "config.resolved.yaml")
    if not fs.isfile(path):
        raise RecipeError(f"{storage.location(fs, path)} not found: point at a build directory such as build/stage1")
    data = yaml.safe_load(storage.read_text(fs, path))
    resolved_sources = data.pop("resolved_sources", {}) or {}
    data.pop("processing_digest", None)
    return parse_recipe(data), resolved_sources


def rethreshold(build_dir: Path | str, **changes) -> BuildReport:
    """Apply new decision settings (`DECISION_KEYS`) to the build in `build_dir` (a folder or a URL), in place."""
    build_dir = storage.as_location(build_dir)
    recipe, resolved_sources = load_build_recipe(build_dir)
    if not recipe.alignment.enabled:
        raise RecipeError(f"{build_dir} was built without alignment scores; rebuild with alignment enabled "
                          "(`unimed build --align`) or score it with `unimed score` first")
    unknown = sorted(set(changes) - set(DECISION_KEYS))
    if unknown:
        raise RecipeError(f"rethreshold changes only {list(DECISION_KEYS)}, not {unknown}")
    recipe.alignment = dataclasses.replace(recipe.alignment, **{k: v for k, v in changes.items() if v is not None})
    recipe.alignment.validate()
    return refinalize(build_dir, recipe, resolved_sources, previous_models(build_dir))


def refinalize(build_dir: Path | str, recipe, resolved_sources: dict, models: dict) -> BuildReport:
    """Finalise a build again from its staged rows under `recipe` (shards, manifest, stats, config).

    Shards whose content is unchanged keep their bytes (finalisation skips them by their digest).
    """
    build_dir = storage.as_location(build_dir)
    fs, root = storage.filesystem(build_dir)
    staging = storage.join(root, ".state", "staging", recipe.processing_digest())
    staging_dir = storage.location(fs, staging)
    if not storage.glob(fs, storage.join(staging, "*")):
        raise RecipeError(f"{staging_dir} is missing: the staging area of this build was removed, so it can "
                          "only be rebuilt (scores stay cached under .state/align_cache)")
    sources = recorded_sources(recipe, resolved_sources)
    report = BuildReport(build_dir, sources)
    units_path = storage.join(root, ".state", "units.parquet")
    units_file = storage.location(fs, units_path)
    forget_finalisation(fs, root)
    listed = source_locations([s for s in sources if s.name in {entry.name for entry in recipe.sources}])
    try:
        report.result = finalize(build_dir, staging_dir, units_file, recipe, use_ray=False, sources=listed)
    except MissingPixels as err:
        raise RecipeError(str(err)) from None
    report.alignment_models = models
    _write_stats(build_dir, report)
    _write_resolved_config(build_dir, recipe, report)
    record_finalisation(fs, root, listing_digest(fs, units_path), recipe, recipe.access, report.result,
                        _benchmarks_digest(build_dir) if recipe.near_duplicates.enabled else None)
    return report


def recorded_sources(recipe, resolved_sources: dict) -> list[ResolvedSource]:
    """Where the build read each source (config.resolved.yaml), with the recipe's splits and options."""
    entries = {entry.name: entry for entry in recipe.sources}
    return [ResolvedSource(name, source_path(info["root"]) if info.get("root") else None,
                           list(entries[name].splits) if name in entries else [],
                           dict(entries[name].options) if name in entries else {}, info.get("skipped") or "")
            for name, info in resolved_sources.items()]


def previous_models(build_dir: Path | str) -> dict:
    import json

    fs, root = storage.filesystem(build_dir)
    stats = storage.join(root, "stats.json")
    if fs.isfile(stats):
        return json.loads(storage.read_text(fs, stats)).get("alignment_models", {}) or {}
    return {}
