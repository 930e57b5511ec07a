"""The app in a real browser: headless Debian Chromium driven by Playwright.

Never runs ``playwright install``: it uses the system browser at /usr/bin/chromium
(``.ci/install-browser.sh`` installs it) and skips when that is missing. The screenshot
goes to docs/screenshot.png only with SEQ2SEQ_SAVE_SCREENSHOT=1 (else to tmp_path).

What a newcomer met (issue 23): a chat error leaves the chat usable; a page opened after
models appeared shows them at once (read on page load, not when the app was built); Stop ends
a streamed reply within one chunk; the decoding accordion shows the chosen method's sliders
only; the phone layout and heat map fit the width.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

import re  # noqa: E402
import shutil  # noqa: E402
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
        # a budget that no machine trains before the cancel below (1 epoch raced it)
        page.locator("#training-epochs input").fill("20")
        expect(page.locator("#training-epochs input")).to_have_value("20")
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
    so far stay in the conversation. Chunks are slowed to one step a second (in
    this process, where the app runs) and replies to at least 12 tokens, so that the click
    lands while the reply streams."""
    import time

    from playwright.sync_api import expect

    from seq2seq.search.searcher import Searcher

    original = Searcher.stream
    chunks: list[float] = []
    finished: list[bool] = []

    def slow(self, source, decode, chunk_steps=4):
        # At least 12 tokens: a sampled reply of two words could end on its own at the click.
        decode = decode.replace(min_length=12, max_length=max(decode.max_length, 20))
        for part in original(self, source, decode, 1):
            chunks.append(time.monotonic())
            time.sleep(1.0)
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
        time.sleep(3.0)  # three chunks' time: none may follow
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


# -- what a newcomer met (issue 23) -------------------------------------------------------


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    page.set_default_timeout(60_000)
    yield page
    page.close()


def served(models: Path):
    from test_app import launch

    return launch(models)


def test_the_chat_is_usable_again_after_an_error(page, tmp_path):
    """A message sent before any chat model exists is refused; the textbox then takes
    the message back, editable, with its send button (it stayed disabled, with Stop and
    an "Error" badge, until the page was reloaded)."""
    from playwright.sync_api import expect

    demo, url = served(tmp_path)
    try:
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Chat").click()
        box = page.locator("#chat-tab textarea").first
        box.fill("hello there")
        box.press("Enter")
        # the refusal's toast (the page's notice says "No trained chat model" from the
        # start, so only the toast shows that this message was answered)
        refusal = page.locator("[data-testid='toast-body']", has_text="No trained chat model")
        expect(refusal).to_have_count(1, timeout=30_000)
        # the page load (which sets the empty model lists) raised no error of its own
        expect(page.get_by_text("No trained model in")).to_have_count(0)
        expect(box).to_be_editable(timeout=30_000)
        expect(box).to_have_value("hello there")
        expect(page.locator("#chat-tab button", has_text="Stop")).to_be_hidden()
        # the refused message is not left in the conversation without a reply
        expect(page.locator("#chat-tab [data-testid='user']")).to_have_count(0)
        refusal.locator("[data-testid='toast-close']").click()
        expect(refusal).to_have_count(0)
        box.fill("again")
        box.press("Enter")  # and it can be sent again, and is refused again
        expect(refusal).to_have_count(1, timeout=30_000)
        expect(box).to_be_editable(timeout=30_000)
        expect(box).to_have_value("again")
        expect(page.locator("#chat-tab [data-testid='user']")).to_have_count(0)
    finally:
        demo.close()


def test_a_page_shows_the_models_there_when_it_loads(page, tmp_path, tiny_models, monkeypatch):
    """The app is built over an empty folder; the models appear afterwards (as when the
    quickstart finishes training). A page opened then shows them at once, with Translate
    enabled and no "no trained model" notice, without waiting for a timer (the timers
    are slowed to an hour here, so only the page load can update it)."""
    from playwright.sync_api import expect

    from apps import training_tab

    monkeypatch.setattr(training_tab, "POLL_S", 3600.0)
    models = tmp_path / "models"
    models.mkdir()
    demo, url = served(models)
    try:
        for name in ("tiny", "tiny-chat"):
            shutil.copytree(tiny_models / name, models / name)
        page.goto(url, wait_until="domcontentloaded")
        expect(page.locator("#translate-model input")).to_have_value(re.compile("tiny"))
        expect(page.locator("#translate-btn")).to_be_enabled()
        expect(page.locator("#empty-notice")).to_be_hidden()
        page.locator("#translate-input textarea").fill("one two .")
        page.locator("#translate-btn").click()
        expect(page.locator("#translate-output textarea")).not_to_have_value("", timeout=120_000)
        page.get_by_role("tab", name="Chat").click()
        expect(page.locator("#chat-model input")).to_have_value(re.compile("tiny-chat"))
    finally:
        demo.close()


