#!/usr/bin/env bash
# The web-page tests drive Debian's headless Chromium. Install it when missing and we may.
set -u
for candidate in "${SENTIMENT_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  [ -n "$candidate" ] && [ -x "$candidate" ] && exit 0
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the web-page tests..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || { echo "Error: could not install chromium with apt-get; install it and rerun, or set SENTIMENT_CHROMIUM to a Chromium binary." >&2; exit 1; }
  exit 0
fi
echo "Error: headless Chromium is needed by the web-page tests. Install it ('sudo apt-get install chromium') or set SENTIMENT_CHROMIUM to a Chromium binary." >&2
exit 1
