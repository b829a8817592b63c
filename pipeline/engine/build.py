"""A build: recipe + sources root in; shards, manifest, stats and the resolved recipe out.

Layout of a build directory (later tools depend on it)::

    <out>/<recipe>/shards/<group>/<recipe>-<group>-<tag>.tar   WebDataset, one member layout per group
                                                  (manifests/shards.py): <key>.json plus its images
    <out>/<recipe>/README.md                      dataset card: one Hugging Face `datasets` config per group
    <out>/<recipe>/manifest/part-00000.parquet    one row per input record, kept or rejected
    <out>/<recipe>/stats.json                     counts by source, modality, task, status, reason
    <out>/<recipe>/config.resolved.yaml
    <out>/<recipe>/.state/                        the unit listing, staged manifest rows (no pixels), shard
                                                  done-markers, the record of the last finalisation

Decide, then write. The unit listing is streamed into `.state/units.parquet` as the adapters list it
(the driver holds one row group of unit tasks, never the list). The first pass is Ray Data, streaming:
the pending unit tasks, read from Parquet -> records (the adapters, pipeline/engine/units.py) -> the
recipe's stage plan (pipeline/engine/plan.py: coarse scores and decision, task builders and refinement,
alignment scoring) -> staged manifest rows, no pixels (pipeline/engine/staging.py). Then `finalize`
(pipeline/engine/finalize.py), out of core: the global rules decide, each group's kept samples are cut
into shards filled to the recipe's bounds across units, and the second pass writes each new shard once,
its samples read again from their sources (pipeline/engine/reread.py). Pixels are written once, aligned
or not; what is read twice is the kept samples' source files.

A rerun re-reads only units that no earlier run completed, so a killed build finishes with the same
records, none twice and none lost. A unit counts as completed only for the inputs it was read from
(pipeline/engine/inputs.py): a file added, removed, resized or touched since re-runs its unit; `refresh`
re-runs every unit. When the listing (units and input fingerprints), the recipe and the published
outputs are all what the last finalisation recorded (`.state/finalized.json`), a rerun stops after
listing: nothing is finalised or rewritten.

`out` is a local folder or any fsspec URL (`s3://bucket/prefix`): every output and every piece of state
goes through manifests/storage.py, and workers are handed locations (URLs), never a driver-only path.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from manifests import spans, storage
from pipeline.config import Recipe
from pipeline.engine.finalize import FinalizeResult, finalize, pending_units
from pipeline.engine.inputs import StatCache, unit_fingerprint
from pipeline.engine.plan import stage_plan
from pipeline.engine.reread import SourceLocation
from pipeline.engine.rerun import forget_finalisation, record_finalisation, unchanged_finalisation, write_listing
from pipeline.engine.ray_setup import ensure_ray, map_stages, placement, quiet_retry_warning
from pipeline.engine.staging import SUMMARY_COLUMNS, write_staging_batch
from pipeline.engine.units import UnitTask, expand_units
from pipeline.engine.licences import check_access, licence_mix
from sources import get_source
from sources.base import Source, SourceError
from sources.io.files import source_path
from sources.io.hub import default_hub_cache, download_command, find_snapshot
from sources.io.lfs import lfs_message, lfs_pointer_size

log = logging.getLogger(__name__)

EXIT_OK, EXIT_SOURCE_FAILED, EXIT_INCOMPLETE = 0, 1, 2


@dataclass
class ResolvedSource:
    name: str
    root: Path | None
    splits: list[str]
    options: dict
    reason: str = ""  # why it is skipped, when root is None


@dataclass
class BuildReport:
    out_dir: Path
    sources: list[ResolvedSource]
    units_total: int = 0
    units_run: int = 0
    wall_seconds: float = 0.0
    result: FinalizeResult = field(default_factory=FinalizeResult)
    engine_error: str | None = None
    alignment_models: dict = field(default_factory=dict)  # role -> model, path, demo
    extra_stats: dict = field(default_factory=dict)  # stage 2: the HQ subset and the CAG model
    units_changed: int = 0  # units done before whose inputs changed since (re-run this time)
    records_read: int = 0  # rows the units run this time produced (0 when every unit was already staged)
    bytes_rows: int = 0  # the staged manifest rows the workers wrote this run
    sources_empty: dict[str, str] = field(default_factory=dict)  # found, but the requested splits have no files
    sources_failed: dict[str, str] = field(default_factory=dict)  # could not be listed: one line, what to do
    sources_failed_skipped: bool = False  # the recipe's execution.on_source_error is "skip"
    access: str | None = None  # the licence gate the build ran under (pipeline/engine/licences.py)

    @property
    def exit_code(self) -> int:
        if self.result.failed_units or self.engine_error:
            return EXIT_INCOMPLETE
        if self.sources_failed and not self.sources_failed_skipped:
            return EXIT_SOURCE_FAILED
        return EXIT_OK


def resolve_sources(recipe: Recipe, sources_root: Path | str | None, source_paths: dict[str, Path | str],
                    only: list[str] | None) -> list[ResolvedSource]:
    """Where each recipe source is: an explicit path, else its download's folder under the root."""
    resolved = []
    for entry in recipe.sources:
        if only and entry.name not in only:
            continue
        adapter = get_source(entry.name)
        explicit = source_paths.get(entry.name) or (entry.path if entry.path else None)
        if explicit is not None:
            root = source_path(explicit) if source_path(explicit).is_dir() else None
            reason = "" if root else f"--source-path {entry.name}={explicit} is not a directory"
        elif entry.hub and entry.hub not in adapter.card.hub_repos:
            root = None
            reason = (f"hub: {entry.hub} is not a layout the {entry.name} adapter reads; "
                      f"it reads {list(adapter.card.hub_repos) or 'no Hub copy'}")
        elif entry.hub:
            caches = [c for c in (source_path(sources_root) if sources_root is not None else None, default_hub_cache())
                      if c]
            root = next((found for c in caches if (found := find_snapshot(c, [entry.hub]))), None)
            where = " or ".join(map(str, caches)) or "(no --sources-root, HF_HUB_CACHE or HF_HOME)"
            reason = "" if root else (f"Hub copy {entry.hub} not in the Hub cache {where}; "
                                      f"fetch it with: {download_command(entry.hub)}")
        elif sources_root is not None:
            root = adapter.find_root(source_path(sources_root))
            reason = "" if root else f"none of {list(adapter.card.root_names)} under {sources_root}" + "".join(
                f"; or fetch the Hub copy with: {download_command(repo)}" for repo in adapter.card.hub_repos[:1])
        else:
            root, reason = None, "no --sources-root and no path given"
        resolved.append(ResolvedSource(entry.name, root, list(entry.splits), dict(entry.options), reason))
    unknown = sorted(set(only or []) - {entry.name for entry in recipe.sources})
    if unknown:
        raise KeyError(f"--only names {unknown}, which recipe {recipe.name!r} does not list")
    return resolved