def test_stop_shows_at_most_one_more_chunk(page, tiny_models, monkeypatch):
    """Stop, clicked while a reply streams: the tokens on screen after the click grow by
    at most one chunk (here one token a chunk, a second apart, replies of at least 12 tokens), and
    decoding ends."""
    import time

    from playwright.sync_api import expect

    from seq2seq.search.searcher import Searcher

    original = Searcher.stream
    chunks: list[int] = []
    finished: list[bool] = []

    def slow(self, source, decode, chunk_steps=4):
        # At least 12 tokens: a sampled reply of two words could end on its own at the click.
        decode = decode.replace(min_length=12, max_length=max(decode.max_length, 20))
        for part in original(self, source, decode, 1):
            chunks.append(1)
            time.sleep(1.0)
            yield part
        finished.append(True)

    monkeypatch.setattr(Searcher, "stream", slow)
    demo, url = served(tiny_models)
    try:
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Chat").click()
        box = page.locator("#chat-tab textarea").first
        box.fill("one two three four five six seven eight nine one two three .")
        box.press("Enter")
        reply = page.locator("#chat-tab [data-testid='bot']").last
        expect(reply).not_to_have_text("", timeout=120_000)
        stop = page.locator("#chat-tab button", has_text="Stop")
        stop.click()
        at_click = len(reply.inner_text().split())
        expect(stop).to_be_hidden(timeout=30_000)
        expect(box).to_be_editable()
        time.sleep(5.0)  # five chunks' time: at most one more may show
        after = len(reply.inner_text().split())
        assert after - at_click <= 1, (at_click, after)
        assert not finished
    finally:
        demo.close()


def test_the_decoding_accordion_shows_the_chosen_methods_sliders(page, tiny_models):
    from playwright.sync_api import expect

    demo, url = served(tiny_models)
    try:
        page.goto(url, wait_until="domcontentloaded")
        accordion = page.locator("#translate-decoding")
        accordion.get_by_text("decoding").first.click()
        expect(accordion.get_by_text("max output length (tokens)")).to_be_visible()
        expect(accordion.get_by_text("temperature")).to_be_hidden()
        expect(accordion.get_by_text("beam size")).to_be_hidden()
        copy_switch = page.locator("#translate-copy-names")
        expect(copy_switch).to_be_hidden()
        accordion.get_by_role("radio", name="beam").check()
        expect(accordion.get_by_text("beam size", exact=True)).to_be_visible()
        expect(accordion.get_by_text("temperature")).to_be_hidden()
        # the copy switch is beam search's, and starts at the run's setting (off for tiny)
        expect(copy_switch).to_be_visible()
        expect(copy_switch.get_by_role("checkbox")).not_to_be_checked()
        accordion.get_by_role("radio", name="sample").check()
        expect(accordion.get_by_text("temperature")).to_be_visible()
        expect(accordion.get_by_text("beam size", exact=True)).to_be_hidden()
        expect(copy_switch).to_be_hidden()
    finally:
        demo.close()


PHONE = {"width": 390, "height": 844}


def overflow(page, selector: str) -> dict:
    """How ``selector``'s content fits: its box's right edge against the viewport, and
    how much of its content is hidden behind a sideways scroll or a clipped text."""
    return page.locator(selector).first.evaluate(
        """(el) => { const box = el.getBoundingClientRect();
            return {right: box.right, width: box.width, viewport: window.innerWidth,
                    hidden: el.scrollWidth - el.clientWidth}; }"""
    )


