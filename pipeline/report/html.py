"""`unimed report BUILD [--out DIR]`: one static HTML page and its images/ folder; opens from disk, no network.

Everything is read from the build's outputs: the manifest (DuckDB views records/kept/rejected), the shards
(gallery images), stats.json (models, demo weights), config.resolved.yaml (recipe name) and, when an audit
was reported, BUILD/audit/report/summary.json. Plots are matplotlib PNGs (Agg backend, no display needed).

Every number is aggregated in DuckDB, memory-limited: counts, histogram bins (the edges span both kept and
rejected values), image sizes binned on a grid, approximate medians (t-digest), and the gallery's samples
picked per modality by a top-N aggregate. What reaches Python is a few hundred rows, whatever the corpus size.
"""

from __future__ import annotations

import html
import json
import logging
import posixpath
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyarrow as pa  # noqa: E402
import yaml  # noqa: E402

from filters.alignment.cut import CUT_REASON, UNSCORED_REASON  # noqa: E402
from manifests import storage  # noqa: E402
from manifests.query import QUERY_MEMORY_LIMIT, open_build  # noqa: E402
from manifests.shards import ShardReader  # noqa: E402
from pipeline.report.shards import staged_members  # noqa: E402

log = logging.getLogger(__name__)

# Where each rejection reason sits in the funnel. Coarse reasons are the filters' (filters/resolution.py,
# image_quality.py, text_quality.py); anything not named here was rejected by the source adapter.
COARSE_REASONS = {"image_too_small", "aspect_ratio", "image_too_large", "image_blank", "text_too_short",
                  "text_too_long", "text_garbage", "language"}
DEDUP_REASONS = {"duplicate", "near_duplicate", "benchmark_overlap"}  # exact, near (filters/near_duplicates.py), decontamination
ALIGN_REASONS = {CUT_REASON, UNSCORED_REASON}
AUDIT_SUMMARY = "audit/report/summary.json"
FUNNEL_STEPS = ("adapter", "coarse", "dedup", "alignment")
ALIGN_BINS, TEXT_BINS, SIZE_CELLS = 15, 30, 24  # histogram bins; image sizes binned on a SIZE_CELLS^2 grid
SECTIONS = ("summary", "funnel", "counts", "alignment", "distributions", "gallery-kept", "gallery-rejected",
            "licences", "models", "audit")


def stage_of(reason: str | None) -> str:
    if reason in COARSE_REASONS:
        return "coarse"
    if reason in DEDUP_REASONS:
        return "dedup"
    if reason in ALIGN_REASONS:
        return "alignment"
    return "adapter"


@dataclass
class Page:
    out: Path
    parts: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, fig, name: str, alt: str) -> None:
        path = self.out / "images" / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        self.images.append(path.name)
        self.add(f'<img class="plot" src="images/{path.name}" alt="{html.escape(alt)}">')


