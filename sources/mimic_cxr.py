"""MIMIC-CXR v2.0.0 / v2.1.0 (DICOM + free-text reports): chest radiographs with their radiology reports.

Card
- Citation: Johnson AEW, Pollard TJ, Berkowitz SJ, Greenbaum NR, Lungren MP, Deng C-y, Mark RG, Horng S.
  "MIMIC-CXR, a de-identified publicly available database of chest radiographs with free-text reports."
  Scientific Data 6, 317 (2019). doi:10.1038/s41597-019-0322-0
- URL: https://physionet.org/content/mimic-cxr/
- Licence: PhysioNet Credentialed Health Data License 1.5.0. Access: credentialed (PhysioNet account,
  CITI training, signed data use agreement). Do not redistribute shards built from it.
- Modality: chest X-ray (DICOM, mostly 12-bit, MONOCHROME1 or MONOCHROME2; PA/AP/LATERAL/LL views).
- Counts: 377,110 images, 227,835 studies, 65,379 patients (BIDMC, 2011-2016).
- Overlaps: MIMIC-CXR-JPG holds the same images as 8-bit JPEG (same dicom_id) and the official split
  (`mimic-cxr-2.0.0-split.csv.gz`); a corpus must not take both without deduplicating by dicom_id.

Layout (PhysioNet download)::

    mimic-cxr/2.0.0/
      cxr-record-list.csv.gz   subject_id, study_id, dicom_id, path
      cxr-study-list.csv.gz    subject_id, study_id, path
      files/p10/p10000032/s50414267/<dicom_id>.dcm     (the project site shows .dcm.gz: both accepted)
      files/p10/p10000032/s50414267.txt                the study's report, next to the study folder

Quirks handled here: the split comes from MIMIC-CXR-JPG's split file when the user puts it in the root
(else every image is "unsplit"); without the record list the tree is walked; reports are sectioned with
MIT-LCP's header regex and name normalisation (`mimic-cxr/txt/section_parser.py`), keeping FINDINGS and
IMPRESSION (CONCLUSION and misspellings count as IMPRESSION; empty duplicate sections are dropped); PHI
was replaced by `___` upstream and is kept as is. One record per image: a study's images share its report.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from manifests.records import IMAGE_TOKEN, Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, WorkUnit
from sources.io.dicom import decode_dicom
from sources.io.files import open_file
from sources.io.image import ImageDecodeError

RECORD_LIST = "cxr-record-list.csv.gz"
SPLIT_FILES = ("mimic-cxr-2.0.0-split.csv.gz", "mimic-cxr-2.1.0-split.csv.gz")
SPLITS = ("train", "validate", "test")
KEPT_SECTIONS = ("findings", "impression")
REPORT_PROBLEMS = {
    "missing_report": "not found (reports ship in mimic-cxr-reports.zip: unzip it into the dataset root)",
    "report_missing_sections": "no FINDINGS or IMPRESSION section with text",
}
INSTRUCTIONS = (
    "Write the radiology report for this chest X-ray.",
    "Describe the findings of this chest radiograph as a radiologist would.",
    "Generate a radiology report for this chest X-ray image.",
    "What does this chest X-ray show? Answer with a report.",
    "Provide the radiology report for this chest radiograph.",
)

# MIT-LCP: a header is an upper-case phrase at the start of a line (after the one-space indent) + colon.
SECTION_HEADER = re.compile(r"\n ([A-Z ()/,-]+):\s", re.DOTALL)
# MIT-LCP's normalisation, limited to the names that can become findings or impression.
SECTION_NAMES = {
    "impression": "impression", "findings": "findings", "conclusion": "impression",
    "findings and impression": "impression", "findings/impression": "impression",
    "findings/ impression": "impression", "chest, two views": "findings", "reference findings": "findings",
    "impresson": "impression", "imprression": "impression", "imoression": "impression",
    "impressoin": "impression", "imprssion": "impression", "impresion": "impression",
    "imperssion": "impression", "mpression": "impression", "impession": "impression",
    "finding": "findings", "findins": "findings", "findindgs": "findings", "findgings": "findings",
    "findngs": "findings", "findnings": "findings", "finidngs": "findings",
}
# Headers naming a view ("PA AND LATERAL", "PORTABLE AP CHEST") open the findings, as MIT-LCP reads them.
VIEW_HEADER = re.compile(
    r"chest|portable|pa and lat|lateral and pa|ap and lateral|lateral and ap|frontal and|two views|"
    r"frontal view|pa view|ap view|one view|lateral view|bone window|frontal upright|frontal semi-upright|ribs"
)
OTHER_MAIN_SECTIONS = ("history", "comparison", "addendum")


def section_name(header: str) -> str:
    name = header.lower().strip()
    if name in SECTION_NAMES:
        return SECTION_NAMES[name]
    for main in ("impression", "findings", *OTHER_MAIN_SECTIONS):  # MIT-LCP's order: impression first
        if main in name:
            return main
    return "findings" if VIEW_HEADER.search(name) else name


def report_sections(text: str) -> dict[str, str]:
    """FINDINGS and IMPRESSION of a report, whitespace normalised; a section missing or empty is absent.
    When a name occurs twice (addenda, repeated headers) the last non-empty one counts, as in MIT-LCP."""
    found: dict[str, str] = {}
    match = SECTION_HEADER.search(text)
    while match:
        name = section_name(match.group(1))
        start = match.end()
        # MIT-LCP skips to the next line before looking for the next header (avoids bad parses)
        newline = text.find("\n", start)
        match = SECTION_HEADER.search(text, start + max(newline - start, 0))
        body = " ".join(text[start : match.start() if match else len(text)].split())
        if name in KEPT_SECTIONS and body:
            found[name] = body
    return {name: found[name] for name in KEPT_SECTIONS if name in found}


def _read_csv_gz(path) -> list[dict]:
    with open_file(path) as raw, gzip.open(raw, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _dicom_id(relative_path: str) -> str:
    name = PurePosixPath(relative_path).name
    return name.removesuffix(".gz").removesuffix(".dcm")


class MimicCxr(Source):
    card = DatasetCard(
        name="mimic_cxr",
        title="MIMIC-CXR v2 (DICOM + reports)",
        modalities=("chest_xray",),
        tasks=("report_generation",),
        licence="PhysioNet Credentialed Health Data License 1.5.0",
        access="credentialed",
        url="https://physionet.org/content/mimic-cxr/",
        citation="Johnson et al., MIMIC-CXR, a de-identified publicly available database of chest "
        "radiographs with free-text reports, Sci Data 2019",
        root_names=(
            "mimic-cxr/2.1.0", "mimic-cxr/2.0.0", "mimic-cxr",
            "physionet.org/files/mimic-cxr/2.1.0", "physionet.org/files/mimic-cxr/2.0.0",
        ),
        counts="377,110 images, 227,835 studies",
    )
    items_per_unit = 64

    def _listing(self) -> list[str]:
        """Relative DICOM paths, study by study (so a unit reads each report once)."""
        if (self.root / RECORD_LIST).is_file():
            paths = [row["path"] for row in _read_csv_gz(self.root / RECORD_LIST)]
        else:
            found = [*self.root.glob("files/p1*/p*/s*/*.dcm"), *self.root.glob("files/p1*/p*/s*/*.dcm.gz")]
            paths = [self.relative(path) for path in found]
        return sorted(paths)

    def _split_of(self) -> dict[str, str]:
        for name in SPLIT_FILES:
            if (self.root / name).is_file():
                rows = _read_csv_gz(self.root / name)
                return {row["dicom_id"]: row["split"] if row["split"] in SPLITS else "unsplit" for row in rows}
        return {}

    def work_units(self) -> list[WorkUnit]:
        split_of = self._split_of()
        by_split: dict[str, list[str]] = {}
        for path in self._listing():
            by_split.setdefault(split_of.get(_dicom_id(path), "unsplit"), []).append(path)
        units = []
        for split in (*SPLITS, "unsplit"):
            if split in by_split and self.wants_split(split):
                units.extend(self.chunked_units(split, by_split[split]))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        reports: dict[str, dict[str, str] | str] = {}  # report path -> sections, or a rejection reason
        for dicom_path in unit.items:
            yield self._record(dicom_path, unit.split, reports)

    def _report(self, report_path: str, reports: dict) -> dict[str, str] | str:
        if report_path not in reports:
            try:
                text = (self.root / report_path).read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:  # other read errors fail the unit, which is retried
                reports[report_path] = "missing_report"
            else:
                reports[report_path] = report_sections("\n" + text) or "report_missing_sections"
        return reports[report_path]

    def _record(self, dicom_path: str, split: str, reports: dict) -> Record | Rejection:
        parts = PurePosixPath(dicom_path).parts  # files, pXX, pSUBJECT, sSTUDY, file
        dicom_id, subject, study = _dicom_id(dicom_path), parts[-3], parts[-2]
        record_id = f"mimic_cxr/{split}/{dicom_id}"
        report_path = PurePosixPath(dicom_path).parent.with_suffix(".txt").as_posix()
        facts = {"modality": "chest_xray", "task_family": "i2t", "provenance": [dicom_path, report_path]}
        sections = self._report(report_path, reports)
        if isinstance(sections, str):
            return self.reject(record_id, split, sections, f"{report_path}: {REPORT_PROBLEMS[sections]}", **facts)
        try:
            image, tags = decode_dicom(self._dicom_bytes(dicom_path), source_path=dicom_path)
        except ImageDecodeError as err:
            return self.reject(record_id, split, err.reason, err.detail, **facts)
        answer = "\n".join(f"{name.upper()}: {sections[name]}" for name in KEPT_SECTIONS if name in sections)
        return Record(
            id=record_id,
            source=self.name,
            split=split,
            modality="chest_xray",
            task_family="i2t",
            main_task_type="image_understanding",
            sub_task_type="report_generation",
            message=[
                {"from": "human", "value": f"{IMAGE_TOKEN}\n{self.pick(record_id, INSTRUCTIONS)}"},
                {"from": "gpt", "value": answer},
            ],
            input_images=[image],
            provenance=[dicom_path, report_path],
            source_text=dataset_text(*(sections[name] for name in KEPT_SECTIONS if name in sections)),
            meta={
                **tags,
                "subject_id": subject.removeprefix("p"),
                "study_id": study.removeprefix("s"),
                "dicom_id": dicom_id,
                "sections": [name for name in KEPT_SECTIONS if name in sections],
            },
        )

    def _dicom_bytes(self, dicom_path: str) -> bytes:
        """The file's bytes; the record list says .dcm where a mirror may hold .dcm.gz, and vice versa."""
        path = self.root / dicom_path
        other_name = path.name.removesuffix(".gz") if path.name.endswith(".gz") else path.name + ".gz"
        for candidate in (path, path.with_name(other_name)):
            try:
                return candidate.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as err:
                raise ImageDecodeError("unreadable_file", f"{dicom_path}: {err}") from err
        raise ImageDecodeError("missing_file", dicom_path)
