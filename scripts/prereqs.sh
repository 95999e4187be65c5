#!/usr/bin/env bash
# Checks what `make run` and `make test` need before anything is installed, and names the fix.
set -u
PYTHON=${PYTHON:-python3}
fail=0

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "Error: $PYTHON not found. Install Python 3.11 or newer (e.g. 'apt-get install python3 python3-venv'), or run 'make PYTHON=/path/to/python3.11 ...'." >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "Error: $("$PYTHON" --version 2>&1) is too old; Python 3.11 or newer is needed. Install it, or run 'make PYTHON=/path/to/python3.11 ...'." >&2
  fail=1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "Error: $PYTHON cannot create virtual environments. Install the venv module (e.g. 'apt-get install python3-venv')." >&2
  fail=1
fi

# The training engine's core (src/sentiment/engine/_core.c) is compiled when the package is installed.
cc_bin=${CC:-cc}
if ! command -v "$cc_bin" >/dev/null 2>&1; then
  echo "Error: no C compiler ($cc_bin) found; the training engine's core is compiled at install. Install one (e.g. 'apt-get install gcc') or set CC." >&2
  fail=1
elif ! "$PYTHON" -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' 2>/dev/null; then
  echo "Error: Python's C headers (Python.h) are missing; the training engine's core is compiled against them. Install them (e.g. 'apt-get install python3-dev')." >&2
  fail=1
fi

java_bin=java
[ -n "${JAVA_HOME:-}" ] && java_bin="$JAVA_HOME/bin/java"
if ! command -v "$java_bin" >/dev/null 2>&1; then
  echo "Error: Java not found; Spark (the prepare stage) needs Java 17 or newer. Install it (e.g. 'apt-get install openjdk-17-jre-headless') or set JAVA_HOME." >&2
  fail=1
else
  version=$("$java_bin" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  major=${version%%.*}
  [ "$major" = "1" ] && major=$(echo "$version" | cut -d. -f2)
  if ! [ "${major:-0}" -ge 17 ] 2>/dev/null; then
    echo "Error: Java $version found; Spark needs Java 17 or newer. Install it (e.g. 'apt-get install openjdk-17-jre-headless') or point JAVA_HOME at one." >&2
    fail=1
  fi
fi
exit $fail
