"""The expert audit: sampling, invitations, the rating server's API over loopback (tokens, one rater per
token, the image route, five raters across a SIGKILL), agreement, Label Studio JSON."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import threading
import time
from collections import Counter
from fractions import Fraction
from urllib.parse import quote

import numpy as np
import pytest

from pipeline.audit import DIMENSIONS, AuditError
from pipeline.audit.agreement import write_report
from pipeline.audit.invitations import Invitations, invite, link, revoke, token_hash
from pipeline.audit.labelstudio import export_tasks, import_annotations
from pipeline.audit.sample import quotas, read_sample, write_sample
from pipeline.audit.server import AuditServer, is_loopback
from pipeline.audit.store import AnswerStore
from pipeline.cli import main
from tests.audit_support import alpha_by_hand, call, fleiss_by_hand, free_port, serve_process, write_build


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


def _start(build, host="127.0.0.1"):
    server = AuditServer(build, host, 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, server.server_address[1]


def _stop(server):
    server.shutdown()
    server.server_close()


def _json(response):
    status, _, body = response
    return status, json.loads(body)


def test_invitations_store_only_a_hash_rotate_and_revoke(build, tmp_path):
    first = invite(build, "alice")
    bob = invite(build, " bob ")
    stored = (build / "audit" / "raters.json").read_text()
    assert first not in stored and bob not in stored and token_hash(first) in stored
    assert (build / "audit" / "raters.json").stat().st_mode & 0o777 == 0o600
    current = Invitations(build)
    assert current.rater_for(first) == "alice" and current.rater_for(bob) == "bob"
    assert current.rater_for(first[:-1]) is None and current.rater_for("") is None and current.rater_for(None) is None
    second = invite(build, "alice")  # rotated: the old link stops working, seen without a restart
    assert second != first and current.rater_for(first) is None and current.rater_for(second) == "alice"
    assert revoke(build, "alice") == ["bob"]
    assert current.rater_for(second) is None and current.names() == ["bob"]
    with pytest.raises(AuditError, match="not invited"):
        revoke(build, "alice")
    with pytest.raises(AuditError, match="rater name"):
        invite(build, "../x")
    with pytest.raises(AuditError, match="not a build directory"):
        invite(tmp_path / "nowhere", "alice")
    assert link("T0K", "audit.lan", 9000) == "http://audit.lan:9000/#token=T0K"
    assert link("T0K", "::1", 9000) == "http://[::1]:9000/#token=T0K"
    assert link("T0K", url="https://audit.example.org") == "https://audit.example.org/#token=T0K"


def test_cli_invite_prints_the_link_last_and_revokes(build, capsys):
    assert main(["audit", "invite", str(build), "--rater", "alice", "--host", "audit.lan", "--port", "9000"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("http://audit.lan:9000/#token=")
    token = out[-1].split("token=", 1)[1]
    assert Invitations(build).rater_for(token) == "alice"
    assert main(["audit", "invite", str(build), "--list"]) == 0
    assert capsys.readouterr().out.split() == ["alice"]
    assert main(["audit", "invite", str(build), "--revoke", "alice"]) == 0
    assert "revoked alice" in capsys.readouterr().err
    assert Invitations(build).rater_for(token) is None
    assert main(["audit", "invite", str(build), "--revoke", "alice"]) == 1
    err = capsys.readouterr().err
    assert "not invited" in err and len(err.strip().splitlines()) == 1


ROUTES = (("GET", "/api/session"), ("POST", "/api/session"), ("POST", "/api/signout"), ("GET", "/api/meta"),
          ("GET", "/api/item/0"), ("GET", "/api/progress"), ("POST", "/api/answer"), ("GET", "/img/0/in0.png"),
          ("GET", "/img/0/out0.png"), ("GET", "/img/0/../../stats.json"), ("GET", "/nowhere"), ("GET", "/favicon.ico"))


def test_every_route_but_the_page_needs_a_valid_token(build):
    write_sample(build, n=4, seed=1)
    good = invite(build, "alice")
    revoked = invite(build, "mallory")
    revoke(build, "mallory")
    answer = {"item": 0, "dimension": "modality_match", "score": 1}
    server, port = _start(build)
    try:
        assert call(port, "GET", "/")[0] == 200  # the sign-in page, static, holds nothing of the audit
        for method, path in ROUTES:
            body = answer if method == "POST" else None
            for credentials in ({}, {"token": "wrong"}, {"token": good[:-2]}, {"cookie": "wrong"},
                                {"token": revoked}, {"cookie": revoked}, {"token": good * 20},
                                {"headers": {"Authorization": f"Basic {good}"}}):
                status, headers, reply = call(port, method, path, body=body, **credentials)
                assert status == 401, (method, path, credentials, status)
                assert headers["WWW-Authenticate"].startswith("Bearer")
                assert b"PNG" not in reply and b"kept" not in reply and b"modality" not in reply
        assert _json(call(port, "GET", "/api/session", token=good)) == (200, {"rater": "alice"})
    finally:
        _stop(server)
    assert AnswerStore(build).count() == 0  # nothing refused was written


def test_sign_in_sets_an_httponly_samesite_strict_cookie(build):
    write_sample(build, n=4, seed=1)
    token = invite(build, "alice")
    server, port = _start(build)
    try:
        status, headers, _ = call(port, "POST", "/api/session", token=token, body={})
        cookie = headers["Set-Cookie"]
        assert status == 200 and cookie.startswith(f"unimed_audit={token};")
        assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {part.strip() for part in cookie.split(";")}
        assert "Secure" not in cookie
        assert _json(call(port, "GET", "/api/meta", cookie=token))[1]["rater"] == "alice"
        others = {"Cookie": f'theme="dark, wide"; x={{"a": 1}}; unimed_audit={token}; y=1'}  # other apps' cookies
        assert call(port, "GET", "/api/meta", headers=others)[0] == 200
        status, _, _ = call(port, "POST", "/api/answer", token=token, body={"pad": "x" * 20_000})
        assert status == 413
        behind_tls = call(port, "POST", "/api/session", token=token, body={}, headers={"X-Forwarded-Proto": "https"})
        assert "; Secure" in behind_tls[1]["Set-Cookie"]
        assert "Max-Age=0" in call(port, "POST", "/api/signout", cookie=token, body={})[1]["Set-Cookie"]
        # a POST must be JSON: a cross-site form cannot send that
        status, _, _ = call(port, "POST", "/api/answer", cookie=token, headers={"Content-Type": "text/plain"})
        assert status == 415
        invite(build, "alice")  # rotated while signed in: the cookie's token no longer works
        assert call(port, "GET", "/api/meta", cookie=token)[0] == 401
    finally:
        _stop(server)


def test_a_rater_reads_and_writes_only_as_themselves_across_a_restart(build):
    write_sample(build, n=10, seed=1)
    alice, bob = invite(build, "alice"), invite(build, "bob")
    server, port = _start(build)
    try:
        mm = {"item": 0, "dimension": "modality_match", "score": 1}
        for who in ("bob", "Alice", "alice "):
            status, reply = _json(call(port, "POST", "/api/answer", token=alice, body={**mm, "rater": who}))
            assert status == 403 and "cannot read or write as" in reply["error"]
        for path in ("/api/item/0?rater=bob", "/api/progress?rater=bob", "/api/meta?rater=bob",
                     "/api/item/0?rater=alice&rater=bob", "/img/0/in0.png?rater=bob"):
            assert call(port, "GET", path, token=alice)[0] == 403, path
        assert AnswerStore(build).count() == 0  # nothing written by a refused request
        assert _json(call(port, "POST", "/api/answer", token=alice, body=mm))[0] == 200
        fa = {"item": 0, "dimension": "factual_accuracy"}
        as_herself = {**fa, "score": 4, "rater": "alice"}  # naming oneself is fine
        assert _json(call(port, "POST", "/api/answer", token=alice, body=as_herself))[0] == 200
        assert _json(call(port, "POST", "/api/answer", cookie=bob, body={**fa, "score": 2}))[0] == 200
        for body, expected in (({**fa, "score": 6}, "0 to 5"), ({**mm, "score": 2}, "0 to 1"),
                               ({**mm, "item": 99}, "item"), ({**mm, "dimension": "x"}, "unknown dimension")):
            status, reply = _json(call(port, "POST", "/api/answer", token=alice, body=body))
            assert status == 422 and expected in reply["error"]
        item = _json(call(port, "GET", "/api/item/0", token=alice))[1]
        status, headers, data = call(port, "GET", item["images"][0]["url"], token=alice)
        assert status == 200 and headers["Content-Type"] == "image/png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        _stop(server)
    assert {(e["rater"], e["dimension"], e["score"]) for e in AnswerStore(build).entries()} == {
        ("alice", "modality_match", 1), ("alice", "factual_accuracy", 4), ("bob", "factual_accuracy", 2)}
    server, port = _start(build)  # a fresh server reads everything acknowledged; each rater sees their own
    try:
        assert _json(call(port, "GET", "/api/item/0", token=alice))[1]["scores"] == {
            "modality_match": 1, "factual_accuracy": 4}
        assert _json(call(port, "GET", "/api/item/0", token=bob))[1]["scores"] == {"factual_accuracy": 2}
        assert _json(call(port, "GET", "/api/item/1", token=alice))[1]["scores"] == {}
        progress = _json(call(port, "GET", "/api/progress", token=alice))[1]
        assert progress["rater"] == "alice" and progress["complete"] == 0 and progress["scores"] == 2
        for d in DIMENSIONS[2:]:
            body = {"item": 0, "dimension": d.name, "score": 1}
            assert call(port, "POST", "/api/answer", token=alice, body=body)[0] == 200
        progress = _json(call(port, "GET", "/api/progress", token=alice))[1]
        assert progress["complete"] == 1 and progress["first_incomplete"] == 1
        assert _json(call(port, "GET", "/api/progress", token=bob))[1]["complete"] == 0
    finally:
        _stop(server)


def test_the_image_route_serves_only_an_items_own_images(build):
    write_sample(build, n=10, seed=1)
    token = invite(build, "alice")
    items = read_sample(build)
    with_input = next(r["item"] for r in items if json.loads(r["sample"])["input_img"])
    shard = build / "shards" / items[0]["shard"]
    stats = (build / "stats.json").read_text()
    server, port = _start(build)
    try:
        assert call(port, "GET", f"/img/{with_input}/in0.png", token=token)[0] == 200
        refused = [f"/img/{with_input}/out0.png",  # a name the item does not have
                   f"/img/{with_input}/../../stats.json", f"/img/{with_input}/%2e%2e/%2e%2e/stats.json",
                   f"/img/{with_input}/%2e%2e%2f%2e%2e%2fstats.json", f"/img/{with_input}/..%2F..%2Fstats.json",
                   f"/img/{with_input}/%2E%2E", "/img/%2e%2e/in0.png", "/img/../stats.json",
                   f"/img/{with_input}//etc/passwd", f"/img/{with_input}/%2Fetc%2Fpasswd",
                   f"/img/{with_input}/{quote(str(shard), safe='')}", f"/img/{with_input}/{shard}",
                   f"/img/{with_input}/shards%2F{items[0]['shard']}", f"/img/{with_input}/in0.png/..",
                   "/img/-1/in0.png", "/img/999/in0.png", "/img/%D9%A1/in0.png", "/img/0x0/in0.png",
                   f"/img/{with_input}/in0.png%00", "/img/stats.json", "/img"]
        for path in refused:
            status, _, reply = call(port, "GET", path, token=token)
            assert status == 404, (path, status)
            assert b"PNG" not in reply and stats.encode() not in reply and b"root:" not in reply, path
    finally:
        _stop(server)


def test_another_address_is_refused_while_nobody_is_invited(build, capsys):
    write_sample(build, n=4, seed=1)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("::")
    with pytest.raises(AuditError, match="nobody is invited"):
        AuditServer(build, "0.0.0.0", 0)  # refused before any socket is opened
    assert main(["audit", "serve", str(build), "--host", "0.0.0.0", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "audit invite" in err and len(err.strip().splitlines()) == 1
    invite(build, "alice")
    # past the refusal: 192.0.2.1 (TEST-NET-1) is no address of this machine, so the bind itself fails
    with pytest.raises(OSError):
        AuditServer(build, "192.0.2.1", 0)


RATERS = ("ana", "ben", "chloe", "dev", "emma")


def _plan(n_items: int) -> dict[tuple[str, int, str], int]:
    """Five raters' scores: a true score per (item, dimension), each rater off by one now and then."""
    rng = np.random.default_rng(28)
    plan = {}
    for item in range(n_items):
        for d in DIMENSIONS:
            truth = int(rng.integers(d.low, d.high + 1))
            for rater in RATERS:
                off = int(rng.choice([-1, 0, 0, 0, 1]))
                plan[rater, item, d.name] = (1 - truth if off else truth) if d.high == 1 else \
                    min(d.high, max(d.low, truth + off))
    return plan


