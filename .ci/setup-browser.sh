#!/usr/bin/env bash
# Installs what the dashboard's browser test needs: Debian's chromium (never a browser that a
# package downloads) and tests/browser's pinned playwright-core (`npm ci` from the lock file).
# Idempotent: what is already there is left as it is.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
browser="$repo/tests/browser"

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-browser: /usr/bin/chromium is missing and this is not root: apt-get install chromium" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "setup-browser: $(/usr/bin/chromium --version 2>/dev/null)"

if ! command -v npm >/dev/null; then
    echo "setup-browser: npm is missing (the browser test needs node and npm)" >&2
    exit 1
fi
lock="$browser/package-lock.json"
stamp="$browser/node_modules/.installed-lock"
if [ -f "$stamp" ] && cmp -s "$lock" "$stamp"; then
    echo "setup-browser: tests/browser/node_modules matches package-lock.json"
    exit 0
fi
# playwright-core downloads nothing at install; the variable keeps it so if that changes.
(cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
cp "$lock" "$stamp"
echo "setup-browser: installed $(cd "$browser" && node -p 'require("playwright-core/package.json").version' 2>/dev/null || echo playwright-core)"
