"""MIMIC-CXR-JPG v2.0.0 / v2.1.0: the MIMIC-CXR chest radiographs as JPEG, with splits, metadata and labels.

Card
- Citation: Johnson AEW, Pollard TJ, Greenbaum NR, Lungren MP, Deng C-y, Peng Y, Lu Z, Mark RG, Berkowitz SJ,
  Horng S. "MIMIC-CXR-JPG, a large publicly available database of labeled chest radiographs."
  arXiv:1901.07042 (2019); PhysioNet doi:10.13026/8360-t248.
- URL: https://physionet.org/content/mimic-cxr-jpg/
- Licence: PhysioNet Credentialed Health Data License 1.5.0. Access: credentialed (PhysioNet account, CITI
  training, signed data use agreement). Do not redistribute shards built from it.
- Modality: chest X-ray, 8-bit greyscale JPEG (converted from the DICOMs: MONOCHROME1 inverted, histogram
  equalised, quality 95 [M]); views PA / AP / LATERAL / LL / blank.
- Counts: 377,110 images, 227,827 studies, 65,379 patients; official split train / validate / test.
- Overlaps: the same images as MIMIC-CXR (`mimic_cxr`, DICOM; same dicom_id) and the same reports: take one of
  the two per dicom_id. Medical-Diff-VQA (`medical_diff_vqa`) asks questions about these images.

Layout (PhysioNet download)::

    mimic-cxr-jpg/2.0.0/                              (2.1.0 keeps the 2.0.0 file names [M])
      mimic-cxr-2.0.0-metadata.csv.gz   dicom_id, subject_id, study_id, PerformedProcedureStepDescription,
                                        ViewPosition, Rows, Columns, StudyDate, StudyTime, ...CodeMeaning
      mimic-cxr-2.0.0-split.csv.gz      dicom_id, study_id, subject_id, split
      mimic-cxr-2.0.0-chexpert.csv.gz   subject_id, study_id + 14 labels (1.0 / 0.0 / -1.0 / blank), per study
      mimic-cxr-2.0.0-negbio.csv.gz     same columns
      files/p10/p10000032/s50414267/<dicom_id>.jpg

No reports ship in this release. They are read from the MIMIC-CXR (DICOM) release: the recipe option
`reports_root` names it (its `files/pXX/pSUBJECT/sSTUDY.txt`, as `mimic-cxr-reports.zip` unpacks); else a
sibling `mimic-cxr/<version>/` (or `mimic-cxr/`) holding `files/` beside this dataset's folder under the same
sources root is used. Reports are sectioned by `sources.mimic_cxr` (FINDINGS / IMPRESSION, MIT-LCP rules) and
records look exactly like that source's: one report-generation sample per image, a study's images share its
report. Without any reports every image is rejected as `missing_report` (there is no text to train on).
Provenance names only this dataset's files (the JPEG); the report's path, relative to the reports root
(the same path `mimic_cxr` records as provenance), is `meta["report_path"]` and is named in rejections' detail.

Quirks handled here: the split file is the listing (the metadata file when it is absent: every image
"unsplit"); blank ViewPosition and other metadata stay None; CheXpert / NegBio labels are per study, blank is
None and a study missing from a label file has None labels; images are sorted study by study so a unit reads
each report once; a JPEG missing or cut short becomes `missing_file` / `image_undecodable`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from manifests.records import IMAGE_TOKEN, Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import source_path
from sources.io.image import ImageDecodeError, decode_file
from sources.mimic_cxr import INSTRUCTIONS, KEPT_SECTIONS, REPORT_PROBLEMS, SPLIT_FILES, _read_csv_gz, report_sections

METADATA_FILES = ("mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.1.0-metadata.csv.gz")
LABEL_FILES = {
    "chexpert": ("mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.1.0-chexpert.csv.gz"),
    "negbio": ("mimic-cxr-2.0.0-negbio.csv.gz", "mimic-cxr-2.1.0-negbio.csv.gz"),
}
LABELS = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
    "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
    "Pneumothorax", "Support Devices",
)
METADATA_COLUMNS = (
    "ViewPosition", "PerformedProcedureStepDescription", "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning", "ProcedureCodeSequence_CodeMeaning", "StudyDate", "StudyTime",
)
SPLITS = ("train", "validate", "test")
VERSION = re.compile(r"\d+\.\d+\.\d+")
REPORT_FOLDERS = ("mimic-cxr/2.1.0", "mimic-cxr/2.0.0", "mimic-cxr")
NO_REPORTS = ("no MIMIC-CXR reports found: set the option reports_root to the MIMIC-CXR release "
              "(mimic-cxr-reports.zip unpacked), or put it beside this dataset as mimic-cxr/<version>/")


def first_file(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / name for name in names if (root / name).is_file()), None)


def jpg_path(subject_id: str, study_id: str, dicom_id: str) -> str:
    """The loaders' path rule: files/p{subject[:2]}/p{subject}/s{study}/{dicom_id}.jpg."""
    return f"files/p{subject_id[:2]}/p{subject_id}/s{study_id}/{dicom_id}.jpg"


def read_metadata(root: Path) -> list[dict[str, str]]:
    """The metadata rows in file order ([] when the file is absent)."""
    path = first_file(root, METADATA_FILES)
    return _read_csv_gz(path) if path else []


