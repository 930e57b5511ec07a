#!/usr/bin/env bash
# Install the system Chromium used by tests/test_browser.py (Debian/Ubuntu, apt).
# Never downloads Playwright's own browsers. Non-fatal: if apt is unavailable or fails,
# it says so and exits 0, and the browser test then skips with a clear reason.
set -u

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: apt-get not found; install Chromium at /usr/bin/chromium by hand" >&2
    echo "         (tests marked 'browser' will be skipped)" >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "warning: not root and no sudo; cannot install chromium (browser tests will skip)" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq chromium >/dev/null 2>&1; then
    # The package lists may be missing or stale (fresh containers): refresh, then retry.
    $SUDO apt-get update -qq >/dev/null 2>&1 || echo "warning: apt-get update failed" >&2
    if ! $SUDO apt-get install -y -qq chromium; then
        echo "warning: could not install chromium; tests marked 'browser' will be skipped" >&2
        exit 0
    fi
fi

if [ -x /usr/bin/chromium ]; then
    echo "installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
else
    echo "warning: chromium installed but /usr/bin/chromium is missing; browser tests will skip" >&2
fi
exit 0
