#!/usr/bin/env bash
# `make system-test`: the provider under real Airflow services (api-server, scheduler,
# dag-processor, triggerer; LocalExecutor, then CeleryExecutor with two workers; PostgreSQL, Redis,
# S3 via moto) and the emulator, all on 127.0.0.1. Arguments go to scripts/system_test.py
# (--executor local|celery|both, default both). Installs what is missing (Debian's postgresql and
# redis-server; psycopg2-binary and asyncpg, and for the Celery run the [system-test-celery] extra,
# into the venv), then runs scripts/system_test.py, which prints PASS or FAIL and exits 0 or 1.
# See docs/system-test.md.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
  echo "system-test: $PY not found; run 'make install' first" >&2
  exit 2
fi

celery=1
for arg in "$@"; do
  case "$arg" in --executor=local) celery=0 ;; esac
done
if [[ " $* " == *" --executor local "* ]]; then celery=0; fi

debs=()
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  debs+=(postgresql)
fi
if [ "$celery" = 1 ] && ! command -v redis-server >/dev/null 2>&1; then
  debs+=(redis-server)
fi
if [ ${#debs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "system-test: ${debs[*]} missing; install them (apt-get install ${debs[*]}) or run as root" >&2
    exit 2
  fi
  echo "system-test: installing ${debs[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
  # Debian's package starts a redis-server service on port 6379; the test starts its own.
  if [[ " ${debs[*]} " == *" redis-server "* ]] && command -v service >/dev/null 2>&1; then
    service redis-server stop >/dev/null 2>&1 || true
  fi
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

# The Celery run: Airflow's Celery provider and the Redis client, the Amazon provider with s3fs
# (s3:// object storage) and moto's S3 server; the [system-test-celery] extra of pyproject.toml.
if [ "$celery" = 1 ] && ! "$PY" -c "import airflow.providers.celery.executors.celery_executor, redis, airflow.providers.amazon, s3fs, moto.server" >/dev/null 2>&1; then
  echo "system-test: installing the [system-test-celery] extra into $VENV"
  if [ -x "$VENV/bin/uv" ]; then
    "$VENV/bin/uv" pip install --python "$PY" --quiet -e ".[system-test-celery]"
  else
    "$PY" -m pip install --quiet -e ".[system-test-celery]"
  fi
fi

exec "$PY" scripts/system_test.py "$@"
