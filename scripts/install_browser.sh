#!/usr/bin/env bash
# The browser tests (tests/web) drive Debian's Chromium through Playwright; `playwright install`
# would download a browser at test time, so use the distribution's package instead.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi
if [[ $(id -u) -eq 0 ]]; then
    apt-get install -y chromium >/dev/null || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
elif command -v sudo >/dev/null; then
    sudo apt-get install -y chromium >/dev/null
else
    echo "[install_browser] /usr/bin/chromium missing and no root: tests/web will skip" >&2
fi
