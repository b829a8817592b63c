"""Whole-file JSON lists (LLaVA-Med, OmniMedVQA, PubMedVision QA files), parsed once per worker.

`work_units` and then every unit of the same file need the list; the parse is cached per process,
keyed by path and modification time so an edited file is read again.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from sources.io.files import mtime_ns, open_file
from sources.io.lfs import check_lfs_pointer


@lru_cache(maxsize=8)
def _parsed_list(path: str, mtime_ns: int, what: str) -> list:
    check_lfs_pointer(path)
    with open_file(path, "r", encoding="utf-8") as handle:
        items = json.load(handle)
    if not isinstance(items, list):
        raise ValueError(f"expected a JSON list of {what}, got {type(items).__name__}")
    return items


def load_json_list(path: Path, what: str) -> list:
    """The JSON list at `path`; ValueError (or UnicodeDecodeError) says why it is not one, SourceError
    that it is a Git LFS pointer."""
    return _parsed_list(str(path), mtime_ns(path), what)
