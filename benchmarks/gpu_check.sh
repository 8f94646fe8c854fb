#!/usr/bin/env bash
# The GPU check of issue 6, a few minutes on one CUDA GPU (143 s on an H200, 2026-11-26).
#
#   bash benchmarks/gpu_check.sh            # from the repository root; OUT=dir keeps the results
#
# Needs PyTorch with CUDA, numpy and pytest already installed; installs nothing and needs no
# network (textgan is imported from this checkout). Steps, each bounded by `timeout`, a failing
# step reported and the next one run:
#   1. device, driver, torch version, date;
#   2. the fast-path correctness tests on CUDA (tests/test_fast_path.py -k cuda);
#   3. bench_train.py at paper on CUDA, eager: the naive step and textgan's side by side, with
#      the projected time of 200,000 iterations;
#   4. the same with --compile (inductor with CUDA graphs, textgan's setting for CUDA runs);
#   5. evaluation + checkpoint overhead at paper, compiled.
# Results: benchmarks' output on stdout and in $OUT/gpu_check.log, JSON in $OUT/*.json.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-${TMPDIR:-/tmp}/textgan-gpu-check}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
: >"$LOG"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python3}"
FAILED=()

step() {  # step NAME SECONDS COMMAND...: run, log, keep going on failure
    local name="$1" limit="$2"
    shift 2
    echo "== $name (limit ${limit}s): $*" | tee -a "$LOG"
    local start=$SECONDS status=0
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG" || status=$?
    echo "== $name: exit $status after $((SECONDS - start)) s" | tee -a "$LOG"
    if [ "$status" -ne 0 ]; then FAILED+=("$name (exit $status)"); fi
}

step info 60 "$PY" -c '
import datetime, platform, torch
print("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda)
assert torch.cuda.is_available(), "PyTorch sees no CUDA GPU"
p = torch.cuda.get_device_properties(0)
print("gpu", p.name, "|", round(p.total_memory / 2**30), "GiB |", p.multi_processor_count, "SMs")
print("bf16", torch.cuda.is_bf16_supported())
'
if [ "${#FAILED[@]}" -gt 0 ]; then echo "no usable CUDA GPU: stopping" | tee -a "$LOG"; exit 1; fi
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv 2>&1 | tee -a "$LOG" || true

step tests 90 "$PY" -m pytest -q -x -p no:cacheprovider --noconftest tests/test_fast_path.py -k cuda

BENCH=("$PY" benchmarks/bench_train.py --presets paper --device cuda --repeats 20
    --iter-repeats 5 --paper-iter-repeats 5)
step "paper eager" 60 "${BENCH[@]}" --json "$OUT_DIR/paper_eager.json"
# --compile on CUDA: torch.compile with CUDA graphs (mode reduce-overhead), textgan's default.
step "paper compiled" 120 "${BENCH[@]}" --compile --json "$OUT_DIR/paper_compiled.json"
step "paper overhead" 90 "$PY" benchmarks/bench_train.py --presets paper --device cuda \
    --compile --repeats 3 --iter-repeats 3 --paper-iter-repeats 3 --overhead \
    --json "$OUT_DIR/paper_overhead.json"

echo "== summary" | tee -a "$LOG"
grep -h -E "^== |ratio|projected|GFLOP|overhead at|peak|fraction|paper +\(" "$LOG" \
    | grep -v "^== summary" >"$OUT_DIR/summary.txt" || true
cat "$OUT_DIR/summary.txt"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "failed steps: ${FAILED[*]}" | tee -a "$LOG"
    exit 1
fi
echo "all steps passed; results in $OUT_DIR" | tee -a "$LOG"
