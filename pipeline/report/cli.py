"""`unimed report`: registered into the main parser by pipeline/cli.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # one-line messages, never wrapped mid-path


def _cmd_report(args: argparse.Namespace) -> int:
    from manifests.query import ManifestNotFound
    from pipeline.report.html import write_report

    try:
        index = write_report(args.build_dir, args.out, per_gallery=args.gallery)
    except ManifestNotFound as err:
        console.print(f"[red]{err}[/red]")
        return 1
    print(f"report: {index.resolve() if isinstance(index, Path) else index}")
    return 0


def register(commands) -> None:
    report = commands.add_parser("report", help="static HTML report of a build (funnel, counts, alignment, "
                                                "galleries, licences, models, audit); opens from disk")
    report.add_argument("build_dir",
                        help="a build directory such as build/stage1, or its URL (s3://bucket/prefix/stage1)")
    report.add_argument("--out", help="output folder or URL (default BUILD/report)")
    report.add_argument("--gallery", type=int, default=12, help="samples per gallery (default 12)")
    report.set_defaults(run=_cmd_report)
