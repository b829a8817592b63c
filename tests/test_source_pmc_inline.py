"""PMC-Inline adapter: the windowing of article text around figure mentions, exact multi-image records and
rejections from the sample tree (per-paper JSONs in the zips, the figure folder beside them), and each quirk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.pmc_inline import INSTRUCTIONS, PmcInline, sentence_spans, windows
from sources.samples import pmc_inline as sample
from sources.samples.hub import zip_bytes
from tests.source_checks import check_sample_tree, collect

NAME = "pmc_inline"
P = f"{NAME}/unsplit"
OUTCOMES = {f"{P}/PMC1000001-w000": None, f"{P}/PMC1000001-w001": "missing_file",
            f"{P}/PMC1000001-w002": "single_figure", f"{P}/PMC1000002": "no_figure_refs",
            f"{P}/PMC1000004": "malformed_json", f"{P}/PMC1000003-w000": None}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return sample.write(tmp_path)


def test_sentences_never_split_inside_a_mention():
    text = "First sentence. See Fig. 1 here. Then Fig. 2.\nNew paragraph."
    mention = text.index("Fig. 1")
    assert [text[a:b] for a, b in sentence_spans(text, [(mention, mention + 6)])] == [
        "First sentence.", "See Fig. 1 here.", "Then Fig. 2.", "New paragraph."]


def test_windows_limits_context_and_repeated_figures():
    text = "A intro. B shows F1 here. C shows F2 here. D mentions F1 again. " + "E filler. " * 10 + "F shows F3 here."
    refs = sorted([(fig, text.index(word, offset), text.index(word, offset) + 2) for fig, word, offset in (
        ("f1", "F1", 0), ("f2", "F2", 0), ("f1", "F1", text.index("D")), ("f3", "F3", 0))], key=lambda r: r[1])
    found = windows(text, refs, window_chars=120, max_figures=3)
    assert [(text[a:b], [f for f, _ in figs]) for a, b, figs in found][0] == (
        "A intro. B shows F1 here. C shows F2 here. D mentions F1 again. E filler.", ["f1", "f2"])
    assert [f for f, _ in found[1][2]] == ["f3"] and text[found[1][0]:found[1][1]] == "E filler. F shows F3 here."
    # two figures at most: the third starts a window of its own
    capped = windows(text, refs, window_chars=2000, max_figures=2)
    assert [[f for f, _ in figs] for _, _, figs in capped] == [["f1", "f2"], ["f3"]]
    # a tight character budget cuts between the first two figures
    assert [[f for f, _ in figs] for _, _, figs in windows(text, refs, 30, 3)][:2] == [["f1"], ["f2"]]


def test_ids_and_outcomes(root):
    items = collect(PmcInline(root))
    assert {key: getattr(item, "reason", None) for key, item in items.items()} == OUTCOMES


def test_two_figure_window_record_exact(root):
    record = collect(PmcInline(root))[f"{P}/PMC1000001-w000"]
    passage = "".join(sample.PAPER_1[1:5]) + sample.FILLER.split(". ")[0] + "."
    figures = ["figures/PMC1000001_jcm-01-g001.jpg", "figures/PMC1000001_jcm-01-g002.jpg"]
    instruction = PmcInline.pick(f"{P}/PMC1000001-w000", INSTRUCTIONS)
    assert record == Record(
        id=f"{P}/PMC1000001-w000", source=NAME, split="unsplit", modality="other", task_family="i2t",
        main_task_type="image_understanding", sub_task_type="multi_image_understanding",
        message=[{"from": "human", "value": "<image>\n<image>\n" + instruction}, {"from": "gpt", "value": passage}],
        input_images=record.input_images, provenance=["PMC-Inline_0.zip", *figures], source_text=passage,
        meta={"pmcid": "PMC1000001", "pmid": "20000001", "doi": "10.0000/jcm.20000001",
              "article_type": "research-article", "figures": ["jcm-01-g001", "jcm-01-g002"],
              "figure_offsets": [passage.index("Figure 1"), passage.index("Figure 2")]})
    root_figures = [(root / path).read_bytes() for path in figures]
    assert [image.encoded for image in record.input_images] == root_figures  # JPEGs pass through


def test_rejections_exact(root):
    items = collect(PmcInline(root))
    missing = items[f"{P}/PMC1000001-w001"]
    assert missing == Rejection(
        id=f"{P}/PMC1000001-w001", source=NAME, split="unsplit", reason="missing_file",
        detail="PMC1000001_jcm-01-g003.jpg: not under the figures folder (PMC-Inline's figures come from the Baidu "
               "download named in its card; give their folder as the option figures_root)",
        modality="other", task_family="i2t", provenance=["PMC-Inline_0.zip"], main_task_type="image_understanding",
        sub_task_type="multi_image_understanding")
    assert items[f"{P}/PMC1000001-w002"].detail == "figure jcm-01-g005 only"
    assert items[f"{P}/PMC1000004"].detail.startswith("PMC1000004.json: ")


def test_member_under_a_top_folder(root):
    record = collect(PmcInline(root))[f"{P}/PMC1000003-w000"]
    assert record.provenance[0] == "PMC-Inline_1.zip" and record.meta["figures"] == ["F1", "F2"]
    assert record.message[1]["value"].startswith("Ultrasound and MRI of a renal mass\nUltrasound showed")


def test_figures_root_option(root, tmp_path):
    moved = tmp_path / "baidu" / "figures"
    shutil.move(root / "figures", moved)
    assert {getattr(v, "reason", None) for v in collect(PmcInline(root)).values()} >= {"missing_file"}
    items = collect(PmcInline(root, options={"figures_root": str(moved)}))
    assert {key: getattr(item, "reason", None) for key, item in items.items()} == OUTCOMES
    assert items[f"{P}/PMC1000003-w000"].provenance == ["PMC-Inline_1.zip"]  # figures outside the dataset folder
    with pytest.raises(SourceError, match="figures_root"):
        collect(PmcInline(root, options={"figures_root": "nowhere"}))


def test_mention_outside_the_text_is_malformed(root):
    paper = {"info": {}, "text": "Short text (Figure 1).", "img_ref": [{"id": "g1", "start": 5, "end": 99}]}
    (root / "PMC-Inline_2.zip").write_bytes(zip_bytes({"PMC1000005.json": json.dumps(paper).encode()}))
    item = collect(PmcInline(root))[f"{P}/PMC1000005"]
    assert item.reason == "malformed_row" and "'end': 99" in item.detail


def test_layout_error_and_split_selection(root, tmp_path):
    assert PmcInline(root, splits=["train"]).work_units() == []
    with pytest.raises(SourceError, match="PMC-Inline_"):
        PmcInline(tmp_path).work_units()


def test_sample_tree_is_deterministic(tmp_path):
    check_sample_tree(sample, tmp_path)


def test_figures_added_later_change_the_units_inputs(root, tmp_path):
    """A window rejected missing_file must be read again once its figure is there, also in a folder outside."""
    from pipeline.engine.inputs import StatCache, unit_fingerprint

    moved = tmp_path / "baidu"
    shutil.move(root / "figures", moved)
    adapter = PmcInline(root, options={"figures_root": str(moved)})
    (unit,) = [u for u in adapter.work_units() if any(m.endswith("PMC1000001.json") for _, m in u.items)]
    before = unit_fingerprint(adapter, unit, StatCache(root))
    shutil.copy(moved / "PMC1000001_jcm-01-g001.jpg", moved / "PMC1000001_jcm-01-g003.jpg")
    assert unit_fingerprint(adapter, unit, StatCache(root)) != before
    assert isinstance(collect(adapter)[f"{P}/PMC1000001-w001"], Record)
