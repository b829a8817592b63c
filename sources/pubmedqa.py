"""PubMedQA: yes/no/maybe questions over PubMed abstracts, with the abstract's conclusion as reasoning.

Card
- Citation: Jin Q, Dhingra B, Liu Z, Cohen WW, Lu X. "PubMedQA: A Dataset for Biomedical Research
  Question Answering." EMNLP-IJCNLP 2019, 2567-2577.
- URL: https://pubmedqa.github.io, https://github.com/pubmedqa/pubmedqa (PQA-L in the repository; PQA-A
  and PQA-U on Google Drive).
- Licence: MIT (repository). Access: open download.
- Redistribution: MIT licence of the authors' repository (github.com/pubmedqa/pubmedqa); `unimed release`
  carries the texts (text only: no images).
- Modality: none (text only), English.
- Counts: PQA-L 1,000 expert-labelled (500 official test PMIDs in `test_ground_truth.json`, 500 for
  10-fold CV); PQA-A 211,269 artificially labelled; PQA-U 61,249 unlabelled.
- Overlaps: redistributed on HF (`qiaojin/PubMedQA`, `bigbio/pubmed_qa`) and in instruction mixes;
  abstracts overlap PMC-derived corpora only in text.

Layout (repository clone + the two Drive downloads put into `data/` as its README says)::

    pubmedqa/
      data/ori_pqal.json             {PMID: {...}} 1,000 labelled
      data/test_ground_truth.json    {PMID: "yes"|"no"|"maybe"} the 500 test questions
      data/ori_pqaa.json             PQA-A (downloaded)       data/ori_pqau.json  PQA-U (downloaded)
      (after preprocess/split_dataset.py) data/test_set.json  data/pqal_fold{0..9}/{train,dev}_set.json
                                          data/pqaa_train_set.json  data/pqaa_dev_set.json
      preprocess/split_dataset.py  evaluation.py  get_human_performance.py

An entry: `QUESTION`, `CONTEXTS` (abstract paragraphs minus the conclusion), `LABELS` (section names,
parallel to CONTEXTS), `MESHES`, `YEAR`, `reasoning_required_pred`, `reasoning_free_pred`,
`final_decision` (yes/no/maybe), `LONG_ANSWER` (the conclusion). PQA-A lacks the two reasoning
predictions [M]; PQA-U has no `final_decision` [M].

Each entry gives one text-only sample: human = the labelled context paragraphs + the question; gpt =
LONG_ANSWER (the reasoning) then "Answer: yes|no|maybe" (PQA-U: LONG_ANSWER only).
Splits: PQA-L PMIDs listed in `test_ground_truth.json` (or `test_set.json`) are test, the rest train;
without either file PQA-L is `unsplit`. PQA-A is train, or validate for PMIDs in `pqaa_dev_set.json`
when the split script was run. PQA-U is train (no official split). Option `subsets` picks among
pqal/pqaa/pqau (default: those present).
Quirks handled here: root at the clone or at its `data/`; LABELS shorter than CONTEXTS (labels dropped);
missing QUESTION -> `malformed_row`, blank -> `question_empty`; no CONTEXTS -> `context_missing`; a
decision outside yes/no/maybe -> `answer_invalid`; no LONG_ANSWER and no decision -> `answer_missing`.
Most samples are longer than 1024 characters (abstract + conclusion) and are rejected by the stage-1
recipe as `text_too_long`; that is expected.

Hub copy (docs/sources/hub/pubmedqa.md): `qiaojin/PubMedQA` (old id `pubmed_qa`), from a Hub cache snapshot or
a `--local-dir` copy: `pqa_{labeled,artificial,unlabeled}/train-*.parquet` with pubid (= the PMID key),
question, context {contexts, labels, meshes}, long_answer, final_decision (not in pqa_unlabeled). The ids are
the same `{subset}-{pmid}`; texts are the same (YEAR is not on the Hub: meta.year None). The Hub has one split
and no test PMID list, so PQA-L is `unsplit` there, as in a clone without test_ground_truth.json; give the
option `test_ids_file` (a test_ground_truth.json) to get the official test/train split and the same ids as
a full original build. Row-group units are cut per split, so each row is read by exactly one unit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from manifests.records import Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import mtime_ns, open_file
from sources.io.hub import iter_parquet_rows
from sources.io.lfs import check_lfs_pointer


HUB_CONFIGS = {"pqal": "pqa_labeled", "pqaa": "pqa_artificial", "pqau": "pqa_unlabeled"}
HUB_COLUMNS = ("pubid", "question", "context", "long_answer", "final_decision")

SUBSET_FILES = {"pqal": "ori_pqal.json", "pqaa": "ori_pqaa.json", "pqau": "ori_pqau.json"}
TEST_FILES = ("test_ground_truth.json", "test_set.json")
DECISIONS = ("yes", "no", "maybe")


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> dict:
    check_lfs_pointer(path)
    with open_file(path, "r", encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise SourceError(f"{path}: expected a JSON object keyed by PMID, got {type(data).__name__}")
    return data


def _contexts(entry: dict) -> list[str]:
    return [str(text).strip() for text in entry.get("CONTEXTS") or [] if str(text).strip()]


def _context(entry: dict) -> str:
    contexts = _contexts(entry)
    labels = [str(label).strip() for label in entry.get("LABELS") or []]
    if len(labels) != len(contexts):
        return "\n".join(contexts)
    return "\n".join(f"{label}: {text}" if label else text for label, text in zip(labels, contexts))


class Pubmedqa(Source):
    card = DatasetCard(
        name="pubmedqa",
        title="PubMedQA (PQA-L / PQA-A / PQA-U)",
        modalities=("other",),
        tasks=("medical_qa",),
        licence="MIT",
        access="open",
        url="https://pubmedqa.github.io",
        citation="Jin et al., PubMedQA: A Dataset for Biomedical Research Question Answering, EMNLP 2019",
        root_names=("pubmedqa", "PubMedQA"),
        counts="1k labelled (500 test), 211.3k artificial, 61.2k unlabelled",
        hub_repos=("qiaojin/PubMedQA", "pubmed_qa"),
        redistribute_text=True,
    )
    items_per_unit = 1024

    def _data_dir(self) -> Path:
        for folder in (self.root / "data", self.root):
            if any((folder / name).is_file() for name in SUBSET_FILES.values()):
                return folder
        raise SourceError(f"{self.root}: no data/ori_pqal.json (or ori_pqaa/ori_pqau); point the root at the pubmedqa clone")

    def _ids_in(self, folder: Path, names: tuple[str, ...]) -> set[str] | None:
        for name in names:
            if (folder / name).is_file():
                return set(_load(str(folder / name), mtime_ns(folder / name)))
        return None

    def _hub_files(self) -> dict[str, list[str]]:
        if any((folder / name).is_file() for folder in (self.root / "data", self.root) for name in SUBSET_FILES.values()):
            return {}
        return {subset: sorted(p.relative_to(self.root).as_posix() for p in (self.root / config).glob("train-*.parquet"))
                for subset, config in HUB_CONFIGS.items() if (self.root / config).is_dir()}

    def _hub_units(self, files: dict[str, list[str]]) -> list[WorkUnit]:
        test_file = self.options.get("test_ids_file")
        test = set(_load(str(test_file), mtime_ns(test_file))) if test_file else None
        units = []
        for subset in tuple(self.options.get("subsets", SUBSET_FILES)):
            if subset == "pqal":
                splits = ("unsplit",) if test is None else ("train", "test")
            else:
                splits = ("train",)
            for split in splits:
                if not self.wants_split(split):
                    continue
                for unit in self.parquet_units(split, files.get(subset, [])):
                    item = {**unit.items[0], "subset": subset, "test": tuple(sorted(test)) if test else None}
                    units.append(WorkUnit(unit.source, f"{unit.id}/{subset}", split, (item,)))
        return units

    def _hub_records(self, item: dict, split: str) -> Iterator[Record | Rejection]:
        test = set(item["test"] or ())
        for _row, values in iter_parquet_rows(self.root / item["file"], item["row_groups"], item["first_row"],
                                              HUB_COLUMNS):
            pmid = str(values.get("pubid"))
            if item["test"] is not None and ("test" if pmid in test else "train") != split:
                continue  # the other split's unit of this range reads it
            context = values.get("context") or {}
            entry = {"QUESTION": values.get("question"), "CONTEXTS": context.get("contexts"),
                     "LABELS": context.get("labels"), "MESHES": context.get("meshes"),
                     "LONG_ANSWER": values.get("long_answer")}
            if values.get("final_decision") is not None:
                entry["final_decision"] = values["final_decision"]
            if values.get("question") is None:
                del entry["QUESTION"]
            yield self._record(entry, pmid, split, item["file"], item["subset"])

    def work_units(self) -> list[WorkUnit]:
        hub = self._hub_files()
        if any(hub.values()):
            return self._hub_units(hub)
        folder = self._data_dir()
        wanted = tuple(self.options.get("subsets", SUBSET_FILES))
        units = []
        for subset in wanted:
            path = folder / SUBSET_FILES[subset]
            if not path.is_file():
                continue
            entries = _load(str(path), mtime_ns(path))
            split_of = self._splitter(folder, subset)
            by_split: dict[str, list] = {}
            for pmid in entries:
                by_split.setdefault(split_of(str(pmid)), []).append((self.relative(path), str(pmid)))
            for split, items in by_split.items():
                if self.wants_split(split):
                    units.extend(self.chunked_units(split, items, label=subset))
        return units

    def _splitter(self, folder: Path, subset: str):
        """PMID -> split for one subset; the id lists are read once, not per PMID."""
        if subset == "pqal":
            test = self._ids_in(folder, TEST_FILES)
            if test is None:
                return lambda pmid: "unsplit"
            return lambda pmid: "test" if pmid in test else "train"
        if subset == "pqaa":
            dev = self._ids_in(folder, ("pqaa_dev_set.json",)) or set()
            return lambda pmid: "validate" if pmid in dev else "train"
        return lambda pmid: "train"

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        if isinstance(unit.items[0], dict):
            yield from self._hub_records(unit.items[0], unit.split)
            return
        for relative, pmid in unit.items:
            path = self.root / relative
            entries = _load(str(path), mtime_ns(path))
            yield self._record(entries[pmid], pmid, unit.split, relative)

    def _record(self, entry, pmid: str, split: str, relative: str, subset: str | None = None) -> Record | Rejection:
        subset = subset or next(name for name, file in SUBSET_FILES.items() if relative.endswith(file))
        record_id = f"pubmedqa/{split}/{subset}-{pmid}"
        facts = {"task_family": "text", "provenance": [relative]}
        if not isinstance(entry, dict) or "QUESTION" not in entry:
            return self.reject(record_id, split, "malformed_row", "missing key 'QUESTION'", **facts)
        question = str(entry["QUESTION"] or "").strip()
        if not question:
            return self.reject(record_id, split, "question_empty", **facts)
        context = _context(entry)
        if not context:
            return self.reject(record_id, split, "context_missing", **facts)
        decision = entry.get("final_decision")
        if decision is not None and str(decision).strip().lower() not in DECISIONS:
            return self.reject(record_id, split, "answer_invalid", f"final_decision={decision!r}", **facts)
        long_answer = str(entry.get("LONG_ANSWER") or "").strip()
        parts = [long_answer] if long_answer else []
        if decision is not None:
            parts.append(f"Answer: {str(decision).strip().lower()}")
        if not parts:
            return self.reject(record_id, split, "answer_missing", **facts)
        return Record(
            id=record_id,
            source=self.name,
            split=split,
            modality="other",
            task_family="text",
            main_task_type="text_understanding",
            sub_task_type="medical_qa",
            message=[{"from": "human", "value": f"Context:\n{context}\n\nQuestion: {question}"},
                     {"from": "gpt", "value": "\n".join(parts)}],
            provenance=[relative],
            source_text=dataset_text(question, *_contexts(entry), long_answer,
                                     str(decision).strip().lower() if decision is not None else None),
            meta={"language": "en", "pmid": pmid, "subset": subset,
                  "final_decision": str(decision).strip().lower() if decision is not None else None,
                  "year": entry.get("YEAR"), "meshes": list(entry.get("MESHES") or [])},
        )
