"""Decode only what a rule needs (issue 27): header sizes, draft decodes where declared and never for written
pixels, truncated JPEGs still rejected, the coded-image hash, and the span recorder's steps."""

from __future__ import annotations

import csv
import glob
import io
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import JpegImagePlugin

from manifests import spans
from manifests.images import (CHECK_SIDE, ImageDecodeError, decode_bytes, downscale_to_fit, jpeg_hash, load_pixels,
                              normalised_std, pil_to_array, probe_bytes, reduced_view, shard_bytes)
from sources.samples.common import phantom, rng_for

REAL_DATA = Path("/work/shared/real-data/tree")


def _encode(pixels: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _full_decode(data: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as img:
        img.load()
        return pil_to_array(img)


@pytest.fixture
def draft_calls(monkeypatch):
    """Every Image.draft call on a JPEG: (calling function, requested size)."""
    calls: list[tuple[str, tuple[int, int]]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        calls.append((sys._getframe(1).f_code.co_name, tuple(size) if size else None))
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return calls


def _sample_files() -> dict[str, bytes]:
    """One file of every 2D format the sources meet, odd sizes included (4:2:0 chroma, DCT blocks cut)."""
    grey, colour = phantom(rng_for("g"), 777, 1001), phantom(rng_for("c"), 333, 517, 3)
    rgba = np.dstack([colour, np.full(colour.shape[:2], 200, np.uint8)])
    return {
        "jpeg L": _encode(grey, "JPEG", quality=90),
        "jpeg RGB 4:2:0": _encode(colour, "JPEG", quality=80, subsampling=2),
        "jpeg progressive": _encode(colour, "JPEG", quality=85, progressive=True),
        "png 8-bit": _encode(grey, "PNG"),
        "png RGBA": _encode(rgba, "PNG"),
        "png 16-bit": _encode(phantom(rng_for("s"), 150, 170, dtype=np.uint16), "PNG"),
        "tiff": _encode(colour, "TIFF"),
        "bmp": _encode(colour, "BMP"),
        "gif": _encode(grey, "GIF"),
    }


def test_header_sizes_agree_with_a_full_decode_on_every_format():
    files = _sample_files()
    real = sorted(p for p in glob.glob(str(REAL_DATA / "**" / "*"), recursive=True)
                  if p.lower().endswith((".jpg", ".png", ".gif", ".tif", ".tiff", ".bmp")))[:40]
    files.update({path: Path(path).read_bytes() for path in real})
    formats = set()
    for name, data in files.items():
        height, width = _full_decode(data).shape[:2]
        probe = probe_bytes(data, source_path=name)
        image = decode_bytes(data, source_path=name)
        assert (probe.width, probe.height) == (width, height) == (image.width, image.height), name
        formats.add(probe.format)
    assert {"JPEG", "PNG", "TIFF", "BMP", "GIF"} <= formats


def test_dicom_and_nifti_header_sizes_agree_with_their_decoders():
    """The size limits of DICOM and NIfTI are judged from the header before any pixel is decoded."""
    pydicom = pytest.importorskip("pydicom")
    import pydicom.data

    from sources.io.dicom import decode_dicom
    from sources.io.nifti import load_nifti

    shipped = Path(pydicom.data.__file__).parent / "test_files"  # never the ones pydicom would download
    checked = 0
    for name in ("CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm", "SC_rgb_jpeg.dcm", "examples_palette.dcm",
                 "rtdose_1frame.dcm"):
        path = shipped / name
        if not path.is_file():
            continue
        header = pydicom.dcmread(path, stop_before_pixels=True)
        image, _ = decode_dicom(Path(path).read_bytes(), source_path=name)
        assert (image.width, image.height) == (int(header.Columns), int(header.Rows)), name
        checked += 1
    assert checked >= 2
    nibabel = pytest.importorskip("nibabel")
    data_dir = Path(nibabel.__file__).parent / "tests" / "data"
    volumes = [p for p in sorted(data_dir.glob("*.nii*")) if len(nibabel.load(p).shape) == 3][:4]
    for path in volumes:
        assert load_nifti(path, source_path=path.name).shape == tuple(nibabel.load(path).header.get_data_shape())
    assert volumes


def test_a_passthrough_jpeg_is_draft_decoded_for_its_facts_only(draft_calls):
    data = _encode(phantom(rng_for("d"), 1200, 1600, 3), "JPEG", quality=90)
    image = decode_bytes(data, source_path="big.jpg")
    assert image.pixels is None and image.encoded == data and (image.width, image.height) == (1600, 1200)
    # one draft, from decode_bytes, at the smallest DCT scale that keeps the long side >= CHECK_SIDE
    assert draft_calls == [("decode_bytes", (CHECK_SIDE, 192))]
    reduced = PILImage.open(io.BytesIO(data))
    reduced.draft("RGB", (CHECK_SIDE, 192))
    assert image.pixel_std == normalised_std(pil_to_array(reduced))
    assert abs(image.pixel_std - normalised_std(_full_decode(data))) < 0.01
    assert image.pixel_hash == jpeg_hash(data)
    # what is written: the file's own bytes, or a full decode; never a draft
    draft_calls.clear()
    assert shard_bytes(image) == data
    assert np.array_equal(load_pixels(image), _full_decode(data))
    small = downscale_to_fit(image, max_side=800, max_pixels=10**8)
    reference = np.asarray(PILImage.fromarray(_full_decode(data)).resize((800, 600), PILImage.Resampling.LANCZOS))
    assert np.array_equal(small.pixels, reference)
    assert draft_calls == []


def test_checks_and_models_take_a_draft_no_smaller_than_they_ask(draft_calls):
    from filters.alignment.pairs import to_pil
    from filters.near_duplicates import image_phash, phash_of_pil

    data = _encode(phantom(rng_for("m"), 2000, 1800), "JPEG", quality=90)
    image = decode_bytes(data, source_path="m.jpg")
    draft_calls.clear()
    assert reduced_view(image, 448).size == (450, 500)  # 1/4: both sides still >= 448
    assert to_pil(image, 224).size == (225, 250) and to_pil(image, 896).size == (900, 1000)
    full_phash = phash_of_pil(PILImage.fromarray(_full_decode(data)))
    assert bin((image_phash(image) ^ full_phash) & (2**64 - 1)).count("1") <= 4
    assert [size for _, size in draft_calls] == [(448, 448), (224, 224), (896, 896), (231, CHECK_SIDE)]
    draft_calls.clear()
    assert to_pil(image).size == (1800, 2000) and draft_calls == []  # no side declared: a full decode


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpegs_are_still_rejected(progressive):
    data = _encode(phantom(rng_for("t"), 600, 800, 3), "JPEG", quality=90, progressive=progressive)
    for cut in (len(data) // 3, len(data) * 9 // 10, len(data) - 2):  # the last one lacks only its end marker
        with pytest.raises(ImageDecodeError) as err:
            decode_bytes(data[:cut], source_path="t.jpg")
        assert err.value.reason == "image_undecodable" and "t.jpg" in err.value.detail


def test_the_coded_image_hash_ignores_metadata_and_nothing_else():
    pixels = phantom(rng_for("h"), 300, 400, 3)
    plain = _encode(pixels, "JPEG", quality=90)
    exif = PILImage.Exif()
    exif[0x010F] = "Scanner Maker"
    with_exif = _encode(pixels, "JPEG", quality=90, exif=exif.tobytes(), comment=b"scanned at site 4",
                        icc_profile=b"\x00" * 128)
    assert with_exif != plain and jpeg_hash(with_exif) == jpeg_hash(plain) == jpeg_hash(plain + b"trailing junk")
    assert np.array_equal(_full_decode(with_exif), _full_decode(plain))
    assert jpeg_hash(_encode(pixels, "JPEG", quality=89)) != jpeg_hash(plain)
    changed = pixels.copy()
    changed[0, 0] ^= 0x40
    assert jpeg_hash(_encode(changed, "JPEG", quality=90)) != jpeg_hash(plain)


def _rocov2_tree(root: Path) -> dict[str, bytes]:
    """A ROCOv2 train split: a grey and a colour JPEG, one over the loaders' 4095 px limit, one truncated."""
    images = root / "train"
    images.mkdir(parents=True)
    files = {"ROCOv2_2023_train_000001": _encode(phantom(rng_for("1"), 300, 420), "JPEG", quality=90),
             "ROCOv2_2023_train_000002": _encode(phantom(rng_for("2"), 500, 380, 3), "JPEG", quality=85,
                                                 progressive=True),
             "ROCOv2_2023_train_000003": _encode(phantom(rng_for("3"), 600, 4200), "JPEG", quality=90)}
    truncated = _encode(phantom(rng_for("4"), 400, 400), "JPEG", quality=90)
    files["ROCOv2_2023_train_000004"] = truncated[:len(truncated) // 2]
    with open(root / "train_captions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "Caption"])
        for image_id, data in files.items():
            (images / f"{image_id}.jpg").write_bytes(data)
            writer.writerow([image_id, f"Axial computed tomography of the abdomen, image {image_id[-1]}."])
    return files


def test_the_pipeline_records_every_step_and_writes_full_decodes(tmp_path, monkeypatch, draft_calls):
    """The Ray pipeline's functions, run in this process in their order (adapter -> stages -> write step)."""
    import pyarrow.parquet as pq

    from pipeline.config import load_recipe
    from pipeline.engine.plan import stage_plan
    from pipeline.engine.staging import write_staging_batch
    from pipeline.engine.units import UnitTask, expand_units
    from sources import get_source

    monkeypatch.setenv(spans.ENV, str(tmp_path / "spans"))
    files = _rocov2_tree(tmp_path / "ROCOv2")
    recipe = load_recipe("stage1")
    adapter = get_source("rocov2")(tmp_path / "ROCOv2", {}, ["train"])
    tasks = [UnitTask("rocov2", str(tmp_path / "ROCOv2"), "{}", ("train",), unit) for unit in adapter.work_units()]
    staging = tmp_path / "staging"
    staging.mkdir()
    for task in tasks:
        for batch in expand_units({"task": np.array([pickle.dumps(task)], dtype=object)}, attempts=1,
                                  rows_per_batch=256, bytes_per_batch=1 << 26):
            for stage in stage_plan(recipe, None):
                batch = stage(batch)
            write_staging_batch(batch, str(staging), run=1, cards={"rocov2": ("CC BY 4.0", "open")},
                                png_compress_level=6)

    # the truncated file is rejected with its reason; the others kept, their facts from the header and a draft
    rows = pq.read_table(sorted(map(str, staging.glob("*.parquet")))).to_pylist()
    reasons = {row["id"]: row["reason"] for row in rows if row["kind"] != "unit_end"}
    assert {reason for rid, reason in reasons.items() if "000004" in rid} == {"image_undecodable"}
    assert all(reason is None for rid, reason in reasons.items() if "000004" not in rid)
    assert {caller for caller, _ in draft_calls} == {"decode_bytes"} and len(draft_calls) == 4

    # what the second pass writes (pipeline/engine/reread.py reads each unit's kept samples again): the
    # passthrough JPEGs byte for byte; the oversized one as a full decode, resized
    from pipeline.engine.reread import UnitReader

    reader = UnitReader(recipe)
    members: dict[str, bytes] = {}
    for task in tasks:
        wanted = {row["id"]: row for row in rows
                  if row["kind"] == "record" and row["status"] == "kept" and row["unit_id"] == task.unit.id}
        for record_id, found in reader.read(task, wanted).items():
            members.update({f"{record_id}.{suffix}": data for suffix, data in found})
    jpegs = {name: data for name, data in members.items() if name.endswith(".jpg")}
    pngs = {name: data for name, data in members.items() if name.endswith(".png")}
    assert jpegs and pngs
    for name, data in jpegs.items():
        assert data in (files["ROCOv2_2023_train_000001"], files["ROCOv2_2023_train_000002"]), name
    reference = np.asarray(PILImage.fromarray(_full_decode(files["ROCOv2_2023_train_000003"]))
                           .resize((4095, 585), PILImage.Resampling.LANCZOS))
    for name, data in pngs.items():
        assert np.array_equal(_full_decode(data), reference), name
    for row in rows:
        if row["kind"] == "record" and row["status"] == "kept" and row["width"] != 4095:
            source = files[next(key for key in files if key in row["id"])]
            assert row["pixel_hash"] == jpeg_hash(source)

    # every worker-side step declared in manifests/spans.py was recorded
    recorded = {entry["step"] for entry in spans.read(tmp_path / "spans")}
    worker_steps = {"adapter", "read", "decode", "image_facts", "check.resolution", "check.image_quality",
                    "check.text_quality", "decide", "resize", "serialise", "encode", "write",
                    "stage.coarse_scores", "stage.coarse_decision"}
    assert worker_steps <= recorded
    declared = [step for step, _ in spans.STEPS]
    assert all(step in declared or step.split(".")[0] + ".*" in declared for step in recorded), recorded


def test_spans_are_self_times_and_off_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(spans.ENV, raising=False)
    with spans.span("decode"):
        pass
    spans.flush()
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv(spans.ENV, str(tmp_path))
    with spans.span("write"):
        with spans.span("encode"):
            sum(range(200_000))
    spans.flush()
    outer, = [s for s in spans.read(tmp_path) if s["step"] == "write"]
    inner, = [s for s in spans.read(tmp_path) if s["step"] == "encode"]
    assert inner["depth"] == 1 and outer["depth"] == 0
    assert outer["self_seconds"] == pytest.approx(outer["seconds"] - inner["seconds"], abs=1e-6)
    assert 0 < inner["self_cpu"] <= inner["seconds"] + 0.01


def test_the_decoder_is_part_of_every_digest_of_staged_work(monkeypatch):
    """Staged rows, cached alignment scores and near-duplicate hashes made by another decoder are never reused."""
    import manifests.images
    import pipeline.config
    from filters.alignment.pairs import scorer_digest
    from pipeline.config import load_recipe

    recipe = load_recipe("stage1")
    before = (recipe.processing_digest(), scorer_digest(recipe.alignment), recipe.near_duplicates.hashing_digest())
    monkeypatch.setattr(pipeline.config, "DECODER", "full-decode")
    monkeypatch.setattr(manifests.images, "DECODER", "full-decode")
    after = (recipe.processing_digest(), scorer_digest(recipe.alignment), recipe.near_duplicates.hashing_digest())
    assert all(a != b for a, b in zip(before, after))


@pytest.mark.slow
def test_a_measured_build_records_the_driver_steps_too(tmp_path):
    """The bench's child (its own process and Ray, UNIMED_SPANS set): driver and worker spans, and the breakdown."""
    from pipeline.bench.build import breakdown, make_corpus, measure_build

    make_corpus(tmp_path / "corpus", 6, mixed=False)
    run = measure_build(tmp_path / "corpus", tmp_path / "out", 6, num_cpus=2, spans_dir=tmp_path / "spans")
    recorded = {entry["step"] for entry in spans.read(tmp_path / "spans")}
    assert {"start_up", "ray_start", "listing", "adapter", "read", "decode", "image_facts", "check.resolution",
            "check.image_quality", "check.text_quality", "decide", "serialise", "write", "finalise",
            "shutdown"} <= recorded
    lines = breakdown(tmp_path / "spans", run)
    assert any(line.split()[0] == "decode" for line in lines[2:]) and "cores unused" in lines[-1]
