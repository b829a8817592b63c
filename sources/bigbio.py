"""BigBio's PubMedQA (`bigbio/pubmed_qa`): biomedical yes/no/maybe questions whose reasoning is the abstract's
conclusion, rendered as a chain of thought.

Card
- Citation: Fries JA, Weber L, Seelam N, et al. "BigBio: A Framework for Data-Centric Biomedical Natural Language
  Processing." NeurIPS 2022 Datasets and Benchmarks; the data: Jin Q, Dhingra B, Liu Z, Cohen WW, Lu X.
  "PubMedQA: A Dataset for Biomedical Research Question Answering." EMNLP-IJCNLP 2019.
- URL: https://huggingface.co/datasets/bigbio/pubmed_qa (code: github.com/bigscience-workshop/biomedical).
- Licence: MIT (the loading script's `_LICENSE`, PubMedQA's own licence, github.com/pubmedqa/pubmedqa). Access:
  open. Redistribution: texts yes (MIT, first-party: the PubMedQA authors'), as the `pubmedqa` adapter.
- Paper's T15 count: 262K entries, "clinical reasoning with CoT" from "BigBio (Fries et al. 2022)"; which BigBio
  datasets is not stated. PubMedQA is the one BigBio QA set of that size with a written reasoning per answer
  (bigbio/utils/schemas: no BigBio QA schema carries a rationale; PubMedQA's LONG_ANSWER is the conclusion that
  "presumably answers the research question"), and its training parts fit the count: PQA-A train 200,000 +
  PQA-U 61,249 + PQA-L non-test 500 = 261,749 (MedQA, 12.7K English, is far smaller) [I]. Whether the paper used
  the conclusion as the chain of thought or generated one is not stated [U]; a derived CoT set over the same
  training splits (HPAI-BSC/pubmedqa-cot, Mixtral-8x7B, Apache-2.0) would be a separate adapter (its own licence and
  provenance) and is not read here.
- Overlaps: the same items as the `pubmedqa` adapter (the original repository) with another answer shape; a recipe
  reading both gets each PMID twice (exact dedup sees different texts; the near-duplicate stage's text rule
  catches them in the text family). PQA-L's test set is a UniMedVL benchmark: the recipes read train only.

Layout (`huggingface-cli download --repo-type dataset bigbio/pubmed_qa --local-dir bigbio/pubmed_qa`, or the Hub
cache snapshot; `main` since the commit "use local zip files for data")::

    bigbio/pubmed_qa/
      pubmed_qa.py  bigbiohub.py  README.md     the loading script: not run (datasets >= 4 refuses scripts)
      pqaa.zip      pqaa_train_set.json (train), pqaa_dev_set.json (validate)
      pqal.zip      pqal_fold0..9/{train_set,dev_set}.json (train / validate), pqal_test_set.json (test)
      pqau.zip      ori_pqau.json (train; no final_decision)

or the Hub's Parquet conversion (`--revision refs/convert/parquet`)::

      pubmed_qa_artificial_source/{train,validation}/0000.parquet
      pubmed_qa_unlabeled_source/train/0000.parquet
      pubmed_qa_labeled_fold0_source/{train,validation,test}/0000.parquet     (the *_bigbio_qa configs drop
                                                                               LONG_ANSWER and are not read)

Evidence: the HF tree of bigbio/pubmed_qa (pqaa.zip 156 MB, pqal.zip 4.24 MB, pqau.zip 42.8 MB) and the
parquet-converter commit c301ec0 with `pubmed_qa_labeled_fold5_source/test/0000.parquet` [S]; the script
(bigscience-workshop/biomedical `bigbio/hub/hub_repos/pubmed_qa/pubmed_qa.py` @60d9e22) names the member files
relative to the extracted download, the configs, and the source schema QUESTION, CONTEXTS, LABELS, MESHES, YEAR,
reasoning_required_pred, reasoning_free_pred, final_decision, LONG_ANSWER; each JSON is a dict keyed by PMID [S];
datasets issue #7693: scripts no longer load with `datasets` 4 [S]. Inferred [I]: the zips hold the files at the
paths the script names (members are matched by path suffix, so a top folder does not matter); the Parquet rows keep
the JSON order and carry no PMID (the script yields it as the key, not a feature).

Records: one text sample per entry, id `bigbio/<split>/<subset>-<PMID>` (Parquet: `<subset>-row<n>`, the row
number in its file). Labelled entries: human = the labelled context paragraphs and the question; gpt =
`<think>\\nLONG_ANSWER\\n</think>\\nAnswer: yes|no|maybe` (sub task medical_qa_cot, the DCOT shape of
sources/shapes/cot.py). PQA-U entries have no decision: with the option `unlabelled: qa` (default) they are plain
QA (gpt = LONG_ANSWER, sub task medical_qa), with `unlabelled: reject` they are `label_missing` (the stage-2 DCOT
recipe). Option `subsets` picks among pqaa/pqal/pqau, `pqal_fold` the PQA-L fold (default 0: its train and dev
sets are the 500 non-test PMIDs).
Quirks handled here: a missing QUESTION is `malformed_row`, a blank one `question_empty`; no CONTEXTS
`context_missing`; a decision outside yes/no/maybe `answer_invalid`; a labelled entry without LONG_ANSWER
`rationale_empty`; LABELS shorter than CONTEXTS are dropped. Most samples exceed the stage-1 1024-character
text rule (abstract + conclusion) and are rejected there as `text_too_long`, as for `pubmedqa`.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from functools import lru_cache

from manifests.records import Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import mtime_ns, open_file
from sources.io.hub import iter_parquet_rows, zip_names
from sources.io.lfs import check_lfs_pointer
from sources.shapes.cot import render_cot

SUBSETS = ("pqaa", "pqal", "pqau")
ZIPS = {"pqaa": "pqaa.zip", "pqal": "pqal.zip", "pqau": "pqau.zip"}
FILES = {  # subset -> ((split, member path the script names), ...); pqal's fold is filled in
    "pqaa": (("train", "pqaa_train_set.json"), ("validate", "pqaa_dev_set.json")),
    "pqal": (("train", "pqal_fold{fold}/train_set.json"), ("validate", "pqal_fold{fold}/dev_set.json"),
             ("test", "pqal_test_set.json")),
    "pqau": (("train", "ori_pqau.json"),),
}
PARQUET_CONFIGS = {"pqaa": "pubmed_qa_artificial_source", "pqal": "pubmed_qa_labeled_fold{fold}_source",
                   "pqau": "pubmed_qa_unlabeled_source"}
PARQUET_SPLITS = {"train": "train", "validation": "validate", "test": "test"}
PARQUET_COLUMNS = ("QUESTION", "CONTEXTS", "LABELS", "MESHES", "YEAR", "final_decision", "LONG_ANSWER")
DECISIONS = ("yes", "no", "maybe")


@lru_cache(maxsize=4)
def _entries(path: str, mtime_ns: int, member: str | None) -> dict:
    """A PubMedQA JSON (a dict keyed by PMID), from a file or a zip member; parsed once per worker."""
    if member is None:
        check_lfs_pointer(path)
        with open_file(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    else:
        with open_file(path) as stream, zipfile.ZipFile(stream) as archive:
            data = json.loads(archive.read(member).decode("utf-8"))
    if not isinstance(data, dict):
        raise SourceError(f"{path}{':' + member if member else ''}: expected a JSON object keyed by PMID, "
                          f"got {type(data).__name__}")
    return data


def _contexts(entry: dict) -> list[str]:
    return [str(text).strip() for text in entry.get("CONTEXTS") or [] if str(text).strip()]


def _context(entry: dict) -> str:
    contexts = _contexts(entry)
    labels = [str(label).strip() for label in entry.get("LABELS") or []]
    if len(labels) != len(contexts):
        return "\n".join(contexts)
    return "\n".join(f"{label}: {text}" if label else text for label, text in zip(labels, contexts))


class Bigbio(Source):
    card = DatasetCard(
        name="bigbio",
        title="BigBio PubMedQA (bigbio/pubmed_qa, source schema): conclusion as chain of thought",
        modalities=("other",),
        tasks=("medical_qa_cot", "medical_qa"),
        licence="MIT (PubMedQA)",
        access="open",
        url="https://huggingface.co/datasets/bigbio/pubmed_qa",
        citation="Fries et al., BigBio: A Framework for Data-Centric Biomedical Natural Language Processing, NeurIPS "
                 "2022 Datasets and Benchmarks; Jin et al., PubMedQA, EMNLP 2019",
        root_names=("bigbio/pubmed_qa", "bigbio_pubmed_qa"),
        counts="paper T15: 262K (clinical reasoning with CoT); release: PQA-A 211,269 / PQA-U 61,249 / PQA-L 1,000",
        hub_repos=("bigbio/pubmed_qa",),
        redistribute_text=True,
    )
    items_per_unit = 2048

    def _subsets(self) -> list[str]:
        chosen = list(self.options.get("subsets", SUBSETS))
        if set(chosen) - set(SUBSETS):
            raise SourceError(f"bigbio: option subsets takes {list(SUBSETS)}, not {sorted(set(chosen) - set(SUBSETS))}")
        if self.options.get("unlabelled", "qa") not in ("qa", "reject"):
            raise SourceError(f"bigbio: option unlabelled is qa or reject, not {self.options['unlabelled']!r}")
        return chosen

    def _fold(self) -> int:
        fold = int(self.options.get("pqal_fold", 0))
        if not 0 <= fold <= 9:
            raise SourceError(f"bigbio: option pqal_fold is 0..9, not {fold}")
        return fold

    def _locate(self, subset: str, name: str) -> tuple[str, str | None] | None:
        """(file relative to the root, zip member or None) holding `name`: an unpacked file, else the member."""
        if (self.root / name).is_file():
            return name, None
        archive = self.root / ZIPS[subset]
        if not archive.is_file():
            return None
        try:
            members = zip_names(archive)
        except (OSError, zipfile.BadZipFile) as err:
            raise SourceError(f"{archive}: not a readable zip ({err}); download it again") from err
        found = sorted(m for m in members if m == name or m.endswith("/" + name))
        return (ZIPS[subset], found[0]) if found else None

    def _parquet_files(self) -> dict[str, list[tuple[str, str]]]:
        """subset -> [(split, parquet file)] of the Hub's Parquet conversion; empty when the zips are there."""
        if any((self.root / name).is_file() for name in ZIPS.values()):
            return {}
        found: dict[str, list[tuple[str, str]]] = {}
        for subset in SUBSETS:
            config = PARQUET_CONFIGS[subset].format(fold=self._fold())
            for hub_split, split in PARQUET_SPLITS.items():
                for path in sorted((self.root / config / hub_split).glob("*.parquet")):
                    found.setdefault(subset, []).append((split, self.relative(path)))
        return found

    def expected_files(self) -> list[str]:
        return list(ZIPS.values())

    def work_units(self) -> list[WorkUnit]:
        subsets, fold = self._subsets(), self._fold()
        parquet = self._parquet_files()
        if parquet:
            units = []
            for subset in subsets:
                for split, relative in parquet.get(subset, []):
                    if self.wants_split(split):
                        units.extend(WorkUnit(u.source, f"{u.id}/{subset}", split, ({**u.items[0], "subset": subset},))
                                     for u in self.parquet_units(split, [relative]))
            return units
        units, located_any = [], False
        for subset in subsets:
            for split, name in FILES[subset]:
                located = self._locate(subset, name.format(fold=fold))
                if located is None:
                    continue
                located_any = True
                if not self.wants_split(split):
                    continue
                relative, member = located
                entries = _entries(str(self.root / relative), mtime_ns(self.root / relative), member)
                items = [(relative, member, subset, str(pmid)) for pmid in entries]
                units.extend(self.chunked_units(split, items, label=subset))
        if not located_any:
            raise SourceError(f"{self.root}: none of {list(ZIPS.values())} nor their Parquet conversion; point the "
                              "root at the bigbio/pubmed_qa download")
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        first = unit.items[0]
        if isinstance(first, dict):
            for row, values in iter_parquet_rows(self.root / first["file"], first["row_groups"], first["first_row"],
                                                 PARQUET_COLUMNS):
                yield self._record(values, f"row{row:07d}", unit.split, first["subset"], first["file"])
            return
        for relative, member, subset, pmid in unit.items:
            entries = _entries(str(self.root / relative), mtime_ns(self.root / relative), member)
            yield self._record(entries[pmid], pmid, unit.split, subset, relative)

    def _record(self, entry, key: str, split: str, subset: str, relative: str) -> Record | Rejection:
        record_id = f"bigbio/{split}/{subset}-{key}"
        facts = {"task_family": "text", "provenance": [relative]}
        if not isinstance(entry, dict) or entry.get("QUESTION") is None:
            return self.reject(record_id, split, "malformed_row", "missing key 'QUESTION'", **facts)
        question = str(entry["QUESTION"]).strip()
        if not question:
            return self.reject(record_id, split, "question_empty", **facts)
        context = _context(entry)
        if not context:
            return self.reject(record_id, split, "context_missing", **facts)
        decision = entry.get("final_decision")
        decision = str(decision).strip().lower() if decision not in (None, "") else None
        long_answer = str(entry.get("LONG_ANSWER") or "").strip()
        if decision is not None and decision not in DECISIONS:
            return self.reject(record_id, split, "answer_invalid", f"final_decision={decision!r}", **facts)
        prompt = f"Context:\n{context}\n\nQuestion: {question}"
        if decision is None:
            if not long_answer:
                return self.reject(record_id, split, "answer_missing", "no final_decision and no LONG_ANSWER", **facts)
            if self.options.get("unlabelled", "qa") == "reject":
                return self.reject(record_id, split, "label_missing", "no final_decision (PQA-U); the option "
                                   "unlabelled: qa keeps it as plain QA with the conclusion as answer",
                                   sub_task_type="medical_qa_cot", main_task_type="text_understanding", **facts)
            answer, sub_task = long_answer, "medical_qa"
        elif not long_answer:
            return self.reject(record_id, split, "rationale_empty", "no LONG_ANSWER", sub_task_type="medical_qa_cot",
                               main_task_type="text_understanding", **facts)
        else:
            answer, sub_task = render_cot(long_answer, f"Answer: {decision}"), "medical_qa_cot"
        return Record(
            id=record_id, source=self.name, split=split, modality="other", task_family="text",
            main_task_type="text_understanding", sub_task_type=sub_task,
            message=[{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}],
            provenance=[relative],
            source_text=dataset_text(question, *_contexts(entry), long_answer, decision),
            meta={"language": "en", "pmid": None if key.startswith("row") else key, "subset": subset,
                  "final_decision": decision, "year": entry.get("YEAR"), "meshes": list(entry.get("MESHES") or []),
                  "cot": "abstract_conclusion" if sub_task == "medical_qa_cot" else None},
        )
