"""medical-o1-reasoning-SFT (HuatuoGPT-o1): text-only medical QA with a distilled chain of thought.

Card
- Citation: Chen J, Cai Z, Ji K, Wang X, Liu W, Wang R, Hou J, Wang B. "HuatuoGPT-o1, Towards Medical
  Complex Reasoning with LLMs." arXiv:2412.18925 (2024).
- URL: https://huggingface.co/datasets/FreedomIntelligence/medical-o1-reasoning-SFT (code:
  github.com/FreedomIntelligence/HuatuoGPT-o1). Evidence: docs/sources/medical_o1_reasoning_sft.md.
- Licence: Apache-2.0 (card). Access: open download, no gate.
- How made: GPT-4o searched for solutions to verifiable medical problems (rewritten from MedQA-USMLE /
  MedMCQA training questions) and a medical verifier checked them; `Complex_CoT` is that search.
- Counts: en 19,704 / zh 20,171 / en_mix 24,887 / zh_mix 25,358 rows; one split (train).
- Overlaps: the questions derive from the MedQA and MedMCQA training sets (our `medqa`, `medmcqa`) and
  reappear in MedReason; exact duplicates are removed by the build's dedup, near ones are not.

Layout (HF dataset repo, revision fc2c9e8 or later)::

    medical-o1-reasoning-SFT/
      README.md
      medical_o1_sft.json               config en: medical only (read by default)
      medical_o1_sft_Chinese.json       config zh
      medical_o1_sft_mix.json           config en_mix: medical + general instructions
      medical_o1_sft_mix_Chinese.json   config zh_mix

Each file is one JSON list (not JSON lines) of objects with exactly the keys `Question`, `Complex_CoT`
and `Response` (capitalised); no id, no options, no split field. A record is keyed by config and list
index (stable for a pinned revision).

Rendering (stage 2's DCOT format, as UniMedVL's VLM_THINK prompt expects): human = `Question`; gpt =
`<think>\\n{Complex_CoT}\\n</think>\\n{Response}` (the authors' "## Thinking / ## Final Response"
headings are not used). Quirks handled here: option `config` picks the file (default `en`; the `_mix`
files hold general, non-medical data); a row that is not an object or has no `Question` (third-party
copies use lower-case `question` / `complex_cot`) is `schema`, not guessed; a missing or empty chain of thought is
`rationale_empty`, an empty response `answer_missing`, an empty question `question_empty`; a file that is
not one JSON list (e.g. JSON lines) stops the source with a message saying so. CoT is long (1.4-3.6K
characters): the stage-1 1024-character text rule would reject every row, so stage 2 sets its own limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache

from manifests.records import Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import mtime_ns, open_file
from sources.shapes.cot import render_cot

CONFIGS = {"en": ("medical_o1_sft.json", "en"), "zh": ("medical_o1_sft_Chinese.json", "zh"),
           "en_mix": ("medical_o1_sft_mix.json", "en"), "zh_mix": ("medical_o1_sft_mix_Chinese.json", "zh")}
KEYS = ("Question", "Complex_CoT", "Response")


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> tuple:
    try:
        with open_file(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except ValueError as err:
        raise SourceError(f"{path} is not one JSON list ({err}); medical-o1-reasoning-SFT ships JSON lists, "
                          "not JSON lines: download the file again from the HF dataset repo") from err
    if not isinstance(data, list):
        raise SourceError(f"{path} holds a JSON {type(data).__name__}, not the list of rows the release ships")
    return tuple(data)


class MedicalO1ReasoningSft(Source):
    card = DatasetCard(
        name="medical_o1_reasoning_sft",
        title="medical-o1-reasoning-SFT (HuatuoGPT-o1 SFT data)",
        modalities=("other",),
        tasks=("medical_qa_cot",),
        licence="Apache-2.0",
        access="open",
        url="https://huggingface.co/datasets/FreedomIntelligence/medical-o1-reasoning-SFT",
        citation="Chen et al., HuatuoGPT-o1, Towards Medical Complex Reasoning with LLMs, arXiv:2412.18925 (2024)",
        root_names=("medical-o1-reasoning-SFT", "medical_o1_reasoning_sft"),
        counts="en 19,704 / zh 20,171 / en_mix 24,887 / zh_mix 25,358 rows (train only)",
    )
    items_per_unit = 2048

    def _file(self) -> tuple[str, str, str]:
        config = str(self.options.get("config", "en"))
        if config not in CONFIGS:
            raise SourceError(f"medical_o1_reasoning_sft: config must be one of {sorted(CONFIGS)}, not {config!r}")
        name, language = CONFIGS[config]
        if not (self.root / name).is_file():
            raise SourceError(f"{self.root}: no {name}; point the root at the medical-o1-reasoning-SFT download")
        return config, name, language

    def work_units(self) -> list[WorkUnit]:
        config, name, _ = self._file()
        if not self.wants_split("train"):
            return []
        path = self.root / name
        rows = _load(str(path), mtime_ns(path))
        return self.chunked_units("train", [(name, index) for index in range(len(rows))], label=config)

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        config, _, language = self._file()
        for name, index in unit.items:
            path = self.root / name
            yield self._record(_load(str(path), mtime_ns(path))[index], config, language, name, index)

    def _record(self, row, config: str, language: str, name: str, index: int) -> Record | Rejection:
        record_id = f"{self.name}/train/{config}-{index:06d}"
        facts = {"task_family": "text", "provenance": [name]}
        if not isinstance(row, dict) or "Question" not in row:  # lower-case copies are not guessed
            found = sorted(row) if isinstance(row, dict) else type(row).__name__
            return self.reject(record_id, "train", "schema", f"expected keys {list(KEYS)}, found {found}", **facts)
        question, rationale, answer = (str(row.get(key) or "").strip() for key in KEYS)
        if not question:
            return self.reject(record_id, "train", "question_empty", **facts)
        if not rationale:
            return self.reject(record_id, "train", "rationale_empty", **facts)
        if not answer:
            return self.reject(record_id, "train", "answer_missing", **facts)
        return Record(
            id=record_id, source=self.name, split="train", modality="other", task_family="text",
            main_task_type="text_understanding", sub_task_type="medical_qa_cot",
            message=[{"from": "human", "value": question}, {"from": "gpt", "value": render_cot(rationale, answer)}],
            provenance=[name], meta={"language": language, "config": config, "cot": "distilled"},
            source_text=dataset_text(question, rationale, answer),
        )