def _next_run(fs, state_dir: str) -> int:
    counter = storage.join(state_dir, "run")
    run = int(storage.read_text(fs, counter)) + 1 if storage.exists(fs, counter) else 1
    storage.write_text(fs, counter, str(run))
    return run


def _benchmarks_digest(out_dir) -> str | None:
    """A digest of the hashed benchmarks (a folder or a URL): a changed benchmark re-finalises."""
    from pipeline.engine.benchmarks import benchmark_file

    fs, path = storage.filesystem(benchmark_file(out_dir))
    return hashlib.blake2b(storage.read_bytes(fs, path), digest_size=16).hexdigest() if fs.isfile(path) else None


def build(recipe: Recipe, out: Path | str, sources_root: Path | str | None = None,
          source_paths: dict[str, Path | str] | None = None,
          only: list[str] | None = None, ray_address: str | None = None, progress: bool = True,
          hq_build: Path | str | None = None, refresh: bool = False, access: str | None = None,
          release_filter=None) -> BuildReport:
    """`access="public"` refuses non-open sources (AccessRefused, before anything runs); `release_filter`
    (pipeline/release/rebuild.py, for `unimed rebuild`) applies a release's decisions at finalisation."""
    started = time.monotonic()
    fs, out_root = storage.filesystem(out)
    build_root = storage.join(out_root, recipe.name)
    # A Path for a local build (what callers have always had); the URL for an object store
    out_dir = Path(build_root) if storage.is_local(fs) else storage.location(fs, build_root)
    state_root = storage.join(build_root, ".state")
    state_dir = storage.location(fs, state_root)  # stage 2's HQ selection, the model caches: a path or a URL
    staging_root = storage.join(state_root, "staging", recipe.processing_digest())
    staging_dir = storage.location(fs, staging_root)
    resolved = resolve_sources(recipe, sources_root, source_paths or {}, only)
    access = access or recipe.access
    check_access(access, [s.name for s in resolved if s.root is not None])
    storage.makedirs(fs, staging_root)
    report = BuildReport(out_dir, resolved, access=access)

    hq_tasks: list[UnitTask] = []
    if recipe.hq.enabled:  # stage 2: the high-quality subset of a finished stage-1 build, replayed
        from pipeline.stage2.replay import NAME as HQ_REPLAY, hq_units

        root, options_json, units = hq_units(recipe.hq, hq_build or recipe.hq.build, state_dir)
        hq_tasks = [UnitTask(HQ_REPLAY, root, options_json, ("train",), unit) for unit in units]
        report.extra_stats["hq_build"] = root
    with spans.span("listing"):  # spans: where the time goes (manifests/spans.py)
        listing = write_listing(itertools.chain(
            *(_list_units(source, report) for source in report.sources), hq_tasks))
    del hq_tasks
    if report.sources_failed:
        report.sources_failed_skipped = recipe.execution.on_source_error == "skip"
    report.units_total = listing.count
    if recipe.near_duplicates.enabled and recipe.near_duplicates.decontaminate:
        from pipeline.engine.benchmarks import collect_benchmarks

        collect_benchmarks(recipe.near_duplicates, sources_root, out_dir)  # hashed once; finalize reads them
    benchmarks = _benchmarks_digest(out_dir) if recipe.near_duplicates.enabled else None
    if not refresh and release_filter is None:
        previous = unchanged_finalisation(fs, build_root, listing.digest, recipe, access, benchmarks)
        if previous is not None:  # nothing changed since the last finalisation: nothing to do
            os.unlink(listing.path)
            log.info("all %d units unchanged since the last finalisation; outputs are current", listing.count)
            report.result = previous
            report.wall_seconds = time.monotonic() - started
            return report
    forget_finalisation(fs, build_root)
    units_root = storage.join(state_root, "units.parquet")
    storage.put_file(fs, listing.path, units_root)
    units_file = storage.location(fs, units_root)

    pending_root = storage.join(state_root, "pending")
    report.units_run, report.units_changed = pending_units(
        out_dir, staging_dir, units_file, storage.location(fs, pending_root), refresh)
    if report.units_changed:
        log.info("%d units have changed inputs since they were built; re-running them", report.units_changed)
    cards = {name: (cls.card.licence, cls.card.access) for name, cls in _registry().items()}
    cards["hq_replay"] = ("per source", "per source")  # only a replay unit's own error rows carry it
    if recipe.cag.enabled:
        from filters.cag.client import model_facts

        report.extra_stats["cag_model"] = model_facts(recipe.cag)  # a missing model fails here, early
        report.extra_stats["cag_demo_weights"] = report.extra_stats["cag_model"]["demo"]
    if recipe.alignment.enabled:
        from filters.alignment.pairs import describe_models

        report.alignment_models = describe_models(recipe.alignment)  # a missing model fails here, early
    if report.units_run:
        with spans.span("ray_start"):  # spans
            ensure_ray(ray_address)
        run = _next_run(fs, state_root)
        stage_started = time.monotonic()
        try:
            report.records_read, report.bytes_rows = _run_units(
                storage.location(fs, pending_root), report.units_run, recipe, staging_dir, state_dir, run, cards,
                progress)
        except Exception as err:  # noqa: BLE001 - the engine gave up; report it, finalise what completed
            log.error("the Ray pipeline stopped: %s", err)
            report.engine_error = f"{type(err).__name__}: {err}"
        report.extra_stats["stage_seconds"] = round(time.monotonic() - stage_started, 3)
    else:
        log.info("all %d units already staged; finalising", listing.count)
    for leftover in storage.find(fs, pending_root):
        storage.remove(fs, leftover)

    import ray

    with spans.span("finalise"):  # spans
        report.result = finalize(out_dir, staging_dir, units_file, recipe, use_ray=ray.is_initialized(),
                                 release_filter=release_filter, sources=source_locations(report.sources))
        _write_stats(out_dir, report)
        _write_resolved_config(out_dir, recipe, report)
    if not report.engine_error and release_filter is None:
        record_finalisation(fs, build_root, listing.digest, recipe, access, report.result, benchmarks)
    spans.flush()  # spans
    report.wall_seconds = time.monotonic() - started
    return report