def _esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _table(columns: list[str], rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _rows(con, sql: str, params=None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


def _funnel(con, page: Page) -> None:
    rows = _rows(con, "SELECT source, coalesce(task_family, '(none)') AS family, status, reason, count(*) AS n "
                      "FROM records GROUP BY ALL")
    table: dict[tuple[str, str], dict] = {}
    totals = {"input": 0, **{s: 0 for s in FUNNEL_STEPS}, "kept": 0}
    for r in rows:
        entry = table.setdefault((r["source"], r["family"]), {"input": 0, **{s: 0 for s in FUNNEL_STEPS}, "kept": 0,
                                                                "reasons": {}})
        entry["input"] += r["n"]
        totals["input"] += r["n"]
        if r["status"] == "kept":
            entry["kept"] += r["n"]
            totals["kept"] += r["n"]
        else:
            stage = stage_of(r["reason"])
            entry[stage] += r["n"]
            totals[stage] += r["n"]
            entry["reasons"][r["reason"]] = entry["reasons"].get(r["reason"], 0) + r["n"]
    page.add('<section id="funnel"><h2>Funnel: input &rarr; adapter &rarr; coarse &rarr; dedup &rarr; alignment '
             '&rarr; kept</h2>')
    left, labels = totals["input"], ["input"]
    remaining = [left]
    for stage in FUNNEL_STEPS:
        left -= totals[stage]
        remaining.append(left)
        labels.append(f"after {stage}")
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.barh(labels[::-1], remaining[::-1], color="#3b7dd8")
    for y, value in enumerate(remaining[::-1]):
        ax.text(value, y, f" {value}", va="center")
    ax.set_xlabel("records")
    ax.set_title("records left after each step (all sources)")
    page.figure(fig, "funnel", "funnel of all records")
    out = []
    for (source, family), e in sorted(table.items()):
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(e["reasons"].items(), key=lambda kv: (-kv[1], kv[0])))
        out.append([source, family, e["input"], *(f"-{e[s]}" if e[s] else "" for s in FUNNEL_STEPS), e["kept"], reasons])
    out.append(["all", "", totals["input"], *(f"-{totals[s]}" if totals[s] else "" for s in FUNNEL_STEPS),
                totals["kept"], ""])
    page.add(_table(["source", "task family", "input", "adapter", "coarse", "dedup", "alignment", "kept",
                     "reasons"], out, "funnel"))
    page.add("</section>")


def _bar(page: Page, name: str, title: str, counts: list[tuple[str, int]]) -> None:
    fig, ax = plt.subplots(figsize=(6, max(1.6, 0.28 * len(counts) + 0.8)))
    labels = [str(k) for k, _ in counts][::-1]
    ax.barh(labels, [v for _, v in counts][::-1], color="#4a9")
    ax.set_title(title)
    ax.set_xlabel("kept samples")
    page.figure(fig, name, title)


def _counts(con, page: Page) -> None:
    page.add('<section id="counts"><h2>Kept samples by modality, task and source</h2><div class="grid">')
    for column, title in (("modality", "by modality"), ("task_family", "by task family"),
                          ("sub_task_type", "by task type"), ("source", "by source")):
        counts = [(r["k"], r["n"]) for r in _rows(con, f"SELECT coalesce({column}, '(none)') AS k, count(*) AS n "
                                                        "FROM kept GROUP BY ALL ORDER BY n DESC, k")]
        page.add(f"<div><h3>{title}</h3>")
        if counts:
            _bar(page, f"count_{column}", f"kept {title}", counts)
        page.add(_table([column, "kept"], [list(c) for c in counts]) + "</div>")
    page.add("</div></section>")


SCORES = ("align_s", "align_m", "align_final")
# Per (modality, score, status): counts in ALIGN_BINS bins between the lowest and highest value of that
# modality and score (kept and rejected together, so the bars of both line up); `ranges` is the small table
# of those bounds, computed first, so the scores stream once through one aggregate.
ALIGN_HIST_SQL = f"""
SELECT s.modality, s.score, s.status, any_value(r.lo) AS lo, any_value(r.hi) AS hi,
       coalesce(least(CAST(floor((s.x - r.lo) / nullif(r.hi - r.lo, 0) * {ALIGN_BINS}) AS INTEGER), {ALIGN_BINS - 1}),
                0) AS bin, count(*) AS n
FROM ({" UNION ALL ".join(
    f"SELECT coalesce(modality, '(none)') AS modality, CASE WHEN status = 'kept' THEN 'kept' ELSE 'rejected' END "
    f"AS status, '{score}' AS score, {score} AS x FROM records WHERE align_final IS NOT NULL AND {score} IS NOT NULL"
    for score in SCORES)}) s
JOIN ranges r ON r.modality = s.modality AND r.score = s.score
GROUP BY s.modality, s.score, s.status, bin
"""


def _histogram(rows: list[dict], bins: int) -> tuple[list[float], dict[str, list[int]]]:
    """(bin edges, status -> counts) from rows of (lo, hi, status, bin, n) of one histogram."""
    lo, hi = rows[0]["lo"], rows[0]["hi"]
    hi = hi if hi > lo else lo + 1
    counts: dict[str, list[int]] = {}
    for row in rows:
        counts.setdefault(row["status"], [0] * bins)[row["bin"]] += row["n"]
    return [lo + (hi - lo) * i / bins for i in range(bins + 1)], counts


def _alignment(con, page: Page) -> None:
    page.add('<section id="alignment"><h2>Alignment scores per modality (S, M, S_final) with the cut</h2>')
    summary = _rows(con, "SELECT coalesce(modality, '(none)') AS modality, count(*) AS scored, "
                         "count(*) FILTER (status = 'kept') AS kept, count(*) FILTER (reason = ?) AS below, "
                         "min(align_final) FILTER (status = 'kept') AS cut FROM records "
                         "WHERE align_final IS NOT NULL GROUP BY ALL ORDER BY modality", [CUT_REASON])
    if not summary:
        page.add("<p>No alignment scores in this build (the recipe ran without <code>--align</code>).</p></section>")
        return
    page.add("<p>The dashed line is the cut as it fell: the lowest S_final kept in that modality (the cut is applied "
             "per the recipe's keep scope, so within a modality it may vary by source). Counts are scored pairs.</p>")
    bounds = ", ".join(f"min({c}), max({c})" for c in SCORES)
    ranges = {"modality": [], "score": [], "lo": [], "hi": []}
    for modality, *values in con.execute(f"SELECT coalesce(modality, '(none)'), {bounds} FROM records "
                                         "WHERE align_final IS NOT NULL GROUP BY ALL").fetchall():
        for k, score in enumerate(SCORES):
            if values[2 * k] is not None:
                ranges["modality"].append(modality)
                ranges["score"].append(score)
                ranges["lo"].append(float(values[2 * k]))
                ranges["hi"].append(float(values[2 * k + 1]))
    con.register("ranges", pa.table(ranges, schema=pa.schema([("modality", pa.string()), ("score", pa.string()),
                                                               ("lo", pa.float64()), ("hi", pa.float64())])))
    bins: dict[tuple[str, str], list[dict]] = {}
    for row in _rows(con, ALIGN_HIST_SQL):
        bins.setdefault((row["modality"], row["score"]), []).append(row)
    con.unregister("ranges")
    fig, axes = plt.subplots(len(summary), 3, figsize=(10, 1.9 * len(summary)), squeeze=False)
    cut_rows = []
    for i, entry in enumerate(summary):
        modality, cut = entry["modality"], entry["cut"]
        cut_rows.append([modality, entry["scored"], entry["kept"], entry["below"], "" if cut is None else f"{cut:.3f}"])
        for j, (column, label) in enumerate((("align_s", "S"), ("align_m", "M"), ("align_final", "S_final"))):
            ax = axes[i][j]
            if (modality, column) in bins:
                edges, counts = _histogram(bins[(modality, column)], ALIGN_BINS)
                for status, colour in (("kept", "#2a7"), ("rejected", "#c44")):
                    if status in counts:
                        ax.stairs(counts[status], edges, fill=True, alpha=0.6, color=colour, label=status)
            if column == "align_final" and cut is not None:
                ax.axvline(cut, color="black", linestyle="--", label=f"cut {cut:.2f}")
            ax.set_title(f"{modality}: {label}", fontsize=9)
            ax.tick_params(labelsize=7)
            if i == 0 and j == 2:
                ax.legend(fontsize=7)
    fig.tight_layout()
    page.figure(fig, "alignment_hist", "histograms of S, M and S_final per modality")
    page.add(_table(["modality", "scored", "kept", "below cut", "cut (lowest kept S_final)"], cut_rows))
    page.add("</section>")


def _distributions(con, page: Page) -> None:
    page.add('<section id="distributions"><h2>Text length and image size</h2>')
    status = "CASE WHEN status = 'kept' THEN 'kept' ELSE 'rejected' END"
    lo, hi = con.execute("SELECT min(text_chars), max(text_chars) FROM records").fetchall()[0]
    text = [] if lo is None else _rows(con, f"""
        SELECT {status} AS status, {lo} AS lo, {hi} AS hi,
               coalesce(least(CAST(floor((text_chars - {lo}) / nullif({hi - lo}, 0) * {TEXT_BINS}) AS INTEGER),
                              {TEXT_BINS - 1}), 0) AS bin, count(*) AS n
        FROM records WHERE text_chars IS NOT NULL GROUP BY ALL""")
    side = con.execute("SELECT max(greatest(width, height)) FROM records WHERE width IS NOT NULL").fetchall()[0][0]
    cell = max(1, -(-(side or 1) // SIZE_CELLS))  # pixels per grid cell
    sizes = _rows(con, f"SELECT {status} AS status, width // {cell} AS x, height // {cell} AS y, count(*) AS n "
                       "FROM records WHERE width IS NOT NULL AND height IS NOT NULL GROUP BY ALL")
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3))
    if text:
        edges, counts = _histogram(text, TEXT_BINS)
    largest = max((r["n"] for r in sizes), default=1)
    for name, colour in (("kept", "#2a7"), ("rejected", "#c44")):
        if text and name in counts:
            a.stairs(counts[name], edges, fill=True, alpha=0.6, color=colour, label=name)
        mine = [r for r in sizes if r["status"] == name]
        if mine:
            b.scatter([(r["x"] + 0.5) * cell for r in mine], [(r["y"] + 0.5) * cell for r in mine],
                      s=[8 + 60 * (r["n"] / largest) ** 0.5 for r in mine], alpha=0.6, color=colour, label=name)
    a.set_title("text length (characters)")
    a.set_xlabel("characters")
    b.set_title(f"first image size (grid of {cell} px; marker area: samples)")
    b.set_xlabel("width px")
    b.set_ylabel("height px")
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    page.figure(fig, "distributions", "text length and image size distributions")
    stats = _rows(con, "SELECT status, count(text_chars) AS n_text, approx_quantile(text_chars, 0.5) AS "
                       "median_chars, max(text_chars) AS max_chars, count(width) AS n_images, approx_quantile(width, "
                       "0.5) AS median_width, approx_quantile(height, 0.5) AS median_height FROM records "
                       "GROUP BY ALL ORDER BY status")
    page.add(_table(list(stats[0]) if stats else [], [list(r.values()) for r in stats])
             + "<p class='muted'>Medians are approximate (t-digest).</p></section>")


def _card(page: Page, sample: dict, row: dict, files: dict[str, str], note: str = "") -> None:
    figs = "".join(f'<img src="images/samples/{_esc(name)}" alt="{_esc(member)}">' for member, name in files.items())
    if not files and (sample.get("input_img") or sample.get("output_img")):
        figs = "<p class='muted'>image not available (not in a shard, staging area cleaned)</p>"
    turns = "".join(f"<div class='turn'><b>{_esc(t.get('from'))}</b>{_esc(t.get('value'))}</div>"
                    for t in sample.get("message", []))
    score = "" if row.get("align_final") is None else f" · S_final {row['align_final']:.3f}"
    page.add(f"<div class='card'><div class='cardhead'>{_esc(row['modality'])} · {_esc(row['task_family'])} · "
             f"{_esc(row['source'])}{_esc(score)}</div>{figs}{turns}<div class='muted'>{_esc(row['id'])}"
             f"{_esc(note)}</div></div>")


def _write_files(page: Page, prefix: str, members: dict[str, bytes]) -> dict[str, str]:
    folder = page.out / "images" / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for member, data in members.items():
        if member.rsplit(".", 1)[-1] not in ("png", "jpg", "jpeg"):
            continue
        name = f"{prefix}.{member}"
        (folder / name).write_bytes(data)
        files[member] = name
    return files


def _galleries(con, page: Page, build_dir: Path | str, per_gallery: int) -> None:
    reader = ShardReader(build_dir)
    # the per_gallery lowest hash(id) of each modality (a top-N aggregate: no sort of every kept row), then
    # one per modality first, then a second round
    picks = con.execute("SELECT modality, min_by(id, hash(id), ?) FROM kept WHERE shard IS NOT NULL GROUP BY ALL",
                        [per_gallery]).fetchall()
    rounds = sorted((k, str(modality), rid) for modality, ids in picks for k, rid in enumerate(ids))[:per_gallery]
    order = {rid: position for position, (_, _, rid) in enumerate(rounds)}
    kept = sorted(_rows(con, "SELECT id, source, modality, task_family, shard, key, sample, align_final FROM kept "
                             "WHERE list_contains(?, id)", [list(order)]), key=lambda row: order[row["id"]])
    page.add('<section id="gallery-kept"><h2>Kept samples</h2><p>One per modality first, then a second round.</p>'
             '<div class="cards">')
    for i, row in enumerate(kept):
        sample = json.loads(row["sample"])
        members = {}
        for ref in sample.get("input_img", []) + sample.get("output_img", []):
            try:
                members[ref["path"]] = reader.read(row["shard"], row["key"], ref["path"])
            except FileNotFoundError as err:
                log.warning("%s", err)
        _card(page, sample, row, _write_files(page, f"kept{i:03d}", members))
    page.add("</div></section>")
    below = _rows(con, "SELECT id, source, modality, task_family, sample, align_final, detail FROM rejected "
                       "WHERE reason = ? ORDER BY align_final DESC, id LIMIT ?", [CUT_REASON, per_gallery])
    page.add('<section id="gallery-rejected"><h2>Rejected just under the alignment cut</h2>'
             '<p>The highest-scoring pairs the cut rejected. A build keeps no pixels of rejected samples: '
             'their images are read again from the sources.</p><div class="cards">')
    if not below:
        page.add("<p>None: nothing was rejected by the alignment cut.</p>")
    staged = staged_members(build_dir, [r["id"] for r in below])
    for i, row in enumerate(below):
        sample = json.loads(row["sample"]) if row["sample"] else {}
        _card(page, sample, row, _write_files(page, f"below{i:03d}", staged.get(row["id"], {})),
              f" · {row['detail'] or ''}")
    page.add("</div></section>")


def _licences(con, page: Page, stats: dict | None = None) -> None:
    from sources import SOURCES

    rows = _rows(con, "SELECT source, any_value(licence) AS licence, any_value(access) AS access, count(*) AS records, "
                      "count(*) FILTER (WHERE status = 'kept') AS kept FROM records GROUP BY source ORDER BY source")
    out = []
    for r in rows:
        card = SOURCES[r["source"]].card if r["source"] in SOURCES else None
        out.append([r["source"], r["licence"] or (card.licence if card else ""),
                    r["access"] or (card.access if card else ""), r["records"], r["kept"],
                    "yes" if card and card.redistribute_text else "no",
                    "yes" if card and card.redistribute_images else "no", card.url if card else ""])
    page.add('<section id="licences"><h2>Licence and access class per source</h2>')
    mix = _rows(con, "SELECT coalesce(access, 'unknown') AS access, count(*) AS kept FROM kept GROUP BY 1 ORDER BY 1")
    gate = ((stats or {}).get("licence_mix") or {}).get("access_policy", "any")
    mix_text = ", ".join(f"{m['access']} {m['kept']}" for m in mix) or "none"
    page.add(f"<p>Kept samples by access class: {html.escape(mix_text)}"
             f" (access gate: {html.escape(gate)}). A metadata-only release (`unimed release`) carries texts "
             "and images only where the columns below say yes.</p>")
    page.add(_table(["source", "licence", "access", "records", "kept", "texts redistributable",
                     "images redistributable", "url"], out) + "</section>")


def _models(stats: dict, page: Page) -> None:
    page.add('<section id="models"><h2>Models used</h2>')
    models = stats.get("alignment_models") or {}
    if not models:
        page.add("<p>No alignment models (the build ran without alignment).</p>")
    else:
        if stats.get("alignment_demo_weights"):
            page.add("<p class='warn'>DEMO WEIGHTS: the alignment scores come from tiny random models made by "
                     "<code>unimed demo-models</code>. They exercise the pipeline; they say nothing about the "
                     "data.</p>")
        page.add(_table(["role", "model", "weights", "path"],
                        [[k, v.get("model"), "DEMO (random)" if v.get("demo") else "real", v.get("path")]
                         for k, v in sorted(models.items())]))
    page.add("</section>")


def _read_build_file(build_dir: Path | str, name: str) -> str | None:
    """A small file of the build (a folder or a URL), or None when it is absent."""
    fs, root = storage.filesystem(build_dir)
    path = storage.join(root, name)
    return storage.read_text(fs, path) if fs.isfile(path) else None


def _audit(build_dir: Path | str, page: Page) -> None:
    page.add('<section id="audit"><h2>Expert audit</h2>')
    text = _read_build_file(build_dir, AUDIT_SUMMARY)  # written by `unimed audit report` (pipeline/audit/agreement.py)
    summary = json.loads(text) if text else None
    if summary is None:
        page.add(f"<p>No audit reported yet. <code>unimed audit sample {_esc(build_dir)} --n 200 --seed 0</code>, "
                 f"<code>unimed audit serve {_esc(build_dir)}</code>, then <code>unimed audit report "
                 f"{_esc(build_dir)}</code> and rerun this report.</p></section>")
        return
    ok = summary["Q"] >= summary["Q_target"]
    page.add(f"<p class='{'ok' if ok else 'warn'}'>Q = {summary['Q']:.3f} (target &ge; {summary['Q_target']}) over "
             f"{summary['items_rated']} of {summary['items_in_sample']} items, raters: "
             f"{_esc(', '.join(summary['raters']))}.</p>")
    page.add("<h3>Agreement</h3>" + _table(
        ["dimension", "raters", "items", "items all raters", "Fleiss kappa", "Krippendorff alpha", "alpha level"],
        [[a["dimension"], a["raters"], a["items"], a["items_all_raters"],
          "" if a["fleiss_kappa"] is None else f"{a['fleiss_kappa']:.3f}",
          "" if a["krippendorff_alpha"] is None else f"{a['krippendorff_alpha']:.3f}", a["alpha_level"]]
         for a in summary["agreement"]]))
    page.add("<h3>Mean and Q per dimension and modality</h3>" + _table(
        ["dimension", "modality", "n", "mean", "Q"],
        [[q["dimension"], q["modality"], q["n"], f"{q['mean']:.2f}", f"{q['Q']:.3f}"] for q in summary["quality"]]))
    page.add("</section>")


STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
th{background:#eef}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:1em}
img.plot{max-width:100%}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:.8em}
.card{border:1px solid #ccc;border-radius:6px;padding:.5em;font-size:.85em}.card img{max-width:100%;max-height:220px}
.turn{white-space:pre-wrap;margin:.3em 0}.turn b{display:block;color:#567;font-size:.8em}.muted{color:#777;font-size:.8em}
.warn{background:#fee;border:1px solid #c44;padding:.4em}.ok{background:#efe;border:1px solid #2a7;padding:.4em}
nav a{margin-right:1em}"""


def write_report(build_dir: Path | str, out: Path | str | None = None, per_gallery: int = 12) -> Path | str:
    """Render BUILD's report into OUT (default BUILD/report); returns the location of index.html.

    BUILD and OUT are folders or URLs: a report for object storage is rendered in a scratch folder and
    uploaded when complete."""
    build_dir = storage.as_location(build_dir)
    con = open_build(build_dir, memory_limit=QUERY_MEMORY_LIMIT)  # raises ManifestNotFound with what to do
    target = storage.as_location(out) if out else (
        build_dir / "report" if isinstance(build_dir, Path) else storage.join(build_dir, "report"))
    if isinstance(target, Path):
        return _render(con, build_dir, target, per_gallery)
    scratch = Path(tempfile.mkdtemp(prefix="unimed-report-"))
    try:
        _render(con, build_dir, scratch, per_gallery)
        fs, path = storage.filesystem(target)
        for stale in storage.find(fs, storage.join(path, "images")):  # a previous report's images
            storage.remove(fs, stale)
        for local in sorted(scratch.rglob("*")):  # index.html last: the report is complete once it is there
            if local.is_file() and local.name != "index.html":
                fs.put_file(str(local), storage.join(path, local.relative_to(scratch).as_posix()))
        fs.put_file(str(scratch / "index.html"), storage.join(path, "index.html"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return storage.join(str(target), "index.html")


def _render(con, build_dir: Path | str, out: Path, per_gallery: int) -> Path:
    if (out / "images").exists() and (out / "index.html").exists():  # a previous report: replace its images
        shutil.rmtree(out / "images")
    (out / "images").mkdir(parents=True, exist_ok=True)
    stats_text, config_text = (_read_build_file(build_dir, name) for name in ("stats.json", "config.resolved.yaml"))
    stats = json.loads(stats_text) if stats_text else {}
    config = yaml.safe_load(config_text) if config_text else {}
    page = Page(out)
    total, kept = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'kept') FROM records").fetchall()[0]
    name = (config or {}).get("name") or posixpath.basename(str(build_dir).rstrip("/"))
    page.add(f"<h1>Build report: {_esc(name)}</h1><nav>" + "".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
             + "</nav>")
    page.add(f'<section id="summary"><p>{_esc(build_dir)}: {total} input records, {kept} kept '
             f'({(kept / total if total else 0):.0%}), {total - kept} rejected with a reason; '
             f'{stats.get("shards", "?")} shard(s).</p>')
    if stats.get("alignment_demo_weights"):
        page.add("<p class='warn'>Alignment ran on DEMO weights (see Models).</p>")
    page.add("</section>")
    _funnel(con, page)
    _counts(con, page)
    _alignment(con, page)
    _distributions(con, page)
    _galleries(con, page, build_dir, per_gallery)
    _licences(con, page, stats)
    _models(stats, page)
    _audit(build_dir, page)
    index = out / "index.html"
    index.write_text(f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>report {_esc(name)}"
                     f"</title><style>{STYLE}</style></head><body>{''.join(page.parts)}</body></html>",
                     encoding="utf-8")
    return index
