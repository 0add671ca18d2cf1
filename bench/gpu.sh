#!/usr/bin/env bash
# The GPU checks in one command, for a machine with a GPU (needs only this repo and npm;
# Deno comes through npx). About 5 minutes on a real adapter:
#   1. the WebGPU parity tests (tests/webgpu_*_test.ts) on the real adapter,
#   2. matmul 1024..8192 GFLOP/s on WebGPU (bench/webgpu_bench.ts --only matmul),
#   3. the GPT train step at the benchmark size (bench/webgpu_bench.ts --only gpt),
#   4. DINOv2 ViT-B/14-reg4 forward, batch 8 at 224 (bench/dinov2_bench.ts --device webgpu),
#   5. VQGAN decode at MAGE's size (bench/vqgan_bench.ts --device webgpu),
# then prints a Markdown table of the results (full logs in $GPU_LOG_DIR, default a temp dir).
#
#   bench/gpu.sh              real adapter only: without one it says so and exits 0
#   bench/gpu.sh --software   also on a software adapter (llvmpipe), at tiny sizes
#
# Each step has its own time limit (GPU_STEP_TIMEOUT seconds, default 150).
set -u
cd "$(dirname "$0")/.."
DENO=(npx --yes deno@2.9.6)
SOFTWARE=0
[ "${1:-}" = "--software" ] && SOFTWARE=1
STEP_TIMEOUT="${GPU_STEP_TIMEOUT:-150}"
LOG_DIR="${GPU_LOG_DIR:-$(mktemp -d -t digit-gpu-XXXXXX)}"
mkdir -p "$LOG_DIR"

probe=$("${DENO[@]}" eval --quiet '
import { probeWebGPU } from "./core/backends/webgpu/mod.ts";
const p = await probeWebGPU();
console.log(`${p.available ? (p.isFallback ? "software" : "gpu") : "none"}\t${p.description}`);
' 2>"$LOG_DIR/probe.err" | tail -n 1)
kind="${probe%%$'\t'*}"
adapter="${probe#*$'\t'}"
case "$kind" in
  gpu) ;;
  software)
    if [ "$SOFTWARE" != 1 ]; then
      echo "no GPU adapter: only a software one ($adapter); bench/gpu.sh --software runs tiny sizes on it"
      exit 0
    fi
    ;;
  *)
    echo "no GPU adapter (${adapter:-WebGPU probe failed, see $LOG_DIR/probe.err})"
    exit 0
    ;;
esac

if [ "$kind" = gpu ]; then
  SIZES=1024,2048,4096,8192
  DINO=(--batch 8 --reps 3)
  VQ=(--decode-preset mage)
else
  SIZES=128,256
  DINO=(--batch 1 --reps 1 --arch vits14 --size 56)
  VQ=(--decode-preset cpu16)
fi

ROWS=()
# step NAME LOGFILE CMD...: runs one step under the time limit, adds a row from its log.
step() {
  local name="$1" log="$LOG_DIR/$2"
  shift 2
  local t0=$SECONDS
  timeout "$STEP_TIMEOUT" "$@" >"$log" 2>&1
  local rc=$? secs=$((SECONDS - t0)) status=ok
  [ $rc = 124 ] && status="timed out (${STEP_TIMEOUT}s)"
  [ $rc != 0 ] && [ $rc != 124 ] && status="failed (exit $rc)"
  echo "[$name] $status in ${secs}s; log: $log" >&2
  LAST_STATUS="$status"
  LAST_SECS="$secs"
  LAST_LOG="$log"
}
row() { ROWS+=("| $1 | $2 | $3 | $LAST_SECS s |"); }
# The results of a log: the lines matching a pattern, joined with "; ", pipes escaped.
pick() {
  sed -E 's/\x1b\[[0-9;]*m//g' "$1" | grep -E "$2" | sed -E 's/\|/\\|/g; s/^ +//' |
    awk 'NR > 1 { printf " / " } { printf "%s", $0 }'
}

# 1. parity tests
step "webgpu tests" tests.log "${DENO[@]}" test -A --quiet tests/webgpu_backend_test.ts \
  tests/webgpu_kernels_test.ts tests/webgpu_training_test.ts tests/webgpu_vs_cpu_test.ts
row "WebGPU parity tests" "$LAST_STATUS" "$(pick "$LAST_LOG" '(ok|FAILED) \| [0-9]+ passed')"

# 2. matmul
step "matmul" matmul.log "${DENO[@]}" run -A bench/webgpu_bench.ts --only matmul \
  --sizes "$SIZES" --seconds 1
row "matmul ${SIZES} (tiled)" "$LAST_STATUS" \
  "$(pick "$LAST_LOG" '^matmul [0-9]+x[0-9]+x[0-9]+ tiled' | sed -E 's/ \([0-9]+ products[^)]*\)//g')"

# 3. GPT train step
step "gpt" gpt.log "${DENO[@]}" run -A bench/webgpu_bench.ts --only gpt
row "GPT train step" "$LAST_STATUS" \
  "$(pick "$LAST_LOG" 'on webgpu: |ratio' | sed -E 's| / GPT train step \([^)]*\)| /|g')"

# 4. DINOv2 forward
step "dinov2" dinov2.log "${DENO[@]}" run -A bench/dinov2_bench.ts --device webgpu --no-peer \
  "${DINO[@]}"
row "DINOv2 forward" "$LAST_STATUS" "$(pick "$LAST_LOG" '^DINOv2|full forward|l3 features')"

# 5. VQGAN decode
step "vqgan" vqgan.log "${DENO[@]}" run -A bench/vqgan_bench.ts --device webgpu "${VQ[@]}"
row "VQGAN decode" "$LAST_STATUS" "$(pick "$LAST_LOG" '^VQGAN decode')"

echo
echo "GPU checks, $(date -u +%Y-%m-%d), adapter: $adapter"
echo
echo "| check | status | result | time |"
echo "|---|---|---|---|"
for r in "${ROWS[@]}"; do echo "$r"; done
echo
echo "logs: $LOG_DIR"
