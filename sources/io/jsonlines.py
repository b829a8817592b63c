"""JSON-lines files read in line ranges: a listing pass records where each range starts, a unit reads its range.

A release's annotation file may hold millions of lines (GMAI-VL-5.5M's caption file, InternVL's 500K medical
sample); neither the driver nor a worker holds it whole. `line_ranges` reads the file once, in binary, and
keeps only the byte offset of every `lines_per_range`-th line; `read_range` seeks there and parses that many
lines. Blank lines count as lines (so line numbers are the file's own) and come back as None.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from sources.io.files import open_file
from sources.io.lfs import check_lfs_pointer


def line_ranges(path: Path, lines_per_range: int) -> list[tuple[int, int, int]]:
    """(byte offset, first line number (0-based), line count) of each range of the file."""
    check_lfs_pointer(path)
    ranges: list[tuple[int, int, int]] = []
    offset, line, start_offset, start_line = 0, 0, 0, 0
    with open_file(path, "rb") as handle:
        for raw in handle:
            if line - start_line == lines_per_range:
                ranges.append((start_offset, start_line, lines_per_range))
                start_offset, start_line = offset, line
            offset += len(raw)
            line += 1
    if line > start_line:
        ranges.append((start_offset, start_line, line - start_line))
    return ranges


def read_range(path: Path, offset: int, first_line: int, count: int) -> Iterator[tuple[int, object | str | None]]:
    """(line number, parsed value) for `count` lines from `offset`: None for a blank line, the parser's message
    (a str, prefixed `not JSON:`) for a line that does not parse; a parsed JSON string stays a str too, so
    callers tell them apart with `is_parse_error`."""
    with open_file(path, "rb") as handle:
        handle.seek(offset)
        for number in range(first_line, first_line + count):
            raw = handle.readline()
            if not raw:
                return
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                yield number, None
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as err:
                yield number, ParseError(f"not JSON: {err.msg} at column {err.colno}")


class ParseError(str):
    """The message of a line that is not JSON (a str subclass, so a parsed string value is never mistaken for it)."""


def is_parse_error(value: object) -> bool:
    return isinstance(value, ParseError)