def test_five_raters_in_parallel_lose_nothing_acknowledged_to_a_sigkill(build):
    n_items = 6
    write_sample(build, n=n_items, seed=3)
    tokens = {rater: invite(build, rater) for rater in RATERS}
    plan = _plan(n_items)
    port = free_port()
    acknowledged: list[tuple[str, int, str, int]] = []
    failed: list[tuple[str, int, str, int]] = []
    lock = threading.Lock()
    restarted = threading.Event()

    def rate(rater: str) -> None:
        for item in range(n_items):
            for d in DIMENSIONS:
                answer = (rater, item, d.name, plan[rater, item, d.name])
                try:
                    status, _, _ = call(port, "POST", "/api/answer", token=tokens[rater], timeout=30,
                                        body={"item": item, "dimension": d.name, "score": answer[3]})
                    ok = status == 200
                except (OSError, http.client.HTTPException):  # refused, reset or cut off by the kill: not acknowledged
                    ok = False
                with lock:
                    (acknowledged if ok else failed).append(answer)
                if not ok:
                    assert restarted.wait(timeout=90), "the server was not restarted"

    server = serve_process(build, port)
    threads = [threading.Thread(target=rate, args=(rater,), daemon=True) for rater in RATERS]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 90
        while len(acknowledged) < len(plan) // 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.send_signal(signal.SIGKILL)  # mid-burst: five raters are posting
        server.wait(timeout=30)
        with lock:
            acked_before_kill = list(acknowledged)
        on_disk = Counter((e["rater"], e["item"], e["dimension"], e["score"]) for e in AnswerStore(build).entries())
        assert len(acked_before_kill) >= len(plan) // 3
        for answer in acked_before_kill:
            assert on_disk[answer] == 1, answer  # every acknowledged answer once, under its own rater
        assert set(on_disk) <= set(p + (s,) for p, s in plan.items())  # nothing under another rater
        server = serve_process(build, port)
        restarted.set()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
        assert {a[0] for a in failed} == set(RATERS)  # every rater was cut off mid-way by the kill
        for answer in failed:  # what was never acknowledged is given again
            assert call(port, "POST", "/api/answer", token=tokens[answer[0]],
                        body={"item": answer[1], "dimension": answer[2], "score": answer[3]})[0] == 200
        for rater in RATERS:  # through the restarted server, each rater sees exactly their own scores
            for item in range(n_items):
                scores = json.loads(call(port, "GET", f"/api/item/{item}", token=tokens[rater])[2])["scores"]
                assert scores == {d.name: plan[rater, item, d.name] for d in DIMENSIONS}
    finally:
        server.kill()
        server.wait(timeout=30)
    entries = Counter((e["rater"], e["item"], e["dimension"], e["score"]) for e in AnswerStore(build).entries())
    assert all(entries[a] == 1 for a in acknowledged)
    assert sum(entries.values()) <= len(plan) + len(failed)  # an unacknowledged answer at most once more
    assert AnswerStore(build).latest() == plan
    agree = {row["dimension"]: row for row in write_report(build)["agreement"]}
    for d in DIMENSIONS:
        ratings = [[plan[rater, item, d.name] for rater in RATERS] for item in range(n_items)]
        categories = list(range(d.low, d.high + 1))
        assert agree[d.name]["fleiss_kappa"] == pytest.approx(float(fleiss_by_hand(ratings, categories))), d.name
        level = "nominal" if d.high == 1 else "ordinal"
        assert agree[d.name]["krippendorff_alpha"] == pytest.approx(float(alpha_by_hand(ratings, level))), d.name


def test_a_torn_last_line_is_skipped_then_cut_before_the_next_answer(build):
    store = AnswerStore(build)
    store.add("alice", 0, "professionalism", 3)
    with open(store.path_for("alice"), "a") as handle:  # a write killed before its fsync, never acknowledged
        handle.write('{"rater": "alice", "item": 1, "dim')
    assert store.latest() == {("alice", 0, "professionalism"): 3}
    store.add("alice", 2, "professionalism", 4)
    assert store.latest() == {("alice", 0, "professionalism"): 3, ("alice", 2, "professionalism"): 4}
    assert store.path_for("alice").read_text().count("\n") == 2
    assert store.path_for("alice") != store.path_for("Alice")  # one log each, even on a case-blind disk
    assert store.path_for("alice").name.lower() != store.path_for("Alice").name.lower()


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
    shutil.rmtree(AnswerStore(build).root)
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
