"""MedMCQA: Indian medical entrance-exam (AIIMS / NEET PG) multiple-choice questions with explanations.

Card
- Citation: Pal A, Umapathi LK, Sankarasubbu M. "MedMCQA: A Large-scale Multi-Subject Multi-Choice
  Dataset for Medical domain Question Answering." CHIL 2022, PMLR 174:248-260.
- URL: https://medmcqa.github.io, https://github.com/medmcqa/medmcqa (data zip on Google Drive);
  HF mirror `openlifescienceai/medmcqa` (parquet, `cop` 0-based there).
- Licence: Apache-2.0 (repository badge; the HF card says MIT). Access: open download.
- Redistribution: Apache-2.0 on the authors' repository badge (MIT on the HF card; both permissive);
  `unimed release` carries the texts (text only: no images).
- Modality: none (text only), English; 21 subjects, ~2.4k topics.
- Counts: train 182,822 / dev 4,183 / test 6,150 (the README's table swaps the dev and test counts;
  the HF card has these). Test answers are withheld (evaluation by submission).
- Overlaps: redistributed in BigBio and many instruction mixes: deduplicate by text hash.

Layout (the Google Drive zip, unpacked)::

    medmcqa_data/  (also seen as data/ or medmcqa/)
      train.json  dev.json  test.json       JSON lines, one question per line

A line: `id` (uuid), `question`, `opa` `opb` `opc` `opd`, `cop` (1-4 = A-D in the official files),
`choice_type` ("single" / "multi"), `exp` (expert explanation, may be null or empty), `subject_name`,
`topic_name` (may be null).

Each question gives one text-only sample: human = question + lettered options; gpt = the right option
("B. Leukopenia") then "Explanation: ..." when `exp` is non-empty (the dataset's reasoning).
Quirks handled here: `cop` read as 1-based (option `cop_base: 0` for an HF export); test lines carry no
`cop` (or -1) and become `answer_missing`; `exp` null/blank is left out; a line that is not JSON is
`malformed_json`; missing keys `malformed_row`; empty question `question_empty`; an empty option text
is kept as-is. Long explanations exceed the stage-1 1024-character limit (`text_too_long` there).

Hub copy (docs/sources/hub/medmcqa.md): `openlifescienceai/medmcqa` (old id `medmcqa`), from a Hub cache
snapshot or a `--local-dir` copy: `data/{train,validation,test}-00000-of-00001.parquet`, the same columns as
the JSON lines, `cop` 0-based (0 = A) and -1 on every test row, test `exp` "". The `id` column is unchanged,
so Hub rows get the same ids and texts as the original files (`validation` is the `dev` split).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache

from manifests.records import Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import mtime_ns, open_file
from sources.io.hub import iter_parquet_rows, split_files

SPLITS = {"train": "train", "dev": "validate", "test": "test"}  # file stem -> canonical split
OPTION_KEYS = (("A", "opa"), ("B", "opb"), ("C", "opc"), ("D", "opd"))
HUB_SPLITS = {"train": "train", "validation": "validate", "test": "test"}
HUB_COLUMNS = ("id", "question", "opa", "opb", "opc", "opd", "cop", "choice_type", "exp", "subject_name", "topic_name")
REQUIRED_KEYS = ("id", "question", "opa", "opb", "opc", "opd")


@lru_cache(maxsize=8)
def _read_lines(path: str, mtime_ns: int) -> tuple[str, ...]:
    with open_file(path, "r", encoding="utf-8") as handle:
        return tuple(handle.read().splitlines())


def _answer_letter(cop, base: int) -> str | None:
    """The right option's letter from `cop`, or None when the line has no usable answer."""
    if cop is None or isinstance(cop, bool):
        return None
    try:
        index = int(cop) - base
    except (TypeError, ValueError):
        return None
    return OPTION_KEYS[index][0] if 0 <= index < len(OPTION_KEYS) else None


