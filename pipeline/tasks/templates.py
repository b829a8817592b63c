"""Versioned template libraries, one YAML file per task and version: `templates/<task>_v<N>.yaml`.

A library lists instruction and response phrasings with `{field}` slots. A template's id is
`<task>_v<N>/<i|r><index>`, so a published version is append-only: editing or reordering a phrasing
means a new version file. Choices come from `task_rng(seed, record_id)`, never the global RNG.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

TEMPLATES_DIR = Path(__file__).parent / "templates"


class TemplateError(ValueError):
    """A library file that is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Library:
    task: str
    version: int
    instructions: tuple[str, ...]
    responses: tuple[str, ...]

    def choose(self, rng: random.Random) -> tuple[str, str, str, str]:
        """(instruction id, instruction, response id, response): one seeded draw of each."""
        i, r = rng.randrange(len(self.instructions)), rng.randrange(len(self.responses))
        prefix = f"{self.task}_v{self.version}"
        return f"{prefix}/i{i:02d}", self.instructions[i], f"{prefix}/r{r:02d}", self.responses[r]


def seed_for(seed: int, record_id: str, purpose: str) -> int:
    """A 63-bit seed from the recipe seed, the record id and what it is for (stable across machines)."""
    digest = hashlib.blake2b(f"{seed}|{purpose}|{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def task_rng(seed: int, record_id: str, purpose: str = "template") -> random.Random:
    return random.Random(seed_for(seed, record_id, purpose))


def slots(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@lru_cache(maxsize=32)
def latest_version(task: str) -> int:
    """The newest library version of a task on disk (what a recipe without `tasks.templates` uses)."""
    versions = [int(path.stem.rsplit("_v", 1)[1]) for path in TEMPLATES_DIR.glob(f"{task}_v*.yaml")
                if path.stem.rsplit("_v", 1)[1].isdigit()]
    return max(versions, default=1)


@lru_cache(maxsize=32)
def load_library(task: str, version: int = 1) -> Library:
    path = TEMPLATES_DIR / f"{task}_v{version}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml"))
        raise TemplateError(f"no template library {path.name}; available: {available}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if data.get("task") != task or int(data.get("version", 0)) != version:
        raise TemplateError(f"{path.name}: task/version fields say {data.get('task')!r} v{data.get('version')}")
    instructions, responses = tuple(data.get("instructions") or ()), tuple(data.get("responses") or ())
    if not instructions or not responses or not all(isinstance(t, str) and t.strip() for t in instructions + responses):
        raise TemplateError(f"{path.name}: needs non-empty lists of strings `instructions` and `responses`")
    return Library(task, version, instructions, responses)
