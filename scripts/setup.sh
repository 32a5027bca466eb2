#!/usr/bin/env bash
# Idempotent set-up on Debian 12 with Python 3.11: a virtual environment in .venv with
# the pinned requirements and Observatory installed in it.
#   scripts/setup.sh          what the dashboard needs
#   scripts/setup.sh --test   plus what the tests need: Prometheus (with promtool),
#                             VictoriaMetrics, Chromium and a Java runtime from Debian's
#                             packages, and pyspark (requirements-spark.txt) in .venv
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "error: Observatory needs Python 3.11 or newer as '$PY' (set PYTHON=...)" >&2
  exit 2
fi
if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  echo "setup: installing python3-venv" >&2
  apt_install python3-venv
fi

if [ "${1:-}" = "--test" ]; then
  missing=()
  command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} from Debian's packages" >&2
    apt_install "${missing[@]}"
  fi
fi

stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv and installing pinned requirements (first run takes a few minutes)" >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--test" ]; then
  spark_stamp=.venv/.requirements-spark.sha256
  spark_want=$(sha256sum < requirements-spark.txt | cut -d' ' -f1)
  if [ "$(cat "$spark_stamp" 2>/dev/null)" != "$spark_want" ]; then
    echo "setup: installing pyspark for the Spark test (requirements-spark.txt, a 456 MB download, once)" >&2
    .venv/bin/python -m pip install -q -r requirements-spark.txt
    echo "$spark_want" > "$spark_stamp"
  fi
fi
