"""IU X-ray (Indiana University chest X-ray collection, Open-i): chest radiographs with radiology reports.

Card
- Citation: Demner-Fushman D, Kohli MD, Rosenman MB, Shooshan SE, Rodriguez L, Antani S, Thoma GR,
  McDonald CJ. "Preparing a collection of radiology examinations for distribution and retrieval."
  JAMIA 23(2):304-310 (2016). doi:10.1093/jamia/ocv080
- URL: https://openi.nlm.nih.gov/faq (original NLMCXR_png.tgz + NLMCXR_reports.tgz); Kaggle mirror
  `raddar/chest-xrays-indiana-university` (the layout read here).
- Licence: open, under the Open-i terms of use (the Kaggle mirror states no further licence). Access: open.
- Modality: chest X-ray, frontal and lateral, 8-bit PNG (DICOM values clipped at 0.5/99.5 %, short side
  2048 in the mirror).
- Counts: 3,955 reports (uids), 7,470 images; 1 to several images per report.
- Overlaps: the same images are in Open-i's own release (`CXR<uid>_IM-....png`); R2Gen-style "iu_xray"
  folders are a re-split copy of it. Deduplicate by pixel hash across them.

Layout (Kaggle zip)::

    archive/ (or chest-xrays-indiana-university/)
      indiana_reports.csv        uid, MeSH, Problems, image, indication, comparison, findings, impression
      indiana_projections.csv    uid, filename, projection (Frontal | Lateral)
      images/images_normalized/1_IM-0001-4001.dcm.png     ("<uid>_IM-....dcm.png": double suffix)

One record per image (a uid's images share its report), like mimic_cxr: "<image>\\n<instruction>" ->
"FINDINGS: ...\\nIMPRESSION: ..." with the sections present. No official split: every record is "unsplit";
group by `meta.uid` when splitting downstream. Quirks handled here: the `.dcm.png` double suffix (stripped
from the id); empty (NaN) findings or impression: the other section alone is kept, neither gives
`report_missing_sections`; the `XXXX` de-identification tokens ("x-XXXX") are kept as distributed (the
hidden word is unknown) and counted in `meta.deid_tokens` so a recipe can drop heavily redacted reports;
an image row whose uid has no report gives `missing_report`; a report with no image row gives `no_images`;
"normal" MeSH/Problems kept as the raw strings. Open-i's XML release is not read here.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from manifests.records import IMAGE_TOKEN, Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import open_file, source_path
from sources.io.image import ImageDecodeError, decode_file

REPORTS = "indiana_reports.csv"
PROJECTIONS = "indiana_projections.csv"
IMAGE_DIR = "images/images_normalized"
SECTIONS = ("findings", "impression")
MISSING = {"", "nan", "none"}  # pandas wrote NaN as an empty field; "nan" as text also occurs in copies
DEID_TOKEN = re.compile(r"X{3,}")
INSTRUCTIONS = (
    "Write the radiology report for this chest X-ray.",
    "Describe the findings of this chest radiograph as a radiologist would.",
    "Generate a radiology report for this chest X-ray image.",
    "What does this chest X-ray show? Answer with a report.",
    "Provide the radiology report for this chest radiograph.",
)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open_file(path, "r", encoding="utf-8-sig", newline="") as handle:
        return [{(key or "").strip().lower(): " ".join((value or "").split()) for key, value in row.items()}
                for row in csv.DictReader(handle)]


def _text(value: str | None) -> str | None:
    return None if (value or "").strip().lower() in MISSING else value


def _image_id(filename: str) -> str:
    """A dot-free id: "1_IM-0001-4001.dcm.png" -> "1_IM-0001-4001"."""
    return filename.removesuffix(".png").removesuffix(".dcm")


class IuXray(Source):
    card = DatasetCard(
        name="iu_xray",
        title="IU X-ray (Indiana University chest X-rays, Open-i)",
        modalities=("chest_xray",),
        tasks=("report_generation",),
        licence="Open-i terms of use (open)",
        access="open",
        url="https://www.kaggle.com/datasets/raddar/chest-xrays-indiana-university",
        citation="Demner-Fushman et al., Preparing a collection of radiology examinations for distribution "
                 "and retrieval, JAMIA 2016",
        root_names=("archive", "chest-xrays-indiana-university", "iu_xray", "IU_Xray"),
        counts="3,955 reports, 7,470 images",
    )

    @classmethod
    def find_root(cls, sources_root: Path) -> Path | None:
        # "archive" is what every Kaggle zip unpacks to: only take it when it holds this dataset.
        for name in cls.card.root_names:
            if (source_path(sources_root) / name / REPORTS).is_file():
                return source_path(sources_root) / name
        return None

    def work_units(self) -> list[WorkUnit]:
        if not (self.root / REPORTS).is_file() or not (self.root / PROJECTIONS).is_file():
            raise SourceError(f"{self.root}: needs {REPORTS} and {PROJECTIONS}; point the root at the Kaggle folder")
        if not self.wants_split("unsplit"):
            return []
        reports = {row.get("uid", ""): row for row in _read_csv(self.root / REPORTS)}
        items, seen = [], set()
        for row in _read_csv(self.root / PROJECTIONS):
            uid = row.get("uid", "")
            seen.add(uid)
            items.append({"uid": uid, "filename": row.get("filename", ""), "projection": row.get("projection") or None,
                          "report": reports.get(uid)})
        items.extend({"uid": uid, "filename": None, "report": report} for uid, report in reports.items()
                     if uid not in seen)
        return self.chunked_units("unsplit", items)

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for item in unit.items:
            yield self._record(item, unit.split)

    def _record(self, item: dict, split: str) -> Record | Rejection:
        if item["filename"] is None:
            return self.reject(f"{self.name}/{split}/report-{item['uid']}", split, "no_images",
                               f"uid {item['uid']} has no row in {PROJECTIONS}", modality="chest_xray",
                               task_family="i2t", provenance=[REPORTS])
        record_id = f"{self.name}/{split}/{_image_id(item['filename'])}"
        image_path = f"{IMAGE_DIR}/{item['filename']}"
        facts = {"modality": "chest_xray", "task_family": "i2t", "provenance": [REPORTS, PROJECTIONS, image_path]}
        report = item["report"]
        if report is None:
            return self.reject(record_id, split, "missing_report", f"uid {item['uid']} not in {REPORTS}", **facts)
        sections = {name: _text(report.get(name)) for name in SECTIONS}
        present = [name for name in SECTIONS if sections[name]]
        if not present:
            return self.reject(record_id, split, "report_missing_sections", f"uid {item['uid']}: no findings or "
                               "impression text", **facts)
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
        except ImageDecodeError as err:
            return self.reject(record_id, split, err.reason, err.detail, **facts)
        answer = "\n".join(f"{name.upper()}: {sections[name]}" for name in present)
        return Record(
            id=record_id, source=self.name, split=split, modality="chest_xray", task_family="i2t",
            main_task_type="image_understanding", sub_task_type="report_generation",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{self.pick(record_id, INSTRUCTIONS)}"},
                     {"from": "gpt", "value": answer}],
            input_images=[image], provenance=facts["provenance"],
            source_text=dataset_text(*(sections[name] for name in present)),
            meta={"uid": item["uid"], "projection": item["projection"], "sections": present,
                  "deid_tokens": len(DEID_TOKEN.findall(answer)),
                  **{key: _text(report.get(key)) for key in ("mesh", "problems", "indication", "comparison")}},
        )
