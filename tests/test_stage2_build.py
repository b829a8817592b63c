"""A stage-2 build end to end: a small stage-1 build, its HQ subset replayed, CAG through a fake OpenAI-compatible
server on 127.0.0.1 (good and rule-breaking replies), the DCOT sources; then the curriculum loader's stage-2 mix."""

from __future__ import annotations

import hashlib
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.cag import rules
from filters.cag.settings import CagSettings
from pipeline.config import SourceEntry, load_recipe
from pipeline.curriculum.schedule import CURRICULUM_STAGES, normalised
from tests.cag_server import FakeChatServer
from tests.conftest import sample_recipe

STAGE1_SOURCES = ["rocov2", "kvasir", "medqa", "brats"]


def score_of(record_id: str) -> float:
    return int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=4).digest(), "big") / 2**32


def write_scores(build_dir) -> None:
    """Stored S_final for the I2T/T2I rows, in place of a scoring run (the selection reads only this column)."""
    for path in sorted((build_dir / "manifest").glob("*.parquet")):
        table = pq.read_table(path)
        scores = [score_of(i) if f in ("i2t", "t2i") and s == "kept" else None for i, f, s in zip(
            table["id"].to_pylist(), table["task_family"].to_pylist(), table["status"].to_pylist())]
        column = table.schema.get_field_index("align_final")
        table = table.set_column(column, "align_final", pa.array(scores, type=table.schema.field(column).type))
        pq.write_table(table, path)


def script(step: str, text: str):
    """Valid replies built from the request; the plan of one image in three says "shows" (a rule break)."""
    if step == "describe":
        # the describe request carries no modality: the first sentence names every modality term, so the
        # modality rule (tested on its own in tests/test_cag.py) passes for every image here
        return ("This is a medical image (x-ray, radiograph, CT, MRI, ultrasound, histopathology, fundus, OCT, "
                "endoscopy, dermoscopy) of one region. " + "The structures have a normal size and contour. " * 9
                + "There are no special findings.")
    if step == "fuse":
        phrase = re.search(r"two texts about the same (.+?) image\.", text).group(1)
        caption = text.split("ORIGINAL CAPTION (written by the image's human author):\n", 1)[1].split("\n\n")[0]
        body = " ".join(caption.split()).replace("{", "(").replace("}", ")")
        return (f"Please generate a realistic {phrase} image showing {body}, rendered at the scale, contrast and "
                "texture of a clinical acquisition.\nAbnormalities added from the original caption: none")
    phrase = re.search(r"You are a medical image generator for (.+?)\. ", text).group(1)
    verb = "shows" if int(hashlib.md5(text.encode()).hexdigest(), 16) % 3 == 0 else "displays"
    return (f"<think>\n1) Key pathological process: none, normal appearance.\n2) Anatomical structures: the region "
            f"of the description.\n3) {phrase} imaging characteristics: the contrast of a clinical {phrase}.\n"
            f"Structured caption: a {phrase} image of the region.\n</think>\n"
            f"Here is the generated {phrase} image that displays:\n- the region of the description\n"
            f"- a field that {verb} the usual contrast")


@pytest.fixture
def server():
    fake = FakeChatServer(script)
    yield fake
    fake.close()


