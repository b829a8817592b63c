"""In a real browser (headless Chromium through selenium): two invited raters sign in through their links and
score by keyboard while the server is killed and restarted, then one is revoked; the report page renders its
plots. Marked `browser` (make test-browser); skipped when
chromium, chromedriver or selenium are absent (apt-get install chromium chromium-driver).

Set UNIMED_BROWSER_TIMING=FILE to have the rating test write its per-item keyboard times there (not asserted).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from pipeline.audit import DIMENSIONS
from pipeline.audit.agreement import write_report
from pipeline.audit.invitations import revoke
from pipeline.audit.sample import write_sample
from pipeline.audit.store import AnswerStore
from pipeline.cli import main
from pipeline.report.html import write_report as write_html_report
from tests.audit_support import alpha_by_hand, fleiss_by_hand, free_port, serve_process, write_build

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture()
def driver(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path / "chromium-profile"  # a new, empty profile: no cookie from an earlier run
    profile.mkdir()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def _wait(driver, condition: str, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if driver.execute_script(f"return Boolean({condition});"):
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _settled(driver) -> None:
    _wait(driver, "(document.body.dataset.pending || '0') === '0'", "the keys to be handled")


def _open(driver, address: str, name: str) -> None:
    """Opens an invitation link (or the page, signed in by the cookie) and waits for `name`'s first item."""
    driver.get(address)
    _wait(driver, f"document.body.dataset.rater === {json.dumps(name)} && document.body.dataset.item !== undefined",
          f"{name}'s first item")


def _invitation(build: Path, rater: str, port: int, capsys) -> str:
    assert main(["audit", "invite", str(build), "--rater", rater, "--port", str(port)]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]  # the link is printed last


def _keys(driver, keys: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.TAG_NAME, "body").send_keys(keys)
    _settled(driver)


def _item(driver) -> int:
    return int(driver.execute_script("return document.body.dataset.item;"))


def _shown_scores(driver) -> dict[str, str]:
    return driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('.dim')].map("
        "(r) => [r.dataset.dim, r.querySelector('.score').textContent]));")


def _message(driver) -> str:
    return driver.execute_script("return document.getElementById('message').textContent;")


# what each rater types per item, in dimension order (modality match first)
ALICE = ["1435243", "1544455", "0212101", "1333333", "1554545", "1223212"]
BOB = ["1434243", "0544355", "0212111", "1343333", "1555545", "1323222"]


def test_two_invited_raters_by_keyboard_across_a_server_kill(driver, tmp_path, capsys):
    from selenium.webdriver.common.by import By

    build = write_build(tmp_path)
    write_sample(build, n=len(ALICE), seed=0)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    alice_link, bob_link = (_invitation(build, rater, port, capsys) for rater in ("alice", "bob"))
    assert alice_link.startswith(base + "/#token=")
    server = serve_process(build, port)
    timings = []
    try:
        driver.get(base + "/")  # no link opened yet: the sign-in page, no item, the API closed
        _wait(driver, "!document.getElementById('login').classList.contains('hidden')", "the sign-in page")
        assert driver.execute_script("return document.body.dataset.item;") is None
        assert driver.execute_script("return fetch('/api/meta').then((r) => r.status);") == 401
        driver.get("about:blank")
        _open(driver, alice_link, "alice")  # a fresh load of the link (bob's below: opened over the page)
        assert driver.current_url == base + "/"  # the token left the address bar
        assert driver.execute_script("return document.cookie;") == ""  # HttpOnly: out of the page's reach
        cookie = driver.get_cookie("unimed_audit")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert _item(driver) == 0
        _keys(driver, "7")  # outside every scale: refused, nothing saved, still on Modality Match
        assert "outside the scale" in _message(driver)
        _keys(driver, "2")  # 0/1 only
        assert "Modality Match is scored 0 to 1" in _message(driver)
        for index in range(3):
            started = time.perf_counter()
            _keys(driver, ALICE[index])
            _wait(driver, f"document.body.dataset.item === '{index + 1}'", "the next item")
            timings.append(time.perf_counter() - started)
        server.kill()  # SIGKILL right after the last acknowledged answer
        server.wait(timeout=30)
        server = serve_process(build, port)
        _open(driver, base + "/", "alice")  # the cookie signs her in again, no link needed
        assert _item(driver) == 3  # resumes at the first unfinished item
        _keys(driver, "p")  # go back: the answers given before the kill are there
        assert _item(driver) == 2
        assert "".join(_shown_scores(driver)[d.name] for d in DIMENSIONS) == ALICE[2]
        _keys(driver, "n")
        for index in range(3, len(ALICE)):
            started = time.perf_counter()
            _keys(driver, ALICE[index])
            timings.append(time.perf_counter() - started)
        assert "all items done" in _message(driver)
        _open(driver, bob_link, "bob")  # the same browser, bob's link: now bob
        assert _item(driver) == 0
        assert set(_shown_scores(driver).values()) == {"·"}  # bob sees none of alice's answers
        for index in range(len(BOB)):
            _keys(driver, BOB[index])
        revoke(build, "bob")  # the running server sees it on bob's next request
        _keys(driver, "p")
        _wait(driver, "!document.getElementById('login').classList.contains('hidden')", "bob to be signed out")
        assert driver.find_element(By.ID, "work").get_attribute("class") == "hidden"
    finally:
        server.kill()
        server.wait(timeout=30)
    expected = {(rater, item, d.name): int(scores[item][j]) for rater, table in (("alice", ALICE), ("bob", BOB))
                for item in range(len(table)) for j, d in enumerate(DIMENSIONS) for scores in [table]}
    assert AnswerStore(build).latest() == expected  # nothing lost, nothing out of scale stored
    summary = write_report(build)
    agree = {row["dimension"]: row for row in summary["agreement"]}
    for j, d in enumerate(DIMENSIONS):
        pairs = [[int(ALICE[i][j]), int(BOB[i][j])] for i in range(len(ALICE))]
        kappa = fleiss_by_hand(pairs, list(range(d.low, d.high + 1)))
        assert agree[d.name]["fleiss_kappa"] == pytest.approx(float(kappa)), d.name
        alpha = alpha_by_hand(pairs, "nominal" if d.high == 1 else "ordinal")
        assert agree[d.name]["krippendorff_alpha"] == pytest.approx(float(alpha)), d.name
    if os.environ.get("UNIMED_BROWSER_TIMING"):
        Path(os.environ["UNIMED_BROWSER_TIMING"]).write_text(json.dumps(
            {"what": "seconds from the first of 7 digit keys to the next item shown (browser, HTTP, fsync); "
                     "no human reading time", "per_item": timings}))


def test_report_page_renders_its_plots(driver, tmp_path):
    build = write_build(tmp_path)
    index = write_html_report(build, tmp_path / "report", per_gallery=4)
    driver.get(index.resolve().as_uri())
    _wait(driver, "[...document.images].every((im) => im.complete)", "the images to load")
    sizes = driver.execute_script("return [...document.querySelectorAll('img.plot')].map("
                                  "(im) => [im.getAttribute('src'), im.naturalWidth, im.naturalHeight]);")
    assert len(sizes) >= 7
    assert all(w > 50 and h > 50 for _, w, h in sizes), sizes
    shot = tmp_path / "report.png"
    assert driver.save_screenshot(str(shot))
    from PIL import Image as PILImage

    with PILImage.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50  # text, bars and histograms, not a blank page
