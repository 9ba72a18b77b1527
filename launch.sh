#!/usr/bin/env bash
# ltmjax front door: bootstraps .venv on first use, then runs what it is asked.
#
#   ./launch.sh quickstart                      the four-model comparison on CPU (the main job)
#   ./launch.sh test [pytest args]              the test suite
#   ./launch.sh --config configs/x.py[:arg] [--workdir DIR] [--config.a.b=v ...]   one run
#   ./launch.sh suite <name> [runner args]      a grid of runs + its table (python -m ltmjax.experiments)
#   ./launch.sh report results/<suite> [...]    tables from result.json files
#   ./launch.sh python [args]                   python inside the environment
#
# Environment: PYTHON (interpreter used to create .venv, default python3.11 or python3),
# LTMJAX_EXTRAS (extra pip extras, e.g. "gpu"), LTMJAX_UNLOCKED=1 (install from the
# version ranges of pyproject.toml instead of requirements.lock).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.ltmjax-installed"

pick_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
  echo "error: no python3 found; install Python 3.10-3.12 or set PYTHON=/path/to/python" >&2
  exit 1
}

install_fingerprint() {
  cat pyproject.toml requirements.lock 2>/dev/null | cksum | cut -d' ' -f1
  echo "extras=${LTMJAX_EXTRAS:-} unlocked=${LTMJAX_UNLOCKED:-}"
}

ensure_env() {
  local want
  want="$(install_fingerprint)"
  if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    return
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    local py
    py="$(pick_python)"
    echo "[launch] creating .venv with $($py --version 2>&1)" >&2
    "$py" -m venv "$VENV"
  fi
  local extras="test"
  [[ -n "${LTMJAX_EXTRAS:-}" ]] && extras="test,${LTMJAX_EXTRAS}"
  echo "[launch] installing ltmjax[$extras] into .venv (only when pyproject.toml or requirements.lock change)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  if [[ -z "${LTMJAX_UNLOCKED:-}" && -f requirements.lock ]]; then
    "$VENV/bin/python" -m pip install -q -c requirements.lock -e ".[$extras]" >&2
  else
    "$VENV/bin/python" -m pip install -q -e ".[$extras]" >&2
  fi
  echo "$want" > "$STAMP"
}

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

cmd="${1:-}"
case "$cmd" in
  -h|--help|help|"")
    usage; exit 0 ;;
esac

ensure_env
PY="$VENV/bin/python"

case "$cmd" in
  test)
    shift
    exec "$PY" -m pytest "$@" ;;
  quickstart)
    shift
    exec "$PY" -m ltmjax.experiments run quickstart "$@" ;;
  suite)
    shift
    exec "$PY" -m ltmjax.experiments run "$@" ;;
  report)
    shift
    exec "$PY" -m ltmjax.report "$@" ;;
  python)
    shift
    exec "$PY" "$@" ;;
  --config|--config=*)
    exec "$PY" -m ltmjax.main "$@" ;;
  *)
    echo "error: unknown command '$cmd'; run ./launch.sh --help for the commands" >&2
    exit 2 ;;
esac
