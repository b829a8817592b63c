"""The expert audit: sampling, the rating server's API over loopback, agreement, Label Studio JSON."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from fractions import Fraction

import pytest

from pipeline.audit import DIMENSIONS, AuditError
from pipeline.audit.agreement import write_report
from pipeline.audit.labelstudio import export_tasks, import_annotations
from pipeline.audit.sample import quotas, read_sample, write_sample
from pipeline.audit.server import AuditServer
from pipeline.audit.store import AnswerStore
from pipeline.cli import main
from tests.audit_support import write_build


@pytest.fixture()
def build(tmp_path):
    return write_build(tmp_path)


def test_quotas_largest_remainder():
    assert quotas({"a": 60, "b": 30, "c": 10}, 20) == {"a": 12, "b": 6, "c": 2}
    assert quotas({"a": 2, "b": 1}, 2) == {"a": 1, "b": 1}  # 1.33 + .67: the larger remainder takes the seat
    assert sum(quotas({"a": 7, "b": 5, "c": 1}, 10).values()) == 10


def test_sample_is_stratified_reproducible_and_covers_every_family(build):
    write_sample(build, n=20, seed=7)
    first = read_sample(build)
    by_modality = {}
    for row in first:
        by_modality[row["modality"]] = by_modality.get(row["modality"], 0) + 1
    assert by_modality == {"chest_xray": 12, "ct": 6, "mri": 2}  # 60/30/10 of the kept samples
    # the one interleaved sample is pulled in, in its own modality, without breaking the quotas
    assert {row["task_family"] for row in first} == {"i2t", "t2i", "interleaved"}
    assert [row["item"] for row in first] == list(range(20))
    assert len({row["id"] for row in first}) == 20
    write_sample(build, n=20, seed=7)
    assert [r["id"] for r in read_sample(build)] == [r["id"] for r in first]
    write_sample(build, n=20, seed=8)
    assert [r["id"] for r in read_sample(build)] != [r["id"] for r in first]


def test_sample_refuses_to_redraw_over_answers(build):
    write_sample(build, n=5, seed=0)
    AnswerStore(build).add("alice", 0, "modality_match", 1)
    with pytest.raises(AuditError, match="--force"):
        write_sample(build, n=5, seed=1)
    write_sample(build, n=5, seed=1, force=True)


def _start(build):
    server = AuditServer(build, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _stop(server):
    server.shutdown()
    server.server_close()


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def _post(base, payload):
    request = urllib.request.Request(f"{base}/api/answer", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_server_round_trip_restart_isolation_and_refusals(build):
    write_sample(build, n=10, seed=1)
    server, base = _start(build)
    try:
        status, page = _get(base + "/")
        assert status == 200 and b"unimed audit" in page
        assert json.loads(_get(base + "/api/meta")[1])["total"] == 10
        assert _post(base, {"rater": "alice", "item": 0, "dimension": "modality_match", "score": 1})[0] == 200
        assert _post(base, {"rater": "alice", "item": 0, "dimension": "factual_accuracy", "score": 4})[0] == 200
        assert _post(base, {"rater": "bob", "item": 0, "dimension": "factual_accuracy", "score": 2})[0] == 200
        code, body = _post(base, {"rater": "alice", "item": 0, "dimension": "factual_accuracy", "score": 6})
        assert code == 422 and "0 to 5" in body["error"]
        code, body = _post(base, {"rater": "alice", "item": 0, "dimension": "modality_match", "score": 2})
        assert code == 422 and "0 to 1" in body["error"]
        code, body = _post(base, {"rater": "alice", "item": 99, "dimension": "modality_match", "score": 1})
        assert code == 422 and "item" in body["error"]
        code, body = _post(base, {"rater": "", "item": 0, "dimension": "modality_match", "score": 1})
        assert code == 422 and "rater name" in body["error"]
        item = json.loads(_get(base + "/api/item/0?rater=alice")[1])
        image = item["images"][0]
        status, data = _get(base + image["url"])
        assert status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        _stop(server)
    # a fresh server (as after a kill) reads everything acknowledged; each rater sees only their own
    server, base = _start(build)
    try:
        alice = json.loads(_get(base + "/api/item/0?rater=alice")[1])
        bob = json.loads(_get(base + "/api/item/0?rater=bob")[1])
        assert alice["scores"] == {"modality_match": 1, "factual_accuracy": 4}
        assert bob["scores"] == {"factual_accuracy": 2}
        assert json.loads(_get(base + "/api/item/1?rater=alice")[1])["scores"] == {}
        progress = json.loads(_get(base + "/api/progress?rater=alice")[1])
        assert progress["complete"] == 0 and progress["scores"] == 2 and progress["first_incomplete"] == 0
        for d in DIMENSIONS[2:]:
            assert _post(base, {"rater": "alice", "item": 0, "dimension": d.name, "score": 1})[0] == 200
        progress = json.loads(_get(base + "/api/progress?rater=alice")[1])
        assert progress["complete"] == 1 and progress["first_incomplete"] == 1
        try:
            _get(base + "/img/0/../../stats.json")
            raise AssertionError("a path outside the item's images was served")
        except urllib.error.HTTPError as err:
            assert err.code == 404
    finally:
        _stop(server)


def test_a_torn_last_line_is_skipped(build):
    store = AnswerStore(build)
    store.add("alice", 0, "professionalism", 3)
    with open(store.path, "a") as handle:
        handle.write('{"rater": "alice", "item": 1, "dim')
    assert store.latest() == {("alice", 0, "professionalism"): 3}


def _rate(build, table):
    store = AnswerStore(build)
    for rater, dimension, scores in table:
        for item, score in enumerate(scores):
            if score is not None:
                store.add(rater, item, dimension, score)


def test_agreement_and_quality_match_a_hand_computation(build):
    write_sample(build, n=4, seed=0)
    _rate(build, [("alice", "modality_match", [1, 1, 0, 1]), ("bob", "modality_match", [1, 0, 0, 1]),
                  ("alice", "factual_accuracy", [1, 2, 3, None]), ("bob", "factual_accuracy", [1, 2, 2, None])])
    summary = write_report(build)
    agree = {row["dimension"]: row for row in summary["agreement"]}
    # Fleiss, modality match: items (0,2) (1,1) (2,0) (0,2) over categories {0,1}; P_i = 1, 0, 1, 1 so
    # P = 3/4; p0 = 3/8, p1 = 5/8, Pe = 9/64 + 25/64 = 17/32; kappa = (3/4 - 17/32) / (1 - 17/32) = 7/15
    assert agree["modality_match"]["fleiss_kappa"] == pytest.approx(float(Fraction(7, 15)))
    # Fleiss, factual accuracy: items (1,1) (2,2) (3,2): P = 2/3; p1 = 2/6, p2 = 3/6, p3 = 1/6,
    # Pe = 14/36; kappa = (2/3 - 7/18) / (11/18) = 5/11
    assert agree["factual_accuracy"]["fleiss_kappa"] == pytest.approx(float(Fraction(5, 11)))
    # Krippendorff ordinal, factual accuracy: n1 = 2, n2 = 3, n3 = 1 (n = 6); the only disagreeing pair is
    # (3, 2) in item 2: D_o = 2 * d23 / 6 with d23 = ((3 + 1) / 2)^2 = 4, so 4/3; d12 = (5/2)^2, d13 = (9/2)^2,
    # D_e = 2 (2*3*25/4 + 2*1*81/4 + 3*1*4) / (6*5) = 6; alpha = 1 - (4/3) / 6 = 7/9
    assert agree["factual_accuracy"]["krippendorff_alpha"] == pytest.approx(float(Fraction(7, 9)))
    assert agree["factual_accuracy"]["items_all_raters"] == 3
    assert agree["professionalism"]["raters"] == 0
    quality = {(q["dimension"], q["modality"]): q for q in summary["quality"]}
    assert quality[("modality_match", "all")]["Q"] == pytest.approx(5 / 8)
    assert quality[("factual_accuracy", "all")]["mean"] == pytest.approx(11 / 6)
    assert quality[("factual_accuracy", "all")]["Q"] == pytest.approx(11 / 30)
    assert summary["Q"] == pytest.approx((5 + 11 / 5) / 14)  # 8 MM scores and 6 FA scores normalised, 14 in all
    for name in ("scores", "quality", "agreement"):
        assert (build / "audit" / "report" / f"{name}.csv").stat().st_size > 0
        assert (build / "audit" / "report" / f"{name}.parquet").stat().st_size > 0


def test_label_studio_export_then_import_gives_the_same_answers(build, tmp_path):
    write_sample(build, n=6, seed=2)
    _rate(build, [("alice", "clinical_reasoning", [5, 4, 3, 2, 1, 0]), ("bob", "modality_match", [1, 0, 1, 0, 1, 1])])
    counts = export_tasks(build, tmp_path / "ls")
    assert counts == {"tasks": 6, "annotations": 12}
    assert 'max="5"' in (tmp_path / "ls" / "label_config.xml").read_text()
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    tasks[0]["annotations"][0]["result"].append({"from_name": "factual_accuracy", "to_name": "dialogue",
                                                 "type": "number", "value": {"number": 9}})  # out of scale
    (tmp_path / "ls" / "tasks.json").write_text(json.dumps(tasks))
    before = AnswerStore(build).latest()
    AnswerStore(build).path.unlink()
    assert import_annotations(build, tmp_path / "ls" / "tasks.json") == {"saved": 12, "skipped": 1}
    assert AnswerStore(build).latest() == before


def test_cli_errors_are_one_line(build, capsys):
    assert main(["audit", "serve", str(build), "--port", "0"]) == 1
    assert "unimed audit sample" in capsys.readouterr().err
    assert main(["audit", "report", str(build.parent / "nowhere")]) == 1
    assert main(["audit", "sample", str(build), "--n", "5", "--seed", "1"]) == 0
    assert main(["audit", "report", str(build)]) == 1
    assert "no answers yet" in capsys.readouterr().err


def in_memory_draw(rows: list[dict], n: int, seed: int) -> list[dict]:
    """The draw's definition over a Python list of every kept row: the reference the DuckDB draw matches."""
    import hashlib

    import numpy as np

    def rank(salt: str, row: dict) -> str:
        return hashlib.md5(f"{seed}:{salt}{row['id']}".encode()).hexdigest()

    rng = np.random.default_rng(seed)
    by_modality: dict[str, list[dict]] = {}
    for row in rows:
        by_modality.setdefault(row["modality"] or "unknown", []).append(row)
    want = quotas({m: len(v) for m, v in by_modality.items()}, min(n, len(rows)))
    chosen = {m: sorted(by_modality[m], key=lambda r: rank("", r))[:want[m]] for m in sorted(by_modality)}
    families = sorted({r["task_family"] for r in rows})
    for family in families:
        flat = [r for v in chosen.values() for r in v]
        if any(r["task_family"] == family for r in flat):
            continue
        family_counts = {f: sum(r["task_family"] == f for r in flat) for f in families}
        for newcomer in sorted((r for r in rows if r["task_family"] == family), key=lambda r: rank("swap:", r)):
            modality = newcomer["modality"] or "unknown"
            givers = [i for i, r in enumerate(chosen.get(modality, [])) if family_counts[r["task_family"]] > 1]
            if givers:
                chosen[modality][givers[int(rng.integers(len(givers)))]] = newcomer
                break
    items = sorted((r for v in chosen.values() for r in v), key=lambda r: r["id"])
    return [items[i] for i in rng.permutation(len(items))]


