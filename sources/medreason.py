"""MedReason: text-only medical QA with knowledge-graph-guided reasoning chains (a text DCOT set).

Card
- Citation: Wu et al. "MedReason: Eliciting Factual Medical Reasoning Steps in LLMs via Knowledge Graphs."
  arXiv:2504.00993 (2025).
- URL: https://huggingface.co/datasets/UCSC-VLAA/MedReason (code: github.com/UCSC-VLAA/MedReason).
  Evidence: docs/sources/medreason.md (fields from the authors' code and third-party readers; no raw line read).
- Licence: Apache-2.0 (card YAML). Access: open download, no gate.
- How made: GPT-4o wrote a reasoning chain per question from knowledge-graph paths (PrimeKG), then rows were
  kept only when GPT-4 answered correctly from the reasoning (repo `quality_filtering.py`).
- Counts: 32,682 QA pairs from 7 medical QA sets (the file name says 33000); one split (train).
- Overlaps: `dataset_name` names the question's origin: medqa, medmcqa, pubmedqa (our adapters), huatuo (the
  medical-o1-reasoning-SFT questions), and the evaluation sets MedXpertQA and LastHumanity (Humanity's Last
  Exam), whose rows are rejected `benchmark_source` by default (option `drop_datasets`).

Layout (HF dataset repo; `huggingface-cli download --repo-type dataset UCSC-VLAA/MedReason --local-dir MedReason`)::

    MedReason/
      README.md
      ours_quality_33000.jsonl     JSON lines: question, options, answer, reasoning, dataset_name, id_in_dataset

Rendering (stage 2's DCOT format): human = `question` + ("\\n" + `options` when non-empty); gpt =
`<think>\\n{reasoning}\\n</think>\\n{answer}`; sub-task `medical_qa_cot`. `reasoning` keeps its own "Finding
reasoning paths: / Reasoning Process: / Conclusion:" sections inside `<think>`; `answer` is answer text (medmcqa
rows carry ". Explanation: ..."; kept as the release has it). A record is keyed by its line number
(`medreason/train/000123`, stable for a pinned revision; blank lines are skipped, not numbered out).
Quirks handled here: `options` is the generator's pre-formatted "Answer Choices:\\nA. ..." string, "" for open
questions, or (in some copies) a JSON object / list, formatted as "A. ..." lines; a line that is not JSON is
`malformed_json`, a row without the four text keys `schema`; an empty question `question_empty`, an empty
reasoning or a failed generation ("No reasoning path...") `rationale_empty`, an empty answer `answer_missing`.
If the file is not named `ours_quality_33000.jsonl`, the one `*.jsonl` at the root is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from manifests.records import Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import mtime_ns, open_file
from sources.io.lfs import check_lfs_pointer
from sources.shapes.cot import render_cot

FILE_NAME = "ours_quality_33000.jsonl"
KEYS = ("question", "options", "answer", "reasoning")
BENCHMARKS = ("MedXpertQA", "LastHumanity")  # evaluation sets: never train on their questions
FAILED_GENERATION = "no reasoning path"


@lru_cache(maxsize=2)
def _lines(path: str, mtime_ns: int) -> tuple[str, ...]:
    check_lfs_pointer(path)
    with open_file(path, "r", encoding="utf-8") as handle:
        return tuple(handle.read().splitlines())


def format_options(value) -> str:
    """The options as shown to the model: the release's own string, or "A. ..." lines from a JSON object/list."""
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith(("{", "[")):
            return text
        try:
            value = json.loads(text)
        except ValueError:
            return text
    if isinstance(value, dict):
        return "\n".join(f"{key}. {str(option).strip()}" for key, option in value.items())
    if isinstance(value, list):
        return "\n".join(f"{chr(ord('A') + i)}. {str(option).strip()}" for i, option in enumerate(value))
    return "" if value is None else str(value).strip()


class Medreason(Source):
    card = DatasetCard(
        name="medreason",
        title="MedReason (knowledge-graph-guided medical reasoning chains)",
        modalities=("other",),
        tasks=("medical_qa_cot",),
        licence="Apache-2.0",
        access="open",
        url="https://huggingface.co/datasets/UCSC-VLAA/MedReason",
        citation="Wu et al., MedReason: Eliciting Factual Medical Reasoning Steps in LLMs via Knowledge Graphs, "
                 "arXiv:2504.00993 (2025)",
        root_names=("MedReason", "medreason"),
        counts="32,682 QA pairs from 7 medical QA sets (train only)",
    )
    items_per_unit = 2048

    def _file(self) -> Path:
        if (self.root / FILE_NAME).is_file():
            return self.root / FILE_NAME
        found = sorted(self.root.glob("*.jsonl"))
        if len(found) != 1:
            raise SourceError(f"{self.root}: no {FILE_NAME} (and {len(found)} other *.jsonl files); point the root "
                              "at the UCSC-VLAA/MedReason download")
        return found[0]

    def work_units(self) -> list[WorkUnit]:
        path = self._file()
        if not self.wants_split("train"):
            return []
        lines = _lines(str(path), mtime_ns(path))
        return self.chunked_units("train", [(path.name, i) for i, line in enumerate(lines) if line.strip()])

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        drop = {str(name).lower() for name in self.options.get("drop_datasets", BENCHMARKS)}
        for name, index in unit.items:
            path = self.root / name
            yield self._record(_lines(str(path), mtime_ns(path))[index], name, index, drop)

    def _record(self, line: str, name: str, index: int, drop: set[str]) -> Record | Rejection:
        record_id = f"{self.name}/train/{index:06d}"
        facts = {"task_family": "text", "provenance": [name]}
        try:
            row = json.loads(line)
        except ValueError as err:
            return self.reject(record_id, "train", "malformed_json", str(err), **facts)
        if not isinstance(row, dict) or any(key not in row for key in KEYS):
            found = sorted(row) if isinstance(row, dict) else type(row).__name__
            return self.reject(record_id, "train", "schema", f"expected keys {list(KEYS)}, found {found}", **facts)
        origin = str(row.get("dataset_name") or "").strip()
        if origin.lower() in drop:
            return self.reject(record_id, "train", "benchmark_source",
                               f"dataset_name {origin} (item {row.get('id_in_dataset')}) is an evaluation set", **facts)
        question, answer = str(row["question"] or "").strip(), str(row["answer"] or "").strip()
        reasoning, options = str(row["reasoning"] or "").strip(), format_options(row["options"])
        if not question:
            return self.reject(record_id, "train", "question_empty", **facts)
        if not reasoning or reasoning.lower().startswith(FAILED_GENERATION):
            return self.reject(record_id, "train", "rationale_empty", reasoning[:80], **facts)
        if not answer:
            return self.reject(record_id, "train", "answer_missing", **facts)
        prompt = f"{question}\n{options}" if options else question
        return Record(
            id=record_id, source=self.name, split="train", modality="other", task_family="text",
            main_task_type="text_understanding", sub_task_type="medical_qa_cot",
            message=[{"from": "human", "value": prompt}, {"from": "gpt", "value": render_cot(reasoning, answer)}],
            provenance=[name], source_text=dataset_text(question, options, reasoning, answer),
            meta={"language": "en", "dataset_name": origin or None, "id_in_dataset": row.get("id_in_dataset"),
                  "cot": "distilled"},
        )
