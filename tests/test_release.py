"""Metadata-only releases, rebuilds from them, and the licence gate, on a small sample build.

One build of four sample sources (SLAKE and MIMIC-CXR are not redistributable; OCT2017 texts and images
and MedQA texts are), one release of it, then rebuilds: on the same tree (byte-identical shards) and
on a copy with one file deleted and one modified.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image as PILImage

from filters.settings import RecipeError
from manifests.query import open_build
from manifests.shards import list_shards, relative_shard
from pipeline.cli import main
from pipeline.config import Recipe, parse_recipe
from pipeline.engine.build import build
from pipeline.engine.licences import AccessRefused, check_access
from pipeline.release.rebuild import ReleaseFilter, rebuild
from pipeline.release.write import RECORDS_FILE, RELEASE_SCHEMA, write_release
from sources import SOURCES
from sources.samples import write_sample_tree
from tests.conftest import sample_recipe

ONLY = ["slake", "oct2017", "mimic_cxr", "medqa"]
NOT_REDISTRIBUTABLE = ("slake", "mimic_cxr")


def shard_digests(build_dir: Path) -> dict[str, str]:
    return {relative_shard(build_dir, p): hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(build_dir)}


def kept_ids(build_dir: Path) -> list[str]:
    return [row[0] for row in open_build(build_dir).execute("SELECT id FROM kept ORDER BY id").fetchall()]


def shard_members(build_dir: Path) -> dict[str, bytes]:
    members = {}
    for shard in list_shards(build_dir):
        with tarfile.open(shard) as tar:
            for info in tar:
                members[info.name] = tar.extractfile(info).read()
    return members


@pytest.fixture(scope="module")
def small(ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("release-src")
    write_sample_tree(root, ONLY)
    out = tmp_path_factory.mktemp("release-build")
    report = build(sample_recipe(), out, root, only=ONLY, progress=False)
    assert report.exit_code == 0
    release = tmp_path_factory.mktemp("release") / "r"
    summary = write_release(report.out_dir, release)
    return root, report, release, summary


def test_release_has_no_pixels_and_no_text_of_non_redistributable_sources(small):
    _, report, release, summary = small
    con = open_build(report.out_dir)
    rows = pq.read_table(release / RECORDS_FILE).to_pylist()
    assert sorted(r["id"] for r in rows) == kept_ids(report.out_dir) and summary.kept == len(rows)
    assert {r["source"] for r in rows} == set(ONLY)
    # every text of a non-redistributable source's samples, as the build has it
    secret = []
    for (sample,) in con.execute(f"SELECT sample FROM kept WHERE source IN {NOT_REDISTRIBUTABLE}").fetchall():
        secret += [turn["value"].replace("<image>", "").strip() for turn in json.loads(sample)["message"]]
    secret = [text for text in secret if len(text) >= 6]
    assert len(secret) >= 10
    everything = json.dumps([{k: v for k, v in r.items() if k != "image_data"} for r in rows], default=str)
    for path in release.rglob("*"):
        if path.is_file() and path.suffix != ".parquet":
            everything += path.read_text(encoding="utf-8")
    leaked = [text for text in secret if text in everything]
    assert leaked == []
    members = shard_members(report.out_dir)
    for row in rows:
        document = json.loads(row["sample"])
        if row["source"] in NOT_REDISTRIBUTABLE:
            assert row["image_data"] is None and not row["text_redistributed"] and not row["images_redistributed"]
            assert all(turn["value"] is None for turn in document["message"])
            assert row["meta"] is None
        else:  # the licence allows texts (and OCT2017's images): carried, and equal to the shard's
            assert row["text_redistributed"] and any(turn["value"] for turn in document["message"])
        # one decoded-pixel hash per image, in the sample's order; the first is the manifest's pixel_hash
        refs = document["input_img"] + document["output_img"]
        assert row["image_members"] == [ref["path"] for ref in refs]
        assert len(row["image_hashes"]) == len(refs) and all(row["image_hashes"])
        if refs:
            assert row["image_hashes"][0] == row["pixel_hash"]
        if row["source"] == "oct2017" and refs:
            assert row["images_redistributed"]
            assert row["image_data"] == [members[f"{row['key']}.{ref['path']}"] for ref in refs]
    assert summary.images_carried == sum(1 for r in rows if r["source"] == "oct2017" and r["image_members"])
    # the recipe, digest and shard hashes travel; the builder's paths do not
    meta = json.loads((release / "release.json").read_text())
    assert meta["shards"] == [{"name": n, "sha256": d, "samples": meta["shards"][i]["samples"]}
                              for i, (n, d) in enumerate(shard_digests(report.out_dir).items())]
    assert meta["processing_digest"] == sample_recipe().processing_digest()
    assert str(report.out_dir.parent) not in everything
    licences = (release / "LICENCES.md").read_text()
    mimic_kept = con.execute("SELECT count(*) FROM kept WHERE source = 'mimic_cxr'").fetchone()[0]
    assert f"| mimic_cxr | PhysioNet Credentialed Health Data License 1.5.0 | credentialed | {mimic_kept} | no | no |" \
        in licences
    assert "| oct2017 | CC BY 4.0 | open |" in licences and "| yes | yes |" in licences
    acknowledgments = (release / "ACKNOWLEDGMENTS.md").read_text()
    for name in ONLY:
        assert SOURCES[name].card.url in acknowledgments
    assert "Johnson AEW" in acknowledgments  # the card's full citation


def test_release_all_rows_carries_rejections(small, tmp_path):
    _, report, _, _ = small
    summary = write_release(report.out_dir, tmp_path / "all", all_rows=True)
    table = pq.read_table(tmp_path / "all" / RECORDS_FILE).to_pylist()
    expected = dict(open_build(report.out_dir).execute("SELECT id, reason FROM records").fetchall())
    assert summary.rows == len(table) == len(expected)
    assert {r["id"]: r["reason"] for r in table} == expected
    assert all(r["image_data"] is None for r in table if r["status"] != "kept")


def test_release_filter_applies_the_release_decisions(small, tmp_path):
    """No model runs in a rebuild: a released rejection (an alignment cut, say) wins, released scores are copied."""
    _, report, release, _ = small
    rows = pq.read_table(release / RECORDS_FILE).to_pylist()
    cut = rows[0]["id"]
    rows[0]["status"], rows[0]["reason"] = "rejected", "below_alignment_cut"
    for index, row in enumerate(rows):
        row["align_final"] = index / 10
    pq.write_table(pa.Table.from_pylist(rows, schema=RELEASE_SCHEMA), tmp_path / "r.parquet")
    con = duckdb.connect()
    con.execute(f"CREATE TABLE chosen AS SELECT * FROM read_parquet('{report.out_dir.as_posix()}/manifest/*.parquet')")
    before = dict(con.execute("SELECT id, status FROM chosen").fetchall())
    ReleaseFilter(str(tmp_path / "r.parquet")).apply(con)
    after = {i: (s, r, a) for i, s, r, a in con.execute("SELECT id, status, reason, align_final FROM chosen").fetchall()}
    assert after[cut][:2] == ("rejected", "below_alignment_cut")
    for index, row in enumerate(rows[1:], 1):
        assert after[row["id"]][0] == "kept" and after[row["id"]][2] == pytest.approx(index / 10)
    assert {i for i, (s, _, _) in after.items() if s == "kept"} == {i for i, s in before.items() if s == "kept"} - {cut}
    assert len(after) == len(before)


def test_stats_state_the_licence_mix(small):
    _, report, _, _ = small
    stats = json.loads((report.out_dir / "stats.json").read_text())
    mix = stats["licence_mix"]
    kept = dict(open_build(report.out_dir).execute("SELECT source, count(*) FROM kept GROUP BY ALL").fetchall())
    assert mix["access_policy"] == "any"
    assert mix["by_access"]["credentialed"]["kept"] == kept["mimic_cxr"]
    assert mix["by_access"]["open"]["kept"] == kept["slake"] + kept["oct2017"] + kept["medqa"]
    assert mix["sources"]["mimic_cxr"]["access"] == "credentialed"
    assert mix["sources"]["oct2017"]["redistribute_images"] is True


def test_report_states_the_access_mix(small, tmp_path):
    from pipeline.report.html import write_report

    _, report, _, _ = small
    kept = dict(open_build(report.out_dir).execute("SELECT access, count(*) FROM kept GROUP BY ALL").fetchall())
    page = write_report(report.out_dir, tmp_path / "report", per_gallery=1).read_text()
    assert f"Kept samples by access class: credentialed {kept['credentialed']}, open {kept['open']}" in page
    assert "images redistributable" in page


def test_rebuild_on_the_same_tree_gives_byte_identical_shards(small, tmp_path):
    root, report, release, _ = small
    summary = rebuild(release, tmp_path, root, progress=False)
    out = summary.report.out_dir
    assert summary.report.exit_code == 0
    assert kept_ids(out) == kept_ids(report.out_dir)
    assert shard_digests(out) == shard_digests(report.out_dir) and len(shard_digests(out)) > 1
    assert (summary.released, summary.reproduced, summary.by_reason) == (len(kept_ids(out)), len(kept_ids(out)), {})
    assert json.loads((out / "rebuild.json").read_text())["shards_identical"] == len(shard_digests(out))


def test_rebuild_reports_missing_and_changed_files(small, tmp_path):
    root, report, release, _ = small
    copy = tmp_path / "src"
    shutil.copytree(root, copy)
    con = open_build(report.out_dir)
    slake_id, slake_file = con.execute(
        "SELECT id, provenance[2] FROM kept WHERE source = 'slake' ORDER BY id DESC LIMIT 1").fetchone()
    # only one kept sample uses that image, so exactly one sample loses its file
    assert con.execute("SELECT count(*) FROM kept WHERE list_contains(provenance, ?)", [slake_file]).fetchone()[0] == 1
    (copy / "Slake1.0" / slake_file).unlink()
    oct_file = con.execute(
        "SELECT provenance[1] FROM kept WHERE source = 'oct2017' ORDER BY id LIMIT 1").fetchone()[0]
    changed_ids = [r[0] for r in con.execute(
        "SELECT id FROM kept WHERE list_contains(provenance, ?)", [oct_file]).fetchall()]
    path = next((copy).glob("OCT2017*")) / oct_file
    with PILImage.open(path) as img:
        pixels = np.asarray(img).copy()
    pixels[:16, :16] = 255 - pixels[:16, :16]  # same size and format, different pixels
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    path.write_bytes(buffer.getvalue())

    summary = rebuild(release, tmp_path / "out", copy, progress=False)
    rows = dict(((r[0]), (r[1], r[2], r[3])) for r in open_build(summary.report.out_dir).execute(
        "SELECT id, status, reason, detail FROM records").fetchall())
    assert rows[slake_id][:2] == ("rejected", "source_missing")
    for record_id in changed_ids:
        assert rows[record_id][:2] == ("rejected", "source_changed")
        assert "decoded pixels differ" in rows[record_id][2]
    lost = {slake_id, *changed_ids}
    assert kept_ids(summary.report.out_dir) == [i for i in kept_ids(report.out_dir) if i not in lost]
    assert summary.by_reason == {"source_missing": 1, "source_changed": len(changed_ids)}
    assert summary.reproduced == summary.released - len(lost)
    assert summary.shards_identical < summary.shards_released


def test_access_public_refuses_mimic_cxr_and_names_it(small, tmp_path, capsys):
    root, _, _, _ = small
    with pytest.raises(AccessRefused, match="mimic_cxr") as refused:
        build(sample_recipe(), tmp_path, root, only=ONLY, progress=False, access="public")
    assert "slake" not in str(refused.value) and "credentialed" in str(refused.value)
    assert not (tmp_path / "stage1").exists()  # refused before anything ran
    recipe = sample_recipe()
    recipe.access = "public"
    with pytest.raises(AccessRefused, match="mimic_cxr"):
        build(recipe, tmp_path, root, only=ONLY, progress=False)
    check_access("public", ["slake", "oct2017", "medqa"])  # open sources pass
    check_access(None, ["mimic_cxr"])  # no gate, no refusal
    code = main(["build", "--recipe", "stage1", "--sources-root", str(root), "--out", str(tmp_path),
                 "--only", ",".join(ONLY), "--access", "public", "--quiet"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "mimic_cxr (credentialed" in err and "Traceback" not in err


def test_recipe_access_setting_is_optional_and_checked():
    assert "access" not in Recipe(name="x").to_dict()  # a recipe without the gate resolves as before
    recipe = parse_recipe({"name": "x", "access": "public"})
    assert recipe.access == "public" and recipe.to_dict()["access"] == "public"
    assert recipe.processing_digest() == parse_recipe({"name": "x"}).processing_digest()
    with pytest.raises(RecipeError, match="access"):
        parse_recipe({"name": "x", "access": "open-ish"})
    assert parse_recipe(yaml.safe_load(yaml.safe_dump(sample_recipe().to_dict()))).to_dict() == \
        sample_recipe().to_dict()


def test_release_reads_the_builds_hashes_and_decodes_only_to_verify(small, tmp_path, monkeypatch):
    import pipeline.release.write as release_write

    _, report, _, _ = small
    decoded = []
    real = release_write.decode_bytes
    monkeypatch.setattr(release_write, "decode_bytes", lambda data, **kw: decoded.append(kw) or real(data, **kw))
    plain = write_release(report.out_dir, tmp_path / "plain")
    assert decoded == [] and plain.images_decoded == 0  # the hashes are the build's own
    verified = write_release(report.out_dir, tmp_path / "verified", verify=True)
    rows = pq.read_table(tmp_path / "verified" / RECORDS_FILE).to_pylist()
    images = sum(len(row["image_members"]) for row in rows)
    assert len(decoded) == verified.images_decoded == images > 0
    assert pq.read_table(tmp_path / "plain" / RECORDS_FILE).equals(pq.read_table(tmp_path / "verified" / RECORDS_FILE))
    manifest = dict(open_build(report.out_dir).execute("SELECT id, image_hashes FROM kept").fetchall())
    assert {row["id"]: row["image_hashes"] for row in rows} == {i: hashes or [] for i, hashes in manifest.items()}
    meta = json.loads((tmp_path / "verified" / "release.json").read_text())
    assert meta["images_verified"] is True and meta["image_hash_mismatches"] == verified.hash_mismatches
