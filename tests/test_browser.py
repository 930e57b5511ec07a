"""The app in a real browser: headless Debian Chromium driven by Playwright.

Never runs ``playwright install``: it uses the system browser at /usr/bin/chromium
(``.ci/install-browser.sh`` installs it) and skips when that is missing. The screenshot
goes to docs/screenshot.png only with SEQ2SEQ_SAVE_SCREENSHOT=1 (else to tmp_path).
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.usefixtures("patient_assertions"),
]


@pytest.fixture(scope="module")
def app_url(tiny_models):
    """The app on conftest's ``tiny_models`` (``tiny`` and ``tiny-chat``), shared with
    test_app.py: no model is trained here."""
    from test_app import launch

    demo, url = launch(tiny_models)
    yield url
    demo.close()


def test_translate_and_chat_in_chromium(browser, app_url, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 1500})
    page.set_default_timeout(60_000)
    try:
        page.goto(app_url, wait_until="domcontentloaded")
        expect(page.locator("#translate-model input")).to_have_value(re.compile("tiny"))

        page.locator("#translate-input textarea").fill("one two three .")
        page.locator("#translate-btn").click()
        output = page.locator("#translate-output textarea")
        expect(output).not_to_have_value("", timeout=120_000)
        assert output.input_value().strip()
        heatmap = page.locator("#attention-plot img")
        expect(heatmap).to_be_visible(timeout=60_000)
        assert heatmap.bounding_box()["height"] > 50
        expect(page.locator("#translate-notes")).to_contain_text("greedy")

        target = (
            REPO / "docs" / "screenshot.png"
            if os.environ.get("SEQ2SEQ_SAVE_SCREENSHOT") == "1"
            else tmp_path / "screenshot.png"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 10_000

        page.get_by_role("tab", name="Chat").click()
        expect(page.locator("#chat-model input")).to_have_value(re.compile("tiny-chat"))
        box = page.locator("#chat-tab textarea").first
        box.fill("one nine .")
        box.press("Enter")
        reply = page.locator("#chat-tab [data-testid='bot']").last
        expect(reply).to_be_visible(timeout=120_000)
        expect(reply).not_to_have_text("", timeout=60_000)
        expect(page.locator("#chat-tab [data-testid='user']").last).to_contain_text("one nine .")
    finally:
        page.close()


def test_training_tab_starts_and_cancels_a_training(browser, app_url, tiny_models):
    """Start a training from the Training tab, see it run, cancel it: the run stays
    resumable. Bad input (an empty name) gets a clear message and starts nothing."""
    import shutil

    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 1500})
    page.set_default_timeout(60_000)
    try:
        page.goto(app_url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Training").click()
        job = page.locator("#training-job")
        expect(job).to_contain_text("No training started")

        page.locator("#training-start").click()  # no name yet
        expect(page.get_by_text("Invalid run name").first).to_be_visible()

        name = page.locator("#training-name textarea, #training-name input").first
        name.fill("browser-run")
        page.locator("#training-start").click()
        expect(job).to_contain_text("browser-run", timeout=30_000)
        expect(job).to_contain_text("running")
        expect(page.locator("#training-runs")).to_contain_text("browser-run", timeout=30_000)

        page.locator("#training-cancel").click()
        expect(job).to_contain_text("cancelled", timeout=60_000)
        expect(job).to_contain_text("Resume")
    finally:
        page.close()
        shutil.rmtree(tiny_models / "browser-run", ignore_errors=True)


def test_chat_stop_button_ends_the_reply_and_keeps_it(browser, app_url, monkeypatch):
    """Stop, clicked while a reply streams, ends decoding within one chunk and the words
    so far stay in the conversation. Chunks are slowed to one step each half second (in
    this process, where the app runs) so that there is time to click."""
    import time

    from playwright.sync_api import expect

    from seq2seq.search.searcher import Searcher

    original = Searcher.stream
    chunks: list[float] = []
    finished: list[bool] = []

    def slow(self, source, decode, chunk_steps=4):
        for part in original(self, source, decode, 1):
            chunks.append(time.monotonic())
            time.sleep(0.5)
            yield part
        finished.append(True)

    monkeypatch.setattr(Searcher, "stream", slow)
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    page.set_default_timeout(60_000)
    try:
        page.goto(app_url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Chat").click()
        box = page.locator("#chat-tab textarea").first
        box.fill("one two three four five six seven eight nine one two three .")
        box.press("Enter")
        reply = page.locator("#chat-tab [data-testid='bot']").last
        expect(reply).not_to_have_text("", timeout=120_000)  # the first chunk is out
        stop = page.locator("#chat-tab button", has_text="Stop")
        expect(stop).to_be_visible()
        stop.click()
        clicked = len(chunks)
        expect(stop).to_be_hidden(timeout=30_000)
        time.sleep(2.0)  # four chunks' time: none may follow
        assert len(chunks) <= clicked + 1, "decoding went on after Stop"
        assert not finished
        shown = reply.inner_text()
        assert shown.strip()
        time.sleep(1.0)
        assert reply.inner_text() == shown  # the partial reply stays
    finally:
        page.close()


def page_overflow(page) -> int:
    """Pixels the page is wider than the viewport (0: nothing scrolls sideways)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_phone_layout_in_chromium(browser, app_url):
    """At 390 px every tab fits the width (the heat map scrolls inside its own box), the
    key controls are on screen without zooming, and the chat tab has one decoding
    accordion, closed."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.set_default_timeout(60_000)
    try:
        page.goto(app_url, wait_until="domcontentloaded")
        for control in ("#translate-model", "#translate-input textarea", "#translate-btn"):
            box = page.locator(control).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, control
        page.locator("#translate-input textarea").fill("one two three four five six seven .")
        page.locator("#translate-btn").click()
        expect(page.locator("#translate-output textarea")).not_to_have_value("", timeout=120_000)
        heatmap = page.locator("#attention-plot img")
        expect(heatmap).to_be_visible(timeout=60_000)
        assert page_overflow(page) == 0
        # readable, not shrunk to the phone's width: the plot box scrolls sideways instead
        assert heatmap.bounding_box()["width"] >= 500
        for tab in ("Chat", "Model", "Study", "Training"):
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(500)
            assert page_overflow(page) == 0, tab
        page.get_by_role("tab", name="Chat").click()
        accordions = page.locator("#chat-tab .label-wrap", has_text="decoding")
        expect(accordions).to_have_count(1)
        expect(page.locator("#chat-tab").get_by_text("decoding method")).to_be_hidden()
        box = page.locator("#chat-tab textarea").first.bounding_box()
        assert box and box["x"] + box["width"] <= 390
        page.get_by_role("tab", name="Model").click()
        expect(page.locator("#model-tab")).to_contain_text("decoder rnn", timeout=120_000)
        assert page_overflow(page) == 0
    finally:
        page.close()
