"""MedQA (USMLE): multiple-choice questions from the US medical licensing exams, as text-only samples.

Card
- Citation: Jin D, Pan E, Oufattole N, Weng W-H, Fang H, Szolovits P. "What Disease does this Patient
  Have? A Large-scale Open Domain Question Answering Dataset from Medical Exams." Applied Sciences 11(14),
  6421 (2021); arXiv:2009.13081.
- URL: https://github.com/jind11/MedQA (data on the authors' Google Drive, `data_clean.zip`).
- Licence: MIT (the repository's licence; the questions come from exam-preparation material).
  Access: open download.
- Redistribution: the MIT licence of the authors' repository (github.com/jind11/MedQA) covers the data
  files; `unimed release` carries the texts (text only: no images).
- Modality: none (text only). English (US) subset; the Mainland / Taiwan (Chinese) sets are not read.
- Counts: US 12,723 questions: train 10,178 / dev 1,272 / test 1,273; 5 options (A-E); a 4-option
  variant of the same questions sits in `US/4_options/`.
- Overlaps: the same questions are redistributed on HF (GBaker/MedQA-USMLE-4-options, bigbio/med_qa) and
  inside instruction mixes (e.g. BigBio-derived CoT sets): deduplicate by text hash.

Layout (`data_clean.zip` unpacked)::

    data_clean/
      questions/US/{train,dev,test}.jsonl        one question per line
      questions/US/US_qbank.jsonl                all questions (not read: the splits cover it)
      questions/US/4_options/phrases_no_exclude_{train,dev,test}.jsonl
      questions/US/metamap/ ...  questions/Mainland/ ...  questions/Taiwan/ ...
      textbooks/en/*.txt ...

A line: `question` (vignette + question), `answer` (text of the right option), `options` {"A": ...,
"B": ...}, `answer_idx` ("A".."E"), `meta_info` ("step1" or "step2&3"); the 4-option files add
`metamap_phrases`. The dataset ships no explanation, so the answer turn is the option letter and text.

Quirks handled here: the root may be `data_clean/`, its parent, or `questions/US/` itself; option
`variant: "4_options"` reads the 4-option files; lines have no id, so a record is named by its line
number; a line that is not JSON is `malformed_json`, one missing a key is `malformed_row`; an empty
question is `question_empty`; an `answer_idx` that is not one of the options is `answer_not_in_options`.
Long vignettes exceed the stage-1 recipe's 1024-character limit and are rejected there as `text_too_long`.

Hub copy (docs/sources/hub/medqa.md): `GBaker/MedQA-USMLE-4-options` holds `phrases_no_exclude_{train,test}.jsonl`
at its root (no dev file), the same names as `4_options/`; a Hub cache snapshot or `--local-dir` copy is read
as variant `4_options` with the same ids `medqa/{split}/phrases_no_exclude_{stem}-{line}` and texts, on the
documented assumption that the files are the same as the GitHub ones [M].
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from manifests.records import Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import mtime_ns, open_file

SPLITS = {"train": "train", "dev": "validate", "test": "test"}  # file stem -> canonical split
QUESTION_DIRS = ("questions/US", "data_clean/questions/US", "US", ".")
FILE_NAMES = {"5_options": "{stem}.jsonl", "4_options": "4_options/phrases_no_exclude_{stem}.jsonl"}
REQUIRED_KEYS = ("question", "options", "answer_idx")


@lru_cache(maxsize=8)
def _read_lines(path: str, mtime_ns: int) -> tuple[str, ...]:
    with open_file(path, "r", encoding="utf-8") as handle:
        return tuple(handle.read().splitlines())


def _count_lines(path: str) -> int:
    """How many lines `_read_lines` gives, without keeping them (listing runs on the driver)."""
    with open_file(path, "r", encoding="utf-8") as handle:
        return len(handle.read().splitlines())


def format_options(options: dict) -> str:
    return "\n".join(f"{letter}. {str(text).strip()}" for letter, text in options.items())


class Medqa(Source):
    card = DatasetCard(
        name="medqa",
        title="MedQA (USMLE, English)",
        modalities=("other",),
        tasks=("medical_qa",),
        licence="MIT (repository licence)",
        access="open",
        url="https://github.com/jind11/MedQA",
        citation="Jin et al., What Disease does this Patient Have? A Large-scale Open Domain Question Answering "
                 "Dataset from Medical Exams, Applied Sciences 2021",
        root_names=("data_clean", "MedQA", "medqa"),
        counts="12,723 US questions: 10,178 / 1,272 / 1,273 (train/dev/test)",
        hub_repos=("GBaker/MedQA-USMLE-4-options",),
        redistribute_text=True,
    )

    def _is_hub(self) -> bool:
        return not any((self.root / c / n).is_file() for c in QUESTION_DIRS for n in ("train.jsonl", "test.jsonl")) \
            and any((self.root / f"phrases_no_exclude_{stem}.jsonl").is_file() for stem in SPLITS)
    items_per_unit = 1024

    def _question_dir(self) -> Path:
        for candidate in QUESTION_DIRS:
            if (self.root / candidate / "train.jsonl").is_file() or (self.root / candidate / "test.jsonl").is_file():
                return self.root / candidate
        raise SourceError(f"{self.root}: no questions/US/{{train,dev,test}}.jsonl; point the root at MedQA's data_clean/")

    def work_units(self) -> list[WorkUnit]:
        variant = str(self.options.get("variant", "5_options"))
        if variant not in FILE_NAMES:
            raise SourceError(f"medqa: variant must be one of {sorted(FILE_NAMES)}, not {variant!r}")
        pattern = FILE_NAMES[variant]
        if self._is_hub():  # GBaker/MedQA-USMLE-4-options: the 4_options files at the repo root
            if self.options.get("variant", "4_options") != "4_options":
                raise SourceError(f"{self.root}: the Hub copy holds only the 4_options files; drop `variant: {variant}`")
            folder, pattern = self.root, "phrases_no_exclude_{stem}.jsonl"
        else:
            folder = self._question_dir()
        units = []
        for stem, split in SPLITS.items():
            path = folder / pattern.format(stem=stem)
            if not path.is_file() or not self.wants_split(split):
                continue
            relative = self.relative(path)
            units.extend(self.chunked_units(split, [(relative, index) for index in range(_count_lines(str(path)))]))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for relative, index in unit.items:
            path = self.root / relative
            line = _read_lines(str(path), mtime_ns(path))[index]
            if line.strip():
                yield self._record(line, index, unit.split, relative)

    def _record(self, line: str, index: int, split: str, relative: str) -> Record | Rejection:
        record_id = f"medqa/{split}/{Path(relative).stem}-{index:05d}"
        facts = {"task_family": "text", "provenance": [relative]}
        try:
            row = json.loads(line)
        except ValueError as err:
            return self.reject(record_id, split, "malformed_json", str(err), **facts)
        missing = [key for key in REQUIRED_KEYS if not isinstance(row, dict) or key not in row]
        if missing or not isinstance(row["options"], dict):
            return self.reject(record_id, split, "malformed_row", f"missing keys {missing or ['options']}", **facts)
        question = str(row["question"] or "").strip()
        if not question:
            return self.reject(record_id, split, "question_empty", **facts)
        letter = str(row["answer_idx"]).strip()
        if letter not in row["options"]:
            return self.reject(record_id, split, "answer_not_in_options", f"{letter!r} not in {sorted(row['options'])}",
                               **facts)
        return Record(
            id=record_id,
            source=self.name,
            split=split,
            modality="other",
            task_family="text",
            main_task_type="text_understanding",
            sub_task_type="medical_qa",
            message=[
                {"from": "human", "value": f"{question}\n{format_options(row['options'])}"},
                {"from": "gpt", "value": f"{letter}. {str(row['options'][letter]).strip()}"},
            ],
            provenance=[relative],
            source_text=dataset_text(question, *map(str, row["options"].values()), str(row["options"][letter])),
            meta={"language": "en", "answer_idx": letter, "exam": row.get("meta_info"),
                  "n_options": len(row["options"])},
        )
