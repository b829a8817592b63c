"""Alignment scoring of whole builds on Ray: `unimed score` over an existing build's shards, a rebuild
with a new source served from the score cache, and GPU actor placement on logical GPU slots."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
import yaml

from filters.alignment.cache import CACHE_INDEX, cache_relation
from manifests.shards import list_shards, relative_shard
from pipeline.engine.ray_setup import ClusterTooSmall, check_fits
from pipeline.engine.plan import model_stages
from tests.conftest import REPO, sample_recipe
from tests.test_alignment import cpu_settings, demo_dir  # noqa: F401 - the module-scoped fixture

BMC = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"


def shard_hashes(build_dir: Path) -> dict[str, str]:
    return {relative_shard(build_dir, p): hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(build_dir)}


def column(build_dir: Path, name: str, where: str = "status = 'kept'") -> dict[str, object]:
    con = duckdb.connect()
    return dict(con.execute(f"SELECT id, {name} FROM '{build_dir}/manifest/*.parquet' WHERE {where}").fetchall())


def test_score_an_existing_build_from_its_shards(ray_session, sample_root, demo_dir, tmp_path):  # noqa: F811
    from manifests.query import open_build
    from pipeline.engine.build import build
    from pipeline.rescore.rethreshold import rethreshold
    from pipeline.rescore.score import score_build

    recipe = sample_recipe()
    recipe.alignment = cpu_settings(demo_dir)
    recipe.alignment.enabled = False  # built without --align: scored afterwards
    report = build(recipe, tmp_path, sample_root, only=["slake", "rocov2"], progress=False)
    out, kept = report.out_dir, report.result.kept
    before = shard_hashes(out)
    no_models = tmp_path / "no-models"
    no_models.mkdir()

    # (a) BiomedCLIP alone, into align_bmc: every kept pair, T2I ones scored on their output image
    first = score_build(out, only="biomedclip", models_dir=str(demo_dir))
    assert first.pairs == kept and first.scored == kept and first.cached == 0 and first.exempt == 0
    assert first.models["biomedclip"]["demo"] and set(first.models) == {"biomedclip"}
    bmc = column(out, "align_bmc")
    assert len(bmc) == kept and all(v is not None and -1.0 <= v <= 1.0 for v in bmc.values())
    families = dict(open_build(out).execute("SELECT task_family, count(align_bmc) FROM kept GROUP BY ALL").fetchall())
    assert families["t2i"] > 0 and families["i2t"] > 0
    # a second run is served from the cache: no shard is read and no weights are needed
    again = score_build(out, only="biomedclip", models_dir=str(no_models))
    assert (again.cached, again.scored, again.shards_read, again.models) == (kept, 0, 0, {})
    assert column(out, "align_bmc") == bmc
    assert shard_hashes(out) == before

    # (b) the full F_align raw scores; no cut yet, so nothing is rejected and no shard is rewritten
    full = score_build(out, only="alignment", models_dir=str(demo_dir), cut=False)
    assert full.pairs == kept and full.scored == kept and full.missing == 0
    assert full.finalized.result.kept == kept and full.finalized.result.shards_written == 0
    assert shard_hashes(out) == before
    con = open_build(out)
    assert con.execute("SELECT count(*) FROM kept WHERE align_s_raw IS NOT NULL AND align_m_logit IS NOT NULL "
                       "AND align_caption IS NOT NULL AND align_final IS NOT NULL").fetchone()[0] == kept
    assert column(out, "align_bmc") == bmc  # the earlier column survives re-finalisation (it is staged)
    raw = column(out, "align_m_logit")
    again = score_build(out, only="alignment", models_dir=str(no_models), cut=False)
    assert (again.cached, again.scored, again.shards_read) == (kept, 0, 0)
    assert column(out, "align_m_logit") == raw and shard_hashes(out) == before

    # the cut through rethreshold, from the scores `score` wrote, with no model
    cut = rethreshold(out, keep_fraction=0.5, unscored="reject")
    assert cut.result.alignment == {"unscored": 0, "below_cut": kept - -(-kept // 2), "scored": kept}
    assert cut.result.kept == -(-kept // 2)
    config = yaml.safe_load((out / "config.resolved.yaml").read_text())["alignment"]
    assert config["enabled"] is True and config["keep_fraction"] == 0.5


def _demo_models(out: Path, seed: int) -> Path:
    from filters.demo_models import NAMES, build_e5, build_medgemma, build_medsiglip

    for key, builder in (("medgemma", build_medgemma), ("e5", build_e5), ("medsiglip", build_medsiglip)):
        builder(out / NAMES[key], seed=seed)
    return out


def test_rebuild_with_a_new_source_never_rescores_old_records(ray_session, sample_root, demo_dir,  # noqa: F811
                                                              tmp_path):
    """The second build adds a source: its processing digest changes, every unit is read again, and
    the first source's pairs come from the cache. Its models are other random weights under the same
    ids, so a rescored pair would show other scores."""
    from pipeline.engine.build import build
    from pipeline.rescore.score import score_build

    def recipe(sources: list[str], models: Path):
        r = sample_recipe()
        r.sources = [s for s in r.sources if s.name in sources]
        r.alignment = cpu_settings(models)
        return r

    scored_rows = "align_m_logit IS NOT NULL"  # kept, or below the cut
    first = build(recipe(["slake"], demo_dir), tmp_path, sample_root, progress=False)
    out = first.out_dir
    scored, captions = column(out, "align_m_logit", scored_rows), column(out, "align_caption", scored_rows)
    assert scored and first.result.alignment["below_cut"] > 0
    cache = out / ".state" / "align_cache"
    cached_first = duckdb.sql(f"SELECT key FROM '{cache}/*/*.parquet'").fetchall()
    # keys computed from the manifest are the keys the build cached: nothing to score, no weights
    check = score_build(out, only="alignment", models_dir=str(tmp_path / "nowhere"))
    assert (check.cached, check.scored, check.models) == (first.result.kept, 0, {})

    other = _demo_models(tmp_path / "other-weights", seed=1)
    second = build(recipe(["slake", "rocov2"], other), tmp_path, sample_root, progress=False)
    assert second.units_run == second.units_total  # new digest: every unit was read again
    logits = column(out, "align_m_logit", scored_rows)
    assert {k: v for k, v in logits.items() if k.startswith("slake")} == scored  # from the cache
    assert {k: v for k, v in column(out, "align_caption", scored_rows).items() if k.startswith("slake")} == captions
    assert any(k.startswith("rocov2") for k in logits)  # the new source was scored, by the other weights
    keys = [key for (key,) in cached_first]
    (digest,) = [folder.name for folder in cache.iterdir()]  # same model ids: the same scorer digest
    assert (cache / digest / CACHE_INDEX).exists()  # the second scoring folded the first build's files
    con = duckdb.connect()
    # the table and any batch files not yet folded, without dedup: a pair scored again would show twice
    again = con.execute(f"SELECT count(*) FROM {cache_relation(con, cache, digest)} WHERE key IN ?",
                        [keys]).fetchone()[0]
    con.close()
    assert again == len(cached_first)  # no pair of the first build was scored (and cached) again


def test_gpu_stages_that_do_not_fit_fail_before_running(demo_dir):  # noqa: F811
    settings = cpu_settings(demo_dir)
    for section, gpus in ((settings.captioner, 1.0), (settings.embedder, 0.25), (settings.siglip, 0.5)):
        section.resources.num_gpus = gpus
    stages = model_stages(settings)
    with pytest.raises(ClusterTooSmall, match="need 1.75 GPUs"):  # oversubscribed on a one-GPU machine
        check_fits(stages, {"GPU": 1.0, "CPU": 16.0})
    check_fits(stages, {"GPU": 2.0, "CPU": 16.0})
    check_fits(stages, {"CPU": 2.0})  # no GPUs: the stages run on CPU
    with pytest.raises(ClusterTooSmall, match="readers"):
        check_fits(stages, {"GPU": 2.0, "CPU": 3.0})


def test_the_stage1_recipe_defaults_fit_one_gpu():
    from pipeline.config import load_recipe

    settings = load_recipe("stage1").alignment
    check_fits(model_stages(settings), {"GPU": 1.0, "CPU": 16.0})


GPU_SCRIPT = """
import json, os, pickle, sys
from pathlib import Path
import ray, ray.data
from filters.alignment.cache import prepare
from pipeline.engine import plan
from pipeline.engine.ray_setup import map_stages
from pipeline.stages.base import Stage
from tests.test_alignment import cpu_settings, make_record

