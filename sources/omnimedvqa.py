"""OmniMedVQA: multiple-choice medical VQA built from 73 classification datasets (42 of them open access).

Card
- Citation: Hu Y, Li T, Lu Q, Shao W, He J, Qiao Y, Luo P. "OmniMedVQA: A New Large-Scale Comprehensive
  Evaluation Benchmark for Medical LVLM." CVPR 2024.
- URL: https://huggingface.co/datasets/foreverbeliever/OmniMedVQA
- Licence: per source dataset (the benchmark adds none of its own). Access: open download for the
  "Open-access" part; "Restricted-access" items need the images from their original sources.
- Modality: CT, MRI, x-ray, ultrasound, dermoscopy, fundus, OCT, microscopy, from each item's
  `modality_type`.
- Counts: open access 88,996 QA over 82,059 images from 42 datasets; no official split ("unsplit").
- Overlaps: images are re-used from public classification sets (e.g. RadImageNet, HAM10000/ISIC,
  APTOS, OCT2017, Kvasir, BUSI); deduplicate by pixel hash against those sources. It was built as an
  evaluation benchmark: a recipe that evaluates on it must not also train on it.

Layout (HF download)::

    OmniMedVQA/
      Images/<Dataset Name>/<...>/<file>.png|jpg
      QA_information/Open-access/<Dataset Name>.json         spaces in names ("Chest CT Scan.json")
      QA_information/Restricted-access/<Dataset Name>.json   images not shipped (read only on request)

Each JSON is a list of {dataset, question_id, question_type, question, gt_answer, image_path,
option_A..option_D, modality_type}.

Quirks handled here: C/D options are absent for two-way items; one item (`Chest CT Scan.json`) names its
modality key `modality`, not `modality_type`; the `modality_type` strings are odd ("MR (Mag-netic Resonance
Imaging)", "OCT (Optical Coherence Tomography" without the closing parenthesis) and are matched on their
letters only; "Microscopy Images" (blood smears, sperm, cell lines and tissue alike) maps to "other";
"X-Ray" maps to chest_xray only under the documented keyword rule `CHEST_DATASET` on the item's `dataset`
name, else "other"; the options go into the question ("A. ..." lines) and `gt_answer` is the answer even
where its punctuation differs from the option; Restricted-access files are read only with the option
`include_restricted: true`.

Hub copy (docs/sources/hub/omnimedvqa.md): `foreverbeliever/OmniMedVQA` is the official distribution, one
`OmniMedVQA.zip` holding `QA_information/` and `Images/` (the zip's top folder is not documented). A Hub cache
snapshot or `--local-dir` copy without an unpacked `QA_information/` is read from the zip in place: the QA
JSONs are the members ending in `QA_information/Open-access/<name>.json`, each `image_path` is the member
ending in that path. Same ids, texts and image bytes as the unzipped folder; provenance names the zip.

Option `group_questions: per_image` (with `max_turns`, `max_chars`; sources/shapes/vqa.py): the questions
of one image (per QA file) as multi-turn samples `omnimedvqa/unsplit/image/<image_path>/<n>`. Its only split is
`unsplit`, so as a benchmark (a `near_duplicates.benchmarks` entry, with options of its own) leave the option
out: decontamination then compares its questions one by one.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from manifests.records import IMAGE_TOKEN, Record, Rejection, dataset_text
from sources.base import DatasetCard, SourceError, WorkUnit
from sources.io.hub import ZipImages, zip_json_list, zip_names
from sources.io.image import ImageDecodeError, decode_file
from sources.io.jsonfile import load_json_list
from sources.shapes.vqa import VqaSource

QA_DIR = "QA_information"
ZIP = "OmniMedVQA.zip"
LABELS = ("A", "B", "C", "D")
MODALITY_BY_LETTERS = {
    "ctcomputedtomography": "ct", "ct": "ct",
    "mrmagneticresonanceimaging": "mri", "mr": "mri", "mri": "mri",
    "ultrasound": "ultrasound",
    "xray": "xray",  # chest_xray only for a chest dataset, see modality()
    "dermoscopy": "dermoscopy",
    "fundusphotography": "fundus",
    "octopticalcoherencetomography": "oct", "oct": "oct",
    "endoscopy": "endoscopy",
    "microscopyimages": "other",
}
# The one free-text rule: an x-ray dataset is a chest one when its name says so.
CHEST_DATASET = re.compile(r"chest|cxr|thora|lung|pulmonary|pneumonia|covid|tubercul", re.IGNORECASE)


def modality(item: dict) -> str:
    raw = item.get("modality_type", item.get("modality")) or ""
    found = MODALITY_BY_LETTERS.get(re.sub(r"[^a-z]", "", str(raw).lower()), "other")
    if found == "xray":
        return "chest_xray" if CHEST_DATASET.search(str(item.get("dataset") or "")) else "other"
    return found


def _image_name(item) -> str:
    """The image an item asks about, for listing its questions together ("" for a malformed item)."""
    return str(item.get("image_path") or "").strip().removeprefix("./") if isinstance(item, dict) else ""


def question_with_options(question: str, options: dict[str, str]) -> str:
    lines = [question, "Options:"] + [f"{label}. {text}" for label, text in options.items()]
    return "\n".join(lines)


class OmniMedVqa(VqaSource):
    card = DatasetCard(
        name="omnimedvqa",
        title="OmniMedVQA (open-access part)",
        modalities=("ct", "mri", "chest_xray", "ultrasound", "dermoscopy", "fundus", "oct", "other"),
        tasks=("medical_vqa",),
        licence="per source dataset",
        access="open",
        url="https://huggingface.co/datasets/foreverbeliever/OmniMedVQA",
        citation="Hu et al., OmniMedVQA: A New Large-Scale Comprehensive Evaluation Benchmark for Medical LVLM, "
                 "CVPR 2024",
        root_names=("OmniMedVQA",),
        counts="88,996 QA / 82,059 images / 42 datasets (open access)",
        hub_repos=("foreverbeliever/OmniMedVQA",),
    )

    def _zipped_qa(self) -> dict[str, str]:
        """QA file (as unzipped, `QA_information/Open-access/X.json`) -> zip member, when only the zip is there."""
        if (self.root / QA_DIR).is_dir() or not (self.root / ZIP).is_file():
            return {}
        folders = ["Open-access"] + (["Restricted-access"] if self.options.get("include_restricted") else [])
        try:
            names = zip_names(self.root / ZIP)
        except (OSError, zipfile.BadZipFile) as err:
            raise SourceError(f"{self.root / ZIP}: not a readable zip ({err}); download it again") from err
        found = {}
        for name in names:
            for folder in folders:
                marker = f"{QA_DIR}/{folder}/"
                if name.endswith(".json") and (name.startswith(marker) or f"/{marker}" in name):
                    found[marker + name.rsplit("/", 1)[-1]] = name
        return dict(sorted(found.items()))

    def _qa_files(self) -> list[Path]:
        folders = ["Open-access"] + (["Restricted-access"] if self.options.get("include_restricted") else [])
        files = [path for folder in folders for path in sorted((self.root / QA_DIR / folder).glob("*.json"))]
        if not files:
            raise SourceError(f"{self.root}: no {QA_DIR}/Open-access/*.json; point the root at the OmniMedVQA folder")
        return files

    def work_units(self) -> list[WorkUnit]:
        if not self.wants_split("unsplit"):
            return []
        zipped = self._zipped_qa()
        if zipped:
            return self._zip_units(zipped)
        units = []
        for path in self._qa_files():
            relative = self.relative(path)
            try:
                items = load_json_list(path, "QA items")
            except (ValueError, UnicodeDecodeError) as err:
                units.append(WorkUnit(self.name, f"omnimedvqa/unsplit/{relative}", "unsplit",
                                      ({"file": relative, "error": str(err)},)))
                continue
            units.extend(self.image_units("unsplit", [{"file": relative, "index": i} for i in range(len(items))],
                                          lambda entry: _image_name(items[entry["index"]]), label=path.stem))
        return units

    def _zip_units(self, zipped: dict[str, str]) -> list[WorkUnit]:
        units = []
        for relative, member in zipped.items():
            try:
                items = zip_json_list(self.root / ZIP, member, "QA items")
            except (ValueError, UnicodeDecodeError) as err:
                units.append(WorkUnit(self.name, f"omnimedvqa/unsplit/{relative}", "unsplit",
                                      ({"file": relative, "error": str(err)},)))
                continue
            units.extend(self.image_units("unsplit", [{"file": relative, "index": i, "member": member}
                                                      for i in range(len(items))],
                                          lambda entry: _image_name(items[entry["index"]]), label=Path(relative).stem))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        first = unit.items[0]
        if "member" in first:
            items, packed = zip_json_list(self.root / ZIP, first["member"], "QA items"), ZipImages([self.root / ZIP])
            try:
                yield from self.grouped_records(unit, (self._record(items[entry["index"]], entry, packed)
                                                       for entry in unit.items))
            finally:
                packed.close()
            return
        if "error" in first:
            yield self.reject(f"omnimedvqa/unsplit/{first['file']}", "unsplit", "malformed_json", first["error"],
                              provenance=[first["file"] if (self.root / first["file"]).is_file() else ZIP])
            return
        path = self.root / first["file"]
        items = load_json_list(path, "QA items")
        yield from self.grouped_records(unit, (self._record(items[entry["index"]], entry) for entry in unit.items))

    def _record(self, item, entry: dict, packed: ZipImages | None = None) -> Record | Rejection:
        qa_file, split = entry["file"], "unsplit"
        image = str(item.get("image_path") or "").strip() if isinstance(item, dict) else ""
        image_path = PurePosixPath(image.removeprefix("./"))
        if not isinstance(item, dict) or not item.get("question_id") or not image or ".." in image_path.parts \
                or image_path.is_absolute():
            return self.reject(f"omnimedvqa/unsplit/{qa_file}#{entry['index']}", split, "malformed_row",
                               "an item needs question_id and a relative image_path",
                               provenance=[qa_file] if packed is None else [ZIP])
        record_id, found = f"omnimedvqa/unsplit/{item['question_id']}", modality(item)
        provenance = [qa_file, image_path.as_posix()] if packed is None else [ZIP]
        options = {label: " ".join(str(item[f"option_{label}"]).split()) for label in LABELS
                   if item.get(f"option_{label}") not in (None, "")}
        question = " ".join(str(item.get("question") or "").split())
        answer = " ".join(str(item.get("gt_answer") or "").split())
        if not question or not answer or len(options) < 2:
            return self.reject(record_id, split, "qa_empty", f"question={question!r} answer={answer!r} "
                               f"options={len(options)}", modality=found, task_family="i2t", provenance=provenance)
        try:
            decoded = (decode_file(self.root / image_path, source_path=image_path.as_posix()) if packed is None
                       else packed.decode(image_path.as_posix(), source_path=image_path.as_posix()))
        except ImageDecodeError as err:
            return self.reject(record_id, split, err.reason, err.detail, modality=found, task_family="i2t",
                               provenance=provenance)
        return Record(
            id=record_id, source=self.name, split=split, modality=found, task_family="i2t",
            main_task_type="image_understanding", sub_task_type="medical_vqa",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{question_with_options(question, options)}"},
                     {"from": "gpt", "value": answer}],
            input_images=[decoded], provenance=provenance,
            source_text=dataset_text(question, *options.values(), answer),
            meta={"language": "en", "dataset": item.get("dataset"), "question_type": item.get("question_type"),
                  "modality_type": item.get("modality_type", item.get("modality"))},
        )
