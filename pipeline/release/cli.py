"""`unimed release` and `unimed rebuild`: registered into the main parser by pipeline/cli.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # one-line messages, never wrapped mid-path


def _cmd_release(args: argparse.Namespace) -> int:
    from manifests.query import ManifestNotFound
    from pipeline.release.write import ReleaseError, write_release

    try:
        summary = write_release(args.build_dir, Path(args.out), all_rows=args.all_rows, verify=args.verify)
    except (ManifestNotFound, ReleaseError) as err:
        console.print(f"[red]{err}[/red]")
        return 1
    print(f"release: {summary.out.resolve()}: {summary.rows} rows ({summary.kept} kept samples from "
          f"{summary.shards} shards); texts carried for {summary.texts_carried} samples, "
          f"{summary.images_carried} images carried (only where LICENCES.md says so)")
    if args.verify:
        print(f"verified: {summary.images_decoded} images decoded from the shards; {summary.hash_mismatches} "
              "samples' images decode to a hash other than the build's")
    if summary.hash_mismatches:
        console.print(f"[yellow]{summary.hash_mismatches} samples' shard images decode to a hash other than the "
                      "build's (16-bit RGB stored as 8-bit); a rebuild checks the build's hashes[/yellow]")
    return 0


def _cmd_rebuild(args: argparse.Namespace) -> int:
    from pipeline.release.rebuild import rebuild
    from pipeline.release.write import ReleaseError
    from filters.settings import RecipeError

    if args.sources_root and not Path(args.sources_root).is_dir():
        console.print(f"[red]--sources-root {args.sources_root} is not a directory[/red]")
        return 1
    source_paths = {}
    for value in args.source_path:
        name, sep, path = value.partition("=")
        if not (sep and name and path):
            console.print(f"[red]--source-path expects NAME=DIR, got {value!r}[/red]")
            return 1
        source_paths[name] = Path(path)
    try:
        summary = rebuild(Path(args.release), Path(args.out), Path(args.sources_root) if args.sources_root else None,
                          source_paths, args.ray_address, progress=not args.quiet)
    except (ReleaseError, RecipeError, KeyError) as err:
        console.print(f"[red]{err.args[0] if isinstance(err, KeyError) else err}[/red]")
        return 1
    reasons = ", ".join(f"{reason} {count}" for reason, count in summary.by_reason.items()) or "none lost"
    print(f"rebuild: {summary.reproduced} of {summary.released} released samples reproduced "
          f"({100 * summary.fraction:.1f}%); {reasons}; {summary.shards_identical} of {summary.shards_released} "
          f"shards byte-identical to the release; {summary.report.out_dir / 'rebuild.json'}")
    return summary.report.exit_code


def register(commands) -> None:
    release = commands.add_parser("release", help="a metadata-only release of a build (no pixels, texts only where "
                                                  "licences allow), with LICENCES.md and ACKNOWLEDGMENTS.md")
    release.add_argument("build_dir", help="a finished build directory such as build/stage1")
    release.add_argument("--out", required=True, help="the release folder to write")
    release.add_argument("--all-rows", action="store_true", help="every manifest row, not just the kept samples")
    release.add_argument("--verify", action="store_true", help="decode every kept image from its shard and check "
                                                               "it against the hash the build recorded (slow)")
    release.set_defaults(run=_cmd_release)

    rebuild = commands.add_parser("rebuild", help="rebuild a release's samples from your own copies of the sources")
    rebuild.add_argument("release", help="a release folder written by `unimed release`")
    rebuild.add_argument("--sources-root", help="folder holding the datasets' downloads, by their own top folder names")
    rebuild.add_argument("--source-path", action="append", default=[], metavar="NAME=DIR",
                         help="where one source is, overriding discovery (repeatable)")
    rebuild.add_argument("--out", default="build", help="output root; the rebuild goes to OUT/<recipe>")
    rebuild.add_argument("--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else local Ray)")
    rebuild.add_argument("--quiet", action="store_true", help="no progress display")
    rebuild.set_defaults(run=_cmd_rebuild)
