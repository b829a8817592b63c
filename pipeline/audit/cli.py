"""`unimed audit sample|invite|serve|report|ls-export|ls-import`: registered into the main parser by pipeline/cli.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from manifests import storage

console = Console(stderr=True, soft_wrap=True)  # one-line messages, never wrapped mid-path


def _cmd_audit(args: argparse.Namespace) -> int:
    from manifests.query import ManifestNotFound
    from pipeline.audit import AuditError

    try:
        return _run(args)
    except (AuditError, ManifestNotFound) as err:
        console.print(f"[red]{err}[/red]")
        return 1


def _run(args: argparse.Namespace) -> int:
    build = storage.as_location(args.build_dir)  # a folder, or a URL (s3://...) for `sample`
    if args.action == "sample":
        from pipeline.audit.sample import read_sample, write_sample

        path = write_sample(build, n=args.n, seed=args.seed, force=args.force)
        items = read_sample(build)
        by = {}
        for row in items:
            by[row["modality"]] = by.get(row["modality"], 0) + 1
        families = sorted({row["task_family"] for row in items})
        console.print(f"{len(items)} items (seed {args.seed}) -> {path}")
        console.print("by modality: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
        console.print("task families: " + ", ".join(families))
        return 0
    if args.action == "invite":
        return _invite(build, args)
    if args.action == "serve":
        from pipeline.audit.server import is_loopback, serve

        server = serve(build, args.host, args.port, max_idle=args.max_idle)
        host, port = server.server_address[:2]
        raters = server.invitations.names()
        console.print(f"audit of {build} on {host}:{port}: {len(server.items)} items; answers in {server.store.root}; "
                      f"Ctrl-C stops")
        console.print(f"raters sign in with their link from `unimed audit invite`; invited: {', '.join(raters)}"
                      if raters else f"nobody is invited yet: `unimed audit invite {build} --rater NAME` "
                                     "(works while the server runs)")
        if not is_loopback(args.host):
            console.print("[yellow]plain HTTP: put a TLS proxy in front or have raters use an SSH tunnel "
                          "(README, expert audit)[/yellow]")
        try:
            server.serve_until_idle()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return 0
    if args.action == "report":
        from pipeline.audit.agreement import write_report

        summary = write_report(build)
        console.print(f"Q = {summary['Q']:.3f} (target >= {summary['Q_target']}), {summary['items_rated']} items, "
                      f"raters {', '.join(summary['raters'])}")
        for row in summary["agreement"]:
            kappa, alpha = row["fleiss_kappa"], row["krippendorff_alpha"]
            console.print(f"  {row['dimension']:<28} kappa {'-' if kappa is None else f'{kappa:.3f}':>7}  "
                          f"alpha({row['alpha_level']}) {'-' if alpha is None else f'{alpha:.3f}':>7}")
        console.print("files: " + ", ".join(summary["files"]) + f" under {build}")
        return 0
    if args.action == "ls-export":
        from pipeline.audit.labelstudio import export_tasks

        counts = export_tasks(build, Path(args.out), image_url_prefix=args.image_url_prefix)
        console.print(f"{counts['tasks']} tasks, {counts['annotations']} annotations -> {args.out}/tasks.json "
                      f"(labeling config: {args.out}/label_config.xml)")
        return 0
    if args.action == "ls-import":
        from pipeline.audit.labelstudio import import_annotations

        print(json.dumps(import_annotations(build, Path(args.file))))
        return 0
    raise AssertionError(args.action)


def _invite(build: Path, args: argparse.Namespace) -> int:
    from pipeline.audit.invitations import invite, invited, link, raters_path, revoke

    if args.list:
        for name in invited(build):
            print(name)
        return 0
    if args.revoke is not None:
        left = revoke(build, args.revoke)
        console.print(f"revoked {args.revoke}: their link no longer signs in (a running server sees it on the next "
                      f"request; their answers stay). Invited: {', '.join(left) or 'nobody'}")
        return 0
    token = invite(build, args.rater)
    address = link(token, args.host, args.port, args.url)
    console.print(f"invited {args.rater.strip()}; {raters_path(build)} keeps only a hash of the token (inviting "
                  f"again replaces the link). Send this link privately; it signs in as {args.rater.strip()}:")
    print(address)
    return 0


def register(commands) -> None:
    audit = commands.add_parser("audit", help="expert audit (spec 3.3): sample, rate in the browser, agreement")
    actions = audit.add_subparsers(dest="action", required=True)
    sample = actions.add_parser("sample", help="stratified sample by modality, every task family represented")
    sample.add_argument("--n", type=int, default=200, help="items (default 200)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--force", action="store_true", help="redraw even though answers exist")
    invite = actions.add_parser("invite", help="a rater's secret sign-in link (made again: a new link, the old one "
                                               "stops working); only a hash is stored")
    who = invite.add_mutually_exclusive_group(required=True)
    who.add_argument("--rater", metavar="NAME", help="invite NAME (or give NAME a new link); the link is printed last")
    who.add_argument("--revoke", metavar="NAME", help="remove NAME's token: their link stops working")
    who.add_argument("--list", action="store_true", help="print the invited raters' names")
    invite.add_argument("--host", default="127.0.0.1", help="the address raters reach the server at (for the link)")
    invite.add_argument("--port", type=int, default=8765, help="the port `audit serve` listens on (default 8765)")
    invite.add_argument("--url", help="the public address instead of --host/--port, behind a TLS reverse proxy "
                                      "(e.g. https://audit.example.org/)")
    serve = actions.add_parser("serve", help="the rating web app for invited raters (loopback by default)")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1, this machine only; "
                                                           "another address needs an invited rater)")
    serve.add_argument("--max-idle", type=float, default=0,
                       help="stop after this many seconds without a request (default 0: never)")
    actions.add_parser("report", help="mean and Q per dimension and modality, Fleiss' kappa, Krippendorff's alpha; "
                                      "CSV/Parquet in BUILD/audit/report")
    ls_export = actions.add_parser("ls-export", help="write the sample (and answers) as Label Studio tasks JSON")
    ls_export.add_argument("--out", required=True)
    ls_export.add_argument("--image-url-prefix", default="/data/local-files/?d=",
                           help="prefix of each task's image URL, followed by SHARD/KEY.MEMBER")
    ls_import = actions.add_parser("ls-import", help="append the scores of a Label Studio JSON export")
    ls_import.add_argument("file")
    for sub in (sample, invite, serve, actions.choices["report"], ls_export, ls_import):
        sub.add_argument("build_dir", help="a build directory such as build/stage1")
    audit.set_defaults(run=_cmd_audit)
