"""The page at / in a real headless Chromium (Debian's `chromium`, driven by Playwright):
type a question, see its translation and attention heatmap, send a bad one, see the message."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.serve import ServeLimits, create_app

CHROMIUM = os.environ.get("FREN_NMT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[str]:
    import uvicorn

    with socket.socket() as s:  # a free port on the loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(model_dir, limits=ServeLimits(max_chars=80))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        message = f"no chromium at {CHROMIUM} (apt-get install chromium, or FREN_NMT_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)  # .ci/run installs it: missing means a broken setup
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def test_the_page_translates_and_draws_the_attention(server: str, browser: object) -> None:
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("#models:has-text('Model: model')")
    page.fill("#source", "Où est la gare ?\nQui a fait ça ?")
    page.select_option("#beam", "2")
    page.select_option("#nbest", "2")
    page.click("#translate")
    page.wait_for_selector(".sentence")
    sentences = page.locator(".sentence")
    assert sentences.count() == 2
    assert sentences.nth(0).locator(".source").inner_text() == "Où est la gare ?"
    assert sentences.nth(0).locator(".best").inner_text().strip()  # an English line
    assert sentences.nth(0).locator(".other").count() == 1  # n-best 2
    # the first sentence's heatmap: a row per output token, a column per source token
    rows = page.locator("#heatmap tbody tr")
    heads = page.locator("#heatmap thead th")
    assert rows.count() >= 1
    assert [h.inner_text() for h in heads.all()][1:] == ["où", "est", "la", "gare", "?", "_eos_"]
    cells = rows.nth(0).locator("td")
    assert cells.count() == 6
    colours = {c.evaluate("e => getComputedStyle(e).backgroundColor") for c in cells.all()}
    assert len(colours) > 1  # weights drawn as colours, not one flat block
    assert page.locator("#heatmap .scale .bar").count() == 1
    sentences.nth(1).click()  # another sentence: its own heatmap
    page.wait_for_selector("#heatmap thead th:has-text('fait')")
    assert page.inner_text("#error") == ""


def test_the_page_shows_a_bad_inputs_message(server: str, browser: object) -> None:
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("#models:has-text('Model')")
    page.fill("#source", "Pourquoi " * 20 + "?")
    page.click("#translate")
    page.wait_for_selector("#error:has-text('413')")
    assert "max_chars" in page.inner_text("#error")
    page.fill("#source", "  \n ")
    page.click("#translate")
    page.wait_for_selector("#error:has-text('Type a French question')")
