#!/usr/bin/env bash
# ltmjax front door: bootstraps .venv on first use, then runs what it is asked.
#
#   ./launch.sh quickstart                      the four-model comparison on CPU (the main job)
#   ./launch.sh test [pytest args]              the test suite
#   ./launch.sh --config configs/x.py[:arg] [--workdir DIR] [--config.a.b=v ...]   one run
#                                               (its flags in any order; see python -m ltmjax.main --help)
#   ./launch.sh suite <name> [runner args]      a grid of runs + its table (python -m ltmjax.experiments)
#   ./launch.sh report results/<suite> [...]    tables from result.json files
#   ./launch.sh python [args]                   python inside the environment
#
# Devices and hosts (a run uses every device it is given; see README "Scale out"):
#   ./launch.sh [local] --config ...            all devices of this host (the default)
#   ./launch.sh --fake-devices N <command>      N fake CPU devices (tests of sharding on a laptop)
#   ./launch.sh slurm --config ...              in an sbatch/salloc allocation: one process per node (srun)
#   ./launch.sh tpu NAME ZONE --config ...      the same run on every worker of a Cloud TPU pod VM
#   ./launch.sh --coordinator HOST:PORT --num-processes N --process-id I --config ...
#                                               one process of a run started by hand on each host
#
# Environment: PYTHON (interpreter used to create .venv, default python3.11 or python3),
# LTMJAX_EXTRAS (extra pip extras, e.g. "gpu"), LTMJAX_UNLOCKED=1 (install from the
# version ranges of pyproject.toml instead of requirements.lock), LTMJAX_REMOTE_DIR (tpu:
# the checkout on each worker, default ltmjax).
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
  # One installer at a time (SLURM array tasks, parallel shells): the others wait here and
  # then find the stamp written.
  if [[ -z "${LTMJAX_ENV_LOCKED:-}" ]] && command -v flock >/dev/null 2>&1; then
    exec 9>"$ROOT/.venv.lock"
    flock 9
    export LTMJAX_ENV_LOCKED=1
    ensure_env
    flock -u 9
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

usage() {
  echo "usage: ./launch.sh COMMAND [ARGS] (each command answers --help)"
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

fail() { echo "error: $*" >&2; exit 2; }

fake_devices() {  # N fake CPU devices; anything but a whole number >= 1 stops here (XLA would crash)
  [[ "$1" =~ ^[1-9][0-9]*$ ]] || fail "--fake-devices $1: give a whole number of devices >= 1, e.g. --fake-devices 8"
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$1" JAX_PLATFORMS=cpu
}

wants_help() { local a; for a in "$@"; do [[ "$a" == -h || "$a" == --help ]] && return 0; done; return 1; }

# Device/host options, in any order: before a command, or anywhere among a run's flags
# (`./launch.sh --workdir X --config ... --fake-devices 2`). A run is what starts with a flag.
DIST=()
RUN=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --fake-devices) [[ $# -ge 2 ]] || fail "--fake-devices needs a number, e.g. --fake-devices 8"
      fake_devices "$2"; shift 2 ;;
    --fake-devices=*) fake_devices "${1#*=}"; shift ;;
    --coordinator|--num-processes|--process-id)
      [[ $# -ge 2 ]] || fail "$1 needs a value"
      flag="${1#--}"; DIST+=("--${flag//-/_}=$2"); shift 2 ;;
    --coordinator=*|--num-processes=*|--process-id=*)
      flag="${1%%=*}"; flag="${flag#--}"; DIST+=("--${flag//-/_}=${1#*=}"); shift ;;
    --distributed) DIST+=("--distributed"); shift ;;
    local) [[ ${#RUN[@]} -eq 0 ]] || RUN+=("$1"); shift ;;
    -h|--help) [[ ${#RUN[@]} -eq 0 ]] && break; RUN+=("$1"); shift ;;
    -*) RUN+=("$1"); shift ;;
    *) [[ ${#RUN[@]} -eq 0 ]] && break; RUN+=("$1"); shift ;;   # a command, or a flag's value
  esac
done
[[ ${#RUN[@]} -gt 0 ]] && set -- run "${RUN[@]}"

cmd="${1:-}"
case "$cmd" in
  -h|--help|help|"")
    usage; exit 0 ;;
  tpu)  # runs on this machine only gcloud; each worker bootstraps its own .venv
    shift
    if wants_help "$@"; then
      echo "usage: ./launch.sh tpu TPU_NAME ZONE --config configs/x.py[:arg] [--workdir DIR] [--config.a.b=v ...]"
      echo "  runs the same command on every worker of a Cloud TPU pod VM (gcloud compute tpus tpu-vm ssh --worker=all);"
      echo "  each worker bootstraps its own .venv in \$LTMJAX_REMOTE_DIR (default ltmjax) with LTMJAX_EXTRAS (default tpu)"
      exit 0
    fi
    [[ $# -ge 2 ]] || fail "usage: ./launch.sh tpu TPU_NAME ZONE --config configs/x.py[:arg] [...]"
    name="$1"; zone="$2"; shift 2
    remote="cd ${LTMJAX_REMOTE_DIR:-ltmjax} && LTMJAX_EXTRAS=${LTMJAX_EXTRAS:-tpu} ./launch.sh --distributed"
    for a in "$@"; do remote+=" $(printf '%q' "$a")"; done
    echo "[launch] on every worker of $name: $remote" >&2
    exec gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command "$remote" ;;
esac

ensure_env
PY="$VENV/bin/python"
if [[ ${#DIST[@]} -gt 0 && "$cmd" != run ]]; then
  fail "--coordinator/--num-processes/--process-id/--distributed go with a run (--config ...)"
fi

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
  slurm)  # jax.distributed.initialize() reads the node list, task count and rank from SLURM
    shift
    if wants_help "$@"; then
      echo "usage: ./launch.sh slurm --config configs/x.py[:arg] [--workdir DIR] [--config.a.b=v ...]"
      echo "  inside an sbatch/salloc allocation: one process per node (srun), joined by jax.distributed;"
      echo "  e.g. sbatch --nodes=2 --gpus-per-node=8 --wrap './launch.sh slurm --config ...'"
      echo "  (a suite as a SLURM array job: ./launch.sh suite NAME --slurm)"
      exit 0
    fi
    [[ -n "${SLURM_JOB_ID:-}" ]] || fail "slurm: run inside an allocation, e.g. sbatch --nodes=2 --gpus-per-node=8 --wrap './launch.sh slurm --config ...'"
    exec srun --ntasks-per-node=1 "$PY" -m ltmjax.main --distributed "$@" ;;
  run)  # flags of python -m ltmjax.main, in any order (--config, --workdir, --config.a.b=v, ...)
    shift
    exec "$PY" -m ltmjax.main "${DIST[@]+"${DIST[@]}"}" "$@" ;;
  *)
    fail "unknown command '$cmd'; run ./launch.sh --help for the commands" ;;
esac