def sibling_root(root: Path, folders: tuple[str, ...], marker: str) -> Path | None:
    """Another PhysioNet dataset beside `root` under the same sources root (`<name>/<version>/` or `<name>/`)."""
    base = root.parent.parent if VERSION.fullmatch(root.name) else root.parent
    return next((base / folder for folder in folders if (base / folder / marker).exists()), None)


def _labels(root: Path, names: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    path = first_file(root, names)
    if path is None:
        return {}
    return {row["study_id"]: {label: float(row[label]) if row.get(label) else None for label in LABELS}
            for row in _read_csv_gz(path)}


class MimicCxrJpg(Source):
    card = DatasetCard(
        name="mimic_cxr_jpg",
        title="MIMIC-CXR-JPG v2 (JPEG images; reports from MIMIC-CXR)",
        modalities=("chest_xray",),
        tasks=("report_generation",),
        licence="PhysioNet Credentialed Health Data License 1.5.0",
        access="credentialed",
        url="https://physionet.org/content/mimic-cxr-jpg/",
        citation="Johnson et al., MIMIC-CXR-JPG, a large publicly available database of labeled chest "
        "radiographs, arXiv:1901.07042",
        root_names=(
            "mimic-cxr-jpg/2.1.0", "mimic-cxr-jpg/2.0.0", "mimic-cxr-jpg",
            "physionet.org/files/mimic-cxr-jpg/2.1.0", "physionet.org/files/mimic-cxr-jpg/2.0.0",
        ),
        counts="377,110 images, 227,827 studies",
    )
    items_per_unit = 64

    def reports_root(self) -> Path | None:
        option = self.options.get("reports_root")
        if option:
            if not source_path(option).is_dir():
                raise SourceError(f"reports_root {option} is not a directory; point it at the MIMIC-CXR release")
            return source_path(option)
        return sibling_root(self.root, REPORT_FOLDERS, "files")

    def work_units(self) -> list[WorkUnit]:
        metadata = {row["dicom_id"]: row for row in read_metadata(self.root)}
        split_file = first_file(self.root, SPLIT_FILES)
        if split_file is None and not metadata:
            raise SourceError(f"{self.root}: no {METADATA_FILES[0]} or {SPLIT_FILES[0]}; "
                              "point the root at the MIMIC-CXR-JPG version folder")
        listing = _read_csv_gz(split_file) if split_file else [dict(row, split="unsplit") for row in metadata.values()]
        labels = {kind: _labels(self.root, names) for kind, names in LABEL_FILES.items()}
        by_split: dict[str, list[dict]] = {}
        for row in listing:
            split = row["split"] if row["split"] in SPLITS else "unsplit"
            subject, study, dicom_id = row["subject_id"], row["study_id"], row["dicom_id"]
            facts = metadata.get(dicom_id, {})
            by_split.setdefault(split, []).append({
                "path": jpg_path(subject, study, dicom_id), "subject_id": subject, "study_id": study,
                "dicom_id": dicom_id, **{column: facts.get(column) or None for column in METADATA_COLUMNS},
                **{kind: labels[kind].get(study) for kind in LABEL_FILES},
            })
        units = []
        for split in (*SPLITS, "unsplit"):
            if split in by_split and self.wants_split(split):
                units.extend(self.chunked_units(split, sorted(by_split[split], key=lambda item: item["path"])))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        reports_root = self.reports_root()
        reports: dict[str, dict[str, str] | str] = {}  # report path -> sections, or a rejection reason
        for item in unit.items:
            yield self._record(item, unit.split, reports_root, reports)

    def _record(self, item: dict, split: str, reports_root: Path | None, reports: dict) -> Record | Rejection:
        record_id = f"{self.name}/{split}/{item['dicom_id']}"
        facts = {"modality": "chest_xray", "task_family": "i2t", "provenance": [item["path"]]}
        if reports_root is None:
            return self.reject(record_id, split, "missing_report", NO_REPORTS, **facts)
        report_path = f"files/p{item['subject_id'][:2]}/p{item['subject_id']}/s{item['study_id']}.txt"
        if report_path not in reports:
            try:
                text = (reports_root / report_path).read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:  # other read errors fail the unit, which is retried
                reports[report_path] = "missing_report"
            else:
                reports[report_path] = report_sections("\n" + text) or "report_missing_sections"
        sections = reports[report_path]
        if isinstance(sections, str):
            return self.reject(record_id, split, sections, f"{report_path}: {REPORT_PROBLEMS[sections]}", **facts)
        try:
            image = decode_file(self.root / item["path"], source_path=item["path"])
        except ImageDecodeError as err:
            return self.reject(record_id, split, err.reason, err.detail, **facts)
        answer = "\n".join(f"{name.upper()}: {sections[name]}" for name in KEPT_SECTIONS if name in sections)
        # labels are shared by a study's images: each record gets its own copy
        meta = {key: dict(value) if isinstance(value, dict) else value for key, value in item.items() if key != "path"}
        meta["report_path"] = report_path
        meta["sections"] = [name for name in KEPT_SECTIONS if name in sections]
        return Record(
            id=record_id, source=self.name, split=split, modality="chest_xray", task_family="i2t",
            main_task_type="image_understanding", sub_task_type="report_generation",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{self.pick(record_id, INSTRUCTIONS)}"},
                     {"from": "gpt", "value": answer}],
            input_images=[image], provenance=[item["path"]], meta=meta,
            source_text=dataset_text(*(sections[name] for name in KEPT_SECTIONS if name in sections)),
        )