class Medmcqa(Source):
    card = DatasetCard(
        name="medmcqa",
        title="MedMCQA",
        modalities=("other",),
        tasks=("medical_qa",),
        licence="Apache-2.0 (repository; HF card: MIT)",
        access="open",
        url="https://medmcqa.github.io",
        citation="Pal et al., MedMCQA: A Large-scale Multi-Subject Multi-Choice Dataset for Medical domain "
                 "Question Answering, CHIL 2022",
        root_names=("medmcqa_data", "medmcqa", "MedMCQA"),
        counts="182,822 / 4,183 / 6,150 questions (train/dev/test; test answers withheld)",
        hub_repos=("openlifescienceai/medmcqa", "medmcqa"),
        redistribute_text=True,
    )
    items_per_unit = 2048

    def work_units(self) -> list[WorkUnit]:
        present = [stem for stem in SPLITS if (self.root / f"{stem}.json").is_file()]
        hub = {} if present else split_files(self.root, "data/{split}-*.parquet", HUB_SPLITS)
        if hub:
            return [unit for split, files in hub.items() if self.wants_split(split)
                    for unit in self.parquet_units(split, files)]
        if not present:
            raise SourceError(f"{self.root}: no train.json/dev.json/test.json; point the root at the unzipped MedMCQA data")
        units = []
        for stem in present:
            split = SPLITS[stem]
            if not self.wants_split(split):
                continue
            path = self.root / f"{stem}.json"
            lines = _read_lines(str(path), mtime_ns(path))
            units.extend(self.chunked_units(split, [(path.name, index) for index in range(len(lines))]))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        if isinstance(unit.items[0], dict):  # a Hub Parquet row-group range: cop is 0-based there
            item = unit.items[0]
            for row, values in iter_parquet_rows(self.root / item["file"], item["row_groups"], item["first_row"],
                                                 HUB_COLUMNS):
                yield self._from_row(values, f"{item['file']}#{row}", unit.split, item["file"], 0)
            return
        base = int(self.options.get("cop_base", 1))
        for name, index in unit.items:
            path = self.root / name
            line = _read_lines(str(path), mtime_ns(path))[index]
            if line.strip():
                yield self._record(line, f"{name}#{index}", unit.split, name, base)

    def _record(self, line: str, fallback_id: str, split: str, name: str, base: int) -> Record | Rejection:
        facts = {"task_family": "text", "provenance": [name]}
        try:
            row = json.loads(line)
        except ValueError as err:
            return self.reject(f"medmcqa/{split}/{fallback_id}", split, "malformed_json", str(err), **facts)
        return self._from_row(row, fallback_id, split, name, base)

    def _from_row(self, row, fallback_id: str, split: str, name: str, base: int) -> Record | Rejection:
        facts = {"task_family": "text", "provenance": [name]}
        missing = [key for key in REQUIRED_KEYS if not isinstance(row, dict) or key not in row]
        if missing or not str(row["id"] or "").strip():
            return self.reject(f"medmcqa/{split}/{fallback_id}", split, "malformed_row",
                               f"missing keys {missing or ['id']}", **facts)
        record_id = f"medmcqa/{split}/{str(row['id']).strip()}"
        question = str(row["question"] or "").strip()
        if not question:
            return self.reject(record_id, split, "question_empty", **facts)
        letter = _answer_letter(row.get("cop"), base)
        if letter is None:
            return self.reject(record_id, split, "answer_missing", f"cop={row.get('cop')!r}", **facts)
        options = {key: str(row[field] if row[field] is not None else "").strip() for key, field in OPTION_KEYS}
        answer = f"{letter}. {options[letter]}"
        explanation = str(row.get("exp") or "").strip()
        if explanation:
            answer += f"\nExplanation: {explanation}"
        prompt = question + "\n" + "\n".join(f"{key}. {text}" for key, text in options.items())
        return Record(
            id=record_id,
            source=self.name,
            split=split,
            modality="other",
            task_family="text",
            main_task_type="text_understanding",
            sub_task_type="medical_qa",
            message=[{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}],
            provenance=[name],
            source_text=dataset_text(question, *options.values(), options[letter], explanation),
            meta={"language": "en", "answer_idx": letter, "has_explanation": bool(explanation),
                  "choice_type": row.get("choice_type"), "subject": row.get("subject_name"),
                  "topic": row.get("topic_name")},
        )
