"""CheXpert Plus: the CheXpert chest radiographs with their radiology reports, demographics and sections.

Card
- Citation: Chambon P, Delbrouck J-B, Sounack T, et al. "CheXpert Plus: Augmenting a Large Chest X-ray
  Dataset with Text Radiology Reports, Patient Demographics and Additional Image Formats."
  arXiv:2405.19538 (2024).
- URL: https://stanfordaimi.azurewebsites.net/datasets/5158c524-d3ab-4e02-96e9-6ee9efc110a1 ; code and
  README: https://github.com/Stanford-AIMI/chexpert-plus
- Licence: Stanford University School of Medicine research use agreement. Access: registration (Stanford
  AIMI account, accept the agreement). Do not redistribute shards built from it.
- Modality: chest X-ray, frontal and lateral, PNG (DICOM listed in the CSV, not downloadable as of 2025).
- Counts: 223,462 image rows (one per image; reports repeat across a study's views), 187,711 studies,
  64,725 patients; splits train / valid (the CSV's `split`).
- Overlaps: the images are CheXpert v1.0's (`chexpert` source, same patient/study/view path): take one
  of the two per image, or deduplicate by path or pixel hash.

Layout (AIMI download)::

    chexpertplus/
      df_chexpert_plus_240401.csv   27 columns: path_to_image, path_to_dcm, frontal_lateral, ap_pa,
                                    deid_patient_id, patient_report_date_order, report, section_narrative,
                                    section_clinical_history, section_history, section_comparison,
                                    section_technique, section_procedure_comments, section_findings,
                                    section_impression, section_end_of_impression, section_summary,
                                    section_accession_number, age, sex, race, ethnicity,
                                    interpreter_needed, insurance_type, recent_bmi, deceased, split
      PNG/train/patient42142/study5/view1_frontal.png   (also seen nested as PNG/PNG/train/...)

One record per image: "<image>\\n<instruction>" -> "FINDINGS: ...\\nIMPRESSION: ..." with the sections that
have text (like mimic_cxr). Quirks handled here: `path_to_image` ends in `.jpg` while the file is `.png`
(suffix swapped); `PNG/` or `PNG/PNG/`; most `section_*` are empty: a row with neither findings nor
impression is `report_missing_sections` (the full `report` is not parsed again); report text is often ALL
CAPS and keeps "\\n" breaks: whitespace is collapsed, case is kept as written; a blank `split` is read from
the path's first part; "Unknown" / "Patient Refused" demographics become None; a missing PNG is
`missing_file`. The CSV is read once on the driver and each unit carries only the fields it needs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from manifests.records import IMAGE_TOKEN, Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file
from sources.io.image import ImageDecodeError, decode_file

CSV_GLOB = "df_chexpert_plus_*.csv"
PNG_DIRS = ("PNG", "PNG/PNG")
SPLITS = {"train": "train", "valid": "validate", "validate": "validate", "test": "test"}
ORDER = ("train", "validate", "test", "unsplit")
SECTIONS = ("findings", "impression")
UNKNOWN = {"", "unknown", "patient refused", "nan", "none"}
INSTRUCTIONS = (
    "Write the radiology report for this chest X-ray.",
    "Describe the findings of this chest radiograph as a radiologist would.",
    "Generate a radiology report for this chest X-ray image.",
    "What does this chest X-ray show? Answer with a report.",
    "Provide the radiology report for this chest radiograph.",
)


def _clean(value: str | None) -> str | None:
    text = " ".join((value or "").split())
    return None if text.lower() in UNKNOWN else text


def _split(value: str | None, path: str) -> str:
    """The CSV's split, else the path's first part ("train/..."); anything else is "unsplit"."""
    name = (value or "").strip().lower() or (PurePosixPath(path).parts[0] if path else "")
    return SPLITS.get(name, "unsplit")


def _age(value: str | None) -> float | None:
    try:
        return float(value) if _clean(value) else None
    except ValueError:
        return None


class ChexpertPlus(Source):
    card = DatasetCard(
        name="chexpert_plus",
        title="CheXpert Plus",
        modalities=("chest_xray",),
        tasks=("report_generation",),
        licence="Stanford research use agreement",
        access="registration",
        url="https://stanfordaimi.azurewebsites.net/datasets/5158c524-d3ab-4e02-96e9-6ee9efc110a1",
        citation="Chambon et al., CheXpert Plus: Augmenting a Large Chest X-ray Dataset with Text Radiology "
                 "Reports, Patient Demographics and Additional Image Formats, arXiv:2405.19538",
        root_names=("chexpertplus", "CheXpert-Plus", "chexpert_plus", "chexpert-plus"),
        counts="223,462 images with reports (train/valid)",
    )
    items_per_unit = 1024

    def _csv(self) -> Path:
        found = sorted(self.root.glob(CSV_GLOB))
        if not found:
            raise SourceError(f"{self.root}: no {CSV_GLOB}; point the root at the CheXpert Plus download")
        return found[-1]  # the newest release date when several are present

    def _png_dir(self) -> str:
        for name in reversed(PNG_DIRS):  # the nested copy first: PNG/ then holds only PNG/
            if (self.root / name / "train").is_dir() or (self.root / name / "valid").is_dir():
                return name
        return PNG_DIRS[0]  # every image then becomes a `missing_file` rejection

    def work_units(self) -> list[WorkUnit]:
        table, png_dir = self._csv(), self._png_dir()
        by_split: dict[str, list[dict]] = {}
        with open_file(table, "r", encoding="utf-8-sig", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle)):
                path = (row.get("path_to_image") or "").strip()
                split = _split(row.get("split"), path)
                if not self.wants_split(split):
                    continue
                by_split.setdefault(split, []).append({
                    "row": number, "path": path, "image": f"{png_dir}/{PurePosixPath(path).with_suffix('.png')}",
                    **{name: _clean(row.get(f"section_{name}")) for name in SECTIONS},
                    "meta": {"patient_id": _clean(row.get("deid_patient_id")),
                             "report_order": _clean(row.get("patient_report_date_order")),
                             "frontal_lateral": _clean(row.get("frontal_lateral")), "ap_pa": _clean(row.get("ap_pa")),
                             "age": _age(row.get("age")), "sex": _clean(row.get("sex"))}})
        return [unit for split in ORDER if split in by_split for unit in self.chunked_units(split, by_split[split])]

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        table = self._csv().name
        for item in unit.items:
            yield self._record(item, unit.split, table)

    def _record(self, item: dict, split: str, table: str) -> Record | Rejection:
        if not item["path"]:
            return self.reject(f"{self.name}/{split}/{table}#{item['row']}", split, "malformed_row",
                               "empty path_to_image", modality="chest_xray", task_family="i2t", provenance=[table])
        parts = PurePosixPath(item["path"]).with_suffix("").parts[1:]  # drop train/ or valid/
        record_id = f"{self.name}/{split}/{'_'.join(parts)}"
        facts = {"modality": "chest_xray", "task_family": "i2t", "provenance": [table, item["image"]]}
        present = [name for name in SECTIONS if item[name]]
        if not present:
            return self.reject(record_id, split, "report_missing_sections",
                               "no section_findings or section_impression text", **facts)
        try:
            image = decode_file(self.root / item["image"], source_path=item["image"])
        except ImageDecodeError as err:
            return self.reject(record_id, split, err.reason, err.detail, **facts)
        answer = "\n".join(f"{name.upper()}: {item[name]}" for name in present)
        return Record(
            id=record_id, source=self.name, split=split, modality="chest_xray", task_family="i2t",
            main_task_type="image_understanding", sub_task_type="report_generation",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{self.pick(record_id, INSTRUCTIONS)}"},
                     {"from": "gpt", "value": answer}],
            input_images=[image], provenance=facts["provenance"],
            source_text=dataset_text(*(item[name] for name in present)),
            meta={**item["meta"], "sections": present},
        )
