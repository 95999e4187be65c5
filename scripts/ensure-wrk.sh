#!/usr/bin/env bash
# The HTTP benchmarks (benchmarks/serve.py, benchmarks/api.py) drive load with Debian's wrk.
# Install it when missing and we may; otherwise say how.
set -u
command -v wrk >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's wrk for the HTTP benchmarks..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
    || { echo "Error: could not install wrk with apt-get; install it ('sudo apt-get install wrk') and rerun." >&2; exit 1; }
  exit 0
fi
echo "Error: the HTTP benchmarks need wrk. Install it ('sudo apt-get install wrk') and rerun." >&2
exit 1
