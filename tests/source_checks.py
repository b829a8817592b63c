"""Checks shared by the source tests: `collect` for every source; the `check_*` functions for the
classification sources, whose every image gives an I2T caption and a T2I prompt.

Each test module keeps its own exact expectations (`RECORDS`, `REJECTED`, fixture tree); these
functions only compare a source's output with them, the same way for every such source.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image as PILImage

from manifests.records import Record, Rejection
from sources.base import Source
from sources.io.image import load_pixels


def collect(source: Source) -> dict[str, Record | Rejection]:
    """Every item of every unit, by id; fails on a duplicate id or an item outside its unit's split."""
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out, f"duplicate id {item.id}"
            assert item.split == unit.split
            out[item.id] = item
    return out


def check_two_items_per_image(source: Source, stems) -> None:
    """Each image gives exactly its caption and its T2I item, nothing else."""
    expected = {f"{source.name}/{stem}/{kind}" for stem in stems for kind in ("caption", "t2i")}
    assert set(collect(source)) == expected


def check_label_pair(root: Path, source: Source, stem: str, modality: str, expected: tuple) -> None:
    """The caption and T2I records of one image equal `expected`; the pixels are the file's own."""
    instruction, caption, prompt, provenance, (width, height, channels, file_format), meta = expected
    name, split = source.name, stem.split("/")[0]
    items = collect(source)
    i2t, t2i = items[f"{name}/{stem}/caption"], items[f"{name}/{stem}/t2i"]
    assert isinstance(i2t, Record) and isinstance(t2i, Record)
    assert (i2t.source, i2t.split, i2t.modality, i2t.task_family, i2t.main_task_type, i2t.sub_task_type) == (
        name, split, modality, "i2t", "image_understanding", "classification_caption")
    assert i2t.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": caption}]
    assert i2t.output_images == [] and len(i2t.input_images) == 1
    assert (t2i.source, t2i.split, t2i.modality, t2i.task_family, t2i.main_task_type, t2i.sub_task_type) == (
        name, split, modality, "t2i", "image_generation", "text_to_image")
    assert t2i.message == [{"from": "human", "value": prompt}]
    assert t2i.input_images == [] and len(t2i.output_images) == 1
    assert (i2t.source_text, t2i.source_text) == (caption, prompt)  # the length rule never sees the instruction
    image_path = next(path for path in provenance if path.endswith((".png", ".jpg", ".jpeg")))
    for record in (i2t, t2i):
        (image,) = record.images
        assert (image.width, image.height, image.channels, image.format, image.source_path) == (
            width, height, channels, file_format, image_path)
        if file_format == "jpg":  # the JPEG passes through byte for byte
            assert image.encoded == (root / image_path).read_bytes() and image.pixels is None
        else:
            with PILImage.open(root / image_path) as original:
                assert np.array_equal(load_pixels(image), np.asarray(original.convert("L" if channels == 1 else "RGB")))
        assert record.provenance == provenance
        assert record.meta == meta
    assert i2t.images[0] is not t2i.images[0] and i2t.meta is not t2i.meta


def check_rejected_pair(source: Source, stem: str, modality: str, expected: tuple, *,
                        detail_is_prefix: bool = False) -> None:
    """Both items of a bad image are rejections equal to `expected`.

    `detail_is_prefix` where the decoder's message ends with a count that varies (Pillow appends how
    many bytes were left in a truncated file).
    """
    reason, detail, provenance = expected
    items = collect(source)
    for kind, family, main, sub in (("caption", "i2t", "image_understanding", "classification_caption"),
                                    ("t2i", "t2i", "image_generation", "text_to_image")):
        item = items[f"{source.name}/{stem}/{kind}"]
        if detail_is_prefix:
            assert item.detail.startswith(detail)
            detail = item.detail
        assert item == Rejection(
            id=f"{source.name}/{stem}/{kind}", source=source.name, split=stem.split("/")[0], reason=reason,
            detail=detail, modality=modality, task_family=family, provenance=provenance,
            main_task_type=main, sub_task_type=sub)


def check_units_chunked(source_class: type[Source], root: Path) -> None:
    """`items_per_unit` bounds each unit, unit ids count per split, and chunking changes no item."""
    source = source_class(root, options={"items_per_unit": 2})
    units = source.work_units()
    assert all(len(unit.items) <= 2 for unit in units)
    expected, per_split = [], {}
    for unit in units:
        expected.append(f"{source.name}/{unit.split}/{per_split.get(unit.split, 0):05d}")
        per_split[unit.split] = per_split.get(unit.split, 0) + 1
    assert [unit.id for unit in units] == expected
    assert collect(source).keys() == collect(source_class(root)).keys()


def check_sample_tree(sample: ModuleType, tmp_path: Path) -> None:
    """The sample writer gives the same bytes twice, and under a megabyte."""
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
    assert sum((first / name).stat().st_size for name in files) < 1_000_000
