"""Screenshots of the web app on real trained runs, at desktop and phone width, for docs/.

``python scripts/screenshot.py --models runs --sentence "..." --message "..."`` starts the
app on 127.0.0.1, drives Debian's Chromium through Playwright (never ``playwright
install``), translates a sentence, chats one turn, opens the Model, Study and Training tabs, and
writes ``docs/screenshot-<tab>-<width>.png`` for every tab at 1280 and 390 px (plus
``docs/screenshot.png``, the README's picture: the translate tab at 1280). Images are
saved as 8-bit palette PNGs to keep the repository small.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WIDTHS = (1280, 390)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def save_small(png: bytes, path: Path) -> None:
    """A screenshot as a 256-colour PNG (a third of the size; UI colours survive)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image.convert("RGB").quantize(colors=256).save(path, optimize=True)


def capture(page, args, width: int, output: Path) -> list[Path]:
    from playwright.sync_api import expect

    written = []

    def shoot(name: str) -> None:
        path = output / f"screenshot-{name}-{width}.png"
        save_small(page.screenshot(full_page=True), path)
        written.append(path)

    page.locator("#translate-input textarea").fill(args.sentence)
    page.locator("#translate-btn").click()
    expect(page.locator("#translate-output textarea")).not_to_have_value("", timeout=180_000)
    expect(page.locator("#attention-plot img")).to_be_visible(timeout=60_000)
    shoot("translate")
    page.get_by_role("tab", name="Chat").click()
    box = page.locator("#chat-tab textarea").first
    box.fill(args.message)
    box.press("Enter")
    expect(page.locator("#chat-tab [data-testid='bot']").last).not_to_have_text("", timeout=180_000)
    page.wait_for_timeout(3000)  # let the streamed reply finish
    shoot("chat")
    page.get_by_role("tab", name="Model").click()
    expect(page.locator("#model-tab")).to_contain_text("decoder rnn", timeout=180_000)
    page.wait_for_timeout(2000)  # the curves figure arrives with the table
    shoot("model")
    page.get_by_role("tab", name="Study").click()
    page.wait_for_timeout(2000)
    shoot("study")
    page.get_by_role("tab", name="Training").click()
    expect(page.locator("#training-runs")).to_be_visible(timeout=60_000)
    page.wait_for_timeout(2000)  # the first poll fills the run list
    shoot("training")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="runs")
    parser.add_argument("--sentence", default="¿Puedes ayudarme con mis deberes?")
    parser.add_argument("--message", default="What do you want to do this weekend?")
    parser.add_argument("--output", default="docs")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from apps import web

    demo = web.build_app(Path(args.models))
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        css=web.CSS,
    )
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        for width in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(url, wait_until="domcontentloaded")
            written += capture(page, args, width, output)
            page.close()
        browser.close()
    demo.close()
    readme_picture = output / "screenshot.png"
    readme_picture.write_bytes((output / "screenshot-translate-1280.png").read_bytes())
    for path in [*written, readme_picture]:
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
