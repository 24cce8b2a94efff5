#!/usr/bin/env bash
# The GPU figures the issues ask for, one part per call (each fits a 10-minute slot):
#
#   bash workflow/scripts/gpu_measure.sh augment     # batched AugMix tuples/s (target >= 200,000 on an H100)
#   bash workflow/scripts/gpu_measure.sh corrupt     # full CIFAR-10-C build, files written (target <= 5 s)
#   bash workflow/scripts/gpu_measure.sh train       # bench train: step time, one whole real epoch
#   bash workflow/scripts/gpu_measure.sh train100    # real `augmix train`, WRN-40-2 AugMix+JSD, 100 epochs on
#                                                    # random CIFAR-format data (target <= 5 min); extra
#                                                    # arguments go to workflow/scripts/timed_train.py
#
# Results (JSON, logs, GPU utilisation samples) go to $OUT (default gpu-measurements/). Runs from
# the source tree (PYTHONPATH=src), so it works on a machine with torch but without `pip install`.
# Frost textures: AUGMIX_FROST_DIR, or the imagecorruptions package if installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-measurements}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

case "${1:-}" in
  augment)
    $PY -m augmix bench augment --device cuda --json | tee "$OUT/bench_augment.json" ;;
  corrupt)
    $PY -m augmix bench corrupt --device cuda --end-to-end --json | tee "$OUT/bench_corrupt.json" ;;
  train)
    $PY -m augmix bench train --arch wrn40_2 --method augmix --steps 100 --compile --json | tee "$OUT/bench_train.json" ;;
  train100)
    shift
    sampler=""
    if command -v nvidia-smi >/dev/null; then  # utilisation every 200 ms while training runs
      nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 > "$OUT/util_train100.csv" &
      sampler=$!
      trap 'kill "$sampler" 2>/dev/null || true' EXIT  # also when training fails (set -e)
    fi
    $PY workflow/scripts/timed_train.py "$@" 2>&1 | grep -v "^\[epoch" | tee "$OUT/train100.log"
    if [ -n "$sampler" ]; then
      kill "$sampler" 2>/dev/null || true
      $PY -c "import numpy as np, sys; u = np.loadtxt(sys.argv[1], ndmin=1); print(f'GPU utilisation: mean {u.mean():.1f} %, median {np.median(u):.1f} % ({len(u)} samples, 200 ms apart)')" \
        "$OUT/util_train100.csv" | tee -a "$OUT/train100.log"
    fi ;;
  *)
    sed -n '2,13p' "$0"; exit 2 ;;
esac
