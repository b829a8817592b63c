"""PMC-Inline (RadFM's MedMD): PubMed Central article texts with the places where each figure is mentioned.

Card
- Citation: Wu C, Zhang X, Zhang Y, Wang Y, Xie W. "Towards Generalist Foundation Model for Radiology by
  Leveraging Web-scale 2D&3D Medical Data." arXiv:2308.02463 (Nature Communications 2025). Code:
  github.com/chaoyi-wu/RadFM.
- URL: https://huggingface.co/datasets/chaoyi-wu/PMC-Inline (texts); the figures are on Baidu Pan only
  (https://pan.baidu.com/s/1Src_rhXsaOFp8zJ_3zMFsQ, password p3ne), as the card says.
- Licence: apache-2.0 (HF card) over "cc license papers" from PMC: each article keeps its own Creative Commons
  licence, some of them non-commercial. Access: open. Redistribution: no (per-article licences not recorded).
- Paper's T15 count: 121K entries, "multi-image understanding" (how the samples were cut is not stated).
  Release: "we link back 11M images into the paper contexts" (card); the number of papers is not stated [U].
- Overlaps: the figures are PMC OA figures, shared with PMC-OA, ROCO/ROCOv2, PMC-VQA, PubMedVision, LLaVA-Med and
  MediCat; the near-duplicate stage compares them within a task family across sources.

Layout (`huggingface-cli download --repo-type dataset chaoyi-wu/PMC-Inline --local-dir PMC-Inline`, or the Hub
cache snapshot; plus the Baidu figure folder)::

    PMC-Inline/
      PMC-Inline_0.zip .. PMC-Inline_9.zip    one PMCxxxxxxx.json per paper inside (read in place)
      README.md
      figures/PMCxxxxxxx_<figure id>.jpg      the Baidu download, here or where the option figures_root names

Each paper JSON: `info` {article-type, pmid, pmc, publisher-id, doi}; `text` (the paper without bibliography,
author information, tables and figure captions); `img_ref` [{id, start, end}] (a figure id and the character span
of one mention in `text`; an id repeats once per mention).
Evidence: HF tree at rev 0ea5bd7 (the ten zips and README.md, sizes 26.9 MB .. 6.3 GB) and the card (resolve/main
README.md): the JSON keys with the PMC1999654 example, the figure name `PMC1999654_pone-0001008-g001.jpg`, the Baidu
link, "cc license papers" [S]; openmedlab/Awesome-Medical-Dataset `resources/PMC-Inline.md` @45d455c: members
`PMC555947.json, PMC555948.json, ...` in `PMC-Inline_1.zip` [S]. RadFM's own loader (`src/Dataset/dataset/
paper_inline.py`) reads another, sentence-split form (a list of {text, img_ref: [id]}) that is not on the Hub; it
cuts windows of up to 50 sentences with at most 3 images and skips missing figures [S]. Not seen [U]: the folder
layout of the Baidu figures (read flat here), whether the zips have a top folder (members are matched by name).

Samples (the cut is this adapter's, deterministic): the text is split into sentences (a line break, or `.`, `!`,
`?` before a capital letter, never inside a mention); figure mentions are walked in order and gathered into a
window of whole sentences while it stays within `window_chars` characters (default 1000, inside the stage-1 text
rule) and `max_figures` distinct figures (default 3, RadFM's cap); the window then takes one sentence of context on
each side where that fits. A window with two or more figures becomes one multi-image I2T record (sub task
multi_image_understanding): human = one `<image>` per figure in order of first mention and a short instruction;
gpt = the window's text; `meta.figure_offsets` keeps where each figure is first mentioned in that text. Ids
`pmc_inline/unsplit/<PMCID>-w<nnn>` (the window's number in its paper).
Rejections: a window with one figure is `single_figure`; a window whose figure file is missing is `missing_file`
naming it; a paper with no figure mention is `no_figure_refs`; a member that is not JSON is `malformed_json`; a
paper without `text` or with a mention outside it is `malformed_row`.
"""

from __future__ import annotations

import bisect
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import lexical_inside, open_file
from sources.io.hub import zip_names
from sources.io.image import ImageDecodeError, decode_file

ZIP_GLOB = "PMC-Inline_*.zip"
MEMBER = re.compile(r"(?:^|/)(PMC\d+)\.json$")
SENTENCE_END = re.compile(r"\n+|(?<=[.!?])\s+(?=[A-Z])")
INSTRUCTIONS = (
    "These figures come from one article. Write the passage of the article that discusses them.",
    "Write the part of the paper that refers to the figures above.",
    "The images are figures of a biomedical article. Give the text around their mentions.",
)
WINDOW_CHARS = 1000
MAX_FIGURES = 3


