#!/usr/bin/env bash
# The GPU figures the issues ask for, one part per call (each fits a 10-minute slot):
#
#   bash workflow/scripts/gpu_measure.sh augment     # batched AugMix tuples/s (target >= 200,000 on an H100)
#   bash workflow/scripts/gpu_measure.sh corrupt     # full CIFAR-10-C build, files written (target <= 5 s)
#   bash workflow/scripts/gpu_measure.sh train       # bench train: step time, one whole real epoch
#   bash workflow/scripts/gpu_measure.sh train100    # real `augmix train`, WRN-40-2 AugMix+JSD, 100 epochs
#                                                    # on random CIFAR-format data (target <= 5 min)
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

sample_util() {  # GPU utilisation every 200 ms into $1 until killed
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 > "$1" &
  echo $!
}

summarise_util() {  # mean and median of the samples taken while training ran
  $PY - "$1" <<'EOF'
import sys, numpy as np
u = np.loadtxt(sys.argv[1], ndmin=1)
print(f"GPU utilisation: mean {u.mean():.1f} %, median {np.median(u):.1f} % ({len(u)} samples, 200 ms apart)")
EOF
}

case "${1:-}" in
  augment)
    $PY -m augmix bench augment --device cuda --json | tee "$OUT/bench_augment.json" ;;
  corrupt)
    $PY -m augmix bench corrupt --device cuda --end-to-end --json | tee "$OUT/bench_corrupt.json" ;;
  train)
    $PY -m augmix bench train --arch wrn40_2 --method augmix --steps 100 --compile --json | tee "$OUT/bench_train.json" ;;
  train100)
    work=$(mktemp -d)
    $PY - "$work" <<'EOF'
import sys
from pathlib import Path
import numpy as np, yaml
from augmix.data import write_cifar10_format
work = Path(sys.argv[1])
rng = np.random.default_rng(0)
train = (rng.integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 50000))
test = (rng.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 10000))
write_cifar10_format(work / "raw" / "cifar-10-batches-py", train, test, [str(i) for i in range(10)])
p = yaml.safe_load(open("params.yaml"))
p["tracking"]["enabled"] = False
p["train"]["compile"] = True
yaml.safe_dump(p, open(work / "params.yaml", "w"))
EOF
    pid=$(sample_util "$OUT/util_train100.csv")
    start=$(date +%s.%N)
    $PY - "$work" <<'EOF' 2>&1 | tee "$OUT/train100.log" | grep -v "^\[epoch" || true
import json, sys
from pathlib import Path
from augmix import config
from augmix.tracking import NullRun  # the GPU host may lack mlflow; the timing is the point here
from augmix.train import train
work = Path(sys.argv[1])
params = config.load(work / "params.yaml")
s = train(params, dataset="cifar10", arch="wrn40_2", method="augmix", raw_dir=work / "raw",
          out_dir=work / "out", checkpoint=work / "ckpt.pt", run=NullRun())
print(json.dumps(s))
EOF
    end=$(date +%s.%N)
    kill "$pid" || true
    cp "$work/out/train_log.csv" "$OUT/train100_log.csv" 2>/dev/null || true
    echo "wall, process start to end: $(echo "$end - $start" | bc) s" | tee -a "$OUT/train100.log"
    summarise_util "$OUT/util_train100.csv" | tee -a "$OUT/train100.log"
    rm -rf "$work" ;;
  *)
    sed -n '2,12p' "$0"; exit 2 ;;
esac
