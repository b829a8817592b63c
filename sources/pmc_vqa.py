"""PMC-VQA: multiple-choice questions generated from PubMed Central figure captions.

Card
- Citation: Zhang X, Wu C, Zhao Z, Lin W, Zhang Y, Wang Y, Xie W. "PMC-VQA: Visual Instruction Tuning for
  Medical Visual Question Answering." arXiv:2305.10415 (2023).
- URL: https://huggingface.co/datasets/xmcmic/PMC-VQA ; code https://github.com/xiaoman-zhang/PMC-VQA
- Licence: CC BY-SA 4.0 (HF card). Access: open download.
- Modality: mixed PMC figures (radiology, pathology, photographs, charts); the CSVs carry no modality,
  so every record is "other".
- Counts: v1 ~177k train / ~50k test QA (test_clean 2k, a cleaned subset of test); v2 (`*_2.csv`,
  non-compound figures) ~152k train / ~33k test [M].
- Overlaps: figures from PMC OA, like PMC-OA, ROCO/ROCOv2, LLaVA-Med and PubMedVision;
  `test_clean.csv` repeats rows of `test.csv` and is not read.

Layout (HF repo, zips unpacked in place)::

    PMC-VQA/
      images.zip   -> images/figures/PMC479042_pbio-0020244-g007_164.jpg ...
      images_2.zip -> images_2/figures/PMC1065321_F6.jpg ...
      train.csv test.csv test_clean.csv     v1, images/
      train_2.csv test_2.csv                v2, images_2/ (the card calls them train2.csv/test2.csv)

Columns: Figure_path (bare file name), Question, Answer, Choice A..D ("A:Diffuse uptake pattern"),
Answer_label ("B"); some versions add an index column, `Caption`, or spell the answer column `Anwser`.

Quirks handled here: column names are matched ignoring case, spaces and underscores; choices lose their
"A:" prefix (also " A:" and "A."); the answer is the text of the option named by Answer_label, falling back
to the Answer/Anwser column when the label is missing or names an empty option; the question is asked open,
as PMC-VQA's own generative setting does; images are looked up under `<images dir>/figures/` and then
`<images dir>/`; a row without question or answer is `qa_empty`.

Hub copy (docs/sources/hub/pmc_vqa.md): `xmcmic/PMC-VQA` = `RadGenome/PMC-VQA` hold the original files, so a
Hub cache snapshot or `--local-dir` copy is read like the download, with the same ids and texts, except that
the cache keeps `images.zip` / `images_2.zip` packed: when the images folder is absent, the figure is read
from the zip member with its basename (the zips' inner folders are not documented); the JPEG bytes are the
same members an unzip would give, passed through unchanged.

Option `group_questions: per_image` (with `max_turns`, `max_chars`; sources/shapes/vqa.py): the train
questions of one figure (per CSV) as multi-turn samples `pmc_vqa/train/image/<csv stem>/<Figure_path>/<n>`
(the same ids in the unzipped folder and the packed zip); test stays one sample per question.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator

from manifests.records import IMAGE_TOKEN, Image, Record, Rejection, dataset_text
from sources.base import DatasetCard, SourceError, WorkUnit
from sources.io.files import open_file
from sources.io.hub import ZipImages
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.vqa import VqaSource

CSV_FILES = {  # file -> (canonical split, images folder)
    "train.csv": ("train", "images"), "test.csv": ("test", "images"),
    "train_2.csv": ("train", "images_2"), "test_2.csv": ("test", "images_2"),
    "train2.csv": ("train", "images_2"), "test2.csv": ("test", "images_2"),
}
LABELS = ("A", "B", "C", "D")
CHOICE_PREFIX = re.compile(r"^\s*[A-D]\s*[:.)]\s*")


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "", name.lstrip("\ufeff")).lower()


def _read_csv(path) -> list[dict[str, str]]:
    """Rows keyed by normalised column names ("Choice A" -> "choicea", "Answer_label" -> "answerlabel")."""
    try:
        with open_file(path, "r", encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = [_key(name) for name in next(reader, [])]
            return [dict(zip(header, row)) for row in reader if row]
    except (UnicodeDecodeError, csv.Error) as err:
        raise SourceError(f"{path}: not a UTF-8 CSV file ({err}); re-download it") from err


def choice_text(value: str) -> str:
    return " ".join(CHOICE_PREFIX.sub("", value or "").split())


class PmcVqa(VqaSource):
    card = DatasetCard(
        name="pmc_vqa",
        title="PMC-VQA",
        modalities=("other",),
        tasks=("medical_vqa",),
        licence="CC BY-SA 4.0",
        access="open",
        url="https://huggingface.co/datasets/xmcmic/PMC-VQA",
        citation="Zhang et al., PMC-VQA: Visual Instruction Tuning for Medical Visual Question Answering, "
                 "arXiv:2305.10415",
        root_names=("PMC-VQA", "pmc_vqa", "PMC_VQA"),
        counts="~227k QA (v1) + ~185k QA (v2) over ~149k figures",
        hub_repos=("xmcmic/PMC-VQA", "RadGenome/PMC-VQA"),
    )

    def work_units(self) -> list[WorkUnit]:
        present = [name for name in CSV_FILES if (self.root / name).is_file()]
        if not present:
            raise SourceError(f"{self.root}: no train.csv/test.csv; point the root at the PMC-VQA folder")
        units = []
        for name in present:
            split, image_dir = CSV_FILES[name]
            if not self.wants_split(split):
                continue
            items = [{"file": name, "row": index, "images": image_dir, **row}
                     for index, row in enumerate(_read_csv(self.root / name))]
            units.extend(self.image_units(split, items, lambda item: item.get("figurepath", "").strip(),
                                          label=name.removesuffix(".csv")))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        zips: dict[str, ZipImages] = {}
        last: dict[tuple[str, str], Image] = {}  # the figure decoded last
        try:
            yield from self.grouped_records(unit, (self._record(item, unit.split, zips, last) for item in unit.items))
        finally:
            for archive in zips.values():
                archive.close()

    def _image_path(self, image_dir: str, figure: str) -> str:
        candidates = [f"{image_dir}/figures/{figure}", f"{image_dir}/{figure}"]
        found = next((path for path in candidates if (self.root / path).is_file()), None)
        if found is None and not (self.root / image_dir).is_dir() and (self.root / f"{image_dir}.zip").is_file():
            return f"{image_dir}.zip"  # the Hub cache keeps the zip packed: read the member
        return found or candidates[0]

    def image_key(self, record: Record) -> str | None:
        """The CSV's stem and the figure's file name: the same in the unzipped folder and in the packed zip."""
        figure = record.input_images[0].source_path.rsplit("/", 1)[-1]
        return f"{record.provenance[0].removesuffix('.csv')}/{figure}"

    def _decode(self, image_path: str, figure: str, zips: dict, last: dict) -> Image:
        """The figure's image; the one decoded last is reused (a figure's questions are often adjacent rows,
        and always under `group_questions: per_image`)."""
        if (image_path, figure) in last:
            return last[(image_path, figure)]
        if not image_path.endswith(".zip"):
            image = decode_file(self.root / image_path, source_path=image_path)
        else:
            if image_path not in zips:
                zips[image_path] = ZipImages([self.root / image_path])
            image = zips[image_path].decode(figure, source_path=f"{image_path}/{figure}")
        last.clear()
        last[(image_path, figure)] = image
        return image

    def _record(self, item: dict, split: str, zips: dict, last: dict) -> Record | Rejection:
        stem = item["file"].removesuffix(".csv")
        record_id = f"pmc_vqa/{split}/{stem}/{item['row']}"
        figure = item.get("figurepath", "").strip()
        if not figure:
            return self.reject(record_id, split, "malformed_row", "empty Figure_path", provenance=[item["file"]])
        image_path = self._image_path(item["images"], figure)
        provenance = [item["file"], image_path]
        choices = {label: choice_text(item.get(f"choice{label.lower()}", "")) for label in LABELS}
        label = item.get("answerlabel", "").strip().upper()
        answer = choices.get(label) or " ".join((item.get("answer") or item.get("anwser") or "").split())
        question = " ".join(item.get("question", "").split())
        if not question or not answer:
            return self.reject(record_id, split, "qa_empty", f"question={question!r} answer={answer!r}",
                               task_family="i2t", provenance=provenance)
        try:
            image = self._decode(image_path, figure, zips, last)
        except ImageDecodeError as err:
            return self.reject(record_id, split, err.reason, err.detail, task_family="i2t", provenance=provenance)
        return Record(
            id=record_id, source=self.name, split=split, modality="other", task_family="i2t",
            main_task_type="image_understanding", sub_task_type="medical_vqa",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{question}"}, {"from": "gpt", "value": answer}],
            input_images=[image], provenance=provenance, source_text=dataset_text(question, answer),
            meta={"answer_label": label or None, "choices": [choices[key] for key in LABELS if choices[key]]},
        )
