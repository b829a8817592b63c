"""Rationales shipped apart from the VQA items they explain (MedThink's R-RAD / R-SLAKE files): the file layout,
read by the `medthink` adapter, and an index by item qid for the `vqa_rad` / `slake` option `rationales`, which
renders the item itself with its rationale (sources/shapes/cot.py `with_rationale`). Layout: sources/medthink.py."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from sources.base import SourceError
from sources.io.files import mtime_ns, open_file

# MedThink set -> (folder, file stem -> split, the dataset whose items it explains)
SETS = {"rad": ("R-RAD", {"trainset": "train", "testset": "test"}, "vqa_rad"),
        "slake": ("R-SLAKE", {"train": "train", "test": "test"}, "slake")}
ANSWER_TYPES = {"closed-end": "closed", "closed_end": "closed", "open-end": "open", "open_end": "open"}


@lru_cache(maxsize=16)
def _load(path: str, mtime_ns: int) -> tuple[tuple[str, dict], ...]:
    with open_file(path, "r", encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise SourceError(f"{path}: expected one JSON object keyed by question id, got {type(data).__name__}")
    return tuple(data.items())


def load_rationale_file(path: Path) -> tuple[tuple[str, dict], ...]:
    """(question key, row) pairs of one MedThink JSON file, cached until the file changes."""
    return _load(str(path), mtime_ns(path))


def medthink_base(root: Path) -> Path:
    """The folder holding R-RAD/ and R-SLAKE/ in a Medthink clone (or the dataset folder itself)."""
    base = root / "Medthink_Dataset" if (root / "Medthink_Dataset").is_dir() else root
    if not any((base / folder).is_dir() for folder, _, _ in SETS.values()):
        raise SourceError(f"{root}: no R-RAD/ or R-SLAKE/; point the root at the Medthink clone "
                          "(with git-lfs: the JSON files are LFS objects)")
    return base


def rationale_index(root: Path, dataset: str, split: str) -> dict[str, tuple[str, str]]:
    """qid -> (rationale, MedThink record id) for the items of one dataset ("vqa_rad" or "slake") and split, read
    from a Medthink clone at `root`; rows without a solution are left out (their item keeps its plain answer)."""
    base = medthink_base(root)
    name = next(n for n, (_, _, target) in SETS.items() if target == dataset)
    folder, stems, _ = SETS[name]
    index: dict[str, tuple[str, str]] = {}
    for answer_dir, kind in sorted(ANSWER_TYPES.items()):
        for stem, file_split in stems.items():
            path = base / folder / answer_dir / f"{stem}.json"
            if file_split != split or not path.is_file():
                continue
            for key, row in load_rationale_file(path):
                solution = str(row.get("solution") or "").strip() if isinstance(row, dict) else ""
                if solution:
                    index[str(key)] = (solution, f"medthink/{split}/{name}-{kind}-{key}")
    return index


def attached_rationales(adapter_root: Path, where: str, dataset: str, split: str) -> dict[str, tuple[str, str]]:
    """`rationale_index` for a VQA adapter's option `rationales: WHERE` (the Medthink clone; a relative path is
    taken from the folder that holds the adapter's own dataset folder, i.e. the sources root)."""
    root = Path(adapter_root).parent / where
    if not root.is_dir():
        raise SourceError(f"option rationales: {root} is not a folder; give the Medthink clone (absolute, or "
                          "relative to the folder that holds this dataset)")
    return rationale_index(root, dataset, split)
