"""The adapter contract, checked over every registered source on its own sample tree."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from manifests.records import IMAGE_TOKEN, MODALITIES, SPLITS, TASK_FAMILIES, Record, Rejection, shard_key
from sources import SOURCES
from sources.base import ACCESS_CLASSES, TASK_TYPES
from sources.samples import SAMPLE_WRITERS

REGISTERED = sorted(name for name in SOURCES if name != "flaky")


def read_all(name: str, root: Path) -> list[Record | Rejection]:
    adapter = SOURCES[name](SOURCES[name].find_root(root), {}, None)
    units = adapter.work_units()
    assert units, f"{name}: no work units listed from its sample tree"
    assert len({u.id for u in units}) == len(units), f"{name}: unit ids repeat"
    items = []
    for unit in units:
        assert pickle.loads(pickle.dumps(unit)) == unit, f"{name}: unit {unit.id} is not picklable"
        assert unit.source == name and unit.split in SPLITS
        items.extend(adapter.iter_records(unit))
    return items


@pytest.fixture(scope="module")
def sample_items(tmp_path_factory) -> dict[str, tuple[Path, list]]:
    result = {}
    for name in REGISTERED:
        root = tmp_path_factory.mktemp(name)
        SAMPLE_WRITERS[name](root)
        result[name] = (root, read_all(name, root))
    return result


def test_every_source_has_a_sample_writer_and_a_valid_card():
    assert set(REGISTERED) <= set(SAMPLE_WRITERS)
    for name in REGISTERED:
        card = SOURCES[name].card
        assert card.name == name
        assert card.access in ACCESS_CLASSES
        assert set(card.modalities) <= set(MODALITIES), f"{name}: {card.modalities}"
        assert card.root_names and card.licence and card.url and card.citation and card.tasks
        assert set(card.tasks) <= set(TASK_TYPES), f"{name}: a task without its family and types in TASK_TYPES"
        module = __import__(SOURCES[name].__module__, fromlist=["_"])
        assert module.__doc__ and len(module.__doc__) > 200, f"{name}: the module docstring is its dataset card"


@pytest.mark.parametrize("name", REGISTERED)
def test_records_follow_the_contract(name, sample_items):
    root, items = sample_items[name]
    dataset_root = SOURCES[name].find_root(root)
    assert dataset_root is not None
    check_contract(name, dataset_root, items)


def check_contract(name: str, dataset_root: Path, items: list) -> None:
    """The contract every item of a source meets, whichever layout it was read from."""
    ids = [item.id for item in items]
    assert len(ids) == len(set(ids)), f"{name}: duplicate ids"
    assert any(isinstance(item, Record) for item in items), f"{name}: no record from its sample"
    for item in items:
        assert isinstance(item, (Record, Rejection))
        assert item.id.startswith(f"{name}/") and item.source == name
        assert item.split in SPLITS and item.modality in MODALITIES
        assert "." not in shard_key(item.id)
        for path in item.provenance:
            assert not Path(path).is_absolute() and ".." not in Path(path).parts, f"{item.id}: {path}"
        if isinstance(item, Rejection):
            assert item.reason and " " not in item.reason, f"{item.id}: reason must be a tag, got {item.reason!r}"
            continue
        assert item.task_family in TASK_FAMILIES
        assert item.main_task_type and item.sub_task_type
        assert item.message and all(t["from"] in ("human", "gpt") and isinstance(t["value"], str)
                                    for t in item.message)
        placeholders = sum(turn["value"].count(IMAGE_TOKEN) for turn in item.message)
        assert placeholders == len(item.input_images), f"{item.id}: {placeholders} <image> for {len(item.input_images)}"
        if item.task_family == "t2i":
            assert item.output_images and not item.input_images
        if item.task_family == "interleaved":
            assert item.input_images and item.output_images
        else:  # the length rule judges the dataset's own text: every non-interleaved record names it
            assert item.source_text, f"{item.id}: no source_text"
            whole = " ".join(item.text.split())
            for line in item.source_text.splitlines():
                assert " ".join(line.split()) in whole, f"{item.id}: source_text line {line!r} is not in the sample"
        if item.task_family == "text":
            assert not item.images
        for image in item.images:
            assert image.format in ("png", "jpg") and image.width > 0 and image.height > 0
            assert (image.pixels is not None) or (image.encoded is not None)
        for path in item.provenance:
            assert (dataset_root / path).exists(), f"{item.id}: provenance {path} does not exist"


@pytest.mark.parametrize("name", REGISTERED)
def test_reading_is_deterministic(name, sample_items, tmp_path):
    root, first = sample_items[name]
    SAMPLE_WRITERS[name](tmp_path)
    second = read_all(name, tmp_path)

    def fingerprint(items):
        return [(i.id, i.reason if isinstance(i, Rejection) else i.content_hash()) for i in items]

    assert fingerprint(first) == fingerprint(second)


@pytest.mark.parametrize("name", REGISTERED)
def test_split_selection_is_respected(name, sample_items):
    root, items = sample_items[name]
    present = sorted({item.split for item in items})
    chosen = present[:1]
    adapter = SOURCES[name](SOURCES[name].find_root(root), {}, chosen)
    assert all(unit.split in chosen for unit in adapter.work_units())
