"""`unimed`: list sources, write the sample tree, build, score, and query manifests."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

# Offline first: nothing in a build may reach for a model hub or send telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

console = Console(stderr=True)
log = logging.getLogger("unimed")


def _cmd_sources(args: argparse.Namespace) -> int:
    from sources import SOURCES

    cards = [cls.card for cls in SOURCES.values()]
    if args.json:
        fields = ("name", "title", "modalities", "tasks", "licence", "access", "url", "citation", "root_names", "counts",
                  "hub_repos", "redistribute_text", "redistribute_images")
        print(json.dumps([{f: getattr(card, f) for f in fields} for card in cards], indent=2))
        return 0
    table = Table(title=f"{len(cards)} registered sources")
    for column in ("name", "modalities", "tasks", "licence", "access", "counts", "folder under --sources-root",
                   "Hub repos"):
        table.add_column(column)
    for card in cards:
        table.add_row(card.name, ", ".join(card.modalities), ", ".join(card.tasks), card.licence, card.access,
                      card.counts, " | ".join(card.root_names), " | ".join(card.hub_repos))
    Console().print(table)
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from sources.samples import write_sample_tree

    only = args.only.split(",") if args.only else None
    written = write_sample_tree(Path(args.out), only)
    for name, path in written.items():
        console.print(f"sample {name}: {path}")
    return 0


def _parse_source_paths(values: list[str]) -> dict[str, Path | str]:
    paths = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--source-path expects NAME=DIR, got {value!r}")
        paths[name] = _input_location(path)
    return paths


def _input_location(value: str) -> Path | str:
    """A folder the build reads from, resolved here once: an absolute path, or a URL (`s3://bucket/datasets`)."""
    from manifests.storage import is_url

    return value if is_url(value) else Path(value).resolve()


def _is_folder(location: Path | str) -> bool:
    from sources.io.files import source_path

    try:
        return source_path(location).is_dir()
    except (OSError, ValueError, ImportError) as err:  # an unknown protocol, a store that refuses: say so
        log.debug("checking %s failed: %s", location, err)
        return False


def _cmd_build(args: argparse.Namespace) -> int:
    from pipeline.engine.build import build
    from pipeline.config import RecipeError, load_recipe
    from filters.models import ModelNotAvailable
    from pipeline.engine.licences import AccessRefused
    from pipeline.engine.reread import MissingPixels

    try:
        recipe = load_recipe(args.recipe)
    except RecipeError as err:
        console.print(f"[red]recipe error:[/red] {err}")
        return 1
    if args.align:
        recipe.alignment.enabled = True
    if args.models_dir:
        recipe.alignment.models_dir = args.models_dir
        recipe.cag.models_dir = args.models_dir
    if args.plan:
        _print_plan(recipe)
        return 0
    only = args.only.split(",") if args.only else None
    sources_root = _input_location(args.sources_root) if args.sources_root else None
    if sources_root is not None and not _is_folder(sources_root):
        console.print(f"[red]--sources-root {args.sources_root} is not a directory[/red]")
        return 1
    try:
        report = build(recipe, args.out, sources_root,
                       _parse_source_paths(args.source_path), only, args.ray_address, progress=not args.quiet,
                       hq_build=_input_location(args.hq_build) if args.hq_build else None, refresh=args.refresh,
                       access=args.access)
    except (RecipeError, AccessRefused, KeyError, ModelNotAvailable, MissingPixels) as err:  # one line, what to do
        prefix = {RecipeError: "recipe error: ", ModelNotAvailable: "model missing: "}.get(type(err), "")
        console.print(f"[red]{prefix}{err.args[0] if isinstance(err, KeyError) else err}[/red]")
        return 1
    _print_summary(report)
    return report.exit_code


def _print_plan(recipe) -> None:
    from pipeline.engine.plan import describe_plan

    table = Table(title=f"recipe {recipe.name}: the stages a build runs, in order")
    for column in ("#", "stage", "runs as", "num_cpus", "num_gpus", "actors", "batch"):
        table.add_column(column)
    for number, row in enumerate(describe_plan(recipe), 1):
        table.add_row(str(number), row["stage"], row["runs_as"], f"{row['num_cpus']:g}", f"{row['num_gpus']:g}",
                      str(row["actors"] or "-"), str(row["batch_size"] or "block"))
    Console(width=120).print(table)


def _print_summary(report) -> None:
    from manifests.query import open_build

    con = open_build(report.out_dir)
    table = Table(title=f"{report.out_dir}: kept {report.result.kept}, rejected {report.result.rejected}")
    for column in ("source", "task", "kept", "rejected"):
        table.add_column(column, justify="right" if column in ("kept", "rejected") else "left")
    rows = con.execute(
        "SELECT source, coalesce(task_family, '-'), count(*) FILTER (status = 'kept'), "
        "count(*) FILTER (status <> 'kept') FROM records GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    for source, task, kept, rejected in rows:
        table.add_row(source, task, str(kept), str(rejected))
    Console().print(table)
    reasons = con.execute(
        "SELECT reason, count(*) FROM rejected GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 12"
    ).fetchall()
    if reasons:
        console.print("rejections: " + ", ".join(f"{reason} {count}" for reason, count in reasons))
    for source in report.sources:
        if source.root is None:
            console.print(f"[yellow]skipped {source.name}[/yellow]: {source.reason}")
    for name, reason in getattr(report, "sources_empty", {}).items():
        console.print(f"[yellow]empty {name}[/yellow]: {reason}", soft_wrap=True)
    for name, reason in getattr(report, "sources_failed", {}).items():
        label = "skipped" if report.sources_failed_skipped else "[red]failed[/red]"
        console.print(f"{label} {name}: {reason}", soft_wrap=True)
    for failed in report.result.failed_units:
        console.print(f"[red]failed unit {failed['unit_id']}[/red]: {failed['error'].splitlines()[0]}")
    if report.engine_error:
        console.print(f"[red]pipeline stopped early:[/red] {report.engine_error}")
    _print_alignment(report)
    if report.result.near_duplicates:
        _print_contamination(report.result.near_duplicates)
    records = getattr(report, "records_read", report.result.kept + report.result.rejected)
    rate = records / report.wall_seconds if report.wall_seconds else 0.0
    console.print(
        f"{len(report.result.shards)} shards ({report.result.shards_written} written this run) in "
        f"{report.out_dir}/shards; manifest {report.out_dir}/manifest; stats {report.out_dir}/stats.json"
    )
    changed = f" ({report.units_changed} with changed inputs)" if getattr(report, "units_changed", 0) else ""
    console.print(f"units {report.units_run}/{report.units_total} run{changed}; {records} records read in "
                  f"{report.wall_seconds:.1f} s ({rate:.1f} records/s)", soft_wrap=True)
    if report.result.failed_units or report.engine_error:
        console.print("[red]build incomplete[/red]: rerun the same command to retry the failed units")
    elif report.exit_code:
        console.print("[red]build incomplete[/red]: fix the failed sources above (or set execution.on_source_error: "
                      "skip in the recipe), then rerun the same command")


def _print_alignment(report) -> None:
    if not report.alignment_models:
        return
    for role, info in report.alignment_models.items():
        label = "[yellow]DEMO WEIGHTS (tiny, random: scores are meaningless)[/yellow]" if info.get("demo") else ""
        console.print(f"alignment {role}: {info['model']} from {info.get('path') or info.get('served_by')} {label}")
    cut = report.result.alignment
    if cut:
        console.print(f"alignment: {cut.get('scored', 0)} pairs scored, {cut.get('below_cut', 0)} below the cut, "
                      f"{cut.get('unscored', 0)} without a score")


def _print_contamination(summary: dict, title: str = "contamination") -> None:
    if "near_duplicate" in summary:
        console.print(f"near duplicates rejected: {summary['near_duplicate']}; "
                      f"benchmark overlap rejected: {summary.get('benchmark_overlap', 0)}")
    rows = summary.get("report") or []
    if not rows:
        return
    table = Table(title=f"{title}: benchmark items with a training neighbour (embedding columns: no stored "
                        "image embedding)")
    columns = ("benchmark", "source", "benchmark_items", "exact", "phash_le_4", "phash_le_8", "phash_le_16",
               "text_jaccard_ge_0_5", "rejected_rows")
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*(str(row[column]) for column in columns))
    Console(width=140).print(table)
    if summary.get("benchmarks_missing") not in (None, "", "[]"):
        console.print(f"[yellow]benchmarks not read[/yellow]: {summary['benchmarks_missing']}")


def _cmd_contamination(args: argparse.Namespace) -> int:
    from pipeline.config import RecipeError
    from pipeline.rescore.contamination import ContaminationError, contamination_of_build

    sources_root = _input_location(args.sources_root) if args.sources_root else None
    if sources_root is not None and not _is_folder(sources_root):
        console.print(f"[red]--sources-root {args.sources_root} is not a directory[/red]")
        return 1
    try:
        summary = contamination_of_build(args.build_dir, args.against.split(",") if args.against else None,
                                         sources_root,
                                         Path(args.out) if args.out else None)
    except (RecipeError, ContaminationError) as err:
        console.print(f"[red]{err}[/red]")
        return 1
    _print_contamination(summary, f"{args.build_dir} (rejected rows: would be rejected; the build is unchanged)")
    return 0


def _cmd_demo_models(args: argparse.Namespace) -> int:
    from filters.demo_models import write_demo_models

    only = args.only.split(",") if args.only else None
    for role, path in write_demo_models(Path(args.out), only).items():
        console.print(f"demo model {role}: {path} [yellow](tiny random weights, for tests and demos)[/yellow]")
    return 0


def _cmd_rethreshold(args: argparse.Namespace) -> int:
    from pipeline.config import RecipeError
    from pipeline.rescore.rethreshold import rethreshold

    changes = {"normalize": args.normalize, "normalize_scope": args.normalize_scope, "m_score": args.m_score,
               "lambda_s": args.lambda_s, "keep_fraction": args.keep_fraction, "keep_scope": args.keep_scope,
               "unscored": args.unscored}
    try:
        report = rethreshold(args.build_dir, **{k: v for k, v in changes.items() if v is not None})
    except RecipeError as err:
        console.print(f"[red]{err}[/red]")
        return 1
    _print_summary(report)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from pipeline.engine.ray_setup import ClusterTooSmall
    from pipeline.config import RecipeError
    from filters.models import ModelNotAvailable
    from pipeline.rescore.score import score_build

    try:
        report = score_build(args.build_dir, only=args.only, models_dir=args.models_dir,
                             ray_address=args.ray_address, cut=not args.no_cut)
    except (RecipeError, ModelNotAvailable, ClusterTooSmall) as err:
        console.print(f"[red]{err}[/red]")
        return 1
    for role, info in report.models.items():
        label = "[yellow]DEMO WEIGHTS (tiny, random: scores are meaningless)[/yellow]" if info.get("demo") else ""
        console.print(f"{role}: {info['model']} from {info.get('path') or info.get('served_by')} {label}")
    console.print(f"{args.only}: {report.pairs} pairs ({report.cached} from the cache, {report.scored} scored now "
                  f"from {report.shards_read} shards), {report.exempt} exempt by the text policy")
    if report.missing:
        console.print(f"[yellow]{report.missing} samples were not found in their shards[/yellow]")
    if report.finalized is not None:
        _print_summary(report.finalized)
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from manifests.query import ManifestNotFound, open_build

    try:
        con = open_build(args.build_dir)
    except ManifestNotFound as err:
        console.print(f"[red]{err}[/red]")
        return 1
    import duckdb

    try:
        relation = con.sql(args.sql)
    except duckdb.Error as err:
        console.print(f"[red]query failed:[/red] {err}")
        return 1
    if relation is None:
        return 0
    if args.format == "csv":
        relation.to_df().to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(relation.to_df().to_json(orient="records", force_ascii=False))
    else:
        table = Table()
        for column in relation.columns:
            table.add_column(column)
        for row in relation.fetchall():
            table.add_row(*("" if value is None else str(value) for value in row))
        Console().print(table)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pipeline.curriculum.export import DEFAULT_RANKS, DEFAULT_WORKERS, SKIPPED_LISTED, export_unimedvl
    from pipeline.curriculum.export_check import check_export

    if args.check:
        problems = check_export(Path(args.check), ranks=args.ranks, workers=args.workers)
        for problem in problems:
            console.print(f"[red]problem[/red] {problem}", highlight=False)
        console.print(f"{args.check}: {len(problems)} problem(s)" if problems else f"{args.check}: OK")
        return 1 if problems else 0
    if not args.build_dir or not args.out:
        console.print("[red]give one or more build directories and --out (or --check EXPORT)[/red]")
        return 2
    try:
        report = export_unimedvl(list(args.build_dir), Path(args.out),
                                 ranks=DEFAULT_RANKS if args.ranks is None else args.ranks,
                                 workers=DEFAULT_WORKERS if args.workers is None else args.workers)
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[red]{err}[/red]")
        return 1
    table = Table(title=f"exported to {report.out}")
    for column in ("loader", "dataset", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for (registry, dataset), count in sorted(report.rows.items()):
        table.add_row(registry, dataset, str(count))
    Console().print(table)
    console.print(f"{report.images} image files for {report.image_refs} image references; T2I parquet "
                  f"{report.t2i_rows} rows in {report.t2i_files} files "
                  f"(for {report.ranks} ranks x {report.workers} workers); dataset_info.yaml, "
                  f"unimed_dataset_info.py and configs/stage{{{','.join(map(str, report.stages))}}}.yaml in "
                  f"{report.out}", highlight=False)
    for skipped in report.skipped[:20]:
        console.print(f"[yellow]skipped[/yellow] {skipped}", highlight=False)
    if report.skipped_count > 20:
        console.print(f"[yellow]skipped[/yellow] {report.skipped_count - 20} more rows ({report.out}/unimed_export.json "
                      f"names the first {SKIPPED_LISTED})", highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from pipeline.curriculum.train import TrainConfig, loss_trend, train

    config = TrainConfig(builds=args.build or ["build/stage1"], out=args.out,
                         stages=tuple(int(s) for s in args.stage.split(",")),
                         steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, mode=args.mode,
                         num_workers=args.workers, log_every=args.log_every,
                         checkpoint_every=args.checkpoint_every, resume=args.resume)
    history = train(config)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    table = Table(title=f"per-family loss (0.25 CE + 1.0 MSE), first vs last logged windows "
                        f"(log: {args.out}/metrics.jsonl)")
    for column in ("family", "first", "last", "falling"):
        table.add_column(column)
    for family, (first, last) in loss_trend(history).items():
        table.add_row(family, f"{first:.3f}", f"{last:.3f}", "yes" if last < first else "[red]no[/red]")
    Console().print(table)
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unimed", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    sources = commands.add_parser("sources", help="list the source adapters and their dataset cards")
    sources.add_argument("--json", action="store_true", help="machine-readable output")
    sources.set_defaults(run=_cmd_sources)

    sample = commands.add_parser("sample", help="write the bundled sample tree (real layouts, tiny)")
    sample.add_argument("--out", default="data/sample", help="where to write it (default data/sample)")
    sample.add_argument("--only", help="comma-separated source names")
    sample.set_defaults(run=_cmd_sample)

    build = commands.add_parser("build", help="build a recipe into shards and a manifest")
    build.add_argument("--recipe", required=True, help="bundled recipe name (stage1) or a YAML path")
    build.add_argument("--sources-root", help="folder holding the datasets' downloads, by their own top folder names, "
                       "or a Hugging Face Hub cache (hub/ with datasets--owner--name folders); a folder or an "
                       "fsspec URL such as s3://bucket/datasets")
    build.add_argument("--source-path", action="append", default=[], metavar="NAME=DIR",
                       help="where one source is (a folder or a URL), overriding discovery (repeatable)")
    build.add_argument("--out", default="build", help="output root, a folder or an fsspec URL such as s3://bucket/prefix; "
                       "the build goes to OUT/<recipe> (default build)")
    build.add_argument("--only", help="comma-separated source names to build")
    build.add_argument("--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else local Ray)")
    build.add_argument("--quiet", action="store_true", help="no progress display")
    build.add_argument("--align", action="store_true", help="run the alignment filter (MedGemma/E5/MedSigLIP)")
    build.add_argument("--models-dir", help="folder searched first for the alignment models (e.g. demo models)")
    build.add_argument("--plan", action="store_true", help="print the ordered stages and their resources; run nothing")
    build.add_argument("--hq-build", help="stage 2: the finished stage-1 build to take the high-quality subset from")
    build.add_argument("--refresh", action="store_true",
                       help="re-read every unit, even those already built from unchanged inputs")
    build.add_argument("--access", choices=("public", "any"),
                       help="public: refuse credentialed and registration-only sources (default: the recipe's "
                            "`access`, else any)")
    build.set_defaults(run=_cmd_build)

    demo = commands.add_parser("demo-models", help="write tiny random alignment models (demo weights) for tests")
    demo.add_argument("--out", default="build/demo-models", help="where (default build/demo-models)")
    demo.add_argument("--only", help="comma-separated: medgemma,e5,medsiglip,biomedclip")
    demo.set_defaults(run=_cmd_demo_models)

    rethr = commands.add_parser("rethreshold", help="re-decide the alignment cut of a build from its scores "
                                                     "(no model runs)")
    rethr.add_argument("build_dir", help="a build directory such as build/stage1, or its URL")
    rethr.add_argument("--normalize", choices=("minmax", "rank"))
    rethr.add_argument("--normalize-scope", choices=("global", "source", "modality"))
    rethr.add_argument("--m-score", choices=("logit", "sigmoid"))
    rethr.add_argument("--lambda", dest="lambda_s", type=float, help="S_final = lambda * S + M")
    rethr.add_argument("--keep-fraction", type=float, help="top fraction kept (paper 0.5)")
    rethr.add_argument("--keep-scope", choices=("global", "source", "modality"))
    rethr.add_argument("--unscored", choices=("reject", "keep"))
    rethr.set_defaults(run=_cmd_rethreshold)

    score = commands.add_parser("score", help="alignment scores for an existing build, read from its shards "
                                              "(shards are not rewritten)")
    score.add_argument("build_dir", help="a build directory such as build/stage1, or its URL")
    score.add_argument("--only", choices=("alignment", "biomedclip"), default="alignment",
                       help="alignment: MedGemma/E5/MedSigLIP raw scores, then the recipe's cut; "
                            "biomedclip: the align_bmc column alone (default alignment)")
    score.add_argument("--models-dir", help="folder searched first for the models (e.g. demo models)")
    score.add_argument("--no-cut", action="store_true",
                       help="alignment: write the scores but reject nothing (apply later with `rethreshold`)")
    score.add_argument("--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else local Ray)")
    score.set_defaults(run=_cmd_score)

    query = commands.add_parser("query", help="SQL over a build's manifest (views: records, kept, rejected)")
    query.add_argument("build_dir", help="a build directory such as build/stage1, or its URL (s3://bucket/prefix/stage1)")
    query.add_argument("sql")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table")
    query.set_defaults(run=_cmd_query)
    contam = commands.add_parser("contamination", help="benchmark contamination report over an existing build "
                                                       "(reads its hash columns; changes nothing)")
    contam.add_argument("build_dir", help="a build directory built with near_duplicates.enabled")
    contam.add_argument("--against", help="comma-separated benchmark sources (default: the recipe's list); "
                                          "splits from the recipe's list, else validate,test")
    contam.add_argument("--sources-root", required=True, help="folder (or URL) holding the benchmarks' downloads")
    contam.add_argument("--out", help="also write the report to this Parquet file")
    contam.set_defaults(run=_cmd_contamination)
    export = commands.add_parser("export", help="write a build in the formats UniMedVL's and Bagel's loaders read")
    export.add_argument("build_dir", nargs="*", help="one or more build directories such as build/stage1")
    export.add_argument("--format", choices=("unimedvl",), default="unimedvl",
                        help="unimedvl: JSONL + images, T2I parquet, dataset_info and per-stage Bagel configs")
    export.add_argument("--out", help="output folder")
    export.add_argument("--ranks", type=int, help="training ranks (GPUs) the export is cut for (default 8)")
    export.add_argument("--workers", type=int, help="DataLoader workers per rank (default 1)")
    export.add_argument("--check", metavar="EXPORT", help="validate an existing export offline, one line per problem")
    export.set_defaults(run=_cmd_export)

    train = commands.add_parser("train", help="reference training loop (tiny unified model) over the curriculum")
    train.add_argument("--stage", default="1", help="stage number, or stages in order such as 1,2,3")
    train.add_argument("--build", action="append", default=None,
                       help="build directory (repeatable; default build/stage1)")
    train.add_argument("--out", default="runs/stage1", help="metrics and checkpoints go here")
    train.add_argument("--steps", type=int, default=300, help="total steps; the paper's stage lengths scaled to fit")
    train.add_argument("--batch-size", type=int, default=8, help="per rank")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--mode", choices=("random", "stratified"), default="random")
    train.add_argument("--workers", type=int, default=0, help="DataLoader workers per rank")
    train.add_argument("--log-every", type=int, default=25)
    train.add_argument("--checkpoint-every", type=int, default=100)
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    train.set_defaults(run=_cmd_train)

    from pipeline.audit.cli import register as register_audit
    from pipeline.release.cli import register as register_release
    from pipeline.report.cli import register as register_report

    register_report(commands)
    register_audit(commands)
    register_release(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except Exception as err:  # noqa: BLE001 - the last resort: one line, the traceback only with -v
        if args.verbose:
            raise
        console.print(f"[red]unimed {args.command} failed:[/red] {type(err).__name__}: {err} "
                      "(rerun with -v for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