def source_locations(sources: list[ResolvedSource]) -> dict[str, SourceLocation]:
    """Where finalisation can read a source again (pipeline/engine/reread.py)."""
    return {s.name: SourceLocation(str(s.root), json.dumps(s.options, sort_keys=True), tuple(s.splits))
            for s in sources if s.root is not None}


def _list_units(source: ResolvedSource, report: BuildReport) -> Iterator[UnitTask]:
    """One source's units with their input fingerprints, as they are listed; a source that cannot be listed is
    reported.

    A whole-source problem (a Git LFS pointer where the annotation file should be, an unreadable file,
    a layout the adapter does not recognise) becomes one line in `report.sources_failed`, never a
    traceback that stops the other sources.
    """
    if source.root is None:
        log.warning("source %s skipped: %s", source.name, source.reason)
        return
    adapter: Source = get_source(source.name)(source.root, source.options, source.splits)
    options_json = json.dumps(source.options, sort_keys=True)
    stats = StatCache(source.root)
    listed = 0
    try:
        for unit in adapter.work_units():
            yield UnitTask(source.name, str(source.root), options_json, tuple(source.splits), unit,
                           unit_fingerprint(adapter, unit, stats))
            listed += 1
    except SourceError as err:
        report.sources_failed[source.name] = str(err)
    except Exception as err:  # noqa: BLE001 - any listing failure is this source's, reported in one line
        log.debug("listing %s failed", source.name, exc_info=True)
        report.sources_failed[source.name] = _lfs_hint(adapter) or (
            f"{source.root}: {type(err).__name__}: {err} (rerun with -v for the traceback)")
    else:
        if not listed and _lfs_hint(adapter):  # pointers in place of the files it lists from
            report.sources_failed[source.name] = _lfs_hint(adapter)
        elif not listed:
            expected = adapter.expected_files()
            report.sources_empty[source.name] = (
                f"no files for split {'/'.join(source.splits)} under {source.root}"
                + (f"; expected {', '.join(expected)}" if expected else ""))
            log.warning("source %s is empty: %s", source.name, report.sources_empty[source.name])
        return
    if listed:
        report.sources_failed[source.name] += f" (after {listed} units were listed; those are built)"
    log.error("source %s failed: %s", source.name, report.sources_failed[source.name])


