"""The adapter contract every source implements, and the dataset-card fields `unimed sources` shows.

An adapter reads one public dataset exactly as its download lays it out on disk:
- `work_units()` lists small picklable units of work without decoding any pixels (cheap; runs on the
  driver);
- `iter_records(unit)` yields, for each raw item of the unit, a `Record` or a `Rejection` with a
  reason (runs on Ray workers).
Everything odd about a dataset lives in its own module; the output is canonical.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from manifests.records import Record, Rejection
from sources.io.errors import SourceError  # re-exported: adapters import it from sources.base
from sources.io.files import lexical_inside, relative_to, scan, source_path
from sources.io.hub import ROWS_PER_UNIT, find_snapshot, row_group_ranges


ACCESS_CLASSES = ("open", "registration", "credentialed")
# Options only the adapters of questions on shared images honour (sources/shapes/vqa.py `VqaSource`).
VQA_OPTIONS = ("group_questions", "max_turns", "max_chars")
# What a dataset's annotation files are called, for the default listing of a unit's inputs.
ANNOTATION_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".txt", ".pkl", ".pickle", ".parquet", ".xlsx", ".xls",
                       ".xml", ".yaml", ".yml")
LISTING_DEPTH = 3  # folder levels below the root that the default listing descends

# What a card's task name becomes: (task family, main task type, sub task type or None when the adapter
# names the sub task per record, e.g. BraTS's mri_t1_to_t2). `Source.reject` fills a rejection's task
# types from this where the card makes them unique for the rejection's family.
TASK_TYPES: dict[str, tuple[str, str, str | None]] = {
    "classification_caption": ("i2t", "image_understanding", "classification_caption"),
    "image_captioning": ("i2t", "image_understanding", "image_captioning"),
    "medical_vqa": ("i2t", "image_understanding", "medical_vqa"),
    "multi_image_understanding": ("i2t", "image_understanding", "multi_image_understanding"),
    "report_generation": ("i2t", "image_understanding", "report_generation"),
    "text_to_image": ("t2i", "image_generation", "text_to_image"),
    "medical_qa": ("text", "text_understanding", "medical_qa"),
    "medical_qa_cot": ("text", "text_understanding", "medical_qa_cot"),
    "medical_dialogue": ("text", "text_understanding", "medical_dialogue"),
    "medical_vqa_cot": ("i2t", "image_understanding", "medical_vqa_cot"),
    "prompt_segmentation": ("interleaved", "segmentation", "prompt_segmentation"),
    "virtual_staining": ("interleaved", "virtual_staining", None),
    "cross_modal_synthesis": ("interleaved", "cross_modal_synthesis", None),
    "mr_to_ct": ("interleaved", "cross_modal_synthesis", "mr_to_ct"),
    "cbct_to_ct": ("interleaved", "cross_modal_synthesis", "cbct_to_ct"),
    "super_resolution_4x": ("interleaved", "super_resolution", "super_resolution_4x"),
    "disease_progression": ("interleaved", "counterfactual_generation", "disease_progression"),
}


@dataclass(frozen=True)
class DatasetCard:
    """The facts a user needs to decide whether and how they may use a dataset."""

    name: str  # registry name, e.g. "slake"
    title: str
    modalities: tuple[str, ...]
    tasks: tuple[str, ...]  # sub-task types it produces, e.g. ("medical_vqa",)
    licence: str
    access: str  # one of ACCESS_CLASSES
    url: str
    citation: str
    root_names: tuple[str, ...]  # top folder name(s) of the dataset's own download
    counts: str = ""
    #: Hugging Face Hub dataset repos (`owner/name`) whose copy the adapter also reads (docs/sources/hub/).
    hub_repos: tuple[str, ...] = ()
    # May a metadata-only release (`unimed release`) carry this source's texts / image bytes? Unknown
    # means no: set True only where the licence stated in the card's docstring (with where it is stated)
    # allows redistribution; never for credentialed or registration-only data.
    redistribute_text: bool = False
    redistribute_images: bool = False

    def __post_init__(self):
        if self.access not in ACCESS_CLASSES:
            raise ValueError(f"{self.name}: access must be one of {ACCESS_CLASSES}, not {self.access!r}")
        if (self.redistribute_text or self.redistribute_images) and self.access != "open":
            raise ValueError(f"{self.name}: {self.access} data is never redistributed")


@dataclass(frozen=True)
class WorkUnit:
    """A picklable slice of a source: what one Ray task reads. `items` are source-specific."""

    source: str
    id: str
    split: str
    items: tuple[Any, ...] = field(default_factory=tuple)


def grouping_sources() -> list[str]:
    """Registry names of the adapters with questions on shared images (for messages)."""
    from sources import SOURCES

    return sorted(name for name, cls in SOURCES.items() if cls.questions_on_shared_images)


def item_paths(items: Any) -> list[str]:
    """Strings inside a unit's items that look like relative file paths (a slash or a file suffix)."""
    found: list[str] = []
    stack = [items]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if ("/" in value or value.rpartition(".")[2].isalpha() and "." in value) and 0 < len(value) < 512 \
                    and len(value.split()) == 1:
                found.append(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return found


class Source:
    """Base class of all adapters. Subclasses set `card` and implement the two methods."""

    card: ClassVar[DatasetCard]
    #: How many raw items go into one work unit (a unit is retried and cached as a whole).
    items_per_unit: ClassVar[int] = 256
    #: Version of the adapter's own wording (captions, prompts, responses): bump it when a phrasing changes;
    #: the processing digest carries it (above 1), so a build re-stages instead of mixing old and new texts.
    templates_version: ClassVar[int] = 1
    #: Items are questions on shared images (set by sources/shapes/vqa.py `VqaSource`): `VQA_OPTIONS` apply.
    questions_on_shared_images: ClassVar[bool] = False

    def __init__(self, root: Path | str, options: dict[str, Any] | None = None, splits: Sequence[str] | None = None):
        self.root = source_path(root)  # a Path locally, a UPath for a URL (sources/io/files.py)
        self.options = dict(options or {})
        self.splits = tuple(splits) if splits else None  # None: every split
        self._input_listing: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    @property
    def name(self) -> str:
        return self.card.name

    @classmethod
    def find_root(cls, sources_root: Path) -> Path | None:
        """The dataset's folder under a common sources root, found by its download's top folder name; else
        the snapshot of one of its Hub repos when the root is (or holds) a Hugging Face Hub cache."""
        for name in cls.card.root_names:
            candidate = source_path(sources_root) / name
            if candidate.is_dir():
                return candidate
        return find_snapshot(source_path(sources_root), cls.card.hub_repos) if cls.card.hub_repos else None

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Refuse, when the recipe is read, options this adapter cannot honour (ValueError, one line)."""
        named = [name for name in VQA_OPTIONS if name in options]
        if named:
            raise ValueError(f"{cls.card.name} has no questions on shared images: option {', '.join(named)} applies "
                             f"to the VQA sources ({', '.join(grouping_sources())})")

    def wants_split(self, split: str) -> bool:
        return self.splits is None or split in self.splits

    def work_units(self) -> list[WorkUnit]:
        raise NotImplementedError

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        raise NotImplementedError

    # What a unit reads, so a finished build sees changed inputs ---------------------------------

    def unit_inputs(self, unit: WorkUnit) -> list[str]:
        """Paths (relative to the root) whose size and mtime decide whether a finished unit is current.

        Default: the source's annotation files and its folders down to LISTING_DEPTH (a folder's mtime
        changes when a file is added to, removed from or renamed in it), plus every path the unit's
        items name. Any change of those re-runs every unit of the source; an adapter that knows each
        unit's files exactly overrides this (medpix2) so that only the changed units re-run.
        """
        files, folders = self._walk_listing()
        return [*files, *folders, *item_paths(unit.items)]

    def folder_inputs(self, folder: Path) -> list[str]:
        """A folder an option names (images kept outside the dataset folder) and its direct subfolders, as unit
        inputs: a file added to or removed from them changes a folder's mtime, so the units that read them re-run.
        Paths outside the root stay absolute here (they are only stat-ed, never written to an output)."""
        folders = [folder]
        try:
            folders += sorted((entry.path for entry in scan(folder) if entry.is_dir() and not entry.name.startswith(".")),
                              key=str)
        except OSError:
            pass
        return [inside if (inside := lexical_inside(f, self.root)) is not None else str(f) for f in folders]

    def annotation_files(self) -> list[str]:
        """Files near the root named like annotations (JSON, CSV, text, pickle, Parquet, XML, YAML)."""
        return list(self._walk_listing()[0])

    def expected_files(self) -> list[str]:
        """What a requested split would be read from; named when a found source yields no unit."""
        return []

    def _walk_listing(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if self._input_listing is None:
            files: list[str] = []
            folders: list[str] = []

            def walk(folder: Path, relative: str, depth: int) -> None:
                folders.append(relative)
                for entry in sorted(scan(folder), key=lambda entry: entry.name):
                    if entry.name.startswith("."):  # .git, .cache: not the dataset
                        continue
                    path = entry.name if relative == "." else f"{relative}/{entry.name}"
                    if entry.is_dir():
                        if depth < LISTING_DEPTH:
                            walk(entry.path, path, depth + 1)
                        else:
                            folders.append(path)
                    elif entry.name.lower().endswith(ANNOTATION_SUFFIXES):
                        files.append(path)

            walk(self.root, ".", 0)
            self._input_listing = (tuple(files), tuple(folders))
        return self._input_listing

    # Helpers shared by adapters ------------------------------------------------------------------

    def chunked_units(self, split: str, items: Sequence[Any], label: str = "") -> list[WorkUnit]:
        """Cut a split's item list into units of `items_per_unit`, with stable ids."""
        size = int(self.options.get("items_per_unit", self.items_per_unit))
        prefix = f"{self.name}/{split}" + (f"/{label}" if label else "")
        return [
            WorkUnit(self.name, f"{prefix}/{start // size:05d}", split, tuple(items[start : start + size]))
            for start in range(0, len(items), size)
        ]

    def parquet_units(self, split: str, files: Sequence[str]) -> list[WorkUnit]:
        """One unit per row-group range of each Parquet file (a Hub shard is never read whole by one unit);
        the item is `{"file", "row_groups": (start, stop), "first_row"}`. Reads only the files' footers."""
        rows = int(self.options.get("rows_per_unit", ROWS_PER_UNIT))
        units = []
        for relative in files:
            stem = relative.rsplit("/", 1)[-1].removesuffix(".parquet")
            try:
                ranges = row_group_ranges(self.root / relative, rows)
            except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
                raise SourceError(f"{self.root / relative}: not a readable Parquet file ({err}); download it "
                                  "again with huggingface-cli") from err
            for start, stop, first_row in ranges:
                units.append(WorkUnit(self.name, f"{self.name}/{split}/{stem}/rg{start:05d}-{stop:05d}", split,
                                      ({"file": relative, "row_groups": (start, stop), "first_row": first_row},)))
        return units

    def relative(self, path: Path) -> str:
        """A path relative to the dataset root (provenance never names the user's machine)."""
        return relative_to(path, self.root)

    def reject(self, record_id: str, split: str, reason: str, detail: str = "", **facts: Any) -> Rejection:
        """A rejection; its task family and types, unless given, come from the card where they are unique."""
        return Rejection(id=record_id, source=self.name, split=split, reason=reason, detail=detail,
                         **{**self.task_types(facts.get("task_family")), **facts})

    @classmethod
    def task_types(cls, family: str | None) -> dict[str, str]:
        """task_family / main_task_type / sub_task_type an item of `family` (None: any) would have become,
        as far as the card's `tasks` make them unique."""
        known = [TASK_TYPES[task] for task in cls.card.tasks if task in TASK_TYPES]
        if family is not None:
            known = [types for types in known if types[0] == family]
        facts: dict[str, str] = {}
        for index, key in enumerate(("task_family", "main_task_type", "sub_task_type")):
            values = {types[index] for types in known}
            if len(values) == 1 and None not in values:
                facts[key] = values.pop()
        return facts

    @staticmethod
    def pick(record_id: str, choices: Sequence[str], salt: str = "") -> str:
        """A deterministic choice among phrasings, seeded by the record id (no global RNG)."""
        seed = int.from_bytes(hashlib.blake2b(f"{salt}|{record_id}".encode(), digest_size=8).digest(), "big")
        return random.Random(seed).choice(list(choices))
