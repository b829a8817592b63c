"""MedDialog (English): doctor-patient conversations from healthcaremagic.com and icliniq.com (text-only dialogue).

Card
- Citation: Chen S, Ju Z, Dong X, Fang H, Wang S, Yang Y, Zeng J, Zhang R, Zhang R, Zhou M, Zhu P, Xie P.
  "MedDialog: a large-scale medical dialogue dataset." arXiv:2004.03329 (2020); EMNLP 2020 as "MedDialog:
  Large-scale Medical Dialogue Datasets" (Zeng et al.).
- URL: https://github.com/UCSD-AI4H/Medical-Dialogue-System (English files on the Google Drive folder linked
  there). Evidence: docs/sources/meddialog.md.
- Licence: none stated; the repository says "All copyrights of the data belong to healthcaremagic.com and
  icliniq.com" (the Hugging Face loader's licence field is empty). Access: open download, no gate. Not
  redistributed by `unimed release`.
- Counts: about 0.26 million dialogues (README); the Hugging Face loader yields 229,674 (train only).
- Overlaps: HealthCareMagic-100k (ChatDoctor) and iCliniq sets are drawn from the same pages.

Layout (the unzipped English folder)::

    Medical-Dialogue-Dataset-English/
      healthcaremagic_dialogue_1.txt ... healthcaremagic_dialogue_4.txt
      icliniq_dialogue.txt

Each file is plain text, one block per dialogue::

    id=1
    https://www.healthcaremagic.com/questions/...
    Description
    Q. What does abutment of the nerve root mean?
    Dialogue
    Patient:
    Hi doctor, ... (one or more lines)
    Doctor:
    Hi. I have gone through your query ...
    <blank line>

Rendering: one record per dialogue, the Patient utterances as human turns and the Doctor utterances as gpt
turns, in order (lines of one utterance joined by a space; consecutive utterances of one speaker merged); a
dialogue that ends on the patient keeps only the turns up to the last doctor reply, as the Hugging Face loader
does. The description and URL are kept in `meta`. Ids are `meddialog/train/<file stem>-<block number>` (the
`id=` value is in `meta.dialogue_id`: it is per file, not checked for uniqueness). Rejections: a block without
a `Dialogue` section `malformed_block`; one without a patient turn followed by a doctor reply `dialogue_empty`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from manifests.records import Record, Rejection, dataset_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import mtime_ns, open_file
from sources.io.lfs import check_lfs_pointer

FILE_PATTERN = re.compile(r"^(healthcaremagic_dialogue_\d+|icliniq_dialogue)\.txt$")
SPEAKERS = {"Patient:": "human", "Doctor:": "gpt"}


@lru_cache(maxsize=2)
def _blocks(path: str, mtime_ns: int) -> tuple[tuple[str, ...], ...]:
    """The file's dialogue blocks: the lines from one `id=` line up to the next."""
    check_lfs_pointer(path)
    blocks: list[list[str]] = []
    with open_file(path, "r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.rstrip("\r\n")
            if line.startswith("id="):
                blocks.append([])
            if blocks:
                blocks[-1].append(line)
    return tuple(tuple(block) for block in blocks)


def parse_block(lines: tuple[str, ...]) -> dict | None:
    """{dialogue_id, url, description, turns: [(role, text)]} of one block; None without a Dialogue section."""
    dialogue_id = lines[0].partition("=")[2].strip()
    url = next((line.strip() for line in lines[1:3] if line.startswith("http")), None)
    if "Dialogue" not in (line.strip() for line in lines):
        return None
    start = [line.strip() for line in lines].index("Dialogue")
    description = " ".join(line.strip() for line in lines[1:start] if line.strip() and line.strip() != "Description"
                           and not line.startswith("http"))
    turns: list[list[str]] = []
    role = None
    for line in lines[start + 1:]:
        text = line.strip()
        if not text:
            if turns:  # the dialogue ends at its first blank line
                break
            continue
        if text in SPEAKERS:
            role = SPEAKERS[text]
            if not turns or turns[-1][0] != role:
                turns.append([role])
        elif role is not None:
            turns[-1].append(text)
    pairs = [(turn[0], " ".join(turn[1:])) for turn in turns if len(turn) > 1]
    return {"dialogue_id": dialogue_id, "url": url, "description": description or None, "turns": pairs}


class Meddialog(Source):
    card = DatasetCard(
        name="meddialog",
        title="MedDialog (English): healthcaremagic.com and icliniq.com conversations",
        modalities=("other",),
        tasks=("medical_dialogue",),
        licence="none stated; copyrights of the data belong to healthcaremagic.com and icliniq.com (repository)",
        access="open",
        url="https://github.com/UCSD-AI4H/Medical-Dialogue-System",
        citation="Chen et al., MedDialog: a large-scale medical dialogue dataset, arXiv:2004.03329 (2020)",
        root_names=("Medical-Dialogue-Dataset-English", "MedDialog"),
        counts="about 260K dialogues (229,674 by the Hugging Face loader), train only",
    )
    items_per_unit = 4096

    def _files(self) -> list[Path]:
        files = sorted(p for p in self.root.iterdir() if FILE_PATTERN.match(p.name)) if self.root.is_dir() else []
        if not files:
            raise SourceError(f"{self.root}: no healthcaremagic_dialogue_N.txt or icliniq_dialogue.txt; point the "
                              "root at the unzipped Medical-Dialogue-Dataset-English folder")
        return files

    def work_units(self) -> list[WorkUnit]:
        files = self._files()
        if not self.wants_split("train"):
            return []
        units = []
        for path in files:
            count = len(_blocks(str(path), mtime_ns(path)))
            units.extend(self.chunked_units("train", [(path.name, i) for i in range(count)], label=path.stem))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for name, index in unit.items:
            path = self.root / name
            yield self._record(_blocks(str(path), mtime_ns(path))[index], name, index)

    def _record(self, lines: tuple[str, ...], name: str, index: int) -> Record | Rejection:
        record_id = f"{self.name}/train/{Path(name).stem}-{index:06d}"
        facts = {"task_family": "text", "provenance": [name]}
        parsed = parse_block(lines)
        if parsed is None:
            return self.reject(record_id, "train", "malformed_block", f"{lines[0]}: no Dialogue section", **facts)
        turns = parsed["turns"]
        while turns and turns[0][0] != "human":  # a conversation starts with the patient
            turns = turns[1:]
        while turns and turns[-1][0] != "gpt":  # and ends on a doctor reply
            turns = turns[:-1]
        if not turns:
            return self.reject(record_id, "train", "dialogue_empty",
                               f"{lines[0]}: no patient turn followed by a doctor reply", **facts)
        return Record(
            id=record_id, source=self.name, split="train", modality="other", task_family="text",
            main_task_type="text_understanding", sub_task_type="medical_dialogue",
            message=[{"from": role, "value": text} for role, text in turns], provenance=[name],
            source_text=dataset_text(*(text for _, text in turns)),
            meta={"language": "en", "dialogue_id": parsed["dialogue_id"], "url": parsed["url"],
                  "description": parsed["description"], "site": name.split("_")[0]},
        )