def _lfs_hint(adapter: Source) -> str | None:
    """`run git lfs pull` when one of the source's annotation files is a Git LFS pointer."""
    for relative in adapter.annotation_files():
        size = lfs_pointer_size(adapter.root / relative)
        if size is not None:
            return lfs_message(adapter.root / relative, size)
    return None


def _registry() -> dict:
    from sources import SOURCES

    return SOURCES


def _run_units(pending: str, units: int, recipe: Recipe, staging_dir: str, state_dir: str, run: int,
               cards: dict, progress: bool) -> tuple[int, int]:
    """The first pass: the pending unit tasks (Parquet files, read by Ray Data: never a list on the driver) ->
    records -> the stage plan -> staged manifest rows. Returns (rows, staged row bytes)."""
    import ray.data

    quiet_retry_warning()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # one progress display: ours
    # Blocks carry pickled records with their pixels: cap them at the recipe's batch bytes so no task
    # holds more than a few batches of images, however large the corpus.
    context.target_max_block_size = recipe.execution.batch_bytes
    retries = recipe.execution.max_task_retries
    fs, path = storage.filesystem(pending)
    ds = ray.data.read_parquet(path, filesystem=_arrow_filesystem(fs), columns=["task"])
    # one unit per block, so that units are read in parallel (a file holds many)
    ds = ds.repartition(target_num_rows_per_block=1)
    ds = ds.map_batches(expand_units, batch_size=1, max_retries=retries,
                        **placement(recipe.execution.placement.get("read")),
                        fn_kwargs={"attempts": recipe.execution.unit_attempts,
                                   "rows_per_batch": recipe.execution.batch_size,
                                   "bytes_per_batch": recipe.execution.batch_bytes})
    # raises ClusterTooSmall when the recipe's GPU requests cannot be placed (rather than hang)
    caches = storage.join(state_dir, "align_cache"), storage.join(state_dir, "cag_cache")  # paths or URLs
    ds = map_stages(ds, stage_plan(recipe, *caches), retries, recipe.execution.placement.get("score"))
    ds = ds.map_batches(write_staging_batch, batch_size=None, max_retries=retries,
                        **placement(recipe.execution.placement.get("write")),
                        fn_kwargs={"staging_dir": str(staging_dir), "run": run, "cards": cards,
                                   "png_compress_level": recipe.shards.png_compress_level})
    return _consume(ds, units, progress)


