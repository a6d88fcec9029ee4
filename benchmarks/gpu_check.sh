#!/usr/bin/env bash
# The GPU check, as one command for a lent GPU machine (or any CUDA host):
#   cuda_tests    the CUDA tests (tests/test_cuda.py, skipped on machines without a GPU),
#   sequence      LlamaGR per-prefix vs sequence-mode training, one Office epoch each at the
#                 paper's and a small size (benchmarks/sequence_training.py),
#   tiger         where a paper-size TIGER training step goes (benchmarks/tiger_profile.py),
#   speed         GPU speed figures (benchmarks/generative_speed.py: samples/s, beam users/s),
#   data_parallel on a CUDA machine, one epoch of TIGER through the entry point on one GPU
#                 (benchmarks/data_parallel.py --procs 1),
#   reproduce     a reproduction profile (default gpu-paper) with its report.
#
#   benchmarks/gpu_check.sh OUT_DIR [PROFILE|none] [extra tuning.reproduce args...]
#
# STEPS="cuda_tests sequence tiger reproduce" picks steps (default: all); STEP_TIMEOUT_<name>
# (seconds) caps one, e.g. STEP_TIMEOUT_reproduce=300 (a capped reproduction keeps its
# finished runs; rerunning the same command resumes the rest).  Everything goes under
# OUT_DIR (logs, speed JSON, report folder).  Steps go on after a failing step, and the
# exit status says whether any failed.  On a CPU machine,
# `benchmarks/gpu_check.sh /tmp/check smoke` runs the same script end to end (the CUDA
# tests are skipped).  PYTHON picks the interpreter (default: ./.venv/bin/python if
# present, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [PROFILE|none] [reproduce args...]}
PROFILE=${2:-gpu-paper}
shift $(( $# >= 2 ? 2 : 1 ))
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONUNBUFFERED=1
status=0
STEPS=${STEPS:-cuda_tests sequence tiger speed data_parallel reproduce}
step() {  # step NAME command...: run, log to OUT/NAME.log, time it, remember failures
    local name=$1; shift
    case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
    local limit_var="STEP_TIMEOUT_$name" start=$SECONDS
    local limit=${!limit_var:-0}
    echo "== $name: $*"
    timeout --signal=INT --kill-after=30 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/steps.txt"
    [ "$rc" -eq 0 ] || status=1
}

{ nvidia-smi 2>&1 || echo "no nvidia-smi"; "$PY" -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
step cuda_tests "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py
step sequence "$PY" benchmarks/sequence_training.py --dataset=Office --sizes small paper \
    --out="$OUT/sequence_training.json"
step tiger "$PY" benchmarks/tiger_profile.py --dataset=Office --batches=8 --out="$OUT/tiger_profile.json"
step speed "$PY" benchmarks/generative_speed.py --dataset=Office --train_batches=8 \
    --beam_users=2048 --exact_users=64 --output="$OUT/generative_speed.json"
if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    step data_parallel "$PY" benchmarks/data_parallel.py --dataset=Office --procs 1 \
        --epochs=1 --threads=4 --output="$OUT/data_parallel.json" --gpu_id=0
fi
if [ "$PROFILE" != none ]; then
    step reproduce "$PY" -m tuning.reproduce --profile="$PROFILE" --out="$OUT/report" "$@"
fi
exit $status
