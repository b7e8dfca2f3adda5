#!/usr/bin/env bash
# The supported-versions matrix (`make test-compat`, docs/compatibility.md). `make test` runs the
# whole suite on Airflow 3.3 / Python 3.11; here each older Airflow minor runs on one of the other
# Pythons, so two venvs cover Airflow 3.1, 3.2, 3.3 and Python 3.10, 3.11, 3.13:
#
#   af3.1   newest Airflow 3.1.x on Python 3.10: the fast set + the dag.test() tests
#   af3.2   newest Airflow 3.2.x on Python 3.13: the fast set + the dag.test() tests
#
# Each entry is its own venv under .venv-compat/, Airflow pinned by a `==X.Y.*` requirement so uv
# takes a release of that minor, and a floor on apache-airflow-core at the newest patch release
# when this was written (without it uv backtracks to 3.1.0 on Python 3.10), plus the entry's pins: Airflow 3.2.2 declares
# no upper bounds for fastapi and svcs, and its in-process execution API (dag.test) breaks with
# fastapi >= 0.137 (a pydantic schema error) and svcs >= 26 (no lifespan registry); Airflow's own
# constraint files pin older releases, which is what the pins do here (docs/compatibility.md).
# Usage: scripts/compat.sh [ENTRY...] (default: all). FAST_TESTS (the Makefile's set) and UV come
# from the Makefile. uv's wheel cache is shared by the venvs (UV_CACHE_DIR as usual); packages
# are hardlinked from it (UV_LINK_MODE, default hardlink). Each entry's install and test times
# are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-.venv/bin/uv}
VENVS=${COMPAT_VENVS:-.venv-compat}
export UV_LINK_MODE=${UV_LINK_MODE:-hardlink}
read -r -a FAST <<< "${FAST_TESTS:?set FAST_TESTS to the fast test set, or run make test-compat}"
# The tests that run whole DAGs through dag.test() where Airflow's own behaviour shows: the example
# and test DAGs (the task runner, XCom, mapping, deferral) and the submission ledger (whose store
# differs before Airflow 3.3). The S3, table and OpenLineage DAG tests exercise the storage
# libraries and the OpenLineage provider rather than Airflow and run on 3.3 only (make test), to
# keep CI under 25 minutes.
DAG_TESTS=(tests/integration/test_dags.py tests/reliability/test_ledger.py)

# name | Python | Airflow requirement and the entry's pins | what runs
MATRIX=(
  "af3.1|3.10|apache-airflow==3.1.* apache-airflow-core>=3.1.8|fast+dags"
  "af3.2|3.13|apache-airflow==3.2.* apache-airflow-core>=3.2.2 svcs<26 fastapi<0.137|fast+dags"
)

interpreter() {  # the newest pyenv build of Python $1, else python$1 on PATH
  local root found
  root=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}
  found=$(ls -d "$root/versions/$1".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$found" ]; then echo "$found"; else command -v "python$1" || { echo "no Python $1" >&2; return 1; }; fi
}

install_entry() {  # name python requirement: the entry's venv, with its install time in a file
  local name=$1 version=$2 requirement=$3 venv="$VENVS/$1" py start
  start=$(date +%s)
  py=$(interpreter "$version") || return 1
  if [ ! -x "$venv/bin/python" ]; then "$UV" venv -q --python "$py" "$venv" || return 1; fi
  read -r -a requirements <<< "$requirement"
  "$UV" pip install -q --python "$venv/bin/python" --compile-bytecode -e '.[test]' "${requirements[@]}" || return 1
  echo $(( $(date +%s) - start )) > "$venv.install-seconds"
}

run_entry() {  # name python requirement what install-status
  local name=$1 version=$2 requirement=$3 what=$4 venv="$VENVS/$1" start installed tests rc=0
  # Called in an `||` list, so errexit is off in here: every step checks its own status.
  [ "$5" -eq 0 ] || { RESULTS+=("$name: install failed (see above)"); return 1; }
  installed=$(cat "$venv.install-seconds")
  echo "== compat $name: $requirement on Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())') =="
  start=$(date +%s)
  tests=("${FAST[@]}")
  if [ "$what" = "fast+dags" ]; then tests+=("${DAG_TESTS[@]}"); fi
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" || rc=$?
  local took=$(( $(date +%s) - start )) airflow status=ok
  airflow=$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("apache-airflow"))')
  [ $rc -eq 0 ] || status="FAILED (pytest exit $rc)"
  RESULTS+=("$(printf '%-7s %-22s -> Airflow %-6s %-9s install %4d s, tests %4d s: %s' \
    "$name" "${requirement%% *}" "$airflow" "$what" "$installed" "$took" "$status")")
  return $rc
}

selected=("$@")
RESULTS=()
failed=0
all=$(date +%s)
mkdir -p "$VENVS"
# The next entry's venv installs (network and disk, little CPU) while this entry's tests run; one
# install at a time, as two editable builds of the same tree at once could race on its egg-info.
chosen=()
for entry in "${MATRIX[@]}"; do
  IFS='|' read -r name version requirement what <<< "$entry"
  if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " == *" $name "* ]]; then continue; fi
  chosen+=("$entry")
done
start_install() {  # the index of the entry in chosen
  local name version requirement what
  IFS='|' read -r name version requirement what <<< "${chosen[$1]}"
  install_entry "$name" "$version" "$requirement" &
  installer=$!
}
[ ${#chosen[@]} -gt 0 ] || { echo "compat: no entry named ${selected[*]}" >&2; exit 2; }
start_install 0
for k in "${!chosen[@]}"; do
  IFS='|' read -r name version requirement what <<< "${chosen[$k]}"
  this=$installer
  wait "$this" && status=0 || status=$?
  if [ $(( k + 1 )) -lt ${#chosen[@]} ]; then start_install $(( k + 1 )); fi
  run_entry "$name" "$version" "$requirement" "$what" "$status" || failed=1
done
echo "== compat summary ($(( $(date +%s) - all )) s in all) =="
printf '%s\n' "${RESULTS[@]}"
exit $failed