def test_stage2_build_from_a_stage1_build(ray_session, sample_root, tmp_path, server):
    from manifests.query import open_build
    from pipeline.curriculum.index import build_index
    from pipeline.engine.build import build

    stage1 = build(sample_recipe(), tmp_path / "s1", sample_root, only=STAGE1_SOURCES, progress=False)
    assert stage1.exit_code == 0
    write_scores(stage1.out_dir)

    recipe = load_recipe("stage2")
    recipe.sources = [SourceEntry("medical_o1_reasoning_sft"), SourceEntry("medthink", splits=["train"])]
    recipe.shards.max_samples = 8
    recipe.cag = CagSettings(enabled=True, backend="openai", endpoint=server.endpoint, model="fake-medgemma",
                             max_retries=0, request_timeout_s=20)
    report = build(recipe, tmp_path / "s2", sample_root, hq_build=stage1.out_dir, progress=False)
    assert report.exit_code == 0, report.result.failed_units
    con = open_build(report.out_dir)
    s1 = open_build(stage1.out_dir)

    # HQ: per family x modality the top half (ceil) of stage 1's kept scored rows; interleaved and text whole
    expected = s1.execute("""
        WITH r AS (SELECT id, task_family, modality, row_number() OVER (PARTITION BY task_family, modality
                   ORDER BY align_final DESC, id) AS k, count(*) OVER (PARTITION BY task_family, modality) AS n
                   FROM kept WHERE task_family IN ('i2t', 't2i') AND split IN ('train', 'unsplit'))
        SELECT id FROM r WHERE k <= ceil(n * 0.5)
        UNION ALL SELECT id FROM kept WHERE task_family IN ('interleaved', 'text') AND split IN ('train', 'unsplit')
        ORDER BY id""").fetchall()
    replayed = con.execute("SELECT json_extract_string(meta, '$.hq.from_id') AS f FROM records "
                           "WHERE f IS NOT NULL AND id = f ORDER BY f").fetchall()
    assert replayed == expected
    # a replayed row has stage 1's pixels and text (same content hash)
    ids = [i for (i,) in expected]
    before = dict(s1.execute("SELECT id, content_hash FROM kept WHERE list_contains(?, id)", [ids]).fetchall())
    after = dict(con.execute("SELECT id, content_hash FROM records WHERE list_contains(?, id)", [ids]).fetchall())
    assert after == before
    families = dict(con.execute("SELECT task_family, count(*) FROM kept GROUP BY ALL").fetchall())
    assert set(families) == {"i2t", "t2i", "interleaved", "text"}

    # CAG: one /cag and one /plan row per chosen T2I row with a known modality; reasons for the others
    chosen_t2i = s1.execute("SELECT id, modality FROM kept WHERE task_family = 't2i' AND list_contains(?, id)",
                            [ids]).fetchall()
    rows = {i: (s, r, f) for i, s, r, f in con.execute(
        "SELECT id, status, reason, task_family FROM records WHERE id LIKE '%/cag' OR id LIKE '%/plan'").fetchall()}
    assert len(rows) == 2 * len(chosen_t2i) > 0
    for record_id, modality in chosen_t2i:
        cag, plan = rows[f"{record_id}/cag"], rows[f"{record_id}/plan"]
        if rules.modality_phrase(modality) is None:
            assert cag[:2] == plan[:2] == ("rejected", "cag_describe_modality_unknown")
        else:
            assert cag[:2] == ("kept", None) and plan[1] in (None, "cag_plan_observational_verb")
    reasons = dict(con.execute(
        "SELECT reason, count(*) FROM rejected WHERE reason LIKE 'cag_%' GROUP BY ALL").fetchall())
    assert reasons.get("cag_plan_observational_verb", 0) > 0
    kept_plan = con.execute("SELECT sample, meta FROM kept WHERE id LIKE '%/plan' LIMIT 1").fetchone()
    doc, meta = json.loads(kept_plan[0]), json.loads(kept_plan[1])
    assert [t["from"] for t in doc["message"]] == ["human", "gpt"] and doc["message"][1]["value"].startswith("<think>")
    assert doc["message"][0]["value"].startswith("Please generate a realistic") and doc["output_img"]
    assert doc["sub_task_type"].endswith("_planning")
    assert meta["cag"]["prompts"] == {"describe": "medgemma_qc_v1", "fuse": "cag_fuse_v1", "plan": "cag_plan_v1"}
    # DCOT rows from both sources; the MedThink test files stay out
    dcot = dict(con.execute("SELECT source, count(*) FROM kept WHERE source IN ('medthink', "
                            "'medical_o1_reasoning_sft') GROUP BY ALL").fetchall())
    assert dcot == {"medthink": 4, "medical_o1_reasoning_sft": 2}
    assert con.execute("SELECT count(*) FROM records WHERE split = 'test'").fetchone()[0] == 0
    stats = json.loads((report.out_dir / "stats.json").read_text())
    assert stats["cag_model"]["backend"] == "openai" and stats["cag_demo_weights"] is False

    # a rebuild asks the server nothing and changes nothing
    asked = len(server.requests)
    again = build(recipe, tmp_path / "s2", sample_root, hq_build=stage1.out_dir, progress=False)
    assert again.units_run == 0 and len(server.requests) == asked

    # the curriculum loader mixes the four families at stage 2's 40/45/10/5
    assert CURRICULUM_STAGES[2].weights == {"i2t": 40, "t2i": 45, "interleaved": 10, "text": 5}
    index = build_index([report.out_dir])
    assert set(index.family) == {"i2t", "t2i", "interleaved", "text"}
    from pipeline.curriculum.loader import CurriculumDataset, CurriculumLoader
    from pipeline.curriculum.mixture import MixtureConfig
    from pipeline.curriculum.schedule import Schedule

    mixture = MixtureConfig(batch_size=20, seed=0, mode="stratified")
    loader = CurriculumLoader(CurriculumDataset(index, Schedule.of((2,), 5 / CURRICULUM_STAGES[2].steps), mixture))
    shares = normalised(CURRICULUM_STAGES[2].weights)
    from pipeline.curriculum.schedule import FAMILIES

    batches = 0
    for batch in loader:
        batches += 1
        counts = {f: int((batch["family"] == FAMILIES.index(f)).sum()) for f in shares}
        assert counts == {"i2t": 8, "t2i": 9, "interleaved": 2, "text": 1}
    assert batches == 5
