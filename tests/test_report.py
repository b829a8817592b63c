"""`unimed report`: the page has its sections, its plots and gallery images are real files, and an audit
reported with `unimed audit report` joins it."""

from __future__ import annotations

import re

from PIL import Image as PILImage

from pipeline.audit.agreement import write_report as write_audit_report
from pipeline.audit.sample import write_sample
from pipeline.audit.store import AnswerStore
from pipeline.cli import main
from pipeline.report.html import SECTIONS, stage_of, write_report
from tests.audit_support import write_build


def test_reasons_fall_into_their_funnel_step():
    assert stage_of("image_too_small") == "coarse"
    assert stage_of("duplicate") == "dedup"
    assert stage_of("alignment_below_cut") == "alignment"
    assert stage_of("missing_file") == "adapter"


def test_report_renders_sections_plots_and_gallery(tmp_path):
    build = write_build(tmp_path)
    index = write_report(build, tmp_path / "out", per_gallery=4)
    page = index.read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in page, section
    assert "http://" not in page and "https://" not in page and "<script" not in page  # opens offline
    images = re.findall(r'src="(images/[^"]+)"', page)
    assert {"images/funnel.png", "images/alignment_hist.png", "images/distributions.png"} <= set(images)
    assert sum(i.startswith("images/samples/kept") for i in images) == 4
    for relative in images:
        with PILImage.open(tmp_path / "out" / relative) as image:
            assert image.width > 20 and image.height > 20
            assert len(set(image.convert("L").getdata())) > 2, f"{relative} is blank"
    # the funnel row of the source with the rejections: input 38 (32 kept + 6 rejected), -2 adapter,
    # -2 coarse, -2 alignment
    assert re.search(r"<td>src0</td><td>i2t</td><td>\d+</td><td>-2</td><td>-2</td><td></td><td>-2</td>", page)
    assert "DEMO" in page and "CC BY 4.0" in page
    assert "rejected 5" in page  # the highest-scoring pair under the cut is in the rejected gallery
    assert "No audit reported yet" in page


def test_audit_results_join_the_report(tmp_path, capsys):
    build = write_build(tmp_path)
    write_sample(build, n=3, seed=0)
    store = AnswerStore(build)
    for rater, score in (("alice", 5), ("bob", 4)):
        for item in range(3):
            store.add(rater, item, "factual_accuracy", score)
    write_audit_report(build)
    assert main(["report", str(build)]) == 0
    assert str(build / "report" / "index.html") in capsys.readouterr().out
    page = (build / "report" / "index.html").read_text()
    assert "Q = 0.900" in page and "alice, bob" in page


def test_report_of_a_missing_build_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "unimed build" in err and len(err.strip().splitlines()) == 1


def test_report_aggregates_in_duckdb_whatever_the_manifest_size(tmp_path, monkeypatch):
    """Generated manifests of 2,000 and 20,000 rows (40 sources, 10 modalities, alignment scores on every
    row): the rows that reach Python are the aggregates and the gallery's picks, not the manifest's rows."""
    import pipeline.report.html as report_html
    from manifests.query import open_build
    from pipeline.bench.manifest import write_manifest
    from tests.support import CountingConnection

    from matplotlib.figure import Figure

    # the plots are drawn from the same few rows; rendering thirty subplots twice is not what is tested here
    monkeypatch.setattr(report_html.Page, "figure", lambda self, fig, name, alt: report_html.plt.close(fig))
    monkeypatch.setattr(Figure, "tight_layout", lambda self, *a, **k: None)
    fetched: dict[int, list[int]] = {}
    for rows in (2_000, 20_000):
        build = write_manifest(rows, tmp_path / f"m{rows}")
        fetched[rows] = []
        monkeypatch.setattr(report_html, "open_build",
                            lambda *a, **k: CountingConnection(open_build(*a, **k), fetched[rows]))
        page = write_report(build, tmp_path / f"out{rows}", per_gallery=4).read_text()
        assert f"{rows} input records" in page and 'id="alignment"' in page
    small, large = sum(fetched[2_000]), sum(fetched[20_000])
    assert large < 1.5 * small, (small, large)  # ten times the rows, not ten times the fetch
    # the most any aggregate can return: funnel groups (40 sources x 4 families x 6 outcomes), histogram bins
    # (10 modalities x 3 scores x 2 statuses), the image-size grid (2 statuses), and a few hundred more
    bound = 40 * 4 * 6 + 10 * 3 * 2 * report_html.ALIGN_BINS + 2 * report_html.SIZE_CELLS ** 2 + 300
    assert large <= bound < 20_000 / 4, (large, bound)
