"""In a real browser (headless Chromium through selenium): two raters score by keyboard while the server is
killed and restarted; the report page renders its plots. Marked `browser` (make test-browser); skipped when
chromium, chromedriver or selenium are absent (apt-get install chromium chromium-driver).

Set UNIMED_BROWSER_TIMING=FILE to have the rating test write its per-item keyboard times there (not asserted).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.audit import DIMENSIONS
from pipeline.audit.agreement import write_report
from pipeline.audit.sample import write_sample
from pipeline.audit.store import AnswerStore
from pipeline.report.html import write_report as write_html_report
from tests.audit_support import write_build

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture()
def driver():
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(build: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "audit", "serve", str(build), "--port", str(port),
                             "--max-idle", "120"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):  # at most 60 s
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/meta", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode()) from None
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("audit serve did not come up in 60 s")


def _wait(driver, condition: str, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if driver.execute_script(f"return Boolean({condition});"):
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _settled(driver) -> None:
    _wait(driver, "(document.body.dataset.pending || '0') === '0'", "the keys to be handled")


def _login(driver, base: str, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(base + "/")
    field = driver.find_element(By.ID, "name")
    field.send_keys(name, Keys.ENTER)
    _wait(driver, "document.body.dataset.item !== undefined", f"{name}'s first item")


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


def _fleiss_by_hand(pairs: list[tuple[int, int]], categories: int) -> float:
    """Textbook Fleiss' kappa for two raters: mean per-item agreement against chance from pooled proportions."""
    n = 2
    counts = [[sum(v == c for v in pair) for c in range(categories)] for pair in pairs]
    p_items = [(sum(x * x for x in row) - n) / (n * (n - 1)) for row in counts]
    p_bar = sum(p_items) / len(pairs)
    p_cat = [sum(row[c] for row in counts) / (n * len(pairs)) for c in range(categories)]
    p_e = sum(p * p for p in p_cat)
    return (p_bar - p_e) / (1 - p_e)


def _alpha_ordinal_by_hand(pairs: list[tuple[int, int]]) -> float:
    """Krippendorff's ordinal alpha for two raters, no gaps: coincidences and the rank-based distance."""
    values = [v for pair in pairs for v in pair]
    total = len(values)
    n = {c: values.count(c) for c in set(values)}

    def delta(c: int, k: int) -> float:
        low, high = min(c, k), max(c, k)
        return (sum(n.get(g, 0) for g in range(low, high + 1)) - (n.get(c, 0) + n.get(k, 0)) / 2) ** 2

    observed = sum(2 * delta(a, b) for a, b in pairs) / total  # each item adds the pairs (a, b) and (b, a)
    expected = sum(n[c] * n[k] * delta(c, k) for c in n for k in n) / (total * (total - 1))
    return 1 - observed / expected


def test_two_raters_by_keyboard_across_a_server_kill(driver, tmp_path):
    build = write_build(tmp_path)
    write_sample(build, n=len(ALICE), seed=0)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(build, port)
    timings = []
    try:
        _login(driver, base, "alice")
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
        server = _serve(build, port)
        _login(driver, base, "alice")
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
        _login(driver, base, "bob")
        assert _item(driver) == 0
        assert set(_shown_scores(driver).values()) == {"·"}  # bob sees none of alice's answers
        for index in range(len(BOB)):
            _keys(driver, BOB[index])
    finally:
        server.kill()
        server.wait(timeout=30)
    expected = {(rater, item, d.name): int(scores[item][j]) for rater, table in (("alice", ALICE), ("bob", BOB))
                for item in range(len(table)) for j, d in enumerate(DIMENSIONS) for scores in [table]}
    assert AnswerStore(build).latest() == expected  # nothing lost, nothing out of scale stored
    summary = write_report(build)
    agree = {row["dimension"]: row for row in summary["agreement"]}
    for j, d in enumerate(DIMENSIONS):
        pairs = [(int(ALICE[i][j]), int(BOB[i][j])) for i in range(len(ALICE))]
        assert agree[d.name]["fleiss_kappa"] == pytest.approx(_fleiss_by_hand(pairs, d.high + 1)), d.name
        if d.high > 1:
            assert agree[d.name]["krippendorff_alpha"] == pytest.approx(_alpha_ordinal_by_hand(pairs)), d.name
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
