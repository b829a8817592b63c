"""MedICaT adapter over its sample tree: exact caption and T2I records, rejections, the root lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.medicat import FIGURES_FILE, Medicat, clean_caption
from sources.samples import medicat as sample

A, B, C = sample.HASH_A, sample.HASH_B, sample.HASH_C
DESCRIBE = "Describe this medical image."
BRIEF = "Provide a brief caption describing what this image shows."
SHOW = "What does this image show? Answer with a figure caption."


def _meta(pdf_hash: str, fig_key: str, doi: str, licence: str | None, status: str, radiology: bool,
          scope: bool) -> dict:
    return {"pdf_hash": pdf_hash, "fig_key": fig_key, "doi": doi, "licence": licence, "oa_status": status,
            "radiology": radiology, "scope": scope, "predicted_type": "Medical images"}


# stem -> (modality, instruction, caption, (width, height), meta)
RECORDS = {
    f"{A}_3-Figure2-1": ("other", BRIEF, "Abdominal CT showing a low-attenuation tumour in the left hepatic lobe "
                         "(arrow).", (256, 192), _meta(A, "Figure2", "10.3892/etm.2011.435", None, "bronze", True,
                                                       False)),
    f"{B}_2-Figure3-1": ("endoscopy", DESCRIBE, "Surveillance colonoscopy showing a patent rectal stent with tissue "
                         "ingrowth.", (240, 180), _meta(B, "Figure3", "10.14309/crj.2014.54", "cc-by-nc-nd", "gold",
                                                        False, True)),
    f"{C}_1-Figure1-1": ("other", SHOW, "Brain CT (A) and diffusion MRI (B, C) showing no intracranial lesion.",
                         (240, 180), _meta(C, "Figure1", "10.14245/kjs.2013.10.3.170", "cc-by-nc", "hybrid", True,
                                           False)),
    f"{B}_2-Figure1-1": ("other", SHOW, "(A) Barium enema and (B) endoscopic image of a distal colonic stricture.",
                         (256, 256), _meta(B, "Figure1", "10.14309/crj.2014.54", "cc-by-nc-nd", "gold", True, True)),
}
# stem -> (reason, detail, modality)
REJECTED = {
    f"{C}_2-Figure2-1": ("caption_empty", "line 6", "other"),
    f"{B}_2-Figure2-1": ("missing_file", f"figures/{B}_2-Figure2-1.png", "other"),
}
MALFORMED = {4: "not JSON: Expecting value", 9: "no pdf_hash or fig_uri"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    sample.write(tmp_path)
    found = Medicat.find_root(tmp_path)
    assert found == tmp_path / "release"
    return found


def collect(source: Medicat) -> dict[str, Record | Rejection]:
    out = {}
    for unit in source.work_units():
        for item in source.iter_records(unit):
            assert item.id not in out and item.split == "unsplit"
            out[item.id] = item
    return out


def test_every_figure_gives_two_samples_or_two_rejections(root):
    items = collect(Medicat(root))
    expected = {f"medicat/unsplit/{stem}/{kind}" for stem in [*RECORDS, *REJECTED] for kind in ("caption", "t2i")}
    expected |= {f"medicat/unsplit/{FIGURES_FILE}#{line}" for line in MALFORMED}
    assert set(items) == expected


@pytest.mark.parametrize("stem", sorted(RECORDS))
def test_records_exact(root, stem):
    modality, instruction, caption, size, meta = RECORDS[stem]
    items = collect(Medicat(root))
    figure = f"figures/{stem.split('_')[0]}_{stem.split('_', 1)[1]}.png"
    i2t, t2i = items[f"medicat/unsplit/{stem}/caption"], items[f"medicat/unsplit/{stem}/t2i"]
    assert (i2t.source, i2t.modality, i2t.task_family, i2t.main_task_type, i2t.sub_task_type) == (
        "medicat", modality, "i2t", "image_understanding", "image_captioning")
    assert i2t.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": caption}]
    assert (t2i.source, t2i.modality, t2i.task_family, t2i.main_task_type, t2i.sub_task_type) == (
        "medicat", modality, "t2i", "image_generation", "text_to_image")
    assert t2i.message == [{"from": "human", "value": caption}]
    assert i2t.output_images == [] and t2i.input_images == []
    for record in (i2t, t2i):
        (image,) = record.images
        assert (image.width, image.height, image.format, image.source_path) == (*size, "png", figure)
        assert record.provenance == [FIGURES_FILE, figure]
        assert record.meta == meta
    assert i2t.images[0] is not t2i.images[0] and i2t.meta is not t2i.meta


@pytest.mark.parametrize("stem", sorted(REJECTED))
def test_rejections_exact(root, stem):
    reason, detail, modality = REJECTED[stem]
    items = collect(Medicat(root))
    for kind, family, main, sub in (("caption", "i2t", "image_understanding", "image_captioning"),
                                    ("t2i", "t2i", "image_generation", "text_to_image")):
        assert items[f"medicat/unsplit/{stem}/{kind}"] == Rejection(
            id=f"medicat/unsplit/{stem}/{kind}", source="medicat", split="unsplit", reason=reason, detail=detail,
            modality=modality, task_family=family, provenance=[FIGURES_FILE, f"figures/{stem}.png"],
            main_task_type=main, sub_task_type=sub)


def test_malformed_lines(root):
    items = collect(Medicat(root))
    for line, detail in MALFORMED.items():
        record_id = f"medicat/unsplit/{FIGURES_FILE}#{line}"
        assert items[record_id] == Rejection(id=record_id, source="medicat", split="unsplit", reason="malformed_row",
                                             detail=detail, provenance=[FIGURES_FILE])


def test_caption_labels_are_removed():
    assert clean_caption("Figure 4. Nuclear  MRI scan.") == "Nuclear MRI scan."
    assert clean_caption("Fig 3. CT angiogram.") == "CT angiogram."
    assert clean_caption("Fig. 1: Brain CT (A).") == "Brain CT (A)."
    assert clean_caption("Figs. 2b Chest X-ray.") == "Chest X-ray."
    assert clean_caption("Figure 2.") == ""
    assert clean_caption(None) == ""
    assert clean_caption("Figurative language is absent.") == "Figurative language is absent."


def test_root_lookup_needs_the_figures_file(tmp_path):
    (tmp_path / "release").mkdir()  # someone else's release/ folder
    assert Medicat.find_root(tmp_path) is None
    sample.write(tmp_path / "x")
    (tmp_path / "x/release").rename(tmp_path / "medicat")
    assert Medicat.find_root(tmp_path) == tmp_path / "medicat"


def test_no_figures_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match=FIGURES_FILE):
        Medicat(tmp_path).work_units()


def test_split_selection(root):
    assert Medicat(root, splits=["train"]).work_units() == []
    assert {unit.split for unit in Medicat(root, splits=["unsplit"]).work_units()} == {"unsplit"}


def test_sample_tree_is_deterministic_and_small(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
    assert sum((first / name).stat().st_size for name in files) < 500_000


def test_card():
    card = Medicat.card
    assert (card.name, card.access, card.tasks) == ("medicat", "registration", ("image_captioning", "text_to_image"))
