"""Alignment filter (spec 3.2): tiny demo models loaded through the real paths, the OpenAI-compatible
backend against a local server, the cut under each scope, the cache, and rethresholding without models."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from filters.alignment.cache import CACHE_INDEX, cache_relation, compact_cache, prepare, read_cache, write_cache
from filters.alignment.pairs import CAPTIONS, KEY, TEXT, TODO, scorer_digest, to_pil
from filters.alignment.cut import apply_cut
from filters.settings import AlignmentSettings, CaptionerSettings, ImageTextSettings
from pipeline.config import parse_recipe
from filters.models import ModelNotAvailable, resolve_model
from manifests.records import IMAGE_TOKEN, Record
from manifests.shards import list_shards
from sources.io.image import image_from_array


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    from filters.demo_models import write_demo_models

    out = tmp_path_factory.mktemp("demo-models")
    write_demo_models(out)
    return out


def cpu_settings(demo_dir: Path | None = None, **changes) -> AlignmentSettings:
    settings = AlignmentSettings(enabled=True, models_dir=str(demo_dir) if demo_dir else None, **changes)
    for section in (settings.captioner, settings.embedder, settings.siglip, settings.biomedclip):
        section.resources.num_gpus = 0.0
    settings.captioner.max_new_tokens = 16
    settings.captioner.min_caption_chars = 3
    return settings


def make_record(index: int, family: str = "i2t", sub_task: str = "image_captioning", source: str = "rocov2",
                text: str = "Frontal chest radiograph with clear lungs.") -> Record:
    pixels = np.random.default_rng(index).integers(0, 255, size=(40 + index, 48), dtype=np.uint8)
    return Record(id=f"{source}/{index:03d}", source=source, split="train", modality="chest_xray",
                  task_family=family, main_task_type="image_understanding", sub_task_type=sub_task,
                  message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nDescribe the image."},
                           {"from": "gpt", "value": f"{text} Case {index}."}],
                  input_images=[image_from_array(pixels, source_path=f"{index}.png")], status="kept")


def images(n: int):
    return [to_pil(make_record(i).input_images[0]) for i in range(n)]


def test_demo_models_score_through_the_real_loaders(demo_dir):
    from filters.alignment.biomedclip import BiomedCLIPScorer
    from filters.alignment.e5 import E5Embedder, max_cosine
    from filters.alignment.medsiglip import SiglipScorer

    s = cpu_settings(demo_dir, biomedclip=ImageTextSettings(model="microsoft/BiomedCLIP-PubMedBERT_256-"
                                                                            "vit_base_patch16_224"))
    e5 = E5Embedder(resolve_model(s.embedder.model, s.models_dir), s.embedder)
    vectors = e5.embed(["query: chest radiograph", "query: axial CT of the liver", "query: chest radiograph"])
    assert vectors.shape == (3, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    value, best = max_cosine(vectors[0], vectors[1:])
    assert best == 1 and value == pytest.approx(1.0, abs=1e-5)

    siglip = SiglipScorer(resolve_model(s.siglip.model, s.models_dir), s.siglip)
    logits, probs = siglip.score(images(3), ["a chest radiograph", "brain MRI", "fundus photograph"])
    assert logits.shape == probs.shape == (3,) and logits.dtype == np.float32
    assert np.all((probs > 0) & (probs < 1)) and np.allclose(probs, 1 / (1 + np.exp(-logits)), atol=1e-6)

    bmc = BiomedCLIPScorer(resolve_model(s.biomedclip.model, s.models_dir), s.biomedclip)
    cosines = bmc.score(images(3), ["a chest radiograph", "brain MRI", "fundus photograph"])
    assert cosines.shape == (3,) and np.all(np.abs(cosines) <= 1.0 + 1e-6)


def test_scores_are_deterministic_and_batch_size_invariant(demo_dir):
    from filters.alignment.biomedclip import BiomedCLIPScorer
    from filters.alignment.e5 import E5Embedder
    from filters.alignment.medsiglip import SiglipScorer

    texts = ["query: short", "query: a much longer caption about the chest radiograph and lungs", "query: CT"]
    runs = {}
    for size in (1, 3):
        s = cpu_settings(demo_dir)
        for section in (s.embedder, s.siglip):
            section.resources.batch_size = size
        s.biomedclip.model, s.biomedclip.resources.batch_size = "BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", size
        e5 = E5Embedder(resolve_model(s.embedder.model, s.models_dir), s.embedder)
        siglip = SiglipScorer(resolve_model(s.siglip.model, s.models_dir), s.siglip)
        bmc = BiomedCLIPScorer(resolve_model(s.biomedclip.model, s.models_dir), s.biomedclip)
        runs[size] = (e5.embed(texts), siglip.score(images(3), texts)[0], bmc.score(images(3), texts))
        assert np.array_equal(runs[size][0], e5.embed(texts))  # same input, same bits
    for one, three in zip(runs[1], runs[3]):
        assert np.allclose(one, three, atol=1e-5)


def test_captions_k_per_image_and_reproducible(demo_dir):
    from pipeline.stages.medgemma_captions import MedGemmaCaptionStage

    s = cpu_settings(demo_dir)
    s.captioner.k = 3
    stage = MedGemmaCaptionStage(s)
    stage.setup()
    first = stage.model.generate(images(2), seeds=[11, 12])
    assert [len(c) for c in first] == [3, 3]
    assert stage.model.generate(images(2), seeds=[11, 12]) == first


def test_an_items_captions_do_not_depend_on_its_batch(demo_dir):
    """Ray Data batches differ from run to run: an item's sampled captions must come from its own seed."""
    from filters.models import item_seed
    from pipeline.stages.medgemma_captions import MedGemmaCaptionStage

    s = cpu_settings(demo_dir)
    s.captioner.k = 2
    stage = MedGemmaCaptionStage(s)
    stage.setup()
    pair = images(2)
    seeds = [item_seed(0, "key-a"), item_seed(0, "key-b")]
    together = stage.model.generate(pair, seeds=seeds)
    alone = stage.model.generate(pair[1:], seeds=seeds[1:])
    assert alone[0] == together[1]
    assert stage.model.generate(pair[1:], seeds=[item_seed(0, "key-c")]) != alone  # the seed does matter