demo = Path(sys.argv[1])
ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
         runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})


class Placed(Stage):
    # What each actor saw of its placement, recorded on the records it processed.
    def __init__(self, inner):
        self.inner = inner
        self.name, self.batch_size = inner.name, inner.batch_size
        self.num_gpus, self.num_cpus = inner.num_gpus, inner.num_cpus

    def pool_size(self):
        return self.inner.pool_size()

    def setup(self):
        self.inner.setup()

    def process_batch(self, records):
        self.inner.process_batch(records)
        seen = {"gpu_ids": [str(g) for g in ray.get_gpu_ids()], "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "pid": os.getpid()}
        for record in records:
            record.scores.setdefault("_placed", {})[self.name] = seen


real_stages = plan.model_stages
plan.model_stages = lambda settings, only=None: [Placed(s) for s in real_stages(settings, only)]

settings = cpu_settings(demo)
for section, gpus, actors in ((settings.captioner, 0.5, 2), (settings.embedder, 0.5, 1), (settings.siglip, 0.5, 1)):
    # two captioner actors on one GPU, E5 and MedSigLIP sharing the other (the slow stage gets the actors)
    section.resources.num_gpus, section.resources.num_cpus = gpus, 0.1
    section.resources.actors, section.resources.batch_size = actors, 1
records = [make_record(i) for i in range(4)]
rows = [{"id": r.id, "unit_id": "u", "kind": "record", "blob": pickle.dumps(r)} for r in records]
ds = map_stages(ray.data.from_items(rows), plan.alignment_stages(settings, None), retries=0)
placed = {}
for row in ds.take_all():
    record = pickle.loads(row["blob"])
    placed[record.id] = {k: record.scores.get(k) for k in ("_placed", "align_s_raw", "align_m_logit", "align_caption")}

# the same records on CPU, in this process, one per batch as above (the caption seed is per batch)
plan.model_stages = real_stages
cpu = cpu_settings(demo)
stages = plan.model_stages(cpu)
reference = {}
for record in [make_record(i) for i in range(4)]:
    prepare([record], cpu, None)
    for stage in stages:
        stage.process_batch([record])
    reference[record.id] = {k: record.scores.get(k) for k in ("align_s_raw", "align_m_logit", "align_caption")}
print("RESULT " + json.dumps({"ray": placed, "cpu": reference, "gpus": ray.cluster_resources().get("GPU")}))
"""


def test_gpu_actors_are_placed_on_gpu_slots_and_score_as_on_cpu(demo_dir, tmp_path):  # noqa: F811
    """A Ray of its own (this session's has no GPUs) with two logical GPUs: the model actors ask for
    GPUs, get them (Ray sets their GPU ids and CUDA_VISIBLE_DEVICES), and score as a CPU run does
    (there is no CUDA device here, so the models run on CPU inside GPU-placed actors)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update({"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"})
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(GPU_SCRIPT), str(demo_dir)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["gpus"] == 2.0 and set(result["ray"]) == set(result["cpu"])
    pids: dict[str, set] = {}
    for record_id, got in result["ray"].items():
        assert set(got["_placed"]) == {"medgemma_captions", "e5_similarity", "medsiglip_score"}
        for stage, seen in got["_placed"].items():
            assert seen["gpu_ids"] and seen["cuda"] is not None, (stage, seen)
            pids.setdefault(stage, set()).add(seen["pid"])
        want = result["cpu"][record_id]
        assert got["align_caption"] == want["align_caption"]
        assert got["align_s_raw"] == pytest.approx(want["align_s_raw"], abs=1e-5)
        assert got["align_m_logit"] == pytest.approx(want["align_m_logit"], abs=1e-5)
    assert len(pids["medgemma_captions"]) <= 2 and len(pids["e5_similarity"]) == len(pids["medsiglip_score"]) == 1