def sentence_spans(text: str, mentions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, end) of each sentence; a boundary inside a mention span is not a boundary."""
    spans, start = [], 0
    for match in SENTENCE_END.finditer(text):
        if any(begin < match.start() < end or begin < match.end() < end for begin, end in mentions):
            continue
        if text[start:match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def windows(text: str, refs: list[tuple[str, int, int]], window_chars: int, max_figures: int
            ) -> list[tuple[int, int, list[tuple[str, int]]]]:
    """(text start, text end, [(figure id, first mention offset)]) of each window, in text order."""
    spans = sentence_spans(text, [(start, end) for _, start, end in refs])
    starts = [span[0] for span in spans]
    sentence_of = [max(0, bisect.bisect_right(starts, start) - 1) for _, start, _ in refs]
    cut: list[tuple[int, int, list[tuple[str, int]]]] = []
    first = last = None
    figures: list[tuple[str, int]] = []
    for (figure, start, _), sentence in zip(refs, sentence_of):
        if first is not None:
            fits = spans[sentence][1] - spans[first][0] <= window_chars
            known = any(name == figure for name, _ in figures)
            if fits and (known or len(figures) < max_figures):
                last = max(last, sentence)
                if not known:
                    figures.append((figure, start))
                continue
            cut.append((first, last, figures))
        first, last, figures = sentence, sentence, [(figure, start)]
    if first is not None:
        cut.append((first, last, figures))
    result = []
    for index, (first, last, figures) in enumerate(cut):
        lower = cut[index - 1][1] + 1 if index else 0  # context never reaches into the previous window
        upper = cut[index + 1][0] - 1 if index + 1 < len(cut) else len(spans) - 1
        if first - 1 >= lower and spans[last][1] - spans[first - 1][0] <= window_chars:
            first -= 1
        if last + 1 <= upper and spans[last + 1][1] - spans[first][0] <= window_chars:
            last += 1
        result.append((spans[first][0], spans[last][1], figures))
    return result


class PmcInline(Source):
    card = DatasetCard(
        name="pmc_inline",
        title="PMC-Inline (RadFM): article passages with their inline figures",
        modalities=("other",),
        tasks=("multi_image_understanding",),
        licence="apache-2.0 (HF card); each article's own CC licence applies",
        access="open",
        url="https://huggingface.co/datasets/chaoyi-wu/PMC-Inline",
        citation="Wu et al., Towards Generalist Foundation Model for Radiology by Leveraging Web-scale 2D&3D Medical "
                 "Data, arXiv:2308.02463 (Nature Communications 2025)",
        root_names=("PMC-Inline", "pmc_inline"),
        counts="paper T15: 121K (multi-image understanding); release: 10 zips of per-paper JSON, 11M figure links",
        hub_repos=("chaoyi-wu/PMC-Inline",),
    )
    items_per_unit = 64

    def _zips(self) -> list[Path]:
        zips = sorted(self.root.glob(ZIP_GLOB), key=lambda p: (len(p.name), p.name))
        if not zips:
            raise SourceError(f"{self.root}: no {ZIP_GLOB}; point the root at the PMC-Inline download")
        return zips

    def expected_files(self) -> list[str]:
        return [ZIP_GLOB]

    def work_units(self) -> list[WorkUnit]:
        zips = self._zips()
        if not self.wants_split("unsplit"):
            return []
        units = []
        for path in zips:
            try:
                names = zip_names(path)
            except (OSError, zipfile.BadZipFile) as err:
                raise SourceError(f"{path}: not a readable zip ({err}); download it again") from err
            members = sorted(name for name in names if MEMBER.search(name))
            units.extend(self.chunked_units("unsplit", [(path.name, member) for member in members],
                                            label=path.stem))
        return units

    def unit_inputs(self, unit: WorkUnit) -> list[str]:
        """The default inputs plus the figure folder (a figure added later turns a missing_file window into a record)."""
        return [*super().unit_inputs(unit), *self.folder_inputs(self._figures_root())]

    def _figures_root(self) -> Path:
        value = self.options.get("figures_root")
        if not value:
            return self.root / "figures"
        folder = Path(value) if Path(value).is_absolute() else self.root / value
        if not folder.is_dir():
            raise SourceError(f"pmc_inline: option figures_root = {value} is not a folder")
        return folder

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        figures_root = self._figures_root()
        inside = lexical_inside(figures_root, self.root) is not None
        window_chars = int(self.options.get("window_chars", WINDOW_CHARS))
        max_figures = int(self.options.get("max_figures", MAX_FIGURES))
        open_zip: tuple[str, zipfile.ZipFile] | None = None
        try:
            for zip_name, member in unit.items:
                if open_zip is None or open_zip[0] != zip_name:
                    if open_zip is not None:
                        open_zip[1].fp.close()  # the stream under the archive (ZipFile leaves a given stream open)
                    open_zip = (zip_name, zipfile.ZipFile(open_file(self.root / zip_name)))
                pmcid = MEMBER.search(member).group(1)
                try:
                    paper = json.loads(open_zip[1].read(member).decode("utf-8"))
                except (ValueError, UnicodeDecodeError) as err:
                    yield self.reject(f"pmc_inline/unsplit/{pmcid}", "unsplit", "malformed_json", f"{member}: {err}",
                                      provenance=[zip_name])
                    continue
                yield from self._paper(paper, pmcid, zip_name, figures_root if inside else None, figures_root,
                                       window_chars, max_figures)
        finally:
            if open_zip is not None:
                open_zip[1].fp.close()

    def _paper(self, paper, pmcid: str, zip_name: str, inside_root: Path | None, figures_root: Path,
               window_chars: int, max_figures: int) -> Iterator[Record | Rejection]:
        text = paper.get("text") if isinstance(paper, dict) else None
        refs_raw = paper.get("img_ref") if isinstance(paper, dict) else None
        if not isinstance(text, str) or not text.strip() or not isinstance(refs_raw, list):
            yield self.reject(f"pmc_inline/unsplit/{pmcid}", "unsplit", "malformed_row", "a paper needs text and "
                              "img_ref", provenance=[zip_name])
            return
        refs = []
        for ref in refs_raw:
            ok = isinstance(ref, dict) and isinstance(ref.get("id"), str) and ref["id"].strip() \
                and isinstance(ref.get("start"), int) and isinstance(ref.get("end"), int) \
                and 0 <= ref["start"] <= ref["end"] <= len(text)
            if not ok:
                yield self.reject(f"pmc_inline/unsplit/{pmcid}", "unsplit", "malformed_row",
                                  f"img_ref {ref!r} is not a figure id with a span inside the text",
                                  provenance=[zip_name])
                return
            refs.append((ref["id"].strip(), ref["start"], ref["end"]))
        if not refs:
            yield self.reject(f"pmc_inline/unsplit/{pmcid}", "unsplit", "no_figure_refs", "", provenance=[zip_name])
            return
        refs.sort(key=lambda ref: (ref[1], ref[2], ref[0]))
        info = paper.get("info") if isinstance(paper.get("info"), dict) else {}
        for number, (start, end, figures) in enumerate(windows(text, refs, window_chars, max_figures)):
            yield self._window(pmcid, number, text, start, end, figures, zip_name, inside_root, figures_root, info)

    def _window(self, pmcid: str, number: int, text: str, start: int, end: int, figures: list[tuple[str, int]],
                zip_name: str, inside_root: Path | None, figures_root: Path, info: dict) -> Record | Rejection:
        record_id, split = f"pmc_inline/unsplit/{pmcid}-w{number:03d}", "unsplit"
        names = [f"{pmcid}_{figure}.jpg" for figure, _ in figures]
        relative = [self.relative(inside_root / name) for name in names] if inside_root is not None else []
        facts = {"task_family": "i2t", "provenance": [zip_name]}
        if len(figures) < 2:
            return self.reject(record_id, split, "single_figure", f"figure {figures[0][0]} only", **facts)
        images = []
        for name in names:
            try:
                images.append(decode_file(figures_root / name, source_path=name))
            except ImageDecodeError as err:
                detail = f"{err.detail}: not under the figures folder (PMC-Inline's figures come from the Baidu " \
                         "download named in its card; give their folder as the option figures_root)" \
                    if err.reason == "missing_file" else err.detail
                return self.reject(record_id, split, err.reason, detail, **facts)
        passage = text[start:end].strip()
        lead = len(text[start:end]) - len(text[start:end].lstrip())
        instruction = self.pick(record_id, INSTRUCTIONS)
        return Record(
            id=record_id, source=self.name, split=split, modality="other", task_family="i2t",
            main_task_type="image_understanding", sub_task_type="multi_image_understanding",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n" * len(images) + instruction},
                     {"from": "gpt", "value": passage}],
            input_images=images, provenance=[zip_name, *relative], source_text=passage,
            meta={"pmcid": pmcid, "pmid": info.get("pmid"), "doi": info.get("doi"),
                  "article_type": info.get("article-type"), "figures": [figure for figure, _ in figures],
                  "figure_offsets": [offset - start - lead for _, offset in figures]},
        )
