#!/usr/bin/env bash
# `make system-test`: the provider under real Airflow services (api-server, scheduler,
# dag-processor, triggerer; LocalExecutor; PostgreSQL) and the emulator, all on 127.0.0.1.
# Installs what is missing (Debian's postgresql; psycopg2-binary and asyncpg into the venv), then
# runs scripts/system_test.py, which prints PASS or FAIL and exits 0 or 1. See docs/system-test.md.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
  echo "system-test: $PY not found; run 'make install' first" >&2
  exit 2
fi

if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "system-test: PostgreSQL is missing; install it (apt-get install postgresql) or run as root" >&2
    exit 2
  fi
  echo "system-test: installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

# Airflow talks to PostgreSQL through psycopg2 (sync) and asyncpg (async, derived from the sync URL),
# the two drivers the official apache/airflow image ships.
if ! "$PY" -c "import psycopg2, asyncpg" >/dev/null 2>&1; then
  echo "system-test: installing psycopg2-binary and asyncpg into $VENV"
  if [ -x "$VENV/bin/uv" ]; then
    "$VENV/bin/uv" pip install --python "$PY" --quiet psycopg2-binary asyncpg
  else
    "$PY" -m pip install --quiet psycopg2-binary asyncpg
  fi
fi

exec "$PY" scripts/system_test.py "$@"