def test_phone_layout_fits_the_width(browser, tiny_models, tmp_path):
    """At 390 px: the Model tab's tables are full width (not two squeezed columns that
    broke words mid-word) and show every column; the Training table shows every column
    (progress, loss, time left were hidden behind a scroll); a chat run's name is not
    clipped in its dropdown; the Translate button is on the first screen."""
    from playwright.sync_api import expect

    models = tmp_path / "models"
    shutil.copytree(tiny_models / "tiny", models / "tiny")
    shutil.copytree(tiny_models / "tiny-chat", models / "quickstart-chat")
    config = models / "quickstart-chat" / "config.yaml"
    text = config.read_text(encoding="utf-8")  # labelled as the quickstart's chat run
    text = text.replace("context_turns: 1", "context_turns: 2")
    config.write_text(text.replace("corpus: tsv", "corpus: daily_dialog"), encoding="utf-8")
    demo, url = served(models)
    page = browser.new_page(viewport=PHONE, is_mobile=True)
    page.set_default_timeout(60_000)
    try:
        page.goto(url, wait_until="domcontentloaded")
        expect(page.locator("#translate-model input")).to_have_value(re.compile("tiny"))
        assert page.locator("#translate-btn").bounding_box()["y"] < PHONE["height"]

        page.get_by_role("tab", name="Chat").click()
        expect(page.locator("#chat-model input")).to_have_value(re.compile("quickstart-chat"))
        fit = overflow(page, "#chat-model input")
        assert fit["hidden"] <= 0, f"the chat run's label is clipped: {fit}"

        page.get_by_role("tab", name="Model").click()
        expect(page.locator("#model-params")).to_contain_text("decoder rnn", timeout=120_000)
        for part in ("#model-summary", "#model-metrics", "#model-params"):
            fit = overflow(page, f"{part} table")
            assert fit["right"] <= fit["viewport"] and fit["hidden"] <= 0, (part, fit)
            assert fit["width"] >= 300, (part, fit)  # full width, not a squeezed column
        expect(page.locator("#model-params")).to_contain_text("12,672")  # separators

        page.get_by_role("tab", name="Training").click()
        table = page.locator("#training-runs")
        expect(table).to_contain_text("quickstart-chat")
        viewport = PHONE["width"]
        headers = table.locator("thead th")
        assert headers.count() == 7
        for index in range(headers.count()):
            box = headers.nth(index).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= viewport, index
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") == 0
    finally:
        page.close()
        demo.close()


def test_phone_heat_map_fits_its_box_and_says_what_it_shows(browser, tiny_models):
    """At 390 px the attention heat map's box stays inside the viewport (the map scrolls
    sideways inside it, every column reachable), its label does not cover the map, and a
    legend says what the colours mean; the model's quality line is on the first screen,
    and the chat's MMI switch says why it is off and how to train a backward model."""
    from playwright.sync_api import expect

    demo, url = served(tiny_models)
    page = browser.new_page(viewport=PHONE, is_mobile=True)
    page.set_default_timeout(60_000)
    try:
        page.goto(url, wait_until="domcontentloaded")
        quality = page.locator("#translate-quality")
        expect(quality).to_contain_text("quickstart model: dev BLEU")
        assert quality.bounding_box()["y"] < PHONE["height"]
        page.locator("#translate-input textarea").fill("one two three four five six seven .")
        page.locator("#translate-btn").click()
        image = page.locator("#attention-plot img")
        expect(image).to_be_visible(timeout=120_000)
        box = page.locator("#attention-plot").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        inner = overflow(page, "#attention-plot .matplotlib")
        assert inner["right"] <= inner["viewport"], inner
        # what does not fit scrolls inside the box: all of the map can be reached
        width = image.bounding_box()["width"]
        reach = page.locator("#attention-plot .matplotlib").evaluate("(el) => el.scrollWidth")
        assert reach >= width - 1, (reach, width)
        label = page.locator("#attention-plot [data-testid='block-label']").bounding_box()
        assert label["y"] + label["height"] <= image.bounding_box()["y"] + 1, "label over map"
        legend = page.locator("#attention-legend")
        expect(legend).to_contain_text("yellow")
        fit = overflow(page, "#attention-legend")
        assert fit["right"] <= fit["viewport"] and fit["hidden"] <= 0, fit
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") == 0

        page.get_by_role("tab", name="Chat").click()
        expect(page.locator("#chat-quality")).to_contain_text("dev perplexity")
        page.locator("#chat-tab .label-wrap", has_text="decoding").click()
        mmi = page.locator("#chat-mmi")
        expect(mmi).to_contain_text("--preset chat-backward")
        expect(mmi.locator("input")).to_be_disabled()
        fit = overflow(page, "#chat-mmi")
        assert fit["right"] <= fit["viewport"], fit
    finally:
        page.close()
        demo.close()
