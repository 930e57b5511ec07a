"""Screenshots of the web app on real trained runs, for the README.

``python scripts/screenshot.py --models runs --sentence "..." --message "..."`` starts the
app on 127.0.0.1, drives Debian's Chromium through Playwright (never ``playwright
install``), translates a sentence, chats one turn, and writes ``docs/screenshot.png`` and
``docs/screenshot-chat.png``.
"""

from __future__ import annotations

import argparse
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="runs")
    parser.add_argument("--sentence", default="¿Puedes ayudarme con mis deberes?")
    parser.add_argument("--message", default="What do you want to do this weekend?")
    parser.add_argument("--output", default="docs")
    args = parser.parse_args()

    from playwright.sync_api import expect, sync_playwright

    from apps import web

    demo = web.build_app(Path(args.models))
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.set_default_timeout(120_000)
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#translate-input textarea").fill(args.sentence)
        page.locator("#translate-btn").click()
        expect(page.locator("#translate-output textarea")).not_to_have_value("", timeout=180_000)
        expect(page.locator("#attention-plot img")).to_be_visible(timeout=60_000)
        page.screenshot(path=str(output / "screenshot.png"), full_page=True)
        page.get_by_role("tab", name="Chat").click()
        box = page.locator("#chat-tab textarea").first
        box.fill(args.message)
        box.press("Enter")
        expect(page.locator("#chat-tab [data-testid='bot']").last).not_to_have_text(
            "", timeout=180_000
        )
        page.wait_for_timeout(3000)  # let the streamed reply finish
        page.screenshot(path=str(output / "screenshot-chat.png"), full_page=True)
        browser.close()
    demo.close()
    print(f"wrote {output / 'screenshot.png'} and {output / 'screenshot-chat.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