def _arrow_filesystem(fs):
    """A pyarrow filesystem for Ray Data to read an fsspec location with (None for a local path)."""
    if storage.is_local(fs):
        return None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return PyFileSystem(FSSpecHandler(fs))


def _consume(ds, units: int, progress: bool) -> tuple[int, int]:
    """Drain the per-batch summaries, showing units done and kept/rejected counts as they stream in;
    (rows, staged row bytes)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    totals: Counter = Counter()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), disable=not progress,
                  transient=False) as bar:
        task = bar.add_task("units", total=units, detail="")
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for column in SUMMARY_COLUMNS:
                totals[column] += int(batch[column].sum())
            bar.update(task, completed=totals["units_done"],
                       detail=f"kept {totals['kept']}  rejected {totals['rejected']}")
    return totals["rows"], totals["row_bytes"]


def _write_stats(out_dir: Path, report: BuildReport) -> None:
    from manifests.query import open_build

    con = open_build(out_dir)
    stats: dict = {"kept": report.result.kept, "rejected": report.result.rejected,
                   "shards": len(report.result.shards)}
    for column in ("source", "modality", "task_family", "split", "status", "reason"):
        rows = con.execute(f'SELECT "{column}", count(*) FROM records GROUP BY ALL ORDER BY 1 NULLS LAST').fetchall()
        stats[f"by_{column}"] = {str(value): count for value, count in rows}
    stats["by_source_task_status"] = [
        {"source": s, "task_family": t, "status": st, "count": n}
        for s, t, st, n in con.execute(
            "SELECT source, task_family, status, count(*) FROM records GROUP BY ALL ORDER BY ALL NULLS LAST"
        ).fetchall()
    ]
    # what this run wrote: the staged rows (no pixels), the second pass's plan files, the shards, the manifest
    result = report.result
    written = {"staged_rows": report.bytes_rows, "plan": result.bytes_plan, "shards": result.bytes_shards,
               "manifest": result.bytes_manifest}
    stats["bytes_written"] = sum(written.values())
    stats["bytes_written_by"] = written
    stats["shard_bytes"] = result.shard_bytes
    stats["shards_written"] = result.shards_written
    stats["samples_copied"] = result.samples_copied  # from the shard that held them before
    stats["samples_reread"] = result.samples_reread  # images read again from their sources by the second pass
    stats["units_reread"] = result.units_reread  # unit reads of the second pass
    stats["finalize_seconds"] = result.seconds
    stats.update(report.extra_stats)
    stats["sources_skipped"] = {s.name: s.reason for s in report.sources if s.root is None}
    stats["sources_empty"] = report.sources_empty
    stats["sources_failed"] = report.sources_failed
    stats["units_changed"] = report.units_changed
    stats["failed_units"] = report.result.failed_units
    stats["licence_mix"] = licence_mix(con, report.access)
    stats["engine_error"] = report.engine_error
    if report.alignment_models:
        stats["alignment_models"] = report.alignment_models
        stats["alignment_demo_weights"] = any(m.get("demo") for m in report.alignment_models.values())
        stats["alignment_cut"] = report.result.alignment
    if report.result.near_duplicates:
        stats["near_duplicates"] = report.result.near_duplicates
    fs, root = storage.filesystem(out_dir)
    storage.write_text(fs, storage.join(root, "stats.json"), json.dumps(stats, indent=2, sort_keys=True))


def _write_resolved_config(out_dir: Path, recipe: Recipe, report: BuildReport) -> None:
    resolved = recipe.to_dict()
    resolved["processing_digest"] = recipe.processing_digest()
    resolved["resolved_sources"] = {
        s.name: {"root": str(s.root) if s.root else None, "skipped": s.reason or None} for s in report.sources
    }
    fs, root = storage.filesystem(out_dir)
    storage.write_text(fs, storage.join(root, "config.resolved.yaml"), yaml.safe_dump(resolved, sort_keys=False))