def kept_rows(build) -> list[dict]:
    from manifests.query import open_build
    from pipeline.audit.sample import COLUMNS

    rows = open_build(build).execute(f"SELECT {', '.join(COLUMNS)} FROM kept WHERE shard IS NOT NULL").fetchall()
    return [dict(zip(COLUMNS, values)) for values in rows]


@pytest.mark.parametrize("n, seed", [(20, 7), (5, 0), (3, 11), (200, 1)])
def test_the_duckdb_draw_is_the_in_memory_draw(build, n, seed):
    from manifests.query import open_build
    from pipeline.audit.sample import draw

    assert draw(open_build(build), n, seed) == in_memory_draw(kept_rows(build), n, seed)


def test_sample_fetches_only_its_items_from_a_large_manifest(tmp_path, monkeypatch):
    """20,000 generated rows (10 modalities, 4 families): the draw equals its definition, and the rows that
    reach Python are counts, the top ids per modality and the n items, not the manifest."""
    import pipeline.audit.sample as sample
    from manifests.query import open_build
    from pipeline.bench.manifest import write_manifest
    from tests.support import CountingConnection

    build = write_manifest(20_000, tmp_path / "big")
    fetched: list[int] = []
    monkeypatch.setattr(sample, "open_build", lambda *a, **k: CountingConnection(open_build(*a, **k), fetched))
    write_sample(build, n=50, seed=3)
    items = read_sample(build)
    assert [r["id"] for r in items] == [r["id"] for r in in_memory_draw(kept_rows(build), 50, 3)]
    assert len({r["modality"] for r in items}) == 10 and len({r["task_family"] for r in items}) == 4
    assert sum(fetched) <= 50 + 3 * 10 + 4, fetched  # the items; per modality a count and the top ids; families