class FakeCaptioner:
    def __init__(self, outputs):
        self.outputs = outputs

    def generate(self, images, seeds):
        return self.outputs[: len(images)]


def test_malformed_caption_output_is_a_null_score_with_a_reason():
    from pipeline.stages.medgemma_captions import MedGemmaCaptionStage

    records = [make_record(i) for i in range(3)]
    settings = cpu_settings()
    settings.captioner.min_caption_chars = 5
    prepare(records, settings, None)
    stage = MedGemmaCaptionStage(settings)
    stage.model = FakeCaptioner([["", "   ", "abc"], "backend error: HTTP 503", ["", "A usable caption."]])
    stage.process_batch(records)
    assert records[0].scores[CAPTIONS] == [] and records[0].scores["align_reason"].startswith("caption_malformed")
    assert "empty" in records[0].scores["align_reason"] and "too_short" in records[0].scores["align_reason"]
    assert records[1].scores["align_reason"] == "caption_backend error: HTTP 503"
    assert records[2].scores[CAPTIONS] == ["A usable caption."] and "align_reason" not in records[2].scores


class _Handler(BaseHTTPRequestHandler):
    mode = "ok"
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        if self.mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        if self.mode == "garbage":
            payload = b"{not json"
        else:
            choices = [{"index": i, "message": {"role": "assistant", "content": f"Candidate caption number {i}."}}
                       for i in range(body["n"])]
            payload = json.dumps({"choices": choices}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def caption_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _Handler.bodies = []
    yield server, _Handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_openai_backend_sends_the_same_request_and_handles_failures(caption_server):
    from pipeline.stages.medgemma_captions import MedGemmaCaptionStage
    from filters.alignment.captioner import load_prompt

    server, handler = caption_server
    settings = cpu_settings(captioner=CaptionerSettings(
        backend="openai", endpoint=f"http://127.0.0.1:{server.server_address[1]}/v1", k=5, request_timeout_s=5,
        max_retries=1, model="google/medgemma-4b-it"))
    records = [make_record(i) for i in range(2)]
    prepare(records, settings, None)
    stage = MedGemmaCaptionStage(settings)
    stage.setup()
    handler.mode = "ok"
    stage.process_batch(records)
    assert all(len(r.scores[CAPTIONS]) == 5 for r in records)
    body = handler.bodies[0]
    assert body["n"] == 5 and body["model"] == "google/medgemma-4b-it"
    content = body["messages"][0]["content"]
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[1]["text"] == load_prompt("medgemma_qc_v1")

    for mode, reason in (("garbage", "caption_malformed response"), ("error", "caption_backend error: HTTP 500")):
        handler.mode = mode
        records = [make_record(9)]
        prepare(records, settings, None)
        stage.process_batch(records)
        assert records[0].scores[CAPTIONS] == [] and records[0].scores["align_reason"].startswith(reason)


def _rows(n_per_source: int = 4) -> pa.Table:
    rows = []
    for s_index, source in enumerate(("a", "b")):
        for i in range(n_per_source):
            rows.append({"id": f"{source}{i}", "source": source, "modality": "ct" if i % 2 else "mri",
                         "status": "kept", "reason": None, "detail": None,
                         "align_s_raw": 0.1 * i + s_index, "align_m_logit": float(i) - 2 * s_index,
                         "align_m_prob": 0.5, "align_reason": None,
                         "align_s": None, "align_m": None, "align_final": None})
    rows.append({**rows[0], "id": "exempt1", "align_s_raw": None, "align_m_logit": None, "align_reason": "exempt"})
    rows.append({**rows[0], "id": "failed1", "align_s_raw": None, "align_reason": "caption_malformed: 5/5"})
    floats = ("align_s_raw", "align_m_logit", "align_m_prob", "align_s", "align_m", "align_final")
    schema = pa.schema([(name, pa.float32() if name in floats else pa.string()) for name in rows[0]])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.mark.parametrize("scope", ["global", "source", "modality"])
@pytest.mark.parametrize("normalize", ["minmax", "rank"])
def test_top_half_cut_under_each_scope(scope, normalize):
    con = duckdb.connect()
    con.register("input", _rows())
    con.execute("CREATE TABLE chosen AS SELECT * FROM input")
    counts = apply_cut(con, cpu_settings(keep_scope=scope, normalize_scope=scope, normalize=normalize))
    assert counts == {"unscored": 1, "below_cut": 4, "scored": 8}
    status = dict(con.execute("SELECT id, status FROM chosen").fetchall())
    assert status["exempt1"] == "kept" and status["failed1"] == "rejected"
    assert con.execute("SELECT reason FROM chosen WHERE id = 'failed1'").fetchone()[0] == "alignment_unscored"
    column = {"global": "1", "source": "source", "modality": "modality"}[scope]
    per_scope = con.execute(f"SELECT {column}, count(*) FILTER (status = 'kept'), count(*) FROM chosen "
                            "WHERE align_final IS NOT NULL GROUP BY ALL").fetchall()
    assert all(kept == -(-n // 2) for _, kept, n in per_scope)
    low, high = con.execute("SELECT min(least(align_s, align_m)), max(greatest(align_s, align_m)) FROM chosen "
                            "WHERE align_final IS NOT NULL").fetchone()
    assert 0.0 <= low and high <= 1.0
    # every kept scored pair outranks every rejected one in its scope
    worst_kept = dict(con.execute(f"SELECT {column}, min(align_final) FROM chosen WHERE status = 'kept' "
                                  "AND align_final IS NOT NULL GROUP BY ALL").fetchall())
    best_cut = dict(con.execute(f"SELECT {column}, max(align_final) FROM chosen "
                                "WHERE reason = 'alignment_below_cut' GROUP BY ALL").fetchall())
    assert all(worst_kept[k] >= v for k, v in best_cut.items())


def test_lambda_weights_s_against_m():
    con = duckdb.connect()
    con.register("input", _rows())
    con.execute("CREATE TABLE chosen AS SELECT * FROM input")
    apply_cut(con, cpu_settings(lambda_s=0.5))
    for s, m, final in con.execute("SELECT align_s, align_m, align_final FROM chosen "
                                   "WHERE align_final IS NOT NULL").fetchall():
        assert final == pytest.approx(0.5 * s + m, abs=1e-6)


def test_text_policy_and_cache_hits(tmp_path):
    settings = cpu_settings()
    vqa = make_record(1, sub_task="medical_vqa", source="slake")
    interleaved = make_record(2, family="interleaved", sub_task="mri_t2w_to_t2f", source="brats")
    caption = make_record(3)
    prepare([vqa, interleaved, caption], settings, str(tmp_path))
    assert vqa.scores[TEXT].startswith("Describe the image.") and "Case 1." in vqa.scores[TEXT]
    assert caption.scores[TEXT] == "Frontal chest radiograph with clear lungs. Case 3."
    assert interleaved.scores["align_reason"] == "exempt" and TODO not in interleaved.scores
    for record, value in ((vqa, 0.2), (caption, 0.7)):
        record.scores.update({"align_s_raw": value, "align_m_logit": 1.0, "align_m_prob": 0.7,
                              CAPTIONS: ["c1", "c2"], "align_caption": "c1"})
    assert write_cache([vqa, interleaved, caption], settings, str(tmp_path)) == 2
    unfolded = [make_record(3)]
    prepare(unfolded, settings, str(tmp_path))
    assert unfolded[0].scores[TODO] is True  # lookups read the folded table only, never a scan of batch files
    assert compact_cache(str(tmp_path), scorer_digest(settings)) == 2  # what each scoring does first

    again = [make_record(3), make_record(4)]
    prepare(again, settings, str(tmp_path))
    assert again[0].scores[TODO] is False and again[0].scores["align_s_raw"] == pytest.approx(0.7)
    assert again[1].scores[TODO] is True
    other = cpu_settings()
    other.siglip.model = "some/other-siglip"  # different scorer: its own cache
    fresh = [make_record(3)]
    prepare(fresh, other, str(tmp_path))
    assert fresh[0].scores[TODO] is True and KEY in fresh[0].scores


def cached_batch(records_scores: list[tuple[int, float]], settings: AlignmentSettings) -> list[Record]:
    """Records as the model stages leave them: prepared, scored, ready for the cache write."""
    records = [make_record(index) for index, _ in records_scores]
    prepare(records, settings, None)
    for record, (_, value) in zip(records, records_scores):
        record.scores.update({"align_s_raw": value, "align_m_logit": value, "align_m_prob": 0.5,
                              CAPTIONS: ["c"], "align_caption": "c"})
    return records


def test_cache_compaction_first_score_wins_and_survives_a_crash(tmp_path):
    settings, cache = cpu_settings(), str(tmp_path)
    digest = scorer_digest(settings)
    folder = tmp_path / digest
    first = cached_batch([(1, 0.1), (2, 0.2)], settings)
    write_cache(first, settings, cache)
    assert compact_cache(cache, digest) == 2
    assert (folder / CACHE_INDEX).exists() and not list(folder.glob("*.parquet"))
    assert compact_cache(cache, digest) == 0  # nothing new: the table is left as it is

    # a later batch scores pair 2 again (say MedGemma batched differently) and adds pair 3
    write_cache(cached_batch([(2, 0.9), (3, 0.3)], settings), settings, cache)
    (later,) = folder.glob("*.parquet")
    kept_copy = later.read_bytes()
    (folder / f".{CACHE_INDEX}.tmp").write_bytes(b"half-written table of a crashed compaction")
    assert compact_cache(cache, digest) == 3
    keys = {index: record.scores[KEY] for index, record in zip((1, 2), first)}
    rows = {row["key"]: row for row in read_cache(cache, digest, [keys[1], keys[2], "0" * 32])}
    assert set(rows) == {keys[1], keys[2]}
    assert rows[keys[2]]["align_s_raw"] == pytest.approx(0.2)  # the first score stays: decisions never move

    # a crash after the rename but before the folded file was deleted: folding it again changes nothing
    later.write_bytes(kept_copy)
    con = duckdb.connect()
    relation = cache_relation(con, cache, digest)
    assert con.execute(f"SELECT count(*), count(DISTINCT key) FROM {relation}").fetchone() == (5, 3)
    con.close()
    assert compact_cache(cache, digest) == 3
    again = read_cache(cache, digest, [keys[2]])
    assert [row["align_s_raw"] for row in again] == [pytest.approx(0.2)]
    with pytest.raises(ValueError, match="hex"):
        read_cache(cache, digest, ["x' OR 1=1 --"])


def test_missing_model_says_how_to_provide_it(tmp_path):
    with pytest.raises(ModelNotAvailable, match="huggingface-cli download google/medsiglip-448"):
        resolve_model("google/medsiglip-448", str(tmp_path))


def test_recipe_alignment_section_and_digest():
    base = parse_recipe({"name": "x"})
    on = parse_recipe({"name": "x", "alignment": {"enabled": True, "keep_fraction": 0.5}})
    cut = parse_recipe({"name": "x", "alignment": {"enabled": True, "keep_fraction": 0.3, "lambda_s": 1.0}})
    k3 = parse_recipe({"name": "x", "alignment": {"enabled": True, "captioner": {"k": 3}}})
    assert base.processing_digest() != on.processing_digest()
    assert on.processing_digest() == cut.processing_digest()  # decisions never restage
    assert on.processing_digest() != k3.processing_digest()  # captions change: rescore
    with pytest.raises(ValueError, match="keep_scope"):
        parse_recipe({"name": "x", "alignment": {"keep_scope": "planet"}})


def test_build_scores_in_ray_then_rethreshold_without_models(ray_session, sample_root, demo_dir, tmp_path,
                                                             monkeypatch):
    from manifests.query import open_build
    from pipeline.engine.build import build
    from pipeline.rescore.rethreshold import rethreshold
    from tests.conftest import sample_recipe

    recipe = sample_recipe()
    recipe.alignment = cpu_settings(demo_dir)
    report = build(recipe, tmp_path, sample_root, only=["slake"], progress=False)
    assert report.exit_code == 0 and all(m["demo"] for m in report.alignment_models.values())
    con = open_build(report.out_dir)
    scored = con.execute("SELECT count(*) FROM records WHERE align_final IS NOT NULL").fetchone()[0]
    below = con.execute("SELECT count(*) FROM records WHERE reason = 'alignment_below_cut'").fetchone()[0]
    assert scored > 0 and below == scored - -(-scored // 2)
    assert con.execute("SELECT count(*) FROM kept WHERE align_final IS NULL "
                       "AND align_reason IS DISTINCT FROM 'exempt'").fetchone()[0] == 0
    assert con.execute("SELECT modality, avg(align_final) FROM kept GROUP BY ALL").fetchall()
    assert json.loads((report.out_dir / "stats.json").read_text())["alignment_demo_weights"] is True
    cache = report.out_dir / ".state" / "align_cache"
    cached_before = duckdb.sql(f"SELECT count(*) FROM '{cache}/*/*.parquet'").fetchall()[0][0]
    assert cached_before == scored

    # Rethresholding loads and calls no model: every model entry point raises if touched.
    from filters.alignment import biomedclip, captioner, e5, medsiglip

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded during rethreshold")

    for cls in (captioner.TransformersCaptioner, captioner.OpenAICaptioner, e5.E5Embedder, medsiglip.SiglipScorer,
                biomedclip.BiomedCLIPScorer):
        monkeypatch.setattr(cls, "__init__", forbidden)
    again = rethreshold(report.out_dir, keep_fraction=0.25, normalize="rank")
    kept_scored = open_build(report.out_dir).execute(
        "SELECT count(*) FROM kept WHERE align_final IS NOT NULL").fetchone()[0]
    assert kept_scored == -(-scored // 4) and again.result.alignment["scored"] == scored
    shard_keys = sum(1 for p in list_shards(report.out_dir) for _ in __import__("tarfile").open(p)
                     if _.name.endswith(".json"))
    assert shard_keys == again.result.kept


@pytest.mark.gpu
def test_medsiglip_bf16_on_gpu_matches_cpu(demo_dir):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from filters.alignment.medsiglip import SiglipScorer

    texts = ["a chest radiograph", "brain MRI"]
    cpu = SiglipScorer(resolve_model("google/medsiglip-448", str(demo_dir)), cpu_settings(demo_dir).siglip)
    gpu_settings = cpu_settings(demo_dir).siglip
    gpu_settings.resources.num_gpus = 1.0
    gpu = SiglipScorer(resolve_model("google/medsiglip-448", str(demo_dir)), gpu_settings)
    assert gpu.device == "cuda" and gpu.model.dtype == torch.bfloat16
    assert np.allclose(cpu.score(images(2), texts)[1], gpu.score(images(2), texts)[1], atol=2e-2)
